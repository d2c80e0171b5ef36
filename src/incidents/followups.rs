//! Follow-ups (SPEC §13): noting one (`/incident followup …`, or the MTTR summary's "Add follow-up" form), giving
//! it an owner, completing it (`/incident followup done <id>`, or the "Done" button on its message), listing the
//! open ones, and the owner's reminder on the due day.
//!
//! Each create, assign and complete is one transaction that stores the change and one timeline line, and queues
//! its post in the incident channel (the outbox); a new follow-up's post carries the "Done" button. A due date
//! schedules a `timers` row (kind `followup_due`, id `followup_due:<id>`) at [`REMIND_HOUR`] local time
//! (`incidents.default_timezone`) that day: fired exactly once across replicas ([`super::timers`]), it reminds the
//! owner in the incident channel unless the follow-up is done by then. Rows in [`crate::store::followups`],
//! lines in [`crate::domain::followup`].
//!
//! Also here, beside them: `/incident postmortem`, which queues an upload of the draft ([`super::postmortem`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::outbox;
use crate::domain::followup::{self, Followup, NewFollowup, REMIND_HOUR};
use crate::domain::text;
use crate::state::AppState;
use crate::store::followups::{self as store, NewRow};
use crate::store::incidents;
use crate::store::timers::{self, Kind};

pub use crate::slack::blocks::{
    followup_add_button as add_button, followup_done_button as done_button, followup_form as form,
    FOLLOWUP_ADD_ACTION_ID as ADD_ACTION_ID, FOLLOWUP_DONE_ACTION_ID as DONE_ACTION_ID,
    FOLLOWUP_FORM_CALLBACK_ID as FORM_CALLBACK_ID,
};
/// Most open follow-ups `/incident followups` lists.
const LIST_MAX: i64 = 50;

/// What a change did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored; `reply` tells the person who asked.
    Applied { reply: String },
    /// Nothing stored; `reason` says why.
    Refused { reason: String },
}

fn refused(reason: impl Into<String>) -> Outcome {
    Outcome::Refused {
        reason: reason.into(),
    }
}

/// Stores a follow-up on incident `incident_id` (of workspace `team`, when known), noted by `by`.
pub async fn create(
    state: &Arc<AppState>,
    team: Option<&str>,
    incident_id: &str,
    new: &NewFollowup,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    let Some(inc) = super::load(&state.db, incident_id).await? else {
        return Ok(refused("That incident does not exist (any more)."));
    };
    if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
        return Ok(refused("That incident belongs to another workspace."));
    }
    let now = state.clock.now();
    let tz = state.default_tz();
    let remind_at = match new.due_on {
        Some(d) => match followup::reminder_at(d, tz, now) {
            Some(at) => Some(at),
            None => {
                return Ok(refused(format!(
                    "`due:{}` has passed (today is {} in {}) — pick today or a later day.",
                    d.format("%Y-%m-%d"),
                    now.with_timezone(&tz).format("%Y-%m-%d"),
                    tz.name()
                )))
            }
        },
        None => None,
    };
    let mut tx = state.db.begin_write().await?;
    let f = store::insert(
        &mut tx,
        &NewRow {
            incident_id: &inc.id,
            text: &new.text,
            owner: new.owner.as_deref(),
            due_on: new.due_on,
            created_by: by,
        },
        now,
    )
    .await?;
    let line = followup::created_line(&inc.key(), &f);
    let event_id =
        incidents::add_timeline_event(&mut tx, &inc.id, now, "followup", Some(by), &line).await?;
    outbox::post_followup_line(&mut tx, &inc.id, &event_id, f.id, now).await?;
    if let Some(at) = remind_at {
        let id = format!("followup_due:{}", f.id);
        timers::schedule(&mut tx, &id, &inc.id, Kind::FollowupDue, at, now).await?;
    }
    tx.commit().await?;
    outbox::kick(state);
    tracing::info!(incident = %inc.key(), followup = f.id, "follow-up stored");
    let when = match (f.due_on, &f.owner) {
        (Some(_), Some(_)) => format!(
            " Its owner is reminded on the due day at {REMIND_HOUR:02}:00 {}.",
            tz.name()
        ),
        (Some(_), None) => format!(
            " The channel is reminded on the due day at {REMIND_HOUR:02}:00 {}.",
            tz.name()
        ),
        _ => String::new(),
    };
    Ok(Outcome::Applied {
        reply: format!(
            "Recorded follow-up {} on {}.{when} Done? `/incident followup done {}`.",
            followup::slack_label(&f),
            inc.key(),
            f.id
        ),
    })
}

