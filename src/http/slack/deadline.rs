//! Slack's 3 seconds, kept even while the database hangs. Every Slack request — over HTTP or Socket Mode, both
//! go through the handlers' `handle_*` functions — runs under [`within`]: work not finished after
//! `slack.answer_within_ms` (default 2.5 s) is abandoned and answered with a late reply instead:
//!
//! - a slash command: 200 with [`super::commands::FAILED`] ("may not have been recorded, try again");
//! - a modal submission: the form stays open with that sentence under its title field (`response_action: errors`);
//! - a button click: 200, and the clicker is told ephemerally through the `response_url`;
//! - an event: 503, so that Slack delivers it again later (a 200 would lose it; a retry is taken once).
//!
//! Abandoned work stored at most what its own transaction committed; Slack retries and users re-typing are taken
//! once (replays, `event_id`s and declarations are deduplicated elsewhere).

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// What a late answer says; the slash command's reply is [`super::commands::FAILED`].
pub const LATE: &str =
    "⚠️ incident-bot is slow to reach its database, so this may not have been recorded. \
Try again in a moment.";

/// Runs `work` for at most `slack.answer_within_ms`; `None` when the deadline passed first (the work is dropped).
pub async fn within<T>(
    state: &AppState,
    what: &'static str,
    work: impl Future<Output = T>,
) -> Option<T> {
    let limit = Duration::from_millis(state.settings.slack.answer_within_ms);
    match tokio::time::timeout(limit, work).await {
        Ok(done) => Some(done),
        Err(_) => {
            tracing::error!(
                what,
                limit_ms = limit.as_millis() as u64,
                "a Slack request was not handled in time; answered \"try again\""
            );
            None
        }
    }
}

/// The late answer to a modal submission: the form stays open and says so under its title.
pub fn late_view_submission() -> Response {
    Json(json!({ "response_action": "errors", "errors": { "title": LATE } })).into_response()
}

/// The late answer to an event: not 200, so that Slack delivers it again.
pub fn late_event() -> Response {
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}
