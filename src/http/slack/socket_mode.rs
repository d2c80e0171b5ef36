//! Socket Mode: with `SLACK_APP_TOKEN` (an app-level `xapp-…` token) set, the bot receives slash commands,
//! interactions and events over a WebSocket it opens itself, so it needs no public URL.
//!
//! The loop: `apps.connections.open` (with the app token) gives a `wss://` URL; the bot connects, Slack says
//! `hello`, then sends envelopes `{envelope_id, type, payload, accepts_response_payload}`. Each envelope is
//! handled by the same code as the HTTP routes ([`commands::handle_form`], [`interactions::handle_form`],
//! [`events::handle_body`]) and acked with `{envelope_id, payload}` — the payload is what the HTTP handler
//! would have answered (the slash command's ephemeral reply, a modal's `response_action`).
//!
//! A dropped connection, a connection that goes quiet, or Slack's `disconnect` message makes the bot open a
//! new one; failures to connect back off from 1 s to 30 s. After `disconnect` the new connection is opened first
//! and the old one is still read and acked until Slack closes it (or it goes quiet), so nothing sent on it in the
//! meantime is lost. On shutdown the bot stops reading, lets the envelopes in flight be acked (bounded), and
//! closes the connection. Close frames the bot sends carry code 1000 (normal closure).
//!
//! slack-morphism's own Socket Mode listener was not used: it hands over typed events, while the bot's
//! handlers take Slack's raw payloads (and must answer with arbitrary JSON, such as modal validation errors),
//! and its reconnect timing is coarse (30 s); this module is a thin client on `tokio-tungstenite` instead.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::{commands, events, interactions};
use crate::config::Secret;
use crate::observability;
use crate::slack::SlackClient;
use crate::state::AppState;

/// Sent when nothing else went out for this long, to keep the connection (and its liveness check) warm.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A connection that received nothing (not even a pong) for this long is considered dead.
const DEAD_AFTER: Duration = Duration::from_secs(35);
/// How long a connection attempt (TLS and WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Envelopes in flight when the bot stops get this long to be acked.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// After `disconnect`, the old connection is closed once nothing arrived on it for this long (and nothing is
/// waiting for its ack)…
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// … or at the latest after this long (Slack closes it itself about 10 s after `disconnect`).
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// Largest message accepted from Slack.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Starts Socket Mode when `SLACK_APP_TOKEN` is set; returns the task (it ends once `stop` turns true).
pub fn spawn(
    state: &Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let token = state.secrets.slack_app_token.clone()?;
    let state = state.clone();
    Some(tokio::spawn(
        run(state, token, stop).instrument(tracing::info_span!("socket_mode")),
    ))
}

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The bot is stopping.
    Stop,
    /// Slack asked the bot to reconnect (`disconnect`); the connection was then drained and closed.
    Disconnect,
    /// The connection broke or went quiet.
    Dropped,
}

/// A connection being served, as a future that outlives the loop's turn when it is drained.
type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = End> + Send>>;

/// Connects, serves, reconnects — until `stop`.
async fn run(state: Arc<AppState>, token: Secret, mut stop: watch::Receiver<bool>) {
    let opener = match SlackClient::new(
        &state.settings.slack_api_base(),
        Some(&token),
        Duration::from_millis(state.settings.slack.call_timeout_ms),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Socket Mode cannot start");
            return;
        }
    };
    // Connections Slack asked the bot to leave: still read and acked until they close (aborted if this task is).
    let mut draining: JoinSet<End> = JoinSet::new();
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match connect(&opener).await {
            Ok(ws) => {
                failures = 0;
                observability::socket_connection("opened");
                let (refresh_tx, mut refresh_rx) = oneshot::channel();
                let mut serving: Serving =
                    Box::pin(serve(state.clone(), ws, stop.clone(), refresh_tx));
                let end = tokio::select! {
                    Ok(()) = &mut refresh_rx => None,
                    end = &mut serving => Some(end),
                };
                match end {
                    None => {
                        // The new connection is opened first; the old one keeps being served meanwhile.
                        observability::socket_connection("disconnect_requested");
                        tracing::info!("Slack asked for a new connection");
                        draining.spawn(serving.instrument(tracing::Span::current()));
                        Duration::ZERO
                    }
                    Some(End::Stop) => break,
                    Some(End::Disconnect) => Duration::ZERO,
                    Some(End::Dropped) => {
                        tracing::warn!("Socket Mode connection lost; reconnecting");
                        Duration::from_millis(100 + fastrand::u64(0..200))
                    }
                }
            }
            Err(e) => {
                failures += 1;
                observability::socket_connection("open_failed");
                let wait = reconnect_backoff(failures);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot open a Socket Mode connection");
                wait
            }
        };
        while draining.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    // The connections being drained ack what they hold and close too (each within its own grace).
    while draining.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// 1 s, 2 s, 4 s … capped at 30 s, with ±25 % jitter.
