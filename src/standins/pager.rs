//! The built-in pager stand-in: fake PagerDuty Events API v2, Opsgenie Alert API and generic-webhook
//! receivers on `127.0.0.1:0`, used by `incident-bot demo` and by the integration tests.
//!
//! What lives here: [`PagerStandin`] (the server), the alerts it keeps — [`PagerDutyAlert`] (collapsed by
//! `dedup_key`), [`OpsgenieAlert`] (collapsed by `alias`), [`WebhookDelivery`] (collapsed by
//! `Idempotency-Key`) — and [`PagerRequest`], one per request received. Answers follow the wire fixtures in
//! `tests/fixtures/` (PagerDuty: 202 `{"status":"success","message":"Event processed",
//! "dedup_key":…}`, 400 `{"status","message","errors"}`; Opsgenie: 202 `{"result","took","requestId"}`).
//! Faults are injected per endpoint (`"pagerduty"`, `"opsgenie"`, `"webhook"`) with the Slack stand-in's
//! [`Fault`]; the connection plumbing (dropped connections, shutdown) is shared with it too.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::standins::slack::{finish, html_error, Conn, Fault, Server, ServerListener};

/// The severities PagerDuty accepts in `payload.severity`.
const PD_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// One request received by the pager stand-in, whatever its outcome.
#[derive(Debug, Clone)]
pub struct PagerRequest {
    /// `pagerduty`, `opsgenie` or `webhook`.
    pub endpoint: String,
    /// The request path, e.g. `/v2/enqueue` or `/hook/oncall`.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; a body that is not JSON is kept as a JSON string.
    pub body: Value,
    /// The HTTP status answered (for a dropped connection: the one that would have been sent).
    pub status: u16,
    pub at: Instant,
}

impl PagerRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A PagerDuty alert: all events with one `dedup_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyAlert {
    pub dedup_key: String,
    pub routing_key: String,
    pub summary: String,
    pub source: String,
    pub severity: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// How many `trigger` events arrived for this key.
    pub trigger_count: u32,
    pub links: Vec<Value>,
    pub custom_details: Option<Value>,
    /// The last event's body as sent.
    pub last_event: Value,
}

/// An Opsgenie alert: all create requests with one `alias`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsgenieAlert {
    pub alias: String,
    pub message: String,
    pub description: Option<String>,
    pub priority: Option<String>,
    /// How many create requests arrived for this alias (Opsgenie's de-duplication count).
    pub count: u32,
    /// The API key from `Authorization: GenieKey …`.
    pub api_key: String,
    /// The last request body as sent.
    pub body: Value,
}

/// A generic-webhook delivery: all requests to one hook with one `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// The part of the path after `/hook/`.
    pub name: String,
    pub idempotency_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Requests after the first one with the same key.
    pub repeats: u32,
}

/// The fake pager server. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct PagerStandin {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    state: Mutex<PagerState>,
}

#[derive(Default)]
struct PagerState {
    faults: HashMap<String, VecDeque<Fault>>,
    latency: Duration,
    requests: Vec<PagerRequest>,
    pd_alerts: Vec<PagerDutyAlert>,
    og_alerts: Vec<OpsgenieAlert>,
    hooks: Vec<WebhookDelivery>,
    /// The PagerDuty REST API fake (`GET /incidents`, log entries) for `import pagerduty`.
    rest: PagerDutyRestFake,
}

pub use super::pager_rest::{FakeIncident, PagerDutyRestFake, RestFault, RestRequest};

