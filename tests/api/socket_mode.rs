//! Socket Mode: with `SLACK_APP_TOKEN` set and no signing secret (no public URL at all), the bot takes slash
//! commands, modal submissions and events over the WebSocket the Slack stand-in hands out, acks each envelope
//! with the reply, and reconnects after a dropped connection or Slack's `disconnect`.

use std::sync::Arc;
use std::time::Duration;

use incident_bot::config::Secret;
use incident_bot::db::Db;
use incident_bot::standins::harness::{catalog_for, secrets_for, settings_for};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{SlackStandin, GENERAL_CHANNEL_ID, INCIDENTS_CHANNEL_ID};
use incident_bot::standins::slack_socket::SocketHub;
use incident_bot::startup::Application;
use incident_bot::state::AppState;
use serde_json::{json, Value};

use crate::helpers::{fresh_database_url, SETUP_LIMIT};

const ACK_LIMIT: Duration = Duration::from_secs(3);

struct SocketBot {
    state: Arc<AppState>,
    base_url: String,
    slack: SlackStandin,
    hub: SocketHub,
    pager: PagerStandin,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for SocketBot {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn spawn_socket_bot() -> SocketBot {
    let slack = SlackStandin::start().await.expect("slack stand-in");
    let pager = PagerStandin::start().await.expect("pager stand-in");
    let db_url = fresh_database_url().await;
    let settings = settings_for(&slack, &pager, &db_url);
    let catalog = catalog_for(&pager);
    let mut secrets = secrets_for(&catalog);
    secrets.slack_app_token = Some(Secret::new("xapp-1-A0001-socket-test"));
    secrets.slack_signing_secret = None;
    let db = Db::connect(&db_url).await.expect("db");
    db.migrate().await.expect("migrations");
    let app = Application::build_with(
        settings,
        secrets,
        catalog,
        db,
        Arc::new(incident_bot::clock::SystemClock),
    )
    .await
    .expect("bot builds");
    let state = app.state();
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let hub = slack.socket_mode();
    SocketBot {
        state,
        base_url,
        slack,
        hub,
        pager,
        server,
    }
}

impl SocketBot {
    /// Sends `/incident <text>` over the socket and returns the ack's payload.
    async fn slash(&self, text: &str) -> Value {
        let id = self
            .hub
            .slash_command(
                "U0DECLARER",
                GENERAL_CHANNEL_ID,
                text,
                &self.slack.response_url(),
            )
            .await
            .expect("an open connection");
        let ack = self
            .hub
            .wait_for_ack(&id, ACK_LIMIT)
            .await
            .unwrap_or_else(|| panic!("`{text}` acked within Slack's 3 s"));
        ack["payload"].clone()
    }

    async fn incident_id(&self, number: i64) -> String {
        incident_bot::standins::harness::incident_id_in(&self.state.db, number)
            .await
            .expect("incident stored")
    }

    /// Waits until every step is settled (done, failed or skipped); returns the steps.
    async fn wait_for_setup(&self, id: &str) -> Vec<incident_bot::incidents::setup::StepReport> {
        let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
        loop {
            let steps = incident_bot::incidents::setup::step_report(&self.state.db, id)
                .await
                .expect("steps");
            if !steps.is_empty()
                && steps
                    .iter()
                    .all(|s| matches!(s.state.as_str(), "done" | "failed" | "skipped"))
            {
                return steps;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "setup finished: {steps:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_slash_command_over_socket_mode_is_acked_with_its_reply_and_sets_up_the_war_room() {
    let bot = spawn_socket_bot().await;
    assert!(
        bot.hub
            .wait_for_connections(1, Duration::from_secs(10))
            .await,
        "the bot connects"
    );
    // Without a signing secret, the HTTP route refuses: whatever happens next came over the socket.
    incident_bot::standins::install_tls();
    let refused = reqwest::Client::new()
        .post(format!("{}/slack/commands", bot.base_url))
        .body("text=help")
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status().as_u16(), 401);

    let reply = bot
        .slash("start Payments are failing sev:P1 service:payments")
        .await;
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(text.contains("INC-1"), "{text}");
    assert!(text.contains("setting up the war room"), "{text}");

    let id = bot.incident_id(1).await;
    let steps = bot.wait_for_setup(&id).await;
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    let room = bot
        .slack
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-1-"))
        .expect("war room created");
    assert_eq!(room.pins.len(), 1, "card pinned");
    assert!(room.members.iter().any(|m| m == "U0DECLARER"));
    let announced = bot
        .slack
        .channel_by_name(INCIDENTS_CHANNEL_ID)
        .map(|c| c.messages.len())
        .unwrap_or_default();
    assert_eq!(announced, 1);
    assert_eq!(bot.pager.pagerduty_alerts().len(), 1, "secondary paged");

    // The Acknowledge button on the card, clicked over the socket, records the phase.
    let (channel, card_ts): (String, String) =
        sqlx::query_as("SELECT channel_id, card_ts FROM incidents WHERE id = $1")
            .bind(&id)
            .fetch_one(&bot.state.db.pool)
            .await
            .expect("card stored");
    let click = json!({
        "type": "block_actions",
        "team": { "id": "T0001", "domain": "acme" },
        "user": { "id": "U0RESPOND", "username": "responder", "team_id": "T0001" },
        "api_app_id": "A0001",
        "container": { "type": "message", "message_ts": card_ts, "channel_id": channel, "is_ephemeral": false },
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": { "id": channel },
        "message": { "type": "message", "ts": card_ts, "user": "UBOT0001", "text": "incident card" },
        "response_url": bot.slack.response_url(),
        "actions": [{
            "action_id": "phase_ack",
            "block_id": incident_bot::slack::blocks::PHASE_ACTIONS_BLOCK,
            "text": { "type": "plain_text", "text": "Acknowledge" },
            "value": id,
            "type": "button",
            "action_ts": "1700000000.000100",
        }],
    });
    let env = bot
        .hub
        .send_envelope("interactive", click, true)
        .await
        .expect("sent");
    assert!(bot.hub.wait_for_ack(&env, ACK_LIMIT).await.is_some());
    let acked_by: Option<String> =
        sqlx::query_scalar("SELECT acknowledged_by FROM incidents WHERE id = $1")
            .bind(&id)
            .fetch_one(&bot.state.db.pool)
            .await
            .expect("incident");
    assert_eq!(acked_by.as_deref(), Some("U0RESPOND"));

    // Bad input gets the usage reply in the ack, as over HTTP.
    let usage = bot.slash("frobnicate").await;
    let text = usage["text"].as_str().unwrap_or_default();
    assert!(text.contains("unknown command `frobnicate`"), "{usage}");
    assert!(text.contains("*Usage:*"), "{usage}");
}

#[tokio::test]
async fn the_bot_reconnects_after_a_dropped_connection_and_after_a_disconnect_request() {
    let bot = spawn_socket_bot().await;
    assert!(
        bot.hub
            .wait_for_connections(1, Duration::from_secs(10))
            .await
    );
    let reply = bot.slash("start Search is slow sev:P3").await;
    assert!(reply["text"].as_str().unwrap_or_default().contains("INC-1"));

    // The network drops the connection: the bot opens a new one and keeps working.
    bot.hub.drop_connections();
    assert!(
        bot.hub
            .wait_for_connections(2, Duration::from_secs(10))
            .await,
        "reconnected after the drop"
    );
    assert_eq!(bot.hub.open_connections(), 1);
    let list = bot.slash("list").await;
    let text = list["text"].as_str().unwrap_or_default();
    assert!(text.contains("Open incidents (1)"), "{text}");
    assert!(text.contains("Search is slow"), "{text}");

    // Slack recycles the connection: the bot reconnects at once, without waiting for the old one to close.
    bot.hub.request_disconnect("refresh_requested");
    assert!(
        bot.hub
            .wait_for_connections(3, Duration::from_secs(2))
            .await,
        "reconnected after disconnect"
    );
    let reply = bot
        .slash("start Checkout down sev:P2 service:checkout")
        .await;
    assert!(reply["text"].as_str().unwrap_or_default().contains("INC-2"));
    let id = bot.incident_id(2).await;
    let steps = bot.wait_for_setup(&id).await;
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    assert_eq!(
        bot.hub.opens(),
        3,
        "one apps.connections.open per connection"
    );
}

#[tokio::test]
async fn a_failing_connections_open_is_retried_with_backoff() {
    let slack_fails = 2;
    let bot = spawn_socket_bot().await;
    // The first connection is made at start; fail the next two opens, then drop it.
    assert!(
        bot.hub
            .wait_for_connections(1, Duration::from_secs(10))
            .await
    );
    for _ in 0..slack_fails {
        bot.hub.fail_next_open("internal_error");
    }
    let dropped_at = std::time::Instant::now();
    bot.hub.drop_connections();
    assert!(
        bot.hub
            .wait_for_connections(2, Duration::from_secs(15))
            .await,
        "connected again once apps.connections.open answers"
    );
    // Two failures back off about 1 s then 2 s (±25 %).
    let waited = dropped_at.elapsed();
    assert!(
        waited >= Duration::from_millis(2_000),
        "backed off: {waited:?}"
    );
    let reply = bot.slash("help").await;
    assert!(reply["text"]
        .as_str()
        .unwrap_or_default()
        .contains("*Usage:*"));
}

#[tokio::test]
async fn a_modal_submission_and_an_event_over_socket_mode_reach_the_same_handlers() {
    let bot = spawn_socket_bot().await;
    assert!(
        bot.hub
            .wait_for_connections(1, Duration::from_secs(10))
            .await
    );

    // The declare modal, submitted without a title: the ack carries the validation errors.
    let submission = |title: &str| {
        json!({
            "type": "view_submission",
            "team": { "id": "T0001" },
            "user": { "id": "U0DECLARER", "team_id": "T0001" },
            "view": {
                "callback_id": "incident_start",
                "private_metadata": GENERAL_CHANNEL_ID,
                "state": { "values": {
                    "title": { "value": { "type": "plain_text_input", "value": title } },
                    "severity": { "value": { "type": "static_select", "selected_option": { "value": "P1" } } },
                    "service": { "value": { "type": "static_select", "selected_option": { "value": "payments" } } },
                    "via": { "value": { "type": "static_select", "selected_option": { "value": "customer" } } },
                } }
            }
        })
    };
    let id = bot
        .hub
        .send_envelope("interactive", submission(""), true)
        .await
        .expect("sent");
    let ack = bot.hub.wait_for_ack(&id, ACK_LIMIT).await.expect("acked");
    assert_eq!(ack["payload"]["response_action"], "errors", "{ack}");
    assert!(ack["payload"]["errors"]["title"].is_string(), "{ack}");

    let id = bot
        .hub
        .send_envelope("interactive", submission("Card payments declined"), true)
        .await
        .expect("sent");
    let ack = bot.hub.wait_for_ack(&id, ACK_LIMIT).await.expect("acked");
    assert!(ack.get("payload").is_none(), "the modal just closes: {ack}");
    let inc = bot.incident_id(1).await;
    let steps = bot.wait_for_setup(&inc).await;
    assert!(
        steps
            .iter()
            .any(|s| s.step == "channel" && s.state == "done"),
        "{steps:?}"
    );
    let (title, detection): (String, String) =
        sqlx::query_as("SELECT title, detection FROM incidents WHERE id = $1")
            .bind(&inc)
            .fetch_one(&bot.state.db.pool)
            .await
            .expect("stored");
    assert_eq!(title, "Card payments declined");
    assert_eq!(detection, "customer");

    // An Events API delivery is acked and recorded once, even when Slack delivers it twice.
    let event = json!({
        "type": "event_callback",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "event_id": "Ev0SOCKET01",
        "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": "U0DECLARER", "text": "<@UBOT0001> hello",
                   "channel": GENERAL_CHANNEL_ID, "ts": "1700000000.000100" },
    });
    for _ in 0..2 {
        let id = bot
            .hub
            .send_envelope("events_api", event.clone(), false)
            .await
            .expect("sent");
        let ack = bot.hub.wait_for_ack(&id, ACK_LIMIT).await.expect("acked");
        assert_eq!(ack, json!({ "envelope_id": id }));
    }
    let seen: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM processed_events WHERE event_id = 'Ev0SOCKET01'")
            .fetch_one(&bot.state.db.pool)
            .await
            .expect("count");
    assert_eq!(seen, 1);
}

#[tokio::test]
async fn after_a_disconnect_the_new_connection_opens_first_and_the_old_one_is_still_acked_then_closed_normally(
) {
    let bot = spawn_socket_bot().await;
    assert!(
        bot.hub
            .wait_for_connections(1, Duration::from_secs(10))
            .await
    );
    // Slack says `disconnect` and, right behind it on the same connection, delivers one more command.
    let payload = incident_bot::standins::slack_socket::slash_payload(
        "U0DECLARER",
        GENERAL_CHANNEL_ID,
        "start Late on the old connection sev:P2",
        &bot.slack.response_url(),
    );
    let id = bot
        .hub
        .disconnect_then_envelope("slash_commands", payload, true)
        .expect("sent");
    assert!(
        bot.hub
            .wait_for_connections(2, Duration::from_secs(2))
            .await,
        "the new connection is opened at once"
    );
    assert_eq!(
        bot.hub.closes(),
        vec![],
        "the new connection was opened before the old one was closed"
    );
    let ack = bot
        .hub
        .wait_for_ack(&id, ACK_LIMIT)
        .await
        .expect("the envelope sent after `disconnect` is acked");
    let text = ack["payload"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("INC-1"), "{ack}");
    assert_eq!(
        bot.hub.ack_connection(&id),
        Some(1),
        "acked on the connection it came on"
    );

    // The bot closes the old connection itself, as a normal closure (1000).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while bot.hub.closes().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bot.hub.closes(), vec![(1, Some(1000))]);

    // Acted on once: one incident, one war room, one ack; the new connection carries the next command.
    let inc = bot.incident_id(1).await;
    let steps = bot.wait_for_setup(&inc).await;
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&bot.state.db.pool)
        .await
        .expect("count");
    assert_eq!(incidents, 1);
    let acks = bot
        .hub
        .acks()
        .iter()
        .filter(|a| a["envelope_id"].as_str() == Some(id.as_str()))
        .count();
    assert_eq!(acks, 1);
    let rooms = bot
        .slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-1-"))
        .count();
    assert_eq!(rooms, 1);
    let list = bot.slash("list").await;
    assert!(
        list["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Open incidents (1)"),
        "{list}"
    );
    assert_eq!(bot.hub.open_connections(), 1);
}