/// Loads follow-up `id` with its incident, in the transaction, checking the workspace.
async fn load_checked(
    tx: &mut sqlx::AnyConnection,
    team: Option<&str>,
    id: i64,
) -> Result<Result<(Followup, super::Incident), Outcome>, sqlx::Error> {
    let Some(f) = store::get_in(tx, id).await? else {
        return Ok(Err(refused(format!(
            "There is no follow-up #{id} — `/incident followups` lists the open ones."
        ))));
    };
    let Some(inc) = incidents::load_in(tx, &f.incident_id).await? else {
        return Ok(Err(refused(format!(
            "The incident of follow-up #{id} is gone."
        ))));
    };
    if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
        return Ok(Err(refused(format!(
            "There is no follow-up #{id} — `/incident followups` lists the open ones."
        ))));
    }
    Ok(Ok((f, inc)))
}

/// Completes follow-up `id`, by `by`; a second completion is refused (and changes nothing).
pub async fn complete(
    state: &Arc<AppState>,
    team: Option<&str>,
    id: i64,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let (f, inc) = match load_checked(&mut tx, team, id).await? {
        Ok(x) => x,
        Err(o) => {
            tx.rollback().await?;
            return Ok(o);
        }
    };
    if !store::complete(&mut tx, id, by, now).await? {
        tx.rollback().await?;
        let who = f.done_by.as_deref().map(text::user).unwrap_or_default();
        return Ok(refused(format!(
            "Follow-up #{id} is already done (by {who})."
        )));
    }
    let line = followup::done_line(&inc.key(), &f, by);
    let event_id =
        incidents::add_timeline_event(&mut tx, &inc.id, now, "followup_done", Some(by), &line)
            .await?;
    outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
    tx.commit().await?;
    outbox::kick(state);
    Ok(Outcome::Applied {
        reply: format!("Marked follow-up #{id} of {} done.", inc.key()),
    })
}

