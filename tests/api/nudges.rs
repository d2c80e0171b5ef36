//! Stalled-phase nudges (SPEC 13), driven by a manual clock: a phase running longer than the team's p90 for it
//! at the incident's severity gets one message in the incident channel (the service's history from 10 resolved
//! incidents, else the severity's; none under 5), with the figure, n, the suspect deploys and a "Page" button that
//! pages the escalation target once. Timers are rows: one message per phase even with two bots on one database.
//! History is seeded as resolved incident rows; p90s are worked out by hand in the comments
//! (PostgreSQL's `percentile_cont`: rank = 0.9·(n−1), interpolated between its neighbours).

use std::time::Duration;

use chrono::{DateTime, Utc};
use incident_bot::clock::Clock;
use incident_bot::domain::phase::{Milestone, Timeline};
use incident_bot::domain::severity::{DetectionMethod, Severity};
use incident_bot::standins::harness::Harness;
use incident_bot::standins::slack::Message;
use incident_bot::store::incidents::{self as store, NewIncident};

use crate::helpers::{
    click_button, declare_done as declare, eventually, first_block_id, incident, text_of, World,
};

const LIMIT: Duration = Duration::from_secs(20);

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// A bot of the world without the other timers that would post in the channel (IC reminder, unresolved
/// escalation).
async fn bot(w: &World) -> Harness {
    w.bot_with(|s| {
        s.incidents.ic_reminder_minutes = 10_000;
        s.incidents.unresolved_escalation_minutes = 10_000;
    })
    .await
}

/// One resolved incident of history: `service`, `severity`, detection 60 min, then triage, remediation and
/// verification of the minutes given, resolved `days_ago` days before `now`.
struct Past {
    service: Option<&'static str>,
    severity: Severity,
    triage: i64,
    remediation: i64,
}

/// Numbers are random: several seeds go into one workspace.
async fn seed(bot: &Harness, now: DateTime<Utc>, past: &[Past]) {
    for (i, p) in past.iter().enumerate() {
        let id = format!("hist-{}", uuid::Uuid::new_v4());
        let started = now - chrono::Duration::days(3) - minutes(i as i64);
        let mut tl = Timeline::new(started, started);
        let ack = started + minutes(60);
        let identified = ack + minutes(p.triage);
        let fixed = identified + minutes(p.remediation);
        for (m, at) in [
            (Milestone::Acknowledged, ack),
            (Milestone::Identified, identified),
            (Milestone::Fixed, fixed),
            (Milestone::Resolved, fixed + minutes(5)),
        ] {
            tl.record(m, at, Some("U0PAST".into())).unwrap();
        }
        let mut tx = bot.state.db.begin_write().await.unwrap();
        store::insert(
            &bot.state.db,
            &mut tx,
            &[NewIncident {
                id: &id,
                team_id: "T0HISTORY",
                number: (uuid::Uuid::new_v4().as_u128() % 1_000_000_000) as i64,
                title: "past incident",
                severity: p.severity,
                service: p.service,
                detection: DetectionMethod::Alert,
                declared_by: "U0PAST",
                origin_channel: None,
                response_url: None,
                started_at: started,
                declared_at: started,
                private: false,
            }],
        )
        .await
        .unwrap();
        assert!(store::save_timeline(&mut tx, &id, 0, &tl).await.unwrap());
        tx.commit().await.unwrap();
    }
}

fn past(service: Option<&'static str>, triage: i64, remediation: i64) -> Past {
    Past {
        service,
        severity: Severity::P2,
        triage,
        remediation,
    }
}

/// The nudges posted in the incident channel, as messages.
async fn nudges(bot: &Harness, id: &str) -> Vec<Message> {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:stalled:"))
        .cloned()
        .collect()
}

/// `/incident <text>` typed by `user` in the incident's channel, after which every effect ran.
async fn slash_in(bot: &Harness, id: &str, text: &str) {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as("U0RESP", &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
}

/// Lets several timer ticks (200 ms) pass, and the posts they queue run.
async fn a_few_ticks(bot: &Harness, id: &str) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    bot.wait_for_effects(id, LIMIT).await.unwrap();
}

/// Ten payments P2 incidents with triage 10, 20, …, 100 min (remediation 60 min), and six P2 incidents of
/// search with triage 1 min, which must not count: payments has its own history.
fn payments_history() -> Vec<Past> {
    let mut v: Vec<Past> = (1..=10)
        .map(|i| past(Some("payments"), 10 * i, 60))
        .collect();
    v.extend((0..6).map(|_| past(Some("search"), 1, 1)));
    v
}

