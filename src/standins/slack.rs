//! The built-in Slack stand-in: a fake Slack Web API server on `127.0.0.1:0` that answers like the real
//! service, used by `incident-bot demo` and by the integration tests.
//!
//! What lives here:
//! - [`SlackStandin`]: the server (methods under `/api/<method>`, the file-upload URL, a `response_url`
//!   receiver), its recorded calls, fault injection ([`Fault`]) and state queries ([`Channel`], [`Message`]).
//! - [`blocks_to_text`]: a plain-text rendering of Block Kit, used by [`SlackStandin::render_channel`].
//! - Crate-internal plumbing shared with the pager stand-in (`crate::standins::pager`): a listener whose
//!   connections can be dropped on purpose ([`Fault::Drop`]) and the server start/stop handle.
//!
//! Messages and views that break Slack's size limits are refused as Slack refuses them ([`crate::slack::limits`]:
//! `invalid_blocks`, `msg_too_long`, `invalid_arguments`); a topic over 250 characters gets `too_long`.
//!
//! Requests are accepted as POST JSON (what slack-morphism sends, token in `Authorization: Bearer`),
//! POST form-urlencoded and GET with a query string; every call is recorded with its decoded parameters.
//! Behaviour that deliberately differs from real Slack: public channels accept posts without the bot
//! being a member (as with the `chat:write.public` scope); `chat.postEphemeral` does not check that the
//! user is in the channel; `thread_ts` is not checked against existing messages.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The bot's own user id, as `auth.test` reports it.
pub const BOT_USER_ID: &str = "UBOT0001";
/// The bot id, as `auth.test` reports it.
pub const BOT_ID: &str = "B0001";
pub use super::TEAM_ID;
/// The id of the pre-seeded `#incidents` channel.
pub const INCIDENTS_CHANNEL_ID: &str = "CINCIDENTS";
/// The id of the pre-seeded `#general` channel.
pub const GENERAL_CHANNEL_ID: &str = "CGENERAL";

/// A fault to inject into the next call of one method (or pager endpoint); faults are consumed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with `{"ok":false,"error":<this>}`; nothing is changed.
    Error(String),
    /// HTTP 429 with a `Retry-After` header and `{"ok":false,"error":"ratelimited"}`; nothing is changed.
    RateLimited { retry_after_secs: u64 },
    /// That HTTP status with an HTML body (as a load balancer would answer); nothing is changed.
    Status(u16),
    /// The call takes effect, then the reply comes after this delay.
    Delay(Duration),
    /// The call takes effect, then no reply ever comes (the client must time out).
    Hang,
    /// The call takes effect, then the TCP connection is closed without any response.
    Drop,
}

impl Fault {
    /// Shorthand for [`Fault::Error`].
    pub fn error(code: impl Into<String>) -> Fault {
        Fault::Error(code.into())
    }
}

/// One call the stand-in received.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// The Web API method, e.g. `chat.postMessage`.
    pub method: String,
    /// Query and body parameters merged (body wins); JSON values as sent, form/query values as strings.
    pub params: Map<String, Value>,
    /// The request's `Content-Type` header ("" when absent).
    pub content_type: String,
    /// `GET` or `POST`.
    pub http_method: String,
    /// When it arrived.
    pub at: Instant,
}

/// A channel as the stand-in holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub topic: String,
    pub members: Vec<String>,
    /// In posting order (oldest first), thread replies included.
    pub messages: Vec<Message>,
    /// The `ts` of pinned messages, in pinning order.
    pub pins: Vec<String>,
    pub bookmarks: Vec<Bookmark>,
    pub creator: String,
    pub is_private: bool,
    /// Unix seconds.
    pub created: i64,
}

/// A message in a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub ts: String,
    pub user: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub attachments: Option<Value>,
    pub thread_ts: Option<String>,
    /// How many times `chat.update` changed it.
    pub edited: u32,
    /// Titles (or names) of files shared with this message.
    pub files: Vec<String>,
}

/// A channel bookmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub id: String,
    pub title: String,
    pub link: String,
}

/// A file completed with `files.completeUploadExternal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The channel it was shared to ("" when not shared).
    pub channel_id: String,
    pub filename: String,
    pub bytes: Vec<u8>,
    pub title: String,
}

/// The fake Slack server. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct SlackStandin {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    state: Mutex<SlackState>,
    socket: super::slack_socket::SocketHub,
}

struct PendingUpload {
    filename: String,
    bytes: Option<Vec<u8>>,
}

struct SlackState {
    channels: Vec<Channel>,
    next_id: u64,
    last_ts_micros: i64,
    faults: HashMap<String, VecDeque<Fault>>,
    latency: Duration,
    token_prefix: String,
    user_tz: HashMap<String, String>,
    /// Display names set with [`SlackStandin::set_user_name`] (default: the id in lower case).
    user_names: HashMap<String, String>,
    /// Where message timestamps come from (default: the wall clock).
    clock: Option<Arc<dyn crate::clock::Clock>>,
    calls: Vec<RecordedCall>,
    /// Requests to the upload URL (`upload`) and to response URLs (`response_url`).
    other_calls: Vec<RecordedCall>,
    ephemerals: Vec<(String, String, String)>,
    views: Vec<Value>,
    pending_uploads: HashMap<String, PendingUpload>,
    uploaded: Vec<UploadedFile>,
    responses: Vec<(String, Value)>,
    next_response: u64,
}

/// A reply before it becomes an HTTP response.
enum Reply {
    Json(StatusCode, Value),
    RateLimited(u64),
    Html(StatusCode),
    Text(StatusCode, String),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, body) => (status, axum::Json(body)).into_response(),
            Reply::RateLimited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response(),
            Reply::Html(status) => html_error(status),
            Reply::Text(status, text) => (status, text).into_response(),
        }
    }
}

/// An HTML error page with that status, as a proxy in front of a service would send.
pub(crate) fn html_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>",
        code = status.as_u16()
    );
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn ok(mut fields: Map<String, Value>) -> Reply {
    fields.insert("ok".into(), Value::Bool(true));
    Reply::Json(StatusCode::OK, Value::Object(fields))
}

fn ok_with(value: Value) -> Reply {
    match value {
        Value::Object(map) => ok(map),
        _ => ok(Map::new()),
    }
}

fn err(code: &str) -> Reply {
    Reply::Json(StatusCode::OK, json!({"ok": false, "error": code}))
}

/// A refusal for breaking Slack's limits, with the reason in `response_metadata.messages` as Slack gives it.
fn refused(r: crate::slack::limits::Refusal) -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"ok": false, "error": r.code, "response_metadata": { "messages": [format!("[ERROR] {}", r.detail)] }}),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Parameter helpers
// ---------------------------------------------------------------------------------------------------------

/// A parameter as a string (numbers and booleans stringified); `None` when absent, null or empty.
fn p_str(params: &Map<String, Value>, key: &str) -> Option<String> {
    let s = match params.get(key)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// A parameter that holds JSON: taken as is, or parsed when it came as a string (form/query).
fn p_json(params: &Map<String, Value>, key: &str) -> Option<Value> {
    match params.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => serde_json::from_str(s).ok(),
        Value::Null => None,
        v => Some(v.clone()),
    }
}

fn p_bool(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn p_usize(params: &Map<String, Value>, key: &str) -> Option<usize> {
    p_str(params, key).and_then(|s| s.parse().ok())
}

/// A list parameter: a JSON array of strings, or a comma-separated string.
fn p_list(params: &Map<String, Value>, key: &str) -> Vec<String> {
    match params.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::trim).map(String::from))
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Decodes a request into one parameter map. `Err` carries the Slack error code for a malformed body.
fn decode_params(
    content_type: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Map<String, Value>, bool), &'static str> {
    let mut params = Map::new();
    let mut token_allowed_in_params = true;
    if let Some(q) = query {
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q) {
            for (k, v) in pairs {
                params.insert(k, Value::String(v));
            }
        }
    }
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("application/json") {
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => {
                    // Slack ignores a token inside a JSON body: it must come as a header.
                    token_allowed_in_params = params.contains_key("token");
                    for (k, v) in map {
                        if k != "token" {
                            params.insert(k, v);
                        }
                    }
                }
                _ => return Err("invalid_json"),
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded")
        || (ct.is_empty() && !body.is_empty())
    {
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|_| "invalid_form_data")?;
        for (k, v) in pairs {
            params.insert(k, Value::String(v));
        }
    }
    Ok((params, token_allowed_in_params))
}

// ---------------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------------