/// After a click on "Done": the follow-up's message `ts` in `channel` shows that it is done, without the button
/// (a `chat.update`; a failure only leaves the button, whose next click is told it is done).
pub async fn show_done(state: &AppState, channel: &str, ts: &str, id: i64) -> anyhow::Result<()> {
    let Some(f) = store::get(&state.db, id).await? else {
        return Ok(());
    };
    let Some(inc) = super::load(&state.db, &f.incident_id).await? else {
        return Ok(());
    };
    let mut text = followup::created_line(&inc.key(), &f);
    if let Some(by) = &f.done_by {
        text.push_str(&format!("\n✅ Done (by {})", text::user(by)));
    }
    let blocks = json!([{ "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&text, text::SECTION_TEXT) } }]);
    state
        .slack
        .update_message(
            ts,
            &crate::slack::client::Post::blocks(channel, &text, blocks),
        )
        .await?;
    Ok(())
}

/// Gives follow-up `id` to `owner`, by `by`.
pub async fn assign(
    state: &Arc<AppState>,
    team: Option<&str>,
    id: i64,
    owner: &str,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let (f, inc) = match load_checked(&mut tx, team, id).await? {
        Ok(x) => x,
        Err(o) => {
            tx.rollback().await?;
            return Ok(o);
        }
    };
    if f.is_done() {
        tx.rollback().await?;
        return Ok(refused(format!("Follow-up #{id} is done already.")));
    }
    if f.owner.as_deref() == Some(owner) {
        tx.rollback().await?;
        return Ok(refused(format!(
            "{} already owns follow-up #{id}.",
            text::user(owner)
        )));
    }
    store::set_owner(&mut tx, id, owner).await?;
    let line = followup::assigned_line(&inc.key(), &f, owner, by);
    let event_id =
        incidents::add_timeline_event(&mut tx, &inc.id, now, "followup_assigned", Some(by), &line)
            .await?;
    outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
    tx.commit().await?;
    outbox::kick(state);
    Ok(Outcome::Applied {
        reply: format!(
            "Follow-up #{id} of {} is now {}'s.",
            inc.key(),
            text::user(owner)
        ),
    })
}

/// `/incident followups` in `channel` of workspace `team`: that incident's open follow-ups in its channel,
/// elsewhere every open one (oldest due first).
pub async fn list(state: &AppState, team: &str, channel: &str) -> Result<String, sqlx::Error> {
    let here = incidents::by_channel(&state.db, channel).await?;
    let (head, open, keys) = match &here {
        Some(inc) => {
            let all = store::of_incident(&state.db, &inc.id).await?;
            let open: Vec<Followup> = all.into_iter().filter(|f| !f.is_done()).collect();
            (format!("*Open follow-ups of {}*", inc.key()), open, None)
        }
        None => {
            let open = store::open_in_team(&state.db, team, LIST_MAX).await?;
            (
                "*Open follow-ups* (oldest due first)".to_string(),
                open,
                Some(()),
            )
        }
    };
    if open.is_empty() {
        return Ok(match &here {
            Some(inc) => format!(
                "{} has no open follow-ups. Add one with `/incident followup <text> [@owner] [due:YYYY-MM-DD]`.",
                inc.key()
            ),
            None => "No open follow-ups. 🎉".to_string(),
        });
    }
    let today = state
        .clock
        .now()
        .with_timezone(&state.default_tz())
        .date_naive();
    let mut lines = vec![head];
    for f in &open {
        let mut l = format!("• {}", followup::slack_label(f));
        if keys.is_some() {
            match super::load(&state.db, &f.incident_id).await? {
                // Whoever asks may not be in a private incident's channel: its number and due date only.
                Some(inc) if inc.private => {
                    l = format!(
                        "• *#{}* 🔒 a follow-up of private incident {}",
                        f.id,
                        inc.key()
                    );
                    if let Some(d) = f.due_on {
                        l.push_str(&format!(" · due {}", d.format("%Y-%m-%d")));
                    }
                }
                Some(inc) => l.push_str(&format!(" · {}", inc.key())),
                None => {}
            }
        }
        if f.due_on.is_some_and(|d| d < today) {
            l.push_str(" · ⚠️ overdue");
        }
        lines.push(l);
    }
    Ok(text::cut(&lines.join("\n"), text::MESSAGE_TEXT))
}

/// The due-day timer `timer_id` (`followup_due:<id>`) fired (inside its transaction): the reminder line, unless
/// the follow-up is done. Returns the timer's outcome.
pub(crate) async fn remind(
    tx: &mut sqlx::AnyConnection,
    inc: &super::Incident,
    timer_id: &str,
    now: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let Some(id) = timer_id
        .strip_prefix("followup_due:")
        .and_then(|n| n.parse::<i64>().ok())
    else {
        return Ok("not a follow-up timer".into());
    };
    let Some(f) = store::get_in(tx, id).await? else {
        return Ok("not needed: the follow-up is gone".into());
    };
    if f.is_done() {
        return Ok("not needed: the follow-up is done".into());
    }
    let line = followup::reminder_line(&inc.key(), &f);
    let event_id =
        incidents::add_timeline_event(tx, &inc.id, now, "followup_reminder", None, &line).await?;
    outbox::post_line(tx, &inc.id, &event_id, now).await?;
    Ok("reminded".into())
}

/// `/incident postmortem` in `channel`: queues the upload; the reply for the person who asked.
pub async fn request_postmortem(
    state: &Arc<AppState>,
    channel: &str,
) -> Result<String, sqlx::Error> {
    let Some(inc) = incidents::by_channel(&state.db, channel).await? else {
        return Ok(
            "`/incident postmortem` works in an incident's channel — run it there (`/incident list` shows them)."
                .into(),
        );
    };
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    outbox::upload_postmortem(
        &mut tx,
        &inc.id,
        &format!("asked:{}", uuid::Uuid::new_v4()),
        now,
    )
    .await?;
    tx.commit().await?;
    outbox::kick(state);
    Ok(format!(
        "📝 Building the postmortem draft of *{}*; it will appear in this channel as a Markdown file.",
        inc.key()
    ))
}
