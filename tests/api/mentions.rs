//! Deploy questions asked by mentioning the bot (SPEC §2): answered in a thread, once per Events API
//! `event_id`, with the asker's time zone for clock times. Built on Slack's published `app_mention` example.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_clock, TestApp};
use crate::openapi::SlackSpec;
use incident_bot::clock::ManualClock;
use incident_bot::standins::slack::{Message, BOT_USER_ID, GENERAL_CHANNEL_ID};

const APP_MENTION: &str = include_str!("../fixtures/slack_app_mention_event.json");
const TOKEN: &str = "harness-deploy-token";

/// Slack's example `app_mention` delivery, asked in #general by `user` with `text` after the bot's mention.
fn mention_envelope(event_id: &str, ts: &str, user: &str, text: &str) -> String {
    let mut v: Value = serde_json::from_str(APP_MENTION).expect("the fixture parses");
    v["event_id"] = json!(event_id);
    v["team_id"] = json!(incident_bot::standins::harness::TEAM_ID);
    v["event"]["channel"] = json!(GENERAL_CHANNEL_ID);
    v["event"]["user"] = json!(user);
    v["event"]["ts"] = json!(ts);
    v["event"]["event_ts"] = json!(ts);
    v["event"]["text"] = json!(format!("<@{BOT_USER_ID}> {text}"));
    v.to_string()
}