impl SlackStandin {
    /// Starts the stand-in on `127.0.0.1:0`, with `#incidents` (id `CINCIDENTS`) and `#general` pre-seeded.
    pub async fn start() -> io::Result<SlackStandin> {
        super::install_tls();
        let state = SlackState {
            channels: vec![
                seeded_channel(
                    INCIDENTS_CHANNEL_ID,
                    "incidents",
                    "Where incidents are announced",
                ),
                seeded_channel(GENERAL_CHANNEL_ID, "general", "Company-wide announcements"),
            ],
            next_id: 1,
            last_ts_micros: 0,
            faults: HashMap::new(),
            latency: Duration::ZERO,
            token_prefix: "xoxb-".into(),
            user_tz: HashMap::new(),
            user_names: HashMap::new(),
            clock: None,
            calls: Vec::new(),
            other_calls: Vec::new(),
            ephemerals: Vec::new(),
            views: Vec::new(),
            pending_uploads: HashMap::new(),
            uploaded: Vec::new(),
            responses: Vec::new(),
            next_response: 1,
        };
        let listener = ServerListener::bind().await?;
        let server = Server::new(&listener)?;
        let socket = super::slack_socket::SocketHub::new(server.addr);
        let inner = Arc::new(Inner {
            server: server.clone(),
            state: Mutex::new(state),
            socket: socket.clone(),
        });
        let router = Router::new()
            .route("/api/{method}", any(api_handler))
            .route("/upload/{file_id}", post(upload_handler))
            .route("/response/{n}", post(response_handler))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(inner.clone())
            .merge(super::slack_socket::router(socket));
        server.spawn(listener, router);
        Ok(SlackStandin { inner })
    }

    /// `http://127.0.0.1:PORT/api` (no trailing slash): the value for `SLACK_API_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.inner.server.addr)
    }

    /// The Socket Mode endpoint: `apps.connections.open` and the WebSocket (see [`super::slack_socket`]).
    pub fn socket_mode(&self) -> super::slack_socket::SocketHub {
        self.inner.socket.clone()
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.server.addr
    }

    /// Stops accepting connections and closes every open one (hung calls included).
    pub fn shutdown(&self) {
        self.inner.server.shutdown();
    }

    fn state(&self) -> MutexGuard<'_, SlackState> {
        self.inner.lock()
    }

    /// Queues a fault for the next call of `method` (e.g. `chat.postMessage`; `response_url` for the
    /// response_url receiver, `upload` for the file-upload URL). Faults for one method apply in order.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.state()
            .faults
            .entry(method.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Delays every reply by `d`, after the call took effect (like a slow Slack).
    pub fn set_latency(&self, d: Duration) {
        self.state().latency = d;
    }

    /// Sets the IANA time zone `users.info` reports for a user (default `Europe/Berlin`).
    pub fn set_user_tz(&self, user: &str, tz: &str) {
        self.state()
            .user_tz
            .insert(user.to_string(), tz.to_string());
    }

    /// Sets the name `users.info` reports for a user (default: the id in lower case).
    pub fn set_user_name(&self, user: &str, name: &str) {
        self.state()
            .user_names
            .insert(user.to_string(), name.to_string());
    }

    /// A channel's name, by id.
    pub fn channel_name(&self, id: &str) -> Option<String> {
        self.state()
            .channels
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
    }

    /// A user's name as `users.info` reports it.
    pub fn user_name(&self, user: &str) -> String {
        self.state().user_name(user)
    }

    /// Stamps messages with this clock instead of the wall clock (the demo's simulated time).
    pub fn set_clock(&self, clock: Arc<dyn crate::clock::Clock>) {
        self.state().clock = Some(clock);
    }

    /// Sets the prefix a token must have to be accepted (default `xoxb-`).
    pub fn set_token_prefix(&self, prefix: &str) {
        self.state().token_prefix = prefix.to_string();
    }

    /// Every Web API call received (under `/api/`), in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state().calls.clone()
    }

    /// Requests that are not Web API calls: to the file-upload URL (method `upload`, param `file_id`) and
    /// to response URLs (method `response_url`, params = the JSON body), faulted ones included.
    pub fn non_api_calls(&self) -> Vec<RecordedCall> {
        self.state().other_calls.clone()
    }

    /// The calls to one method, in arrival order.
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// How many calls to one method arrived.
    pub fn count(&self, method: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// All channels, in creation order.
    pub fn channels(&self) -> Vec<Channel> {
        self.state().channels.clone()
    }

    /// A channel by name (with or without `#`) or by id.
    pub fn channel_by_name(&self, name: &str) -> Option<Channel> {
        let st = self.state();
        st.find_channel(name).map(|i| st.channels[i].clone())
    }

    /// Creates a public channel directly (no call recorded), e.g. to provoke `name_taken`. Returns its id.
    pub fn create_channel(&self, name: &str) -> String {
        let mut st = self.state();
        if let Some(i) = st.find_channel(name) {
            return st.channels[i].id.clone();
        }
        st.new_channel(name.trim_start_matches('#'), false, "U0ADMIN01")
    }

    /// Posts `count` plain messages from `user` to a channel (by name or id) directly, as people talking there
    /// would (no call recorded). Returns false when there is no such channel.
    pub fn post_as(&self, channel: &str, user: &str, count: usize) -> bool {
        let mut st = self.state();
        let Some(i) = st.find_channel(channel) else {
            return false;
        };
        for n in 0..count {
            let ts = st.next_ts();
            st.channels[i].messages.push(Message {
                ts,
                user: user.to_string(),
                text: format!("message {n}"),
                blocks: None,
                attachments: None,
                thread_ts: None,
                edited: 0,
                files: Vec::new(),
            });
        }
        true
    }

    /// Posts one message with `text` from `user` to a channel (by name or id) directly, as a person would (no
    /// call recorded). Returns its `ts`, or None when there is no such channel.
    pub fn say(&self, channel: &str, user: &str, text: &str) -> Option<String> {
        self.say_in_thread(channel, None, user, text)
    }

    /// Like [`SlackStandin::say`], as a reply in the thread of `thread_ts` when given.
    pub fn say_in_thread(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        user: &str,
        text: &str,
    ) -> Option<String> {
        let mut st = self.state();
        let i = st.find_channel(channel)?;
        let ts = st.next_ts();
        st.channels[i].messages.push(Message {
            ts: ts.clone(),
            user: user.to_string(),
            text: text.to_string(),
            blocks: None,
            attachments: None,
            thread_ts: thread_ts.map(str::to_string),
            edited: 0,
            files: Vec::new(),
        });
        Some(ts)
    }

    /// Ephemeral messages posted: `(channel id, user, text)`.
    pub fn ephemerals(&self) -> Vec<(String, String, String)> {
        self.state().ephemerals.clone()
    }

    /// The `view` of every successful `views.open`, in order.
    pub fn views_opened(&self) -> Vec<Value> {
        self.state().views.clone()
    }

    /// Files completed with `files.completeUploadExternal`, in order.
    pub fn uploaded_files(&self) -> Vec<UploadedFile> {
        self.state().uploaded.clone()
    }

    /// A fresh `response_url` on this stand-in (`http://127.0.0.1:PORT/response/<n>`).
    pub fn response_url(&self) -> String {
        let n = {
            let mut st = self.state();
            let n = st.next_response;
            st.next_response += 1;
            n
        };
        format!("http://{}/response/{n}", self.inner.server.addr)
    }

    /// JSON bodies POSTed to response URLs: `(path, body)`, in arrival order.
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.state().responses.clone()
    }

    /// A plain-text rendering of a channel: name, topic, members, bookmarks, then messages in order
    /// (thread replies indented under their parent), pinned ones marked 📌, Block Kit rendered as text.
    pub fn render_channel(&self, name: &str) -> String {
        let Some(ch) = self.channel_by_name(name) else {
            return format!("(no channel {name})\n");
        };
        render(&ch)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, SlackState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn seeded_channel(id: &str, name: &str, topic: &str) -> Channel {
    Channel {
        id: id.into(),
        name: name.into(),
        topic: topic.into(),
        members: vec![BOT_USER_ID.into()],
        messages: Vec::new(),
        pins: Vec::new(),
        bookmarks: Vec::new(),
        creator: "U0ADMIN01".into(),
        is_private: false,
        created: 1_600_000_000,
    }
}

async fn api_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(method): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let decoded = decode_params(&content_type, query.as_deref(), &body);
    let (params, token_in_params) = match &decoded {
        Ok((p, t)) => (p.clone(), *t),
        Err(_) => (Map::new(), false),
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let token = bearer.or_else(|| {
        if token_in_params {
            p_str(&params, "token")
        } else {
            None
        }
    });

    let (fault, latency, reply) = {
        let mut st = inner.lock();
        st.calls.push(RecordedCall {
            method: method.clone(),
            params: params.clone(),
            content_type,
            http_method: http_method.to_string(),
            at: Instant::now(),
        });
        let fault = st.faults.get_mut(&method).and_then(VecDeque::pop_front);
        let early = match &fault {
            Some(Fault::Error(code)) => Some(err(code)),
            Some(Fault::RateLimited { retry_after_secs }) => {
                Some(Reply::RateLimited(*retry_after_secs))
            }
            Some(Fault::Status(code)) => Some(Reply::Html(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )),
            _ => None,
        };
        let reply = match (early, decoded) {
            (Some(reply), _) => reply,
            (None, Err(code)) => err(code),
            (None, Ok(_)) => match token {
                None => err("not_authed"),
                Some(t) if !t.starts_with(st.token_prefix.as_str()) => err("invalid_auth"),
                Some(_) => st.dispatch(&method, &params, inner.server.addr),
            },
        };
        (fault, st.latency, reply)
    };
    finish(&inner.server, &conn, fault, latency, reply.into_response()).await
}

/// Applies the tail of a fault (delay, hang, dropped connection) and the latency, then yields the reply.
pub(crate) async fn finish(
    server: &Server,
    conn: &Conn,
    fault: Option<Fault>,
    latency: Duration,
    reply: Response,
) -> Response {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Hang) => {
            server.wait_for_shutdown().await;
            conn.drop_connection();
        }
        Some(Fault::Drop) => conn.drop_connection(),
        _ => {}
    }
    reply
}

