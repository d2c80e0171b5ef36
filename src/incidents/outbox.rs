//! The outbox: the Slack and pager side effects of phase changes, done exactly once.
//!
//! A change stores its effects as rows of `outbox` in the same transaction as the change itself
//! ([`super::phases::write`], [`super::timers`]): refresh the pinned card, post the timeline line, post the MTTR
//! summary (incident channel and broadcast channel), refresh posted summaries after a correction, page an
//! escalation. A worker then claims due rows with one conditional `UPDATE … RETURNING` under a lease (the one lease
//! queue of [`crate::store::lease`]), so two replicas never run the same row, and a row whose owner died is taken
//! over when its process stops heartbeating or the lease runs out. A retried post first looks for the message an interrupted attempt may have posted (every
//! message carries `block_id = ob:<row id>`), so a crash between Slack's answer and the commit still posts once.
//!
//! Rows of one incident and lane run in order (`seq`), so timeline lines appear in the order the changes happened.
//! The card row is coalesced: one row per incident whose `generation` is bumped by every change; the worker
//! renders the card from the database as it is when it runs, and goes again if the generation moved meanwhile.
//! The statements are in [`crate::store::outbox`].

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::task::JoinSet;

use super::steps::{deploys_before_impact, Failure};
use super::summary::{PastIncident, Summary, BASELINE_DAYS};
use super::Incident;
use crate::db::{from_ms, ms, Db};
use crate::domain::duration::format_duration;
use crate::domain::text::{self, escape_cut};
use crate::pager::{Page, PagerError};
use crate::slack::client::Post;
use crate::state::AppState;
use crate::store::incidents;
use crate::store::lease;
use crate::store::outbox::{self as store, Job};

/// Rows fetched per claim.
const CLAIM_BATCH: i64 = 32;
/// How long to wait for the war room (channel, card) before a post or card refresh is tried again; not counted
/// as an attempt.
const WAIT_FOR_SETUP: StdDuration = StdDuration::from_millis(250);

/// Which escalation a page row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// A P1 nobody acknowledged in time: page the secondary on-call again.
    Ack,
    /// Unresolved for too long: page the service's escalation target.
    Unresolved,
    /// Upgraded to P1: page the secondary on-call at P1.
    Upgrade,
    /// The "Page" button of a stalled-phase nudge: page the service's escalation target.
    Stalled,
}

impl Escalation {
    pub fn as_str(self) -> &'static str {
        match self {
            Escalation::Ack => "ack",
            Escalation::Unresolved => "unresolved",
            Escalation::Upgrade => "upgrade",
            Escalation::Stalled => "stalled",
        }
    }
}

// ── enqueueing (inside the caller's transaction) ───────────────────────────────────────────────────────────────

/// Post timeline event `event_id` (its `detail`) in the incident channel.
pub(crate) async fn post_line(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("post:{event_id}"),
        incident_id,
        "slack",
        "post",
        &json!({ "event_id": event_id }),
        now,
    )
    .await
}

/// Post timeline event `event_id` (a new follow-up) in the incident channel with a "Done" button for follow-up
/// `followup_id`.
pub(crate) async fn post_followup_line(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    event_id: &str,
    followup_id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("post:{event_id}"),
        incident_id,
        "slack",
        "post",
        &json!({ "event_id": event_id, "followup_id": followup_id }),
        now,
    )
    .await
}

/// Upload the postmortem draft to the incident channel; `key` makes the row unique (the resolution's version, or
/// the request that asked).
pub(crate) async fn upload_postmortem(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("postmortem:{incident_id}:{key}"),
        incident_id,
        "slack",
        "postmortem",
        &json!({}),
        now,
    )
    .await
}

/// Post timeline event `event_id` (a status update) as a reply in the thread of the broadcast announcement.
pub(crate) async fn post_in_announcement_thread(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("thread:{event_id}"),
        incident_id,
        "slack",
        "thread",
        &json!({ "event_id": event_id }),
        now,
    )
    .await
}

/// Re-render the pinned card (`chat.update`).
pub(crate) async fn refresh_card(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::request(
        tx,
        &format!("card:{incident_id}"),
        incident_id,
        "card",
        "card",
        now,
    )
    .await
}

/// Bring the channel topic and the broadcast announcement up to date with the incident's severity (coalesced:
/// rendered from the database when the row runs).
pub(crate) async fn sync_severity(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::request(
        tx,
        &format!("severity:{incident_id}"),
        incident_id,
        "severity",
        "severity",
        now,
    )
    .await
}

