//! Weekly digests through the real server: `/incident digest` on demand, scheduled digests posted exactly once
//! by two bots on one database, catch-up of a slot missed while the bot was down, and resuming an interrupted
//! post without doubling it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use incident_bot::clock::{Clock, ManualClock};
use incident_bot::config::{DigestSettings, Settings};
use incident_bot::db::ms;
use incident_bot::digest::runs;
use incident_bot::standins::harness::{settings_for, Harness};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{Fault, Message, SlackStandin};
use serde_json::Value;

use crate::helpers::{fresh_database_url, spawn_app_with};

/// Stores a Slack-declared incident; `phases` are minutes per phase (all four → resolved), `None` → open.
#[allow(clippy::too_many_arguments)]
async fn incident(
    h: &Harness,
    n: i64,
    severity: &str,
    service: &str,
    via: &str,
    started: DateTime<Utc>,
    phases: Option<[i64; 4]>,
) {
    let mut stamps: [Option<i64>; 4] = [None; 4];
    if let Some(p) = phases {
        let mut t = started;
        for (s, m) in stamps.iter_mut().zip(p) {
            t += chrono::Duration::minutes(m);
            *s = Some(ms(t));
        }
    }
    sqlx::query(
        "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
             channel_id, started_at, declared_at, acknowledged_at, identified_at, fixed_at, resolved_at)
         VALUES ($1, 'T0001', $2, $3, $4, $5, $6, 'U1', $7, $8, $8, $9, $10, $11, $12)",
    )
    .bind(format!("test-{n}"))
    .bind(n)
    .bind(format!("Outage number {n}"))
    .bind(severity)
    .bind(service)
    .bind(via)
    .bind(format!("CINC{n:05}"))
    .bind(ms(started))
    .bind(stamps[0])
    .bind(stamps[1])
    .bind(stamps[2])
    .bind(stamps[3])
    .execute(&h.state.db.pool)
    .await
    .expect("insert incident");
}

async fn deploy(h: &Harness, service: &str, at: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO deploys (id, service, environment, version, deployed_at, source, received_at)
         VALUES ($1, $2, 'production', 'v1', $3, 'test', $3)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(service)
    .bind(ms(at))
    .execute(&h.state.db.pool)
    .await
    .expect("insert deploy");
}

fn digest_messages(slack: &SlackStandin, channel: &str) -> Vec<Message> {
    slack
        .channel_by_name(channel)
        .map(|c| c.messages)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.blocks.as_ref().is_some_and(|b| {
                b[0]["text"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Incident digest"))
            })
        })
        .collect()
}

