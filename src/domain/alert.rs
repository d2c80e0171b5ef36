//! Alerts from monitoring tools, read into one shape ([`Alert`]), and the routing that decides what each one does
//! ([`Route`], [`decide`]). Pure: no I/O, no clock.
//!
//! Sources (SPEC section 11), each read by one function that names the first field it cannot read
//! ([`FieldError`], answered with 400):
//! - [`alertmanager`]: the Alertmanager webhook, version 4 (`groupKey`, `alerts[]` with `fingerprint`,
//!   `startsAt`, `endsAt` = `0001-01-01T00:00:00Z` while firing, `generatorURL`);
//! - [`grafana`]: Grafana alerting's webhook (the same shape plus `title`, `state`, `message`; alerts carry
//!   `dashboardURL`, `panelURL`, `silenceURL`);
//! - [`datadog`]: the payload template README.md gives (`$ALERT_TRANSITION`, `$AGGREG_KEY`, `$DATE`, `$TAGS`…);
//! - [`generic`]: the bot's own JSON (`{"alerts": [{"key", "status", "title", "service", "severity",
//!   "starts_at", "ends_at", "url", "labels"}]}`);
//! - [`pagerduty`]: PagerDuty V3 webhooks (`incident.triggered`, `.acknowledged`, `.resolved`), whose
//!   `X-PagerDuty-Signature` [`pagerduty_signature_ok`] checks.
//!
//! Everything in an alert is untrusted: titles and labels are cut here ([`MAX_TITLE`], [`MAX_LABEL`]) and
//! escaped where they are rendered; a link is kept only if [`text::checked_url`] accepts it.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::severity::Severity;
use super::text;

/// Longest title kept (the card cuts again to Slack's limits).
pub const MAX_TITLE: usize = 500;
/// Longest label key or value kept.
pub const MAX_LABEL: usize = 200;
/// Most labels kept per alert.
pub const MAX_LABELS: usize = 64;

/// Which tool sent an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Alertmanager,
    Grafana,
    Datadog,
    Generic,
    PagerDuty,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Datadog => "datadog",
            Source::Generic => "generic",
            Source::PagerDuty => "pagerduty",
        }
    }

    /// The source named by [`Source::as_str`].
    pub fn parse(s: &str) -> Option<Source> {
        [
            Source::Alertmanager,
            Source::Grafana,
            Source::Datadog,
            Source::Generic,
            Source::PagerDuty,
        ]
        .into_iter()
        .find(|src| src.as_str() == s)
    }
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub source: Source,
    /// What identifies this alert across re-sends (Alertmanager's `fingerprint`, PagerDuty's incident id…).
    pub fingerprint: String,
    /// The group it was sent in, if the source groups (Alertmanager's `groupKey`).
    pub group_key: Option<String>,
    pub status: AlertStatus,
    /// Untrusted, cut to [`MAX_TITLE`].
    pub title: String,
    /// Labels and the source's fields worth matching on (`service`, `severity`, tags…); untrusted.
    pub labels: BTreeMap<String, String>,
    /// When the problem began, as the source says.
    pub starts_at: DateTime<Utc>,
    /// When it ended (resolved alerts).
    pub ends_at: Option<DateTime<Utc>>,
    /// A link to the alert in its tool, only if it is a checked `http(s)` URL.
    pub link: Option<String>,
}

/// How many of an incident's first alerts its card lists.
pub const LISTED: usize = 5;

/// One alert as an incident's card lists it (untrusted title; `link` checked when stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub title: String,
    pub source: String,
    pub link: Option<String>,
    pub starts_at: DateTime<Utc>,
}

/// What an incident's card shows of its alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct alerts attached.
    pub total: i64,
    /// Of which still firing.
    pub firing: i64,
    /// The first few ([`LISTED`]), in arrival order.
    pub first: Vec<Listed>,
}

/// A field of the payload that could not be read: answered with 400 naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

// ── reading payloads ───────────────────────────────────────────────────────────────────────────────────────────

fn json(body: &[u8]) -> Result<Value, FieldError> {
    serde_json::from_slice(body).map_err(|e| bad("body", format!("not JSON ({e})")))
}

fn str_at<'a>(v: &'a Value, field: &str) -> Result<&'a str, FieldError> {
    match &v[field] {
        Value::String(s) => Ok(s),
        Value::Null => Err(bad(field, "missing")),
        _ => Err(bad(field, "not a string")),
    }
}

