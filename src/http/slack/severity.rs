//! The Slack side of severity changes ([`crate::incidents::severity`]): `/incident sev P1|P2|P3` and the
//! card's severity select (`block_actions` with a `static_select`, option value `<severity>|<incident id>`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{ephemeral, SlashCommand};
use crate::domain::severity::Severity;
use crate::errors::ApiError;
use crate::incidents::severity::{self, Outcome};
use crate::slack::blocks::SEVERITY_ACTION_ID;
use crate::state::AppState;

/// Whether a `block_actions` payload is a choice in the card's severity select.
pub fn is_severity_select(p: &Value) -> bool {
    p["actions"][0]["action_id"].as_str() == Some(SEVERITY_ACTION_ID)
}

/// A choice in the card's severity select.
pub async fn on_select(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let value = p["actions"][0]["selected_option"]["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].selected_option.value", "missing"))?;
    let Some((sev, incident_id)) = value
        .split_once('|')
        .and_then(|(s, id)| Some((Severity::parse(s)?, id)))
    else {
        return Err(ApiError::bad(
            "payload.actions[0].selected_option.value",
            "not <severity>|<incident id>",
        ));
    };
    let team = p["team"]["id"].as_str().or(p["user"]["team_id"].as_str());
    if let Outcome::Refused { reason } =
        severity::change(state, team, incident_id, sev, user).await?
    {
        super::phases::tell_later(state, p, reason);
    }
    Ok(StatusCode::OK.into_response())
}

/// `/incident sev P1|P2|P3`, in the incident's channel.
pub async fn on_slash(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    to: Severity,
) -> Result<Response, ApiError> {
    let Some(inc) = crate::incidents::by_channel(&state.db, &cmd.channel_id).await? else {
        return Ok(ephemeral(
            super::phases::not_an_incident_channel(state, cmd, "sev").await?,
        ));
    };
    let team = Some(cmd.team_id.as_str());
    Ok(ephemeral(
        match severity::change(state, team, &inc.id, to, &cmd.user_id).await? {
            Outcome::Applied { line } => format!("Recorded. {line}"),
            Outcome::Refused { reason } => reason,
        },
    ))
}