#[tokio::test]
async fn a_triage_past_the_services_own_p90_is_nudged_once_across_two_bots_and_pages_once() {
    let w = World::new().await;
    let a = bot(&w).await;
    let b = bot(&w).await;
    seed(&a, w.clock.now(), &payments_history()).await;
    // A suspect deploy: to auth (a dependency of payments) an hour before impact, with a link.
    let (status, _) = deploy(
        &a,
        serde_json::json!({ "id": "d-auth", "service": "auth", "version": "v9.1.0", "author": "bob",
            "url": "https://ci.acme.example/auth/77", "deployed_at": (w.clock.now() - minutes(60)).to_rfc3339() }),
    )
    .await;
    assert_eq!(status, 201);
    let id = declare(&a, "start Payments failing sev:P2 service:payments").await;
    w.clock.advance(minutes(1));
    slash_in(&a, &id, "ack").await;

    // Payments triage 10, 20, …, 100 min: rank 0.9·9 = 8.1 → 90 + 0.1·(100 − 90) = 91 min. (The severity's
    // history, with search's six 1-minute triages, would give far less.)
    w.clock.advance(minutes(90));
    a_few_ticks(&a, &id).await;
    assert!(nudges(&a, &id).await.is_empty(), "90 min is not past 91");

    w.clock.advance(minutes(1) + chrono::Duration::seconds(5));
    eventually("the triage nudge", || async {
        nudges(&a, &id).await.len() == 1
    })
    .await;
    let nudge = nudges(&a, &id).await.remove(0);
    let text = text_of(&nudge);
    assert!(
        text.contains("*Triage* has been running for *1h 31m*"),
        "{text}"
    );
    assert!(
        text.contains("*payments* P2 incidents (p90 1h 31m, n = 10)"),
        "{text}"
    );
    assert!(
        text.contains("*auth* (dependency) `v9.1.0` by bob"),
        "{text}"
    );
    assert!(text.contains("[Page escalation target]"), "{text}");
    let blocks = nudge.blocks.clone().unwrap();
    let actions = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"]
        .clone();
    assert_eq!(actions[1]["url"], "https://ci.acme.example/auth/77");
    assert_eq!(actions[1]["text"]["text"], "Open deploy");

    // Later ticks on either bot never nudge triage again.
    w.clock.advance(minutes(30));
    a_few_ticks(&b, &id).await;
    assert_eq!(nudges(&a, &id).await.len(), 1);

    // Two clicks on "Page escalation target" (one on each bot, at once): one page.
    let page = actions[0]["value"].as_str().unwrap().to_string();
    assert_eq!(page, format!("{id}|triage"));
    let (s1, s2) = tokio::join!(
        click_button(&a, "U0ALICE", &id, "stalled_page", &page),
        click_button(&b, "U0BOB", &id, "stalled_page", &page)
    );
    assert_eq!((s1, s2), (200, 200));
    a.wait_for_effects(&id, LIMIT).await.unwrap();
    let key = format!("incident-bot-{id}-escalation-stalled-triage");
    eventually("the escalation page", || async {
        w.pager
            .pagerduty_alerts()
            .iter()
            .any(|p| p.dedup_key == key)
    })
    .await;
    assert_eq!(
        click_button(&a, "U0ALICE", &id, "stalled_page", &page).await,
        200
    );
    a_few_ticks(&a, &id).await;
    let pages: Vec<_> = w
        .pager
        .pagerduty_alerts()
        .into_iter()
        .filter(|p| p.dedup_key == key)
        .collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].trigger_count, 1, "paged once");

    // Remediation is a phase of its own: payments' remediations all took 60 min (p90 60 min).
    slash_in(&a, &id, "identified").await;
    w.clock.advance(minutes(61));
    eventually("the remediation nudge", || async {
        nudges(&a, &id).await.len() == 2
    })
    .await;
    let second = text_of(&nudges(&a, &id).await[1]);
    assert!(
        second.contains("*Remediation* has been running for *1h 01m*"),
        "{second}"
    );
    assert!(second.contains("(p90 1h 00m, n = 10)"), "{second}");
    w.clock.advance(minutes(60));
    a_few_ticks(&b, &id).await;
    assert_eq!(nudges(&a, &id).await.len(), 2, "one message per phase");
}

#[tokio::test]
async fn under_ten_incidents_of_the_service_the_severitys_history_is_used() {
    let w = World::new().await;
    let bot = bot(&w).await;
    // Nine payments P2 incidents with triage 10 min, six checkout P2 incidents with triage 40 min, and a P1 of
    // payments (another severity: not counted). The severity's fifteen, sorted: 10 ×9, 40 ×6; rank 0.9·14 = 12.6
    // → between the 13th and 14th (both 40) = 40 min. Payments' own nine would have said 10 min.
    let mut history: Vec<Past> = (0..9).map(|_| past(Some("payments"), 10, 60)).collect();
    history.extend((0..6).map(|_| past(Some("checkout"), 40, 60)));
    history.push(Past {
        severity: Severity::P1,
        ..past(Some("payments"), 1, 1)
    });
    seed(&bot, w.clock.now(), &history).await;
    let id = declare(&bot, "start Payments slow sev:P2 service:payments").await;
    w.clock.advance(minutes(1));
    slash_in(&bot, &id, "ack").await;

    w.clock.advance(minutes(39));
    a_few_ticks(&bot, &id).await;
    assert!(nudges(&bot, &id).await.is_empty(), "39 min is under 40");
    w.clock.advance(minutes(2));
    eventually("the triage nudge", || async {
        nudges(&bot, &id).await.len() == 1
    })
    .await;
    let text = text_of(&nudges(&bot, &id).await[0]);
    assert!(text.contains("in P2 incidents (p90 40m, n = 15)"), "{text}");
    assert!(
        text.contains("*Suspect deploys* (since 2 h before impact): none"),
        "{text}"
    );
}

