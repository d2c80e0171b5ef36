//! Severity changes (SPEC §12): `/incident sev P1|P2|P3` and the card's select. A change updates the topic, the
//! card and the broadcast announcement and posts one timeline line; the first upgrade to P1 pages the secondary
//! on-call once and arms the P1 escalation; a downgrade takes nothing back; the summary uses the highest severity
//! held; twenty simultaneous changes record one. Real HTTP server, signed requests, the Slack and pager stand-ins.

use std::sync::Arc;
use std::time::Duration;

use incident_bot::clock::Clock;
use incident_bot::standins::harness::{block_actions_body, Harness};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{Channel, Message, INCIDENTS_CHANNEL_ID};
use serde_json::Value;

use crate::helpers::{declare_done as declare, first_block_id, incident, text_of, World};

const LIMIT: Duration = Duration::from_secs(20);

async fn channel(bot: &Harness, id: &str) -> Channel {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
}

async fn card(bot: &Harness, id: &str) -> String {
    let ch = channel(bot, id).await;
    let pinned: Vec<&Message> = ch
        .messages
        .iter()
        .filter(|m| ch.pins.contains(&m.ts))
        .collect();
    assert_eq!(pinned.len(), 1, "one pinned card");
    text_of(pinned[0])
}

async fn lines(bot: &Harness, id: &str) -> Vec<String> {
    channel(bot, id)
        .await
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:post:"))
        .map(text_of)
        .collect()
}

/// The announcement of incident `id` in the broadcast channel, and how often it was edited.
fn announcement(bot: &Harness, id: &str) -> (String, u32) {
    let ch = bot.slack.channel_by_name(INCIDENTS_CHANNEL_ID).unwrap();
    let m = ch
        .messages
        .iter()
        .find(|m| first_block_id(m) == incident_bot::slack::blocks::announce_block_id(id))
        .expect("an announcement")
        .clone();
    (text_of(&m), m.edited)
}