/// Waits until `channel` has `digests` digest messages and `charts` charts shared to it.
async fn wait_for(slack: &SlackStandin, channel: &str, digests: usize, charts: usize) {
    let id = slack.channel_by_name(channel).expect("channel").id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = digest_messages(slack, channel).len();
        let c = slack
            .uploaded_files()
            .iter()
            .filter(|f| f.channel_id == id)
            .count();
        if d >= digests && c >= charts {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {digests} digests and {charts} charts in #{channel}, have {d} and {c}:\n{}",
            slack.render_channel(channel)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every Web API call used a real Slack method and real argument names (as `TestApp` checks on drop).
fn assert_real_slack_calls(slack: &SlackStandin) {
    crate::openapi::SlackSpec::load()
        .expect("spec")
        .assert_conforms(&slack.calls());
}

fn digest_cfg(channel: &str) -> DigestSettings {
    DigestSettings {
        channel: channel.into(),
        day: "monday".into(),
        time: "09:00".into(),
        timezone: "Europe/Berlin".into(),
        team: None,
        service: None,
    }
}

#[tokio::test]
async fn on_demand_digest_posts_the_figures_and_a_chart_in_the_channel() {
    let app = spawn_app_with(|_| {}).await;
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    // This week: 3 P1s (2 customer-reported: 67 % > 20 %), one P2 with a deploy an hour before, one still open.
    incident(
        &app,
        1,
        "P1",
        "payments",
        "customer",
        now - day * 2,
        Some([5, 10, 10, 5]),
    )
    .await;
    incident(
        &app,
        2,
        "P1",
        "payments",
        "customer",
        now - day * 3,
        Some([10, 20, 20, 10]),
    )
    .await;
    incident(
        &app,
        3,
        "P1",
        "checkout",
        "alert",
        now - day * 4,
        Some([15, 30, 30, 15]),
    )
    .await;
    incident(
        &app,
        4,
        "P2",
        "search",
        "engineer",
        now - day,
        Some([10, 10, 10, 10]),
    )
    .await;
    deploy(&app, "search", now - day - chrono::Duration::hours(1)).await;
    incident(
        &app,
        5,
        "P3",
        "search",
        "alert",
        now - chrono::Duration::hours(3),
        None,
    )
    .await;
    // The week before: one P1 of 4 hours.
    incident(
        &app,
        6,
        "P1",
        "payments",
        "alert",
        now - day * 10,
        Some([60, 60, 60, 60]),
    )
    .await;

    let (status, reply) = app.slash("digest").await.expect("slash");
    assert_eq!(status, 200);
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or_default()
            .contains("digest"),
        "{reply}"
    );
    wait_for(&app.slack, "general", 1, 1).await;

    let text = app.slack.render_channel("general");
    assert!(text.contains("Incidents:* 5 (▲ 4 from 1)"), "{text}");
    // P1: 30m, 60m, 90m → mean and median 1h 00m (High), against 4h the week before.
    assert!(
        text.contains("P1 · incidents 3 (▲ 2 from 1) · mean 1h 00m (▼ 3h 00m from 4h 00m) · median 1h 00m (▼ 3h 00m from 4h 00m) · tier *High* (was Medium)"),
        "{text}"
    );
    assert!(
        text.contains("2 of 3 P1s (67 %) were reported by customers"),
        "{text}"
    );
    assert!(
        text.contains("Deploy in the 2 hours before:* 1 of 5 incidents"),
        "{text}"
    );
    // Distributions: 4 resolved incidents with phases are not enough for a p50/p90; the one production deploy
    // landed an hour before INC-4 on its service, so it failed, and it recovered with INC-4's resolution.
    assert!(
        text.contains("Verification ██░░░░░░░░ 19 %` (▼ 6 pts from 25 %) · slowest in 0 (= from 0) · mean 10m · not enough data (n 4)"),
        "{text}"
    );
    assert!(
        text.contains("Change-failure rate:* 1 of 1 production deploys (100.0 %)"),
        "{text}"
    );
    assert!(
        text.contains("Failed-deployment recovery time:* not enough data (n 1)"),
        "{text}"
    );
    assert!(text.contains("Still open:* 1"), "{text}");
    assert!(text.contains("INC-5 Outage number 5"), "{text}");
    assert!(text.contains("Mon–Fri 09:00–18:00 UTC"), "{text}");
    assert!(text.contains("Services:* checkout 1h 30m"), "{text}");

    // The chart went through the external upload flow, as a PNG, into #general.
    let files = app.slack.uploaded_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].channel_id, "CGENERAL");
    assert_eq!(&files[0].bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        files[0].title.starts_with("MTTR per phase"),
        "{}",
        files[0].title
    );
    let get_url = app.slack.calls_to("files.getUploadURLExternal");
    assert_eq!(get_url.len(), 1);
    assert_eq!(get_url[0].params["filename"], "mttr-per-phase.png");
    assert_eq!(
        get_url[0].params["length"],
        Value::String(files[0].bytes.len().to_string())
    );
    let complete = app.slack.calls_to("files.completeUploadExternal");
    assert_eq!(complete.len(), 1);
    assert_eq!(complete[0].params["channel_id"], "CGENERAL");
    assert!(complete[0].params["files"][0]["id"].as_str().is_some());
    assert!(complete[0].params["initial_comment"]
        .as_str()
        .is_some_and(|c| c.starts_with("MTTR per phase")));
    assert_eq!(
        app.slack.count("files.upload"),
        0,
        "the retired method is not used"
    );
}