async fn upload_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (fault, latency, reply) = {
        let mut st = inner.lock();
        st.other_calls.push(RecordedCall {
            method: "upload".into(),
            params: Map::from_iter([("file_id".to_string(), Value::String(file_id.clone()))]),
            content_type: content_type.clone(),
            http_method: "POST".into(),
            at: Instant::now(),
        });
        let fault = st.faults.get_mut("upload").and_then(VecDeque::pop_front);
        let reply = match &fault {
            Some(Fault::Error(_)) | Some(Fault::Status(_)) | Some(Fault::RateLimited { .. }) => {
                let code = match &fault {
                    Some(Fault::Status(c)) => *c,
                    Some(Fault::RateLimited { .. }) => 429,
                    _ => 400,
                };
                Reply::Html(StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST))
            }
            _ => match st.pending_uploads.get_mut(&file_id) {
                None => Reply::Text(StatusCode::NOT_FOUND, "file_not_found".into()),
                Some(pending) => {
                    let bytes = if content_type.starts_with("multipart/form-data") {
                        multipart_first_part(&content_type, &body).unwrap_or_else(|| body.to_vec())
                    } else {
                        body.to_vec()
                    };
                    let len = bytes.len();
                    pending.bytes = Some(bytes);
                    Reply::Text(StatusCode::OK, format!("OK - {len}"))
                }
            },
        };
        (fault, st.latency, reply)
    };
    finish(&inner.server, &conn, fault, latency, reply.into_response()).await
}

