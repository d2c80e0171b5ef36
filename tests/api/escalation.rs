//! Escalation timers, driven by a manual clock (never by sleeping for minutes): a P1 nobody acknowledges pages the
//! secondary again; an incident left unresolved pages the escalation target. Timers are rows in the database, so
//! they fire after a restart, and exactly once with two bots on one database.

use std::time::Duration;

use incident_bot::standins::harness::Harness;
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{blocks_to_text, Fault};

use crate::helpers::{declare_ready as declare, World};

/// A bot of the world without the reminder of a P1 without a commander (tests/api/roles.rs), which would add its
/// own line at 5 minutes.
async fn bot(w: &World) -> Harness {
    w.bot_with(|s| s.incidents.ic_reminder_minutes = 10_000)
        .await
}

const LIMIT: Duration = Duration::from_secs(20);

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// Waits until `cond` holds, giving the 200 ms timer tick time to run.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets several timer ticks pass.
async fn a_few_ticks() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

async fn channel_lines(bot: &Harness, id: &str) -> Vec<String> {
    let inc = incident_bot::incidents::load(&bot.state.db, id)
        .await
        .unwrap()
        .unwrap();
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
        .iter()
        .filter_map(|m| m.blocks.as_ref())
        .filter(|b| {
            b[0]["block_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("ob:post:"))
        })
        .map(blocks_to_text)
        .collect()
}

fn alert_keys(pager: &PagerStandin) -> Vec<(String, u32)> {
    pager
        .pagerduty_alerts()
        .into_iter()
        .map(|a| (a.dedup_key, a.trigger_count))
        .collect()
}

#[tokio::test]
async fn an_unacknowledged_p1_pages_the_secondary_again_after_five_minutes_and_says_so() {
    let w = World::new().await;
    let bot = bot(&w).await;
    let id = declare(&bot, "start Payments down sev:P1 service:payments").await;
    let first = format!("incident-bot-{id}");
    assert_eq!(alert_keys(&w.pager), vec![(first.clone(), 1)]);

    w.clock.advance(minutes(4) + chrono::Duration::seconds(59));
    a_few_ticks().await;
    assert_eq!(alert_keys(&w.pager).len(), 1, "not yet");

    w.clock.advance(chrono::Duration::seconds(2));
    let again = format!("incident-bot-{id}-escalation-ack");
    eventually("the escalation page", || {
        alert_keys(&w.pager).contains(&(again.clone(), 1))
    })
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let alert = w
        .pager
        .pagerduty_alerts()
        .into_iter()
        .find(|a| a.dedup_key == again)
        .unwrap();
    assert_eq!(alert.severity, "critical");
    assert!(
        alert.summary.contains("not acknowledged within 5m"),
        "{}",
        alert.summary
    );
    let lines = channel_lines(&bot, &id).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("⏰ INC-1 (P1) was not acknowledged within 5m — paged the secondary on-call again for payments"),
        "{}",
        lines[0]
    );
    // It fires once, however long the clock runs on (until the unresolved escalation, which is another page).
    w.clock.advance(minutes(10));
    a_few_ticks().await;
    assert_eq!(
        alert_keys(&w.pager)
            .iter()
            .filter(|(k, _)| k == &again)
            .count(),
        1
    );
    let status = incident_bot::incidents::phases::status_text(
        &bot.state,
        &incident_bot::incidents::load(&bot.state.db, &id)
            .await
            .unwrap()
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(
        status.contains("re-page if not acknowledged: escalated"),
        "{status}"
    );
}

#[tokio::test]
async fn a_p1_acknowledged_in_time_is_not_escalated() {
    let w = World::new().await;
    let bot = bot(&w).await;
    let id = declare(&bot, "start Payments down sev:P1 service:payments").await;
    w.clock.advance(minutes(3));
    assert_eq!(bot.click("U0PAYONC1", "phase_ack", &id).await.unwrap(), 200);
    w.clock.advance(minutes(5));
    a_few_ticks().await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(w.pager.pagerduty_alerts().len(), 1, "only the first page");
    let lines = channel_lines(&bot, &id).await;
    assert_eq!(lines.len(), 1, "only the acknowledgement: {lines:?}");
}

#[tokio::test]
async fn when_the_first_page_never_went_out_the_escalation_pages_with_the_original_key() {
    let w = World::new().await;
    // PagerDuty refuses the first page (a 400 is not retried): the setup step fails.
    w.pager.fail_next("pagerduty", Fault::Status(400));
    let bot = bot(&w).await;
    let id = declare(&bot, "start Payments down sev:P1 service:payments").await;
    let steps = incident_bot::incidents::setup::step_report(&bot.state.db, &id)
        .await
        .unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s.step == "page" && s.state == "failed"),
        "{steps:?}"
    );
    assert!(w.pager.pagerduty_alerts().is_empty());
    w.clock.advance(minutes(6));
    let first = format!("incident-bot-{id}");
    eventually("the page", || {
        alert_keys(&w.pager) == vec![(first.clone(), 1)]
    })
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let lines = channel_lines(&bot, &id).await;
    assert!(
        lines[0].contains("paged the secondary on-call (the first page never went out)"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn an_incident_unresolved_after_thirty_minutes_pages_the_escalation_target() {
    let w = World::new().await;
    let bot = bot(&w).await;
    let id = declare(&bot, "start Slow refunds sev:P2 service:payments").await;
    w.clock.advance(minutes(1));
    assert_eq!(bot.click("U0PAYONC1", "phase_ack", &id).await.unwrap(), 200);
    w.clock.advance(minutes(28));
    a_few_ticks().await;
    assert_eq!(w.pager.pagerduty_alerts().len(), 1, "not yet");
    w.clock.advance(minutes(2));
    let key = format!("incident-bot-{id}-escalation-unresolved");
    eventually("the escalation page", || {
        alert_keys(&w.pager).iter().any(|(k, _)| k == &key)
    })
    .await;
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let alert = w
        .pager
        .pagerduty_alerts()
        .into_iter()
        .find(|a| a.dedup_key == key)
        .unwrap();
    // payments' escalation route is its own PagerDuty routing key (the engineering manager).
    let first = &w.pager.pagerduty_alerts()[0];
    assert_ne!(alert.routing_key, first.routing_key);
    let lines = channel_lines(&bot, &id).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].starts_with(
            "⏰ INC-1 is still unresolved after 30m — paged the escalation target for payments"
        ),
        "{}",
        lines[1]
    );
}

