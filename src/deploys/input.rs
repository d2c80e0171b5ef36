//! Reading deploy events sent to `POST /api/v1/deploys` (one event, or `{"deploys": [...]}`), and the checks
//! every deploy passes before it is stored, whichever way it came in (API, webhook, CLI). Pure.
//!
//! Fields (SPEC §4): `service` (required), `environment` (default `production`; `prod`/`prd` mean
//! production; lowercased), `version`, `commit_sha` (hex), `url` (http/https), `author`, `deployed_at`
//! (RFC 3339; default now; not more than an hour ahead), `source` (default `api`), `id` (optional: makes
//! re-sending harmless). The service is mapped through the catalog (names and deploy aliases) to its
//! canonical name; a service not in the catalog is kept as sent. Unknown fields are refused, so that a
//! typo (`deployedAt`) is not silently ignored. Every error names its field (`deploys[2].deployed_at`).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::NewDeploy;
use crate::catalog::Catalog;

/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;

/// A field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A deploy event's fields as received (strings, unchecked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployFields {
    pub id: Option<String>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub deployed_at: Option<String>,
    pub source: Option<String>,
}

const FIELDS: [&str; 9] = [
    "id",
    "service",
    "environment",
    "version",
    "commit_sha",
    "url",
    "author",
    "deployed_at",
    "source",
];

/// Reads a request body: one event object or `{"deploys": [...]}` (1 to [`MAX_BATCH`] events).
pub fn parse_body(
    body: &[u8],
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Vec<NewDeploy>, FieldError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(FieldError::new(
            "body",
            "expected a JSON object: one deploy event or {\"deploys\": [...]}",
        ));
    };
    match obj.get("deploys") {
        Some(list) => {
            if let Some(other) = obj.keys().find(|k| *k != "deploys") {
                return Err(FieldError::new(
                    other.clone(),
                    "a batch is {\"deploys\": [...]} with nothing beside it",
                ));
            }
            let Value::Array(items) = list else {
                return Err(FieldError::new(
                    "deploys",
                    "expected an array of deploy events",
                ));
            };
            if items.is_empty() {
                return Err(FieldError::new("deploys", "empty: send at least one event"));
            }
            if items.len() > MAX_BATCH {
                return Err(FieldError::new(
                    "deploys",
                    format!("{} events: at most {MAX_BATCH} per request", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let prefix = format!("deploys[{i}].");
                    let Value::Object(o) = item else {
                        return Err(FieldError::new(
                            format!("deploys[{i}]"),
                            "expected a deploy event object",
                        ));
                    };
                    let fields = fields_of(o, &prefix)?;
                    validate(fields, catalog, now).map_err(|e| e.prefixed(&prefix))
                })
                .collect()
        }
        None => {
            let fields = fields_of(&obj, "")?;
            Ok(vec![validate(fields, catalog, now)?])
        }
    }
}

impl FieldError {
    fn prefixed(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

/// Takes the known fields out of an event object: strings (a number is taken for `version`), null = absent.
fn fields_of(o: &Map<String, Value>, prefix: &str) -> Result<DeployFields, FieldError> {
    if let Some(unknown) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            format!("{prefix}{unknown}"),
            format!("unknown field (known: {})", FIELDS.join(", ")),
        ));
    }
    let get = |name: &str| -> Result<Option<String>, FieldError> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if name == "version" => Ok(Some(n.to_string())),
            Some(other) => Err(FieldError::new(
                format!("{prefix}{name}"),
                format!("expected a string, got {}", json_kind(other)),
            )),
        }
    };
    Ok(DeployFields {
        id: get("id")?,
        service: get("service")?,
        environment: get("environment")?,
        version: get("version")?,
        commit_sha: get("commit_sha")?,
        url: get("url")?,
        author: get("author")?,
        deployed_at: get("deployed_at")?,
        source: get("source")?,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A trimmed, non-empty value or `None`.
fn present(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    if v.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("too long ({} characters; at most {max})", v.chars().count()),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(())
}

fn check_name(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    check_text(field, v, max)?;
    if v.chars().any(char::is_whitespace) {
        return Err(FieldError::new(field, "must not contain spaces"));
    }
    Ok(())
}

/// Parses `deployed_at`: RFC 3339, e.g. `2026-11-25T14:32:00Z` or `2026-11-25T15:32:00+01:00`.
pub fn parse_instant(field: &str, v: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(
                field,
                format!(
                    "`{}` is not an RFC 3339 time (e.g. 2026-11-25T14:32:00Z)",
                    v.chars().take(40).collect::<String>()
                ),
            )
        })
}