/// Whether the post of timeline event `event_id` is still waiting for its first attempt; if so it is held (on
/// PostgreSQL its row is locked until the caller's transaction ends), so the caller may still change the line.
pub(crate) async fn hold_unposted_line(
    tx: &mut sqlx::AnyConnection,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    store::hold_pending(tx, &format!("post:{event_id}")).await
}

/// `id` of the coalesced card refresh that alerts ask for (throttled, lane `alerts`).
fn alerts_card_id(incident_id: &str) -> String {
    format!("alerts_card:{incident_id}")
}

/// Re-render the pinned card because alerts arrived: at most once per `min_interval_ms` however many arrive.
/// The first request runs now; while one is waiting it is left as it is; after an edit the next waits until
/// `min_interval_ms` after it (and one that arrives during an edit runs `min_interval_ms` after that edit, see
/// [`complete`]).
pub(crate) async fn refresh_card_throttled(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: DateTime<Utc>,
    min_interval_ms: i64,
) -> Result<(), sqlx::Error> {
    store::request_throttled(
        tx,
        &alerts_card_id(incident_id),
        incident_id,
        "alerts",
        "card",
        now,
        min_interval_ms,
    )
    .await
}

/// Ask once per incident "Alert resolved N minutes ago — mark Resolved?" (`ended_at`: when the last alert
/// ended). A second request for the same incident does nothing.
pub(crate) async fn prompt_resolve(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    ended_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("alerts_prompt:{incident_id}"),
        incident_id,
        "slack",
        "alert_prompt",
        &json!({ "ended_at": ms(ended_at) }),
        now,
    )
    .await
}

/// Post the MTTR summary of the resolution stored as incident version `version`, in both channels.
pub(crate) async fn post_summaries(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for target in ["incident", "broadcast"] {
        store::insert(
            tx,
            &format!("summary:{incident_id}:{version}:{target}"),
            incident_id,
            "slack",
            "summary",
            &json!({ "target": target }),
            now,
        )
        .await?;
    }
    upload_postmortem(tx, incident_id, &format!("resolved:{version}"), now).await
}

/// Re-render the summaries already posted (after a correction).
pub(crate) async fn refresh_summaries(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::request(
        tx,
        &format!("summary_refresh:{incident_id}"),
        incident_id,
        "slack",
        "summary_refresh",
        now,
    )
    .await
}

/// Post a message with buttons in the incident channel (a stalled-phase nudge, a deploy prompt), rendered when
/// it was decided; `id` makes the row unique, so it is posted once. Not posted if by then the incident's current
/// phase is none of `while_phases` (`as_str` names): the question would be stale.
pub(crate) async fn post_message(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    text: &str,
    blocks: &serde_json::Value,
    while_phases: &[&str],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        id,
        incident_id,
        "slack",
        "message",
        &json!({ "text": text, "blocks": blocks, "while_phases": while_phases }),
        now,
    )
    .await
}

/// Page an escalation; `key` makes the row unique (the timer that asked).
pub(crate) async fn page(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    which: Escalation,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::insert(
        tx,
        &format!("page:{key}"),
        incident_id,
        "page",
        "page",
        &json!({ "escalation": which.as_str() }),
        now,
    )
    .await
}

// ── the worker ─────────────────────────────────────────────────────────────────────────────────────────────────

/// What running a row came to.
#[derive(Debug)]
enum Run {
    /// Finished; `line` is a timeline line to store and post as a follow-up (escalations say what they did).
    Done {
        result: String,
        line: Option<String>,
    },
    /// Not possible yet (the war room is still being set up); try again after this, without counting an attempt.
    Later(StdDuration),
    Failed(Failure),
}

impl From<Failure> for Run {
    fn from(f: Failure) -> Self {
        Run::Failed(f)
    }
}

impl From<sqlx::Error> for Run {
    fn from(e: sqlx::Error) -> Self {
        Run::Failed(e.into())
    }
}

impl From<crate::slack::SlackError> for Run {
    fn from(e: crate::slack::SlackError) -> Self {
        Run::Failed(e.into())
    }
}

fn done(result: impl Into<String>) -> Run {
    Run::Done {
        result: result.into(),
        line: None,
    }
}

/// Runs every due row now, in the background, unless this process is already doing so (then it goes round once
/// more).
pub fn kick(state: &Arc<AppState>) {
    if !state.outbox.kick() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            state.outbox.round();
            if let Err(e) = drain(&state).await {
                tracing::warn!(error = %e, "outbox drain failed; the next tick retries");
            }
            if !state.outbox.again() {
                break;
            }
        }
    });
}

