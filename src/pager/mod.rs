//! Paging people: the secondary on-call at declaration, the escalation target later.
//!
//! One [`Pager`] speaks three protocols, chosen per service by the catalog's [`PagerRoute`]:
//! PagerDuty Events API v2 (`dedup_key` = incident id, so a retried page collapses into one alert),
//! Opsgenie (`alias` = the same key), or a generic JSON webhook (`Idempotency-Key` header). Keys come from the
//! environment variables that the catalog names; they never appear in errors or logs. The summary (untrusted
//! title, service) is cleaned and cut by [`text::plain`] (PagerDuty and the webhook 1,024 characters, Opsgenie 130).

use std::time::Duration;

use serde_json::{json, Value};

use crate::catalog::PagerRoute;
use crate::config::{PagerSettings, Secrets};
use crate::domain::severity::Severity;
use crate::domain::text;

/// What a page says of the incident's title: nothing for a private incident (the page carries its number and
/// link only).
pub fn title_of(inc: &crate::domain::incident::Incident) -> &str {
    if inc.private {
        "(private incident)"
    } else {
        &inc.title
    }
}

/// What to page about.
#[derive(Debug, Clone)]
pub struct Page {
    /// Same key → same alert, however often it is sent.
    pub dedup_key: String,
    pub summary: String,
    pub severity: Severity,
    /// The service, as PagerDuty's `source`.
    pub source: String,
    /// Link to the incident channel, when there is one.
    pub link: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PagerError {
    /// The pager refused the page; sending it again will not help.
    #[error("pager refused the page: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// Try again later (429, 5xx, network).
    #[error("pager unavailable: {message}")]
    Retry {
        after: Option<Duration>,
        message: String,
    },
    /// The routing key's variable is not set.
    #[error("environment variable {0} (pager key) is not set")]
    MissingKey(String),
}

#[derive(Debug, Clone)]
pub struct Pager {
    http: reqwest::Client,
    settings: PagerSettings,
}

impl Pager {
    pub fn new(settings: PagerSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.call_timeout_ms))
            .build()?;
        Ok(Pager { http, settings })
    }

    /// Sends `page` along `route`; returns a short receipt for the step log.
    #[tracing::instrument(skip_all, fields(dedup_key = %page.dedup_key))]
    pub async fn page(
        &self,
        route: &PagerRoute,
        secrets: &Secrets,
        page: &Page,
    ) -> Result<String, PagerError> {
        match route {
            PagerRoute::PagerDuty { routing_key_env } => {
                let key = secrets
                    .named(routing_key_env)
                    .ok_or_else(|| PagerError::MissingKey(routing_key_env.clone()))?;
                let severity = match page.severity {
                    Severity::P1 => "critical",
                    Severity::P2 => "error",
                    Severity::P3 => "warning",
                };
                let mut body = json!({
                    "routing_key": key.expose(),
                    "event_action": "trigger",
                    "dedup_key": page.dedup_key,
                    "client": "incident-bot",
                    "payload": {
                        "summary": text::plain(&page.summary, 1024),
                        "source": page.source,
                        "severity": severity,
                        "component": page.source,
                        "custom_details": page.details,
                    },
                });
                if let Some(link) = &page.link {
                    body["links"] = json!([{ "href": link, "text": "Incident channel" }]);
                }
                let url = format!(
                    "{}/v2/enqueue",
                    self.settings.pagerduty_events_url.trim_end_matches('/')
                );
                let resp = self.send(self.http.post(url).json(&body)).await?;
                Ok(format!("PagerDuty accepted ({resp})"))
            }
            PagerRoute::Opsgenie { api_key_env, team } => {
                let key = secrets
                    .named(api_key_env)
                    .ok_or_else(|| PagerError::MissingKey(api_key_env.clone()))?;
                let mut body = json!({
                    "message": text::plain(&page.summary, 130),
                    "alias": page.dedup_key,
                    "description": page.link.clone().unwrap_or_default(),
                    "priority": page.severity.as_str(),
                    "source": "incident-bot",
                    "entity": page.source,
                    "details": page.details,
                });
                if let Some(team) = team {
                    body["responders"] = json!([{ "name": team, "type": "team" }]);
                }
                let url = format!(
                    "{}/v2/alerts",
                    self.settings.opsgenie_api_url.trim_end_matches('/')
                );
                let req = self
                    .http
                    .post(url)
                    .header("Authorization", format!("GenieKey {}", key.expose()))
                    .json(&body);
                let resp = self.send(req).await?;
                Ok(format!("Opsgenie accepted ({resp})"))
            }
            PagerRoute::Webhook { url } => {
                let body = json!({
                    "event": "incident.page",
                    "dedup_key": page.dedup_key,
                    "summary": text::plain(&page.summary, 1024),
                    "severity": page.severity.as_str(),
                    "service": page.source,
                    "link": page.link,
                    "details": page.details,
                });
                let req = self
                    .http
                    .post(url)
                    .header("Idempotency-Key", &page.dedup_key)
                    .json(&body);
                let resp = self.send(req).await?;
                Ok(format!("webhook accepted ({resp})"))
            }
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<u16, PagerError> {
        let resp = req.send().await.map_err(|e| PagerError::Retry {
            after: None,
            message: describe_reqwest(&e),
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(status);
        }
        let after = retry_after(resp.headers());
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        if status == 429 || status >= 500 {
            Err(PagerError::Retry {
                after,
                message: format!("HTTP {status}"),
            })
        } else {
            Err(PagerError::Refused {
                status,
                message: text,
            })
        }
    }
}

/// Seconds to wait from `Retry-After` or PagerDuty's `ratelimit-reset`.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    [
        "retry-after",
        "ratelimit-reset",
        "x-ratelimit-period-in-sec",
    ]
    .iter()
    .find_map(|k| h.get(*k)?.to_str().ok()?.trim().parse::<u64>().ok())
    .map(Duration::from_secs)
}

/// A network error without the URL (which may carry a webhook secret).
fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "connection failed".into()
    }
}
