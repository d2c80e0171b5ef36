//! Slack's three entry points. Every request is verified against the signing secret before its body is
//! parsed: the handlers take their body as [`Signed`], whose extraction checks the signature; a bad one gets 401
//! and leaves no trace, and missing, malformed or stale signature headers get it before the body is read. A
//! byte-identical replay of a signed request inside the window has no second effect ([`Signed::first_sight`]):
//! it is answered with an empty 200. Events are also recognised by their `event_id`, as Slack's retries are. Handlers answer within Slack's 3 seconds: anything that calls Slack or a
//! pager runs after the answer, in the background.
//!
//! The handlers only read payloads and write replies: each turns what Slack sent into a typed request for a use
//! case ([`crate::incidents`], [`crate::deploys`], [`crate::digest`]) and renders its typed outcome
//! ([`phases`]: the phase buttons and commands). [`socket_mode`] takes the same payloads over Slack's Socket
//! Mode WebSocket instead of HTTP.

pub mod commands;
pub mod deadline;
pub mod events;
pub mod followups;
pub mod interactions;
pub mod nudges;
pub mod phases;
pub mod roles;
pub mod severity;
pub mod socket_mode;
pub mod updates;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::slack::verify;
use crate::state::AppState;
use crate::store::replays::Sighting;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/slack/commands", post(commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/slack/events", post(events::handle))
}

/// The body of a request signed by Slack: extracting it first checks the signature headers (present, well formed,
/// timestamp inside the window) and refuses with 401 before reading a byte of the body, then reads the body
/// (413 over `http.body_limit_bytes`) and checks its v0 signature ([`verified`]), so a handler that takes one
/// never sees an unverified body. The headers are taken out of the request rather than copied.
pub struct Signed {
    pub body: Bytes,
    /// [`verify::replay_key`] of the request: see [`Signed::first_sight`].
    replay_key: String,
    /// The request's timestamp, epoch milliseconds.
    at_ms: i64,
}

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let checked = signature_headers(state, &headers).map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        verify::verify_body(secret(state), &checked, &body)
            .map_err(refused)
            .map_err(IntoResponse::into_response)?;
        Ok(Signed {
            body,
            replay_key: verify::replay_key(&checked),
            at_ms: checked.timestamp.saturating_mul(1_000),
        })
    }
}

impl Signed {
    /// Records the request's signature; false when it was seen before: a byte-identical replay (same timestamp,
    /// same signature) inside the window, which the caller answers with an empty 200 and otherwise ignores.
    /// The record is one conditional insert, so of two replicas on one database only one sees it first.
    pub async fn first_sight(&self, state: &AppState) -> Result<bool, sqlx::Error> {
        Self::first(state, &self.sighting()).await
    }

    /// What [`Signed::first_sight`] records, for a use case that records it in its own transaction.
    pub fn sighting(&self) -> Sighting {
        Sighting {
            digest: self.replay_key.clone(),
            at_ms: self.at_ms,
        }
    }

    /// Records `seen` on its own (see [`Signed::first_sight`]); false for a replay.
    pub async fn first(state: &AppState, seen: &Sighting) -> Result<bool, sqlx::Error> {
        let first = crate::store::replays::first_sight(&state.db, &seen.digest, seen.at_ms).await?;
        if !first {
            tracing::warn!("ignored a replayed Slack request");
        }
        Ok(first)
    }
}

/// The answer to a replayed request: an empty 200, as if it had been handled.
pub fn replayed() -> Response {
    axum::http::StatusCode::OK.into_response()
}

fn secret(state: &AppState) -> &[u8] {
    state
        .secrets
        .slack_signing_secret
        .as_ref()
        .map(|s| s.expose().as_bytes())
        .unwrap_or_default()
}

fn refused(e: verify::SignatureError) -> ApiError {
    tracing::warn!(reason = %e, "refused a Slack request");
    crate::observability::slack_request_refused();
    ApiError::Unauthorized("invalid Slack signature")
}

/// The signature headers of a Slack request, checked before its body is read; 401 when they do not hold.
fn signature_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<verify::SignatureHeaders, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify::check_headers(
        secret(state),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        state.clock.now().timestamp(),
        state.settings.slack.signature_tolerance_secs,
    )
    .map_err(refused)
}

/// The fields of Slack's slash-command payload that the bot uses.
#[derive(Debug, Deserialize)]
pub struct SlashCommand {
    pub team_id: String,
    pub user_id: String,
    pub channel_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub response_url: Option<String>,
    #[serde(default)]
    pub trigger_id: Option<String>,
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
