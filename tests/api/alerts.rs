//! Alerts declare incidents (SPEC section 11, issue 16): the five endpoints with the documented example payloads
//! of each tool (`tests/fixtures/alerts/`), their authentication, storms, resolution, PagerDuty
//! acknowledgements, exactly-once across retries, replicas and a crash, and check-config's view of routes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use incident_bot::config::{AlertRouteSettings, Secrets};
use incident_bot::db::{from_ms, Db};
use incident_bot::standins::harness::{
    catalog_for, secrets_for, settings_for, Harness, ALERT_TOKEN, PAGERDUTY_WEBHOOK_SECRET,
};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{blocks_to_text, SlackStandin, INCIDENTS_CHANNEL_ID};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::Row;

use crate::helpers::{eventually, fresh_database_url, spawn_app, spawn_app_with, SETUP_LIMIT};

const ALERTMANAGER: &str = include_str!("../fixtures/alerts/alertmanager_webhook_v4.json");
const GRAFANA: &str = include_str!("../fixtures/alerts/grafana_webhook.json");
const DATADOG: &str = include_str!("../fixtures/alerts/datadog_webhook.json");
const PAGERDUTY: &str =
    include_str!("../fixtures/alerts/pagerduty_v3_incident_priority_updated.json");

const LIMIT: Duration = Duration::from_secs(20);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn post(h: &Harness, source: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{}/api/v1/alerts/{source}", h.base_url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn send(h: &Harness, source: &str, body: &str) -> Value {
    let (status, v) = post(h, source, body, Some(ALERT_TOKEN)).await;
    assert_eq!(status, 202, "{v}");
    v
}

fn pd_signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post_pagerduty(h: &Harness, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{}/api/v1/alerts/pagerduty", h.base_url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("x-pagerduty-signature", s);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn send_pagerduty(h: &Harness, body: &str) {
    let sig = pd_signature(PAGERDUTY_WEBHOOK_SECRET, body);
    let (status, v) = post_pagerduty(h, body, Some(&sig)).await;
    assert_eq!(status, 202, "{v}");
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

/// Waits until every stored alert is processed.
async fn processed(h: &Harness) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let left = count(
            &h.state.db,
            "SELECT COUNT(*) FROM alerts WHERE state IN ('pending', 'running')",
        )
        .await;
        if left == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} alerts unprocessed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Row1 {
    id: String,
    service: Option<String>,
    severity: String,
    detection: String,
    started_at: DateTime<Utc>,
}

async fn incidents(db: &Db) -> Vec<Row1> {
    let rows = sqlx::query(
        "SELECT id, service, severity, detection, started_at FROM incidents ORDER BY number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| Row1 {
            id: r.get("id"),
            service: r.get("service"),
            severity: r.get("severity"),
            detection: r.get("detection"),
            started_at: from_ms(r.get("started_at")),
        })
        .collect()
}

/// The card of the incident as the channel shows it now.
fn card_text(app: &Harness, channel_id: &str) -> String {
    let ch = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == channel_id)
        .expect("channel");
    let ts = ch.pins.first().expect("a pinned card").clone();
    let msg = ch.messages.iter().find(|m| m.ts == ts).expect("the card");
    blocks_to_text(msg.blocks.as_ref().expect("blocks"))
}

fn raw_card(app: &Harness, channel_id: &str) -> (String, u32) {
    let ch = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == channel_id)
        .expect("channel");
    let ts = ch.pins.first().expect("a pinned card").clone();
    let msg = ch.messages.iter().find(|m| m.ts == ts).expect("the card");
    (msg.blocks.as_ref().expect("blocks").to_string(), msg.edited)
}

async fn channel_of(app: &Harness, incident_id: &str) -> String {
    app.wait_for_setup(incident_id, SETUP_LIMIT).await.unwrap();
    incident_bot::incidents::load(&app.state.db, incident_id)
        .await
        .unwrap()
        .unwrap()
        .channel_id
        .expect("a war room")
}

fn broadcast_texts(app: &Harness) -> Vec<String> {
    app.slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .map(|c| c.messages.iter().map(|m| m.text.clone()).collect())
        .unwrap_or_default()
}

fn channel_texts(app: &Harness, channel_id: &str) -> Vec<String> {
    app.slack
        .channels()
        .into_iter()
        .find(|c| c.id == channel_id)
        .map(|c| c.messages.iter().map(|m| m.text.clone()).collect())
        .unwrap_or_default()
}