impl PagerStandin {
    /// Starts the stand-in on `127.0.0.1:0`.
    pub async fn start() -> io::Result<PagerStandin> {
        super::install_tls();
        let listener = ServerListener::bind().await?;
        let server = Server::new(&listener)?;
        let rest = PagerDutyRestFake::default();
        let inner = Arc::new(Inner {
            server: server.clone(),
            state: Mutex::new(PagerState {
                rest: rest.clone(),
                ..PagerState::default()
            }),
        });
        let router = Router::new()
            .route("/v2/enqueue", post(pagerduty_handler))
            .route("/v2/alerts", post(opsgenie_handler))
            .route("/hook/{*name}", post(webhook_handler))
            .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
            .with_state(inner.clone())
            .merge(rest.router());
        server.spawn(listener, router);
        Ok(PagerStandin { inner })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr)
    }

    /// The value for `PAGERDUTY_EVENTS_URL` (the client appends `/v2/enqueue`).
    pub fn pagerduty_events_url(&self) -> String {
        self.base_url()
    }

    /// The value for `OPSGENIE_API_URL` (the client appends `/v2/alerts`).
    pub fn opsgenie_url(&self) -> String {
        self.base_url()
    }

    /// The value for `PAGERDUTY_API_URL` (REST API v2: `/incidents`, log entries).
    pub fn pagerduty_api_url(&self) -> String {
        self.base_url()
    }

    /// The PagerDuty REST API fake: add incidents, queue faults, read requests.
    pub fn pagerduty_rest(&self) -> PagerDutyRestFake {
        self.state().rest.clone()
    }

    /// A generic webhook URL: `http://127.0.0.1:PORT/hook/<name>`.
    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/hook/{}", self.base_url(), name.trim_start_matches('/'))
    }

    /// Stops accepting connections and closes every open one.
    pub fn shutdown(&self) {
        self.inner.server.shutdown();
    }

    fn state(&self) -> MutexGuard<'_, PagerState> {
        self.inner.lock()
    }

    /// Queues a fault for the next request to `endpoint` (`pagerduty`, `opsgenie` or `webhook`).
    /// `Status(429)` answers 429 without `Retry-After`; `RateLimited` answers 429 with it.
    pub fn fail_next(&self, endpoint: &str, fault: Fault) {
        self.state()
            .faults
            .entry(endpoint.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Delays every reply by `d`, after the request took effect.
    pub fn set_latency(&self, d: Duration) {
        self.state().latency = d;
    }

    /// Every request received, all endpoints, in arrival order.
    pub fn requests(&self) -> Vec<PagerRequest> {
        self.state().requests.clone()
    }

    /// How many requests reached `endpoint` (faulted ones included).
    pub fn count(&self, endpoint: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count()
    }

    /// Distinct PagerDuty alerts (one per `dedup_key`), in order of first trigger.
    pub fn pagerduty_alerts(&self) -> Vec<PagerDutyAlert> {
        self.state().pd_alerts.clone()
    }

    /// Every POST to `/v2/enqueue`, accepted or not.
    pub fn pagerduty_events(&self) -> Vec<PagerRequest> {
        self.requests_to("pagerduty")
    }

    /// Distinct Opsgenie alerts (one per `alias`), in order of creation.
    pub fn opsgenie_alerts(&self) -> Vec<OpsgenieAlert> {
        self.state().og_alerts.clone()
    }

    /// Every POST to `/v2/alerts`, accepted or not.
    pub fn opsgenie_requests(&self) -> Vec<PagerRequest> {
        self.requests_to("opsgenie")
    }

    /// Distinct webhook deliveries (one per hook and `Idempotency-Key`; every request without a key).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state().hooks.clone()
    }

    /// Every POST to `/hook/…`, accepted or not.
    pub fn webhook_requests(&self) -> Vec<PagerRequest> {
        self.requests_to("webhook")
    }

    fn requests_to(&self, endpoint: &str) -> Vec<PagerRequest> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, PagerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn took() -> f64 {
    f64::from(fastrand::u16(5..400)) / 1000.0
}

/// A reply with its status, as recorded.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    extra_headers: Vec<(&'static str, &'static str)>,
    html: bool,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body,
            retry_after: None,
            extra_headers: Vec::new(),
            html: false,
        }
    }

    fn into_response(self) -> Response {
        if self.html {
            return html_error(self.status);
        }
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        for (k, v) in self.extra_headers {
            if let Ok(v) = v.parse() {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

/// The answer for an injected fault that rejects the request (Error, RateLimited, Status).
fn fault_answer(endpoint: &str, fault: &Fault) -> Option<Answer> {
    let throttled = || match endpoint {
        "pagerduty" => json!({
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly.  Please retry later.",
            "errors": ["Enhance Your Calm."],
        }),
        "opsgenie" => json!({
            "message": "You are making too many requests! To avoid errors, we recommend you limit requests.",
            "took": took(),
            "requestId": request_id(),
        }),
        _ => json!({ "error": "rate limited" }),
    };
    let throttle_headers = if endpoint == "opsgenie" {
        vec![("x-ratelimit-state", "THROTTLED")]
    } else {
        Vec::new()
    };
    match fault {
        Fault::Error(msg) => Some(match endpoint {
            "pagerduty" => Answer::json(
                StatusCode::BAD_REQUEST,
                json!({ "status": "invalid event", "message": msg, "errors": [msg] }),
            ),
            "opsgenie" => Answer::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": msg, "took": took(), "requestId": request_id() }),
            ),
            _ => Answer::json(StatusCode::BAD_REQUEST, json!({ "error": msg })),
        }),
        Fault::RateLimited { retry_after_secs } => Some(Answer {
            retry_after: Some(*retry_after_secs),
            extra_headers: throttle_headers,
            ..Answer::json(StatusCode::TOO_MANY_REQUESTS, throttled())
        }),
        Fault::Status(429) => Some(Answer {
            extra_headers: throttle_headers,
            ..Answer::json(StatusCode::TOO_MANY_REQUESTS, throttled())
        }),
        Fault::Status(code) => Some(Answer {
            html: true,
            ..Answer::json(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Value::Null,
            )
        }),
        Fault::Delay(_) | Fault::Hang | Fault::Drop => None,
    }
}

/// Records the request, applies a rejecting fault or `effect`, then the fault's tail and the latency.
async fn handle(
    inner: &Inner,
    conn: &Conn,
    endpoint: &str,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
    effect: impl FnOnce(&mut PagerState, &Result<Value, ()>, &[(String, String)]) -> Answer,
) -> Response {
    let header_list = header_list(headers);
    let parsed: Result<Value, ()> = serde_json::from_slice(body).map_err(|_| ());
    let (fault, latency, answer) = {
        let mut st = inner.lock();
        let fault = st.faults.get_mut(endpoint).and_then(VecDeque::pop_front);
        let answer = match fault.as_ref().and_then(|f| fault_answer(endpoint, f)) {
            Some(answer) => answer,
            None => effect(&mut st, &parsed, &header_list),
        };
        st.requests.push(PagerRequest {
            endpoint: endpoint.to_string(),
            path,
            headers: header_list.clone(),
            body: parsed
                .clone()
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
            status: answer.status.as_u16(),
            at: Instant::now(),
        });
        (fault, st.latency, answer)
    };
    finish(&inner.server, conn, fault, latency, answer.into_response()).await
}

async fn pagerduty_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &inner,
        &conn,
        "pagerduty",
        "/v2/enqueue".into(),
        &headers,
        &body,
        |st, parsed, _| match parsed {
            Ok(Value::Object(_)) => pagerduty_event(st, parsed.as_ref().unwrap_or(&Value::Null)),
            _ => Answer::json(
                StatusCode::BAD_REQUEST,
                json!({
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                }),
            ),
        },
    )
    .await
}