#[tokio::test]
async fn no_nudge_with_fewer_than_five_durations_nor_for_a_phase_that_ended_before_its_p90() {
    let w = World::new().await;
    let bot = bot(&w).await;
    // Four P2 incidents (any service): n = 4 < 5, never a nudge however long triage runs.
    let history: Vec<Past> = (0..4).map(|_| past(Some("payments"), 10, 60)).collect();
    seed(&bot, w.clock.now(), &history).await;
    let few = declare(&bot, "start Search odd sev:P2 service:search").await;
    w.clock.advance(minutes(1));
    slash_in(&bot, &few, "ack").await;
    w.clock.advance(minutes(600));
    a_few_ticks(&bot, &few).await;
    assert!(nudges(&bot, &few).await.is_empty());

    // Now eleven more payments incidents (fifteen): triage 10 min ×15 → p90 10 min; remediation 60 min ×15.
    let more: Vec<Past> = (0..11).map(|_| past(Some("payments"), 10, 60)).collect();
    seed(&bot, w.clock.now(), &more).await;
    let id = declare(&bot, "start Payments errors sev:P2 service:payments").await;
    w.clock.advance(minutes(1));
    slash_in(&bot, &id, "ack").await;
    w.clock.advance(minutes(8));
    a_few_ticks(&bot, &id).await;
    // Triage ends at 8 min, before its p90 (10 min); remediation then runs 30 min of its 60.
    slash_in(&bot, &id, "identified").await;
    w.clock.advance(minutes(30));
    a_few_ticks(&bot, &id).await;
    assert!(
        nudges(&bot, &id).await.is_empty(),
        "triage ended in time, remediation is under its p90"
    );
    // Resolved: nothing ever again.
    slash_in(&bot, &id, "resolved").await;
    w.clock.advance(minutes(120));
    a_few_ticks(&bot, &id).await;
    assert!(nudges(&bot, &id).await.is_empty());
}

#[tokio::test]
async fn nudges_switched_off_by_config_post_nothing() {
    let w = World::new().await;
    let bot = w
        .bot_with(|s| {
            s.incidents.ic_reminder_minutes = 10_000;
            s.incidents.unresolved_escalation_minutes = 10_000;
            s.incidents.stalled_phase_percentile = 0.0;
        })
        .await;
    seed(&bot, w.clock.now(), &payments_history()).await;
    let id = declare(&bot, "start Payments failing sev:P2 service:payments").await;
    w.clock.advance(minutes(1));
    slash_in(&bot, &id, "ack").await;
    w.clock.advance(minutes(300));
    a_few_ticks(&bot, &id).await;
    assert!(nudges(&bot, &id).await.is_empty());
}

async fn deploy(bot: &Harness, body: serde_json::Value) -> (u16, serde_json::Value) {
    let resp = bot
        .http
        .post(format!("{}/api/v1/deploys", bot.base_url))
        .bearer_auth("harness-deploy-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_corrected_phase_start_moves_the_nudge() {
    let w = World::new().await;
    let bot = bot(&w).await;
    seed(&bot, w.clock.now(), &payments_history()).await;
    let id = declare(&bot, "start Payments failing sev:P2 service:payments").await;
    w.clock.advance(minutes(50));
    slash_in(&bot, &id, "ack").await;
    // Triage has run 60 min of its 91 (payments' p90, see the first test): nothing yet.
    w.clock.advance(minutes(60));
    a_few_ticks(&bot, &id).await;
    assert!(nudges(&bot, &id).await.is_empty());
    // The acknowledgement really came 40 minutes earlier (09:10): triage has run 100 min, past its p90.
    slash_in(&bot, &id, "set acknowledged 2026-11-25T09:10:00Z").await;
    assert_eq!(
        incident(&bot, &id).await.timeline.acknowledged.unwrap().at,
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, 9, 10, 0).unwrap()
    );
    eventually("the nudge after the correction", || async {
        nudges(&bot, &id).await.len() == 1
    })
    .await;
    let text = text_of(&nudges(&bot, &id).await[0]);
    assert!(text.contains("has been running for *1h 40m*"), "{text}");
}