/// Rows of the incident not finished yet (pending or running).
pub async fn unfinished(db: &Db, incident_id: &str) -> Result<i64, sqlx::Error> {
    store::unfinished(db, incident_id).await
}

/// Failed or struggling rows of the incident, for `/incident status`.
pub async fn problems(db: &Db, incident_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = store::problems(db, incident_id).await?;
    let mut out = Vec::new();
    for r in rows {
        let what = match r.kind.as_str() {
            "card" => "card refresh",
            "post" => "timeline line",
            "summary" | "summary_refresh" => "MTTR summary",
            "postmortem" => "postmortem draft upload",
            "page" => "escalation page",
            "severity" => "topic and announcement update",
            "thread" => "status update in the announcement thread",
            "message" => "nudge or deploy prompt",
            _ => "update",
        };
        let how = if r.failed {
            "failed"
        } else {
            "is being retried"
        };
        out.push(format!(
            "{what} {how} ({})",
            r.last_error.unwrap_or_else(|| "no error recorded".into())
        ));
    }
    Ok(out)
}

/// Deletes finished card, line and page rows older than a week (summaries are kept: a correction edits them).
pub async fn forget_old(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    store::forget_old(db, now - chrono::Duration::days(7)).await
}

async fn drain(state: &Arc<AppState>) -> Result<(), sqlx::Error> {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        let jobs = claim(state).await?;
        for job in jobs {
            let state = state.clone();
            running.spawn(async move { execute(&state, job).await });
        }
        if running.join_next().await.is_none() {
            return Ok(());
        }
    }
}

/// Claims the due head of every incident's lanes for this process.
async fn claim(state: &AppState) -> Result<Vec<Job>, sqlx::Error> {
    let now = state.clock.now();
    let lease_until = ms(now) + state.settings.setup.lease_ms as i64;
    store::claim(
        &state.db,
        state.worker.owner(),
        now,
        lease_until,
        CLAIM_BATCH,
    )
    .await
}

async fn execute(state: &Arc<AppState>, job: Job) {
    let outcome = match super::load(&state.db, &job.incident_id).await {
        Ok(Some(inc)) => run(state, &job, &inc).await,
        Ok(None) => Run::Failed(Failure::Permanent("incident vanished".into())),
        Err(e) => e.into(),
    };
    if let Err(e) = complete(state, &job, outcome).await {
        tracing::warn!(row = %job.id, error = %e, "could not store an outbox outcome; the lease will run out and it is retried");
    }
}

async fn run(state: &AppState, job: &Job, inc: &Incident) -> Run {
    let attempt = job.attempts;
    let r = match job.kind.as_str() {
        "card" => card(state, inc).await,
        "post" => post(state, job, inc, attempt).await,
        "summary" => summary(state, job, inc, attempt).await,
        "postmortem" => postmortem(state, inc).await,
        "summary_refresh" => refresh(state, inc).await,
        "page" => escalate(state, job, inc).await,
        "alert_prompt" => prompt(state, job, inc, attempt).await,
        "severity" => severity(state, inc).await,
        "thread" => thread(state, job, inc).await,
        "message" => message(state, job, inc, attempt).await,
        other => Ok(Run::Failed(Failure::Permanent(format!(
            "unknown outbox row kind {other}"
        )))),
    };
    r.unwrap_or_else(|e| e)
}