/// Checks and normalises one event; `now` fills a missing `deployed_at`.
pub fn validate(
    f: DeployFields,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<NewDeploy, FieldError> {
    let service = present(f.service).ok_or_else(|| FieldError::new("service", "missing"))?;
    check_name("service", &service, 100)?;
    let service = catalog.get(&service).map_or(service, |s| s.name.clone());

    let environment = match present(f.environment) {
        None => super::PRODUCTION.to_string(),
        Some(e) => {
            let e = e.to_lowercase();
            if e.len() > 64
                || !e
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            {
                return Err(FieldError::new(
                    "environment",
                    "use letters, digits and - _ . / (at most 64), e.g. production or staging",
                ));
            }
            match e.as_str() {
                "prod" | "prd" => super::PRODUCTION.to_string(),
                _ => e,
            }
        }
    };

    let id = present(f.id);
    if let Some(id) = &id {
        check_name("id", id, 200)?;
    }
    let version = present(f.version);
    if let Some(v) = &version {
        check_text("version", v, 200)?;
    }
    let author = present(f.author);
    if let Some(a) = &author {
        check_text("author", a, 200)?;
    }
    let commit_sha = present(f.commit_sha).map(|s| s.to_lowercase());
    if let Some(sha) = &commit_sha {
        if !(4..=64).contains(&sha.len()) || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(FieldError::new(
                "commit_sha",
                "expected a hexadecimal commit hash (4 to 64 characters)",
            ));
        }
    }
    let url = present(f.url);
    if let Some(u) = &url {
        check_name("url", u, 2000)?;
        let lower = u.to_ascii_lowercase();
        let host = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            return Err(FieldError::new(
                "url",
                "expected an http:// or https:// URL",
            ));
        }
    }
    let source = present(f.source).unwrap_or_else(|| "api".to_string());
    check_name("source", &source, 50)?;

    let deployed_at = match present(f.deployed_at) {
        None => now,
        Some(t) => {
            let at = parse_instant("deployed_at", &t)?;
            if at > now + Duration::hours(1) {
                return Err(FieldError::new(
                    "deployed_at",
                    format!(
                        "{} is {} in the future — check its time zone",
                        at.to_rfc3339(),
                        crate::domain::duration::format_duration(at - now)
                    ),
                ));
            }
            if at.timestamp() < 946_684_800 {
                return Err(FieldError::new("deployed_at", "before the year 2000"));
            }
            at
        }
    };

    Ok(NewDeploy {
        id,
        service,
        environment,
        version,
        commit_sha,
        url,
        author,
        deployed_at,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn catalog() -> Catalog {
        Catalog::parse(include_str!("../../config/catalog.yaml")).expect("shipped catalog")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
    }

    fn body(text: &str) -> Result<Vec<NewDeploy>, FieldError> {
        parse_body(text.as_bytes(), &catalog(), now())
    }

    fn field(text: &str) -> String {
        body(text).expect_err("should be refused").field
    }

    #[test]
    fn a_minimal_event_gets_the_documented_defaults() {
        let d = body(r#"{"service":"search"}"#).unwrap();
        assert_eq!(
            d,
            vec![NewDeploy {
                id: None,
                service: "search".into(),
                environment: "production".into(),
                version: None,
                commit_sha: None,
                url: None,
                author: None,
                deployed_at: now(),
                source: "api".into(),
            }]
        );
    }

    #[test]
    fn a_full_event_is_kept_and_its_alias_mapped_to_the_catalog_name() {
        let d = body(
            r#"{"id":"ci-77","service":"payments-api","environment":"Prod","version":"v2.14.0",
                "commit_sha":"F95F852BD8","url":"https://ci.example/77","author":"alice",
                "deployed_at":"2026-11-25T15:32:00+01:00","source":"jenkins"}"#,
        )
        .unwrap();
        assert_eq!(d[0].service, "payments");
        assert_eq!(d[0].environment, "production");
        assert_eq!(d[0].commit_sha.as_deref(), Some("f95f852bd8"));
        assert_eq!(
            d[0].deployed_at,
            Utc.with_ymd_and_hms(2026, 11, 25, 14, 32, 0).unwrap()
        );
        assert_eq!(d[0].id.as_deref(), Some("ci-77"));
        assert_eq!(d[0].source, "jenkins");
    }

    #[test]
    fn a_service_not_in_the_catalog_is_kept_as_sent() {
        assert_eq!(
            body(r#"{"service":"billing"}"#).unwrap()[0].service,
            "billing"
        );
    }

    #[test]
    fn a_batch_is_read_in_order() {
        let d =
            body(r#"{"deploys":[{"service":"auth","version":1},{"service":"inventory-sync"}]}"#)
                .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].version.as_deref(), Some("1"));
        assert_eq!(d[1].service, "inventory");
    }

    #[test]
    fn every_refusal_names_its_field() {
        assert_eq!(field(r#"{}"#), "service");
        assert_eq!(field(r#"{"service":"  "}"#), "service");
        assert_eq!(field(r#"{"service":"two words"}"#), "service");
        assert_eq!(
            field(&format!(r#"{{"service":"{}"}}"#, "x".repeat(101))),
            "service"
        );
        assert_eq!(field(r#"{"service":7}"#), "service");
        assert_eq!(
            field(r#"{"service":"a","deployed_at":"yesterday"}"#),
            "deployed_at"
        );
        assert_eq!(
            field(r#"{"service":"a","deployed_at":"2026-11-25 14:00"}"#),
            "deployed_at"
        );
        assert_eq!(
            field(r#"{"service":"a","deployed_at":"2026-11-25T18:00:00Z"}"#),
            "deployed_at"
        );
        assert_eq!(
            field(r#"{"service":"a","environment":"prod env!"}"#),
            "environment"
        );
        assert_eq!(
            field(r#"{"service":"a","commit_sha":"not-a-sha"}"#),
            "commit_sha"
        );
        assert_eq!(field(r#"{"service":"a","url":"ftp://x"}"#), "url");
        assert_eq!(
            field(r#"{"service":"a","deployedAt":"2026-11-25T14:00:00Z"}"#),
            "deployedAt"
        );
        assert_eq!(
            field(r#"{"deploys":[{"service":"a"},{"version":"1"}]}"#),
            "deploys[1].service"
        );
        assert_eq!(field(r#"{"deploys":[{"service":"a"},3]}"#), "deploys[1]");
        assert_eq!(field(r#"{"deploys":[]}"#), "deploys");
        assert_eq!(field(r#"{"deploys":{}}"#), "deploys");
        assert_eq!(field(r#"{"deploys":[],"service":"a"}"#), "service");
        assert_eq!(field(r#"[1]"#), "body");
        assert_eq!(field(r#"{"service":"#), "body");
    }

    #[test]
    fn a_batch_over_the_limit_is_refused() {
        let items = vec![r#"{"service":"a"}"#; MAX_BATCH + 1].join(",");
        let e = body(&format!(r#"{{"deploys":[{items}]}}"#)).unwrap_err();
        assert_eq!(e.field, "deploys");
        assert!(e.message.contains("at most 1000"), "{e}");
    }
}