fn non_blank<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Validates and applies one PagerDuty Events v2 event.
fn pagerduty_event(st: &mut PagerState, event: &Value) -> Answer {
    let mut errors = Vec::new();
    let routing_key = non_blank(event, "/routing_key");
    if routing_key.is_none() {
        errors.push("'routing_key' is missing or blank".to_string());
    }
    let action = event
        .get("event_action")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push(
            "'event_action' is missing or invalid (must be trigger, acknowledge or resolve)".into(),
        );
    }
    let dedup_key = non_blank(event, "/dedup_key").map(String::from);
    if action == "trigger" {
        if !event.get("payload").is_some_and(Value::is_object) {
            errors.push("'payload' is missing or not an object".into());
        } else {
            if non_blank(event, "/payload/summary").is_none() {
                errors.push("'payload.summary' is missing or blank".into());
            } else if event
                .pointer("/payload/summary")
                .and_then(Value::as_str)
                .is_some_and(|s| s.chars().count() > 1024)
            {
                errors.push("'payload.summary' is longer than 1024 characters".into());
            }
            if non_blank(event, "/payload/source").is_none() {
                errors.push("'payload.source' is missing or blank".into());
            }
            let severity = event.pointer("/payload/severity").and_then(Value::as_str);
            if !severity.is_some_and(|s| PD_SEVERITIES.contains(&s)) {
                errors.push(
                    "'payload.severity' is missing or invalid (must be critical, error, warning or info)"
                        .into(),
                );
            }
        }
    } else if !action.is_empty() && dedup_key.is_none() {
        errors.push("'dedup_key' is missing or blank".into());
    }
    if !errors.is_empty() {
        return Answer::json(
            StatusCode::BAD_REQUEST,
            json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors }),
        );
    }
    let key = dedup_key.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let existing = st.pd_alerts.iter_mut().find(|a| a.dedup_key == key);
    match (action, existing) {
        ("trigger", Some(alert)) => {
            alert.trigger_count += 1;
            if alert.status == "resolved" {
                alert.status = "triggered".into();
            }
            alert.last_event = event.clone();
        }
        ("trigger", None) => {
            let text = |p: &str| non_blank(event, p).unwrap_or("").to_string();
            st.pd_alerts.push(PagerDutyAlert {
                dedup_key: key.clone(),
                routing_key: text("/routing_key"),
                summary: text("/payload/summary"),
                source: text("/payload/source"),
                severity: text("/payload/severity"),
                status: "triggered".into(),
                trigger_count: 1,
                links: event
                    .get("links")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                custom_details: event.pointer("/payload/custom_details").cloned(),
                last_event: event.clone(),
            });
        }
        ("acknowledge", Some(alert)) => {
            if alert.status == "triggered" {
                alert.status = "acknowledged".into();
            }
            alert.last_event = event.clone();
        }
        ("resolve", Some(alert)) => {
            alert.status = "resolved".into();
            alert.last_event = event.clone();
        }
        // Acknowledging or resolving an unknown key is accepted and does nothing, as PagerDuty does.
        _ => {}
    }
    Answer::json(
        StatusCode::ACCEPTED,
        json!({ "status": "success", "message": "Event processed", "dedup_key": key }),
    )
}

