//! Posting digests to Slack: the scheduler loop (every configured `[[digests]]` entry, exactly once per slot
//! across replicas, catch-up of the most recent missed slot) and `/incident digest` on demand.
//!
//! A digest is two Slack messages: the figures (`chat.postMessage`, Block Kit), then the chart, shared with
//! Slack's external upload flow — `files.getUploadURLExternal` (form-encoded: `filename`, `length`), the PNG
//! bytes POSTed to the returned `upload_url`, then `files.completeUploadExternal` (`files` =
//! `[{"id","title"}]`, `channel_id`, `initial_comment`). A scheduled digest stores each finished step in
//! `digest_runs`; a retry after a lost answer first looks for the message (by its `block_id`) and the chart (by
//! its comment) in the channel's history before posting again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono_tz::Tz;
use serde_json::Value;

use super::chart;
use super::data;
use super::render::{self, Heading};
use super::runs::{self, Claim, Claimed, Outcome, RunKey};
use super::schedule::Schedule;
use super::stats::{Digest, Filter, Period};
use crate::slack::client::{File, HistoryMessage, Post, UploadError};
use crate::slack::SlackError;
use crate::state::AppState;

/// Why posting did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
    #[error("the chart upload failed: {0}")]
    Upload(String),
    /// Another replica took the run over (this one was too slow); it will finish it.
    #[error("lost the lease on this digest")]
    LeaseLost,
}

impl PostError {
    fn retryable(&self) -> bool {
        match self {
            PostError::Slack(e) => e.is_retryable(),
            PostError::Db(_) | PostError::Upload(_) => true,
            PostError::Chart(_) | PostError::LeaseLost => false,
        }
    }
}

/// A digest ready to post.
pub struct Prepared {
    pub digest: Digest,
    pub blocks: Vec<Value>,
    pub text: String,
    /// PNG bytes and their title (also the file's comment); `None` when nothing was resolved in either period.
    pub chart: Option<(Vec<u8>, String)>,
}

/// Builds a digest and its chart.
pub async fn prepare(
    state: &AppState,
    filter: &Filter,
    period: Period,
    tz: Tz,
    block_id: &str,
) -> Result<Prepared, PostError> {
    let now = state.clock.now();
    let digest = data::build(&state.db, &state.catalog, filter, period, tz, now).await?;
    let heading = Heading {
        title: "Incident digest".into(),
        scope: filter.label(),
        tz,
    };
    let mut blocks = render::blocks(&digest, &heading, block_id);
    let followups = super::followups::completion(&state.db, &state.catalog, filter, period).await?;
    let section = crate::domain::text::cut(
        &super::followups::section(&followups, true).join("\n"),
        crate::domain::text::SECTION_TEXT,
    );
    // Before the closing context line.
    let at = blocks.len().saturating_sub(1);
    blocks.insert(
        at,
        serde_json::json!({ "type": "section", "text": { "type": "mrkdwn", "text": section } }),
    );
    let text = crate::domain::text::escape_cut(&render::title(&digest, &heading), 3_000);
    let chart = if chart::has_data(&digest) {
        let title = render::chart_title(&digest, &heading);
        let d = digest.clone();
        let t = title.clone();
        let png = tokio::task::spawn_blocking(move || {
            chart::render_png(&d, &t, ("7 days before", "last 7 days"))
        })
        .await
        .map_err(|e| PostError::Upload(format!("chart task: {e}")))??;
        Some((png, title))
    } else {
        None
    };
    Ok(Prepared {
        digest,
        blocks,
        text,
        chart,
    })
}

/// Posts the figures; returns the message `ts`.
async fn post_message(
    state: &AppState,
    channel_id: &str,
    p: &Prepared,
) -> Result<String, PostError> {
    let post = Post {
        no_unfurl_media: true,
        ..Post::blocks(channel_id, &p.text, Value::from(p.blocks.clone()))
    };
    Ok(state.slack.post_message(&post).await?.unwrap_or_default())
}

/// Uploads the chart and shares it in the channel; returns the file id.
async fn upload_chart(
    state: &AppState,
    channel_id: &str,
    png: &[u8],
    title: &str,
) -> Result<String, PostError> {
    let comment = crate::domain::text::escape_cut(title, crate::domain::text::SECTION_TEXT);
    let file = File {
        filename: "mttr-per-phase.png",
        bytes: png,
        title,
    };
    match state.slack.upload_file(channel_id, &file, &comment).await {
        Ok(id) => Ok(id),
        Err(UploadError::Slack(e)) => Err(PostError::Slack(e)),
        Err(UploadError::Upload(e)) => Err(PostError::Upload(e)),
    }
}

