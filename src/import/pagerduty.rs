//! `incident-bot import pagerduty --since 30d`: PagerDuty incidents as baseline MTTR history.
//!
//! Reads the REST API v2 (`GET /incidents` with `since`/`until`, `statuses[]=resolved`, offset/limit/`more`
//! pagination, in windows of at most 30 days; `GET /incidents/{id}/log_entries` for each) with
//! `Authorization: Token token=…` and `Accept: application/vnd.pagerduty+json;version=2`. A 429 is waited out
//! (`ratelimit-reset`, else `Retry-After`, else backoff) and retried, as are 5xx answers (at most
//! `max_attempts` in all); a connection dropped mid-answer is retried [`TRANSPORT_ATTEMPTS`] times. An API that
//! cannot be reached at all (refused, no route, no DNS answer, nothing within `connect_timeout`) is reported at
//! once: retrying would only make the user wait minutes to learn it.
//!
//! What is stored ([`derive`], pure): started = PagerDuty's `created_at`; acknowledged = the first
//! `acknowledge_log_entry`; resolved = the last `resolve_log_entry` (else the incident's `resolved_at`).
//! Identified and fixed are unknown and stay NULL — never invented — and the detection method is stored as
//! `unknown`. Severity comes from the priority (`P1`–`P3`; `P4`/`P5` → P3), else urgency (`high` → P2, `low` →
//! P3). The service is the catalog service whose `pagerduty.com/service-id` annotation names the PagerDuty
//! service, else the catalog service with PagerDuty's service name, else that name as is. Rows are keyed by
//! (`source` = `pagerduty`, `external_id` = the PagerDuty ID), so running the import again updates them instead
//! of adding duplicates. Only resolved incidents are imported; open ones are picked up by a later run.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::db::Db;
use crate::domain::severity::Severity;
use crate::store::imports::{self, ImportedIncident};

/// Where and what to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// e.g. `https://api.pagerduty.com`.
    pub api_url: String,
    pub token: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Attempts per request before giving up (429s and 5xx).
    pub max_attempts: u32,
    /// Longest wait for one retry, whatever the server says.
    pub max_wait: StdDuration,
    pub timeout: StdDuration,
    /// Longest wait for a connection to the API.
    pub connect_timeout: StdDuration,
}

/// Attempts per request when the connection breaks after it was made (no answer, or a cut answer).
pub const TRANSPORT_ATTEMPTS: u32 = 3;

impl Options {
    pub fn new(api_url: &str, token: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> Options {
        Options {
            api_url: api_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            since,
            until,
            max_attempts: 8,
            max_wait: StdDuration::from_secs(60),
            timeout: StdDuration::from_secs(30),
            connect_timeout: StdDuration::from_secs(5),
        }
    }
}

/// Tells the user how far the import is.
pub trait Progress: Send {
    /// More incidents were found (the bar's length grows).
    fn found(&mut self, n: u64);
    /// One incident was stored (or skipped).
    fn done(&mut self, n: u64);
    /// Something worth saying (rate limited, retrying, …).
    fn note(&mut self, msg: &str);
    fn finish(&mut self, summary: &str);
}

/// No output (tests).
pub struct Quiet;

impl Progress for Quiet {
    fn found(&mut self, _: u64) {}
    fn done(&mut self, _: u64) {}
    fn note(&mut self, _: &str) {}
    fn finish(&mut self, _: &str) {}
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Incidents PagerDuty listed.
    pub seen: usize,
    pub inserted: usize,
    pub updated: usize,
    /// Listed but not usable (e.g. no resolve time); with the reason.
    pub skipped: Vec<(String, String)>,
    /// 429 answers waited out.
    pub rate_limited: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} PagerDuty incidents: {} new, {} updated, {} skipped",
            self.seen,
            self.inserted,
            self.updated,
            self.skipped.len()
        )?;
        if self.rate_limited > 0 {
            write!(f, " ({} rate-limited requests retried)", self.rate_limited)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "PagerDuty refused the API token (HTTP {0}); set PAGERDUTY_API_TOKEN to a REST API key"
    )]
    Auth(u16),
    #[error("PagerDuty answered HTTP {status} to {path}: {message}")]
    Api {
        status: u16,
        path: String,
        message: String,
    },
    #[error("PagerDuty kept failing for {path}: {message}")]
    GaveUp { path: String, message: String },
    #[error("cannot reach the PagerDuty API at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Setup(String),
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The severity of a PagerDuty incident (see the module docs).
pub fn severity_of(incident: &Value) -> Severity {
    let priority = incident["priority"]["summary"]
        .as_str()
        .or_else(|| incident["priority"]["name"].as_str())
        .map(|p| p.trim().to_ascii_uppercase());
    match priority.as_deref() {
        Some("P1") | Some("SEV1") | Some("SEV-1") => return Severity::P1,
        Some("P2") | Some("SEV2") | Some("SEV-2") => return Severity::P2,
        Some(p) if p.starts_with('P') || p.starts_with("SEV") => return Severity::P3,
        _ => {}
    }
    match incident["urgency"].as_str() {
        Some("low") => Severity::P3,
        _ => Severity::P2,
    }
}

