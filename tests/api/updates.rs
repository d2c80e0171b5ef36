//! Status updates (SPEC §12): `/incident update` opens the form; its submission is posted in the incident
//! channel and as a reply in the broadcast announcement's thread, as one timeline line; the "next update due"
//! reminder is a durable timer driven by a manual clock: once when overdue, never after a newer update or after
//! resolution. Typed text is escaped; a replayed submission has one effect.

use std::time::Duration;

use incident_bot::standins::harness::Harness;
use incident_bot::standins::slack::{blocks_to_text, Message};
use serde_json::{json, Value};

use crate::helpers::{declare_done as declare, eventually, incident, World};

const LIMIT: Duration = Duration::from_secs(20);
const REMINDER: &str = "the next status update on";

fn text_of(m: &Message) -> String {
    m.blocks
        .as_ref()
        .map(blocks_to_text)
        .unwrap_or_else(|| m.text.clone())
}

/// Messages the bot posted in the incident channel (not in threads), in order.
async fn channel_texts(bot: &Harness, id: &str) -> Vec<String> {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
        .iter()
        .filter(|m| m.thread_ts.is_none())
        .map(text_of)
        .collect()
}

fn reminders(texts: Vec<String>) -> Vec<String> {
    texts.into_iter().filter(|t| t.contains(REMINDER)).collect()
}

