//! The Slack side of roles ([`crate::incidents::roles`]): `/incident role ic|comms <@user|me>` and the card's
//! "Take command" button (`block_actions`). Reads who asks for what, and turns the outcome into the reply the user
//! sees: the command's ephemeral answer, or, for a refused click, an ephemeral message after Slack's answer.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{ephemeral, SlashCommand};
use crate::domain::command::{Command, Holder};
use crate::domain::incident::Role;
use crate::errors::ApiError;
use crate::incidents::roles::{self, Outcome, TAKE_COMMAND_ACTION_ID};
use crate::state::AppState;

/// Whether a `block_actions` payload is a click on "Take command".
pub fn is_take_command(p: &Value) -> bool {
    p["actions"][0]["action_id"].as_str() == Some(TAKE_COMMAND_ACTION_ID)
}

/// A click on "Take command": the clicker becomes the incident commander (a handoff when someone held it).
pub async fn on_take_command(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let incident_id = p["actions"][0]["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].value", "missing"))?;
    let team = p["team"]["id"].as_str().or(p["user"]["team_id"].as_str());
    if let Outcome::Refused { reason } =
        roles::assign(state, team, incident_id, Role::Commander, user, user).await?
    {
        super::phases::tell_later(state, p, reason);
    }
    Ok(StatusCode::OK.into_response())
}

/// `/incident role ic|comms <@user|me>`, in the incident's channel.
pub async fn on_slash(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    parsed: Command,
) -> Result<Response, ApiError> {
    let Command::Role { role, user } = parsed else {
        return Ok(StatusCode::OK.into_response());
    };
    let Some(inc) = crate::incidents::by_channel(&state.db, &cmd.channel_id).await? else {
        return Ok(ephemeral(
            super::phases::not_an_incident_channel(state, cmd, "role").await?,
        ));
    };
    let user = match user {
        Holder::Me => cmd.user_id.clone(),
        Holder::User(id) => id,
    };
    let team = Some(cmd.team_id.as_str());
    Ok(ephemeral(
        match roles::assign(state, team, &inc.id, role, &user, &cmd.user_id).await? {
            Outcome::Applied { line } => format!("Recorded. {line}"),
            Outcome::Refused { reason } => reason,
        },
    ))
}