/// The catalog name for a PagerDuty service.
pub fn service_of(incident: &Value, catalog: &Catalog) -> Option<String> {
    let id = incident["service"]["id"].as_str().unwrap_or_default();
    let name = incident["service"]["summary"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(s) = catalog
        .services()
        .iter()
        .find(|s| !id.is_empty() && s.pagerduty_service_id.as_deref() == Some(id))
    {
        return Some(s.name.clone());
    }
    let name = name?;
    Some(
        catalog
            .get(name)
            .map_or_else(|| name.to_string(), |s| s.name.clone()),
    )
}

/// Turns an incident and its log entries into what is stored; `Err` says why it is skipped.
pub fn derive(
    incident: &Value,
    log: &[Value],
    catalog: &Catalog,
) -> Result<ImportedIncident, String> {
    let id = incident["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("no id")?;
    let started_at = time(&incident["created_at"]).ok_or("no created_at")?;
    let of_kind = |kind: &str| {
        let mut ts: Vec<DateTime<Utc>> = log
            .iter()
            .filter(|e| e["type"].as_str() == Some(kind))
            .filter_map(|e| time(&e["created_at"]))
            .collect();
        ts.sort();
        ts
    };
    let resolved_at = of_kind("resolve_log_entry")
        .last()
        .copied()
        .or_else(|| time(&incident["resolved_at"]))
        .or_else(|| {
            (incident["status"].as_str() == Some("resolved"))
                .then(|| time(&incident["last_status_change_at"]))
                .flatten()
        })
        .ok_or("not resolved")?;
    if resolved_at < started_at {
        return Err("resolved before it was created".into());
    }
    let acknowledged_at = of_kind("acknowledge_log_entry")
        .first()
        .copied()
        .filter(|a| *a >= started_at && *a <= resolved_at);
    // Stored like a declared title: no control, direction-override or zero-width characters.
    let title = incident["title"]
        .as_str()
        .or_else(|| incident["summary"].as_str())
        .and_then(crate::domain::text::Title::parse)
        .map_or_else(|| "PagerDuty incident".to_string(), |t| t.into_string());
    Ok(ImportedIncident {
        external_id: id.to_string(),
        number: incident["incident_number"].as_i64().unwrap_or(0),
        title,
        severity: severity_of(incident),
        service: service_of(incident, catalog),
        started_at,
        acknowledged_at,
        resolved_at,
    })
}

/// The REST client.
struct Client {
    http: reqwest::Client,
    opts: Options,
}

impl Client {
    /// GETs `path` with `query`, retrying 429s, 5xx and transport errors.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        progress: &mut dyn Progress,
        summary: &mut Summary,
    ) -> Result<Value, ImportError> {
        let url = format!("{}{path}", self.opts.api_url);
        let mut last = String::new();
        let mut broken = 0;
        for attempt in 1..=self.opts.max_attempts {
            let backoff = StdDuration::from_millis(250 * (1u64 << attempt.min(8)));
            let sent = self
                .http
                .get(&url)
                .query(query)
                .header("Authorization", format!("Token token={}", self.opts.token))
                .header("Accept", "application/vnd.pagerduty+json;version=2")
                .header("Content-Type", "application/json")
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    return Err(ImportError::Unreachable {
                        url: self.opts.api_url.clone(),
                        message: root_cause(&e),
                    })
                }
                Err(e) => {
                    last = root_cause(&e);
                    broken += 1;
                    if broken >= TRANSPORT_ATTEMPTS {
                        break;
                    }
                    progress.note(&format!("{path}: {last}; retrying"));
                    tokio::time::sleep(backoff.min(self.opts.max_wait)).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status == 429 {
                summary.rate_limited += 1;
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                };
                let wait = header("ratelimit-reset")
                    .or_else(|| header("retry-after"))
                    .map(|s| StdDuration::from_millis((s.max(0.0) * 1000.0) as u64))
                    .unwrap_or(backoff)
                    .min(self.opts.max_wait);
                progress.note(&format!(
                    "rate limited by PagerDuty; waiting {:.0} s",
                    wait.as_secs_f64().ceil()
                ));
                last = "rate limited (HTTP 429)".into();
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(ImportError::Auth(status));
            }
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status >= 500 {
                last = format!("HTTP {status}");
                progress.note(&format!("{path}: HTTP {status}; retrying"));
                tokio::time::sleep(backoff.min(self.opts.max_wait)).await;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(ImportError::Api {
                    status,
                    path: path.into(),
                    message: body["error"]["message"]
                        .as_str()
                        .unwrap_or("unexpected answer")
                        .to_string(),
                });
            }
            return Ok(body);
        }
        Err(ImportError::GaveUp {
            path: path.into(),
            message: last,
        })
    }

    /// Every log entry of one incident.
    async fn log_entries(
        &self,
        id: &str,
        summary: &mut Summary,
    ) -> Result<Vec<Value>, ImportError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        let path = format!("/incidents/{id}/log_entries");
        loop {
            let v = self
                .get(
                    &path,
                    &[
                        ("limit", "100".into()),
                        ("offset", offset.to_string()),
                        ("time_zone", "UTC".into()),
                        ("is_overview", "false".into()),
                    ],
                    &mut Quiet,
                    summary,
                )
                .await?;
            let page = v["log_entries"].as_array().cloned().unwrap_or_default();
            let n = page.len();
            out.extend(page);
            if v["more"].as_bool() != Some(true) || n == 0 {
                return Ok(out);
            }
            offset += n;
        }
    }
}

