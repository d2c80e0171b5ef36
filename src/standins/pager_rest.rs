//! A fake PagerDuty REST API v2 for `incident-bot import pagerduty`, served by the pager stand-in
//! ([`super::pager::PagerStandin::pagerduty_rest`]).
//!
//! Endpoints, with the response shapes of `tests/fixtures/pagerduty_rest_*.json`:
//! - `GET /incidents` — `since`/`until` (RFC 3339, on `created_at`), `statuses[]`, `limit` (default 25, at
//!   most 100), `offset`, `total=true`; answers `{incidents, limit, offset, more, total}` (`total` is null
//!   unless asked for), oldest first.
//! - `GET /incidents/{id}/log_entries` — `limit`/`offset`; trigger, acknowledge and resolve entries.
//!
//! Both require `Authorization: Token token=…` (401 otherwise) and `Accept:
//! application/vnd.pagerduty+json;version=2` (406 otherwise). Faults are queued with
//! [`PagerDutyRestFake::fail_next`]: a 429 carries `ratelimit-limit`, `ratelimit-remaining` and
//! `ratelimit-reset` (seconds to wait), as PagerDuty documents.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";
const SITE: &str = "https://acme.pagerduty.com";
const API: &str = "https://api.pagerduty.com";

/// An incident to serve.
#[derive(Debug, Clone)]
pub struct FakeIncident {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub service_id: String,
    pub service_name: String,
    /// Priority name (`P1` …), or none.
    pub priority: Option<String>,
    /// `high` or `low`.
    pub urgency: String,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A fault for the next REST request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestFault {
    /// 429 with `ratelimit-reset: <secs>`.
    RateLimited { reset_secs: u64 },
    /// 429 with `Retry-After: <secs>` instead.
    RetryAfter { secs: u64 },
    /// This HTTP status with a PagerDuty error body.
    Status(u16),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct RestRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl RestRequest {
    /// A query parameter's first value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The fake; cheap to clone, all clones share one state.
#[derive(Clone, Default)]
pub struct PagerDutyRestFake {
    inner: Arc<Mutex<RestState>>,
}

#[derive(Default)]
struct RestState {
    /// The accepted API token; `None` accepts any non-empty token.
    token: Option<String>,
    incidents: Vec<FakeIncident>,
    faults: VecDeque<RestFault>,
    requests: Vec<RestRequest>,
}

impl PagerDutyRestFake {
    fn lock(&self) -> MutexGuard<'_, RestState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The routes, to merge into the stand-in's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/incidents", get(list_incidents))
            .route("/incidents/{id}/log_entries", get(log_entries))
            .with_state(self.clone())
    }

    /// Only this token is accepted from now on.
    pub fn set_token(&self, token: &str) {
        self.lock().token = Some(token.to_string());
    }

    pub fn add_incident(&self, i: FakeIncident) {
        self.lock().incidents.push(i);
    }

    /// Queues a fault for the next request (either endpoint).
    pub fn fail_next(&self, f: RestFault) {
        self.lock().faults.push_back(f);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.lock().requests.clone()
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn status_of(i: &FakeIncident) -> &'static str {
    if i.resolved_at.is_some() {
        "resolved"
    } else if i.acknowledged_at.is_some() {
        "acknowledged"
    } else {
        "triggered"
    }
}

fn reference(kind: &str, id: &str, summary: &str, path: &str) -> Value {
    json!({
        "id": id,
        "type": format!("{kind}_reference"),
        "summary": summary,
        "self": format!("{API}/{path}/{id}"),
        "html_url": format!("{SITE}/{path}/{id}"),
    })
}

/// An incident shaped like `pagerduty_rest_incidents_list.json`'s.
fn incident_json(i: &FakeIncident) -> Value {
    let last_change = i.resolved_at.or(i.acknowledged_at).unwrap_or(i.created_at);
    json!({
        "id": i.id,
        "type": "incident",
        "summary": format!("[#{}] {}", i.number, i.title),
        "self": format!("{API}/incidents/{}", i.id),
        "html_url": format!("{SITE}/incidents/{}", i.id),
        "incident_number": i.number,
        "title": i.title,
        "created_at": ts(i.created_at),
        "updated_at": ts(last_change),
        "status": status_of(i),
        "incident_key": format!("key-{}", i.id),
        "service": reference("service", &i.service_id, &i.service_name, "services"),
        "assignments": [],
        "assigned_via": "escalation_policy",
        "last_status_change_at": ts(last_change),
        "resolved_at": i.resolved_at.map(ts),
        "first_trigger_log_entry": {
            "id": format!("R{}T", i.id),
            "type": "trigger_log_entry_reference",
            "summary": "Triggered through the API",
            "self": format!("{API}/log_entries/R{}T?incident_id={}", i.id, i.id),
            "html_url": format!("{SITE}/incidents/{}/log_entries/R{}T", i.id, i.id),
        },
        "alert_counts": { "all": 1, "triggered": u8::from(i.resolved_at.is_none()), "resolved": u8::from(i.resolved_at.is_some()) },
        "is_mergeable": true,
        "incident_type": { "name": "incident_default" },
        "escalation_policy": reference("escalation_policy", "PT20YPA", "Default", "escalation_policies"),
        "teams": [reference("team", "PQ9K7I8", "Engineering", "teams")],
        "pending_actions": [],
        "acknowledgements": [],
        "priority": i.priority.as_ref().map(|p| json!({
            "id": format!("PRI{p}"),
            "type": "priority_reference",
            "summary": p,
            "self": format!("{API}/priorities/PRI{p}"),
        })),
        "resolve_reason": null,
        "incidents_responders": [],
        "responder_requests": [],
        "urgency": i.urgency,
    })
}

/// Log entries shaped like `pagerduty_rest_log_entries.json`'s: trigger, acknowledge, resolve.
fn log_entries_json(i: &FakeIncident) -> Vec<Value> {
    let mut out = Vec::new();
    let entry = |suffix: &str, kind: &str, summary: &str, at: DateTime<Utc>, agent: Value| {
        json!({
            "id": format!("R{}{suffix}", i.id),
            "type": format!("{kind}_log_entry"),
            "summary": summary,
            "self": format!("{API}/log_entries/R{}{suffix}?incident_id={}", i.id, i.id),
            "html_url": format!("{SITE}/incidents/{}/log_entries/R{}{suffix}", i.id, i.id),
            "created_at": ts(at),
            "agent": agent,
            "channel": { "type": if kind == "trigger" { "api" } else { "web_ui" } },
            "incident": {
                "id": i.id,
                "type": "incident_reference",
                "summary": format!("[#{}] {}", i.number, i.title),
                "self": format!("{API}/incidents/{}", i.id),
                "html_url": format!("{SITE}/incidents/{}", i.id),
            },
            "teams": [reference("team", "PQ9K7I8", "Engineering", "teams")],
            "contexts": [],
            "event_details": { "description": i.title },
        })
    };
    let user = reference("user", "PXPGF42", "Earline Greenholt", "users");
    out.push(entry(
        "T",
        "trigger",
        "Triggered through the API",
        i.created_at,
        reference("service", &i.service_id, &i.service_name, "services"),
    ));
    if let Some(a) = i.acknowledged_at {
        out.push(entry(
            "A",
            "acknowledge",
            "Acknowledged by Earline Greenholt",
            a,
            user.clone(),
        ));
    }
    if let Some(r) = i.resolved_at {
        out.push(entry(
            "R",
            "resolve",
            "Resolved by Earline Greenholt",
            r,
            user,
        ));
    }
    out
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "message": message, "code": code, "errors": [message] } })),
    )
        .into_response()
}

