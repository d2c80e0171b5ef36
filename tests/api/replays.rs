//! Replays (SPEC §10): a signed Slack request sent again byte for byte inside the 5-minute window — same
//! `X-Slack-Request-Timestamp`, same `X-Slack-Signature` — has no second effect and is answered with an empty 200,
//! whether the copies arrive one after the other, at the same instant, or at two replicas on one database.
//! Requests whose signature headers are missing, malformed or stale are refused before their body is read.

use std::time::Duration;

use incident_bot::standins::harness::{block_actions_body, post_signed_to, slash_body};
use incident_bot::standins::slack::GENERAL_CHANNEL_ID;
use serde_json::{json, Value};

use crate::helpers::{declared_number, responses, spawn_app, TestApp, SETUP_LIMIT};

const FORM: &str = "application/x-www-form-urlencoded";

/// One signed request, sent as often as asked: every copy carries the same timestamp and signature.
struct Signed {
    path: &'static str,
    content_type: &'static str,
    body: String,
    ts: i64,
}

impl Signed {
    fn new(path: &'static str, content_type: &'static str, body: String) -> Signed {
        Signed {
            path,
            content_type,
            body,
            ts: chrono::Utc::now().timestamp(),
        }
    }

    /// Sends it to the bot at `base_url`; the status and the body of the answer.
    async fn send_to(&self, http: &reqwest::Client, base_url: &str) -> (u16, String) {
        let resp = post_signed_to(
            http,
            &format!("{base_url}{}", self.path),
            self.content_type,
            self.body.clone().into_bytes(),
            self.ts,
        )
        .await
        .expect("the bot answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn send(&self, app: &TestApp) -> (u16, String) {
        self.send_to(&app.http, &app.base_url).await
    }
}

/// Sends `req` once, then again twice at the same instant and once more; the first answer and the others.
async fn sent_four_times(app: &TestApp, req: &Signed) -> ((u16, String), Vec<(u16, String)>) {
    let first = req.send(app).await;
    let (a, b) = tokio::join!(req.send(app), req.send(app));
    let last = req.send(app).await;
    (first, vec![a, b, last])
}

fn assert_ignored(replays: &[(u16, String)]) {
    for r in replays {
        assert_eq!(r, &(200, String::new()), "a replay gets an empty 200");
    }
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.state.db.pool)
        .await
        .expect(sql)
}

/// The `payload=<json>` body of a submitted declare form.
fn declare_form(title: &str) -> String {
    let payload = json!({
        "type": "view_submission",
        "team": { "id": "T0001", "domain": "acme" },
        "user": { "id": "U0MODAL", "team_id": "T0001" },
        "trigger_id": incident_bot::standins::harness::trigger_id(),
        "view": {
            "id": "V0DECLARE",
            "callback_id": "incident_start",
            "private_metadata": GENERAL_CHANNEL_ID,
            "state": { "values": {
                "title": { "value": { "type": "plain_text_input", "value": title } },
                "severity": { "value": { "type": "static_select", "selected_option": { "value": "P2" } } },
                "service": { "value": { "type": "static_select", "selected_option": { "value": "search" } } },
                "via": { "value": { "type": "static_select", "selected_option": { "value": "alert" } } }
            } }
        }
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// Waits until every incident's war room is set up, then returns how many war-room channels Slack holds.
async fn rooms_once_settled(app: &TestApp) -> usize {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM incidents")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    for id in &ids {
        app.wait_for_setup(id, SETUP_LIMIT).await.unwrap();
        app.wait_for_effects(id, SETUP_LIMIT).await.unwrap();
    }
    app.slack
        .channels()
        .iter()
        .filter(|c| c.name.starts_with("inc-"))
        .count()
}

#[tokio::test]
async fn a_replayed_slash_command_declares_one_incident() {
    let app = spawn_app().await;
    let req = Signed::new(
        "/slack/commands",
        FORM,
        slash_body(
            "U0DECLARER",
            GENERAL_CHANNEL_ID,
            "start Checkout down sev:P2 service:checkout",
            &app.slack.response_url(),
        ),
    );
    let ((status, reply), replays) = sent_four_times(&app, &req).await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(declared_number(&reply), 1, "{reply}");
    assert_ignored(&replays);
    // Acknowledged once logged; the incident row follows within milliseconds.
    app.incident_id(1).await.unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) FROM incidents").await, 1);
    assert_eq!(rooms_once_settled(&app).await, 1);
    assert_eq!(app.slack.count("conversations.create"), 1);
    // The same command typed again is a new request (Slack gives it its own trigger_id): it declares.
    let (status, reply) = app
        .slash("start Checkout down sev:P2 service:checkout")
        .await
        .unwrap();
    assert_eq!((status, declared_number(&reply)), (200, 2), "{reply}");
}

#[tokio::test]
async fn a_replayed_declare_form_declares_one_incident() {
    let app = spawn_app().await;
    let req = Signed::new("/slack/interactions", FORM, declare_form("Search is empty"));
    let (first, replays) = sent_four_times(&app, &req).await;
    assert_eq!(first.0, 200, "{first:?}");
    assert_ignored(&replays);
    app.incident_id(1).await.unwrap();
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM incidents WHERE title = 'Search is empty'"
        )
        .await,
        1
    );
    assert_eq!(rooms_once_settled(&app).await, 1);
    assert_eq!(app.slack.count("conversations.create"), 1);
}

