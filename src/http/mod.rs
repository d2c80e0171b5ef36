//! The HTTP front door. One router per feature, merged here:
//! - [`slack`]: `POST /slack/commands`, `/slack/interactions`, `/slack/events` (signed by Slack);
//! - [`health`]: `GET /healthz`, `/readyz`;
//! - [`metrics`]: `GET /metrics` (Prometheus);
//! - [`deploys`]: `POST`/`GET /api/v1/deploys` (bearer token);
//! - [`webhooks`]: `POST /webhooks/github`, `/webhooks/gitlab`, `/webhooks/argocd`;
//! - [`alerts`]: `POST /api/v1/alerts/{alertmanager,grafana,datadog,generic}` (bearer token) and
//!   `/api/v1/alerts/pagerduty` (PagerDuty V3 signature).
//!
//! Bodies larger than `http.body_limit_bytes` (`alerts.body_limit_bytes` on the alert routes) get 413 (with
//! `Connection: close`). The routes behind a bearer token (the deploy API's `POST`, the alert routes) check it
//! before reading a byte of the body ([`read_body`]), as the Slack routes check their signature headers. The
//! server itself ([`server`]) bounds the time to read headers and bodies and the connections served at once.

pub mod alerts;
pub mod deploys;
pub mod health;
pub mod metrics;
pub mod server;
pub mod slack;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.http.body_limit_bytes;
    Router::new()
        .merge(slack::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(deploys::router())
        .merge(webhooks::router())
        .merge(alerts::router(state.settings.alerts.body_limit_bytes))
        .layer(DefaultBodyLimit::max(limit))
        // tower's `MapResponse` maps the answer in place; axum's `middleware::map_response` would clone the
        // route and box a future for every request.
        .layer(tower::util::MapResponseLayer::new(close_after_413))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Reads a body of at most `limit` bytes (the setting `setting` names), for a handler that first checked the
/// request's headers: 413 over the limit.
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    setting: &'static str,
) -> Result<axum::body::Bytes, crate::errors::ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| crate::errors::ApiError::TooLarge(setting))
}

/// A body refused with 413 is left unread, so the server closes the connection after answering. Saying so
/// (`Connection: close`) keeps a client from sending its next request down that connection and seeing it reset.
fn close_after_413(mut resp: axum::response::Response) -> axum::response::Response {
    if resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}