/// The body of the first part of a multipart/form-data upload.
fn multipart_first_part(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes())? + delimiter.len();
    let rest = &body[start..];
    let header_end = find(rest, b"\r\n\r\n")? + 4;
    let content = &rest[header_end..];
    let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
    Some(content[..end].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn response_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(n): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (fault, latency, reply) = {
        let mut st = inner.lock();
        let path = format!("/response/{n}");
        let value = serde_json::from_slice::<Value>(&body).ok();
        st.other_calls.push(RecordedCall {
            method: "response_url".into(),
            params: value
                .as_ref()
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            content_type,
            http_method: "POST".into(),
            at: Instant::now(),
        });
        let fault = st
            .faults
            .get_mut("response_url")
            .and_then(VecDeque::pop_front);
        let reply = match (&fault, value) {
            (Some(Fault::Error(code)), _) => err(code),
            (Some(Fault::RateLimited { retry_after_secs }), _) => {
                Reply::RateLimited(*retry_after_secs)
            }
            (Some(Fault::Status(code)), _) => Reply::Html(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            (_, None) => Reply::Json(
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error": "invalid_payload"}),
            ),
            (_, Some(v)) => {
                st.responses.push((path, v));
                ok(Map::new())
            }
        };
        (fault, st.latency, reply)
    };
    finish(&inner.server, &conn, fault, latency, reply.into_response()).await
}

// ---------------------------------------------------------------------------------------------------------
// Web API methods
// ---------------------------------------------------------------------------------------------------------

impl SlackState {
    fn find_channel(&self, key: &str) -> Option<usize> {
        let key = key.trim();
        if let Some(i) = self.channels.iter().position(|c| c.id == key) {
            return Some(i);
        }
        let name = key.trim_start_matches('#');
        self.channels.iter().position(|c| c.name == name)
    }

    /// A channel the bot can see (private channels only when it is a member).
    fn visible_channel(&self, params: &Map<String, Value>, key: &str) -> Result<usize, Reply> {
        let Some(name) = p_str(params, key) else {
            return Err(err("channel_not_found"));
        };
        match self.find_channel(&name) {
            Some(i)
                if !self.channels[i].is_private
                    || self.channels[i].members.iter().any(|m| m == BOT_USER_ID) =>
            {
                Ok(i)
            }
            _ => Err(err("channel_not_found")),
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix}{:08X}", 0x0A00_0000 + n)
    }

    fn new_channel(&mut self, name: &str, is_private: bool, creator: &str) -> String {
        let id = self.new_id(if is_private { "G" } else { "C" });
        let mut members = vec![creator.to_string()];
        if creator != BOT_USER_ID {
            members.push(BOT_USER_ID.to_string());
        }
        self.channels.push(Channel {
            id: id.clone(),
            name: name.to_string(),
            topic: String::new(),
            members,
            messages: Vec::new(),
            pins: Vec::new(),
            bookmarks: Vec::new(),
            creator: creator.to_string(),
            is_private,
            created: now_secs(),
        });
        id
    }

    fn user_name(&self, user: &str) -> String {
        if let Some(n) = self.user_names.get(user) {
            n.clone()
        } else if user == BOT_USER_ID {
            "incident-bot".to_string()
        } else {
            user.to_lowercase()
        }
    }

    /// A fresh message timestamp: microseconds of the clock (the wall clock unless one was set), strictly
    /// increasing.
    fn next_ts(&mut self) -> String {
        let now = match &self.clock {
            Some(c) => c.now().timestamp_micros(),
            None => chrono::Utc::now().timestamp_micros(),
        };
        let micros = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn dispatch(&mut self, method: &str, params: &Map<String, Value>, addr: SocketAddr) -> Reply {
        let result = match method {
            "api.test" => Ok(ok(Map::new())),
            "auth.test" => Ok(ok_with(json!({
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user": "incident-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": false,
            }))),
            "conversations.create" => self.conversations_create(params),
            "conversations.setTopic" => self.conversations_set_topic(params),
            "conversations.invite" => self.conversations_invite(params),
            "conversations.info" => self.conversations_info(params),
            "conversations.list" => self.conversations_list(params),
            "conversations.history" => self.conversations_history(params),
            "conversations.replies" => self.conversations_replies(params),
            "conversations.join" => self.conversations_join(params),
            "chat.postMessage" => self.chat_post_message(params),
            "chat.update" => self.chat_update(params),
            "chat.postEphemeral" => self.chat_post_ephemeral(params),
            "chat.getPermalink" => self.chat_get_permalink(params),
            "pins.add" => self.pins_add(params),
            "pins.list" => self.pins_list(params),
            "bookmarks.add" => self.bookmarks_add(params),
            "bookmarks.list" => self.bookmarks_list(params),
            "views.open" => self.views_open(params),
            "users.info" => self.users_info(params),
            "files.getUploadURLExternal" => self.files_get_upload_url(params, addr),
            "files.completeUploadExternal" => self.files_complete_upload(params),
            _ => Err(err("unknown_method")),
        };
        result.unwrap_or_else(|e| e)
    }

    fn conversations_create(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let name = p_str(params, "name").ok_or_else(|| err("invalid_name_required"))?;
        if name.chars().count() > 80 {
            return Err(err("invalid_name_maxlength"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(err("invalid_name_specials"));
        }
        if self.channels.iter().any(|c| c.name == name) {
            return Err(err("name_taken"));
        }
        let is_private = p_bool(params, "is_private");
        let id = self.new_channel(&name, is_private, BOT_USER_ID);
        let i = self.channels.len() - 1;
        debug_assert_eq!(self.channels[i].id, id);
        Ok(ok_with(
            json!({ "channel": channel_json(&self.channels[i]) }),
        ))
    }

    fn conversations_set_topic(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let topic = p_str(params, "topic").unwrap_or_default();
        if topic.chars().count() > 250 {
            return Err(err("too_long"));
        }
        self.channels[i].topic = topic;
        Ok(ok_with(
            json!({ "channel": channel_json(&self.channels[i]) }),
        ))
    }

    fn conversations_invite(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let users = p_list(params, "users");
        if users.is_empty() {
            return Err(err("no_user"));
        }
        if users.iter().any(|u| u == BOT_USER_ID) {
            return Err(err("cant_invite_self"));
        }
        if users.iter().any(|u| !looks_like_user_id(u)) {
            return Err(err("user_not_found"));
        }
        let ch = &mut self.channels[i];
        let new: Vec<String> = users
            .into_iter()
            .filter(|u| !ch.members.contains(u))
            .collect();
        if new.is_empty() {
            return Err(err("already_in_channel"));
        }
        for u in new {
            if !ch.members.contains(&u) {
                ch.members.push(u);
            }
        }
        Ok(ok_with(json!({ "channel": channel_json(ch) })))
    }

    fn conversations_info(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        Ok(ok_with(
            json!({ "channel": channel_json(&self.channels[i]) }),
        ))
    }

    fn conversations_list(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let limit = p_usize(params, "limit").unwrap_or(100).clamp(1, 1000);
        let offset = match p_str(params, "cursor") {
            None => 0,
            Some(c) => decode_cursor(&c).ok_or_else(|| err("invalid_cursor"))?,
        };
        let types = p_list(params, "types");
        let want_public = types.is_empty() || types.iter().any(|t| t == "public_channel");
        let want_private = types.iter().any(|t| t == "private_channel");
        let visible: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| {
                if c.is_private {
                    want_private && c.members.iter().any(|m| m == BOT_USER_ID)
                } else {
                    want_public
                }
            })
            .collect();
        let page: Vec<Value> = visible
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| channel_json(c))
            .collect();
        let next = if offset + limit < visible.len() {
            encode_cursor(offset + limit)
        } else {
            String::new()
        };
        Ok(ok_with(json!({
            "channels": page,
            "response_metadata": { "next_cursor": next },
        })))
    }

    /// Like Slack's: top-level messages newest first, at most `limit` (default 100, at most 1000) a page; `oldest`
    /// and `latest` bound the `ts` (exclusive unless `inclusive`); the `next_cursor` names where the next page
    /// starts, so messages posted between two pages do not shift it.
    fn conversations_history(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let limit = p_usize(params, "limit").unwrap_or(100).clamp(1, 1000);
        let bound = |key: &str| match p_str(params, key) {
            None => Ok(None),
            Some(v) => ts_micros(&v)
                .map(Some)
                .ok_or_else(|| err("invalid_ts_oldest")),
        };
        let oldest = bound("oldest")?;
        let latest = bound("latest")?;
        let inclusive = p_bool(params, "inclusive");
        // The cursor holds the `ts` of the next message to return: that one and older ones follow.
        let before = match p_str(params, "cursor") {
            None => None,
            Some(c) => Some(decode_history_cursor(&c).ok_or_else(|| err("invalid_cursor"))?),
        };
        let ch = &self.channels[i];
        // History holds top-level messages only (thread replies live in conversations.replies), newest first.
        let top: Vec<&Message> = ch
            .messages
            .iter()
            .rev()
            .filter(|m| m.thread_ts.as_deref().is_none_or(|t| t == m.ts))
            .filter(|m| {
                let at = ts_micros(&m.ts).unwrap_or_default();
                let after_oldest = oldest.is_none_or(|o| at > o || (inclusive && at == o));
                let before_latest = latest.is_none_or(|l| at < l || (inclusive && at == l));
                after_oldest && before_latest && before.is_none_or(|b| at <= b)
            })
            .collect();
        let page: Vec<Value> = top
            .iter()
            .take(limit)
            .map(|m| message_json(ch, m))
            .collect();
        let has_more = top.len() > limit;
        let next = if has_more {
            encode_history_cursor(&top[limit].ts)
        } else {
            String::new()
        };
        Ok(ok_with(json!({
            "messages": page,
            "has_more": has_more,
            "pin_count": ch.pins.len(),
            "response_metadata": { "next_cursor": next },
        })))
    }

    fn conversations_replies(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let ts = p_str(params, "ts").ok_or_else(|| err("invalid_arguments"))?;
        let ch = &self.channels[i];
        if !ch.messages.iter().any(|m| m.ts == ts) {
            return Err(err("thread_not_found"));
        }
        let messages: Vec<Value> = ch
            .messages
            .iter()
            .filter(|m| m.ts == ts || m.thread_ts.as_deref() == Some(ts.as_str()))
            .map(|m| message_json(ch, m))
            .collect();
        Ok(ok_with(json!({
            "messages": messages,
            "has_more": false,
            "response_metadata": { "next_cursor": "" },
        })))
    }

    fn conversations_join(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let Some(key) = p_str(params, "channel") else {
            return Err(err("channel_not_found"));
        };
        let i = self
            .find_channel(&key)
            .ok_or_else(|| err("channel_not_found"))?;
        let ch = &mut self.channels[i];
        if ch.members.iter().any(|m| m == BOT_USER_ID) {
            return Ok(ok_with(json!({
                "channel": channel_json(ch),
                "warning": "already_in_channel",
                "response_metadata": { "warnings": ["already_in_channel"] },
            })));
        }
        if ch.is_private {
            return Err(err("channel_not_found"));
        }
        ch.members.push(BOT_USER_ID.to_string());
        Ok(ok_with(json!({ "channel": channel_json(ch) })))
    }

    /// The bot's direct-message channel with `user`, opened on first use (as `chat.postMessage` to a user ID does).
    fn dm_channel(&mut self, user: &str) -> usize {
        let name = format!("dm-{}", user.to_lowercase());
        if let Some(i) = self.channels.iter().position(|c| c.name == name) {
            return i;
        }
        let id = self.new_id("D");
        self.channels.push(Channel {
            id,
            name,
            topic: String::new(),
            members: vec![BOT_USER_ID.to_string(), user.to_string()],
            messages: Vec::new(),
            pins: Vec::new(),
            bookmarks: Vec::new(),
            creator: BOT_USER_ID.to_string(),
            is_private: true,
            created: now_secs(),
        });
        self.channels.len() - 1
    }

    fn chat_post_message(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let target = p_str(params, "channel").unwrap_or_default();
        let is_user = target.len() > 1
            && target.starts_with(['U', 'W'])
            && target.chars().all(|c| c.is_ascii_alphanumeric());
        let i = if is_user && self.find_channel(&target).is_none() {
            self.dm_channel(&target)
        } else {
            self.visible_channel(params, "channel")?
        };
        let text = p_str(params, "text");
        let blocks =
            p_json(params, "blocks").filter(|b| b.as_array().is_some_and(|a| !a.is_empty()));
        let attachments = p_json(params, "attachments").filter(|a| a.is_array());
        if text.is_none() && blocks.is_none() && attachments.is_none() {
            return Err(err("no_text"));
        }
        crate::slack::limits::check_message(text.as_deref(), blocks.as_ref()).map_err(refused)?;
        let ts = self.next_ts();
        let message = Message {
            ts: ts.clone(),
            user: BOT_USER_ID.to_string(),
            text: text.unwrap_or_default(),
            blocks,
            attachments,
            thread_ts: p_str(params, "thread_ts"),
            edited: 0,
            files: Vec::new(),
        };
        let ch = &mut self.channels[i];
        ch.messages.push(message);
        let ch = &self.channels[i];
        let m = ch
            .messages
            .last()
            .map(|m| message_json(ch, m))
            .unwrap_or(Value::Null);
        Ok(ok_with(json!({ "channel": ch.id, "ts": ts, "message": m })))
    }

    fn chat_update(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let ts = p_str(params, "ts").ok_or_else(|| err("message_not_found"))?;
        let text = p_str(params, "text");
        let blocks = p_json(params, "blocks").filter(Value::is_array);
        let attachments = p_json(params, "attachments").filter(Value::is_array);
        if text.is_none() && blocks.is_none() && attachments.is_none() {
            return Err(err("no_text"));
        }
        crate::slack::limits::check_message(text.as_deref(), blocks.as_ref()).map_err(refused)?;
        let ch = &mut self.channels[i];
        let m = ch
            .messages
            .iter_mut()
            .find(|m| m.ts == ts)
            .ok_or_else(|| err("message_not_found"))?;
        if m.user != BOT_USER_ID {
            return Err(err("cant_update_message"));
        }
        m.text = text.unwrap_or_default();
        if blocks.is_some() {
            m.blocks = blocks;
        }
        if attachments.is_some() {
            m.attachments = attachments;
        }
        m.edited += 1;
        let m = m.clone();
        let mut message = message_json(ch, &m);
        if let Value::Object(map) = &mut message {
            map.remove("ts");
        }
        Ok(ok_with(json!({
            "channel": ch.id,
            "ts": ts,
            "text": m.text,
            "message": message,
        })))
    }

    fn chat_post_ephemeral(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let user = p_str(params, "user").ok_or_else(|| err("user_not_found"))?;
        let text = p_str(params, "text");
        let blocks = p_json(params, "blocks").filter(Value::is_array);
        if text.is_none() && blocks.is_none() {
            return Err(err("no_text"));
        }
        crate::slack::limits::check_message(text.as_deref(), blocks.as_ref()).map_err(refused)?;
        let rendered = match (text, &blocks) {
            (Some(t), _) => t,
            (None, Some(b)) => blocks_to_text(b),
            (None, None) => String::new(),
        };
        let channel_id = self.channels[i].id.clone();
        self.ephemerals.push((channel_id, user, rendered));
        let ts = self.next_ts();
        Ok(ok_with(json!({ "message_ts": ts })))
    }

    fn chat_get_permalink(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let ts = p_str(params, "message_ts").ok_or_else(|| err("message_not_found"))?;
        let ch = &self.channels[i];
        if !ch.messages.iter().any(|m| m.ts == ts) {
            return Err(err("message_not_found"));
        }
        Ok(ok_with(json!({
            "channel": ch.id,
            "permalink": format!("https://acme.slack.com/archives/{}/p{}", ch.id, ts.replace('.', "")),
        })))
    }

    fn pins_add(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let ts = p_str(params, "timestamp").ok_or_else(|| err("no_item_specified"))?;
        let ch = &mut self.channels[i];
        if !ch.messages.iter().any(|m| m.ts == ts) {
            return Err(err("message_not_found"));
        }
        if ch.pins.contains(&ts) {
            return Err(err("already_pinned"));
        }
        ch.pins.push(ts);
        Ok(ok(Map::new()))
    }

    fn pins_list(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel")?;
        let ch = &self.channels[i];
        let items: Vec<Value> = ch
            .pins
            .iter()
            .filter_map(|ts| ch.messages.iter().find(|m| &m.ts == ts))
            .map(|m| {
                json!({
                    "type": "message",
                    "channel": ch.id,
                    "created": ts_secs(&m.ts),
                    "created_by": BOT_USER_ID,
                    "message": message_json(ch, m),
                })
            })
            .collect();
        Ok(ok_with(json!({ "items": items })))
    }

    fn bookmarks_add(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel_id")?;
        let title = p_str(params, "title").ok_or_else(|| err("invalid_arguments"))?;
        let kind = p_str(params, "type").ok_or_else(|| err("invalid_arguments"))?;
        if kind != "link" {
            return Err(err("invalid_bookmark_type"));
        }
        let link = p_str(params, "link").ok_or_else(|| err("invalid_arguments"))?;
        if !(link.starts_with("http://") || link.starts_with("https://")) {
            return Err(err("invalid_link"));
        }
        let id = self.new_id("Bk");
        let ch = &mut self.channels[i];
        let bookmark = Bookmark { id, title, link };
        ch.bookmarks.push(bookmark.clone());
        let emoji = p_str(params, "emoji");
        Ok(ok_with(
            json!({ "bookmark": bookmark_json(&ch.id, &bookmark, emoji) }),
        ))
    }

    fn bookmarks_list(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let i = self.visible_channel(params, "channel_id")?;
        let ch = &self.channels[i];
        let list: Vec<Value> = ch
            .bookmarks
            .iter()
            .map(|b| bookmark_json(&ch.id, b, None))
            .collect();
        Ok(ok_with(json!({ "bookmarks": list })))
    }

    fn views_open(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let trigger =
            p_str(params, "trigger_id").or_else(|| p_str(params, "interactivity_pointer"));
        if trigger.is_none() {
            return Err(err("invalid_arguments"));
        }
        let view = p_json(params, "view").ok_or_else(|| err("invalid_arguments"))?;
        let kind = view.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "modal" && kind != "home" {
            return Err(err("invalid_arguments"));
        }
        crate::slack::limits::check_view(&view).map_err(refused)?;
        let id = self.new_id("V");
        self.views.push(view.clone());
        let mut out = view.as_object().cloned().unwrap_or_default();
        out.insert("id".into(), json!(id));
        out.insert("team_id".into(), json!(TEAM_ID));
        out.insert("state".into(), json!({ "values": {} }));
        out.insert(
            "hash".into(),
            json!(format!("{}.{}", now_secs(), id.to_lowercase())),
        );
        out.insert("root_view_id".into(), json!(id));
        out.insert("app_id".into(), json!("A0001"));
        out.insert("bot_id".into(), json!(BOT_ID));
        Ok(ok_with(json!({ "view": Value::Object(out) })))
    }

    fn users_info(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let user = p_str(params, "user").ok_or_else(|| err("user_not_found"))?;
        if !looks_like_user_id(&user) {
            return Err(err("user_not_found"));
        }
        let tz = self
            .user_tz
            .get(&user)
            .cloned()
            .unwrap_or_else(|| "Europe/Berlin".to_string());
        let offset = tz_offset_secs(&tz);
        let name = self.user_name(&user);
        Ok(ok_with(json!({
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": name,
                "deleted": false,
                "is_bot": user == BOT_USER_ID,
                "tz": tz,
                "tz_label": tz,
                "tz_offset": offset,
                "profile": { "real_name": name, "display_name": name },
            }
        })))
    }

    fn files_get_upload_url(
        &mut self,
        params: &Map<String, Value>,
        addr: SocketAddr,
    ) -> Result<Reply, Reply> {
        let filename = p_str(params, "filename").ok_or_else(|| err("invalid_arguments"))?;
        let length = p_usize(params, "length").ok_or_else(|| err("invalid_arguments"))?;
        if length == 0 {
            return Err(err("invalid_arguments"));
        }
        let file_id = self.new_id("F");
        self.pending_uploads.insert(
            file_id.clone(),
            PendingUpload {
                filename,
                bytes: None,
            },
        );
        Ok(ok_with(json!({
            "upload_url": format!("http://{addr}/upload/{file_id}"),
            "file_id": file_id,
        })))
    }

    fn files_complete_upload(&mut self, params: &Map<String, Value>) -> Result<Reply, Reply> {
        let files = p_json(params, "files")
            .and_then(|v| v.as_array().cloned())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| err("invalid_arguments"))?;
        let channel =
            p_str(params, "channel_id").or_else(|| p_list(params, "channels").into_iter().next());
        let channel_idx = match channel {
            Some(_) => Some(self.visible_channel(
                &Map::from_iter([("channel".to_string(), json!(channel))]),
                "channel",
            )?),
            None => None,
        };
        let mut completed = Vec::new();
        for f in &files {
            let id = f.get("id").and_then(Value::as_str).unwrap_or("");
            let pending = self
                .pending_uploads
                .get(id)
                .ok_or_else(|| err("file_not_found"))?;
            if pending.bytes.is_none() {
                return Err(err("file_upload_not_found"));
            }
            let title = f
                .get("title")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| pending.filename.clone());
            completed.push((id.to_string(), title));
        }
        let channel_id = channel_idx
            .map(|i| self.channels[i].id.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut titles = Vec::new();
        for (id, title) in completed {
            if let Some(p) = self.pending_uploads.remove(&id) {
                out.push(json!({ "id": id, "title": title, "name": p.filename }));
                titles.push(title.clone());
                self.uploaded.push(UploadedFile {
                    channel_id: channel_id.clone(),
                    filename: p.filename,
                    bytes: p.bytes.unwrap_or_default(),
                    title,
                });
            }
        }
        if let Some(i) = channel_idx {
            let ts = self.next_ts();
            self.channels[i].messages.push(Message {
                ts,
                user: BOT_USER_ID.to_string(),
                text: p_str(params, "initial_comment").unwrap_or_default(),
                blocks: None,
                attachments: None,
                thread_ts: p_str(params, "thread_ts"),
                edited: 0,
                files: titles,
            });
        }
        Ok(ok_with(json!({ "files": out })))
    }
}