#[tokio::test]
async fn a_resolved_incident_is_not_escalated_and_a_service_without_a_route_says_so() {
    let w = World::new().await;
    let bot = bot(&w).await;
    // search has a pager but no escalation route in the catalog.
    let id = declare(&bot, "start Search slow sev:P3 service:search").await;
    w.clock.advance(minutes(31));
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while lines.is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
        lines = channel_lines(&bot, &id).await;
    }
    assert!(
        lines[0].contains("search has no escalation route in the catalog"),
        "{lines:?}"
    );
    assert_eq!(w.pager.pagerduty_alerts().len(), 1, "only the setup page");
}

#[tokio::test]
async fn timers_survive_a_restart_and_fire_once_with_two_bots_on_one_database() {
    let w = World::new().await;
    let first = bot(&w).await;
    let id = declare(&first, "start Checkout down sev:P1 service:payments").await;
    // The timers are armed within a tick of the declaration; then the first bot goes away.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM timers WHERE incident_id = $1 AND kind NOT LIKE 'stalled_%'",
        )
        .bind(&id)
        .fetch_one(&first.state.db.pool)
        .await
        .unwrap();
        // The acknowledgement and unresolved escalations, and the commander reminder (not the stalled-phase check,
        // tests/api/nudges.rs).
        if n == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timers armed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;

    w.clock.advance(minutes(6));
    let a = bot(&w).await;
    let b = bot(&w).await;
    let key = format!("incident-bot-{id}-escalation-ack");
    eventually("the escalation page", || {
        alert_keys(&w.pager).iter().any(|(k, _)| k == &key)
    })
    .await;
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    b.wait_for_effects(&id, LIMIT).await.unwrap();
    a_few_ticks().await;
    assert_eq!(
        alert_keys(&w.pager),
        vec![(format!("incident-bot-{id}"), 1), (key, 1)],
        "one escalation page, sent once"
    );
    assert_eq!(w.pager.pagerduty_events().len(), 2);
    let lines = channel_lines(&a, &id).await;
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
}
