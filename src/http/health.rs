//! Liveness and readiness.
//!
//! `/healthz` answers as long as the process serves HTTP. `/readyz` answers 200 only while the bot can do its
//! job: the database answers a query within [`READY_DEADLINE`] and, for SQLite, the database file is still
//! where the configuration says (a deleted or unmounted file would silently lose every write); and Slack
//! accepts the bot token. Otherwise 503 with the reason, so that a load balancer or Kubernetes takes the
//! replica out of rotation until the database is back or the token is fixed.
//!
//! The token's verdict comes from [`SlackClient::token_verdict`](crate::slack::SlackClient::token_verdict)
//! (`auth.test`, asked at most every few seconds whatever the probe rate).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::db::Backend;
use crate::state::AppState;

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
    state.slack.token_verdict().await.map_err(Cow::Owned)
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