fn opt_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v[field].as_str().filter(|s| !s.is_empty())
}

fn time_at(v: &Value, field: &str, name: &str) -> Result<DateTime<Utc>, FieldError> {
    let s = str_at(v, field).map_err(|e| bad(name, e.problem))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(name, "not an RFC 3339 time"))
}

/// Go's zero time (`0001-01-01T00:00:00Z`) and anything before 1970 mean "not set".
fn optional_time(v: &Value, field: &str, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    if v[field].is_null() || v[field].as_str() == Some("") {
        return Ok(None);
    }
    let t = time_at(v, field, name)?;
    Ok((t.timestamp() > 0).then_some(t))
}

fn labels_of(v: &Value, field: &str) -> Result<BTreeMap<String, String>, FieldError> {
    match &v[field] {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(map) => Ok(map
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((text::plain(k, MAX_LABEL), text::plain(&v, MAX_LABEL)))
            })
            .take(MAX_LABELS)
            .collect()),
        _ => Err(bad(field, "not an object")),
    }
}

fn status_of(s: &str, field: &str) -> Result<AlertStatus, FieldError> {
    match s.to_ascii_lowercase().as_str() {
        "firing" | "triggered" | "alerting" | "re-triggered" => Ok(AlertStatus::Firing),
        "resolved" | "recovered" | "ok" => Ok(AlertStatus::Resolved),
        _ => Err(bad(field, format!("unknown status {s:?}"))),
    }
}

fn checked_link(candidates: &[Option<&str>]) -> Option<String> {
    candidates
        .iter()
        .flatten()
        .find_map(|s| text::checked_url(s).map(|u| u.to_string()))
}

fn title(s: &str) -> String {
    text::plain(s.trim(), MAX_TITLE)
}

/// Alertmanager (`version` "4") and Grafana share the group shape; Grafana adds per-alert links.
fn grouped(body: &[u8], source: Source) -> Result<Vec<Alert>, FieldError> {
    let v = json(body)?;
    let group_key = opt_str(&v, "groupKey").map(str::to_string);
    let alerts = v["alerts"]
        .as_array()
        .ok_or_else(|| bad("alerts", "missing or not a list"))?;
    let common = labels_of(&v, "commonLabels")?;
    let mut out = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        let at = |f: &str| format!("alerts[{i}].{f}");
        let mut labels = common.clone();
        labels.extend(labels_of(a, "labels").map_err(|e| bad(at("labels"), e.problem))?);
        let annotations =
            labels_of(a, "annotations").map_err(|e| bad(at("annotations"), e.problem))?;
        let status = status_of(
            str_at(a, "status").map_err(|e| bad(at("status"), e.problem))?,
            &at("status"),
        )?;
        let starts_at = time_at(a, "startsAt", &at("startsAt"))?;
        let ends_at = optional_time(a, "endsAt", &at("endsAt"))?;
        let name = labels.get("alertname").cloned().unwrap_or_default();
        let summary = annotations
            .get("summary")
            .or(annotations.get("description"))
            .cloned();
        let heading = match (name.is_empty(), summary) {
            (false, Some(s)) if s != name => format!("{name}: {s}"),
            (false, _) => name.clone(),
            (true, Some(s)) => s,
            (true, None) => opt_str(&v, "title").unwrap_or("alert").to_string(),
        };
        let fingerprint = match opt_str(a, "fingerprint") {
            Some(f) => f.to_string(),
            // Alertmanager always sends one; without it, the labels identify the alert.
            None => labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        out.push(Alert {
            source,
            fingerprint: text::plain(&fingerprint, MAX_LABEL),
            group_key: group_key.as_deref().map(|g| text::plain(g, MAX_LABEL)),
            status,
            title: title(&heading),
            labels,
            starts_at,
            ends_at,
            link: checked_link(&[
                opt_str(a, "panelURL"),
                opt_str(a, "dashboardURL"),
                opt_str(a, "generatorURL"),
            ]),
        });
    }
    Ok(out)
}

/// An Alertmanager webhook (version 4): one [`Alert`] per entry of `alerts`, with the group's common labels.
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, FieldError> {
    grouped(body, Source::Alertmanager)
}

/// A Grafana alerting webhook.
pub fn grafana(body: &[u8]) -> Result<Vec<Alert>, FieldError> {
    grouped(body, Source::Grafana)
}