/// Stores how a row went; a finished page's follow-up line is stored and queued in the same transaction.
async fn complete(state: &AppState, job: &Job, outcome: Run) -> Result<(), sqlx::Error> {
    let now = state.clock.now();
    let cfg = &state.settings.setup;
    let (new_state, result, error, next_at, attempts_delta, mut line) = match outcome {
        Run::Done { result, line } => ("done", Some(result), None, ms(now), 0i64, line),
        Run::Later(after) => (
            "pending",
            None,
            None,
            ms(now) + after.as_millis() as i64,
            -1,
            None,
        ),
        Run::Failed(Failure::Retry { after, error }) if job.attempts < cfg.max_attempts => {
            let wait =
                lease::retry_delay(after, cfg.backoff_base_ms, cfg.backoff_max_ms, job.attempts);
            tracing::warn!(row = %job.id, attempt = job.attempts, retry_in_ms = wait.as_millis() as u64, %error, "outbox row will be retried");
            (
                "pending",
                None,
                Some(error),
                ms(now) + wait.as_millis() as i64,
                0,
                None,
            )
        }
        Run::Failed(Failure::Retry { error, .. }) | Run::Failed(Failure::Permanent(error)) => {
            tracing::error!(row = %job.id, attempt = job.attempts, %error, "outbox row failed");
            let line = (job.kind == "page").then(|| {
                format!(
                    "⚠️ An escalation page could not be sent ({error}). Page the on-call by hand."
                )
            });
            ("failed", None, Some(error), ms(now), 0, line)
        }
    };
    // A card refresh asked for by alerts while it ran waits out the minimum interval after this edit.
    let throttle = if job.id.starts_with("alerts_card:") {
        state.settings.alerts.card_min_interval_ms as i64
    } else {
        0
    };
    let mut tx = state.db.begin_write().await?;
    let how = store::Completion {
        state: new_state,
        result,
        error,
        next_attempt_at: next_at,
        attempts_delta,
        throttle_ms: throttle,
    };
    if store::complete(&mut tx, job, state.worker.owner(), how, now).await? {
        if let Some(text) = line.take() {
            let event_id = incidents::add_timeline_event(
                &mut tx,
                &job.incident_id,
                now,
                "escalated",
                None,
                &text,
            )
            .await?;
            post_line(&mut tx, &job.incident_id, &event_id, now).await?;
        }
    }
    tx.commit().await
}

// ── what each row does ─────────────────────────────────────────────────────────────────────────────────────────

/// Whether a war-room setup step is over (done, failed or skipped). The steps after the channel are stored when
/// the channel step settles, so a step not stored yet is still to come while the channel step is open; an
/// incident with no steps at all (an imported one) has nothing to wait for.
async fn step_settled(db: &Db, incident_id: &str, step: &str) -> Result<bool, sqlx::Error> {
    crate::store::setup_steps::settled(db, incident_id, step).await
}

/// The incident channel, or what to do when there is none (yet).
async fn channel_or(state: &AppState, inc: &Incident) -> Result<Result<String, Run>, Run> {
    match &inc.channel_id {
        Some(c) => Ok(Ok(c.clone())),
        None if step_settled(&state.db, &inc.id, "channel").await? => {
            Ok(Err(done("no incident channel: nothing to do")))
        }
        None => Ok(Err(Run::Later(WAIT_FOR_SETUP))),
    }
}

async fn card(state: &AppState, inc: &Incident) -> Result<Run, Run> {
    let channel = match channel_or(state, inc).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let Some(ts) = &inc.card_ts else {
        return Ok(if step_settled(&state.db, &inc.id, "card").await? {
            done("no card was posted: nothing to update")
        } else {
            Run::Later(WAIT_FOR_SETUP)
        });
    };
    let deploys = deploys_before_impact(state, inc).await?;
    let alerts = crate::store::alerts::counts(&state.db, &inc.id).await?;
    let view = super::card_view(state, inc, deploys).with_alerts(alerts);
    let text = view.fallback_text();
    state
        .slack
        .update_message(ts, &Post::blocks(&channel, &text, view.blocks()))
        .await?;
    Ok(done(format!(
        "card updated ({})",
        inc.timeline.status().label()
    )))
}

/// The topic and the broadcast announcement, rendered from the incident as it is now (after its war-room steps
/// have run: until then they would write what is being changed).
async fn severity(state: &AppState, inc: &Incident) -> Result<Run, Run> {
    if !step_settled(&state.db, &inc.id, "topic").await?
        || !step_settled(&state.db, &inc.id, "announce").await?
    {
        return Ok(Run::Later(WAIT_FOR_SETUP));
    }
    let mut did = Vec::new();
    if let Some(channel) = &inc.channel_id {
        state
            .slack
            .set_topic(channel, &crate::slack::blocks::topic(inc))
            .await?;
        did.push("topic set");
    }
    if let Some(ts) = announcement_ts(state, inc).await? {
        let ts = ts.as_str();
        let channel = state.broadcast_channel().await?;
        let link = match &inc.channel_id {
            Some(c) => Some(state.slack.channel_link(c).await),
            None => None,
        };
        let blocks = crate::slack::blocks::announcement(inc, link.as_deref());
        let text = crate::slack::blocks::announcement_text(inc);
        state
            .slack
            .update_message(ts, &Post::blocks(&channel, &text, blocks))
            .await?;
        did.push("announcement updated");
    }
    Ok(done(format!(
        "{} ({})",
        if did.is_empty() {
            "nothing to update".to_string()
        } else {
            did.join(", ")
        },
        inc.severity.as_str()
    )))
}

