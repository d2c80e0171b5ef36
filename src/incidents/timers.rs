//! Timers: the P1 acknowledgement escalation, the unresolved escalation, the reminder of a P1 without an incident
//! commander, the "next status update due" reminder ([`super::updates`]), the stalled-phase nudge
//! ([`super::nudges`], which also matches new deploys against open incidents every tick), a follow-up's due-day
//! reminder ([`super::followups`]), and the end of the monitoring window.
//!
//! A timer is a row of `timers` (`due_at`, `fired`). Escalation timers are armed by the worker, once per incident
//! (`incidents.timers_armed`), for every incident declared in the last day (so they exist whoever declared the
//! incident, and after a restart); the close timer is written with the resolution itself. A due timer is fired
//! in one transaction that flips `fired` 0 → 1 with a conditional `UPDATE` and stores its effects (outbox rows,
//! the closed incident), so it fires exactly once even with several bot processes on one database, and survives
//! restarts: nothing is kept in memory. Every timer re-checks its condition when it fires (an acknowledged P1 is
//! not escalated).
//!
//! The worker ([`run_forever`]) ticks every `incidents.timer_tick_ms`, reading the time from `state.clock`, so tests
//! drive it with a manual clock. The statements are in [`crate::store::timers`].

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use super::outbox::{self, Escalation};
use super::phases::{self, Change, Event};
use super::Incident;
use crate::domain::phase::Status;
use crate::domain::severity::Severity;
use crate::state::AppState;
use crate::store::{incidents, timers};

/// Incidents declared longer ago than this get no escalation timers armed (e.g. imported history).
const ARM_HORIZON_HOURS: i64 = 24;
/// Most incidents whose timers one tick arms.
const ARM_BATCH: i64 = 100;
/// How often (in ticks) finished outbox rows, and the Slack requests already seen, are cleaned up.
const JANITOR_EVERY_TICKS: u64 = 1_500;

pub use crate::store::timers::Kind;

/// Arms the escalation timers of incidents not yet armed (`timers_armed = 0`, a partial index), newest first,
/// [`ARM_BATCH`] per tick: flags them and inserts their timers in one transaction. The flag is taken with a
/// conditional `UPDATE`, so with several replicas each incident is armed by one of them; an existing timer id
/// is left alone. Incidents declared before the horizon (imported history) and settled ones get none.
async fn arm(state: &AppState, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let cfg = &state.settings.incidents;
    let horizon = now - Duration::hours(ARM_HORIZON_HOURS);
    // Most ticks have nothing to arm: find that out with one read, without taking the write lock.
    if !timers::any_unarmed(&state.db).await? {
        return Ok(());
    }
    let mut tx = state.db.begin_write().await?;
    let taken = timers::take_unarmed(&mut tx, ARM_BATCH).await?;
    if taken.is_empty() {
        tx.rollback().await?;
        return Ok(());
    }
    let mut new: Vec<timers::NewTimer> = Vec::new();
    for inc in taken {
        if inc.settled || inc.declared_at < horizon {
            continue;
        }
        let id = inc.id;
        if !inc.acknowledged && inc.p1 {
            let due = inc.declared_at + Duration::minutes(cfg.p1_ack_escalation_minutes.max(0));
            new.push((format!("p1_ack:{id}"), id.clone(), Kind::P1Ack, due));
        }
        if inc.p1 {
            let due = inc.declared_at + Duration::minutes(cfg.ic_reminder_minutes.max(0));
            new.push((
                format!("ic_reminder:{id}"),
                id.clone(),
                Kind::IcReminder,
                due,
            ));
        }
        if !inc.acknowledged {
            new.extend(super::nudges::declared_timer(cfg, &id, inc.declared_at));
        }
        let due = inc.declared_at + Duration::minutes(cfg.unresolved_escalation_minutes.max(0));
        new.push((format!("unresolved:{id}"), id, Kind::Unresolved, due));
    }
    timers::schedule_all(&state.db, &mut tx, &new, now).await?;
    tx.commit().await
}

/// One round: arm, fire what is due, run the outbox. Returns how many timers fired.
pub async fn tick(state: &Arc<AppState>) -> Result<usize, sqlx::Error> {
    let now = state.clock.now();
    arm(state, now).await?;
    if let Err(e) = super::deploy_prompt::match_deploys(state, now).await {
        tracing::warn!(error = %e, "matching deploys against open incidents failed; retried next tick");
    }
    let due = timers::due(&state.db, now).await?;
    let mut fired = 0;
    for id in due {
        match fire(state, &id, now).await {
            Ok(true) => fired += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(timer = %id, error = %e, "timer not fired; retried next tick"),
        }
    }
    outbox::kick(state);
    Ok(fired)
}

/// Ticks forever, every `incidents.timer_tick_ms`.
pub async fn run_forever(state: Arc<AppState>) {
    let every = StdDuration::from_millis(state.settings.incidents.timer_tick_ms.max(20));
    let mut n: u64 = 0;
    loop {
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "timer tick failed");
        }
        if n.is_multiple_of(JANITOR_EVERY_TICKS) {
            if let Err(e) = outbox::forget_old(&state.db, state.clock.now()).await {
                tracing::warn!(error = %e, "outbox clean-up failed");
            }
            let window = chrono::Duration::seconds(state.settings.slack.signature_tolerance_secs);
            if let Err(e) =
                crate::store::replays::forget_old(&state.db, state.clock.now(), window).await
            {
                tracing::warn!(error = %e, "clean-up of seen Slack requests failed");
            }
        }
        n = n.wrapping_add(1);
        tokio::time::sleep(every).await;
    }
}

