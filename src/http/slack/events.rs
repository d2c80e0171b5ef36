//! `POST /slack/events`: the Events API — the `url_verification` handshake and `event_callback`s.
//! Slack retries a delivery it thinks failed with the same `event_id`; each id is handled once, which also makes
//! a byte-identical replay of a delivery a no-op (an empty 200). Signatures are not recorded here: an immediate
//! retry by Slack may carry the same timestamp and signature, and must still be taken when the first delivery
//! failed before its id was recorded.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{bad_body, deadline, Signed};
use crate::db::ms;
use crate::errors::ApiError;
use crate::state::AppState;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, ApiError> {
    handle_body(state, signed.body).await
}

/// An Events API delivery already known to come from Slack (a signed request or a Socket Mode envelope), as
/// the JSON body Slack posts.
#[tracing::instrument(name = "slack_event", skip_all)]
pub async fn handle_body(state: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let envelope: Value = serde_json::from_slice(&body).map_err(bad_body)?;
    match envelope["type"].as_str() {
        Some("url_verification") => {
            let challenge = envelope["challenge"]
                .as_str()
                .ok_or_else(|| ApiError::bad("challenge", "missing"))?;
            Ok(Json(json!({ "challenge": challenge })).into_response())
        }
        Some("event_callback") => {
            let event_id = envelope["event_id"]
                .as_str()
                .ok_or_else(|| ApiError::bad("event_id", "missing"))?;
            let Some(first) =
                deadline::within(&state, "event", first_delivery(&state, event_id)).await
            else {
                return Ok(deadline::late_event());
            };
            if first? {
                tracing::info!(
                    event_id,
                    kind = envelope["event"]["type"].as_str().unwrap_or("?"),
                    "event received"
                );
                if envelope["event"]["type"].as_str() == Some("app_mention") {
                    crate::deploys::answer::spawn_mention_answer(&state, &envelope["event"]);
                }
            }
            Ok(StatusCode::OK.into_response())
        }
        Some(_) => Ok(StatusCode::OK.into_response()),
        None => Err(ApiError::bad("type", "missing")),
    }
}

/// Records `event_id`; false when it was already handled (a Slack retry).
pub async fn first_delivery(state: &AppState, event_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("INSERT INTO processed_events (event_id, at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING")
        .bind(event_id)
        .bind(ms(state.clock.now()))
        .execute(&state.db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}