/// The `ts` of the incident's broadcast announcement, as the war-room step `announce` stored it.
async fn announcement_ts(state: &AppState, inc: &Incident) -> Result<Option<String>, sqlx::Error> {
    let announced = crate::store::setup_steps::result_of(&state.db, &inc.id, "announce").await?;
    Ok(announced
        .as_deref()
        .and_then(|r| r.strip_prefix("announced "))
        .and_then(|r| r.split_whitespace().next())
        .filter(|ts| *ts != "?")
        .map(str::to_string))
}

/// A status update, as a reply in the thread of the broadcast announcement (after the announcement step has
/// run). A retry after an interrupted attempt posts again: thread replies are not in `conversations.history`.
async fn thread(state: &AppState, job: &Job, inc: &Incident) -> Result<Run, Run> {
    if inc.private {
        return Ok(done("private incident: no reply in the broadcast channel"));
    }
    if !step_settled(&state.db, &inc.id, "announce").await? {
        return Ok(Run::Later(WAIT_FOR_SETUP));
    }
    let Some(ts) = announcement_ts(state, inc).await? else {
        return Ok(done("no announcement: no thread to reply in"));
    };
    let event_id = job.payload["event_id"].as_str().unwrap_or_default();
    let Some(text) = incidents::timeline_detail(&state.db, event_id).await? else {
        return Ok(Run::Failed(Failure::Permanent(format!(
            "timeline event {event_id} vanished"
        ))));
    };
    let channel = state.broadcast_channel().await?;
    let blocks = json!([{ "type": "section", "block_id": block_id(job), "text": { "type": "mrkdwn", "text": text::cut(&text, text::SECTION_TEXT) } }]);
    let post = Post {
        thread_ts: Some(&ts),
        ..Post::blocks(&channel, &text, blocks)
    };
    let reply = state.slack.post_message_joining(&post).await?;
    Ok(done(format!(
        "replied {channel} {ts} {}",
        reply.as_deref().unwrap_or("?")
    )))
}

/// When the row's first attempt began (wall-clock epoch ms), for [`crate::slack::SlackClient::find_message`].
async fn first_attempt_at(state: &AppState, job: &Job) -> Result<Option<i64>, sqlx::Error> {
    store::first_attempt_at(&state.db, job.seq).await
}

/// `block_id` of the first block of everything a row posts.
fn block_id(job: &Job) -> String {
    format!("ob:{}", job.id)
}

async fn post(state: &AppState, job: &Job, inc: &Incident, attempt: i64) -> Result<Run, Run> {
    let channel = match channel_or(state, inc).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let event_id = job.payload["event_id"].as_str().unwrap_or_default();
    let detail = incidents::timeline_detail(&state.db, event_id).await?;
    let Some(text) = detail else {
        return Ok(Run::Failed(Failure::Permanent(format!(
            "timeline event {event_id} vanished"
        ))));
    };
    let bid = block_id(job);
    if attempt > 1 {
        let since = first_attempt_at(state, job).await?;
        if let Some(ts) = state.slack.find_message(&channel, &bid, since).await? {
            return Ok(done(format!(
                "posted {channel} {ts} (found after an interrupted attempt)"
            )));
        }
    }
    let mut blocks = json!([{ "type": "section", "block_id": bid, "text": { "type": "mrkdwn", "text": text::cut(&text, text::SECTION_TEXT) } }]);
    if let (Some(id), Some(list)) = (job.payload["followup_id"].as_i64(), blocks.as_array_mut()) {
        list.push(crate::slack::blocks::followup_done_button(id));
    }
    let ts = state
        .slack
        .post_message_joining(&Post::blocks(&channel, &text, blocks))
        .await?;
    Ok(done(format!(
        "posted {channel} {}",
        ts.as_deref().unwrap_or("?")
    )))
}

