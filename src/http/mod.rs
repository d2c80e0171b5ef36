//! The HTTP front door. One router per feature, merged here:
//! - [`slack`]: `POST /slack/commands`, `/slack/interactions`, `/slack/events` (signed by Slack);
//! - [`health`]: `GET /healthz`, `/readyz`.
//!
//! Bodies larger than `http.body_limit_bytes` get 413 before any handler runs.

pub mod health;
pub mod slack;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::startup::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.http.body_limit_bytes;
    Router::new()
        .merge(slack::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
