//! Status updates (SPEC §12): `/incident update` opens a form (status, impact, next update in N minutes); the
//! submission becomes one timeline line (kind `update`), posted in the incident channel and as a reply in the
//! thread of the broadcast announcement, so stakeholders follow one thread. The Slack side is
//! [`crate::http::slack::updates`].
//!
//! Exactly once: one transaction stores the line, its two posts (outbox rows `post:<event>` and
//! `thread:<event>`) and the "next update due" reminder (a timer, kind `update_due`, id `update_due:<event>`);
//! the same transaction settles the reminder of the update before it, so only the newest update's reminder can
//! fire. When it fires ([`super::timers`]) and the incident is still active it posts one reminder to the comms
//! lead (or the IC, or just the channel); after resolution it does nothing.

use std::sync::Arc;

use chrono::Duration;

use super::outbox;
use crate::domain::incident::Incident;
use crate::domain::text;
use crate::state::AppState;
use crate::store::incidents;
use crate::store::timers::{self, Kind};

/// The statuses the form offers (value, label); the person may type their own instead.
pub const STATUSES: [(&str, &str); 4] = [
    ("investigating", "Investigating"),
    ("identified", "Identified"),
    ("monitoring", "Monitoring"),
    ("resolved", "Resolved"),
];

/// Minutes until the next update when the form does not say.
pub const DEFAULT_NEXT_MINUTES: i64 = 30;
/// The longest promise the form accepts (a day).
pub const MAX_NEXT_MINUTES: i64 = 1_440;
/// Most characters of a typed status kept.
const STATUS_MAX: usize = 80;
/// Most characters of the impact kept.
const IMPACT_MAX: usize = 1_500;

/// What the form said (raw, as typed: escaped when rendered).
#[derive(Debug, Clone)]
pub struct Form {
    pub status: String,
    pub impact: String,
    pub next_minutes: i64,
}

/// What [`submit`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored; `line` is the update as posted.
    Applied { line: String },
    /// Nothing stored; `reason` says why, for the person who asked.
    Refused { reason: String },
}

/// The label of a status value from the form (`identified` → `Identified`); typed text as typed.
fn status_label(status: &str) -> &str {
    STATUSES
        .iter()
        .find(|(v, _)| v.eq_ignore_ascii_case(status.trim()))
        .map(|(_, l)| *l)
        .unwrap_or(status)
}

/// The update as posted (pure). Every typed word goes through [`text::escape_cut`]: no mention, no link.
pub fn line(inc: &Incident, form: &Form, by: &str) -> String {
    format!(
        "📢 *Status update* · {} · *{}* (by {})\n*Impact:* {}\n_Next update in {} minutes._",
        inc.key(),
        text::escape_cut(status_label(&form.status), STATUS_MAX),
        text::user(by),
        text::escape_cut(&form.impact, IMPACT_MAX),
        form.next_minutes
    )
}

/// The reminder posted when an update is due and none came: to the comms lead, else the IC, else the channel.
pub fn reminder_line(inc: &Incident) -> String {
    let who = inc.roles.comms.as_deref().or(inc.roles.ic.as_deref());
    match who {
        Some(u) => format!(
            "⏰ {}: the next status update on {} is due — post one with `/incident update`.",
            text::user(u),
            inc.key()
        ),
        None => format!(
            "⏰ The next status update on {} is due — post one with `/incident update` (nobody holds the comms \
             lead or IC role).",
            inc.key()
        ),
    }
}

/// Stores a status update on incident `incident_id` by `by` (of workspace `team`, when known).
pub async fn submit(
    state: &Arc<AppState>,
    team: Option<&str>,
    incident_id: &str,
    form: &Form,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    let Some(inc) = super::load(&state.db, incident_id).await? else {
        return Ok(Outcome::Refused {
            reason: "That incident does not exist (any more).".into(),
        });
    };
    if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
        return Ok(Outcome::Refused {
            reason: "That incident belongs to another workspace.".into(),
        });
    }
    if inc.timeline.closed_at.is_some() {
        return Ok(Outcome::Refused {
            reason: "The incident is closed; it takes no more status updates.".into(),
        });
    }
    let now = state.clock.now();
    let text = line(&inc, form, by);
    let mut tx = state.db.begin_write().await?;
    let event_id =
        incidents::add_timeline_event(&mut tx, &inc.id, now, "update", Some(by), &text).await?;
    outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
    outbox::post_in_announcement_thread(&mut tx, &inc.id, &event_id, now).await?;
    timers::supersede(
        &mut tx,
        &inc.id,
        Kind::UpdateDue,
        "not needed: a newer update came",
        now,
    )
    .await?;
    if inc.timeline.status().is_active() {
        let due = now + Duration::minutes(form.next_minutes.clamp(1, MAX_NEXT_MINUTES));
        let id = format!("update_due:{event_id}");
        timers::schedule(&mut tx, &id, &inc.id, Kind::UpdateDue, due, now).await?;
    }
    tx.commit().await?;
    outbox::kick(state);
    tracing::info!(incident = %inc.key(), "status update stored");
    Ok(Outcome::Applied { line: text })
}
