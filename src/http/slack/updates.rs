//! The Slack side of status updates ([`crate::incidents::updates`]): `/incident update` opens the form
//! (`views.open`), and its submission (`view_submission`, callback `incident_update`) is validated and stored.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{ephemeral, SlashCommand};
use crate::errors::ApiError;
use crate::incidents::updates::{self, Form, Outcome, DEFAULT_NEXT_MINUTES, MAX_NEXT_MINUTES};
use crate::slack::blocks;
use crate::state::AppState;

/// Whether a `view_submission` is the status update form.
pub fn is_update_form(p: &Value) -> bool {
    p["view"]["callback_id"].as_str() == Some(blocks::UPDATE_CALLBACK_ID)
}

/// `/incident update`, in the incident's channel: opens the form after the acknowledgement (the trigger is valid
/// for 3 s).
pub async fn on_slash(state: &Arc<AppState>, cmd: &SlashCommand) -> Result<Response, ApiError> {
    let Some(inc) = crate::incidents::by_channel(&state.db, &cmd.channel_id).await? else {
        return Ok(ephemeral(
            super::phases::not_an_incident_channel(state, cmd, "update").await?,
        ));
    };
    if inc.timeline.closed_at.is_some() {
        return Ok(ephemeral(format!(
            "*{}* is closed; it takes no more status updates.",
            inc.key()
        )));
    }
    let Some(trigger) = cmd.trigger_id.clone() else {
        return Ok(ephemeral(
            "Slack sent no trigger to open the form with; try again.",
        ));
    };
    let state = state.clone();
    tokio::spawn(async move {
        let view = blocks::update_modal(
            &inc.id,
            &inc.key(),
            &updates::STATUSES,
            DEFAULT_NEXT_MINUTES,
            MAX_NEXT_MINUTES,
        );
        if let Err(e) = state.slack.open_view(&trigger, &view).await {
            tracing::warn!(error = %e, "could not open the status update form");
        }
    });
    Ok(StatusCode::OK.into_response())
}

/// The form was submitted: check it, store the update, close the form (or show what is wrong in it).
pub async fn on_submit(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let values = &p["view"]["state"]["values"];
    let typed = |block: &str| {
        values[block]["value"]["value"]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let picked = values["status"]["value"]["selected_option"]["value"]
        .as_str()
        .filter(|s| !s.is_empty());
    let mut errors = serde_json::Map::new();
    let status = typed("status_text").or(picked);
    if status.is_none() {
        errors.insert(
            "status".into(),
            json!("Pick a status, or say it in your own words below."),
        );
    }
    let impact = typed("impact");
    if impact.is_none() {
        errors.insert(
            "impact".into(),
            json!("Say who or what is affected, even “none known yet”."),
        );
    }
    let next = match typed("next") {
        None => Some(DEFAULT_NEXT_MINUTES),
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_NEXT_MINUTES).contains(n)),
    };
    if next.is_none() {
        errors.insert(
            "next".into(),
            json!(format!(
                "A whole number of minutes, 1 to {MAX_NEXT_MINUTES}."
            )),
        );
    }
    let (Some(status), Some(impact), Some(next_minutes)) = (status, impact, next) else {
        return Ok(Json(json!({ "response_action": "errors", "errors": errors })).into_response());
    };
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let incident_id = p["view"]["private_metadata"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("payload.view.private_metadata", "missing"))?;
    let team = p["team"]["id"].as_str().or(p["user"]["team_id"].as_str());
    let form = Form {
        status: status.to_string(),
        impact: impact.to_string(),
        next_minutes,
    };
    match updates::submit(state, team, incident_id, &form, user).await? {
        Outcome::Applied { .. } => Ok(StatusCode::OK.into_response()),
        Outcome::Refused { reason } => Ok(Json(json!({
            "response_action": "errors",
            "errors": { "impact": reason }
        }))
        .into_response()),
    }
}
