//! The alert endpoints (SPEC section 11):
//! - `POST /api/v1/alerts/alertmanager`, `/grafana`, `/datadog`, `/generic`: `Authorization: Bearer
//!   <ALERT_API_TOKEN>`, compared in constant time;
//! - `POST /api/v1/alerts/pagerduty`: PagerDuty V3 webhooks, `X-PagerDuty-Signature: v1=<hex HMAC-SHA256>`
//!   under `PAGERDUTY_WEBHOOK_SECRET` (any of the listed signatures may match, for secret rotation).
//!
//! Every alert of a request is stored (one transaction) before the answer: `202` with
//! `{"received", "stored", "duplicates"}` (a re-sent alert is a duplicate, stored once). `400` names the field
//! and stores nothing; `401` means a missing or wrong token or signature; `503` means the endpoint's token or
//! secret is not configured.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::alerts::intake;
use crate::domain::alert::{pagerduty_signature_ok, FieldError, Source};
use crate::errors::ApiError;
use crate::state::AppState;

/// The routes, accepting bodies up to `body_limit` bytes (`alerts.body_limit_bytes`, above the server's own
/// limit: a storm's Alertmanager group carries every alert of the group). The token or signature header is
/// checked before a byte of the body is read, so an unauthenticated request never has its body buffered (the
/// PagerDuty signature covers the body: the header's presence is checked first, the signature once it is read).
pub fn router(body_limit: usize) -> Router<Arc<AppState>> {
    let bearer_route = move |source: Source| {
        post(move |s: State<Arc<AppState>>, h: HeaderMap, b: Body| {
            bearer(s, h, b, source, body_limit)
        })
    };
    Router::new()
        .route(
            "/api/v1/alerts/alertmanager",
            bearer_route(Source::Alertmanager),
        )
        .route("/api/v1/alerts/grafana", bearer_route(Source::Grafana))
        .route("/api/v1/alerts/datadog", bearer_route(Source::Datadog))
        .route("/api/v1/alerts/generic", bearer_route(Source::Generic))
        .route(
            "/api/v1/alerts/pagerduty",
            post(move |s: State<Arc<AppState>>, h: HeaderMap, b: Body| {
                pagerduty(s, h, b, body_limit)
            }),
        )
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::bad(e.field, e.problem)
    }
}

#[tracing::instrument(name = "alerts_receive", skip_all, fields(source = source.as_str()))]
async fn bearer(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
    source: Source,
    body_limit: usize,
) -> Result<Response, ApiError> {
    if state.secrets.alert_api_token.is_none() {
        return Err(ApiError::Unavailable(
            "alerts are not configured: set ALERT_API_TOKEN to accept them",
        ));
    }
    super::deploys::check_bearer(
        state.secrets.alert_api_token.as_ref(),
        &headers,
        "ALERT_API_TOKEN",
    )?;
    let body =
        super::read_body(body, body_limit, "the body is over alerts.body_limit_bytes").await?;
    receive(&state, source, &body).await
}

#[tracing::instrument(name = "alerts_pagerduty", skip_all)]
async fn pagerduty(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
    body_limit: usize,
) -> Result<Response, ApiError> {
    let Some(secret) = state.secrets.pagerduty_webhook_secret.as_ref() else {
        return Err(ApiError::Unavailable(
            "PagerDuty webhooks are not configured: set PAGERDUTY_WEBHOOK_SECRET (the subscription's signing secret)",
        ));
    };
    let signature = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    if signature.is_none() {
        return Err(ApiError::Unauthorized("missing X-PagerDuty-Signature"));
    }
    let body =
        super::read_body(body, body_limit, "the body is over alerts.body_limit_bytes").await?;
    if !pagerduty_signature_ok(secret.expose().as_bytes(), signature, &body) {
        return Err(ApiError::Unauthorized("wrong X-PagerDuty-Signature"));
    }
    receive(&state, Source::PagerDuty, &body).await
}

async fn receive(state: &Arc<AppState>, source: Source, body: &[u8]) -> Result<Response, ApiError> {
    let items = intake::read(source, body, state.clock.now())?;
    let stored = intake::store(state, &items).await?;
    tracing::debug!(
        received = stored.received,
        stored = stored.stored,
        "alerts stored"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "received": stored.received,
            "stored": stored.stored,
            "duplicates": stored.received as u64 - stored.stored,
        })),
    )
        .into_response())
}
