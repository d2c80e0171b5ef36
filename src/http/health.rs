//! Liveness and readiness.
//!
//! `/healthz` answers as long as the process serves HTTP. `/readyz` answers 200 only while the bot can do its
//! job: the database answers a query within [`READY_DEADLINE`] and, for SQLite, the database file is still
//! where the configuration says (a deleted or unmounted file would silently lose every write); and Slack
//! accepts the bot token. Otherwise 503 with the reason, so that a load balancer or Kubernetes takes the
//! replica out of rotation until the database is back or the token is fixed.
//!
//! The token is checked with `auth.test` ([`SlackAuth`]): at most once per [`RECHECK_REJECTED`] while Slack
//! rejects it (`invalid_auth`, `account_inactive`, `token_revoked`, …) and once per [`RECHECK_ACCEPTED`]
//! while it accepts it, whatever the probe rate; probes arriving together share one call. A Slack that cannot
//! be reached or answers with an error unrelated to the token leaves the last verdict as it is: a Slack outage
//! is not this replica's fault, and taking every replica out would not help.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::db::Backend;
use crate::slack::{SlackClient, SlackError};
use crate::startup::AppState;

/// How long `/readyz` waits for the database before answering 503.
pub const READY_DEADLINE: Duration = Duration::from_secs(2);

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// How long an accepted token is trusted before `auth.test` is asked again.
pub const RECHECK_ACCEPTED: Duration = Duration::from_secs(60);
/// How long a rejected token stays rejected before `auth.test` is asked again.
pub const RECHECK_REJECTED: Duration = Duration::from_secs(5);

/// The process can do its job: the database answers and Slack accepts the token.
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Cow<'static, str>) {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, Cow::Borrowed("ready")),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, why)
        }
    }
}

/// Why the bot is not ready, if it is not.
pub async fn readiness(state: &AppState) -> Result<(), Cow<'static, str>> {
    if state.db.backend == Backend::Sqlite {
        if let Some(path) = sqlite_file(&state.settings.database_url) {
            if !path.exists() {
                return Err("database file missing".into());
            }
        }
    }
    match tokio::time::timeout(READY_DEADLINE, state.db.ping()).await {
        Ok(true) => {}
        Ok(false) => return Err("database unreachable".into()),
        Err(_) => return Err("database not answering".into()),
    }
    state
        .slack_auth
        .verdict(&state.slack)
        .await
        .map_err(Cow::Owned)
}

/// Slack's last verdict on the bot token (see the module doc).
#[derive(Debug, Default)]
pub struct SlackAuth {
    last: tokio::sync::Mutex<Option<Checked>>,
}

#[derive(Debug, Clone)]
struct Checked {
    at: Instant,
    /// `Some(code)` while Slack rejects the token.
    rejected: Option<String>,
}

impl SlackAuth {
    /// `Err(reason)` while Slack rejects the token; asks Slack when the last verdict is due for a recheck.
    pub async fn verdict(&self, slack: &SlackClient) -> Result<(), String> {
        let mut last = self.last.lock().await;
        let due = match &*last {
            None => true,
            Some(c) if c.rejected.is_some() => c.at.elapsed() >= RECHECK_REJECTED,
            Some(c) => c.at.elapsed() >= RECHECK_ACCEPTED,
        };
        if due {
            let before = last.as_ref().and_then(|c| c.rejected.clone());
            let rejected = match ask(slack).await {
                Answer::Accepted => None,
                Answer::Rejected(code) => Some(code),
                Answer::Unknown => before,
            };
            *last = Some(Checked {
                at: Instant::now(),
                rejected,
            });
        }
        match last.as_ref().and_then(|c| c.rejected.as_deref()) {
            Some(code) => Err(format!("slack rejects the bot token: {code}")),
            None => Ok(()),
        }
    }
}

enum Answer {
    Accepted,
    Rejected(String),
    /// No answer, or an answer that says nothing about the token.
    Unknown,
}

/// What `auth.test` says about the token, within [`READY_DEADLINE`].
async fn ask(slack: &SlackClient) -> Answer {
    match tokio::time::timeout(
        READY_DEADLINE,
        slack.call("auth.test", serde_json::json!({})),
    )
    .await
    {
        Ok(Ok(_)) => Answer::Accepted,
        Ok(Err(SlackError::NoToken)) => Answer::Rejected("SLACK_BOT_TOKEN is not set".into()),
        Ok(Err(SlackError::Api { code, .. })) if token_rejected(&code) => Answer::Rejected(code),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "auth.test for readiness said nothing about the token");
            Answer::Unknown
        }
        Err(_) => Answer::Unknown,
    }
}

/// Slack's error codes that mean the token itself is not accepted (`auth.test` and every method).
fn token_rejected(code: &str) -> bool {
    matches!(
        code,
        "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "team_access_not_granted"
            | "org_login_required"
            | "ekm_access_denied"
    )
}

/// The file of an `sqlite://path[?options]` URL (none for in-memory databases).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file_unless_in_memory() {
        assert_eq!(
            sqlite_file("sqlite://incident-bot.db"),
            Some(PathBuf::from("incident-bot.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/bot/x.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/bot/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://file?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://db/x"), None);
    }
}
