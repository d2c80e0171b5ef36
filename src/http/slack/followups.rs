//! The Slack side of follow-ups ([`crate::incidents::followups`]) and the postmortem draft: `/incident followup …`,
//! `/incident followups`, `/incident postmortem`, the MTTR summary's "Add follow-up" button and its form
//! (`view_submission`, callback [`FORM_CALLBACK_ID`]), and the "Done" button on a follow-up's message.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde_json::{json, Value};

use super::{ephemeral, SlashCommand};
use crate::domain::command::{Command, Holder};
use crate::domain::followup::{self, NewFollowup};
use crate::errors::ApiError;
use crate::incidents::followups::{self, Outcome, ADD_ACTION_ID, DONE_ACTION_ID, FORM_CALLBACK_ID};
use crate::state::AppState;

fn said(o: Outcome) -> String {
    match o {
        Outcome::Applied { reply } => reply,
        Outcome::Refused { reason } => reason,
    }
}

/// `/incident followup …`, `/incident followups` and `/incident postmortem`.
pub async fn on_slash(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    parsed: Command,
) -> Result<Response, ApiError> {
    let team = Some(cmd.team_id.as_str());
    let reply = match parsed {
        Command::Postmortem => {
            crate::incidents::followups::request_postmortem(state, &cmd.channel_id).await?
        }
        Command::Followups => followups::list(state, &cmd.team_id, &cmd.channel_id).await?,
        Command::Followup(new) => {
            let Some(inc) = crate::incidents::by_channel(&state.db, &cmd.channel_id).await? else {
                return Ok(ephemeral(
                    super::phases::not_an_incident_channel(state, cmd, "followup").await?,
                ));
            };
            said(followups::create(state, team, &inc.id, &new, &cmd.user_id).await?)
        }
        Command::FollowupDone(id) => {
            said(followups::complete(state, team, id, &cmd.user_id).await?)
        }
        Command::FollowupAssign { id, owner } => {
            let owner = match owner {
                Holder::Me => cmd.user_id.clone(),
                Holder::User(u) => u,
            };
            said(followups::assign(state, team, id, &owner, &cmd.user_id).await?)
        }
        _ => return Ok(StatusCode::OK.into_response()),
    };
    Ok(ephemeral(reply))
}

/// Whether a `block_actions` payload is a click on a follow-up's "Done" or the summary's "Add follow-up".
pub fn is_followup_click(p: &Value) -> bool {
    matches!(
        p["actions"][0]["action_id"].as_str(),
        Some(DONE_ACTION_ID) | Some(ADD_ACTION_ID)
    )
}

/// Whether a `view_submission` is the "Add follow-up" form.
pub fn is_form(p: &Value) -> bool {
    p["view"]["callback_id"].as_str() == Some(FORM_CALLBACK_ID)
}

fn team_of(p: &Value) -> Option<&str> {
    p["team"]["id"].as_str().or(p["user"]["team_id"].as_str())
}

/// A click on "Done" (completes the follow-up; a refusal is told to the clicker) or "Add follow-up" (opens the
/// form after the answer: the trigger is valid for 3 s).
pub async fn on_click(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let value = p["actions"][0]["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].value", "missing"))?;
    if p["actions"][0]["action_id"].as_str() == Some(DONE_ACTION_ID) {
        let id: i64 = value
            .parse()
            .map_err(|_| ApiError::bad("payload.actions[0].value", "not a follow-up number"))?;
        match followups::complete(state, team_of(p), id, user).await? {
            Outcome::Refused { reason } => super::phases::tell_later(state, p, reason),
            Outcome::Applied { .. } => {
                let channel = p["container"]["channel_id"]
                    .as_str()
                    .or(p["channel"]["id"].as_str());
                let ts = p["container"]["message_ts"].as_str();
                if let (Some(channel), Some(ts)) = (channel, ts) {
                    let (state, channel, ts) = (state.clone(), channel.to_string(), ts.to_string());
                    tokio::spawn(async move {
                        if let Err(e) = followups::show_done(&state, &channel, &ts, id).await {
                            tracing::warn!(error = %format!("{e:#}"), "could not mark the follow-up's message done");
                        }
                    });
                }
            }
        }
        return Ok(StatusCode::OK.into_response());
    }
    let Some(inc) = crate::incidents::load(&state.db, value).await? else {
        super::phases::tell_later(state, p, "That incident does not exist (any more).".into());
        return Ok(StatusCode::OK.into_response());
    };
    if let Some(trigger) = p["trigger_id"].as_str().map(str::to_string) {
        let state = state.clone();
        tokio::spawn(async move {
            let view = followups::form(&inc.id, &inc.key());
            if let Err(e) = state.slack.open_view(&trigger, &view).await {
                tracing::warn!(error = %e, "could not open the follow-up form");
            }
        });
    }
    Ok(StatusCode::OK.into_response())
}

/// The form was submitted: store the follow-up, close the form (or show what is wrong in it).
pub async fn on_submit(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let values = &p["view"]["state"]["values"];
    let text = values["text"]["value"]["value"]
        .as_str()
        .map(str::trim)
        .unwrap_or_default();
    let text = crate::domain::text::plain(text, followup::TEXT_MAX);
    if text.trim().is_empty() {
        return Ok(Json(json!({ "response_action": "errors", "errors": { "text": "Say what should be done." } }))
            .into_response());
    }
    let owner = values["owner"]["value"]["selected_user"]
        .as_str()
        .filter(|u| crate::domain::command::mentioned_user(&format!("<@{u}>")).is_some())
        .map(str::to_string);
    let due_on = match values["due"]["value"]["selected_date"].as_str() {
        None | Some("") => None,
        Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                return Ok(Json(
                    json!({ "response_action": "errors", "errors": { "due": "Pick a date." } }),
                )
                .into_response())
            }
        },
    };
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let incident_id = p["view"]["private_metadata"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("payload.view.private_metadata", "missing"))?;
    let new = NewFollowup {
        text: text.trim().to_string(),
        owner,
        due_on,
    };
    match followups::create(state, team_of(p), incident_id, &new, user).await? {
        Outcome::Applied { .. } => Ok(StatusCode::OK.into_response()),
        Outcome::Refused { reason } => Ok(Json(json!({
            "response_action": "errors",
            "errors": { "due": reason }
        }))
        .into_response()),
    }
}