/// The Datadog webhook payload of README.md's template: one alert per notification. `aggregate`
/// (`$AGGREG_KEY`) groups, `alert_id` (`$ALERT_ID`, the monitor) + `aggregate` identify it, `date` (`$DATE`, epoch
/// milliseconds) is when it happened, `tags` (`$TAGS`, `key:value,…`) become labels and `priority` its
/// severity.
pub fn datadog(body: &[u8]) -> Result<Vec<Alert>, FieldError> {
    let v = json(body)?;
    let transition = str_at(&v, "transition")?;
    let status = match transition.to_ascii_lowercase().as_str() {
        "recovered" | "resolved" => AlertStatus::Resolved,
        _ => AlertStatus::Firing,
    };
    let monitor = str_at(&v, "alert_id")?;
    let aggregate = opt_str(&v, "aggregate");
    let date = epoch_ms(&v, "date")?;
    let mut labels = BTreeMap::new();
    for tag in opt_str(&v, "tags").unwrap_or_default().split(',') {
        let tag = tag.trim();
        if tag.is_empty() || labels.len() >= MAX_LABELS {
            continue;
        }
        let (k, val) = tag.split_once(':').unwrap_or((tag, ""));
        labels.insert(text::plain(k, MAX_LABEL), text::plain(val, MAX_LABEL));
    }
    if let Some(p) = opt_str(&v, "priority") {
        labels.insert("severity".into(), text::plain(p, MAX_LABEL));
    }
    Ok(vec![Alert {
        source: Source::Datadog,
        fingerprint: text::plain(
            &format!("{monitor}:{}", aggregate.unwrap_or_default()),
            MAX_LABEL,
        ),
        group_key: aggregate.map(|a| text::plain(a, MAX_LABEL)),
        status,
        title: title(opt_str(&v, "title").unwrap_or("Datadog alert")),
        labels,
        starts_at: date,
        ends_at: (status == AlertStatus::Resolved).then_some(date),
        link: checked_link(&[opt_str(&v, "link")]),
    }])
}

fn epoch_ms(v: &Value, field: &str) -> Result<DateTime<Utc>, FieldError> {
    let ms = match &v[field] {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        Value::Null => return Err(bad(field, "missing")),
        _ => None,
    }
    .ok_or_else(|| bad(field, "not epoch milliseconds"))?;
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| bad(field, "out of range"))
}

/// The bot's own JSON: `{"alerts": [{"key", "status", "title", "service"?, "severity"?, "starts_at"?,
/// "ends_at"?, "url"?, "labels"?}]}` (`starts_at` defaults to `now`).
pub fn generic(body: &[u8], now: DateTime<Utc>) -> Result<Vec<Alert>, FieldError> {
    let v = json(body)?;
    let alerts = v["alerts"]
        .as_array()
        .ok_or_else(|| bad("alerts", "missing or not a list"))?;
    let mut out = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        let at = |f: &str| format!("alerts[{i}].{f}");
        let key = str_at(a, "key").map_err(|e| bad(at("key"), e.problem))?;
        if key.trim().is_empty() {
            return Err(bad(at("key"), "empty"));
        }
        let status = status_of(
            str_at(a, "status").map_err(|e| bad(at("status"), e.problem))?,
            &at("status"),
        )?;
        let heading = str_at(a, "title").map_err(|e| bad(at("title"), e.problem))?;
        let mut labels = labels_of(a, "labels").map_err(|e| bad(at("labels"), e.problem))?;
        for field in ["service", "severity"] {
            if let Some(s) = opt_str(a, field) {
                labels.insert(field.into(), text::plain(s, MAX_LABEL));
            }
        }
        let starts_at = optional_time(a, "starts_at", &at("starts_at"))?.unwrap_or(now);
        if starts_at > now {
            return Err(bad(at("starts_at"), "in the future"));
        }
        out.push(Alert {
            source: Source::Generic,
            fingerprint: text::plain(key, MAX_LABEL),
            group_key: opt_str(a, "group").map(|g| text::plain(g, MAX_LABEL)),
            status,
            title: title(heading),
            labels,
            starts_at,
            ends_at: optional_time(a, "ends_at", &at("ends_at"))?,
            link: checked_link(&[opt_str(a, "url")]),
        });
    }
    Ok(out)
}

