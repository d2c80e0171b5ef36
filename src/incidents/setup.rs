//! Running the war-room steps: concurrently, durably, exactly once.
//!
//! Each step is a row in `setup_steps`. A process *claims* a due step with one conditional `UPDATE … RETURNING`
//! (atomic on SQLite and PostgreSQL, so two replicas never both get it) and holds it under a lease. Finishing a
//! step stores its result and releases the steps that waited for it; a failure is retried with exponential
//! backoff and jitter, or after Slack's `Retry-After`. A step whose owner died mid-call is claimed again once
//! its lease runs out or its process stops heartbeating ([`crate::store::lease`]), and its next attempt reconciles before acting (see [`super::steps`]). A sweeper finds
//! such steps after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::steps::{self, Failure, Need, Step};
use super::Incident;
use crate::db::{ms, Db};
use crate::state::AppState;
use crate::store::lease::{self, claimable};

/// Starts driving `incident_id` unless this process already is.
pub fn kick(state: &Arc<AppState>, incident_id: &str) {
    spawn_driver(state, incident_id, None);
}

/// Starts the war room of an incident this process has just stored with its channel step claimed (see
/// [`crate::incidents::declare`]): no query before the first Slack call.
pub fn start_declared(state: &Arc<AppState>, inc: Incident) {
    let id = inc.id.clone();
    spawn_driver(state, &id, Some(inc));
}

fn spawn_driver(state: &Arc<AppState>, incident_id: &str, fresh: Option<Incident>) {
    if !state.worker.start(incident_id) {
        return;
    }
    let state = state.clone();
    let id = incident_id.to_string();
    // Every line logged while setting up this incident (steps, Slack and pager calls) carries its id.
    let span = tracing::info_span!("setup", incident_id = %id);
    tokio::spawn(
        async move {
            if let Err(e) = drive(&state, &id, fresh).await {
                tracing::warn!(error = %e, "setup driver stopped; the sweeper will resume it");
            }
            state.worker.finish(&id);
        }
        .instrument(span),
    );
}

/// Resumes every incident that has due or abandoned steps (among them the first step of a declaration whose
/// process stopped right after acknowledging it). Returns how many incidents were kicked.
pub async fn sweep(state: &Arc<AppState>) -> Result<usize, sqlx::Error> {
    let now = ms(state.clock.now());
    let ids: Vec<String> = sqlx::query_scalar(concat!(
        r#"SELECT DISTINCT incident_id FROM setup_steps
         WHERE "#,
        claimable!("", "$1", "$2", "$3"),
        r#"
         LIMIT 200"#
    ))
    .bind(now)
    .bind(lease::alive_since())
    .bind(state.worker.owner())
    .fetch_all(&state.db.pool)
    .await?;
    for id in &ids {
        kick(state, id);
    }
    Ok(ids.len())
}