/// A message rendered when it was queued ([`post_message`]), unless the incident's phase has moved on.
async fn message(state: &AppState, job: &Job, inc: &Incident, attempt: i64) -> Result<Run, Run> {
    let current = crate::domain::mttr::breakdown(&inc.timeline, state.clock.now()).current();
    let wanted = job.payload["while_phases"].as_array();
    let still = match (wanted, current) {
        (Some(list), Some(p)) => list.iter().any(|w| w.as_str() == Some(p.as_str())),
        (Some(list), None) => list.is_empty(),
        (None, _) => true,
    };
    if !still {
        return Ok(done("the phase moved on: not posted"));
    }
    let channel = match channel_or(state, inc).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let bid = block_id(job);
    if attempt > 1 {
        let since = first_attempt_at(state, job).await?;
        if let Some(ts) = state.slack.find_message(&channel, &bid, since).await? {
            return Ok(done(format!(
                "posted {channel} {ts} (found after an interrupted attempt)"
            )));
        }
    }
    let text = job.payload["text"].as_str().unwrap_or_default().to_string();
    let mut blocks = job.payload["blocks"].clone();
    if let Some(first) = blocks.get_mut(0) {
        first["block_id"] = json!(bid);
    }
    let ts = state
        .slack
        .post_message_joining(&Post::blocks(&channel, &text, blocks))
        .await?;
    Ok(done(format!(
        "posted {channel} {}",
        ts.as_deref().unwrap_or("?")
    )))
}

/// "Alert resolved 3 minutes ago — mark Resolved?" with one button (the card's `Resolved`), unless the incident
/// is resolved already.
async fn prompt(state: &AppState, job: &Job, inc: &Incident, attempt: i64) -> Result<Run, Run> {
    if !inc.timeline.status().is_active() {
        return Ok(done("already resolved: not asked"));
    }
    let channel = match channel_or(state, inc).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let bid = block_id(job);
    if attempt > 1 {
        let since = first_attempt_at(state, job).await?;
        if let Some(ts) = state.slack.find_message(&channel, &bid, since).await? {
            return Ok(done(format!(
                "posted {channel} {ts} (found after an interrupted attempt)"
            )));
        }
    }
    let ended = job.payload["ended_at"]
        .as_i64()
        .map(from_ms)
        .unwrap_or_else(|| state.clock.now());
    let question = format!(
        "✅ Alert resolved {} — mark *{}* Resolved?",
        ago(state.clock.now() - ended),
        inc.key()
    );
    let blocks = json!([
        { "type": "section", "block_id": bid, "text": { "type": "mrkdwn", "text": question } },
        { "type": "actions", "block_id": "alert_resolved_prompt", "elements": [{
            "type": "button", "style": "primary",
            "action_id": crate::domain::phase::Milestone::Resolved.action_id(),
            "value": inc.id,
            "text": { "type": "plain_text", "text": "Mark Resolved" }
        }] }
    ]);
    let ts = state
        .slack
        .post_message_joining(&Post::blocks(&channel, &question, blocks))
        .await?;
    Ok(done(format!(
        "posted {channel} {}",
        ts.as_deref().unwrap_or("?")
    )))
}

/// `just now`, `1 minute ago`, `3 minutes ago`.
fn ago(d: chrono::Duration) -> String {
    match d.num_minutes().max(0) {
        0 => "just now".into(),
        1 => "1 minute ago".into(),
        n => format!("{n} minutes ago"),
    }
}

/// Other incidents resolved in the 90 days before `inc` (any severity; [`Summary::compute`] filters).
async fn history(
    db: &Db,
    inc: &Incident,
    until: DateTime<Utc>,
) -> Result<Vec<PastIncident>, sqlx::Error> {
    let since = until - chrono::Duration::days(BASELINE_DAYS);
    incidents::resolved_between(db, inc.peak_severity, since, until, &inc.id).await
}

/// Everything the summary needs, loaded; `None` while the incident is not resolved.
async fn compute_summary(state: &AppState, inc: &Incident) -> Result<Option<Summary>, sqlx::Error> {
    let Some(resolved) = &inc.timeline.resolved else {
        return Ok(None);
    };
    let past = history(&state.db, inc, resolved.at).await?;
    let deploys = deploys_before_impact(state, inc).await?;
    let reopens = incidents::count_events(&state.db, &inc.id, "reopened").await?;
    Ok(Summary::compute(inc, &past, deploys, reopens.max(0) as u32))
}