#[tokio::test]
async fn a_replayed_button_click_records_one_phase_change_and_tells_nobody_twice() {
    let app = spawn_app().await;
    let (_, reply) = app
        .slash("start Payments failing sev:P1 service:payments")
        .await
        .unwrap();
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    let body = block_actions_body(
        &inc,
        "U0PAYONC1",
        "phase_ack",
        &app.slack.response_url(),
        chrono::Utc::now(),
    )
    .unwrap();
    let req = Signed::new("/slack/interactions", FORM, body);
    let (first, replays) = sent_four_times(&app, &req).await;
    assert_eq!(first.0, 200);
    assert_ignored(&replays);
    app.wait_for_effects(&id, SETUP_LIMIT).await.unwrap();
    let acks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timeline_events WHERE incident_id = $1 AND kind = 'acknowledged'",
    )
    .bind(&id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(acks, 1);
    // A genuine second click is told where the incident stands; a replay, handled, would have been told too.
    assert_eq!(app.click("U0PAYOWN2", "phase_ack", &id).await.unwrap(), 200);
    let told = || {
        responses(&app)
            .iter()
            .filter(|r| r.contains("Already recorded"))
            .count()
    };
    let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
    while told() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second click is answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(told(), 1, "{:?}", responses(&app));
}

#[tokio::test]
async fn a_replayed_event_is_answered_once() {
    let app = spawn_app().await;
    let body = json!({
        "token": "legacy-verification-token",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event": {
            "type": "app_mention", "user": "U061F7AUR", "channel": GENERAL_CHANNEL_ID,
            "text": format!("<@{}> was there a deploy to payments recently?", incident_bot::standins::slack::BOT_USER_ID),
            "ts": "1764100000.000100", "event_ts": "1764100000.000100",
        },
        "type": "event_callback",
        "event_id": "Ev0REPLAY01",
        "event_time": chrono::Utc::now().timestamp(),
    })
    .to_string();
    let req = Signed::new("/slack/events", "application/json", body);
    let (first, replays) = sent_four_times(&app, &req).await;
    assert_eq!(first, (200, String::new()));
    assert_ignored(&replays);
    let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
    while app.slack.count("chat.postMessage") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mention is answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.slack.count("chat.postMessage"), 1, "answered once");
}

#[tokio::test]
async fn unsigned_or_stale_requests_are_refused_before_their_body_is_read() {
    let app = spawn_app().await;
    // Larger than `http.body_limit_bytes`: read, it would have been refused with 413.
    let big = "x".repeat(app.state.settings.http.body_limit_bytes + 1);
    let url = format!("{}/slack/commands", app.base_url);
    let now = chrono::Utc::now().timestamp();
    let cases: [(&str, Option<String>, Option<String>); 4] = [
        ("no headers", None, None),
        ("no signature", Some(now.to_string()), None),
        (
            "malformed signature",
            Some(now.to_string()),
            Some("v1=zz".into()),
        ),
        (
            "stale",
            Some((now - 301).to_string()),
            Some(format!("v0={}", "0".repeat(64))),
        ),
    ];
    for (what, ts, sig) in cases {
        let mut req = app.http.post(&url).header("content-type", FORM);
        if let Some(ts) = ts {
            req = req.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("x-slack-signature", sig);
        }
        let status = req
            .body(big.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 401, "{what}");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM slack_signatures").await,
        0
    );
}

/// Two replicas — the real binary — on one database, each sent the same signed requests at the same instant.
#[tokio::test]
async fn a_request_replayed_to_two_replicas_has_one_effect() {
    let c = crate::replicas::Cluster::new().await;
    let (a, b) = tokio::join!(c.replica(), c.replica());
    let both = |req: Signed| {
        let c = &c;
        let (a, b) = (&a, &b);
        async move {
            let (x, y) = tokio::join!(
                req.send_to(&c.http, &a.base_url),
                req.send_to(&c.http, &b.base_url)
            );
            let mut answers = [x, y];
            answers.sort();
            answers
        }
    };
    let slash = Signed::new(
        "/slack/commands",
        FORM,
        slash_body(
            "U0DECLARER",
            GENERAL_CHANNEL_ID,
            "start Checkout down sev:P2 service:checkout",
            &c.slack.response_url(),
        ),
    );
    let [ignored, declared] = both(slash).await;
    assert_eq!(ignored, (200, String::new()));
    assert!(declared.1.contains("Declaring *INC-1*"), "{declared:?}");
    let [ignored, submitted] = both(Signed::new(
        "/slack/interactions",
        FORM,
        declare_form("Search is empty"),
    ))
    .await;
    assert_eq!((ignored.0, submitted.0), (200, 200));
    c.settle("declarations", "SELECT 2 - COUNT(*) FROM incidents")
        .await;
    c.all_settled().await;
    let id: String = sqlx::query_scalar("SELECT id FROM incidents WHERE number = 1")
        .fetch_one(&c.db.pool)
        .await
        .unwrap();
    let inc = incident_bot::incidents::load(&c.db, &id)
        .await
        .unwrap()
        .unwrap();
    let click = block_actions_body(
        &inc,
        "U0CHKONC1",
        "phase_ack",
        &c.slack.response_url(),
        chrono::Utc::now(),
    )
    .unwrap();
    let [x, y] = both(Signed::new("/slack/interactions", FORM, click)).await;
    assert_eq!((x.0, y.0), (200, 200));
    c.all_settled().await;
    assert_eq!(c.count("SELECT COUNT(*) FROM incidents").await, 2);
    assert_eq!(
        c.count("SELECT COUNT(*) FROM timeline_events WHERE kind = 'acknowledged'")
            .await,
        1
    );
    assert_eq!(
        c.slack.count("conversations.create"),
        2,
        "one war room each"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = c
        .slack
        .responses()
        .iter()
        .filter(|(_, v)| {
            v["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Already recorded")
        })
        .count();
    assert_eq!(told, 0, "the replayed click was not handled a second time");
}
