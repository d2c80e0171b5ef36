//! Phase buttons and commands, the pinned card, timeline lines, corrections, the MTTR summary, reopen and close.
//! Everything goes through the real HTTP server with signed Slack requests; Slack is the stand-in.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use incident_bot::clock::{Clock, ManualClock};
use incident_bot::standins::slack::{blocks_to_text, Channel, Message, INCIDENTS_CHANNEL_ID};
use serde_json::Value;

use crate::helpers::{
    declare_done as declare, first_block_id, fresh_database_url, incident, responses, spawn_app,
    TestApp,
};
use incident_bot::standins::harness::{settings_for, Harness};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::SlackStandin;

const LIMIT: Duration = Duration::from_secs(20);

/// 2026-11-25 14:00 UTC (15:00 in Berlin).
fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap()
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// A bot on a manual clock, with the escalation timers pushed out of the way (tests/api/escalation.rs covers
/// them): these tests move the clock past 30 minutes and expect only the lines their own clicks cause.
async fn spawn_clocked(clock: Arc<ManualClock>) -> TestApp {
    let slack = SlackStandin::start().await.unwrap();
    let pager = PagerStandin::start().await.unwrap();
    let db_url = fresh_database_url().await;
    let mut settings = settings_for(&slack, &pager, &db_url);
    settings.incidents.p1_ack_escalation_minutes = 10_000;
    settings.incidents.unresolved_escalation_minutes = 10_000;
    settings.incidents.ic_reminder_minutes = 10_000;
    let clock: Arc<dyn Clock> = clock;
    let h = Harness::start_with(settings, slack, pager, clock)
        .await
        .unwrap();
    TestApp { h, db_url }
}

/// Slack's `<!date^…|fallback>` replaced by the fallback, for readable assertions.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("<!date^") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find('>') else { break };
        out.push_str(tail[..end].rsplit('|').next().unwrap_or_default());
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn channel(app: &TestApp, id: &str) -> Channel {
    let inc = incident(app, id).await;
    app.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
}

fn text_of(m: &Message) -> String {
    plain(&m.blocks.as_ref().map(blocks_to_text).unwrap_or_default())
}

async fn card(app: &TestApp, id: &str) -> (String, u32) {
    let ch = channel(app, id).await;
    let pinned: Vec<&Message> = ch
        .messages
        .iter()
        .filter(|m| ch.pins.contains(&m.ts))
        .collect();
    assert_eq!(pinned.len(), 1, "one pinned card");
    (text_of(pinned[0]), pinned[0].edited)
}

/// Timeline lines posted in the incident channel, in order.
async fn lines(app: &TestApp, id: &str) -> Vec<String> {
    channel(app, id)
        .await
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:post:"))
        .map(text_of)
        .collect()
}

/// MTTR summaries in a channel.
fn summaries(ch: &Channel) -> Vec<String> {
    ch.messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:summary:"))
        .map(text_of)
        .collect()
}

fn broadcast(app: &TestApp) -> Channel {
    app.slack.channel_by_name(INCIDENTS_CHANNEL_ID).unwrap()
}

async fn click(app: &TestApp, user: &str, action: &str, id: &str) {
    assert_eq!(app.click(user, action, id).await.unwrap(), 200);
    app.wait_for_effects(id, LIMIT).await.unwrap();
}

async fn slash_in(app: &TestApp, id: &str, user: &str, text: &str) -> String {
    let ch = incident(app, id).await.channel_id.unwrap();
    let (status, reply) = app.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    app.wait_for_effects(id, LIMIT).await.unwrap();
    plain(reply["text"].as_str().unwrap_or_default())
}