/// A generic payload of `n` alerts `key-0…` for `service`.
fn generic(service: &str, prefix: &str, range: std::ops::Range<usize>, status: &str) -> String {
    let alerts: Vec<Value> = range
        .map(|i| {
            json!({
                "key": format!("{prefix}-{i}"),
                "status": status,
                "title": format!("{service} {prefix} {i} is failing"),
                "service": service,
                "severity": "critical",
                "starts_at": "2026-11-25T14:00:00Z",
                "url": format!("https://grafana.example.com/d/{prefix}/{i}"),
            })
        })
        .collect();
    json!({ "alerts": alerts }).to_string()
}

#[tokio::test]
async fn an_alertmanager_alert_declares_an_incident_set_up_like_incident_start() {
    let app = spawn_app().await;
    let v = send(&app, "alertmanager", ALERTMANAGER).await;
    assert_eq!(v["received"], 2);
    assert_eq!(v["stored"], 2, "stored before the 202: {v}");
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM alerts").await,
        2,
        "stored before the answer"
    );
    processed(&app).await;
    let incs = incidents(&app.state.db).await;
    assert_eq!(incs.len(), 1, "one group, one incident");
    let inc = &incs[0];
    assert_eq!(inc.service.as_deref(), Some("payments"));
    assert_eq!(inc.severity, "P1", "severity=critical");
    assert_eq!(inc.detection, "alert");
    assert_eq!(
        inc.started_at,
        at("2026-11-25T14:02:10.123Z"),
        "impact starts at startsAt"
    );
    let steps = app.wait_for_setup(&inc.id, SETUP_LIMIT).await.unwrap();
    for s in &steps {
        assert_eq!(s.state, "done", "{s:?}");
    }
    let channel = channel_of(&app, &inc.id).await;
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    let card = card_text(&app, &channel);
    assert!(card.contains("Detected via"), "{card}");
    assert!(card.contains("alert"), "{card}");
    assert!(card.contains("Alerts:* 2 alerts · 2 firing"), "{card}");
    let (raw, _) = raw_card(&app, &channel);
    assert!(
        raw.contains("<http://prometheus.example.com:9090/graph?g0.expr=job%3Apayments_5xx"),
        "the card links the alert: {raw}"
    );
    // The war room is what /incident start makes: pinned card, topic, announcement, page.
    let ch = app
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == channel)
        .unwrap();
    assert!(
        ch.name.starts_with("inc-1-paymentserrorrate"),
        "{}",
        ch.name
    );
    assert!(ch.topic.contains("P1"), "{}", ch.topic);
    assert_eq!(app.pager.requests().len(), 1, "secondary paged once");
    assert!(broadcast_texts(&app).iter().any(|t| t.contains("INC-1")));
    assert!(channel_texts(&app, &channel)
        .iter()
        .any(|t| t.contains("Declared by Alertmanager")));

    // Re-sent (a retry, or repeat_interval): stored once, no second effect.
    let v = send(&app, "alertmanager", ALERTMANAGER).await;
    assert_eq!(
        (v["stored"].as_i64(), v["duplicates"].as_i64()),
        (Some(0), Some(2))
    );
    processed(&app).await;
    assert_eq!(count(&app.state.db, "SELECT COUNT(*) FROM alerts").await, 2);
    assert_eq!(incidents(&app.state.db).await.len(), 1);
    assert_eq!(app.slack.count("conversations.create"), 1);
}