/// Records the request, applies a queued fault, checks the headers; `None` when the request may proceed.
fn gate(
    fake: &PagerDutyRestFake,
    path: String,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Option<Response> {
    let mut st = fake.lock();
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        header_list
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let token = header("authorization")
        .and_then(|v| v.strip_prefix("Token token="))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let token_ok = match (&st.token, token) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(want), Some(got)) => want == got,
    };
    let accept_ok = header("accept").is_some_and(|a| a.replace(' ', "").contains(ACCEPT));
    let (status, resp) = match st.faults.pop_front() {
        Some(RestFault::RateLimited { reset_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 2020, "Rate Limit Exceeded");
            for (k, v) in [
                ("ratelimit-limit", "960".to_string()),
                ("ratelimit-remaining", "0".to_string()),
                ("ratelimit-reset", reset_secs.to_string()),
            ] {
                if let Ok(v) = v.parse() {
                    r.headers_mut().insert(k, v);
                }
            }
            (429, Some(r))
        }
        Some(RestFault::RetryAfter { secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 2020, "Rate Limit Exceeded");
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            (429, Some(r))
        }
        Some(RestFault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                code,
                Some(error(status, 2001, "Fault injected by the stand-in")),
            )
        }
        None if !token_ok => (
            401,
            Some(error(StatusCode::UNAUTHORIZED, 2006, "Unauthorized")),
        ),
        None if !accept_ok => (
            406,
            Some(error(
                StatusCode::NOT_ACCEPTABLE,
                2001,
                "Accept must be application/vnd.pagerduty+json;version=2",
            )),
        ),
        None => (200, None),
    };
    st.requests.push(RestRequest {
        path,
        query: query.to_vec(),
        headers: header_list,
        status,
    });
    resp
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn paging(q: &[(String, String)]) -> (usize, usize) {
    let limit = param(q, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let offset = param(q, "offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (limit, offset)
}

fn page(items: Vec<Value>, key: &str, q: &[(String, String)]) -> Response {
    let (limit, offset) = paging(q);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let want_total = param(q, "total") == Some("true");
    axum::Json(json!({
        key: slice,
        "limit": limit,
        "offset": offset,
        "more": offset + limit < total,
        "total": if want_total { json!(total) } else { Value::Null },
    }))
    .into_response()
}

async fn list_incidents(
    State(fake): State<PagerDutyRestFake>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = parse_query(raw.as_deref());
    if let Some(r) = gate(&fake, "/incidents".into(), &q, &headers) {
        return r;
    }
    let when = |name: &str| {
        param(&q, name)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (since, until) = (when("since"), when("until"));
    let statuses: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "statuses[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut found: Vec<FakeIncident> = fake
        .lock()
        .incidents
        .iter()
        .filter(|i| since.is_none_or(|s| i.created_at >= s))
        .filter(|i| until.is_none_or(|u| i.created_at < u))
        .filter(|i| statuses.is_empty() || statuses.contains(&status_of(i)))
        .cloned()
        .collect();
    found.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(a.number.cmp(&b.number))
    });
    page(found.iter().map(incident_json).collect(), "incidents", &q)
}

async fn log_entries(
    State(fake): State<PagerDutyRestFake>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = parse_query(raw.as_deref());
    if let Some(r) = gate(&fake, format!("/incidents/{id}/log_entries"), &q, &headers) {
        return r;
    }
    let found = fake.lock().incidents.iter().find(|i| i.id == id).cloned();
    match found {
        Some(i) => page(log_entries_json(&i), "log_entries", &q),
        None => error(StatusCode::NOT_FOUND, 2100, "Not Found"),
    }
}
