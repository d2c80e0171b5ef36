//! `GET /metrics`: the Prometheus text exposition of [`crate::observability`]'s registry.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::observability;
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, observability::CONTENT_TYPE)],
        observability::render(),
    )
}