/// The channel's recent messages (newest first).
async fn history(state: &AppState, channel_id: &str) -> Result<Vec<HistoryMessage>, PostError> {
    Ok(state.slack.history(channel_id, 100).await?)
}

/// A channel ID for a configured channel (an ID, or a name looked up once).
pub async fn resolve_channel(state: &AppState, configured: &str) -> Result<String, PostError> {
    Ok(state.slack.channel_id(configured).await?)
}

// ----------------------------------------------------------------------------------------------------------
// On demand
// ----------------------------------------------------------------------------------------------------------

/// `/incident digest`: posts this channel's digest for the last 7 days in the background (with the channel's
/// configured filter and time zone, if it has a scheduled digest). Returns the acknowledgement text.
pub fn on_demand(
    state: &Arc<AppState>,
    channel_id: &str,
    response_url: Option<String>,
) -> &'static str {
    let state = state.clone();
    let channel = channel_id.to_string();
    tokio::spawn(async move {
        if let Err(e) = post_now(&state, &channel).await {
            tracing::warn!(channel = %channel, error = %e, "on-demand digest failed");
            if let Some(url) = response_url {
                let hint = match &e {
                    PostError::Slack(SlackError::Api { code, .. })
                        if code == "not_in_channel" || code == "channel_not_found" =>
                    {
                        " Invite me to this channel first (`/invite @incident-bot`)."
                    }
                    _ => " Try again in a minute.",
                };
                let text = format!(
                    "Could not post the digest: {}.{hint}",
                    crate::domain::text::escape_cut(&e.to_string(), 500)
                );
                let reply = crate::slack::client::Reply::ephemeral(&text);
                let _ = state.slack.respond(&url, &reply).await;
            }
        }
    });
    "📊 Building this channel's digest for the last 7 days…"
}

async fn post_now(state: &AppState, channel_id: &str) -> Result<(), PostError> {
    let (filter, tz) = match configured_for(state, channel_id).await {
        Some(s) => (s.filter, s.tz),
        None => (Filter::default(), state.default_tz()),
    };
    let now = state.clock.now();
    let block_id = format!("digest-now-{}", uuid::Uuid::new_v4().simple());
    let p = prepare(state, &filter, Period::days_before(now, 7), tz, &block_id).await?;
    post_message(state, channel_id, &p).await?;
    if let Some((png, title)) = &p.chart {
        upload_chart(state, channel_id, png, title).await?;
    }
    Ok(())
}

/// The scheduled digest configured for this channel, if any.
async fn configured_for(state: &AppState, channel_id: &str) -> Option<Schedule> {
    for cfg in &state.settings.digests {
        let Ok(s) = Schedule::parse(cfg) else {
            continue;
        };
        if s.channel == channel_id {
            return Some(s);
        }
        if !crate::slack::memory::looks_like_channel_id(s.channel.trim().trim_start_matches('#'))
            && resolve_channel(state, &s.channel).await.ok().as_deref() == Some(channel_id)
        {
            return Some(s);
        }
    }
    None
}

// ----------------------------------------------------------------------------------------------------------
// On schedule
// ----------------------------------------------------------------------------------------------------------

/// What one scheduler pass did for one digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// This replica posted (or finished posting) it.
    Posted,
    /// Already posted (by anyone) or given up on.
    AlreadyDone,
    /// Someone else holds it, or a retry is not due.
    Waiting,
    /// This attempt failed; it will be retried (or was given up).
    Failed(String),
}

