//! The Slack side of phase changes ([`crate::incidents::phases`]): a phase button on the card
//! (`block_actions`) and `/incident ack|identified|fixed|resolved|reopen|set|status`. Reads the payload into a
//! [`Change`] by a user, and turns the [`Outcome`] into the reply the user sees: the command's ephemeral answer,
//! or, for a refused click (a stale card), an ephemeral message after Slack has had its answer.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{ephemeral, SlashCommand};
use crate::domain::command::{Command, TimeSpec};
use crate::domain::phase::CorrectionTarget;
use crate::domain::text::{self, escape_cut};
use crate::errors::ApiError;
use crate::incidents::phases::{self, Change, Outcome};
use crate::incidents::Incident;
use crate::state::AppState;

/// A `block_actions` payload: a phase button on the incident card. Answers Slack at once; a refused click (a
/// stale card) tells the clicker the current phase, ephemerally, after the answer.
pub async fn on_block_actions(state: &Arc<AppState>, p: &Value) -> Result<Response, ApiError> {
    let Some(action) = p["actions"].as_array().and_then(|a| a.first()) else {
        return Ok(StatusCode::OK.into_response());
    };
    let Some(change) = action["action_id"]
        .as_str()
        .and_then(Change::from_action_id)
    else {
        return Ok(StatusCode::OK.into_response());
    };
    let user = p["user"]["id"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.user.id", "missing"))?;
    let incident_id = action["value"]
        .as_str()
        .ok_or_else(|| ApiError::bad("payload.actions[0].value", "missing"))?;
    let team = p["team"]["id"].as_str().or(p["user"]["team_id"].as_str());
    if let Outcome::Refused { reason } =
        phases::click(state, team, incident_id, change, user).await?
    {
        tell_later(state, p, reason);
    }
    Ok(StatusCode::OK.into_response())
}

/// Tells the user of an interaction payload `text`, ephemerally, in the background (after Slack's answer): via
/// the payload's `response_url`, else `chat.postEphemeral` in its channel.
pub fn tell_later(state: &Arc<AppState>, p: &Value, text: String) {
    let user = p["user"]["id"].as_str().unwrap_or_default().to_string();
    let channel = p["channel"]["id"]
        .as_str()
        .or(p["container"]["channel_id"].as_str())
        .map(str::to_string);
    let url = p["response_url"].as_str().map(str::to_string);
    let state = state.clone();
    tokio::spawn(async move {
        state
            .slack
            .tell(url.as_deref(), channel.as_deref(), &user, &text)
            .await;
    });
}

/// `/incident ack|identified|fixed|resolved|reopen|set|status`.
pub async fn on_slash(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    parsed: Command,
) -> Result<Response, ApiError> {
    let word = cmd.text.split_whitespace().next().unwrap_or_default();
    let Some(inc) = crate::incidents::by_channel(&state.db, &cmd.channel_id).await? else {
        return Ok(ephemeral(not_an_incident_channel(state, cmd, word).await?));
    };
    let by = Some(cmd.user_id.as_str());
    match parsed {
        Command::Milestone(m) => Ok(ephemeral(reply(
            phases::apply(state, &inc.id, Change::Record(m), by).await?,
        ))),
        Command::Reopen => Ok(ephemeral(reply(
            phases::apply(state, &inc.id, Change::Reopen, by).await?,
        ))),
        Command::Set { target, when } => set(state, cmd, &inc, target, when).await,
        Command::Status => Ok(ephemeral(phases::status_text(state, &inc).await?)),
        _ => Ok(StatusCode::OK.into_response()),
    }
}

fn reply(outcome: Outcome) -> String {
    match outcome {
        Outcome::Applied { line, .. } => format!("Recorded. {line}"),
        Outcome::Refused { reason } => reason,
    }
}

/// "Use it in the incident's channel", with the open incidents' channels.
pub(super) async fn not_an_incident_channel(
    state: &AppState,
    cmd: &SlashCommand,
    word: &str,
) -> Result<String, sqlx::Error> {
    let open = crate::incidents::open(&state.db, &cmd.team_id).await?;
    let mut s =
        format!("`/incident {word}` works in an incident's own channel, and this is not one.");
    if open.is_empty() {
        s.push_str(" There are no open incidents right now.");
    } else {
        s.push_str(" Open incidents:");
        // A private incident is neither named nor pointed to: whoever asks may not be in its channel.
        for i in open.iter().filter(|i| !i.private).take(10) {
            let room = i
                .channel_id
                .as_deref()
                .map(text::channel)
                .unwrap_or_else(|| "no channel".into());
            s.push_str(&format!(
                "\n• {room} — *{}* {}",
                i.key(),
                escape_cut(&i.title, 200)
            ));
        }
    }
    Ok(s)
}

/// `/incident set <phase|started> <time>`. Clock times are read in the user's Slack time zone (`users.info`,
/// cached); when that is not known yet, Slack gets its answer at once and the reply follows via `response_url`.
async fn set(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    inc: &Incident,
    target: CorrectionTarget,
    when: TimeSpec,
) -> Result<Response, ApiError> {
    let needs_tz = matches!(when, TimeSpec::Clock(_) | TimeSpec::Local(_));
    let cached = state.slack.known_time_zone(&cmd.user_id, state.clock.now());
    if !needs_tz || cached.is_some() {
        let tz = cached.unwrap_or_else(|| state.default_tz());
        let text = correct(state, &inc.id, &cmd.user_id, target, when, tz).await?;
        return Ok(ephemeral(text));
    }
    let state2 = state.clone();
    let user = cmd.user_id.clone();
    let id = inc.id.clone();
    let url = cmd.response_url.clone();
    let channel = cmd.channel_id.clone();
    tokio::spawn(async move {
        let tz = state2.user_tz(&user).await;
        let text = match correct(&state2, &id, &user, target, when, tz).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "correction failed");
                "Something went wrong storing the correction; see the bot's logs.".to_string()
            }
        };
        state2
            .slack
            .tell(url.as_deref(), Some(&channel), &user, &text)
            .await;
    });
    Ok(StatusCode::OK.into_response())
}

/// Corrects `target` to `when` read in `tz`; the reply, which repeats how the time was read.
async fn correct(
    state: &Arc<AppState>,
    incident_id: &str,
    user: &str,
    target: CorrectionTarget,
    when: TimeSpec,
    tz: chrono_tz::Tz,
) -> Result<String, sqlx::Error> {
    let now = state.clock.now();
    let at = when.resolve(now, tz);
    let asked = match when {
        TimeSpec::Clock(_) | TimeSpec::Local(_) => {
            format!("{when} {} = {}", tz.name(), at.format("%Y-%m-%d %H:%M UTC"))
        }
        _ => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    let change = Change::Correct { target, at };
    Ok(
        match phases::apply(state, incident_id, change, Some(user)).await? {
            Outcome::Applied { line, .. } => format!("Corrected ({asked}). {line}"),
            Outcome::Refused { reason } => format!(
                "Not changed: {reason}. You asked for {} at {asked}.",
                target.as_str()
            ),
        },
    )
}