async fn opsgenie_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("GenieKey "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from);
    handle(
        &inner,
        &conn,
        "opsgenie",
        "/v2/alerts".into(),
        &headers,
        &body,
        move |st, parsed, _| {
            let Some(api_key) = api_key else {
                return Answer::json(
                    StatusCode::UNAUTHORIZED,
                    json!({ "message": "Could not authenticate", "took": took(), "requestId": request_id() }),
                );
            };
            let body = match parsed {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Answer::json(
                        StatusCode::BAD_REQUEST,
                        json!({ "message": "Invalid JSON", "took": took(), "requestId": request_id() }),
                    )
                }
            };
            let Some(message) = non_blank(body, "/message") else {
                return Answer::json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": { "message": "Message can not be empty." },
                        "took": took(),
                        "requestId": request_id(),
                    }),
                );
            };
            // Opsgenie keeps the first 130 characters of the message.
            let message: String = message.chars().take(130).collect();
            let alias = non_blank(body, "/alias")
                .map(String::from)
                .unwrap_or_else(request_id);
            let text = |p: &str| non_blank(body, p).map(String::from);
            match st.og_alerts.iter_mut().find(|a| a.alias == alias) {
                Some(alert) => {
                    alert.count += 1;
                    alert.body = body.clone();
                }
                None => st.og_alerts.push(OpsgenieAlert {
                    alias,
                    message,
                    description: text("/description"),
                    priority: text("/priority"),
                    count: 1,
                    api_key,
                    body: body.clone(),
                }),
            }
            Answer::json(
                StatusCode::ACCEPTED,
                json!({ "result": "Request will be processed", "took": took(), "requestId": request_id() }),
            )
        },
    )
    .await
}