#[tokio::test]
async fn every_source_is_read_from_its_documented_example() {
    let app = spawn_app().await;
    // Datadog (the README's template): payments, P1, from its date.
    send(&app, "datadog", DATADOG).await;
    // Grafana's documented example names no service: only posted to the broadcast channel.
    send(&app, "grafana", GRAFANA).await;
    // The generic JSON: checkout, with its link.
    send(&app, "generic", &generic("checkout", "g", 0..1, "firing")).await;
    // PagerDuty V3, the documented envelope as incident.triggered for a catalog service.
    let pd = PAGERDUTY
        .replace("incident.priority_updated", "incident.triggered")
        .replacen("\"summary\": \"API Service\"", "\"summary\": \"search\"", 1);
    send_pagerduty(&app, &pd).await;
    processed(&app).await;
    let incs = incidents(&app.state.db).await;
    let by = |svc: &str| {
        incs.iter()
            .find(|i| i.service.as_deref() == Some(svc))
            .unwrap_or_else(|| panic!("no {svc} incident"))
    };
    assert_eq!(incs.len(), 3, "datadog, generic, pagerduty");
    let dd = by("payments");
    assert_eq!(dd.started_at, from_ms(1764079330000));
    assert_eq!(dd.severity, "P1");
    assert_eq!(by("checkout").started_at, at("2026-11-25T14:00:00Z"));
    let pd = by("search");
    assert_eq!(pd.started_at, at("2020-04-09T15:16:27Z"), "triggered time");
    assert!(incs.iter().all(|i| i.detection == "alert"));
    let channel = channel_of(&app, &pd.id).await;
    app.wait_for_effects(&pd.id, LIMIT).await.unwrap();
    let (raw, _) = raw_card(&app, &channel);
    assert!(
        raw.contains("<https://acme.pagerduty.com/incidents/PGR0VU2|"),
        "{raw}"
    );
    eventually("the grafana notice", || async {
        broadcast_texts(&app)
            .iter()
            .any(|t| t.contains("2 alerts* matched no catalog service"))
    })
    .await;
}

#[tokio::test]
async fn bad_tokens_signatures_and_payloads_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    for source in ["alertmanager", "grafana", "datadog", "generic"] {
        let (status, v) = post(&app, source, ALERTMANAGER, None).await;
        assert_eq!(status, 401, "{source}: {v}");
        let (status, _) = post(&app, source, ALERTMANAGER, Some("wrong-token")).await;
        assert_eq!(status, 401, "{source}");
    }
    let (status, _) = post_pagerduty(&app, PAGERDUTY, None).await;
    assert_eq!(status, 401);
    let wrong = pd_signature("not-the-secret", PAGERDUTY);
    let (status, _) = post_pagerduty(&app, PAGERDUTY, Some(&wrong)).await;
    assert_eq!(status, 401);
    // A body changed after signing fails too.
    let sig = pd_signature(PAGERDUTY_WEBHOOK_SECRET, PAGERDUTY);
    let (status, _) =
        post_pagerduty(&app, &PAGERDUTY.replace("PGR0VU2", "PGR0VU3"), Some(&sig)).await;
    assert_eq!(status, 401);

    // Malformed: 400 naming the field; the good first alert of the batch is not stored either.
    let broken = ALERTMANAGER.replacen(
        "\"startsAt\": \"2026-11-25T14:02:10.123Z\",",
        "\"startsAt\": \"yesterday\",",
        1,
    );
    let (status, v) = post(&app, "alertmanager", &broken, Some(ALERT_TOKEN)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "alerts[0].startsAt");
    let second_broken =
        generic("payments", "b", 0..3, "firing").replacen("\"key\":\"b-2\"", "\"key\":7", 1);
    let (status, v) = post(&app, "generic", &second_broken, Some(ALERT_TOKEN)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "alerts[2].key");
    let (status, v) = post(
        &app,
        "datadog",
        "{\"transition\": \"Triggered\"}",
        Some(ALERT_TOKEN),
    )
    .await;
    assert_eq!((status, v["field"].as_str()), (400, Some("alert_id")));
    let (status, v) = post(&app, "grafana", "not json", Some(ALERT_TOKEN)).await;
    assert_eq!((status, v["field"].as_str()), (400, Some("body")));
    assert_eq!(count(&app.state.db, "SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM incidents").await,
        0
    );
}

#[tokio::test]
async fn a_whole_alertmanager_group_of_a_storm_is_accepted_in_one_webhook() {
    let app = spawn_app().await;
    let one: Value = serde_json::from_str(ALERTMANAGER).unwrap();
    let mut big = one.clone();
    let template = one["alerts"][0].clone();
    big["alerts"] = Value::Array(
        (0..3_000)
            .map(|i| {
                let mut a = template.clone();
                a["fingerprint"] = json!(format!("fp{i:05}"));
                a["labels"]["instance"] = json!(format!("payments-{i}:9090"));
                a
            })
            .collect(),
    );
    let body = big.to_string();
    // Over a megabyte: far above the server's limit for other requests (http.body_limit_bytes, 256 KiB).
    assert!(body.len() > 1_000_000, "{} bytes", body.len());
    let v = send(&app, "alertmanager", &body).await;
    assert_eq!(v["stored"], 3_000);
    processed(&app).await;
    assert_eq!(incidents(&app.state.db).await.len(), 1);
}

