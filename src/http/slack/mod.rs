//! Slack's three entry points. Every request is verified against the signing secret before its body is
//! parsed: the handlers take their body as [`Signed`], whose extraction checks the signature ([`verified`]); a
//! bad one gets 401 and leaves no trace. Handlers answer within Slack's 3 seconds: anything that calls Slack or a
//! pager runs after the answer, in the background.

pub mod commands;
pub mod deadline;
pub mod events;
pub mod interactions;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use crate::errors::ApiError;
use crate::slack::verify;
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/slack/commands", post(commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/slack/events", post(events::handle))
}

/// The body of a request signed by Slack: extracting it refuses what the headers alone condemn (no signature, a
/// stale timestamp) before reading anything, then reads the body (413 over `http.body_limit_bytes`) and checks its
/// v0 signature ([`verified`]), so a handler that takes one never sees an unverified body. The
/// headers are taken out of the request rather than copied.
pub struct Signed(pub Bytes);

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        // What the headers alone can refuse (no secret, no or malformed signature, stale timestamp) is refused
        // before the body is read.
        if let Err(e) = check(state, &headers, &[]) {
            if e != verify::SignatureError::Mismatch {
                return Err(refused(e).into_response());
            }
        }
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        verified(state, &headers, &body).map_err(IntoResponse::into_response)?;
        Ok(Signed(body))
    }
}

/// Checks the v0 signature of a Slack request; 401 when it does not hold.
pub fn verified(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
    check(state, headers, body).map_err(refused)
}

fn refused(e: verify::SignatureError) -> ApiError {
    tracing::warn!(reason = %e, "refused a Slack request");
    crate::observability::slack_request_refused();
    ApiError::Unauthorized("invalid Slack signature")
}

fn check(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), verify::SignatureError> {
    let secret = state
        .secrets
        .slack_signing_secret
        .as_ref()
        .map(|s| s.expose().as_bytes())
        .unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify::verify(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        state.clock.now().timestamp(),
        state.settings.slack.signature_tolerance_secs,
    )
}

/// A reply only the requester sees.
pub fn ephemeral(text: impl AsRef<str>) -> Response {
    #[derive(Serialize)]
    struct Ephemeral<'a> {
        response_type: &'static str,
        text: &'a str,
    }
    Json(Ephemeral {
        response_type: "ephemeral",
        text: text.as_ref(),
    })
    .into_response()
}

/// Turns a serde_urlencoded / serde_json error into a 400 that names the field.
pub fn bad_body(e: impl std::fmt::Display) -> ApiError {
    let msg = e.to_string();
    let field = msg
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "body".to_string());
    ApiError::bad(field, msg)
}