async fn wait_for_response(app: &TestApp, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(r) = responses(app).into_iter().find(|r| r.contains(needle)) {
            return plain(&r);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no response containing {needle:?}: {:?}",
            responses(app)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count_events(app: &TestApp, id: &str, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM timeline_events WHERE incident_id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_button_records_its_phase_updates_the_card_in_place_and_posts_one_line() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let id = declare(&app, "start Card payments failing sev:P2 service:payments").await;
    let (before, _) = card(&app, &id).await;
    assert!(before.contains("[Acknowledge]"), "{before}");

    clock.advance(minutes(4));
    click(&app, "U0PAYONC1", "phase_ack", &id).await;
    let (c, edits) = card(&app, &id).await;
    assert!(edits >= 1, "updated in place");
    assert!(
        c.contains("*Detection*: 4m · <@U0PAYONC1> 2026-11-25 14:04 UTC"),
        "{c}"
    );
    assert!(c.contains("Acknowledged"), "{c}");
    assert!(
        !c.contains("[Acknowledge]"),
        "no Acknowledge button any more: {c}"
    );
    assert_eq!(
        lines(&app, &id).await,
        vec!["✋ <@U0PAYONC1> acknowledged at 14:04 UTC — detection took 4m"]
    );

    clock.advance(minutes(18));
    click(&app, "U0PAYOWN1", "phase_identified", &id).await;
    clock.advance(minutes(12));
    click(&app, "U0PAYOWN1", "phase_fixed", &id).await;
    clock.advance(minutes(9));
    click(&app, "U0PAYONC1", "phase_resolved", &id).await;

    let (c, _) = card(&app, &id).await;
    for want in [
        "*Triage*: 18m · <@U0PAYOWN1> 2026-11-25 14:22 UTC",
        "*Remediation*: 12m · <@U0PAYOWN1> 2026-11-25 14:34 UTC",
        "*Verification*: 9m · <@U0PAYONC1> 2026-11-25 14:43 UTC",
        "*MTTR*: 43m",
        "Monitoring",
        "[Reopen]",
    ] {
        assert!(c.contains(want), "{want}: {c}");
    }
    assert!(!c.contains("[Resolved]"), "{c}");
    let l = lines(&app, &id).await;
    assert_eq!(l.len(), 4, "{l:?}");
    assert_eq!(
        l[1],
        "🔍 <@U0PAYOWN1> identified the root cause at 14:22 UTC — triage took 18m"
    );
    assert!(
        l[3].starts_with(
            "✅ <@U0PAYONC1> resolved INC-1 at 14:43 UTC — verification took 9m · *MTTR 43m*"
        ),
        "{}",
        l[3]
    );

    // The summary, in the incident channel and in the broadcast channel.
    let own = summaries(&channel(&app, &id).await);
    let bc = summaries(&broadcast(&app));
    assert_eq!((own.len(), bc.len()), (1, 1), "{own:?} {bc:?}");
    for s in [&own[0], &bc[0]] {
        assert!(
            s.contains("*MTTR 43m* · tier *Elite* for a P2 (< 1h)"),
            "{s}"
        );
        assert!(
            s.contains("*Slowest phase:* Triage — 18m (42% of MTTR)"),
            "{s}"
        );
        assert!(s.contains("*Detected via:* unknown"), "nobody said: {s}");
        assert!(s.contains("no — nothing shipped to payments"), "{s}");
    }
    assert!(bc[0].contains(&format!(
        "<#{}>",
        incident(&app, &id).await.channel_id.unwrap()
    )));
    crate::openapi::SlackSpec::load()
        .unwrap()
        .assert_conforms(&app.slack.calls());
}

#[tokio::test]
async fn twenty_simultaneous_clicks_record_one_transition_and_post_one_line() {
    let app = spawn_app().await;
    let id = declare(&app, "start Checkout slow sev:P2 service:checkout").await;
    let clicks = (0..20).map(|i| {
        let app = &app;
        let id = id.clone();
        async move {
            app.click(&format!("U0CLICK{i:02}"), "phase_ack", &id)
                .await
                .unwrap()
        }
    });
    let statuses = futures::future::join_all(clicks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(count_events(&app, &id, "acknowledged").await, 1);
    let l = lines(&app, &id).await;
    assert_eq!(l.len(), 1, "{l:?}");
    let inc = incident(&app, &id).await;
    assert_eq!(inc.version, 1, "one transition");
    let winner = inc.timeline.acknowledged.unwrap().by.unwrap();
    assert!(l[0].contains(&winner), "{l:?}");
    // The other nineteen are told where the incident stands.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while responses(&app)
        .iter()
        .filter(|r| r.contains("Already recorded — the incident is at *Acknowledged*"))
        .count()
        < 19
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            responses(&app)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_slack_retry_of_the_same_click_records_once() {
    let app = spawn_app().await;
    let id = declare(&app, "start Search down service:search").await;
    let body = app
        .click_body("U0SRCONC1", "phase_resolved", &id)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = app
            .post_signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(count_events(&app, &id, "resolved").await, 1);
    assert_eq!(lines(&app, &id).await.len(), 1);
    assert_eq!(summaries(&broadcast(&app)).len(), 1, "one summary");
}

#[tokio::test]
async fn a_click_on_a_stale_card_changes_nothing_and_names_the_current_phase() {
    let app = spawn_app().await;
    let id = declare(&app, "start Payments errors service:payments").await;
    click(&app, "U0PAYONC1", "phase_fixed", &id).await;
    let version = incident(&app, &id).await.version;
    click(&app, "U0PAYOWN2", "phase_identified", &id).await;
    let told = wait_for_response(&app, "Already recorded").await;
    assert_eq!(
        told,
        "Already recorded — the incident is at *Fix deployed*."
    );
    assert_eq!(
        incident(&app, &id).await.version,
        version,
        "nothing changed"
    );
    let l = lines(&app, &id).await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].contains("triage skipped · remediation skipped"),
        "{l:?}"
    );
    let (c, _) = card(&app, &id).await;
    assert!(c.contains("*Remediation*: _skipped_"), "{c}");
}

#[tokio::test]
async fn slash_commands_work_like_the_buttons_and_point_elsewhere_outside_an_incident_channel() {
    let app = spawn_app().await;
    let id = declare(&app, "start Auth flaky service:auth").await;
    let reply = slash_in(&app, &id, "U0AUTONC1", "ack").await;
    assert!(
        reply.starts_with("Recorded. ✋ <@U0AUTONC1> acknowledged"),
        "{reply}"
    );
    let reply = slash_in(&app, &id, "U0AUTONC1", "ack").await;
    assert_eq!(
        reply,
        "Already recorded — the incident is at *Acknowledged*."
    );
    let reply = slash_in(&app, &id, "U0AUTONC1", "identified").await;
    assert!(reply.contains("identified the root cause"), "{reply}");
    assert_eq!(lines(&app, &id).await.len(), 2);

    let (_, reply) = app.slash("fixed").await.unwrap();
    let text = reply["text"].as_str().unwrap();
    let room = incident(&app, &id).await.channel_id.unwrap();
    assert!(
        text.contains("works in an incident's own channel"),
        "{text}"
    );
    assert!(
        text.contains(&format!("<#{room}> — *INC-1* Auth flaky")),
        "{text}"
    );

    let status = slash_in(&app, &id, "U0AUTONC1", "status").await;
    for want in [
        "*INC-1*",
        "*Status:* Root cause identified — remediation running for",
        "*Detection*:",
        "*Triage*:",
    ] {
        assert!(status.contains(want), "{want}: {status}");
    }
    let (_, list) = app.slash("list").await.unwrap();
    assert!(list["text"].as_str().unwrap().contains("INC-1"), "{list}");

    let reply = slash_in(&app, &id, "U0AUTONC1", "resolved").await;
    assert!(reply.contains("*MTTR"), "{reply}");
    let reply = slash_in(&app, &id, "U0AUTONC1", "reopen").await;
    assert!(
        reply.contains("reopened INC-1 — back in remediation"),
        "{reply}"
    );
    let (c, _) = card(&app, &id).await;
    assert!(
        c.contains("[Fix deployed]") && c.contains("[Resolved]"),
        "{c}"
    );
}

#[tokio::test]
async fn a_correction_in_the_users_time_zone_re_derives_the_card_the_line_and_the_summary() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    app.slack.set_user_tz("U0PAYOWN1", "Europe/Berlin");
    let id = declare(
        &app,
        "start Card payments failing sev:P1 service:payments started:-10m",
    )
    .await;
    clock.advance(minutes(4));
    click(&app, "U0PAYONC1", "phase_ack", &id).await; // 14:04
    clock.advance(minutes(30));
    click(&app, "U0PAYONC1", "phase_fixed", &id).await; // 14:34, identified skipped
    clock.advance(minutes(9));
    click(&app, "U0PAYONC1", "phase_resolved", &id).await; // 14:43
    let s = summaries(&broadcast(&app));
    assert_eq!(s.len(), 1);
    // started 13:50: detection 14m, triage 30m, remediation skipped, verification 9m; MTTR 53m (P1: High).
    assert!(
        s[0].contains("*MTTR 53m* · tier *High* for a P1 (30m – 2h)"),
        "{}",
        s[0]
    );
    assert!(s[0].contains("Remediation        0s"), "{}", s[0]);
    assert!(s[0].contains("skipped"), "{}", s[0]);

    // 15:20 in Berlin is 14:20 UTC. The first correction asks Slack for the time zone, so its answer comes later.
    let ch = incident(&app, &id).await.channel_id.unwrap();
    let (status, _) = app
        .slash_as("U0PAYOWN1", &ch, "set identified 15:20")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let told = wait_for_response(&app, "Corrected").await;
    assert!(
        told.contains("15:20 Europe/Berlin = 2026-11-25 14:20 UTC"),
        "{told}"
    );
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    assert_eq!(app.slack.count("users.info"), 1);

    let inc = incident(&app, &id).await;
    assert_eq!(
        inc.timeline.identified.unwrap().at,
        Utc.with_ymd_and_hms(2026, 11, 25, 14, 20, 0).unwrap()
    );
    let (c, _) = card(&app, &id).await;
    assert!(c.contains("*Triage*: 16m"), "{c}");
    assert!(c.contains("*Remediation*: 14m"), "{c}");
    let l = lines(&app, &id).await;
    assert_eq!(
        l.last().unwrap(),
        "✏️ <@U0PAYOWN1> corrected *identified* from 14:34 UTC to 14:20 UTC — detection 14m · triage 16m · \
         remediation 14m · verification 9m · *MTTR 53m*"
    );
    // Both posted summaries now show the corrected figures (updated in place, not posted again).
    for ch in [channel(&app, &id).await, broadcast(&app)] {
        let s = summaries(&ch);
        assert_eq!(s.len(), 1);
        assert!(
            s[0].contains("*Slowest phase:* Triage — 16m (30% of MTTR)"),
            "{}",
            s[0]
        );
        assert!(!s[0].contains("skipped"), "{}", s[0]);
    }

    // Out of order (15:02 Berlin = 14:02 UTC, before the acknowledgement at 14:04): refused, with the reason.
    let reply = slash_in(&app, &id, "U0PAYOWN1", "set identified 15:02").await;
    assert_eq!(
        reply,
        "Not changed: identified (14:02 UTC) would be before acknowledged (14:04 UTC). \
         You asked for identified at 15:02 Europe/Berlin = 2026-11-25 14:02 UTC."
    );
    assert_eq!(app.slack.count("users.info"), 1, "time zone cached");
    let reply = slash_in(&app, &id, "U0PAYOWN1", "set started 2026-11-26T09:00:00Z").await;
    assert!(reply.contains("is in the future"), "{reply}");
    let reply = slash_in(&app, &id, "U0PAYOWN1", "set started 2026-11-25T13:40:00Z").await;
    assert!(reply.starts_with("Corrected"), "{reply}");
    assert!(reply.contains("*MTTR 1h 03m*"), "{reply}");
    assert_eq!(count_events(&app, &id, "corrected").await, 2);
    crate::openapi::SlackSpec::load()
        .unwrap()
        .assert_conforms(&app.slack.calls());
}

#[tokio::test]
async fn the_summary_compares_with_the_90_day_median_and_reports_a_deploy_before_impact() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let now = clock.now();
    // History: P2 incidents resolved 10, 40 and 100 days ago (the last is too old), one P1 and one search P2.
    for (n, sev, service, mttr_min, days_ago) in [
        (101i64, "P2", "payments", 30i64, 10i64),
        (102, "P2", "checkout", 90, 40),
        (103, "P2", "payments", 600, 100),
        (104, "P1", "payments", 5, 3),
        (105, "P2", "payments", 60, 20),
    ] {
        let resolved = now - chrono::Duration::days(days_ago);
        let started = resolved - minutes(mttr_min);
        sqlx::query(
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                                    started_at, declared_at, resolved_at, closed_at)
             VALUES ($1, 'T0001', $2, 'old', $3, $4, 'alert', 'U1', $5, $5, $6, $6)",
        )
        .bind(format!("old-{n}"))
        .bind(n)
        .bind(sev)
        .bind(service)
        .bind(started.timestamp_millis())
        .bind(resolved.timestamp_millis())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    incident_bot::deploys::insert(
        &app.state.db,
        &incident_bot::deploys::NewDeploy {
            id: None,
            service: "auth".into(),
            environment: "production".into(),
            version: Some("v7.2.1".into()),
            commit_sha: Some("abcdef1234".into()),
            url: None,
            author: Some("bob".into()),
            deployed_at: now - minutes(70),
            source: "test".into(),
        },
        now,
    )
    .await
    .unwrap();
    let id = declare(&app, "start Refunds failing service:payments via:customer").await;
    clock.advance(minutes(50));
    click(&app, "U0PAYONC1", "phase_resolved", &id).await;
    let s = &summaries(&broadcast(&app))[0];
    // P2 in 90 days: 30, 90, 60 → median 60m; payments P2: 30, 60 → 45m. This one: 50m.
    assert!(
        s.contains("10m faster than the P2 median of 1h 00m (3 incidents); 5m slower than the P2 median for payments of 45m (2 incidents)"),
        "{s}"
    );
    assert!(s.contains("*Detected via:* customer"), "{s}");
    assert!(
        s.contains("*Deploy in the 2 h before impact:* yes — 1 deploy"),
        "{s}"
    );
    assert!(
        s.contains("• *auth* (dependency) `v7.2.1` by bob, 1h 10m before impact"),
        "{s}"
    );
    assert!(
        s.contains("Detection         50m  ████████████████████  100%  ← slowest"),
        "{s}"
    );
}