/// Fires one timer if nobody else has; its effects commit with the claim. Returns whether this call fired it.
async fn fire(state: &Arc<AppState>, id: &str, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    let Some((incident_id, kind)) = timers::claim(&mut tx, id, now).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    let inc = incidents::load_in(&mut tx, &incident_id).await?;
    let Some(inc) = inc else {
        timers::set_outcome(&mut tx, id, "incident vanished").await?;
        tx.commit().await?;
        return Ok(true);
    };
    let status = inc.timeline.status();
    let outcome = match Kind::parse(&kind) {
        Some(Kind::P1Ack) => {
            if inc.severity == Severity::P1
                && inc.timeline.acknowledged.is_none()
                && status.is_active()
            {
                outbox::page(&mut tx, &inc.id, Escalation::Ack, id, now).await?;
                "escalated".to_string()
            } else {
                "not needed: acknowledged in time".to_string()
            }
        }
        Some(Kind::Unresolved) => {
            if status.is_active() {
                outbox::page(&mut tx, &inc.id, Escalation::Unresolved, id, now).await?;
                "escalated".to_string()
            } else {
                "not needed: resolved in time".to_string()
            }
        }
        Some(Kind::IcReminder) => {
            if inc.severity == Severity::P1 && inc.roles.ic.is_none() && status.is_active() {
                let minutes = state.settings.incidents.ic_reminder_minutes;
                let text = super::roles::reminder_line(&inc, minutes);
                let event_id = incidents::add_timeline_event(
                    &mut tx,
                    &inc.id,
                    now,
                    "ic_reminder",
                    None,
                    &text,
                )
                .await?;
                outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
                "reminded".to_string()
            } else {
                "not needed: a commander was set".to_string()
            }
        }
        Some(Kind::UpdateDue) => {
            if status.is_active() {
                let text = super::updates::reminder_line(&inc);
                let event_id = incidents::add_timeline_event(
                    &mut tx,
                    &inc.id,
                    now,
                    "update_reminder",
                    None,
                    &text,
                )
                .await?;
                outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
                "reminded".to_string()
            } else {
                "not needed: the incident is resolved".to_string()
            }
        }
        Some(Kind::FollowupDue) => super::followups::remind(&mut tx, &inc, id, now).await?,
        Some(Kind::Close) => {
            let window = phases::monitoring_window(state);
            match (status, inc.timeline.monitoring_ends_at(window)) {
                (Status::Monitoring, Some(end)) if end > now => {
                    // The resolution was corrected to a later time: wait until the window really ends.
                    timers::postpone(&mut tx, id, end).await?;
                    tx.commit().await?;
                    return Ok(false);
                }
                (Status::Monitoring, _) => {
                    let (after, event) =
                        match phases::plan(Change::Close, &inc.timeline, now, window, None) {
                            Ok(p) => p,
                            Err(why) => {
                                timers::set_outcome(&mut tx, id, &format!("not closed: {why}"))
                                    .await?;
                                tx.commit().await?;
                                return Ok(true);
                            }
                        };
                    debug_assert_eq!(event, Event::Closed);
                    if phases::write(
                        &mut tx,
                        &state.settings.incidents,
                        &inc,
                        &after,
                        &event,
                        None,
                        now,
                    )
                    .await?
                    .is_none()
                    {
                        // Changed under us (e.g. reopened this very moment): try again next tick.
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    "closed".to_string()
                }
                _ => format!(
                    "not needed: the incident is {}",
                    status.label().to_lowercase()
                ),
            }
        }
        Some(Kind::Stalled(phase)) => {
            match super::nudges::fire(state, &mut tx, &inc, phase, now).await? {
                super::nudges::Fired::Outcome(o) => o,
                super::nudges::Fired::Wait(due) => {
                    timers::postpone(&mut tx, id, due).await?;
                    tx.commit().await?;
                    return Ok(false);
                }
            }
        }
        None => format!("unknown timer kind {kind}"),
    };
    timers::set_outcome(&mut tx, id, &outcome).await?;
    tx.commit().await?;
    tracing::info!(timer = id, incident = %inc.key(), %outcome, "timer fired");
    if outcome == "closed" {
        observe_phases(&inc);
    }
    Ok(true)
}

/// Resolved for good: the phase durations go to the metrics (`incident_bot_phase_duration_seconds`).
fn observe_phases(inc: &Incident) {
    let Some(resolved) = &inc.timeline.resolved else {
        return;
    };
    let b = crate::domain::mttr::breakdown(&inc.timeline, resolved.at);
    for p in &b.phases {
        crate::observability::observe_phase(
            p.kind.as_str(),
            p.duration.num_milliseconds() as f64 / 1000.0,
        );
    }
    crate::observability::observe_phase("mttr", b.mttr.num_milliseconds() as f64 / 1000.0);
}