/// The innermost cause of an error (reqwest's own message only names the URL; the cause says what failed).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The longest `since`–`until` window asked for at once.
const WINDOW: Duration = Duration::days(30);
/// PagerDuty's classic pagination stops at offset + limit = 10 000; a fuller window is split.
const MAX_OFFSET: usize = 10_000;
/// Log-entry requests in flight at once.
const CONCURRENCY: usize = 4;

/// Imports every resolved incident created in `[since, until)`.
pub async fn run(
    db: &Db,
    catalog: &Catalog,
    opts: Options,
    progress: &mut dyn Progress,
) -> Result<Summary, ImportError> {
    if opts.since >= opts.until {
        return Err(ImportError::Setup("--since must be before --until".into()));
    }
    let http = reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        .build()
        .map_err(|e| ImportError::Setup(e.to_string()))?;
    let client = Client { http, opts };
    let mut summary = Summary::default();
    // Windows still to fetch, latest first on the stack so that the oldest is fetched first.
    let mut windows = Vec::new();
    let mut end = client.opts.until;
    while end > client.opts.since {
        let start = (end - WINDOW).max(client.opts.since);
        windows.push((start, end));
        end = start;
    }
    while let Some((start, end)) = windows.pop() {
        let mut offset = 0usize;
        loop {
            let v = client
                .get(
                    "/incidents",
                    &[
                        ("since", rfc3339(start)),
                        ("until", rfc3339(end)),
                        ("statuses[]", "resolved".into()),
                        ("time_zone", "UTC".into()),
                        ("sort_by", "created_at:asc".into()),
                        ("limit", "100".into()),
                        ("offset", offset.to_string()),
                        ("total", "true".into()),
                    ],
                    progress,
                    &mut summary,
                )
                .await?;
            let page = v["incidents"].as_array().cloned().unwrap_or_default();
            if offset == 0 {
                let total = v["total"].as_u64().unwrap_or(page.len() as u64);
                progress.found(total);
            } else if v["total"].is_null() {
                progress.found(page.len() as u64);
            }
            let more = v["more"].as_bool() == Some(true) && !page.is_empty();
            summary.seen += page.len();
            let mut fetched = futures::stream::iter(page.into_iter().map(|inc| {
                let client = &client;
                async move {
                    let id = inc["id"].as_str().unwrap_or_default().to_string();
                    let mut s = Summary::default();
                    let log = client.log_entries(&id, &mut s).await;
                    (inc, log, s.rate_limited)
                }
            }))
            .buffered(CONCURRENCY);
            while let Some((inc, log, limited)) = fetched.next().await {
                summary.rate_limited += limited;
                let id = inc["id"].as_str().unwrap_or("?").to_string();
                match derive(&inc, &log?, catalog) {
                    Ok(d) => {
                        if imports::store(db, &d).await? {
                            summary.inserted += 1;
                        } else {
                            summary.updated += 1;
                        }
                    }
                    Err(why) => summary.skipped.push((id, why)),
                }
                progress.done(1);
            }
            if !more {
                break;
            }
            offset += 100;
            if offset + 100 > MAX_OFFSET && end - start > Duration::hours(1) {
                // Too many for one window: fetch the rest of it in two halves (stored rows are updated in place).
                let mid = start + (end - start) / 2;
                progress.note("many incidents in one window; splitting it");
                windows.push((mid, end));
                windows.push((start, mid));
                break;
            }
        }
    }
    progress.finish(&summary.to_string());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn incident() -> Value {
        json!({
            "id": "PT4KHLK",
            "incident_number": 1234,
            "title": "The server is on fire.",
            "created_at": "2015-10-06T21:30:42Z",
            "status": "resolved",
            "service": { "id": "PIJ90N7", "type": "service_reference", "summary": "My Mail Service" },
            "last_status_change_at": "2015-10-06T21:38:23Z",
            "resolved_at": "2015-10-06T21:38:23Z",
            "priority": { "id": "P53ZZH5", "type": "priority_reference", "summary": "P2" },
            "urgency": "high",
        })
    }

    fn entry(kind: &str, at: &str) -> Value {
        json!({ "type": format!("{kind}_log_entry"), "created_at": at })
    }

    fn catalog() -> Catalog {
        Catalog::parse(
            "kind: Component\nmetadata:\n  name: mail\n  annotations:\n    pagerduty.com/service-id: PIJ90N7\n---\nkind: Component\nmetadata:\n  name: payments\n",
        )
        .expect("catalog")
    }

    #[test]
    fn acknowledge_and_resolve_times_come_from_the_log_entries() {
        let log = vec![
            entry("trigger", "2015-10-06T21:30:42Z"),
            entry("acknowledge", "2015-10-06T21:33:00Z"),
            entry("acknowledge", "2015-10-06T21:35:00Z"),
            entry("resolve", "2015-10-06T21:40:00Z"),
        ];
        let d = derive(&incident(), &log, &catalog()).expect("derived");
        assert_eq!(d.external_id, "PT4KHLK");
        assert_eq!(d.number, 1234);
        assert_eq!(d.severity, Severity::P2);
        assert_eq!(d.service.as_deref(), Some("mail"), "mapped by service id");
        assert_eq!(rfc3339(d.started_at), "2015-10-06T21:30:42Z");
        assert_eq!(
            d.acknowledged_at.map(rfc3339).as_deref(),
            Some("2015-10-06T21:33:00Z")
        );
        assert_eq!(rfc3339(d.resolved_at), "2015-10-06T21:40:00Z");
    }

    #[test]
    fn without_a_resolve_entry_the_incident_resolved_at_is_used_and_ack_stays_unknown() {
        let d = derive(&incident(), &[], &catalog()).expect("derived");
        assert_eq!(rfc3339(d.resolved_at), "2015-10-06T21:38:23Z");
        assert_eq!(d.acknowledged_at, None);
    }

    #[test]
    fn an_open_incident_is_skipped() {
        let mut inc = incident();
        inc["status"] = json!("acknowledged");
        inc["resolved_at"] = Value::Null;
        assert_eq!(
            derive(&inc, &[], &catalog()),
            Err("not resolved".to_string())
        );
    }

    #[test]
    fn severity_follows_priority_then_urgency() {
        let mut inc = incident();
        inc["priority"]["summary"] = json!("P1");
        assert_eq!(severity_of(&inc), Severity::P1);
        inc["priority"]["summary"] = json!("P4");
        assert_eq!(severity_of(&inc), Severity::P3);
        inc["priority"] = Value::Null;
        assert_eq!(severity_of(&inc), Severity::P2);
        inc["urgency"] = json!("low");
        assert_eq!(severity_of(&inc), Severity::P3);
    }

    #[test]
    fn services_map_by_id_then_by_name_then_stay_as_named() {
        let mut inc = incident();
        assert_eq!(service_of(&inc, &catalog()).as_deref(), Some("mail"));
        inc["service"] = json!({ "id": "POTHER", "summary": "Payments" });
        assert_eq!(service_of(&inc, &catalog()).as_deref(), Some("payments"));
        inc["service"] = json!({ "id": "POTHER", "summary": "Legacy Billing" });
        assert_eq!(
            service_of(&inc, &catalog()).as_deref(),
            Some("Legacy Billing")
        );
    }
}
