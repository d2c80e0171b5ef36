//! The Socket Mode side of the Slack stand-in ([`super::slack::SlackStandin::socket_mode`]).
//!
//! - `POST /api/apps.connections.open` with an app-level token (`xapp-…`, in `Authorization: Bearer`) answers
//!   `{"ok": true, "url": "ws://127.0.0.1:PORT/socket-mode/link?ticket=…"}`; a bot token gets
//!   `not_allowed_token_type`, as with Slack. Each ticket opens one connection.
//! - The WebSocket says `hello`, then carries the envelopes a test queues with [`SocketHub::send_envelope`]
//!   (`{envelope_id, type, payload, accepts_response_payload}`) and records the client's acks
//!   (`{envelope_id, payload?}`), which [`SocketHub::wait_for_ack`] returns.
//! - Faults as Slack produces them: [`SocketHub::drop_connections`] closes every connection without a close
//!   frame; [`SocketHub::request_disconnect`] sends `{"type": "disconnect"}` (Slack's refresh), and
//!   [`SocketHub::disconnect_then_envelope`] one more envelope right behind it on the same connection (the close
//!   frames the client sends are recorded: [`SocketHub::closes`]); and
//!   [`SocketHub::fail_next_open`] makes the next `apps.connections.open` answer an error.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The Socket Mode endpoint of the stand-in. Cheap to clone; clones share one state.
#[derive(Clone)]
pub struct SocketHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    addr: SocketAddr,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    /// `apps.connections.open` calls answered with a URL.
    opens: usize,
    /// WebSocket connections accepted so far.
    accepted: usize,
    tickets: HashSet<String>,
    next_ticket: u64,
    next_envelope: u64,
    open_faults: VecDeque<String>,
    /// Open connections, oldest first.
    connections: Vec<(u64, mpsc::UnboundedSender<Outgoing>)>,
    /// Every ack received: the whole message the client sent.
    acks: Vec<Value>,
    /// Messages from the client that were not acks.
    other_messages: Vec<Value>,
    /// The connection each ack arrived on, by `envelope_id`.
    ack_connections: Vec<(String, u64)>,
    /// Close frames the client sent: connection and close code (`None`: a close frame without one).
    closes: Vec<(u64, Option<u16>)>,
}

enum Outgoing {
    Text(String),
    Drop,
}