fn looks_like_user_id(u: &str) -> bool {
    u.len() >= 2
        && (u.starts_with('U') || u.starts_with('W'))
        && u.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn tz_offset_secs(tz: &str) -> i32 {
    use chrono::{Offset, TimeZone};
    match tz.parse::<chrono_tz::Tz>() {
        Ok(zone) => zone
            .offset_from_utc_datetime(&chrono::Utc::now().naive_utc())
            .fix()
            .local_minus_utc(),
        Err(_) => 0,
    }
}

fn encode_cursor(offset: usize) -> String {
    format!("dXNlcjpV{offset}")
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    cursor.strip_prefix("dXNlcjpV")?.parse().ok()
}

fn encode_history_cursor(ts: &str) -> String {
    format!("bmV4dF90czo{ts}")
}

fn decode_history_cursor(cursor: &str) -> Option<i128> {
    ts_micros(cursor.strip_prefix("bmV4dF90czo")?)
}

/// A message `ts` (`"1764100000.000100"`, or a number of seconds) in microseconds.
fn ts_micros(ts: &str) -> Option<i128> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = secs.parse().ok()?;
    let micros: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(secs * 1_000_000 + micros)
}

fn ts_secs(ts: &str) -> i64 {
    ts.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn channel_json(ch: &Channel) -> Value {
    json!({
        "id": ch.id,
        "name": ch.name,
        "name_normalized": ch.name,
        "created": ch.created,
        "creator": ch.creator,
        "is_channel": !ch.is_private,
        "is_group": ch.is_private,
        "is_im": false,
        "is_mpim": false,
        "is_private": ch.is_private,
        "is_archived": false,
        "is_general": ch.name == "general",
        "is_shared": false,
        "is_org_shared": false,
        "is_member": ch.members.iter().any(|m| m == BOT_USER_ID),
        "topic": { "value": ch.topic, "creator": if ch.topic.is_empty() { "" } else { BOT_USER_ID }, "last_set": 0 },
        "purpose": { "value": "", "creator": "", "last_set": 0 },
        "num_members": ch.members.len(),
    })
}

fn message_json(ch: &Channel, m: &Message) -> Value {
    let mut out = json!({
        "type": "message",
        "ts": m.ts,
        "user": m.user,
        "text": m.text,
        "team": TEAM_ID,
    });
    if let Value::Object(map) = &mut out {
        if m.user == BOT_USER_ID {
            map.insert("bot_id".into(), json!(BOT_ID));
            map.insert("app_id".into(), json!("A0001"));
        }
        if let Some(b) = &m.blocks {
            map.insert("blocks".into(), b.clone());
        }
        if let Some(a) = &m.attachments {
            map.insert("attachments".into(), a.clone());
        }
        if let Some(t) = &m.thread_ts {
            map.insert("thread_ts".into(), json!(t));
        }
        if m.edited > 0 {
            map.insert("edited".into(), json!({ "user": BOT_USER_ID, "ts": m.ts }));
        }
        let replies = ch
            .messages
            .iter()
            .filter(|r| r.ts != m.ts && r.thread_ts.as_deref() == Some(m.ts.as_str()))
            .count();
        if replies > 0 {
            map.insert("reply_count".into(), json!(replies));
        }
        if ch.pins.contains(&m.ts) {
            map.insert("pinned_to".into(), json!([ch.id]));
        }
    }
    out
}

fn bookmark_json(channel_id: &str, b: &Bookmark, emoji: Option<String>) -> Value {
    let now = now_secs();
    json!({
        "id": b.id,
        "channel_id": channel_id,
        "title": b.title,
        "link": b.link,
        "emoji": emoji,
        "icon_url": null,
        "type": "link",
        "entity_id": null,
        "date_created": now,
        "date_updated": 0,
        "rank": "U",
        "last_updated_by_user_id": BOT_USER_ID,
        "last_updated_by_team_id": TEAM_ID,
        "shortcut_id": null,
        "app_id": "A0001",
    })
}

// ---------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------

fn render(ch: &Channel) -> String {
    let mut out = String::new();
    let privacy = if ch.is_private { " (private)" } else { "" };
    out.push_str(&format!("#{} [{}]{privacy}\n", ch.name, ch.id));
    let topic = if ch.topic.is_empty() {
        "(none)"
    } else {
        ch.topic.as_str()
    };
    out.push_str(&format!("Topic: {topic}\n"));
    out.push_str(&format!("Members: {}\n", ch.members.join(", ")));
    if !ch.bookmarks.is_empty() {
        out.push_str("Bookmarks:\n");
        for b in &ch.bookmarks {
            out.push_str(&format!("  🔖 {} — {}\n", b.title, b.link));
        }
    }
    out.push_str(&format!("{}\n", "─".repeat(60)));
    let is_top = |m: &Message| m.thread_ts.as_deref().is_none_or(|t| t == m.ts);
    for m in ch.messages.iter().filter(|m| is_top(m)) {
        render_message(&mut out, ch, m, "");
        for reply in ch
            .messages
            .iter()
            .filter(|r| !is_top(r) && r.thread_ts.as_deref() == Some(m.ts.as_str()))
        {
            render_message(&mut out, ch, reply, "    ↳ ");
        }
    }
    // Replies whose parent is not in the channel still show up.
    for orphan in ch.messages.iter().filter(|r| {
        !is_top(r)
            && !ch
                .messages
                .iter()
                .any(|m| Some(m.ts.as_str()) == r.thread_ts.as_deref())
    }) {
        render_message(&mut out, ch, orphan, "    ↳ ");
    }
    out
}

fn render_message(out: &mut String, ch: &Channel, m: &Message, prefix: &str) {
    let time = chrono::DateTime::from_timestamp(ts_secs(&m.ts), 0)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
    let pin = if ch.pins.contains(&m.ts) { " 📌" } else { "" };
    let edited = if m.edited > 0 { " (edited)" } else { "" };
    out.push_str(&format!("{prefix}[{time}] {}{pin}{edited}\n", m.user));
    let mut body = String::new();
    if let Some(blocks) = &m.blocks {
        body.push_str(&blocks_to_text(blocks));
    } else if !m.text.is_empty() {
        body.push_str(&m.text);
    }
    if let Some(Value::Array(atts)) = &m.attachments {
        for a in atts {
            let part = if let Some(b) = a.get("blocks") {
                blocks_to_text(b)
            } else {
                let mut lines = Vec::new();
                for key in ["pretext", "title", "text"] {
                    if let Some(s) = a.get(key).and_then(Value::as_str) {
                        lines.push(s.to_string());
                    }
                }
                if let Some(Value::Array(fields)) = a.get("fields") {
                    for f in fields {
                        let t = f.get("title").and_then(Value::as_str).unwrap_or("");
                        let v = f.get("value").and_then(Value::as_str).unwrap_or("");
                        lines.push(format!("{t}: {v}"));
                    }
                }
                lines.join("\n")
            };
            if !part.is_empty() {
                if !body.is_empty() {
                    body.push('\n');
                }
                body.push_str(&part);
            }
        }
    }
    for f in &m.files {
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&format!("📎 {f}"));
    }
    let indent = format!("{}  ", " ".repeat(prefix.chars().count()));
    for line in body.lines() {
        out.push_str(&format!("{indent}{line}\n"));
    }
}

