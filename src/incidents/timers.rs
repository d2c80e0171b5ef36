//! Timers: the P1 acknowledgement escalation, the unresolved escalation, and the end of the monitoring window.
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
//! drive it with a manual clock.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::outbox::{self, Escalation};
use super::phases::{self, Change, Event};
use super::{select_incidents, Incident};
use crate::db::{from_ms, ms, Db};
use crate::domain::phase::Status;
use crate::domain::severity::Severity;
use crate::state::AppState;

/// Incidents declared longer ago than this get no escalation timers armed (e.g. imported history).
const ARM_HORIZON_HOURS: i64 = 24;
/// Most incidents whose timers one tick arms.
const ARM_BATCH: i64 = 100;
/// How often (in ticks) finished outbox rows, and the Slack requests already seen, are cleaned up.
const JANITOR_EVERY_TICKS: u64 = 1_500;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A P1 still unacknowledged: page the secondary again.
    P1Ack,
    /// Still unresolved: page the escalation target.
    Unresolved,
    /// The monitoring window is over: close the incident.
    Close,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::P1Ack => "p1_ack",
            Kind::Unresolved => "unresolved",
            Kind::Close => "close",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::P1Ack, Kind::Unresolved, Kind::Close]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Adds a timer (inside the caller's transaction); an existing one with the same id is left alone.
pub(crate) async fn schedule(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    kind: Kind,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO timers (id, incident_id, kind, due_at, fired, created_at) VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(incident_id)
    .bind(kind.as_str())
    .bind(ms(due))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// After a reopen: unless the escalation target was already paged or is still due to be, arm the unresolved
/// escalation again (due `unresolved_after` the declaration, or now if that has passed).
pub(crate) async fn rearm_unresolved(
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    version: i64,
    unresolved_after: Duration,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timers
         WHERE incident_id = $1 AND kind = 'unresolved' AND (fired = 0 OR outcome = 'escalated')",
    )
    .bind(&inc.id)
    .fetch_one(&mut *tx)
    .await?;
    if live > 0 {
        return Ok(());
    }
    let due = (inc.timeline.declared_at + unresolved_after).max(now);
    schedule(
        tx,
        &format!("unresolved:{}:{version}", inc.id),
        &inc.id,
        Kind::Unresolved,
        due,
        now,
    )
    .await
}

/// Arms the escalation timers of incidents not yet armed (`timers_armed = 0`, a partial index), newest first,
/// [`ARM_BATCH`] per tick: flags them and inserts their timers in one transaction. The flag is taken with a
/// conditional `UPDATE`, so with several replicas each incident is armed by one of them; an existing timer id
/// is left alone. Incidents declared before the horizon (imported history) and settled ones get none.
async fn arm(state: &AppState, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let cfg = &state.settings.incidents;
    let horizon = now - Duration::hours(ARM_HORIZON_HOURS);
    // Most ticks have nothing to arm: find that out with one read, without taking the write lock.
    let unarmed: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM incidents WHERE timers_armed = 0 LIMIT 1")
            .fetch_optional(&state.db.pool)
            .await?;
    if unarmed.is_none() {
        return Ok(());
    }
    let mut tx = state.db.begin_write().await?;
    let rows = sqlx::query(
        "UPDATE incidents SET timers_armed = 1
         WHERE timers_armed = 0
           AND id IN (SELECT id FROM incidents WHERE timers_armed = 0 ORDER BY declared_at DESC LIMIT $1)
         RETURNING id, severity, declared_at, acknowledged_at, resolved_at, closed_at",
    )
    .bind(ARM_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(());
    }
    let mut timers: Vec<(String, String, Kind, i64)> = Vec::new();
    for row in &rows {
        let id: String = row.try_get("id")?;
        let declared_at = from_ms(row.try_get("declared_at")?);
        let settled = row.try_get::<Option<i64>, _>("resolved_at")?.is_some()
            || row.try_get::<Option<i64>, _>("closed_at")?.is_some();
        if settled || declared_at < horizon {
            continue;
        }
        let unacknowledged = row.try_get::<Option<i64>, _>("acknowledged_at")?.is_none();
        if unacknowledged && row.try_get::<String, _>("severity")? == Severity::P1.as_str() {
            let due = declared_at + Duration::minutes(cfg.p1_ack_escalation_minutes.max(0));
            timers.push((format!("p1_ack:{id}"), id.clone(), Kind::P1Ack, ms(due)));
        }
        let due = declared_at + Duration::minutes(cfg.unresolved_escalation_minutes.max(0));
        timers.push((format!("unresolved:{id}"), id, Kind::Unresolved, ms(due)));
    }
    state
        .db
        .insert_rows(
            &mut tx,
            (
                "INSERT INTO timers (id, incident_id, kind, due_at, fired, created_at)",
                "(?, ?, ?, ?, 0, ?)",
                "ON CONFLICT (id) DO NOTHING",
            ),
            &timers,
            |q, (id, incident_id, kind, due)| {
                q.bind(id.as_str())
                    .bind(incident_id.as_str())
                    .bind(kind.as_str())
                    .bind(*due)
                    .bind(ms(now))
            },
        )
        .await?;
    tx.commit().await
}

/// One round: arm, fire what is due, run the outbox. Returns how many timers fired.
pub async fn tick(state: &Arc<AppState>) -> Result<usize, sqlx::Error> {
    let now = state.clock.now();
    arm(state, now).await?;
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM timers WHERE fired = 0 AND due_at <= $1 ORDER BY due_at LIMIT 100",
    )
    .bind(ms(now))
    .fetch_all(&state.db.pool)
    .await?;
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
    let claimed = sqlx::query(
        "UPDATE timers SET fired = 1, fired_at = $1 WHERE id = $2 AND fired = 0 AND due_at <= $1
         RETURNING incident_id, kind",
    )
    .bind(ms(now))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = claimed else {
        tx.rollback().await?;
        return Ok(false);
    };
    let incident_id: String = row.try_get("incident_id")?;
    let kind: String = row.try_get("kind")?;
    let inc = sqlx::query(select_incidents!("WHERE id = $1"))
        .bind(&incident_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(Incident::from_row)
        .transpose()?;
    let Some(inc) = inc else {
        set_outcome(&mut tx, id, "incident vanished").await?;
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
        Some(Kind::Close) => {
            let window = phases::monitoring_window(state);
            match (status, inc.timeline.monitoring_ends_at(window)) {
                (Status::Monitoring, Some(end)) if end > now => {
                    // The resolution was corrected to a later time: wait until the window really ends.
                    sqlx::query(
                        "UPDATE timers SET fired = 0, fired_at = NULL, due_at = $1 WHERE id = $2",
                    )
                    .bind(ms(end))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(false);
                }
                (Status::Monitoring, _) => {
                    let (after, event) =
                        match phases::plan(Change::Close, &inc.timeline, now, window, None) {
                            Ok(p) => p,
                            Err(why) => {
                                set_outcome(&mut tx, id, &format!("not closed: {why}")).await?;
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
        None => format!("unknown timer kind {kind}"),
    };
    set_outcome(&mut tx, id, &outcome).await?;
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

async fn set_outcome(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE timers SET outcome = $1 WHERE id = $2")
        .bind(outcome)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The incident's escalation timers for `/incident status`: `P1 ack escalation due 14:07`, `… escalated 14:07`.
pub async fn describe(db: &Db, incident_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, due_at, fired, fired_at, outcome FROM timers
         WHERE incident_id = $1 AND kind IN ('p1_ack', 'unresolved') ORDER BY due_at",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let due: i64 = r.try_get("due_at")?;
        let fired: i64 = r.try_get("fired")?;
        let fired_at: Option<i64> = r.try_get("fired_at")?;
        let outcome: Option<String> = r.try_get("outcome")?;
        let name = match kind.as_str() {
            "p1_ack" => "re-page if not acknowledged",
            _ => "page the escalation target if unresolved",
        };
        let when = crate::slack::blocks::slack_time(from_ms(fired_at.unwrap_or(due)));
        out.push(if fired == 0 {
            format!("{name} at {when}")
        } else {
            format!(
                "{name}: {} ({when})",
                outcome.unwrap_or_else(|| "fired".into())
            )
        });
    }
    Ok(out)
}