impl SocketHub {
    /// A hub whose URLs point at `addr` (the stand-in's address).
    pub(crate) fn new(addr: SocketAddr) -> SocketHub {
        SocketHub {
            inner: Arc::new(HubInner {
                addr,
                state: Mutex::new(HubState::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many `apps.connections.open` calls got a URL.
    pub fn opens(&self) -> usize {
        self.state().opens
    }

    /// How many WebSocket connections were accepted so far.
    pub fn accepted(&self) -> usize {
        self.state().accepted
    }

    /// How many WebSocket connections are open now.
    pub fn open_connections(&self) -> usize {
        self.state().connections.len()
    }

    /// Waits until at least `n` connections were accepted in total and one is open. False after `limit`.
    pub async fn wait_for_connections(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            {
                let st = self.state();
                if st.accepted >= n && !st.connections.is_empty() {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next `apps.connections.open` answers `{"ok": false, "error": code}`.
    pub fn fail_next_open(&self, code: &str) {
        self.state().open_faults.push_back(code.to_string());
    }

    /// Sends an envelope on the newest open connection (waiting up to 5 s for one). Returns its
    /// `envelope_id`, or `None` when no connection is open.
    pub async fn send_envelope(
        &self,
        kind: &str,
        payload: Value,
        accepts_response_payload: bool,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            {
                let mut st = self.state();
                st.connections.retain(|(_, tx)| !tx.is_closed());
                if let Some((_, tx)) = st.connections.last().map(|(i, tx)| (*i, tx.clone())) {
                    st.next_envelope += 1;
                    let id = format!("env-{:06}-{}", st.next_envelope, uuid::Uuid::new_v4());
                    let mut envelope = json!({
                        "envelope_id": id,
                        "type": kind,
                        "payload": payload,
                        "accepts_response_payload": accepts_response_payload,
                    });
                    if kind == "events_api" {
                        envelope["retry_attempt"] = json!(0);
                        envelope["retry_reason"] = json!("");
                    }
                    if tx.send(Outgoing::Text(envelope.to_string())).is_ok() {
                        return Some(id);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends a `slash_commands` envelope for `/incident <text>` typed by `user` in `channel`.
    pub async fn slash_command(
        &self,
        user: &str,
        channel: &str,
        text: &str,
        response_url: &str,
    ) -> Option<String> {
        let payload = slash_payload(user, channel, text, response_url);
        self.send_envelope("slash_commands", payload, true).await
    }
}

/// The payload of a `slash_commands` envelope for `/incident <text>` typed by `user` in `channel`.
pub fn slash_payload(user: &str, channel: &str, text: &str, response_url: &str) -> Value {
    json!({
            "token": "legacy-verification-token",
            "team_id": super::TEAM_ID,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "someone",
            "command": "/incident",
            "text": text,
            "api_app_id": "A0001",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    })
}

impl SocketHub {
    /// The client's ack of `envelope_id` (the whole message: `envelope_id` and, if any, `payload`), waiting
    /// up to `limit`.
    pub async fn wait_for_ack(&self, envelope_id: &str, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(ack) = self
                .state()
                .acks
                .iter()
                .find(|a| a["envelope_id"].as_str() == Some(envelope_id))
            {
                return Some(ack.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Slack recycling a connection with traffic still on it: sends `disconnect` on the newest connection and, right
    /// behind it on that same connection, an envelope. Unlike [`SocketHub::request_disconnect`], the stand-in
    /// leaves closing that connection to the client. Returns the envelope's id.
    pub fn disconnect_then_envelope(
        &self,
        kind: &str,
        payload: Value,
        accepts_response_payload: bool,
    ) -> Option<String> {
        let mut st = self.state();
        st.connections.retain(|(_, tx)| !tx.is_closed());
        let tx = st.connections.last().map(|(_, tx)| tx.clone())?;
        st.next_envelope += 1;
        let id = format!("env-{:06}-{}", st.next_envelope, uuid::Uuid::new_v4());
        let disconnect = json!({ "type": "disconnect", "reason": "refresh_requested", "debug_info": { "host": "standin" } });
        let envelope = json!({
            "envelope_id": id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        });
        tx.send(Outgoing::Text(disconnect.to_string())).ok()?;
        tx.send(Outgoing::Text(envelope.to_string())).ok()?;
        Some(id)
    }

    /// The connection (1 for the first accepted, 2 for the next …) the ack of `envelope_id` arrived on.
    pub fn ack_connection(&self, envelope_id: &str) -> Option<u64> {
        self.state()
            .ack_connections
            .iter()
            .find(|(id, _)| id == envelope_id)
            .map(|(_, conn)| *conn)
    }

    /// The close frames the client sent: connection and close code.
    pub fn closes(&self) -> Vec<(u64, Option<u16>)> {
        self.state().closes.clone()
    }

    /// Every ack received, in order.
    pub fn acks(&self) -> Vec<Value> {
        self.state().acks.clone()
    }

    /// Closes every open connection abruptly (no close frame), as a network failure would.
    pub fn drop_connections(&self) {
        let conns = std::mem::take(&mut self.state().connections);
        for (_, tx) in conns {
            let _ = tx.send(Outgoing::Drop);
        }
    }

    /// Asks every open connection to go away (`{"type": "disconnect", "reason": …}`), as Slack does before it
    /// recycles a connection. The stand-in closes them a moment later.
    pub fn request_disconnect(&self, reason: &str) {
        let msg = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": { "host": "standin" },
        })
        .to_string();
        let conns: Vec<_> = self
            .state()
            .connections
            .iter()
            .map(|(_, tx)| tx.clone())
            .collect();
        for tx in conns {
            let _ = tx.send(Outgoing::Text(msg.clone()));
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = tx.send(Outgoing::Drop);
            });
        }
    }
}

/// The routes to merge into the stand-in's router.
pub(crate) fn router(hub: SocketHub) -> Router {
    Router::new()
        .route("/api/apps.connections.open", post(open_handler))
        .route("/socket-mode/link", get(ws_handler))
        .with_state(hub)
}

async fn open_handler(State(hub): State<SocketHub>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let reply = |v: Value| Json(v).into_response();
    match token {
        None | Some("") => return reply(json!({"ok": false, "error": "not_authed"})),
        Some(t) if !t.starts_with("xapp-") => {
            return reply(json!({"ok": false, "error": "not_allowed_token_type"}))
        }
        Some(_) => {}
    }
    let mut st = hub.state();
    if let Some(code) = st.open_faults.pop_front() {
        return reply(json!({"ok": false, "error": code}));
    }
    st.opens += 1;
    st.next_ticket += 1;
    let ticket = format!("{}-{}", st.next_ticket, uuid::Uuid::new_v4().simple());
    st.tickets.insert(ticket.clone());
    reply(json!({
        "ok": true,
        "url": format!("ws://{}/socket-mode/link?ticket={ticket}&app_id=A0001", hub.inner.addr),
    }))
}

#[derive(Deserialize)]
struct Ticket {
    #[serde(default)]
    ticket: String,
}

async fn ws_handler(
    State(hub): State<SocketHub>,
    Query(q): Query<Ticket>,
    ws: WebSocketUpgrade,
) -> Response {
    if !hub.state().tickets.remove(&q.ticket) {
        return (StatusCode::UNAUTHORIZED, "invalid or used ticket").into_response();
    }
    ws.on_upgrade(move |socket| serve_socket(hub, socket))
}

async fn serve_socket(hub: SocketHub, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, count) = {
        let mut st = hub.state();
        st.accepted += 1;
        let id = st.accepted as u64;
        st.connections.push((id, tx));
        (id, st.connections.len())
    };
    let (mut sink, mut stream) = socket.split();
    let hello = json!({
        "type": "hello",
        "num_connections": count,
        "debug_info": { "host": "standin", "build_number": 1, "approximate_connection_time": 18060 },
        "connection_info": { "app_id": "A0001" },
    });
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Outgoing::Text(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Drop) | None => break,
                },
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        let mut st = hub.state();
                        if let Some(envelope_id) = value["envelope_id"].as_str() {
                            st.ack_connections.push((envelope_id.to_string(), id));
                            st.acks.push(value);
                        } else {
                            st.other_messages.push(value);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        hub.state().closes.push((id, frame.map(|f| f.code)));
                        break;
                    }
                    Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    hub.state().connections.retain(|(i, _)| *i != id);
    // Dropping both halves closes the TCP connection without a close frame.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standins::slack::SlackStandin;

    fn http() -> reqwest::Client {
        crate::standins::install_tls();
        reqwest::Client::new()
    }

    async fn open(s: &SlackStandin, token: &str) -> Value {
        http()
            .post(format!("{}/apps.connections.open", s.base_url()))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    #[tokio::test]
    async fn connections_open_wants_an_app_level_token() {
        let s = SlackStandin::start().await.expect("start");
        assert_eq!(
            open(&s, "xoxb-bot-token").await["error"],
            "not_allowed_token_type"
        );
        let ok = open(&s, "xapp-1-A0001-token").await;
        assert_eq!(ok["ok"], true);
        assert!(ok["url"].as_str().unwrap_or_default().starts_with("ws://"));
        s.socket_mode().fail_next_open("internal_error");
        assert_eq!(open(&s, "xapp-1").await["error"], "internal_error");
        assert_eq!(s.socket_mode().opens(), 1);
    }

    #[tokio::test]
    async fn a_client_gets_hello_then_envelopes_and_its_acks_are_recorded() {
        let s = SlackStandin::start().await.expect("start");
        let hub = s.socket_mode();
        let url = open(&s, "xapp-1").await["url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connects");
        let hello = ws.next().await.expect("a message").expect("ok");
        assert!(hello.to_text().unwrap_or_default().contains("\"hello\""));
        let id = hub
            .send_envelope("events_api", json!({"type": "event_callback"}), false)
            .await
            .expect("sent");
        let env: Value = serde_json::from_str(
            ws.next()
                .await
                .expect("a message")
                .expect("ok")
                .to_text()
                .unwrap_or_default(),
        )
        .expect("json");
        assert_eq!(env["envelope_id"], json!(id));
        assert_eq!(env["type"], "events_api");
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"envelope_id": id}).to_string().into(),
        ))
        .await
        .expect("ack sent");
        let ack = hub.wait_for_ack(&id, Duration::from_secs(5)).await;
        assert_eq!(ack, Some(json!({"envelope_id": id})));

        // A used ticket does not open a second connection.
        assert!(tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err());

        hub.drop_connections();
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the drop is noticed");
        assert!(!matches!(
            next,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ));
    }
}