/// The text of a Block Kit text object (`{"type":"mrkdwn"|"plain_text","text":…}`) or a bare string.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("text").map(text_of).unwrap_or_default(),
        _ => String::new(),
    }
}

fn element_to_text(e: &Value) -> String {
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "button" => {
            let label = e.get("text").map(text_of).unwrap_or_default();
            match e.get("style").and_then(Value::as_str) {
                Some(style) => format!("[{label}]({style})"),
                None => format!("[{label}]"),
            }
        }
        "image" => format!(
            "[image: {}]",
            e.get("alt_text").map(text_of).unwrap_or_default()
        ),
        "mrkdwn" | "plain_text" => text_of(e),
        "overflow" => "[⋯]".to_string(),
        k if k.ends_with("_select") || k == "datepicker" || k == "timepicker" => {
            let label = e
                .get("placeholder")
                .map(text_of)
                .unwrap_or_else(|| k.to_string());
            format!("[{label} ▾]")
        }
        k => format!("[{k}]"),
    }
}

fn rich_text_of(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            match o.get("type").and_then(Value::as_str) {
                Some("text") | Some("link") => {
                    if let Some(t) = o.get("text").and_then(Value::as_str) {
                        out.push_str(t);
                    } else if let Some(u) = o.get("url").and_then(Value::as_str) {
                        out.push_str(u);
                    }
                    return;
                }
                Some("user") => {
                    if let Some(u) = o.get("user_id").and_then(Value::as_str) {
                        out.push_str(&format!("<@{u}>"));
                    }
                    return;
                }
                Some("channel") => {
                    if let Some(c) = o.get("channel_id").and_then(Value::as_str) {
                        out.push_str(&format!("<#{c}>"));
                    }
                    return;
                }
                Some("emoji") => {
                    if let Some(n) = o.get("name").and_then(Value::as_str) {
                        out.push_str(&format!(":{n}:"));
                    }
                    return;
                }
                _ => {}
            }
            if let Some(Value::Array(elems)) = o.get("elements") {
                for e in elems {
                    rich_text_of(e, out);
                }
            }
        }
        Value::Array(items) => {
            for e in items {
                rich_text_of(e, out);
            }
        }
        _ => {}
    }
}

