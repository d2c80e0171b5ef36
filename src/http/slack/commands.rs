//! `POST /slack/commands`: the `/incident` slash command.
//!
//! Parsing is pure ([`crate::domain::command`]); this handler stores what must be stored, answers with a short
//! ephemeral reply at once, and leaves every Slack and pager call to background work. Slack sends the command's
//! text with `&`, `<`, `>` escaped: it is decoded once here ([`text::decode_slash`]), before parsing, and every
//! reply escapes what it echoes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{bad_body, deadline, ephemeral, replayed, Signed, SlashCommand};
use crate::domain::command::{self, Command, StartArgs, USAGE};
use crate::domain::text::{self, escape_cut};
use crate::errors::ApiError;
use crate::incidents::declare::{self, DeclareRequest};
use crate::incidents::started::ImpactStart;
use crate::slack::blocks;
use crate::state::AppState;
use crate::store::replays::Sighting;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    signed: Signed,
) -> Result<Response, ApiError> {
    answer(state, signed.body.clone(), Some(&signed)).await
}

/// What the user sees when the bot could not do what they typed (its database did not answer, say): Slack does
/// not retry a slash command, so say so plainly instead of letting Slack show its generic failure.
pub const FAILED: &str = "⚠️ incident-bot could not reach its database, so this may not have been recorded. \
Try again in a moment; `/incident list` shows the incidents it has. If this is urgent, page the on-call directly.";

/// A slash command already known to come from Slack (a signed request or a Socket Mode envelope), as Slack's
/// form-encoded payload. Counted in the metrics. An internal failure is logged and answered with [`FAILED`].
#[tracing::instrument(name = "slash_command", skip_all, fields(incident_id = tracing::field::Empty))]
pub async fn handle_form(state: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    answer(state, body, None).await
}

/// Handles a slash command within the answer deadline; a signed request is recorded as seen before anything is
/// done (by `/incident start` in the declaration's transaction), and a replay is answered with an empty 200
/// (that record is inside the deadline too: it needs the database).
async fn answer(
    state: Arc<AppState>,
    body: Bytes,
    signed: Option<&Signed>,
) -> Result<Response, ApiError> {
    let mut seen = Seen::default();
    let limits = state.clone();
    let sighting = signed.map(Signed::sighting);
    let work = run(state, body, sighting, &mut seen);
    let Some(result) = deadline::within(&limits, "slash_command", work).await else {
        crate::observability::command(seen.subcommand, "late");
        return Ok(ephemeral(FAILED));
    };
    if seen.replay {
        return result;
    }
    let outcome = match &result {
        Ok(_) if seen.usage => "usage",
        Ok(_) => "ok",
        Err(ApiError::BadRequest { .. }) | Err(ApiError::TooLarge(_)) => "bad_request",
        Err(ApiError::Unauthorized(_)) => "unauthorized",
        Err(ApiError::Internal(_)) | Err(ApiError::Unavailable(_)) => "error",
    };
    crate::observability::command(seen.subcommand, outcome);
    match result {
        Err(ApiError::Internal(e)) => {
            tracing::error!(error = %format!("{e:#}"), "slash command failed");
            Ok(ephemeral(FAILED))
        }
        other => other,
    }
}

/// What [`run`] learnt of a command for its metric, so that the form and the text are parsed once.
struct Seen {
    /// [`crate::observability::subcommand_label`] of the text (`none` until the form is read).
    subcommand: &'static str,
    /// The text did not parse: the user got the usage reply.
    usage: bool,
    /// A replay of a request already handled: answered empty, not counted.
    replay: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            subcommand: "none",
            usage: false,
            replay: false,
        }
    }
}

async fn run(
    state: Arc<AppState>,
    body: Bytes,
    sighting: Option<Sighting>,
    seen: &mut Seen,
) -> Result<Response, ApiError> {
    let cmd: SlashCommand = serde_urlencoded::from_bytes(&body).map_err(bad_body)?;
    tracing::info!(user = %cmd.user_id, channel = %cmd.channel_id, "/incident {}", cmd.text.chars().take(200).collect::<String>());
    seen.subcommand = crate::observability::subcommand_label(&cmd.text);
    let parsed = match command::parse(&command::prepare(&cmd.text)) {
        Ok(c) => c,
        Err(e) => {
            seen.usage = true;
            return Ok(ephemeral(format!("{e}\n\n{USAGE}")));
        }
    };
    // `start` records the sighting in the declaration's own transaction; every other command records it first.
    if !matches!(parsed, Command::Start(_)) {
        if let Some(sighting) = &sighting {
            if !Signed::first(&state, sighting).await? {
                seen.replay = true;
                return Ok(replayed());
            }
        }
    }
    // The futures of the commands other than `start` are boxed: axum allocates and moves this handler's future
    // whole for every request, and theirs would make it several times larger for every `start` of a burst.
    match parsed {
        Command::Help => Ok(ephemeral(USAGE)),
        Command::Start(args) => start(&state, &cmd, args, sighting, seen).await,
        Command::StartModal => {
            open_modal(&state, &cmd);
            Ok(StatusCode::OK.into_response())
        }
        Command::List => Box::pin(list(&state, &cmd)).await,
        Command::Timeline => Ok(ephemeral(
            Box::pin(crate::incidents::timeline::for_command(
                &state,
                &cmd.channel_id,
                &cmd.user_id,
            ))
            .await?,
        )),
        Command::Status | Command::Milestone(_) | Command::Reopen | Command::Set { .. } => {
            Box::pin(super::phases::on_slash(&state, &cmd, parsed)).await
        }
        Command::Role { .. } => Box::pin(super::roles::on_slash(&state, &cmd, parsed)).await,
        Command::Severity(to) => Box::pin(super::severity::on_slash(&state, &cmd, to)).await,
        Command::Update => Box::pin(super::updates::on_slash(&state, &cmd)).await,
        Command::Postmortem
        | Command::Followup(_)
        | Command::FollowupDone(_)
        | Command::FollowupAssign { .. }
        | Command::Followups => Box::pin(super::followups::on_slash(&state, &cmd, parsed)).await,
        Command::Deploys { service, window } => Ok(ephemeral(
            Box::pin(crate::deploys::answer::for_command(
                &state, &service, window,
            ))
            .await?,
        )),
        Command::Digest => Ok(ephemeral(crate::digest::post::on_demand(
            &state,
            &cmd.channel_id,
            cmd.response_url.clone(),
        ))),
    }
}