async fn slash_in(bot: &Harness, id: &str, user: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

/// The form body of a submission of the update form of incident `id` by `user`.
fn submission(
    id: &str,
    user: &str,
    status: Option<&str>,
    typed: &str,
    impact: &str,
    next: &str,
) -> String {
    let mut values = json!({
        "status_text": { "value": { "type": "plain_text_input", "value": typed } },
        "impact": { "value": { "type": "plain_text_input", "value": impact } },
        "next": { "value": { "type": "number_input", "value": next } }
    });
    if let Some(s) = status {
        values["status"] =
            json!({ "value": { "type": "static_select", "selected_option": { "value": s } } });
    }
    let payload = json!({
        "type": "view_submission",
        "team": { "id": "T0001", "domain": "acme" },
        "user": { "id": user, "team_id": "T0001" },
        "view": { "callback_id": "incident_update", "private_metadata": id, "state": { "values": values } }
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

async fn submit(bot: &Harness, id: &str, body: String) -> Value {
    let resp = bot
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn count_events(bot: &Harness, id: &str, kind: &str) -> i64 {
    incident_bot::store::incidents::count_events(&bot.state.db, id, kind)
        .await
        .unwrap()
}

/// The announcement's `ts` and the replies in its thread.
async fn thread_replies(bot: &Harness, id: &str) -> (String, Vec<String>) {
    let result = incident_bot::store::setup_steps::result_of(&bot.state.db, id, "announce")
        .await
        .unwrap()
        .unwrap();
    let ts = result
        .strip_prefix("announced ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let broadcast = bot
        .slack
        .channel_by_name(&bot.state.settings.slack.broadcast_channel)
        .unwrap();
    let replies = broadcast
        .messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(ts.as_str()) && m.ts != ts)
        .map(text_of)
        .collect();
    (ts, replies)
}

async fn a_few_ticks() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn the_form_opens_and_an_update_goes_to_the_channel_and_the_announcement_thread_once() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Checkout errors sev:P2 service:checkout").await;

    slash_in(&bot, &id, "U0ALICE", "update").await;
    eventually("the form opens", || async {
        !bot.slack.views_opened().is_empty()
    })
    .await;
    let views = bot.slack.views_opened();
    let view = &views[0];
    assert_eq!(view["callback_id"], "incident_update");
    assert_eq!(view["private_metadata"], id.as_str());
    let labels = view.to_string();
    for l in [
        "Status",
        "Impact",
        "Next update in (minutes)",
        "Identified",
        "Monitoring",
    ] {
        assert!(labels.contains(l), "{l} in {labels}");
    }

    let body = submission(
        &id,
        "U0ALICE",
        Some("identified"),
        "",
        "<!channel> checkout & payments <https://evil.example|click here> <@U0EVIL>",
        "20",
    );
    submit(&bot, &id, body.clone()).await;
    // Slack retrying the same signed submission changes nothing.
    submit(&bot, &id, body).await;

    let expected = "📢 *Status update* · INC-1 · *Identified* (by <@U0ALICE>)\n*Impact:* &lt;!channel&gt; \
                    checkout &amp; payments &lt;https://evil.example|click here&gt; &lt;@U0EVIL&gt;\n_Next update \
                    in 20 minutes._";
    let updates: Vec<String> = channel_texts(&bot, &id)
        .await
        .into_iter()
        .filter(|t| t.contains("Status update"))
        .collect();
    assert_eq!(updates, [expected]);
    let (ts, replies) = thread_replies(&bot, &id).await;
    assert_eq!(replies, [expected], "one reply in the thread of {ts}");
    assert_eq!(
        count_events(&bot, &id, "update").await,
        1,
        "one timeline line"
    );
    let timeline = slash_in(&bot, &id, "U0ALICE", "timeline").await;
    assert!(timeline.contains("Status update"), "{timeline}");
    // No raw mention or link anywhere the bot posted.
    for call in bot.slack.calls_to("chat.postMessage") {
        let s = Value::Object(call.params).to_string();
        assert!(!s.contains("<!channel>") && !s.contains("<@U0EVIL>"), "{s}");
    }
}

#[tokio::test]
async fn a_form_without_status_or_impact_is_answered_with_field_errors() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Search slow sev:P3 service:search").await;
    let answer = submit(&bot, &id, submission(&id, "U0ALICE", None, " ", "", "0")).await;
    assert_eq!(answer["response_action"], "errors");
    for field in ["status", "impact", "next"] {
        assert!(answer["errors"][field].is_string(), "{answer}");
    }
    assert_eq!(count_events(&bot, &id, "update").await, 0);
    // A typed status is used as typed (escaped).
    submit(
        &bot,
        &id,
        submission(
            &id,
            "U0ALICE",
            Some("investigating"),
            "Rolling back <b>",
            "EU users",
            "",
        ),
    )
    .await;
    let texts = channel_texts(&bot, &id).await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("*Rolling back &lt;b&gt;*") && t.contains("in 30 minutes")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn an_overdue_update_reminds_the_comms_lead_once_across_two_bots() {
    let w = World::new().await;
    let a = w.bot().await;
    let b = w.bot().await;
    let id = declare(&a, "start Payments failing sev:P2 service:payments").await;
    slash_in(&a, &id, "U0CAROL", "role comms me").await;
    submit(
        &a,
        &id,
        submission(
            &id,
            "U0CAROL",
            Some("investigating"),
            "",
            "Card payments fail",
            "10",
        ),
    )
    .await;

    w.clock.advance(chrono::Duration::minutes(9));
    a_few_ticks().await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(
        reminders(channel_texts(&a, &id).await).is_empty(),
        "not yet"
    );

    w.clock.advance(chrono::Duration::minutes(2));
    eventually("the reminder", || async {
        count_events(&a, &id, "update_reminder").await == 1
    })
    .await;
    w.clock.advance(chrono::Duration::minutes(30));
    a_few_ticks().await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    b.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(
        reminders(channel_texts(&a, &id).await),
        ["⏰ <@U0CAROL>: the next status update on INC-1 is due — post one with `/incident update`."]
    );
    assert_eq!(count_events(&a, &id, "update_reminder").await, 1);
}

#[tokio::test]
async fn a_newer_update_rearms_the_reminder_and_the_ic_gets_it_without_a_comms_lead() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Login broken sev:P2 service:payments").await;
    slash_in(&bot, &id, "U0ALICE", "role ic me").await;
    submit(
        &bot,
        &id,
        submission(
            &id,
            "U0ALICE",
            Some("investigating"),
            "",
            "Nobody can log in",
            "10",
        ),
    )
    .await;
    w.clock.advance(chrono::Duration::minutes(8));
    submit(
        &bot,
        &id,
        submission(
            &id,
            "U0ALICE",
            Some("identified"),
            "",
            "Nobody can log in",
            "10",
        ),
    )
    .await;

    // 12 minutes after the first update (due at 10): its reminder never comes.
    w.clock.advance(chrono::Duration::minutes(4));
    a_few_ticks().await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(reminders(channel_texts(&bot, &id).await).is_empty());
    assert_eq!(count_events(&bot, &id, "update_reminder").await, 0);

    // The newer one's is due 10 minutes after it.
    w.clock.advance(chrono::Duration::minutes(7));
    eventually("the reminder of the newer update", || async {
        count_events(&bot, &id, "update_reminder").await == 1
    })
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let got = reminders(channel_texts(&bot, &id).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("⏰ <@U0ALICE>:"), "{got:?}");
}

#[tokio::test]
async fn no_reminder_after_resolution() {
    let w = World::new().await;
    let bot = w.bot().await;
    let id = declare(&bot, "start Search slow sev:P3 service:search").await;
    submit(
        &bot,
        &id,
        submission(&id, "U0ALICE", Some("monitoring"), "", "Slow search", "10"),
    )
    .await;
    w.clock.advance(chrono::Duration::minutes(3));
    slash_in(&bot, &id, "U0ALICE", "resolved").await;
    w.clock.advance(chrono::Duration::minutes(15));
    eventually("the reminder timer settles", || async {
        let outcome: Option<String> = sqlx::query_scalar(
            "SELECT outcome FROM timers WHERE incident_id = $1 AND kind = 'update_due' AND fired = 1",
        )
        .bind(&id)
        .fetch_optional(&bot.state.db.pool)
        .await
        .unwrap()
        .flatten();
        outcome.as_deref() == Some("not needed: the incident is resolved")
    })
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert!(reminders(channel_texts(&bot, &id).await).is_empty());
    assert_eq!(count_events(&bot, &id, "update_reminder").await, 0);
}