#[tokio::test]
async fn reopen_runs_mttr_to_the_final_resolution_and_the_window_closes_the_incident() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let id = declare(&app, "start Inventory sync stuck service:inventory").await;
    clock.advance(minutes(5));
    click(&app, "U0A", "phase_ack", &id).await;
    clock.advance(minutes(10));
    click(&app, "U0A", "phase_identified", &id).await;
    clock.advance(minutes(10));
    click(&app, "U0A", "phase_fixed", &id).await;
    clock.advance(minutes(5));
    click(&app, "U0A", "phase_resolved", &id).await; // 14:30, MTTR 30m
    clock.advance(minutes(20));
    click(&app, "U0B", "phase_reopen", &id).await; // 14:50, inside the 30m window
    let inc = incident(&app, &id).await;
    assert_eq!(inc.timeline.status().as_str(), "identified");
    let (c, _) = card(&app, &id).await;
    assert!(
        c.contains("*Remediation*: 35m so far"),
        "back in remediation: {c}"
    );
    clock.advance(minutes(20));
    click(&app, "U0B", "phase_fixed", &id).await; // 15:10
    clock.advance(minutes(10));
    click(&app, "U0B", "phase_resolved", &id).await; // 15:20
    let bc = summaries(&broadcast(&app));
    assert_eq!(bc.len(), 2, "one summary per resolution: {bc:?}");
    // detection 5m, triage 10m, remediation 14:15 → 15:10 = 55m, verification 10m: MTTR 80m.
    assert!(bc[1].contains("*MTTR 1h 20m*"), "{}", bc[1]);
    assert!(bc[1].contains("Remediation       55m"), "{}", bc[1]);
    assert!(bc[1].contains("Reopened once"), "{}", bc[1]);
    assert!(bc[0].contains("*MTTR 30m*"), "{}", bc[0]);

    // The window passes: the incident is closed, the card says so and has no buttons.
    clock.advance(minutes(29));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        incident(&app, &id).await.timeline.closed_at.is_none(),
        "not before the window ends"
    );
    clock.advance(minutes(2));
    let deadline = tokio::time::Instant::now() + LIMIT;
    while incident(&app, &id).await.timeline.closed_at.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed by the timer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    let (c, _) = card(&app, &id).await;
    assert!(c.contains("*Closed*"), "{c}");
    assert!(!c.contains('['), "no buttons: {c}");
    let l = lines(&app, &id).await;
    assert_eq!(
        l.last().unwrap(),
        "🔒 INC-1 is closed — 30m of monitoring passed without a reopen. Final *MTTR 1h 20m*."
    );
    assert_eq!(count_events(&app, &id, "closed").await, 1);
    click(&app, "U0B", "phase_reopen", &id).await;
    let told = wait_for_response(&app, "closed").await;
    assert!(told.starts_with("The incident is closed"), "{told}");
}