async fn summary(state: &AppState, job: &Job, inc: &Incident, attempt: i64) -> Result<Run, Run> {
    let broadcast = job.payload["target"].as_str() == Some("broadcast");
    if broadcast && inc.private {
        return Ok(done(
            "private incident: no summary in the broadcast channel",
        ));
    }
    let newer = store::newer_summaries(&state.db, &inc.id, job.seq, &job.payload).await?;
    if newer > 0 {
        return Ok(done("superseded by a later resolution"));
    }
    let Some(s) = compute_summary(state, inc).await? else {
        return Ok(done("reopened before the summary went out"));
    };
    let channel = if broadcast {
        state.broadcast_channel().await?
    } else {
        match channel_or(state, inc).await? {
            Ok(c) => c,
            Err(r) => return Ok(r),
        }
    };
    let bid = block_id(job);
    if attempt > 1 {
        let since = first_attempt_at(state, job).await?;
        if let Some(ts) = state.slack.find_message(&channel, &bid, since).await? {
            return Ok(done(format!(
                "posted {channel} {ts} (found after an interrupted attempt)"
            )));
        }
    }
    let text = s.fallback();
    let ts = state
        .slack
        .post_message_joining(&Post::blocks(&channel, &text, s.render(&bid, broadcast)))
        .await?;
    Ok(done(format!(
        "posted {channel} {}",
        ts.as_deref().unwrap_or("?")
    )))
}