/// What a PagerDuty V3 webhook says.
#[derive(Debug, Clone, PartialEq)]
pub enum PagerDutyEvent {
    /// `incident.triggered` or `incident.resolved`, read as an alert whose fingerprint is the PagerDuty incident
    /// id (`data.id`).
    Alert(Alert),
    /// `incident.acknowledged`: the PagerDuty incident `incident` was acknowledged at `at`.
    Acknowledged { incident: String, at: DateTime<Utc> },
    /// Any other event type (answered 2xx, nothing done).
    Ignored(String),
}

/// A PagerDuty V3 webhook body (`{"event": {id, event_type, resource_type, occurred_at, data}}`).
pub fn pagerduty(body: &[u8]) -> Result<PagerDutyEvent, FieldError> {
    let v = json(body)?;
    let event = &v["event"];
    if !event.is_object() {
        return Err(bad("event", "missing or not an object"));
    }
    let kind = str_at(event, "event_type").map_err(|e| bad("event.event_type", e.problem))?;
    let status = match kind {
        "incident.triggered" => AlertStatus::Firing,
        "incident.resolved" => AlertStatus::Resolved,
        "incident.acknowledged" => {
            let data = &event["data"];
            let incident = str_at(data, "id").map_err(|e| bad("event.data.id", e.problem))?;
            let at = time_at(event, "occurred_at", "event.occurred_at")?;
            return Ok(PagerDutyEvent::Acknowledged {
                incident: text::plain(incident, MAX_LABEL),
                at,
            });
        }
        other => return Ok(PagerDutyEvent::Ignored(text::plain(other, MAX_LABEL))),
    };
    let data = &event["data"];
    let id = str_at(data, "id").map_err(|e| bad("event.data.id", e.problem))?;
    let occurred = time_at(event, "occurred_at", "event.occurred_at")?;
    let created = optional_time(data, "created_at", "event.data.created_at")?;
    let mut labels = BTreeMap::new();
    if let Some(s) = data["service"]["summary"].as_str() {
        labels.insert("service".to_string(), text::plain(s, MAX_LABEL));
    }
    if let Some(p) = data["priority"]["summary"].as_str() {
        labels.insert("severity".to_string(), text::plain(p, MAX_LABEL));
    } else if let Some(u) = data["urgency"].as_str() {
        labels.insert("urgency".to_string(), text::plain(u, MAX_LABEL));
    }
    Ok(PagerDutyEvent::Alert(Alert {
        source: Source::PagerDuty,
        fingerprint: text::plain(id, MAX_LABEL),
        group_key: None,
        status,
        title: title(opt_str(data, "title").unwrap_or("PagerDuty incident")),
        labels,
        starts_at: created.unwrap_or(occurred),
        ends_at: (status == AlertStatus::Resolved).then_some(occurred),
        link: checked_link(&[opt_str(data, "html_url")]),
    }))
}