/// Checks every configured digest every `setup.sweep_interval_ms` and posts the ones due. Returns at once when
/// none is configured.
pub async fn run_forever(state: Arc<AppState>) {
    let mut schedules = Vec::new();
    for cfg in &state.settings.digests {
        match Schedule::parse(cfg) {
            Ok(s) => schedules.push(s),
            Err(e) => {
                tracing::error!(channel = %cfg.channel, error = %e, "digest not scheduled: bad configuration")
            }
        }
    }
    if schedules.is_empty() {
        return;
    }
    let owner = state.worker.owner().to_string();
    let mut done: HashSet<RunKey> = HashSet::new();
    let every = StdDuration::from_millis(state.settings.setup.sweep_interval_ms.max(50));
    loop {
        for s in &schedules {
            match tick(&state, s, &owner, &mut done).await {
                Ok(Tick::Failed(e)) => {
                    tracing::warn!(channel = %s.channel, error = %e, "digest attempt failed")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(channel = %s.channel, error = %e, "digest check failed")
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// One check of one schedule: claims its latest slot and posts it if due and unclaimed. `done` remembers the
/// slots known to be finished so that they are not asked for again.
pub async fn tick(
    state: &AppState,
    s: &Schedule,
    owner: &str,
    done: &mut HashSet<RunKey>,
) -> Result<Tick, sqlx::Error> {
    let now = state.clock.now();
    let slot = s.latest_slot(now);
    let period = s.period_of(slot);
    let key = RunKey {
        channel: s.channel.clone(),
        scope: s.scope(),
        period_start: period.start,
    };
    if done.contains(&key) {
        return Ok(Tick::AlreadyDone);
    }
    let lease_ms =
        (state.settings.setup.lease_ms as i64).max(5 * state.settings.slack.call_timeout_ms as i64);
    let claimed = match runs::claim(&state.db, &key, period, owner, now, lease_ms).await? {
        Claim::Mine(c) => c,
        Claim::Finished => {
            done.insert(key);
            return Ok(Tick::AlreadyDone);
        }
        Claim::NotNow => return Ok(Tick::Waiting),
    };
    tracing::info!(channel = %s.channel, period_start = %period.start, attempt = claimed.attempts, "posting digest");
    let result = post_run(state, s, &key, period, &claimed, owner).await;
    let now = state.clock.now();
    let cfg = &state.settings.setup;
    let outcome = match &result {
        Ok(()) => Outcome::Done,
        Err(PostError::LeaseLost) => return Ok(Tick::Waiting),
        Err(e) => {
            let after = match e {
                PostError::Slack(se) => se.retry_after(),
                _ => None,
            };
            let (retryable, attempt) = (e.retryable(), claimed.attempts);
            Outcome::failure(e.to_string(), retryable, after, attempt, cfg, now)
        }
    };
    runs::finish(&state.db, &key, owner, &outcome, now).await?;
    Ok(match outcome {
        Outcome::Done => {
            done.insert(key);
            Tick::Posted
        }
        Outcome::Failed(e) => {
            done.insert(key);
            tracing::error!(channel = %s.channel, error = %e, "digest given up");
            Tick::Failed(e)
        }
        Outcome::Retry { error, .. } => Tick::Failed(error),
    })
}

/// Posts a claimed run, resuming after the steps an earlier attempt stored.
/// Records what the run has done, while `owner` still holds it; [`PostError::LeaseLost`] once another replica
/// has taken it over.
async fn save(
    state: &AppState,
    key: &RunKey,
    owner: &str,
    progress: runs::Progress<'_>,
) -> Result<(), PostError> {
    if runs::save(&state.db, key, owner, progress, state.clock.now()).await? {
        Ok(())
    } else {
        Err(PostError::LeaseLost)
    }
}

async fn post_run(
    state: &AppState,
    s: &Schedule,
    key: &RunKey,
    period: Period,
    claimed: &Claimed,
    owner: &str,
) -> Result<(), PostError> {
    let channel_id = resolve_channel(state, &s.channel).await?;
    let tag = key.tag();
    let p = prepare(state, &s.filter, period, s.tz, &tag).await?;
    let retry = claimed.attempts > 1;
    let recent = if retry && (claimed.message_ts.is_none() || claimed.chart_file_id.is_none()) {
        history(state, &channel_id).await?
    } else {
        Vec::new()
    };
    if claimed.message_ts.is_none() {
        let ts = match recent.iter().find(|m| m.has_block(&tag)) {
            Some(m) => m.ts.clone(),
            None => post_message(state, &channel_id, &p).await?,
        };
        save(state, key, owner, runs::Progress::Message(&ts)).await?;
    }
    if claimed.chart_file_id.is_none() {
        if let Some((png, title)) = &p.chart {
            let shared = recent
                .iter()
                .any(|m| m.text.as_deref() == Some(title.as_str()) && m.bot_id.is_some());
            let file_id = if shared {
                "shared-before-retry".to_string()
            } else {
                upload_chart(state, &channel_id, png, title).await?
            };
            save(state, key, owner, runs::Progress::Chart(&file_id)).await?;
        }
    }
    Ok(())
}