async fn webhook_handler(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let path = format!("/hook/{name}");
    handle(
        &inner,
        &conn,
        "webhook",
        path,
        &headers,
        &body,
        move |st, parsed, header_list| {
            let key = header_list
                .iter()
                .find(|(k, _)| k == "idempotency-key")
                .map(|(_, v)| v.clone());
            let body = parsed.clone().unwrap_or(Value::String(raw));
            let existing = key.as_ref().and_then(|k| {
                st.hooks
                    .iter_mut()
                    .find(|d| d.name == name && d.idempotency_key.as_ref() == Some(k))
            });
            let duplicate = match existing {
                Some(delivery) => {
                    delivery.repeats += 1;
                    true
                }
                None => {
                    st.hooks.push(WebhookDelivery {
                        name,
                        idempotency_key: key,
                        headers: header_list.to_vec(),
                        body,
                        repeats: 0,
                    });
                    false
                }
            };
            Answer::json(
                StatusCode::OK,
                json!({ "ok": true, "duplicate": duplicate }),
            )
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain HTTP client (reqwest needs a process-wide TLS provider even for http:// URLs).
    fn http() -> reqwest::Client {
        crate::standins::install_tls();
        reqwest::Client::new()
    }

    fn trigger(key: &str) -> Value {
        json!({
            "routing_key": "e93facc04764012d7bfb002500d5d1a6",
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {"summary": "INC-1 DB down", "source": "payments", "severity": "critical"},
            "links": [{"href": "https://acme.slack.com/archives/C1", "text": "Incident channel"}],
        })
    }

    async fn post(url: String, body: &Value) -> reqwest::Response {
        http().post(url).json(body).send().await.expect("send")
    }

    #[tokio::test]
    async fn repeated_trigger_with_one_dedup_key_is_one_alert() {
        let p = PagerStandin::start().await.expect("start");
        let url = format!("{}/v2/enqueue", p.pagerduty_events_url());
        let first = post(url.clone(), &trigger("inc-1")).await;
        assert_eq!(first.status().as_u16(), 202);
        let body: Value = first.json().await.expect("json");
        assert_eq!(
            body,
            json!({"status": "success", "message": "Event processed", "dedup_key": "inc-1"})
        );
        post(url, &trigger("inc-1")).await;
        let alerts = p.pagerduty_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].trigger_count, 2);
        assert_eq!(alerts[0].severity, "critical");
        assert_eq!(p.pagerduty_events().len(), 2);
    }

    #[tokio::test]
    async fn trigger_without_severity_is_a_400_naming_the_field() {
        let p = PagerStandin::start().await.expect("start");
        let mut event = trigger("inc-2");
        event["payload"]["severity"] = json!("P1");
        let resp = post(format!("{}/v2/enqueue", p.pagerduty_events_url()), &event).await;
        assert_eq!(resp.status().as_u16(), 400);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "invalid event");
        assert!(body["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("payload.severity")));
        assert!(p.pagerduty_alerts().is_empty());
        let garbage = http()
            .post(format!("{}/v2/enqueue", p.pagerduty_events_url()))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("send");
        let body: Value = garbage.json().await.expect("json");
        assert_eq!(body["errors"], json!(["JSON parse error"]));
    }

    #[tokio::test]
    async fn resolve_changes_the_alert_status() {
        let p = PagerStandin::start().await.expect("start");
        let url = format!("{}/v2/enqueue", p.pagerduty_events_url());
        post(url.clone(), &trigger("inc-3")).await;
        post(
            url,
            &json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "inc-3"}),
        )
        .await;
        assert_eq!(p.pagerduty_alerts()[0].status, "resolved");
    }

    #[tokio::test]
    async fn opsgenie_requires_a_genie_key_and_dedups_by_alias() {
        let p = PagerStandin::start().await.expect("start");
        let url = format!("{}/v2/alerts", p.opsgenie_url());
        let body = json!({"message": "INC-1 DB down", "alias": "inc-1", "priority": "P1"});
        let anonymous = post(url.clone(), &body).await;
        assert_eq!(anonymous.status().as_u16(), 401);
        let client = http();
        for _ in 0..2 {
            let resp = client
                .post(&url)
                .header("Authorization", "GenieKey eb243592-faa2-4ba2")
                .json(&body)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status().as_u16(), 202);
            let answer: Value = resp.json().await.expect("json");
            assert_eq!(answer["result"], "Request will be processed");
            assert!(answer["requestId"].as_str().is_some());
        }
        let empty = client
            .post(&url)
            .header("Authorization", "GenieKey k")
            .json(&json!({"alias": "x"}))
            .send()
            .await
            .expect("send");
        assert_eq!(empty.status().as_u16(), 422);
        let alerts = p.opsgenie_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 2);
        assert_eq!(alerts[0].api_key, "eb243592-faa2-4ba2");
        assert_eq!(p.opsgenie_requests().len(), 4);
    }

    #[tokio::test]
    async fn webhook_dedups_by_idempotency_key_and_keeps_headers() {
        let p = PagerStandin::start().await.expect("start");
        let client = http();
        for _ in 0..2 {
            client
                .post(p.webhook_url("oncall"))
                .header("Idempotency-Key", "inc-9")
                .json(&json!({"summary": "DB down"}))
                .send()
                .await
                .expect("send");
        }
        let deliveries = p.webhook_deliveries();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].repeats, 1);
        assert_eq!(deliveries[0].name, "oncall");
        assert_eq!(deliveries[0].body["summary"], "DB down");
        assert_eq!(
            p.webhook_requests()[1].header("Idempotency-Key"),
            Some("inc-9")
        );
    }

    #[tokio::test]
    async fn faults_apply_in_order_then_the_endpoint_recovers() {
        let p = PagerStandin::start().await.expect("start");
        p.fail_next(
            "pagerduty",
            Fault::RateLimited {
                retry_after_secs: 4,
            },
        );
        p.fail_next("pagerduty", Fault::Status(500));
        p.fail_next("pagerduty", Fault::Status(429));
        let url = format!("{}/v2/enqueue", p.pagerduty_events_url());
        let limited = post(url.clone(), &trigger("inc-4")).await;
        assert_eq!(limited.status().as_u16(), 429);
        assert_eq!(
            limited
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("4")
        );
        assert_eq!(
            post(url.clone(), &trigger("inc-4")).await.status().as_u16(),
            500
        );
        let bare = post(url.clone(), &trigger("inc-4")).await;
        assert_eq!(bare.status().as_u16(), 429);
        assert!(bare.headers().get("retry-after").is_none());
        assert!(p.pagerduty_alerts().is_empty());
        assert_eq!(post(url, &trigger("inc-4")).await.status().as_u16(), 202);
        assert_eq!(p.pagerduty_alerts().len(), 1);
    }

    #[tokio::test]
    async fn dropped_connection_still_pages() {
        let p = PagerStandin::start().await.expect("start");
        p.fail_next("webhook", Fault::Drop);
        let result = http()
            .post(p.webhook_url("oncall"))
            .header("Idempotency-Key", "inc-5")
            .json(&json!({"summary": "x"}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(result.is_err(), "the connection must be dropped");
        assert_eq!(p.webhook_deliveries().len(), 1);
    }
}
