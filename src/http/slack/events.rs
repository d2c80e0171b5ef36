//! `POST /slack/events`: the Events API — the `url_verification` handshake and `event_callback`s.
//! Slack retries a delivery it thinks failed with the same `event_id`; each id is handled once, which also makes
//! a byte-identical replay of a delivery a no-op (an empty 200). Signatures are not recorded here: an immediate
//! retry by Slack may carry the same timestamp and signature, and must still be taken when the first delivery
//! failed before its id was recorded.
//!
//! An `app_mention` is a deploy question: answered ([`crate::deploys::answer::mention_reply`]) in its thread.
//! A 📌 (`pushpin`) `reaction_added` captures the message into its incident's timeline, and the edits and
//! deletions (`message` events of subtype `message_changed` / `message_deleted`) of a captured message are
//! followed ([`crate::incidents::timeline`]). Other `message` events and other reactions are recorded (each
//! event id once) and otherwise ignored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{bad_body, deadline, Signed};
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
                let event = &envelope["event"];
                match event["type"].as_str() {
                    Some("app_mention") => answer_mention(&state, event),
                    Some("reaction_added") if is_pin(event) => capture_pinned(&state, event),
                    Some("message") => follow_edit(&state, event).await?,
                    _ => {}
                }
            }
            Ok(StatusCode::OK.into_response())
        }
        Some(_) => Ok(StatusCode::OK.into_response()),
        None => Err(ApiError::bad("type", "missing")),
    }
}

/// Whether a `reaction_added` is a 📌 on a message.
fn is_pin(event: &Value) -> bool {
    event["reaction"].as_str() == Some(PUSHPIN) && event["item"]["type"] == "message"
}

/// The reaction that captures a message into the incident timeline.
const PUSHPIN: &str = "pushpin";

/// A 📌 on a message: captures it into its channel's incident timeline in the background and tells the person
/// who reacted, once. A 📌 outside incident channels is left alone.
fn capture_pinned(state: &Arc<AppState>, event: &Value) {
    let (Some(channel), Some(ts), Some(user)) = (
        event["item"]["channel"].as_str(),
        event["item"]["ts"].as_str(),
        event["user"].as_str(),
    ) else {
        tracing::warn!("reaction_added without item.channel, item.ts or user");
        return;
    };
    let (channel, ts, user) = (channel.to_string(), ts.to_string(), user.to_string());
    let state = state.clone();
    tokio::spawn(async move {
        use crate::incidents::timeline::{self, Outcome};
        match timeline::capture(&state, &channel, &ts, None).await {
            Ok(Outcome::Added(key)) => {
                if let Err(e) = state
                    .slack
                    .post_ephemeral(&channel, &user, &timeline::added_line(&key))
                    .await
                {
                    tracing::warn!(error = %e, "could not confirm a captured message");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "could not capture a message"),
        }
    });
}

/// A `message_changed` / `message_deleted` event: a captured copy follows.
async fn follow_edit(state: &AppState, event: &Value) -> Result<(), ApiError> {
    let channel = event["channel"].as_str().unwrap_or_default();
    match event["subtype"].as_str() {
        Some("message_changed") => {
            let m = &event["message"];
            // A deleted thread parent stays as a "tombstone": for the timeline it is deleted.
            if m["subtype"].as_str() == Some("tombstone") {
                if let Some(ts) = m["ts"].as_str() {
                    crate::incidents::timeline::deleted(state, channel, ts).await?;
                }
            } else if let (Some(ts), Some(text)) = (m["ts"].as_str(), m["text"].as_str()) {
                crate::incidents::timeline::edited(state, channel, ts, text).await?;
            }
        }
        Some("message_deleted") => {
            if let Some(ts) = event["deleted_ts"].as_str() {
                crate::incidents::timeline::deleted(state, channel, ts).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Records `event_id`; false when it was already handled (a Slack retry).
pub async fn first_delivery(state: &AppState, event_id: &str) -> Result<bool, sqlx::Error> {
    crate::store::replays::first_delivery(&state.db, event_id, state.clock.now()).await
}

/// Answers an `app_mention` event ([`crate::deploys::answer::mention_reply`]) in its thread, in the background
/// (the event is acknowledged at once). Messages from bots are not answered.
fn answer_mention(state: &Arc<AppState>, event: &Value) {
    if event.get("bot_id").is_some_and(|b| !b.is_null()) {
        return;
    }
    let (Some(channel), Some(ts)) = (event["channel"].as_str(), event["ts"].as_str()) else {
        tracing::warn!("app_mention without channel or ts");
        return;
    };
    let thread = event["thread_ts"].as_str().unwrap_or(ts).to_string();
    let channel = channel.to_string();
    let user = event["user"].as_str().map(str::to_string);
    let text = event["text"].as_str().unwrap_or_default().to_string();
    let state = state.clone();
    tokio::spawn(async move {
        let reply = crate::deploys::answer::mention_reply(&state, user.as_deref(), &text).await;
        post_in_thread(&state, &channel, &thread, &reply).await;
    });
}

/// Posts `text` in the thread, retrying a few times on rate limits and transient errors.
async fn post_in_thread(state: &AppState, channel: &str, thread_ts: &str, text: &str) {
    let mut delay = std::time::Duration::from_millis(500);
    for attempt in 1..=4 {
        match state.slack.post_in_thread(channel, thread_ts, text).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && attempt < 4 => {
                let wait = e.retry_after().unwrap_or(delay);
                tracing::warn!(error = %e, attempt, "answer not posted yet; retrying");
                tokio::time::sleep(wait).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, channel, "could not post the deploy answer");
                return;
            }
        }
    }
}