/// Uploads the postmortem draft to the incident channel (not retried after Slack took the file: an upload
/// cannot be found again like a message, so a crash between Slack's answer and the commit may upload it twice).
async fn postmortem(state: &AppState, inc: &Incident) -> Result<Run, Run> {
    let channel = match channel_or(state, inc).await? {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let draft = super::postmortem::build(state, inc).await?;
    let file = crate::slack::client::File {
        filename: &draft.filename,
        bytes: draft.markdown.as_bytes(),
        title: &draft.title,
    };
    match state
        .slack
        .upload_file(&channel, &file, &draft.comment)
        .await
    {
        Ok(id) => Ok(done(format!("uploaded {channel} {id}"))),
        Err(crate::slack::client::UploadError::Slack(e)) => Err(e.into()),
        Err(crate::slack::client::UploadError::Upload(e)) => Err(Run::Failed(Failure::Retry {
            after: None,
            error: e,
        })),
    }
}

/// Re-renders the latest posted summary in each channel (after a correction).
async fn refresh(state: &AppState, inc: &Incident) -> Result<Run, Run> {
    let Some(s) = compute_summary(state, inc).await? else {
        return Ok(done("not resolved: nothing to refresh"));
    };
    let rows = store::posted_summaries(&state.db, &inc.id).await?;
    let mut seen = Vec::new();
    let mut updated = 0;
    for r in rows {
        let store::Posted {
            id,
            payload,
            result,
        } = r;
        if seen.contains(&payload) {
            continue;
        }
        seen.push(payload.clone());
        let mut words = result.split_whitespace().skip(1);
        let (Some(channel), Some(ts)) = (words.next(), words.next()) else {
            continue;
        };
        let broadcast = payload.contains("broadcast");
        let text = s.fallback();
        let blocks = s.render(&format!("ob:{id}"), broadcast);
        state
            .slack
            .update_message(ts, &Post::blocks(channel, &text, blocks))
            .await?;
        updated += 1;
    }
    Ok(done(format!("{updated} summary message(s) refreshed")))
}

/// Pages an escalation and says so in the channel (the follow-up line).
async fn escalate(state: &AppState, job: &Job, inc: &Incident) -> Result<Run, Run> {
    let which = match job.payload["escalation"].as_str() {
        Some("unresolved") => Escalation::Unresolved,
        Some("upgrade") => Escalation::Upgrade,
        Some("stalled") => Escalation::Stalled,
        _ => Escalation::Ack,
    };
    let cfg = &state.settings.incidents;
    let key = inc.key();
    let (still_needed, after) = match which {
        Escalation::Ack => (
            inc.timeline.acknowledged.is_none() && inc.timeline.status().is_active(),
            chrono::Duration::minutes(cfg.p1_ack_escalation_minutes),
        ),
        Escalation::Unresolved => (
            inc.timeline.status().is_active(),
            chrono::Duration::minutes(cfg.unresolved_escalation_minutes),
        ),
        // Paged even if resolved or downgraded meanwhile? No: only while it is still an active P1.
        Escalation::Upgrade => (
            inc.timeline.status().is_active()
                && inc.severity == crate::domain::severity::Severity::P1,
            chrono::Duration::zero(),
        ),
        Escalation::Stalled => (inc.timeline.status().is_active(), chrono::Duration::zero()),
    };
    if !still_needed {
        return Ok(done("no longer needed"));
    }
    let waited = format_duration(after);
    let what = match which {
        Escalation::Ack => format!(
            "{key} ({}) was not acknowledged within {waited}",
            inc.severity.as_str()
        ),
        Escalation::Unresolved => format!("{key} is still unresolved after {waited}"),
        Escalation::Upgrade => format!("{key} was upgraded to P1"),
        Escalation::Stalled => {
            let phase = crate::domain::mttr::breakdown(&inc.timeline, state.clock.now())
                .current()
                .map(|p| p.as_str())
                .unwrap_or("a phase");
            format!("{key} is stalled: {phase} is taking longer than usual")
        }
    };
    let svc = inc.service.as_deref().and_then(|s| state.catalog.get(s));
    let route = match which {
        Escalation::Ack | Escalation::Upgrade => svc.and_then(|s| s.pager.as_ref()),
        Escalation::Unresolved | Escalation::Stalled => svc.and_then(|s| s.escalation.as_ref()),
    };
    let Some(route) = route else {
        let why = match (inc.service.as_deref(), svc, which) {
            (None, _, _) => "no service was given, so nobody can be paged".to_string(),
            (Some(name), None, _) => {
                format!(
                    "{} is not in the catalog, so nobody can be paged",
                    escape_cut(name, 80)
                )
            }
            (_, Some(s), Escalation::Ack | Escalation::Upgrade) => {
                format!(
                    "{} has no pager route in the catalog",
                    escape_cut(&s.name, 80)
                )
            }
            (_, Some(s), Escalation::Unresolved | Escalation::Stalled) => format!(
                "{} has no escalation route in the catalog (`incident-bot/escalation`)",
                escape_cut(&s.name, 80)
            ),
        };
        return Ok(Run::Done {
            result: format!("nobody to page: {why}"),
            line: Some(format!("⏰ {what} — {why}. Escalate by hand.")),
        });
    };
    let base = format!("incident-bot-{}", inc.id);
    let (dedup_key, who) = match which {
        Escalation::Ack => {
            let first_page_done =
                crate::store::setup_steps::state_of(&state.db, &inc.id, "page").await?;
            if first_page_done.as_deref() == Some("done") {
                (
                    format!("{base}-escalation-ack"),
                    "paged the secondary on-call again",
                )
            } else {
                (
                    base,
                    "paged the secondary on-call (the first page never went out)",
                )
            }
        }
        Escalation::Unresolved => (
            format!("{base}-escalation-unresolved"),
            "paged the escalation target",
        ),
        Escalation::Stalled => {
            let phase = crate::domain::mttr::breakdown(&inc.timeline, state.clock.now())
                .current()
                .map(|p| p.as_str())
                .unwrap_or("phase");
            (
                format!("{base}-escalation-stalled-{phase}"),
                "paged the escalation target",
            )
        }
        Escalation::Upgrade => {
            let first_page_done =
                crate::store::setup_steps::state_of(&state.db, &inc.id, "page").await?;
            if first_page_done.as_deref() == Some("done") {
                (format!("{base}-p1"), "paged the secondary on-call at P1")
            } else {
                (
                    base,
                    "paged the secondary on-call (the first page never went out)",
                )
            }
        }
    };
    let link = match &inc.channel_id {
        Some(c) => Some(state.slack.channel_link(c).await),
        None => None,
    };
    let service = svc.map(|s| s.name.clone()).unwrap_or_default();
    let page = Page {
        dedup_key,
        summary: format!(
            "[{}] {key} {} ({service}) — {what}",
            inc.severity.as_str(),
            crate::pager::title_of(inc)
        ),
        severity: inc.severity,
        source: service.clone(),
        link,
        details: json!({
            "incident": key,
            "title": crate::pager::title_of(inc),
            "escalation": which.as_str(),
            "role": match which { Escalation::Ack | Escalation::Upgrade => "secondary on-call", Escalation::Unresolved | Escalation::Stalled => "escalation target" },
        }),
    };
    match state.pager.page(route, &state.secrets, &page).await {
        Ok(receipt) => Ok(Run::Done {
            line: Some(format!(
                "⏰ {what} — {who} for {} ({}).",
                escape_cut(&service, 80),
                escape_cut(&receipt, 300)
            )),
            result: receipt,
        }),
        Err(e @ PagerError::Retry { .. }) => Ok(Run::Failed(e.into())),
        Err(e) => Ok(Run::Done {
            line: Some(format!(
                "⚠️ {what}, but the page could not be sent: {}. Escalate by hand.",
                escape_cut(&e.to_string(), 300)
            )),
            result: format!("not paged: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_names_are_stable() {
        assert_eq!(Escalation::Ack.as_str(), "ack");
        assert_eq!(Escalation::Unresolved.as_str(), "unresolved");
    }
}