fn reconnect_backoff(failures: u32) -> Duration {
    let base = 1_000u64
        .saturating_mul(1 << failures.clamp(1, 6).saturating_sub(1))
        .min(30_000);
    Duration::from_millis((base as f64 * (0.75 + fastrand::f64() * 0.5)) as u64)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `apps.connections.open`, then the WebSocket handshake.
async fn connect(opener: &SlackClient) -> anyhow::Result<Socket> {
    let url = opener
        .open_connection()
        .await?
        .ok_or_else(|| anyhow::anyhow!("apps.connections.open gave no url"))?;
    let url = url.as_str();
    // The URL carries a one-time ticket: log the host only.
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or("?")
        .to_string();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), false),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {host} timed out"))?
    .map_err(|e| anyhow::anyhow!("connecting to {host}: {e}"))?;
    tracing::info!(%host, "Socket Mode connected");
    Ok(ws)
}

/// Serves one connection until it ends. On Slack's `disconnect` it tells the loop through `refresh` (which opens
/// the next connection at once) and goes on reading and acking what still arrives here, until Slack closes it or it
/// has been quiet for [`DRAIN_QUIET`] (at most [`DRAIN_MAX`]); then it closes it with code 1000.
async fn serve(
    state: Arc<AppState>,
    ws: Socket,
    mut stop: watch::Receiver<bool>,
    refresh: oneshot::Sender<()>,
) -> End {
    let (mut sink, mut stream) = ws.split();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<String>();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut refresh = Some(refresh);
    // Set once Slack sent `disconnect`: when draining began.
    let mut draining: Option<tokio::time::Instant> = None;
    let mut drain_tick = tokio::time::interval(Duration::from_millis(100));
    let end = loop {
        tokio::select! {
            _ = stopped(&mut stop) => break End::Stop,
            msg = stream.next() => {
                last_heard = tokio::time::Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = match serde_json::from_str(text.as_str()) {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::warn!(error = %e, "unreadable Socket Mode message");
                                continue;
                            }
                        };
                        match value["type"].as_str() {
                            Some("hello") => tracing::debug!(
                                connections = value["num_connections"].as_u64().unwrap_or(0),
                                "Socket Mode hello"
                            ),
                            Some("disconnect") => {
                                tracing::info!(reason = value["reason"].as_str().unwrap_or("?"), "Slack sent disconnect");
                                if let Some(refresh) = refresh.take() {
                                    let _ = refresh.send(());
                                    draining = Some(tokio::time::Instant::now());
                                }
                            }
                            _ if value["envelope_id"].is_string() => {
                                let state = state.clone();
                                let ack_tx = ack_tx.clone();
                                in_flight.spawn(async move {
                                    let ack = handle_envelope(state, value).await;
                                    let _ = ack_tx.send(ack.to_string());
                                });
                            }
                            other => tracing::debug!(kind = other.unwrap_or("?"), "Socket Mode message ignored"),
                        }
                    }
                    // Slack closing a connection it asked the bot to leave is the normal end of it.
                    Some(Ok(Message::Close(_))) if draining.is_some() => break End::Disconnect,
                    Some(Ok(Message::Close(_))) | None => break End::Dropped,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "Socket Mode read failed");
                        break End::Dropped;
                    }
                    Some(Ok(_)) => {}
                }
            }
            Some(ack) = ack_rx.recv() => {
                if let Err(e) = sink.send(Message::Text(ack.into())).await {
                    tracing::warn!(error = %e, "could not ack a Socket Mode envelope");
                    break End::Dropped;
                }
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = drain_tick.tick(), if draining.is_some() => {
                let since = draining.map(|at| at.elapsed()).unwrap_or_default();
                let quiet = last_heard.elapsed() >= DRAIN_QUIET && in_flight.is_empty() && ack_rx.is_empty();
                if quiet || since >= DRAIN_MAX {
                    break End::Disconnect;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    tracing::warn!("Socket Mode connection silent; reconnecting");
                    break End::Dropped;
                }
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break End::Dropped;
                }
            }
        }
    };
    if end != End::Dropped {
        // Let the envelopes in flight be acked on this connection before it closes.
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while !in_flight.is_empty() || !ack_rx.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                Some(ack) = ack_rx.recv() => {
                    if sink.send(Message::Text(ack.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    }
    observability::socket_connection("closed");
    // Handlers still running keep running (their effects are stored); only their acks are lost.
    in_flight.detach_all();
    end
}

/// Runs one envelope through the HTTP handlers and builds its ack.
async fn handle_envelope(state: Arc<AppState>, envelope: Value) -> Value {
    let id = envelope["envelope_id"].as_str().unwrap_or_default();
    let kind = envelope["type"].as_str().unwrap_or_default();
    let payload = &envelope["payload"];
    let result = match kind {
        "slash_commands" => {
            Some(commands::handle_form(state, Bytes::from(slash_form(payload))).await)
        }
        "interactive" => {
            let form =
                serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
            Some(interactions::handle_form(state, Bytes::from(form)).await)
        }
        "events_api" => Some(events::handle_body(state, Bytes::from(payload.to_string())).await),
        _ => None,
    };
    let mut ack = json!({ "envelope_id": id });
    let Some(result) = result else {
        observability::socket_envelope(kind, "ignored");
        return ack;
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status();
    observability::socket_envelope(
        kind,
        if status.is_success() {
            "acked"
        } else {
            "error"
        },
    );
    let wants_payload = envelope["accepts_response_payload"]
        .as_bool()
        .unwrap_or(false);
    if wants_payload {
        if let Some(reply) = ack_payload(kind, response).await {
            ack["payload"] = reply;
        }
    }
    ack
}

/// The ack's payload: the handler's JSON answer; for a failed slash command, a short ephemeral apology
/// (over HTTP, Slack would show its own error).
async fn ack_payload(kind: &str, response: Response) -> Option<Value> {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_MESSAGE_BYTES)
        .await
        .ok()?;
    if status.is_success() {
        return serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(|v| v.is_object());
    }
    (kind == "slash_commands").then(|| {
        let text = if status == StatusCode::BAD_REQUEST {
            "Slack sent a command the bot could not read. Try again, or `/incident help`."
        } else {
            "Something went wrong on the bot's side; the error is in its logs. Try again in a moment."
        };
        json!({ "response_type": "ephemeral", "text": text })
    })
}

/// A Socket Mode slash-command payload (a JSON object of strings) as the form body Slack would POST.
fn slash_form(payload: &Value) -> String {
    let empty = Map::new();
    let pairs: Vec<(String, String)> = payload
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_command_payload_becomes_the_form_slack_would_post() {
        let form = slash_form(&json!({
            "team_id": "T1",
            "user_id": "U1",
            "text": "start DB down & slow sev:P1",
            "is_enterprise_install": false,
            "nested": {"ignored": true},
        }));
        let back: Vec<(String, String)> = serde_urlencoded::from_str(&form).expect("valid form");
        assert!(back.contains(&("text".into(), "start DB down & slow sev:P1".into())));
        assert!(back.contains(&("is_enterprise_install".into(), "false".into())));
        assert!(!back.iter().any(|(k, _)| k == "nested"));
    }

    #[test]
    fn reconnect_backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let first = reconnect_backoff(1).as_millis();
            assert!((750..=1_250).contains(&first), "{first}");
            let third = reconnect_backoff(3).as_millis();
            assert!((3_000..=5_000).contains(&third), "{third}");
            assert!(reconnect_backoff(40).as_millis() <= 37_500);
        }
    }

    #[tokio::test]
    async fn a_failed_slash_command_is_acked_with_an_apology_not_silence() {
        let resp = crate::errors::ApiError::bad("text", "bad").into_response();
        let payload = ack_payload("slash_commands", resp).await.expect("payload");
        assert_eq!(payload["response_type"], "ephemeral");
        let resp = crate::errors::ApiError::bad("x", "bad").into_response();
        assert_eq!(ack_payload("events_api", resp).await, None);
    }
}