/// Sweeps forever, every `setup.sweep_interval_ms`.
pub async fn sweep_forever(state: Arc<AppState>) {
    let every = Duration::from_millis(state.settings.setup.sweep_interval_ms.max(50));
    loop {
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "setup sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs the incident's steps until none is left to do by this process.
async fn drive(
    state: &Arc<AppState>,
    incident_id: &str,
    fresh: Option<Incident>,
) -> Result<(), sqlx::Error> {
    let mut running: JoinSet<()> = JoinSet::new();
    if let Some(inc) = fresh {
        // Stored here a moment ago: its channel step is already ours (attempt 1).
        let state = state.clone();
        let id = incident_id.to_string();
        running.spawn(
            async move { execute(&state, &id, Step::Channel, 1, Some(inc)).await }
                .instrument(tracing::Span::current()),
        );
        // Every other step waits for the channel: nothing to claim until it is settled.
        running.join_next().await;
    }
    loop {
        let now = state.clock.now();
        for (step, attempt) in claim(state, incident_id, now).await? {
            let state = state.clone();
            let id = incident_id.to_string();
            running.spawn(
                async move { execute(&state, &id, step, attempt, None).await }
                    .instrument(tracing::Span::current()),
            );
        }
        if running.is_empty() {
            match next_wake(&state.db, incident_id).await? {
                None => return Ok(()),
                Some(at) => {
                    let wait = (at - ms(state.clock.now())).clamp(5, 1_000) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        } else {
            running.join_next().await;
        }
    }
}

/// Claims every due step of the incident for this process.
async fn claim(
    state: &AppState,
    incident_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(Step, i64)>, sqlx::Error> {
    let lease_until = ms(now) + state.settings.setup.lease_ms as i64;
    let rows = sqlx::query(concat!(
        r#"UPDATE setup_steps
         SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3,
             first_attempt_at = COALESCE(first_attempt_at, $6)
         WHERE incident_id = $4 AND "#, claimable!("", "$3", "$5", "$1"), r#"
         RETURNING step, attempts"#),
    )
    .bind(state.worker.owner())
    .bind(lease_until)
    .bind(ms(now))
    .bind(incident_id)
    .bind(lease::alive_since())
    .bind(lease::wall_ms())
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get("step")?;
        if let Some(step) = Step::parse(&name) {
            out.push((step, r.try_get("attempts")?));
        }
    }
    Ok(out)
}

/// When something may next become claimable: a retry coming due or another owner's lease running out.
async fn next_wake(db: &Db, incident_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT state, next_attempt_at, lease_until FROM setup_steps
         WHERE incident_id = $1 AND state IN ('pending', 'running')",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    let mut wake: Option<i64> = None;
    for r in rows {
        let state: String = r.try_get("state")?;
        let at: Option<i64> = if state == "pending" {
            Some(r.try_get("next_attempt_at")?)
        } else {
            r.try_get("lease_until")?
        };
        if let Some(at) = at {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
    }
    Ok(wake)
}

/// Runs one claimed step and stores what happened.
async fn execute(
    state: &Arc<AppState>,
    incident_id: &str,
    step: Step,
    attempt: i64,
    preloaded: Option<Incident>,
) {
    let started = std::time::Instant::now();
    let loaded = match preloaded {
        Some(inc) => Ok(Some(inc)),
        None => super::load(&state.db, incident_id).await,
    };
    let outcome = match loaded {
        Ok(Some(inc)) => steps::run(state, step, &inc, attempt).await,
        Ok(None) => Err(Failure::Permanent("incident vanished".into())),
        Err(e) => Err(e.into()),
    };
    let elapsed = started.elapsed();
    let stored = record(state, incident_id, step, attempt, outcome, elapsed).await;
    if let Err(e) = stored {
        // The lease will run out and the step will be reconciled and retried.
        tracing::warn!(incident_id, step = step.as_str(), error = %e, "could not store a step's outcome");
    }
}

async fn record(
    state: &AppState,
    incident_id: &str,
    step: Step,
    attempt: i64,
    outcome: Result<String, Failure>,
    elapsed: Duration,
) -> Result<(), sqlx::Error> {
    let now = state.clock.now();
    let cfg = &state.settings.setup;
    let (new_state, result, error, next_at) = match outcome {
        Ok(result) => {
            tracing::info!(incident_id, step = step.as_str(), attempt, ms = elapsed.as_millis() as u64, %result, "step done");
            crate::observability::setup_step(step.as_str(), "done", elapsed);
            ("done", Some(result), None, ms(now))
        }
        Err(Failure::Retry { after, error }) if attempt < cfg.max_attempts => {
            let wait = lease::retry_delay(after, cfg.backoff_base_ms, cfg.backoff_max_ms, attempt);
            tracing::warn!(incident_id, step = step.as_str(), attempt, retry_in_ms = wait.as_millis() as u64, %error, "step will be retried");
            crate::observability::setup_step(step.as_str(), "retry", elapsed);
            (
                "pending",
                None,
                Some(error),
                ms(now) + wait.as_millis() as i64,
            )
        }
        Err(Failure::Retry { error, .. }) | Err(Failure::Permanent(error)) => {
            tracing::error!(incident_id, step = step.as_str(), attempt, %error, "step failed");
            crate::observability::setup_step(step.as_str(), "failed", elapsed);
            ("failed", None, Some(error), ms(now))
        }
    };
    let mut tx = state.db.pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE setup_steps
         SET state = $1, result = $2, last_error = COALESCE($3, last_error), next_attempt_at = $4,
             lease_owner = NULL, lease_until = NULL, updated_at = $5
         WHERE incident_id = $6 AND step = $7 AND state = 'running' AND lease_owner = $8",
    )
    .bind(new_state)
    .bind(result)
    .bind(error)
    .bind(next_at)
    .bind(ms(now))
    .bind(incident_id)
    .bind(step.as_str())
    .bind(state.worker.owner())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 && new_state != "pending" {
        release_dependents(&state.db, &mut tx, incident_id, ms(now)).await?;
    }
    tx.commit().await
}

/// Moves waiting steps to pending once their dependencies allow, or to skipped when a needed step failed.
/// Steps not stored yet — all but the channel, at declaration — are stored here as waiting first, so the
/// first step to settle (the channel) creates the rest in the same transaction that records it.
async fn release_dependents(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query("SELECT step, state FROM setup_steps WHERE incident_id = $1")
        .bind(incident_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut states: HashMap<Step, String> = HashMap::new();
    for r in rows {
        let name: String = r.try_get("step")?;
        if let Some(step) = Step::parse(&name) {
            states.insert(step, r.try_get("state")?);
        }
    }
    let missing: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|step| !states.contains_key(step))
        .collect();
    db.insert_rows(
        &mut *tx,
        (
            "INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, updated_at)",
            "(?, ?, 'waiting', 0, ?, ?)",
            "ON CONFLICT (incident_id, step) DO NOTHING",
        ),
        &missing,
        |q, step| q.bind(incident_id).bind(step.as_str()).bind(now).bind(now),
    )
    .await?;
    for step in missing {
        states.insert(step, "waiting".to_string());
    }
    for (step, new_state) in plan_releases(&states) {
        sqlx::query(
            "UPDATE setup_steps SET state = $1, next_attempt_at = $2, updated_at = $2
             WHERE incident_id = $3 AND step = $4 AND state = 'waiting'",
        )
        .bind(new_state)
        .bind(now)
        .bind(incident_id)
        .bind(step.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Pure: which waiting steps become `pending` or `skipped`, cascading through skips.
fn plan_releases(states: &HashMap<Step, String>) -> Vec<(Step, &'static str)> {
    let mut states: HashMap<Step, String> = states.clone();
    let mut out = Vec::new();
    loop {
        let mut changed = false;
        for step in Step::ALL {
            if states.get(&step).map(String::as_str) != Some("waiting") {
                continue;
            }
            let mut ready = true;
            let mut skip = false;
            for (dep, need) in step.dependencies() {
                let s = states.get(dep).map(String::as_str).unwrap_or("done");
                let settled = matches!(s, "done" | "failed" | "skipped");
                match need {
                    Need::Done if s == "done" => {}
                    Need::Done if settled => skip = true,
                    Need::Settled if settled => {}
                    _ => ready = false,
                }
            }
            let new_state = if skip {
                "skipped"
            } else if ready {
                "pending"
            } else {
                continue;
            };
            states.insert(step, new_state.to_string());
            out.push((step, new_state));
            changed = true;
        }
        if !changed {
            return out;
        }
    }
}

/// One step's stored state.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: String,
    pub state: String,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i64,
}

/// The stored state of each step of an incident, in step order, for `status` and the demo.
pub async fn step_report(db: &Db, incident_id: &str) -> Result<Vec<StepReport>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT step, state, result, last_error, attempts FROM setup_steps WHERE incident_id = $1",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(StepReport {
            step: r.try_get("step")?,
            state: r.try_get("state")?,
            result: r.try_get("result")?,
            last_error: r.try_get("last_error")?,
            attempts: r.try_get("attempts")?,
        });
    }
    out.sort_by_key(|s| {
        Step::parse(&s.step)
            .map(|st| Step::ALL.iter().position(|x| *x == st))
            .unwrap_or_default()
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn states(pairs: &[(Step, &str)]) -> HashMap<Step, String> {
        pairs.iter().map(|(s, st)| (*s, st.to_string())).collect()
    }

    #[test]
    fn a_created_channel_releases_every_step_but_the_pin() {
        let mut pairs: Vec<(Step, &str)> = Step::ALL.iter().map(|s| (*s, "waiting")).collect();
        pairs[0] = (Step::Channel, "done");
        let released = plan_releases(&states(&pairs));
        let pending: HashSet<Step> = released
            .iter()
            .filter(|(_, s)| *s == "pending")
            .map(|(st, _)| *st)
            .collect();
        let expected: HashSet<Step> = Step::ALL
            .into_iter()
            .filter(|s| !matches!(s, Step::Channel | Step::Pin))
            .collect();
        assert_eq!(pending, expected);
    }

    #[test]
    fn a_refused_channel_skips_channel_steps_but_still_pages_and_announces() {
        let mut pairs: Vec<(Step, &str)> = Step::ALL.iter().map(|s| (*s, "waiting")).collect();
        pairs[0] = (Step::Channel, "failed");
        let released: HashMap<Step, &str> = plan_releases(&states(&pairs)).into_iter().collect();
        for s in [
            Step::Topic,
            Step::Invite,
            Step::Card,
            Step::Bookmarks,
            Step::Pin,
        ] {
            assert_eq!(released[&s], "skipped", "{s:?}");
        }
        for s in [Step::Page, Step::Announce, Step::Notify] {
            assert_eq!(released[&s], "pending", "{s:?}");
        }
    }
}
