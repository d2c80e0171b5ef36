//! The Slack side of stalled-phase nudges and deploy prompts ([`crate::incidents::nudges`], [`crate::incidents::deploy_prompt`]): the nudge's
//! "Page …" button, its "Open deploy" link buttons (Slack opens the link; the click is only acknowledged) and the
//! deploy prompt's "Fix deployed at 14:32" button. Every click is answered at once; what the clicker should know
//! (already paged, the incident moved on) follows ephemerally.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::errors::ApiError;
use crate::incidents::deploy_prompt::{self, FIX_ACTION_ID};
use crate::incidents::nudges::{self, OPEN_DEPLOY_ACTION_ID, PAGE_ACTION_ID};
use crate::state::AppState;

fn action_id(p: &Value) -> &str {
    p["actions"][0]["action_id"].as_str().unwrap_or_default()
}

/// Whether a `block_actions` payload is a click on a nudge's or a deploy prompt's button.
pub fn is_nudge_action(p: &Value) -> bool {
    let a = action_id(p);
    a == PAGE_ACTION_ID || a == FIX_ACTION_ID || a.starts_with(OPEN_DEPLOY_ACTION_ID)
}

/// A click on one of those buttons.
pub async fn on_click(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let action = action_id(p);
    if action.starts_with(OPEN_DEPLOY_ACTION_ID) {
        return Ok(StatusCode::OK.into_response());
    }
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let value = p["actions"][0]["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].value", "missing"))?;
    let team = p["team"]["id"].as_str().or(p["user"]["team_id"].as_str());
    let said = if action == PAGE_ACTION_ID {
        Some(nudges::page_click(state, team, value).await?)
    } else {
        deploy_prompt::fix_click(state, team, value, user).await?
    };
    if let Some(text) = said {
        super::phases::tell_later(state, p, text);
    }
    Ok(StatusCode::OK.into_response())
}