async fn ask_as(app: &TestApp, event_id: &str, ts: &str, user: &str, text: &str) {
    let resp = app
        .post_signed(
            "/slack/events",
            "application/json",
            mention_envelope(event_id, ts, user, text),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the event is acknowledged");
}

async fn ask(app: &TestApp, event_id: &str, ts: &str, text: &str) -> String {
    ask_as(app, event_id, ts, "U061F7AUR", text).await;
    answer_in_thread(app, ts).await.text
}

/// Thread replies to `ts` in #general.
fn replies(app: &TestApp, ts: &str) -> Vec<Message> {
    app.slack
        .channels()
        .into_iter()
        .find(|c| c.id == GENERAL_CHANNEL_ID)
        .map(|c| {
            c.messages
                .into_iter()
                .filter(|m| m.thread_ts.as_deref() == Some(ts) && m.ts != ts)
                .collect()
        })
        .unwrap_or_default()
}

async fn answer_in_thread(app: &TestApp, ts: &str) -> Message {
    for _ in 0..500 {
        if let Some(m) = replies(app, ts).into_iter().next() {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no answer in the thread of {ts}");
}

async fn record(app: &TestApp, events: Value) {
    let resp = app
        .http
        .post(format!("{}/api/v1/deploys", app.base_url))
        .bearer_auth(TOKEN)
        .json(&json!({ "deploys": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
}

fn event(service: &str, env: &str, version: &str, at: DateTime<Utc>) -> Value {
    json!({
        "service": service, "environment": env, "version": version, "author": "alice",
        "commit_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "url": format!("https://ci.acme.example/{service}/{version}"),
        "deployed_at": at.to_rfc3339(),
    })
}

fn ago(app: &TestApp, minutes: i64) -> DateTime<Utc> {
    app.state.clock.now() - chrono::Duration::minutes(minutes)
}

#[tokio::test]
async fn a_mention_is_answered_in_its_thread_with_the_service_and_its_dependencies() {
    let app = spawn_app().await;
    record(
        &app,
        json!([
            event("payments", "production", "v2.14.0", ago(&app, 25)),
            event("auth", "production", "v7.2.1", ago(&app, 70)),
            event("search", "production", "v1.9.3", ago(&app, 40)),
            event("payments", "staging", "v2.15.0-rc1", ago(&app, 10)),
            event("payments", "production", "v2.13.0", ago(&app, 180)),
        ]),
    )
    .await;
    let text = ask(
        &app,
        "Ev0001",
        "1700000000.000100",
        "was there a deploy to payments recently?",
    )
    .await;
    assert!(
        text.starts_with("*Production deploys to payments and its dependencies (auth, inventory) in the last 2 h:*"),
        "{text}"
    );
    assert!(
        text.contains("• *payments* `v2.14.0` by alice, 25m ago · <https://ci.acme.example/payments/v2.14.0|f95f852>"),
        "{text}"
    );
    assert!(
        text.contains("• *auth* (dependency) `v7.2.1` by alice, 1h 10m ago"),
        "{text}"
    );
    assert!(!text.contains("search"), "not a dependency: {text}");
    assert!(!text.contains("rc1"), "staging is not production: {text}");
    assert!(!text.contains("v2.13.0"), "3 h ago is not recent: {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].contains("payments") && lines[2].contains("auth"),
        "newest first: {text}"
    );

    SlackSpec::load()
        .unwrap()
        .assert_conforms(&app.slack.calls());
}

#[tokio::test]
async fn a_retried_event_is_answered_once() {
    let app = spawn_app().await;
    let body = mention_envelope("Ev0002", "1700000000.000200", "U061F7AUR", "deploys today");
    for retry in 0..3 {
        let mut req = app
            .http
            .post(format!("{}/slack/events", app.base_url))
            .header("content-type", "application/json");
        let ts = app.state.clock.now().timestamp();
        req = req
            .header("x-slack-request-timestamp", ts.to_string())
            .header(
                "x-slack-signature",
                incident_bot::slack::verify::sign(
                    incident_bot::standins::harness::SIGNING_SECRET.as_bytes(),
                    ts,
                    body.as_bytes(),
                ),
            );
        if retry > 0 {
            req = req
                .header("x-slack-retry-num", retry.to_string())
                .header("x-slack-retry-reason", "http_timeout");
        }
        let resp = req.body(body.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    answer_in_thread(&app, "1700000000.000200").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replies(&app, "1700000000.000200").len(),
        1,
        "one answer for three deliveries"
    );
    assert_eq!(app.slack.count("chat.postMessage"), 1);
}

#[tokio::test]
async fn since_a_clock_time_is_read_in_the_askers_time_zone() {
    // 15:30 UTC = 10:30 in New York.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 30, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    app.slack.set_user_tz("U0NEWYORK", "America/New_York");
    let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
    record(
        &app,
        json!([
            event("search", "production", "v1-before-nine", at(13, 50)),
            event("search", "production", "v2-after-nine", at(14, 10)),
        ]),
    )
    .await;
    ask_as(
        &app,
        "Ev0003",
        "1700000000.000300",
        "U0NEWYORK",
        "what shipped to search since 9:00?",
    )
    .await;
    let text = answer_in_thread(&app, "1700000000.000300").await.text;
    assert!(text.contains("since 09:00 (America/New_York)"), "{text}");
    assert!(text.contains("v2-after-nine"), "{text}");
    assert!(
        !text.contains("v1-before-nine"),
        "13:50 UTC is 08:50 in New York: {text}"
    );
    assert_eq!(
        app.slack.calls_to("users.info")[0].params["user"],
        "U0NEWYORK",
        "the asker's time zone was looked up"
    );

    // The stand-in's default zone is Europe/Berlin (UTC+1): there 9:00 was 08:00 UTC, so both count.
    ask_as(
        &app,
        "Ev0004",
        "1700000000.000400",
        "U0BERLIN01",
        "what shipped to search since 9:00?",
    )
    .await;
    let text = answer_in_thread(&app, "1700000000.000400").await.text;
    assert!(
        text.contains("v1-before-nine") && text.contains("v2-after-nine"),
        "{text}"
    );

    // users.info and chat.postMessage with thread_ts: real methods, real parameters.
    SlackSpec::load()
        .unwrap()
        .assert_conforms(&app.slack.calls());
}

#[tokio::test]
async fn no_deploys_is_said_plainly() {
    let app = spawn_app().await;
    record(
        &app,
        json!([event("checkout", "production", "v1", ago(&app, 200))]),
    )
    .await;
    let text = ask(
        &app,
        "Ev0005",
        "1700000000.000500",
        "any deploys to checkout in the last 3 hours?",
    )
    .await;
    assert_eq!(
        text,
        "None — no production deploys to *checkout* or its dependencies \
         (payments, inventory, auth, recommendations) in the last 3 h."
    );
}

#[tokio::test]
async fn deploys_today_with_no_service_lists_every_service() {
    let app = spawn_app().await;
    record(
        &app,
        json!([
            // "now", so that the test cannot straddle midnight.
            event("search", "production", "v1.9.3", ago(&app, 0)),
            event("notifications", "production", "v0.4.0", ago(&app, 0)),
        ]),
    )
    .await;
    let text = ask(&app, "Ev0006", "1700000000.000600", "deploys today").await;
    assert!(
        text.starts_with("*Production deploys to all services today"),
        "{text}"
    );
    assert!(
        text.contains("*notifications* `v0.4.0`") && text.contains("*search* `v1.9.3`"),
        "{text}"
    );
    assert!(!text.contains("(dependency)"), "{text}");
}

#[tokio::test]
async fn an_unknown_service_gets_suggestions_from_the_catalog_and_the_deploy_history() {
    let app = spawn_app().await;
    record(
        &app,
        json!([event("billing-engine", "production", "v9", ago(&app, 30))]),
    )
    .await;
    let text = ask(
        &app,
        "Ev0007",
        "1700000000.000700",
        "was there a deploy to paymnts recently?",
    )
    .await;
    assert_eq!(
        text,
        "No service called `paymnts` — did you mean `payments`?"
    );
    let text = ask(
        &app,
        "Ev0008",
        "1700000000.000800",
        "any deploys to biling-engine?",
    )
    .await;
    assert_eq!(
        text,
        "No service called `biling-engine` — did you mean `billing-engine`?"
    );
    // A service known only from the deploy history is answered, without dependencies.
    let text = ask(
        &app,
        "Ev0009",
        "1700000000.000900",
        "deploys to billing-engine recently?",
    )
    .await;
    assert!(
        text.contains("*billing-engine* `v9` by alice, 30m ago"),
        "{text}"
    );
}

#[tokio::test]
async fn a_question_it_cannot_read_gets_a_one_line_hint() {
    let app = spawn_app().await;
    let text = ask(
        &app,
        "Ev0010",
        "1700000000.001000",
        "is it everything a river should be?",
    )
    .await;
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("was there a deploy to payments recently?"),
        "{text}"
    );
    let text = ask(
        &app,
        "Ev0011",
        "1700000000.001100",
        "deploys to payments since the outage",
    )
    .await;
    assert!(
        text.contains("`since the outage`") && text.contains("since 14:00"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mention_inside_a_thread_is_answered_in_that_thread() {
    let app = spawn_app().await;
    let mut v: Value = serde_json::from_str(&mention_envelope(
        "Ev0012",
        "1700000000.001300",
        "U061F7AUR",
        "deploys to auth recently?",
    ))
    .unwrap();
    v["event"]["thread_ts"] = json!("1700000000.001200");
    let resp = app
        .post_signed("/slack/events", "application/json", v.to_string())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let m = answer_in_thread(&app, "1700000000.001200").await;
    assert!(
        m.text.starts_with("None — no production deploys to *auth*"),
        "{}",
        m.text
    );
}