/// Whether `X-PagerDuty-Signature` (one or more comma-separated `v1=<hex HMAC-SHA256 of the raw body>`, several
/// during a secret rotation) holds for `body` under `secret`. False without a secret.
pub fn pagerduty_signature_ok(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    header.split(',').any(|part| {
        let Some(hex_sig) = part.trim().strip_prefix("v1=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

// ── routing ────────────────────────────────────────────────────────────────────────────────────────────────────

/// What an alert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Declare an incident (or attach to the open one of its group or service).
    Declare,
    /// Attach to an open incident of its group or service; never declare.
    Attach,
    /// Only post it to the broadcast channel.
    Notify,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "declare" => Some(Action::Declare),
            "attach" => Some(Action::Attach),
            "notify" => Some(Action::Notify),
            _ => None,
        }
    }
}

/// One matcher, Alertmanager style: `label="value"`, `label!="value"`, `label=~"regex"`, `label!~"regex"`
/// (regexes anchored at both ends, as Alertmanager's).
#[derive(Debug, Clone)]
pub struct Matcher {
    label: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    NotEq(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

impl Matcher {
    /// Reads `label="value"` (quotes optional) with `=`, `!=`, `=~` or `!~`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let at = s
            .find(['=', '!'])
            .ok_or_else(|| format!("{s:?}: expected label=\"value\", !=, =~ or !~"))?;
        let label = s[..at].trim();
        if label.is_empty()
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            return Err(format!("{s:?}: the label name is missing or not a name"));
        }
        let rest = &s[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(|| format!("{s:?}: expected =, !=, =~ or !~"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_string();
        let regex = |v: &str| {
            regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("{s:?}: bad regex ({e})"))
        };
        let op = match op {
            "=" => Op::Eq(value),
            "!=" => Op::NotEq(value),
            "=~" => Op::Re(regex(&value)?),
            _ => Op::NotRe(regex(&value)?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// Whether the alert's label (absent = empty, as in Alertmanager) matches.
    pub fn matches(&self, alert: &Alert) -> bool {
        let v = alert
            .labels
            .get(&self.label)
            .map(String::as_str)
            .unwrap_or("");
        match &self.op {
            Op::Eq(want) => v == want,
            Op::NotEq(want) => v != want,
            Op::Re(re) => re.is_match(v),
            Op::NotRe(re) => !re.is_match(v),
        }
    }
}

/// A configured route: when every matcher holds, the alert goes to `service` (else the one it names) with
/// `severity` (else its own) and does `action`.
#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub service: Option<String>,
    pub severity: Option<Severity>,
    pub action: Action,
    /// Resolve the incident when its alerts resolve (otherwise the bot asks).
    pub auto_resolve: bool,
}

/// What to do with one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The catalog service it is for, if known.
    pub service: Option<String>,
    pub severity: Severity,
    pub auto_resolve: bool,
}

/// Severity from an alert's `severity` (or `priority`) label: `critical`/`page`/`P1` → P1,
/// `error`/`major`/`high`/`P2` → P2, anything else P3.
pub fn severity_of(alert: &Alert) -> Severity {
    let s = alert
        .labels
        .get("severity")
        .or(alert.labels.get("priority"))
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match s.as_str() {
        "critical" | "page" | "p1" | "sev1" | "p0" => Severity::P1,
        "error" | "major" | "high" | "p2" | "sev2" => Severity::P2,
        _ => Severity::P3,
    }
}

/// The service an alert names: label `service`, else `app`, else `job`.
pub fn named_service(alert: &Alert) -> Option<&str> {
    ["service", "app", "job"].iter().find_map(|k| {
        alert
            .labels
            .get(*k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    })
}

/// Decides what an alert does: the first route whose matchers all hold; with none, it declares when it names a
/// catalog service (`known` turns a name into the catalog's name) and is only posted otherwise.
pub fn decide(alert: &Alert, routes: &[Route], known: impl Fn(&str) -> Option<String>) -> Decision {
    let named = named_service(alert).and_then(&known);
    if let Some(route) = routes
        .iter()
        .find(|r| r.matchers.iter().all(|m| m.matches(alert)))
    {
        return Decision {
            action: route.action,
            service: route.service.clone().or(named),
            severity: route.severity.unwrap_or_else(|| severity_of(alert)),
            auto_resolve: route.auto_resolve,
        };
    }
    Decision {
        action: if named.is_some() {
            Action::Declare
        } else {
            Action::Notify
        },
        service: named,
        severity: severity_of(alert),
        auto_resolve: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERTMANAGER: &str =
        include_str!("../../tests/fixtures/alerts/alertmanager_webhook_v4.json");
    const GRAFANA: &str = include_str!("../../tests/fixtures/alerts/grafana_webhook.json");
    const DATADOG: &str = include_str!("../../tests/fixtures/alerts/datadog_webhook.json");
    const PAGERDUTY: &str =
        include_str!("../../tests/fixtures/alerts/pagerduty_v3_incident_priority_updated.json");

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn catalog(name: &str) -> Option<String> {
        ["payments", "checkout"]
            .contains(&name)
            .then(|| name.to_string())
    }

    #[test]
    fn an_alertmanager_group_gives_one_alert_each_with_its_start_and_link() {
        let alerts = alertmanager(ALERTMANAGER.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.fingerprint, "3a9c1e6f0b2d4c58");
        assert_eq!(
            a.group_key.as_deref(),
            Some("{}/{severity=\"critical\"}:{alertname=\"PaymentsErrorRate\"}")
        );
        assert_eq!(a.starts_at, at("2026-11-25T14:02:10.123Z"));
        assert_eq!(a.ends_at, None, "Go's zero time means still firing");
        assert_eq!(
            a.title,
            "PaymentsErrorRate: payments: 5xx above 5% for 5 minutes"
        );
        assert!(a
            .link
            .as_deref()
            .unwrap()
            .starts_with("http://prometheus.example.com:9090/graph"));
        let d = decide(a, &[], catalog);
        assert_eq!(
            d,
            Decision {
                action: Action::Declare,
                service: Some("payments".into()),
                severity: Severity::P1,
                auto_resolve: false
            }
        );
    }

    #[test]
    fn grafanas_documented_example_is_read_and_posted_only_since_it_names_no_service() {
        let alerts = grafana(GRAFANA.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1].fingerprint, "bc97ff14869b13e3");
        assert_eq!(alerts[1].starts_at, at("2021-10-12T07:56:03.157076Z"));
        assert_eq!(
            alerts[0].labels.get("team").map(String::as_str),
            Some("blue")
        );
        assert_eq!(
            alerts[0].link.as_deref(),
            Some("https://play.grafana.org/alerting/1afz29v7z/edit")
        );
        assert_eq!(decide(&alerts[0], &[], catalog).action, Action::Notify);
    }

    #[test]
    fn a_resolved_alert_keeps_its_end() {
        let body = ALERTMANAGER
            .replace(
                "\"status\": \"firing\",\n      \"labels\"",
                "\"status\": \"resolved\",\n      \"labels\"",
            )
            .replacen(
                "\"endsAt\": \"0001-01-01T00:00:00Z\"",
                "\"endsAt\": \"2026-11-25T14:31:00Z\"",
                1,
            );
        let a = &alertmanager(body.as_bytes()).unwrap()[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        assert_eq!(a.ends_at, Some(at("2026-11-25T14:31:00Z")));
    }

    #[test]
    fn datadogs_template_is_read_with_tags_as_labels() {
        let a = &datadog(DATADOG.as_bytes()).unwrap()[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.fingerprint, "1234:9bd4ac313a4d1e8fae2482df7b77628");
        assert_eq!(
            a.starts_at,
            Utc.timestamp_millis_opt(1764079330000).unwrap()
        );
        assert_eq!(
            a.labels.get("service").map(String::as_str),
            Some("payments")
        );
        assert_eq!(severity_of(a), Severity::P1);
        let recovered = DATADOG.replace("\"Triggered\"", "\"Recovered\"");
        assert_eq!(
            datadog(recovered.as_bytes()).unwrap()[0].status,
            AlertStatus::Resolved
        );
    }

    #[test]
    fn pagerdutys_events_are_told_apart() {
        let triggered = PAGERDUTY.replace("incident.priority_updated", "incident.triggered");
        let PagerDutyEvent::Alert(a) = pagerduty(triggered.as_bytes()).unwrap() else {
            panic!("an alert")
        };
        assert_eq!(a.fingerprint, "PGR0VU2");
        assert_eq!(
            a.starts_at,
            at("2020-04-09T15:16:27Z"),
            "the incident's creation"
        );
        assert_eq!(a.title, "A little bump in the road");
        assert_eq!(severity_of(&a), Severity::P1);
        assert_eq!(
            a.link.as_deref(),
            Some("https://acme.pagerduty.com/incidents/PGR0VU2")
        );
        let acked = PAGERDUTY.replace("incident.priority_updated", "incident.acknowledged");
        assert_eq!(
            pagerduty(acked.as_bytes()).unwrap(),
            PagerDutyEvent::Acknowledged {
                incident: "PGR0VU2".into(),
                at: at("2020-10-02T18:45:22.169Z")
            }
        );
        assert_eq!(
            pagerduty(PAGERDUTY.as_bytes()).unwrap(),
            PagerDutyEvent::Ignored("incident.priority_updated".into())
        );
    }

    #[test]
    fn pagerduty_signatures_are_checked_against_any_of_the_listed_ones() {
        let body = PAGERDUTY.as_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert!(pagerduty_signature_ok(b"secret", Some(&good), body));
        assert!(pagerduty_signature_ok(
            b"secret",
            Some(&format!("v1=00ff, {good}")),
            body
        ));
        assert!(!pagerduty_signature_ok(b"other", Some(&good), body));
        assert!(!pagerduty_signature_ok(b"secret", None, body));
        assert!(!pagerduty_signature_ok(b"", Some(&good), body));
        assert!(!pagerduty_signature_ok(b"secret", Some(&good), b"{}"));
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        assert_eq!(alertmanager(b"{").unwrap_err().field, "body");
        assert_eq!(alertmanager(b"{}").unwrap_err().field, "alerts");
        let no_start = ALERTMANAGER.replacen("\"startsAt\": \"2026-11-25T14:02:10.123Z\",", "", 1);
        assert_eq!(
            alertmanager(no_start.as_bytes()).unwrap_err().field,
            "alerts[0].startsAt"
        );
        let bad_status = ALERTMANAGER.replacen(
            "\"status\": \"firing\",\n      \"labels\"",
            "\"status\": \"burning\",\n      \"labels\"",
            1,
        );
        assert_eq!(
            alertmanager(bad_status.as_bytes()).unwrap_err().field,
            "alerts[0].status"
        );
        assert_eq!(
            datadog(b"{\"transition\":\"Triggered\",\"alert_id\":\"1\"}")
                .unwrap_err()
                .field,
            "date"
        );
        assert_eq!(
            pagerduty(b"{\"event\":{}}").unwrap_err().field,
            "event.event_type"
        );
        let now = at("2026-11-25T15:00:00Z");
        assert_eq!(
            generic(br#"{"alerts":[{"key":"k","status":"firing","title":"t","starts_at":"2026-11-25T16:00:00Z"}]}"#, now)
                .unwrap_err()
                .field,
            "alerts[0].starts_at"
        );
    }

    #[test]
    fn hostile_links_are_dropped_and_long_text_is_cut() {
        let body = format!(
            r#"{{"alerts":[{{"key":"k","status":"firing","title":"{}","url":"javascript:alert(1)","labels":{{"service":"payments"}}}}]}}"#,
            "x".repeat(5_000)
        );
        let a = &generic(body.as_bytes(), Utc::now()).unwrap()[0];
        assert_eq!(a.link, None);
        assert!(a.title.chars().count() <= MAX_TITLE);
        let piped = r#"{"alerts":[{"key":"k","status":"firing","title":"t","url":"https://evil.example|Join"}]}"#;
        assert_eq!(generic(piped.as_bytes(), Utc::now()).unwrap()[0].link, None);
    }

    #[test]
    fn routes_match_like_alertmanager_and_the_first_one_wins() {
        let alerts = alertmanager(ALERTMANAGER.as_bytes()).unwrap();
        let route = |m: &[&str], action, service: Option<&str>| Route {
            matchers: m.iter().map(|m| Matcher::parse(m).unwrap()).collect(),
            service: service.map(str::to_string),
            severity: Some(Severity::P2),
            action,
            auto_resolve: true,
        };
        let routes = vec![
            route(&["alertname=\"Nothing\""], Action::Notify, None),
            route(
                &["severity=~\"crit.*\"", "instance!~\".*-2b41:.*\""],
                Action::Attach,
                Some("checkout"),
            ),
            route(&["job=payments"], Action::Declare, None),
        ];
        let first = decide(&alerts[0], &routes, catalog);
        assert_eq!(first.action, Action::Attach);
        assert_eq!(first.service.as_deref(), Some("checkout"));
        assert_eq!(first.severity, Severity::P2);
        assert!(first.auto_resolve);
        let second = decide(&alerts[1], &routes, catalog);
        assert_eq!(second.action, Action::Declare);
        assert_eq!(second.service.as_deref(), Some("payments"));
        // An absent label is empty, as in Alertmanager.
        assert!(Matcher::parse("missing=\"\"").unwrap().matches(&alerts[0]));
        assert!(
            !Matcher::parse("severity=~\"crit\"")
                .unwrap()
                .matches(&alerts[0]),
            "anchored"
        );
    }

    #[test]
    fn bad_matchers_are_refused_with_a_reason() {
        for bad in ["", "severity", "=x", "a b=c", "x=~\"(\""] {
            assert!(Matcher::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn severities_follow_the_spec() {
        let mut a = alertmanager(ALERTMANAGER.as_bytes()).unwrap().remove(0);
        for (label, want) in [
            ("critical", Severity::P1),
            ("page", Severity::P1),
            ("P1", Severity::P1),
            ("error", Severity::P2),
            ("major", Severity::P2),
            ("high", Severity::P2),
            ("P2", Severity::P2),
            ("warning", Severity::P3),
            ("", Severity::P3),
        ] {
            a.labels.insert("severity".into(), label.into());
            assert_eq!(severity_of(&a), want, "{label}");
        }
    }
}