async fn slash_in(bot: &Harness, id: &str, user: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

/// A choice of `sev` in the card's severity select by `user`, shaped like Slack's `block_actions` for a
/// `static_select`.
async fn select_severity(bot: &Harness, user: &str, id: &str, sev: &str) -> u16 {
    let inc = incident(bot, id).await;
    let body = block_actions_body(
        &inc,
        user,
        "severity_select",
        &bot.slack.response_url(),
        bot.state.clock.now(),
    )
    .unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let mut payload: Value = serde_json::from_str(&form[0].1).unwrap();
    payload["actions"][0] = serde_json::json!({
        "type": "static_select",
        "action_id": "severity_select",
        "block_id": "role_actions",
        "selected_option": {
            "text": { "type": "plain_text", "text": sev, "emoji": true },
            "value": format!("{sev}|{id}")
        },
        "placeholder": { "type": "plain_text", "text": "Severity" },
        "action_ts": "1764061200.000100"
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    bot.post_signed(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        body,
    )
    .await
    .unwrap()
    .status()
    .as_u16()
}

fn alert_keys(pager: &PagerStandin) -> Vec<(String, u32)> {
    pager
        .pagerduty_alerts()
        .into_iter()
        .map(|a| (a.dedup_key, a.trigger_count))
        .collect()
}

async fn count_events(bot: &Harness, id: &str, kind: &str) -> i64 {
    incident_bot::store::incidents::count_events(&bot.state.db, id, kind)
        .await
        .unwrap()
}

async fn timer_due(bot: &Harness, timer_id: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT due_at FROM timers WHERE id = $1")
        .bind(timer_id)
        .fetch_optional(&bot.state.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upgrade_to_p1_updates_topic_card_and_announcement_pages_once_and_arms_the_escalation() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Checkout slow sev:P2 service:payments").await;
    let first = format!("incident-bot-{id}");
    assert_eq!(alert_keys(&w.pager), vec![(first.clone(), 1)]);
    assert!(channel(&bot, &id).await.topic.starts_with("🟠 P2"));
    assert_eq!(timer_due(&bot, &format!("p1_ack:{id}")).await, None);

    w.clock.advance(chrono::Duration::minutes(10));
    let reply = slash_in(&bot, &id, "U0ALICE", "sev P1").await;
    assert!(
        reply.contains("Severity upgraded: P2 → P1 — full outage (by <@U0ALICE>)"),
        "{reply}"
    );
    let p1 = format!("incident-bot-{id}-p1");
    assert_eq!(
        alert_keys(&w.pager),
        vec![(first.clone(), 1), (p1.clone(), 1)]
    );
    let page = w
        .pager
        .pagerduty_alerts()
        .into_iter()
        .find(|a| a.dedup_key == p1)
        .unwrap();
    assert_eq!(page.severity, "critical");
    assert!(
        page.summary.contains("was upgraded to P1"),
        "{}",
        page.summary
    );

    let topic = channel(&bot, &id).await.topic;
    assert!(
        topic.starts_with("🔴 P1 · payments · Checkout slow"),
        "{topic}"
    );
    let c = card(&bot, &id).await;
    assert!(c.contains("*Severity* P1 — full outage"), "{c}");
    let (a, edited) = announcement(&bot, &id);
    assert!(a.contains("*P1* — full outage"), "{a}");
    assert_eq!(edited, 1);
    let l = lines(&bot, &id).await;
    assert!(
        l[0].starts_with("🔴 Severity upgraded: P2 → P1 — full outage (by <@U0ALICE>)"),
        "{l:?}"
    );
    assert!(
        l.iter().any(|l| l.starts_with(
            "⏰ INC-1 was upgraded to P1 — paged the secondary on-call at P1 for payments"
        )),
        "{l:?}"
    );
    // The P1 escalation is armed from the upgrade on, not from the declaration.
    let due = timer_due(&bot, &format!("p1_ack:{id}")).await.unwrap();
    assert_eq!(
        due,
        (w.clock.now() + chrono::Duration::minutes(5)).timestamp_millis()
    );
    // So is the reminder of a P1 without a commander.
    let due = timer_due(&bot, &format!("ic_reminder:{id}")).await.unwrap();
    assert_eq!(
        due,
        (w.clock.now() + chrono::Duration::minutes(5)).timestamp_millis()
    );

    // A downgrade takes nothing back; another upgrade does not page again.
    let reply = slash_in(&bot, &id, "U0ALICE", "sev P3").await;
    assert!(reply.contains("Severity downgraded: P1 → P3"), "{reply}");
    assert!(channel(&bot, &id).await.topic.starts_with("🟡 P3"));
    assert_eq!(incident(&bot, &id).await.peak_severity.as_str(), "P1");
    let reply = slash_in(&bot, &id, "U0ALICE", "sev P1").await;
    assert!(reply.contains("P3 → P1"), "{reply}");
    assert_eq!(alert_keys(&w.pager), vec![(first, 1), (p1, 1)]);
    assert!(
        w.pager
            .pagerduty_events()
            .iter()
            .all(|e| !e.body.to_string().contains("\"resolve\"")),
        "nothing was un-paged"
    );
    assert_eq!(count_events(&bot, &id, "severity").await, 3);
    let (a, edited) = announcement(&bot, &id);
    assert!(a.contains("*P1*"), "{a}");
    assert!(edited >= 2, "{edited}");
}

#[tokio::test]
async fn the_card_select_changes_the_severity_and_the_summary_uses_the_highest_held() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Search degraded sev:P3 service:search").await;
    let c = card(&bot, &id).await;
    assert!(c.contains("Severity"), "{c}");

    assert_eq!(select_severity(&bot, "U0BOB", &id, "P1").await, 200);
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(card(&bot, &id)
        .await
        .contains("*Severity* P1 — full outage"));
    assert_eq!(select_severity(&bot, "U0BOB", &id, "P2").await, 200);
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let inc = incident(&bot, &id).await;
    assert_eq!(inc.severity.as_str(), "P2");
    assert_eq!(inc.peak_severity.as_str(), "P1");

    w.clock.advance(chrono::Duration::minutes(50));
    slash_in(&bot, &id, "U0BOB", "resolved").await;
    let ch = channel(&bot, &id).await;
    let summary = ch
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:summary:"))
        .map(text_of)
        .next()
        .expect("a summary");
    // 50 minutes is High for a P1 (30 min – 2 h), Elite for the P2 it ended as.
    assert!(summary.contains("P1"), "{summary}");
    assert!(summary.contains("High"), "{summary}");
}

#[tokio::test]
async fn twenty_simultaneous_severity_changes_record_one() {
    let w = World::new().await;
    let bot = Arc::new(w.bot().await);
    let id = declare(&bot, "start Payments errors sev:P2 service:payments").await;
    let ch = incident(&bot, &id).await.channel_id.unwrap();
    let mut all = tokio::task::JoinSet::new();
    for i in 0..20 {
        let bot = bot.clone();
        let ch = ch.clone();
        all.spawn(async move {
            bot.slash_as(&format!("U0USER{i:02}"), &ch, "sev P1")
                .await
                .unwrap()
        });
    }
    let mut recorded = 0;
    while let Some(r) = all.join_next().await {
        let (status, reply) = r.unwrap();
        assert_eq!(status, 200);
        let text = reply["text"].as_str().unwrap_or_default();
        if text.starts_with("Recorded.") {
            recorded += 1;
        } else {
            assert!(text.contains("is already P1"), "{text}");
        }
    }
    assert_eq!(recorded, 1);
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(count_events(&bot, &id, "severity").await, 1);
    assert_eq!(
        lines(&bot, &id)
            .await
            .iter()
            .filter(|l| l.contains("Severity upgraded"))
            .count(),
        1
    );
    let p1 = format!("incident-bot-{id}-p1");
    assert_eq!(
        alert_keys(&w.pager)
            .iter()
            .filter(|(k, _)| *k == p1)
            .count(),
        1,
        "paged once"
    );
    assert_eq!(incident(&bot, &id).await.version, 1, "one version bump");
}

#[tokio::test]
async fn bad_severity_gets_the_usage_and_changes_nothing() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Search slow sev:P3 service:search").await;
    let reply = slash_in(&bot, &id, "U0ALICE", "sev <!here>").await;
    assert!(
        reply.contains("no severity called `&lt;!here&gt;`"),
        "{reply}"
    );
    let reply = slash_in(&bot, &id, "U0ALICE", "sev P3").await;
    assert!(reply.contains("is already P3"), "{reply}");
    assert_eq!(count_events(&bot, &id, "severity").await, 0);
}

#[tokio::test]
async fn the_digest_counts_an_incident_at_the_highest_severity_it_held() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Search degraded sev:P3 service:search").await;
    slash_in(&bot, &id, "U0BOB", "sev P1").await;
    slash_in(&bot, &id, "U0BOB", "sev P3").await;
    w.clock.advance(chrono::Duration::minutes(50));
    slash_in(&bot, &id, "U0BOB", "resolved").await;

    let general = incident_bot::standins::slack::GENERAL_CHANNEL_ID;
    let (status, _) = bot.slash("digest").await.unwrap();
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + LIMIT;
    let digest = loop {
        let found = w
            .slack
            .channel_by_name(general)
            .unwrap()
            .messages
            .iter()
            .map(text_of)
            .find(|t| t.contains("Incident digest"));
        if let Some(t) = found {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "no digest");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(digest.contains("P1 · incidents 1"), "{digest}");
    assert!(!digest.contains("P3 · incidents 1"), "{digest}");
}