#[tokio::test]
async fn the_digest_gives_p50_and_p90_per_phase_and_the_change_failure_rate() {
    let app = spawn_app_with(|_| {}).await;
    let now = Utc::now();
    // Five P1s on payments, a day apart, triage 10, 20, 30, 40 and 100 min (p50 30m, p90 40 + 0.6 × 60 = 1h 16m),
    // each an hour after a deploy to payments; one more deploy to search, followed by nothing.
    for (k, triage) in [10i64, 20, 30, 40, 100].into_iter().enumerate() {
        let started = now - chrono::Duration::days(k as i64 + 1);
        incident(
            &app,
            k as i64 + 1,
            "P1",
            "payments",
            "alert",
            started,
            Some([5, triage, 5, 5]),
        )
        .await;
        deploy(&app, "payments", started - chrono::Duration::hours(1)).await;
    }
    deploy(&app, "search", now - chrono::Duration::days(6)).await;
    let (status, _) = app.slash("digest").await.expect("slash");
    assert_eq!(status, 200);
    wait_for(&app.slack, "general", 1, 1).await;
    let text = app.slack.render_channel("general");
    assert!(
        text.contains("mean 40m · p50 30m · p90 1h 16m (n 5)"),
        "triage: {text}"
    );
    // MTTR 25, 35, 45, 55, 115 min: p50 45m, p90 55 + 0.6 × 60 = 1h 31m.
    assert!(text.contains("p50 45m · p90 1h 31m (n 5)"), "P1: {text}");
    assert!(
        text.contains("Change-failure rate:* 5 of 6 production deploys (83.3 %)"),
        "{text}"
    );
    // Recovery = 1 h + MTTR: 85, 95, 105, 115, 175 min → p50 1h 45m, p90 115 + 0.6 × 60 = 2h 31m.
    assert!(
        text.contains("Failed-deployment recovery time:* p50 1h 45m · p90 2h 31m (n 5)"),
        "{text}"
    );
}

#[tokio::test]
async fn on_demand_digest_uses_the_channels_configured_filter() {
    let app = spawn_app_with(|s| {
        s.digests = vec![DigestSettings {
            service: Some("payments".into()),
            ..digest_cfg("#general")
        }];
    })
    .await;
    let now = Utc::now();
    incident(
        &app,
        1,
        "P2",
        "payments",
        "alert",
        now - chrono::Duration::hours(30),
        Some([5, 5, 5, 5]),
    )
    .await;
    incident(
        &app,
        2,
        "P2",
        "search",
        "alert",
        now - chrono::Duration::hours(20),
        Some([5, 5, 5, 5]),
    )
    .await;
    app.slash("digest").await.expect("slash");
    wait_for(&app.slack, "general", 1, 1).await;
    let text = app.slack.render_channel("general");
    assert!(
        text.contains("Incident digest · service payments"),
        "{text}"
    );
    assert!(text.contains("Incidents:* 1 (▲ 1 from 0)"), "{text}");
    assert!(text.contains("(Europe/Berlin)"), "{text}");
}

#[tokio::test]
async fn a_digest_with_no_incidents_has_no_chart() {
    let app = spawn_app_with(|_| {}).await;
    app.slash("digest").await.expect("slash");
    wait_for(&app.slack, "general", 1, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.uploaded_files().is_empty());
    assert!(app
        .slack
        .render_channel("general")
        .contains("Incidents:* 0 (= from 0)"));
}

/// Two bots on one database and one Slack workspace, with a shared clock.
async fn two_bots(
    clock: Arc<ManualClock>,
    tweak: impl Fn(&mut Settings),
) -> (Harness, Harness, SlackStandin) {
    let slack = SlackStandin::start().await.expect("slack");
    slack.create_channel("team-payments");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = fresh_database_url().await;
    let mut bots = Vec::new();
    for _ in 0..2 {
        let mut s = settings_for(&slack, &pager, &db_url);
        s.digests = vec![digest_cfg("#team-payments")];
        tweak(&mut s);
        bots.push(
            Harness::start_with(
                s,
                slack.clone(),
                pager.clone(),
                clock.clone() as Arc<dyn Clock>,
            )
            .await
            .expect("bot"),
        );
    }
    let b = bots.pop().expect("two");
    let a = bots.pop().expect("two");
    (a, b, slack)
}

fn berlin_monday_0905() -> DateTime<Utc> {
    // Monday 23 November 2026, 09:05 in Berlin (CET) = 08:05 UTC.
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 5, 0).unwrap()
}