#[tokio::test]
async fn endpoints_without_their_token_or_secret_answer_503_saying_what_to_set() {
    let slack = SlackStandin::start().await.unwrap();
    let pager = PagerStandin::start().await.unwrap();
    let url = fresh_database_url().await;
    let settings = settings_for(&slack, &pager, &url);
    let secrets = Secrets {
        alert_api_token: None,
        pagerduty_webhook_secret: None,
        ..secrets_for(&catalog_for(&pager))
    };
    let h = Harness::start_with_secrets(
        settings,
        secrets,
        slack,
        pager,
        Arc::new(incident_bot::clock::SystemClock),
    )
    .await
    .unwrap();
    let (status, v) = post(&h, "alertmanager", ALERTMANAGER, Some(ALERT_TOKEN)).await;
    assert_eq!(status, 503);
    assert!(
        v["message"].as_str().unwrap().contains("ALERT_API_TOKEN"),
        "{v}"
    );
    let sig = pd_signature(PAGERDUTY_WEBHOOK_SECRET, PAGERDUTY);
    let (status, v) = post_pagerduty(&h, PAGERDUTY, Some(&sig)).await;
    assert_eq!(status, 503);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("PAGERDUTY_WEBHOOK_SECRET"),
        "{v}"
    );
}

#[tokio::test]
async fn a_storm_of_ten_thousand_alerts_for_three_services_is_three_incidents_and_few_card_edits() {
    let app = spawn_app_with(|s| s.alerts.card_min_interval_ms = 1_000).await;
    let started = std::time::Instant::now();
    let services = ["payments", "checkout", "search"];
    let mut sends = tokio::task::JoinSet::new();
    for chunk in 0..100 {
        let service = services[chunk % 3];
        let body = generic(service, service, chunk * 100..chunk * 100 + 100, "firing");
        let base = app.base_url.clone();
        let http = app.http.clone();
        sends.spawn(async move {
            let r = http
                .post(format!("{base}/api/v1/alerts/generic"))
                .bearer_auth(ALERT_TOKEN)
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
        if sends.len() >= 8 {
            assert_eq!(sends.join_next().await.unwrap().unwrap(), 202);
        }
    }
    while let Some(s) = sends.join_next().await {
        assert_eq!(s.unwrap(), 202);
    }
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM alerts").await,
        10_000
    );
    processed(&app).await;
    let incs = incidents(&app.state.db).await;
    assert_eq!(incs.len(), 3, "one incident per service");
    for inc in &incs {
        app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    }
    let elapsed = started.elapsed();
    for inc in &incs {
        let channel = channel_of(&app, &inc.id).await;
        let card = card_text(&app, &channel);
        let n = count_for(&app.state.db, &inc.id).await;
        assert!(
            card.contains(&format!("{n} alerts · {n} firing")),
            "counts on the card: {card}"
        );
        assert!(card.contains("…and "), "{card}");
        let (_, edits) = raw_card(&app, &channel);
        // At most one edit per interval (1 s here), plus the first and the phase-free refresh at the end.
        let bound = elapsed.as_secs() as u32 + 2;
        eprintln!("card edits {edits} in {elapsed:?}");
        assert!(
            edits <= bound,
            "{edits} card edits in {elapsed:?} (bound {bound})"
        );
    }
    assert_eq!(app.slack.count("conversations.create"), 3);
}

async fn count_for(db: &Db, incident_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE incident_id = $1 AND status = 'firing'")
        .bind(incident_id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_resolved_alert_posts_a_line_and_the_last_one_asks_once_to_mark_resolved() {
    let app = spawn_app().await;
    send(&app, "generic", &generic("payments", "r", 0..50, "firing")).await;
    processed(&app).await;
    let inc = incidents(&app.state.db).await.remove(0);
    let channel = channel_of(&app, &inc.id).await;
    let resolved = |range| {
        generic("payments", "r", range, "resolved").replace(
            "\"starts_at\":\"2026-11-25T14:00:00Z\"",
            "\"starts_at\":\"2026-11-25T14:00:00Z\",\"ends_at\":\"2026-11-25T14:30:00Z\"",
        )
    };
    send(&app, "generic", &resolved(0..1)).await;
    processed(&app).await;
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    let texts = channel_texts(&app, &channel);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Alert resolved: *payments r 0 is failing*")),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.contains("mark *INC-1* Resolved?")));
    // The other 49 resolve in a burst of requests: gathered into few lines, not 49.
    for start in (1..50).step_by(7) {
        send(&app, "generic", &resolved(start..(start + 7).min(50))).await;
    }
    send(&app, "generic", &resolved(0..50)).await; // re-sent: nothing new
    processed(&app).await;
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    let texts = channel_texts(&app, &channel);
    let lines: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("alerts resolved"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "a storm of resolutions is gathered: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains(" more")), "{lines:?}");
    let prompts: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("mark *INC-1* Resolved?"))
        .collect();
    assert_eq!(prompts.len(), 1, "{texts:?}");
    assert!(prompts[0].contains("Alert resolved "), "{}", prompts[0]);
    let loaded = incident_bot::incidents::load(&app.state.db, &inc.id)
        .await
        .unwrap()
        .unwrap();
    assert!(loaded.timeline.resolved.is_none(), "the bot only asks");
    // One click on the prompt's button resolves.
    assert_eq!(
        app.click("U0ALICE", "phase_resolved", &inc.id)
            .await
            .unwrap(),
        200
    );
    eventually("resolved", || async {
        incident_bot::incidents::load(&app.state.db, &inc.id)
            .await
            .unwrap()
            .unwrap()
            .timeline
            .resolved
            .is_some()
    })
    .await;
}

#[tokio::test]
async fn a_route_with_auto_resolve_resolves_on_its_own_and_detection_runs_from_the_alert() {
    let app = spawn_app_with(|s| {
        s.alerts.routes = vec![AlertRouteSettings {
            matchers: vec!["team=\"db\"".into()],
            service: Some("payments-db".into()),
            severity: Some("P2".into()),
            action: "declare".into(),
            auto_resolve: true,
        }]
    })
    .await;
    let body = |status: &str| {
        json!({ "alerts": [{ "key": "db-1", "status": status, "title": "Replication lag",
                             "labels": { "team": "db" }, "starts_at": "2026-11-25T14:00:00Z" }] })
        .to_string()
    };
    send(&app, "generic", &body("firing")).await;
    processed(&app).await;
    let inc = incidents(&app.state.db).await.remove(0);
    assert_eq!(
        inc.service.as_deref(),
        Some("payments-db"),
        "the route's service"
    );
    assert_eq!(inc.severity, "P2", "the route's severity");
    channel_of(&app, &inc.id).await;
    send(&app, "generic", &body("resolved")).await;
    processed(&app).await;
    let loaded = incident_bot::incidents::load(&app.state.db, &inc.id)
        .await
        .unwrap()
        .unwrap();
    let resolved = loaded.timeline.resolved.expect("resolved on its own");
    assert_eq!(loaded.timeline.started_at, at("2026-11-25T14:00:00Z"));
    assert!(resolved.at >= loaded.timeline.declared_at);
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    let channel = loaded.channel_id.unwrap();
    assert!(!channel_texts(&app, &channel)
        .iter()
        .any(|t| t.contains("Resolved?")));
}

#[tokio::test]
async fn a_pagerduty_acknowledgement_of_a_linked_incident_is_recorded_once() {
    let app = spawn_app().await;
    let triggered = PAGERDUTY
        .replace("incident.priority_updated", "incident.triggered")
        .replacen("\"summary\": \"API Service\"", "\"summary\": \"search\"", 1);
    send_pagerduty(&app, &triggered).await;
    processed(&app).await;
    let inc = incidents(&app.state.db).await.remove(0);
    let channel = channel_of(&app, &inc.id).await;
    let acked = PAGERDUTY.replace("incident.priority_updated", "incident.acknowledged");
    send_pagerduty(&app, &acked).await;
    send_pagerduty(&app, &acked).await;
    // An acknowledgement of a PagerDuty incident that is linked to nothing does nothing.
    send_pagerduty(&app, &acked.replace("PGR0VU2", "PNOTLINKED")).await;
    processed(&app).await;
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    let loaded = incident_bot::incidents::load(&app.state.db, &inc.id)
        .await
        .unwrap()
        .unwrap();
    let ack = loaded.timeline.acknowledged.clone().expect("acknowledged");
    assert_eq!(
        ack.at,
        at("2020-10-02T18:45:22.169Z"),
        "when PagerDuty says"
    );
    let lines = channel_texts(&app, &channel)
        .into_iter()
        .filter(|t| t.contains("acknowledged"))
        .count();
    assert_eq!(lines, 1, "one timeline line");
    assert_eq!(
        count(
            &app.state.db,
            "SELECT COUNT(*) FROM alerts WHERE status = 'acknowledged'"
        )
        .await,
        2,
        "a re-sent event is stored once"
    );
    // Detection ran from the alert's start to the acknowledgement.
    let b = incident_bot::domain::mttr::breakdown(&loaded.timeline, Utc::now());
    assert_eq!(
        b.phases[0].duration,
        at("2020-10-02T18:45:22.169Z") - at("2020-04-09T15:16:27Z")
    );
}

#[tokio::test]
async fn a_stored_alert_claimed_by_a_dead_process_is_taken_over_at_start() {
    let url = fresh_database_url().await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    // What a process that died between storing and declaring leaves: the alerts stored (and answered 202),
    // claimed under a lease far in the future by an owner whose heartbeat stopped.
    let items: Vec<incident_bot::store::alerts::Incoming> =
        incident_bot::domain::alert::alertmanager(ALERTMANAGER.as_bytes())
            .unwrap()
            .into_iter()
            .map(Into::into)
            .collect();
    incident_bot::store::alerts::insert(&db, &items, Utc::now())
        .await
        .unwrap();
    let claimed = incident_bot::store::alerts::claim(&db, "dead", Utc::now(), 3_600_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    sqlx::query("INSERT INTO process_heartbeats (owner, beat_at) VALUES ('dead', 0)")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let app = spawn_app_with(|s| s.database_url = url.clone()).await;
    processed(&app).await;
    let incs = incidents(&app.state.db).await;
    assert_eq!(incs.len(), 1);
    assert_eq!(incs[0].started_at, at("2026-11-25T14:02:10.123Z"));
    channel_of(&app, &incs[0].id).await;
}

#[tokio::test]
async fn two_replicas_on_one_database_declare_one_incident_per_storm() {
    // Two bot processes (the real binary) on one database: PostgreSQL with TEST_DATABASE_URL, else one SQLite
    // file (see `replicas`).
    let cluster = crate::replicas::Cluster::new().await;
    let replicas = [cluster.replica().await, cluster.replica().await];
    let bodies: Vec<String> = (0..40)
        .map(|i| {
            let service = ["payments", "checkout"][i % 2];
            generic(service, &format!("{service}-{i}"), 0..25, "firing")
        })
        .collect();
    let mut sends = Vec::new();
    for body in &bodies {
        // Each payload goes to both replicas at once, as a retried webhook behind a load balancer would.
        for bot in &replicas {
            let req = cluster
                .http
                .post(format!("{}/api/v1/alerts/generic", bot.base_url))
                .bearer_auth(ALERT_TOKEN)
                .body(body.clone());
            sends.push(async move { req.send().await.expect("answer").status().as_u16() });
        }
    }
    for status in futures::future::join_all(sends).await {
        assert_eq!(status, 202);
    }
    eventually("every alert processed", || async {
        cluster
            .count("SELECT COUNT(*) FROM alerts WHERE state <> 'done'")
            .await
            == 0
    })
    .await;
    eventually("both war rooms set up", || async {
        cluster
            .count(
                "SELECT COUNT(*) FROM setup_steps WHERE state NOT IN ('done', 'failed', 'skipped')",
            )
            .await
            == 0
            && cluster.count("SELECT COUNT(*) FROM setup_steps").await > 0
    })
    .await;
    assert_eq!(
        cluster.count("SELECT COUNT(*) FROM incidents").await,
        2,
        "one per service across both replicas"
    );
    assert_eq!(cluster.count("SELECT COUNT(*) FROM alerts").await, 1_000);
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM alerts WHERE incident_id IS NULL")
            .await,
        0
    );
    assert_eq!(cluster.slack.count("conversations.create"), 2);
    for r in &replicas {
        assert_eq!(r.panics(), 0, "{}", r.stderr());
    }
}

#[tokio::test]
async fn nothing_from_an_alert_reaches_slack_unescaped() {
    let app = spawn_app().await;
    let body = json!({ "alerts": [{
        "key": "evil",
        "status": "firing",
        "title": "<!channel> @here <https://evil.example|click> & more",
        "service": "payments",
        "url": "javascript:alert(1)",
        "labels": { "x": "<@U123>" },
    }]})
    .to_string();
    send(&app, "generic", &body).await;
    send(
        &app,
        "grafana",
        &GRAFANA.replace("TestAlert", "<!here> Test"),
    )
    .await;
    processed(&app).await;
    let inc = incidents(&app.state.db).await.remove(0);
    let channel = channel_of(&app, &inc.id).await;
    app.wait_for_effects(&inc.id, LIMIT).await.unwrap();
    eventually("the notice", || async {
        broadcast_texts(&app)
            .iter()
            .any(|t| t.contains("matched no catalog service"))
    })
    .await;
    for call in app.slack.calls() {
        let sent = Value::Object(call.params.clone()).to_string();
        for bad in [
            "<!channel>",
            "<!here>",
            "<https://evil.example",
            "<@U123>",
            "<javascript",
        ] {
            assert!(!sent.contains(bad), "{} sent {bad}: {sent}", call.method);
        }
    }
    let (raw, _) = raw_card(&app, &channel);
    assert!(raw.contains("&lt;!channel&gt;"), "{raw}");
}

#[test]
fn check_config_names_bad_matchers_unknown_actions_and_unknown_services() {
    let dir = std::env::temp_dir().join(format!("incident-bot-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let toml = r#"catalog_path = "CATALOG"

[[alerts.routes]]
matchers = ['severity=~"("']

[[alerts.routes]]
matchers = ['team="x"']
action = "escalate"

[[alerts.routes]]
matchers = ['team="y"']
service = "paymnets"
"#;
    let (code, out) = crate::ops::check_config(&dir, toml, crate::ops::GOOD_CATALOG);
    assert_ne!(code, 0, "{out}");
    for expected in [
        "error: alerts.routes.0.matchers.0",
        "bad regex",
        "error: alerts.routes.1.action: unknown action \"escalate\"",
        "error: alerts.routes.2.service: no service called \"paymnets\"",
        "did you mean \"payments\"",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn alerts_answered_by_a_bot_killed_with_sigkill_are_processed_by_the_next_one() {
    let cluster = crate::replicas::Cluster::new().await;
    // Slack answers slowly, so the first bot is still waiting for it (nothing declared) when it is killed.
    cluster.slack.set_latency(Duration::from_millis(3_000));
    let mut first = cluster.replica().await;
    for i in 0..10 {
        let service = ["payments", "checkout"][i % 2];
        let body = generic(service, &format!("k{i}"), 0..100, "firing");
        let resp = cluster
            .http
            .post(format!("{}/api/v1/alerts/generic", first.base_url))
            .bearer_auth(ALERT_TOKEN)
            .body(body)
            .send()
            .await
            .expect("the bot answers");
        assert_eq!(resp.status().as_u16(), 202);
    }
    let unfinished_at_kill = cluster
        .count("SELECT COUNT(*) FROM alerts WHERE state IN ('pending', 'running')")
        .await;
    first.kill().expect("SIGKILL");
    assert_eq!(cluster.count("SELECT COUNT(*) FROM alerts").await, 1_000);
    assert!(
        unfinished_at_kill > 0,
        "the bot was killed with alerts stored but not processed"
    );
    cluster.slack.set_latency(Duration::ZERO);
    let _second = cluster.replica().await;
    eventually("every alert processed by the second bot", || async {
        cluster
            .count("SELECT COUNT(*) FROM alerts WHERE state <> 'done'")
            .await
            == 0
    })
    .await;
    eventually("both war rooms set up", || async {
        cluster
            .count(
                "SELECT COUNT(*) FROM setup_steps WHERE state NOT IN ('done', 'failed', 'skipped')",
            )
            .await
            == 0
            && cluster.count("SELECT COUNT(*) FROM setup_steps").await > 0
    })
    .await;
    assert_eq!(cluster.count("SELECT COUNT(*) FROM incidents").await, 2);
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM alerts WHERE incident_id IS NULL")
            .await,
        0
    );
    assert_eq!(cluster.slack.count("conversations.create"), 2);
}