/// A plain-text rendering of Block Kit blocks (an array, or one block): headers, sections with their
/// fields and accessory, context lines, action buttons as `[Label]`, dividers, images, rich text.
pub fn blocks_to_text(blocks: &Value) -> String {
    let list: Vec<&Value> = match blocks {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![blocks],
        _ => Vec::new(),
    };
    let mut lines: Vec<String> = Vec::new();
    for b in list {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "header" => lines.push(format!(
                "== {} ==",
                b.get("text").map(text_of).unwrap_or_default()
            )),
            "section" => {
                let mut line = b.get("text").map(text_of).unwrap_or_default();
                if let Some(acc) = b.get("accessory") {
                    let acc = element_to_text(acc);
                    if line.is_empty() {
                        line = acc;
                    } else {
                        line = format!("{line}  {acc}");
                    }
                }
                if !line.is_empty() {
                    lines.push(line);
                }
                if let Some(Value::Array(fields)) = b.get("fields") {
                    for f in fields {
                        let t = text_of(f);
                        let mut iter = t.lines();
                        if let Some(first) = iter.next() {
                            let rest: Vec<&str> = iter.collect();
                            if rest.is_empty() {
                                lines.push(format!("  • {first}"));
                            } else {
                                lines.push(format!("  • {first} {}", rest.join(" ")));
                            }
                        }
                    }
                }
            }
            "context" => {
                let parts: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .map(|els| {
                        els.iter()
                            .map(element_to_text)
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                lines.push(parts.join(" · "));
            }
            "actions" => {
                let parts: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .map(|els| els.iter().map(element_to_text).collect())
                    .unwrap_or_default();
                lines.push(parts.join(" "));
            }
            "divider" => lines.push("─".repeat(40)),
            "image" => lines.push(format!(
                "[image: {}]",
                b.get("alt_text").map(text_of).unwrap_or_default()
            )),
            "markdown" => lines.push(text_of(b)),
            "rich_text" => {
                let mut s = String::new();
                rich_text_of(b.get("elements").unwrap_or(&Value::Null), &mut s);
                lines.push(s);
            }
            "input" => {
                let label = b.get("label").map(text_of).unwrap_or_default();
                let el = b.get("element").map(element_to_text).unwrap_or_default();
                lines.push(format!("{label}: {el}"));
            }
            "" => {}
            k => lines.push(format!("[{k}]")),
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// Networking shared by the stand-ins: a listener whose connections can be dropped on purpose.
// ---------------------------------------------------------------------------------------------------------

/// The per-connection kill switch shared between the stream and the handler.
#[derive(Debug, Default)]
struct ConnShared {
    killed: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl ConnShared {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(
            &mut *self
                .wakers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for w in wakers {
            w.wake();
        }
    }

    fn is_killed(&self, cx: &mut Context<'_>) -> bool {
        if self.killed.load(Ordering::SeqCst) {
            return true;
        }
        let mut wakers = self
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        self.killed.load(Ordering::SeqCst)
    }
}

/// The connection a request arrived on (axum `ConnectInfo`); lets a handler drop it.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    #[allow(dead_code)]
    peer: SocketAddr,
    shared: Arc<ConnShared>,
}

impl Conn {
    /// Closes the TCP connection: nothing more is read or written on it.
    pub(crate) fn drop_connection(&self) {
        self.shared.kill();
    }
}

/// A TCP stream that fails every read and write once its connection was killed, so hyper drops it.
pub(crate) struct KillableStream {
    inner: TcpStream,
    shared: Arc<ConnShared>,
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by stand-in",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.shared.is_killed(cx) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shared.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, so that shutdown can close them all.
type Registry = Arc<Mutex<Vec<Weak<ConnShared>>>>;

/// The listener the stand-ins serve on (`127.0.0.1:0`).
pub(crate) struct ServerListener {
    inner: TcpListener,
    registry: Registry,
    local: SocketAddr,
}

impl ServerListener {
    pub(crate) async fn bind() -> io::Result<ServerListener> {
        let inner = TcpListener::bind("127.0.0.1:0").await?;
        let local = inner.local_addr()?;
        Ok(ServerListener {
            inner,
            registry: Arc::new(Mutex::new(Vec::new())),
            local,
        })
    }
}

impl axum::serve::Listener for ServerListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::new(ConnShared::default());
                    {
                        let mut reg = self
                            .registry
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        reg.retain(|w| w.strong_count() > 0);
                        reg.push(Arc::downgrade(&shared));
                    }
                    return (
                        KillableStream {
                            inner: stream,
                            shared: shared.clone(),
                        },
                        Conn { peer, shared },
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Conn {
            peer: self.local,
            shared: Arc::new(ConnShared::default()),
        })
    }
}

impl Connected<axum::serve::IncomingStream<'_, ServerListener>> for Conn {
    fn connect_info(stream: axum::serve::IncomingStream<'_, ServerListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A running stand-in server: its address and its off switch.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown_tx: Arc<watch::Sender<bool>>,
    registry: Registry,
}

impl Server {
    pub(crate) fn new(listener: &ServerListener) -> io::Result<Server> {
        let (tx, _rx) = watch::channel(false);
        Ok(Server {
            addr: listener.local,
            shutdown_tx: Arc::new(tx),
            registry: listener.registry.clone(),
        })
    }

    /// Serves `router` on `listener` in a background task until [`Server::shutdown`].
    pub(crate) fn spawn(&self, listener: ServerListener, router: Router) {
        let mut rx = self.shutdown_tx.subscribe();
        let app = router.into_make_service_with_connect_info::<Conn>();
        tokio::spawn(async move {
            let signal = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await;
        });
    }

    pub(crate) fn shutdown(&self) {
        self.shutdown_tx.send_replace(true);
        let conns: Vec<Arc<ConnShared>> = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for c in conns {
            c.kill();
        }
    }

    pub(crate) async fn wait_for_shutdown(&self) {
        let mut rx = self.shutdown_tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "xoxb-test-token";

    /// A plain HTTP client (reqwest needs a process-wide TLS provider even for http:// URLs).
    fn http() -> reqwest::Client {
        crate::standins::install_tls();
        reqwest::Client::new()
    }

    async fn call(s: &SlackStandin, method: &str, body: Value) -> Value {
        http()
            .post(format!("{}/{method}", s.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    #[tokio::test]
    async fn post_message_then_history_returns_it_newest_first() {
        let s = SlackStandin::start().await.expect("start");
        let first = call(
            &s,
            "chat.postMessage",
            json!({"channel": "#incidents", "text": "one"}),
        )
        .await;
        let second = call(
            &s,
            "chat.postMessage",
            json!({"channel": "incidents", "text": "two"}),
        )
        .await;
        assert_eq!(first["ok"], true);
        assert_eq!(first["channel"], INCIDENTS_CHANNEL_ID);
        let (t1, t2) = (
            first["ts"].as_str().unwrap_or(""),
            second["ts"].as_str().unwrap_or(""),
        );
        assert!(t1 < t2, "ts must increase: {t1} then {t2}");
        let history = call(
            &s,
            "conversations.history",
            json!({"channel": "CINCIDENTS", "limit": 1}),
        )
        .await;
        assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(history["messages"][0]["text"], "two");
        assert_eq!(history["has_more"], true);
        assert_eq!(s.count("chat.postMessage"), 2);
    }

    #[tokio::test]
    async fn form_and_get_requests_are_decoded_and_recorded() {
        let s = SlackStandin::start().await.expect("start");
        let client = http();
        let posted: Value = client
            .post(format!("{}/chat.postMessage", s.base_url()))
            .form(&[("token", TOKEN), ("channel", "general"), ("text", "hello")])
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(posted["ok"], true);
        let info: Value = client
            .get(format!(
                "{}/conversations.info?channel=CGENERAL",
                s.base_url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(info["channel"]["name"], "general");
        let calls = s.calls();
        assert_eq!(calls[0].params["text"], "hello");
        assert!(calls[0]
            .content_type
            .starts_with("application/x-www-form-urlencoded"));
        assert_eq!(calls[1].http_method, "GET");
        assert_eq!(calls[1].params["channel"], "CGENERAL");
    }

    #[tokio::test]
    async fn missing_or_wrong_token_is_refused() {
        let s = SlackStandin::start().await.expect("start");
        let none: Value = http()
            .post(format!("{}/auth.test", s.base_url()))
            .json(&json!({}))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(none["error"], "not_authed");
        let wrong: Value = http()
            .post(format!("{}/auth.test", s.base_url()))
            .bearer_auth("xoxp-user")
            .json(&json!({}))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(wrong["error"], "invalid_auth");
        let good = call(&s, "auth.test", json!({})).await;
        assert_eq!(good["user_id"], BOT_USER_ID);
    }

    #[tokio::test]
    async fn channel_names_are_checked_like_slack() {
        let s = SlackStandin::start().await.expect("start");
        let bad = call(&s, "conversations.create", json!({"name": "Inc 1"})).await;
        assert_eq!(bad["error"], "invalid_name_specials");
        let long = call(&s, "conversations.create", json!({"name": "a".repeat(81)})).await;
        assert_eq!(long["error"], "invalid_name_maxlength");
        s.create_channel("inc-1-db");
        let taken = call(&s, "conversations.create", json!({"name": "inc-1-db"})).await;
        assert_eq!(taken["error"], "name_taken");
        let made = call(&s, "conversations.create", json!({"name": "inc-1-db-2"})).await;
        assert_eq!(made["channel"]["creator"], BOT_USER_ID);
        assert!(made["channel"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with('C')));
    }

    #[tokio::test]
    async fn invite_reports_already_in_channel_when_nobody_is_new() {
        let s = SlackStandin::start().await.expect("start");
        let made = call(&s, "conversations.create", json!({"name": "war-room"})).await;
        let id = made["channel"]["id"].clone();
        let first = call(
            &s,
            "conversations.invite",
            json!({"channel": id, "users": "U1,U2"}),
        )
        .await;
        assert_eq!(first["ok"], true);
        let again = call(
            &s,
            "conversations.invite",
            json!({"channel": id, "users": ["U1", "U2"]}),
        )
        .await;
        assert_eq!(again["error"], "already_in_channel");
        let missing = call(
            &s,
            "conversations.invite",
            json!({"channel": "CNOPE", "users": "U1"}),
        )
        .await;
        assert_eq!(missing["error"], "channel_not_found");
        let ch = s.channel_by_name("war-room").expect("channel");
        assert_eq!(ch.members, vec![BOT_USER_ID, "U1", "U2"]);
    }

    #[tokio::test]
    async fn post_without_text_or_blocks_is_no_text() {
        let s = SlackStandin::start().await.expect("start");
        let r = call(&s, "chat.postMessage", json!({"channel": "general"})).await;
        assert_eq!(r["error"], "no_text");
        assert!(s
            .channel_by_name("general")
            .is_some_and(|c| c.messages.is_empty()));
    }

    #[tokio::test]
    async fn update_pin_and_render_show_the_card() {
        let s = SlackStandin::start().await.expect("start");
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "INC-1 DB down"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Severity*\nP1"}]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "action_id": "ack"}
            ]}
        ]);
        let posted = call(
            &s,
            "chat.postMessage",
            json!({"channel": "general", "text": "card", "blocks": blocks}),
        )
        .await;
        let ts = posted["ts"].clone();
        let pinned = call(
            &s,
            "pins.add",
            json!({"channel": "CGENERAL", "timestamp": ts}),
        )
        .await;
        assert_eq!(pinned["ok"], true);
        let twice = call(
            &s,
            "pins.add",
            json!({"channel": "CGENERAL", "timestamp": ts}),
        )
        .await;
        assert_eq!(twice["error"], "already_pinned");
        let updated = call(
            &s,
            "chat.update",
            json!({"channel": "CGENERAL", "ts": ts, "text": "card v2"}),
        )
        .await;
        assert_eq!(updated["ok"], true);
        let gone = call(
            &s,
            "chat.update",
            json!({"channel": "CGENERAL", "ts": "1.000001", "text": "x"}),
        )
        .await;
        assert_eq!(gone["error"], "message_not_found");
        let text = s.render_channel("#general");
        assert!(text.contains("📌"), "{text}");
        assert!(text.contains("== INC-1 DB down =="), "{text}");
        assert!(text.contains("[Acknowledge]"), "{text}");
        assert!(text.contains("*Severity* P1"), "{text}");
        assert_eq!(
            s.channel_by_name("general").map(|c| c.messages[0].edited),
            Some(1)
        );
    }

    #[tokio::test]
    async fn list_paginates_with_next_cursor() {
        let s = SlackStandin::start().await.expect("start");
        for n in 0..3 {
            s.create_channel(&format!("extra-{n}"));
        }
        let mut names = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = call(
                &s,
                "conversations.list",
                json!({"limit": 2, "cursor": cursor}),
            )
            .await;
            for c in page["channels"].as_array().cloned().unwrap_or_default() {
                names.push(c["name"].as_str().unwrap_or("").to_string());
            }
            cursor = page["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if cursor.is_empty() {
                break;
            }
        }
        assert_eq!(
            names,
            ["incidents", "general", "extra-0", "extra-1", "extra-2"]
        );
    }

    #[tokio::test]
    async fn rate_limit_fault_answers_429_with_retry_after_and_changes_nothing() {
        let s = SlackStandin::start().await.expect("start");
        s.fail_next(
            "chat.postMessage",
            Fault::RateLimited {
                retry_after_secs: 3,
            },
        );
        let resp = http()
            .post(format!("{}/chat.postMessage", s.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "general", "text": "hi"}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("3")
        );
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "ratelimited");
        assert!(s
            .channel_by_name("general")
            .is_some_and(|c| c.messages.is_empty()));
        let retry = call(
            &s,
            "chat.postMessage",
            json!({"channel": "general", "text": "hi"}),
        )
        .await;
        assert_eq!(retry["ok"], true);
    }

    #[tokio::test]
    async fn drop_fault_closes_the_connection_after_the_effect() {
        let s = SlackStandin::start().await.expect("start");
        s.fail_next("chat.postMessage", Fault::Drop);
        let result = http()
            .post(format!("{}/chat.postMessage", s.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "general", "text": "lost reply"}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let e = result.expect_err("the connection must be dropped");
        assert!(!e.is_timeout(), "dropped, not timed out: {e}");
        assert_eq!(
            s.channel_by_name("general").map(|c| c.messages.len()),
            Some(1)
        );
    }

    #[tokio::test]
    async fn hang_fault_makes_the_client_time_out() {
        let s = SlackStandin::start().await.expect("start");
        s.fail_next("pins.add", Fault::Hang);
        let result = http()
            .post(format!("{}/pins.add", s.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "general", "timestamp": "1.1"}))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(result.expect_err("must hang").is_timeout());
        s.shutdown();
    }

    #[tokio::test]
    async fn status_fault_answers_html_and_error_fault_answers_the_code() {
        let s = SlackStandin::start().await.expect("start");
        s.fail_next("auth.test", Fault::Status(503));
        s.fail_next("auth.test", Fault::error("account_inactive"));
        let resp = http()
            .post(format!("{}/auth.test", s.base_url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 503);
        assert!(resp.text().await.unwrap_or_default().contains("<html>"));
        assert_eq!(
            call(&s, "auth.test", json!({})).await["error"],
            "account_inactive"
        );
        assert_eq!(call(&s, "auth.test", json!({})).await["ok"], true);
    }

    #[tokio::test]
    async fn unknown_method_is_reported() {
        let s = SlackStandin::start().await.expect("start");
        assert_eq!(
            call(&s, "chat.postMesage", json!({})).await["error"],
            "unknown_method"
        );
    }

    #[tokio::test]
    async fn external_upload_shares_the_bytes_to_the_channel() {
        let s = SlackStandin::start().await.expect("start");
        let url = call(
            &s,
            "files.getUploadURLExternal",
            json!({"filename": "mttr.png", "length": 3}),
        )
        .await;
        let upload_url = url["upload_url"].as_str().unwrap_or("").to_string();
        let file_id = url["file_id"].as_str().unwrap_or("").to_string();
        let status = http()
            .post(&upload_url)
            .body(vec![1u8, 2, 3])
            .send()
            .await
            .expect("upload")
            .status();
        assert_eq!(status.as_u16(), 200);
        let done = call(
            &s,
            "files.completeUploadExternal",
            json!({"files": [{"id": file_id, "title": "MTTR per phase"}], "channel_id": "CGENERAL", "initial_comment": "Weekly digest"}),
        )
        .await;
        assert_eq!(done["ok"], true);
        let files = s.uploaded_files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].bytes, vec![1, 2, 3]);
        assert_eq!(files[0].channel_id, "CGENERAL");
        assert_eq!(files[0].title, "MTTR per phase");
        assert!(s.render_channel("general").contains("📎 MTTR per phase"));
    }

    #[tokio::test]
    async fn bookmarks_users_views_and_responses_are_kept() {
        let s = SlackStandin::start().await.expect("start");
        s.set_user_tz("U42", "America/New_York");
        let b = call(&s, "bookmarks.add", json!({"channel_id": "CINCIDENTS", "title": "Runbook", "type": "link", "link": "https://wiki/rb"})).await;
        assert!(b["bookmark"]["id"].as_str().is_some());
        let listed = call(&s, "bookmarks.list", json!({"channel_id": "CINCIDENTS"})).await;
        assert_eq!(listed["bookmarks"][0]["title"], "Runbook");
        let u = call(&s, "users.info", json!({"user": "U42"})).await;
        assert_eq!(u["user"]["tz"], "America/New_York");
        let v = call(&s, "views.open", json!({"trigger_id": "1.2.abc", "view": {"type": "modal", "title": {"type": "plain_text", "text": "Declare"}, "blocks": []}})).await;
        assert!(v["view"]["id"].as_str().is_some());
        assert_eq!(s.views_opened().len(), 1);
        let url = s.response_url();
        http()
            .post(&url)
            .json(&json!({"text": "usage", "response_type": "ephemeral"}))
            .send()
            .await
            .expect("respond");
        let responses = s.responses();
        assert_eq!(responses.len(), 1);
        assert!(url.ends_with(&responses[0].0));
        assert_eq!(responses[0].1["text"], "usage");
    }

    #[tokio::test]
    async fn slack_morphism_client_understands_the_answers() {
        use slack_morphism::prelude::*;
        let s = SlackStandin::start().await.expect("start");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .expect("roots")
            .https_or_http()
            .enable_http1()
            .build();
        let client = SlackClient::new(
            SlackClientHyperConnector::with_connector(connector).with_slack_api_url(&s.base_url()),
        );
        let token = SlackApiToken::new(TOKEN.into());
        let session = client.open_session(&token);
        let auth = session.auth_test().await.expect("auth.test");
        assert_eq!(auth.user_id.0, BOT_USER_ID);
        let created = session
            .conversations_create(&SlackApiConversationsCreateRequest::new("inc-7-api".into()))
            .await
            .expect("create");
        let channel = created.channel.id.clone();
        session
            .conversations_set_topic(&SlackApiConversationsSetTopicRequest::new(
                channel.clone(),
                "P1".into(),
            ))
            .await
            .expect("topic");
        session
            .conversations_invite(&SlackApiConversationsInviteRequest::new(
                channel.clone(),
                vec!["U7".into()],
            ))
            .await
            .expect("invite");
        let posted = session
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                channel.clone(),
                SlackMessageContent::new().with_text("hello".into()),
            ))
            .await
            .expect("post");
        session
            .chat_update(&SlackApiChatUpdateRequest::new(
                channel.clone(),
                SlackMessageContent::new().with_text("hello again".into()),
                posted.ts.clone(),
            ))
            .await
            .expect("update");
        session
            .pins_add(&SlackApiPinsAddRequest::new(
                channel.clone(),
                posted.ts.clone(),
            ))
            .await
            .expect("pin");
        session
            .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
                channel.clone(),
                "U7".into(),
                SlackMessageContent::new().with_text("only you".into()),
            ))
            .await
            .expect("ephemeral");
        let user = session
            .users_info(&SlackApiUsersInfoRequest::new("U7".into()))
            .await
            .expect("users.info");
        assert_eq!(user.user.tz.as_deref(), Some("Europe/Berlin"));
        let history = session
            .conversations_history(
                &SlackApiConversationsHistoryRequest::new().with_channel(channel.clone()),
            )
            .await
            .expect("history");
        assert_eq!(history.messages.len(), 1);
        s.fail_next(
            "chat.postMessage",
            Fault::RateLimited {
                retry_after_secs: 2,
            },
        );
        let limited = session
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                channel.clone(),
                SlackMessageContent::new().with_text("x".into()),
            ))
            .await;
        match limited {
            Err(slack_morphism::errors::SlackClientError::RateLimitError(e)) => {
                assert_eq!(e.retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("expected a rate-limit error, got {other:?}"),
        }
        let ch = s.channel_by_name("inc-7-api").expect("channel");
        assert_eq!(ch.topic, "P1");
        assert_eq!(ch.members, vec![BOT_USER_ID, "U7"]);
        assert_eq!(ch.pins, vec![posted.ts.0.clone()]);
        assert_eq!(s.ephemerals().len(), 1);
    }
}