#[tokio::test]
async fn two_bots_on_one_database_post_each_scheduled_digest_once() {
    let clock = Arc::new(ManualClock::new(
        berlin_monday_0905() - chrono::Duration::minutes(10),
    ));
    let (a, b, slack) = two_bots(clock.clone(), |_| {}).await;
    incident(
        &a,
        1,
        "P1",
        "payments",
        "alert",
        berlin_monday_0905() - chrono::Duration::days(2),
        Some([5, 5, 5, 5]),
    )
    .await;
    // Before 09:00 local nothing is due: the latest slot is last Monday's, which is posted (catch-up) once.
    wait_for(&slack, "team-payments", 1, 0).await;
    clock.set(berlin_monday_0905());
    wait_for(&slack, "team-payments", 2, 1).await;
    // Let both bots tick many more times.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let digests = digest_messages(&slack, "team-payments");
    assert_eq!(
        digests.len(),
        2,
        "{}",
        slack.render_channel("team-payments")
    );
    let text = slack.render_channel("team-payments");
    assert!(text.contains("09 Nov – 16 Nov 2026"), "{text}");
    assert!(text.contains("16 Nov – 23 Nov 2026"), "{text}");
    assert_eq!(
        slack.uploaded_files().len(),
        1,
        "only the week with an incident has a chart"
    );
    let stored = runs::list(&a.state.db).await.expect("runs");
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|r| r.state == "done" && r.attempts == 1),
        "{stored:?}"
    );
    assert_eq!(slack.count("chat.postMessage"), 2);
    assert_real_slack_calls(&slack);
    drop(b);
}

#[tokio::test]
async fn a_slot_missed_while_the_bot_was_down_is_posted_once_when_it_comes_back() {
    let slack = SlackStandin::start().await.expect("slack");
    slack.create_channel("team-payments");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = fresh_database_url().await;
    // Down over Monday 09:00; back on Wednesday.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap(),
    ));
    let start = |clock: Arc<ManualClock>| {
        let mut s = settings_for(&slack, &pager, &db_url);
        s.digests = vec![digest_cfg("team-payments")];
        Harness::start_with(s, slack.clone(), pager.clone(), clock as Arc<dyn Clock>)
    };
    let bot = start(clock.clone()).await.expect("bot");
    wait_for(&slack, "team-payments", 1, 0).await;
    let text = slack.render_channel("team-payments");
    assert!(
        text.contains("Mon 16 Nov 09:00 – Mon 23 Nov 2026 09:00 (Europe/Berlin)"),
        "{text}"
    );
    // A restart does not post it again, and older slots are not caught up.
    drop(bot);
    let bot = start(clock.clone()).await.expect("bot again");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(digest_messages(&slack, "team-payments").len(), 1);
    // The next Monday's slot is posted when it comes.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 30).unwrap());
    wait_for(&slack, "team-payments", 2, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(digest_messages(&slack, "team-payments").len(), 2);
    assert_real_slack_calls(&slack);
    drop(bot);
}

#[tokio::test]
async fn a_failed_chart_upload_is_retried_without_posting_the_figures_again() {
    let clock = Arc::new(ManualClock::new(berlin_monday_0905()));
    let slack = SlackStandin::start().await.expect("slack");
    slack.create_channel("team-payments");
    slack.fail_next("files.completeUploadExternal", Fault::Status(500));
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = fresh_database_url().await;
    let mut s = settings_for(&slack, &pager, &db_url);
    s.digests = vec![digest_cfg("#team-payments")];
    let bot = Harness::start_with(s, slack.clone(), pager, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("bot");
    incident(
        &bot,
        1,
        "P2",
        "payments",
        "alert",
        berlin_monday_0905() - chrono::Duration::days(1),
        Some([5, 5, 5, 5]),
    )
    .await;
    // The retry waits for its backoff on the bot's clock.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while slack.uploaded_files().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            slack.render_channel("team-payments")
        );
        clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(digest_messages(&slack, "team-payments").len(), 1);
    assert_eq!(slack.uploaded_files().len(), 1);
    let stored = runs::list(&bot.state.db).await.expect("runs");
    assert_eq!(stored[0].state, "done");
    assert_eq!(stored[0].attempts, 2);
    assert!(stored[0].message_ts.is_some() && stored[0].chart_file_id.is_some());
    assert_real_slack_calls(&slack);
}