#[tokio::test]
async fn a_reopen_after_the_window_is_refused() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let id = declare(&app, "start Search slow service:search").await;
    click(&app, "U0A", "phase_resolved", &id).await;
    let text = slash_in(&app, &id, "U0A", "status").await;
    assert!(text.contains("Monitoring until"), "{text}");
    // The close timer and a late reopen race at the window's end; whichever wins, the reopen is refused.
    clock.advance(minutes(30));
    let reply = slash_in(&app, &id, "U0A", "reopen").await;
    assert!(
        reply.contains("monitoring window after resolution is over") || reply.contains("is closed"),
        "{reply}"
    );
    assert_eq!(count_events(&app, &id, "reopened").await, 0);
}

#[tokio::test]
async fn a_lost_slack_answer_does_not_post_a_line_twice() {
    let app = spawn_app().await;
    let id = declare(&app, "start Checkout 500s service:checkout").await;
    // The post takes effect in Slack but the connection drops before the answer: the retry must find it.
    app.slack.fail_next(
        "chat.postMessage",
        incident_bot::standins::slack::Fault::Drop,
    );
    click(&app, "U0CHKONC1", "phase_ack", &id).await;
    assert_eq!(lines(&app, &id).await.len(), 1);
    assert!(app.slack.count("chat.postMessage") >= 1);
    let history: Vec<Value> = app
        .slack
        .calls_to("conversations.history")
        .iter()
        .map(|c| Value::Object(c.params.clone()))
        .collect();
    assert!(!history.is_empty(), "the retry looked before posting again");
    crate::openapi::SlackSpec::load()
        .unwrap()
        .assert_conforms(&app.slack.calls());
}

