//! Signatures, malformed bodies, usage replies, health.

use crate::helpers::spawn_app;
use incident_bot::slack::verify::sign;
use incident_bot::standins::harness::SIGNING_SECRET;

async fn incident_count(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

fn command_body(text: &str) -> String {
    serde_urlencoded::to_string([
        ("team_id", "T0001"),
        ("user_id", "U0DECLARER"),
        ("channel_id", "CGENERAL"),
        ("command", "/incident"),
        ("text", text),
    ])
    .unwrap()
}

#[tokio::test]
async fn a_wrong_missing_or_stale_signature_gets_401_and_stores_nothing() {
    let app = spawn_app().await;
    let body = command_body("start db down sev:P1");
    let now = chrono::Utc::now().timestamp();
    let url = format!("{}/slack/commands", app.base_url);
    let cases: Vec<(Option<String>, Option<String>)> = vec![
        (
            Some(now.to_string()),
            Some(sign(b"not-the-secret", now, body.as_bytes())),
        ),
        (None, None),
        (Some(now.to_string()), None),
        (
            Some((now - 301).to_string()),
            Some(sign(SIGNING_SECRET.as_bytes(), now - 301, body.as_bytes())),
        ),
        (Some(now.to_string()), Some("v0=zz".into())),
    ];
    for (ts, sig) in cases {
        let mut req = app
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some(ts) = ts {
            req = req.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("x-slack-signature", sig);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    }
    for path in ["/slack/interactions", "/slack/events"] {
        let resp = app
            .http
            .post(format!("{}{path}", app.base_url))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    assert_eq!(incident_count(&app).await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls: Vec<String> = app.slack.calls().into_iter().map(|c| c.method).collect();
    // Only the start-up warm-up (who am I, where is #incidents) may have reached Slack.
    assert!(
        calls
            .iter()
            .all(|m| m == "auth.test" || m == "conversations.list"),
        "no Slack call for a refused request: {calls:?}"
    );
}

#[tokio::test]
async fn a_command_body_missing_a_field_gets_400_naming_it() {
    let app = spawn_app().await;
    let body = "user_id=U1&channel_id=C1&text=help".to_string();
    let resp = app
        .post_signed("/slack/commands", "application/x-www-form-urlencoded", body)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["field"], "team_id");
}

#[tokio::test]
async fn an_unknown_subcommand_gets_a_short_usage_reply() {
    let app = spawn_app().await;
    let (status, reply) = app.slash("frobnicate the database").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap();
    assert!(text.contains("frobnicate"), "{text}");
    assert!(
        text.contains("Usage") && text.contains("start &lt;title&gt;"),
        "usage is shown: {text}"
    );
    assert_eq!(incident_count(&app).await, 0);
}

#[tokio::test]
async fn a_bad_option_value_gets_usage_and_declares_nothing() {
    let app = spawn_app().await;
    let (status, reply) = app.slash("start db down sev:P9").await.unwrap();
    assert_eq!(status, 200);
    assert!(reply["text"].as_str().unwrap().contains("P9"));
    assert_eq!(incident_count(&app).await, 0);
}

#[tokio::test]
async fn help_lists_every_command() {
    let app = spawn_app().await;
    let (_, reply) = app.slash("help").await.unwrap();
    let text = reply["text"].as_str().unwrap();
    for cmd in [
        "start",
        "ack",
        "identified",
        "fixed",
        "resolved",
        "reopen",
        "set",
        "status",
        "deploys",
        "list",
        "digest",
    ] {
        assert!(text.contains(cmd), "usage mentions {cmd}: {text}");
    }
}

#[tokio::test]
async fn url_verification_echoes_the_challenge() {
    let app = spawn_app().await;
    let body = include_str!("../fixtures/slack_url_verification.json").to_string();
    let resp = app
        .post_signed("/slack/events", "application/json", body.clone())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let json: serde_json::Value = resp.json().await.unwrap();
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["challenge"], sent["challenge"]);
}

#[tokio::test]
async fn a_malformed_event_body_gets_400() {
    let app = spawn_app().await;
    let resp = app
        .post_signed("/slack/events", "application/json", "{not json".into())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn an_oversized_body_gets_413_before_anything_else() {
    let app = spawn_app().await;
    let big = format!("text={}", "a".repeat(300 * 1024));
    let resp = app
        .post_signed("/slack/commands", "application/x-www-form-urlencoded", big)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // The body is left unread, so the connection cannot carry another request: the answer says so.
    assert_eq!(
        resp.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
}