async fn start(
    state: &Arc<AppState>,
    cmd: &SlashCommand,
    args: StartArgs,
    sighting: Option<Sighting>,
    seen: &mut Seen,
) -> Result<Response, ApiError> {
    let started = match args
        .started
        .map(|spec| ImpactStart::read(state, &cmd.user_id, spec, state.clock.now()))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            seen.usage = true;
            return Ok(ephemeral(format!("{e}\n\n{USAGE}")));
        }
    };
    let service = args.service.clone();
    let inc = declare::declare(
        state,
        DeclareRequest {
            team_id: cmd.team_id.clone(),
            user_id: cmd.user_id.clone(),
            origin_channel: Some(cmd.channel_id.clone()),
            response_url: cmd.response_url.clone(),
            title: args.title,
            severity: args.severity,
            service: args.service,
            detection: args.via,
            started_at: started.as_ref().map(|s| s.at),
            sighting,
            private: args.private,
        },
    )
    .await?;
    let Some(inc) = inc else {
        seen.replay = true;
        return Ok(replayed());
    };
    tracing::Span::current().record("incident_id", inc.id.as_str());
    let mut text = format!(
        "{} Declaring *{}* · {} ({}) — setting up the war room…",
        blocks::severity_emoji(inc.severity),
        inc.key(),
        escape_cut(&inc.title, 2_000),
        inc.severity.as_str()
    );
    if let Some(started) = started {
        if let Some(line) = started.line() {
            text.push('\n');
            text.push_str(&line);
        }
        started.confirm(
            state,
            inc.id.clone(),
            cmd.user_id.clone(),
            cmd.response_url.clone(),
            Some(cmd.channel_id.clone()),
        );
    }
    if let Some(name) = service.filter(|s| state.catalog.get(s).is_none()) {
        text.push_str(&format!(
            "\n⚠️ {}",
            blocks::unknown_service_line(&name, &state.catalog.suggest(&name, &[]))
        ));
    }
    Ok(ephemeral(text))
}

/// Opens the declare modal after the acknowledgement (the trigger is valid for 3 s).
fn open_modal(state: &Arc<AppState>, cmd: &SlashCommand) {
    let Some(trigger) = cmd.trigger_id.clone() else {
        return;
    };
    let state = state.clone();
    let channel = cmd.channel_id.clone();
    tokio::spawn(async move {
        let services: Vec<String> = state
            .catalog
            .services()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let view = blocks::declare_modal(&services, &channel);
        if let Err(e) = state.slack.open_view(&trigger, &view).await {
            tracing::warn!(error = %e, "could not open the declare modal");
        }
    });
}

async fn list(state: &AppState, cmd: &SlashCommand) -> Result<Response, ApiError> {
    let open = crate::incidents::open(&state.db, &cmd.team_id).await?;
    if open.is_empty() {
        return Ok(ephemeral("No open incidents. 🎉"));
    }
    let now = state.clock.now();
    // At most LIST_MAX lines of at most ~300 characters: far inside a message's 40,000.
    const LIST_MAX: usize = 50;
    let mut lines: Vec<String> = open
        .iter()
        .take(LIST_MAX)
        .map(|i| {
            if i.private {
                // Neither its title nor its channel: whoever asks may not be in it.
                return format!(
                    "🔒 *{}* private incident · {}",
                    i.key(),
                    i.timeline.status().label()
                );
            }
            let room = i
                .channel_id
                .as_deref()
                .map(text::channel)
                .unwrap_or_else(|| "no channel".into());
            format!(
                "{} *{}* {} · {} · {} · {} since impact · {room}",
                blocks::severity_emoji(i.severity),
                i.key(),
                escape_cut(&i.title, 200),
                i.severity.as_str(),
                i.timeline.status().label(),
                crate::domain::duration::format_duration(now - i.timeline.started_at),
            )
        })
        .collect();
    if open.len() > LIST_MAX {
        lines.push(format!(
            "… and {} more, declared later",
            open.len() - LIST_MAX
        ));
    }
    let reply = format!("*Open incidents ({})*\n{}", open.len(), lines.join("\n"));
    Ok(ephemeral(text::cut(&reply, text::MESSAGE_TEXT)))
}