#[tokio::test]
async fn a_declaration_without_via_asks_on_the_card_how_it_was_detected_and_the_first_answer_counts(
) {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let id = declare(&app, "start Card payments failing service:payments").await;
    assert_eq!(
        incident(&app, &id).await.detection.as_str(),
        "unknown",
        "stored as unknown, not as alert"
    );
    let (before, _) = card(&app, &id).await;
    for want in [
        "unknown — not said yet",
        "How was this detected?",
        "[Alert]",
        "[Customer]",
        "[Engineer]",
    ] {
        assert!(before.contains(want), "{want}: {before}");
    }

    clock.advance(minutes(2));
    click(&app, "U0PAYONC1", "detected_customer", &id).await;
    assert_eq!(incident(&app, &id).await.detection.as_str(), "customer");
    let (after, edited) = card(&app, &id).await;
    assert!(after.contains("*Detected via* customer"), "{after}");
    assert!(!after.contains("How was this detected?"), "{after}");
    assert!(!after.contains("[Customer]"), "{after}");
    assert!(edited >= 1, "the card is updated in place");
    let key = format!("INC-{}", incident(&app, &id).await.number);
    assert_eq!(
        lines(&app, &id).await,
        vec![format!(
            "🧭 <@U0PAYONC1> says {key} was detected by a customer report (detection method `customer`)"
        )]
    );

    // A second answer changes nothing and is told what was said.
    click(&app, "U0PAYOWN1", "detected_engineer", &id).await;
    let told = wait_for_response(&app, "Already answered").await;
    assert!(told.contains("*customer*"), "{told}");
    assert_eq!(incident(&app, &id).await.detection.as_str(), "customer");
    assert_eq!(count_events(&app, &id, "detection").await, 1);
    assert_eq!(lines(&app, &id).await.len(), 1);

    click(&app, "U0PAYONC1", "phase_resolved", &id).await;
    let own = summaries(&channel(&app, &id).await);
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].contains("*Detected via:* customer"), "{}", own[0]);
}

#[tokio::test]
async fn a_declaration_that_says_how_it_was_detected_is_not_asked() {
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = spawn_clocked(clock.clone()).await;
    let id = declare(&app, "start Checkout slow via:engineer service:payments").await;
    assert_eq!(incident(&app, &id).await.detection.as_str(), "engineer");
    let (c, _) = card(&app, &id).await;
    assert!(c.contains("*Detected via* engineer"), "{c}");
    assert!(!c.contains("How was this detected?"), "{c}");
    // A stale click on a question that is no longer shown changes nothing.
    click(&app, "U0PAYONC1", "detected_alert", &id).await;
    assert_eq!(incident(&app, &id).await.detection.as_str(), "engineer");
    assert_eq!(count_events(&app, &id, "detection").await, 0);
}