#[tokio::test]
async fn a_digest_whose_answer_was_lost_is_found_again_not_posted_twice() {
    let clock = Arc::new(ManualClock::new(berlin_monday_0905()));
    let slack = SlackStandin::start().await.expect("slack");
    slack.create_channel("team-payments");
    // Slack posts the message, then the connection drops before the answer arrives.
    slack.fail_next("chat.postMessage", Fault::Drop);
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = fresh_database_url().await;
    let mut s = settings_for(&slack, &pager, &db_url);
    s.digests = vec![digest_cfg("#team-payments")];
    let bot = Harness::start_with(s, slack.clone(), pager, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("bot");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored = runs::list(&bot.state.db).await.expect("runs");
        if stored.first().is_some_and(|r| r.state == "done") {
            assert_eq!(stored[0].attempts, 2);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stored:?}");
        clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(digest_messages(&slack, "team-payments").len(), 1);
    assert!(
        slack.count("conversations.history") >= 1,
        "the retry looked before posting"
    );
    assert_real_slack_calls(&slack);
}

#[tokio::test]
async fn a_replica_that_hangs_mid_post_is_taken_over_after_its_lease_and_not_doubled() {
    replica_stopped_mid_post(Stopped::HungAlive).await;
}

#[tokio::test]
async fn a_replica_that_died_mid_post_is_taken_over_once_its_heartbeat_is_stale_and_not_doubled() {
    replica_stopped_mid_post(Stopped::Died).await;
}

/// How the replica that claimed a digest stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// Still heartbeating but never finishing: only its lease (on the bot's clock) frees the digest.
    HungAlive,
    /// Gone: its heartbeat goes stale (on the wall clock) and the digest is taken over without the lease.
    Died,
}

async fn replica_stopped_mid_post(how: Stopped) {
    let clock = Arc::new(ManualClock::new(berlin_monday_0905()));
    let slack = SlackStandin::start().await.expect("slack");
    let channel = slack.create_channel("team-payments");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = fresh_database_url().await;
    let mut s = settings_for(&slack, &pager, &db_url);
    s.digests = vec![digest_cfg("#team-payments")];
    let schedule = incident_bot::digest::schedule::Schedule::parse(&s.digests[0]).expect("valid");
    let period = schedule.period_of(schedule.latest_slot(berlin_monday_0905()));
    let key = runs::RunKey {
        channel: schedule.channel.clone(),
        scope: schedule.scope(),
        period_start: period.start,
    };
    // Another replica claimed the digest a moment ago, posted the message, and stopped before storing anything.
    let db = incident_bot::db::Db::connect(&db_url).await.expect("db");
    db.migrate().await.expect("migrate");
    let now = berlin_monday_0905();
    let heart = incident_bot::store::lease::beat(&db, "dead-replica");
    heart.await.expect("the other replica's last heartbeat");
    let alive = (how == Stopped::HungAlive).then(|| {
        tokio::spawn(incident_bot::store::lease::beat_forever(
            db.clone(),
            "dead-replica".to_string(),
        ))
    });
    assert!(matches!(
        runs::claim(&db, &key, period, "dead-replica", now, 60_000)
            .await
            .expect("claim"),
        runs::Claim::Mine(_)
    ));
    let bot = Harness::start_with(s, slack.clone(), pager, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("bot");
    incident(
        &bot,
        1,
        "P2",
        "payments",
        "alert",
        now - chrono::Duration::days(1),
        Some([5, 5, 5, 5]),
    )
    .await;
    bot.state
        .slack
        .call(
            "chat.postMessage",
            serde_json::json!({
                "channel": channel,
                "text": "Incident digest",
                "blocks": [{ "type": "header", "block_id": key.tag(), "text": { "type": "plain_text", "text": "📊 Incident digest" } }],
            }),
        )
        .await
        .expect("the dead replica's post");
    // While it heartbeats and its lease lasts, nobody else touches the digest.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(digest_messages(&slack, "team-payments").len(), 1);
    assert!(slack.uploaded_files().is_empty());
    match how {
        Stopped::HungAlive => {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            assert!(slack.uploaded_files().is_empty(), "alive: still its own");
            // After the lease, this bot takes over: it finds the message and adds only the chart.
            clock.advance(chrono::Duration::minutes(2));
        }
        // Its heartbeat goes stale on its own: the lease (60 s on the bot's clock, which stands still) is not
        // what frees the digest.
        Stopped::Died => {}
    }
    wait_for(&slack, "team-payments", 1, 1).await;
    if let Some(beating) = alive {
        beating.abort();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(digest_messages(&slack, "team-payments").len(), 1);
    let stored = runs::list(&db).await.expect("runs");
    assert_eq!((stored[0].state.as_str(), stored[0].attempts), ("done", 2));
    assert_real_slack_calls(&slack);
}
