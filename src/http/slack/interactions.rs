//! `POST /slack/interactions`: button clicks, modal submissions and the "Add to incident timeline" message
//! shortcut (`payload=<json>` form bodies).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_body, deadline, replayed, Signed};
use crate::domain::command;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::Title;
use crate::errors::ApiError;
use crate::incidents::declare::{self, DeclareRequest};
use crate::incidents::detection;
use crate::incidents::started::ImpactStart;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct Form {
    payload: String,
}

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, ApiError> {
    answer(state, signed.body.clone(), Some(&signed)).await
}

/// An interaction already known to come from Slack (a signed request or a Socket Mode envelope), as the
/// form-encoded `payload=<json>` body Slack posts.
#[tracing::instrument(name = "interaction", skip_all, fields(incident_id = tracing::field::Empty))]
pub async fn handle_form(state: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    answer(state, body, None).await
}

/// Handles an interaction within the answer deadline; a signed request is first recorded as seen, and a replay
/// is answered with an empty 200 (that record is inside the deadline too: it needs the database).
async fn answer(
    state: Arc<AppState>,
    body: Bytes,
    signed: Option<&Signed>,
) -> Result<Response, ApiError> {
    let form: Form = serde_urlencoded::from_bytes(&body).map_err(bad_body)?;
    let payload: Value =
        serde_json::from_str(&form.payload).map_err(|e| ApiError::bad("payload", e.to_string()))?;
    let kind = payload["type"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.type", "missing"))?;
    let work = async {
        if let Some(signed) = signed {
            if !signed.first_sight(&state).await? {
                return Ok(replayed());
            }
        }
        match kind {
            "view_submission"
                if payload["view"]["callback_id"].as_str() == Some("incident_start") =>
            {
                submit_declare(&state, &payload).await
            }
            "view_submission" if super::updates::is_update_form(&payload) => {
                super::updates::on_submit(&state, &payload).await
            }
            "view_submission" if super::followups::is_form(&payload) => {
                super::followups::on_submit(&state, &payload).await
            }
            "block_actions" if super::followups::is_followup_click(&payload) => {
                super::followups::on_click(&state, &payload).await
            }
            "block_actions" if detection_answer(&payload).is_some() => {
                on_detection_answer(&state, &payload).await
            }
            "block_actions" if super::severity::is_severity_select(&payload) => {
                super::severity::on_select(&state, &payload).await
            }
            "block_actions" if super::roles::is_take_command(&payload) => {
                super::roles::on_take_command(&state, &payload).await
            }
            "block_actions" if super::nudges::is_nudge_action(&payload) => {
                super::nudges::on_click(&state, &payload).await
            }
            "block_actions" => super::phases::on_block_actions(&state, &payload).await,
            "message_action" if payload["callback_id"].as_str() == Some(ADD_TO_TIMELINE) => {
                add_to_timeline(&state, &payload);
                Ok(StatusCode::OK.into_response())
            }
            _ => Ok(StatusCode::OK.into_response()),
        }
    };
    match deadline::within(&state, "interaction", work).await {
        Some(answer) => answer,
        None if kind == "view_submission" => Ok(deadline::late_view_submission()),
        None => {
            // A click's answer body is not shown: tell the clicker where they look.
            super::phases::tell_later(&state, &payload, deadline::LATE.to_string());
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// The `callback_id` of the "Add to incident timeline" message shortcut (`manifest.yml`).
pub const ADD_TO_TIMELINE: &str = "add_to_timeline";

/// The "Add to incident timeline" shortcut on a message: captures it (the payload carries the whole message)
/// into its channel's incident timeline in the background, and tells the person who used it what happened.
fn add_to_timeline(state: &Arc<AppState>, p: &Value) {
    use crate::incidents::timeline::{self, Known, Outcome};
    let channel = p["channel"]["id"].as_str().unwrap_or_default().to_string();
    let message = &p["message"];
    let ts = message["ts"]
        .as_str()
        .or(p["message_ts"].as_str())
        .unwrap_or_default()
        .to_string();
    let known = Known {
        author: message["user"]
            .as_str()
            .or(message["bot_id"].as_str())
            .map(str::to_string),
        text: message["text"].as_str().unwrap_or_default().to_string(),
    };
    let state2 = state.clone();
    let p = p.clone();
    tokio::spawn(async move {
        let said = match timeline::capture(&state2, &channel, &ts, Some(known)).await {
            Ok(Outcome::Added(key)) => timeline::added_line(&key),
            Ok(Outcome::Already(key)) => format!("That message is already on {key}'s timeline."),
            Ok(Outcome::NotIncident) => {
                "This channel is not an incident's channel, so there is no timeline \
                to add to. Use “Add to incident timeline” in the incident's own channel."
                    .to_string()
            }
            Ok(Outcome::Gone) => "That message is gone.".to_string(),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not capture a message");
                "⚠️ Could not add that message to the timeline; try again in a moment.".to_string()
            }
        };
        super::phases::tell_later(&state2, &p, said);
    });
}

/// The method a click on the card's "How was this detected?" buttons answers.
fn detection_answer(p: &Value) -> Option<DetectionMethod> {
    p["actions"][0]["action_id"]
        .as_str()
        .and_then(crate::slack::blocks::detection_from_action_id)
}

/// A click on one of the card's detection buttons: records the first answer; a later click is told, ephemerally,
/// what was already said.
async fn on_detection_answer(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let method = detection_answer(p).unwrap_or_default();
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let incident_id = p["actions"][0]["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].value", "missing"))?;
    let team = p["team"]["id"]
        .as_str()
        .or(p["user"]["team_id"].as_str())
        .unwrap_or_default();
    let reason = match detection::record(state, team, incident_id, method, user).await? {
        detection::Outcome::Recorded { .. } => return Ok(StatusCode::OK.into_response()),
        detection::Outcome::AlreadySaid(said) => {
            format!("Already answered: this incident was detected via *{said}*.")
        }
        detection::Outcome::NotFound => "That incident does not exist in this workspace.".into(),
    };
    super::phases::tell_later(state, p, reason);
    Ok(StatusCode::OK.into_response())
}

/// The submitter's user id (empty when missing: the submission is then refused below).
fn user_of(p: &Value) -> &str {
    p["user"]["id"].as_str().unwrap_or_default()
}

/// The declare modal was submitted: validate, store, start the war room, close the modal.
async fn submit_declare(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let values = &p["view"]["state"]["values"];
    let text = |block: &str| {
        values[block]["value"]["value"]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let selected = |block: &str| {
        values[block]["value"]["selected_option"]["value"]
            .as_str()
            .filter(|s| !s.is_empty())
    };
    let mut errors = serde_json::Map::new();
    // Typed into the form: raw text (no entities to decode), normalised like a typed title.
    let title = text("title").and_then(Title::parse);
    if title.is_none() {
        errors.insert("title".into(), json!("Say in a few words what is broken."));
    }
    let now = state.clock.now();
    let started = match text("started") {
        None => None,
        Some(s) => match command::parse_time_spec(s) {
            Some(t) => match ImpactStart::read(state, user_of(p), t, now) {
                Ok(started) => Some(started),
                Err(_) => {
                    errors.insert(
                        "started".into(),
                        json!("That is in the future: use a time that has passed (e.g. 14:05 or -20m)."),
                    );
                    None
                }
            },
            None => {
                errors.insert(
                    "started".into(),
                    json!("Use HH:MM (e.g. 14:05) or minutes ago (e.g. -20m)."),
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Ok(Json(json!({ "response_action": "errors", "errors": errors })).into_response());
    }
    let team_id = p["team"]["id"]
        .as_str()
        .or(p["user"]["team_id"].as_str())
        .unwrap_or_default();
    let user_id = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let origin = p["view"]["private_metadata"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let inc = declare::declare(
        state,
        DeclareRequest {
            team_id: team_id.to_string(),
            user_id: user_id.to_string(),
            origin_channel: origin,
            response_url: None,
            title: title
                .ok_or_else(|| ApiError::bad("payload.view.state.values.title", "missing"))?,
            severity: selected("severity")
                .and_then(Severity::parse)
                .unwrap_or_default(),
            service: selected("service").map(str::to_string),
            detection: selected("via")
                .and_then(DetectionMethod::parse)
                .unwrap_or_default(),
            started_at: started.as_ref().map(|s| s.at),
            // Recorded as seen before the submission was read (see `answer`).
            sighting: None,
            private: values["private"]["value"]["selected_options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["value"] == "yes")),
        },
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("a declaration without a sighting was taken for a replay"))?;
    tracing::Span::current().record("incident_id", inc.id.as_str());
    if let Some(started) = started {
        started.confirm(
            state,
            inc.id.clone(),
            user_id.to_string(),
            None,
            inc.origin_channel.clone(),
        );
    }
    Ok(StatusCode::OK.into_response())
}
