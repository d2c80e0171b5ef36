//! Running the war-room steps: concurrently, durably, exactly once.
//!
//! Each step is a row in `setup_steps` (its statements in [`crate::store::setup_steps`]). A process *claims* a due step with one conditional `UPDATE … RETURNING`
//! (atomic on SQLite and PostgreSQL, so two replicas never both get it) and holds it under a lease. Finishing a
//! step stores its result and releases the steps that waited for it; a failure is retried with exponential
//! backoff and jitter, or after Slack's `Retry-After`. A step whose owner died mid-call is claimed again once
//! its lease runs out or its process stops heartbeating ([`crate::store::lease`]), and its next attempt reconciles before acting (see [`super::steps`]). A sweeper finds
//! such steps after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::steps::{self, Failure, Need, Step};
use super::Incident;
use crate::db::{ms, Db};
use crate::state::AppState;
use crate::store::lease;
use crate::store::setup_steps as store;

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
    let ids = store::due_incidents(&state.db, state.worker.owner(), state.clock.now()).await?;
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
            match store::next_wake(&state.db, incident_id).await? {
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
    let rows = store::claim(
        &state.db,
        incident_id,
        state.worker.owner(),
        now,
        lease_until,
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, attempt)| Step::parse(&name).map(|step| (step, attempt)))
        .collect())
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
    let how = store::Completion {
        state: new_state,
        result,
        error,
        next_attempt_at: next_at,
    };
    let owner = state.worker.owner();
    if store::complete(&mut tx, incident_id, step.as_str(), owner, how, now).await?
        && new_state != "pending"
    {
        release_dependents(&state.db, &mut tx, incident_id, now).await?;
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
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut states: HashMap<Step, String> = HashMap::new();
    for (name, state) in store::states_in(tx, incident_id).await? {
        if let Some(step) = Step::parse(&name) {
            states.insert(step, state);
        }
    }
    let missing: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|step| !states.contains_key(step))
        .collect();
    let names: Vec<&'static str> = missing.iter().map(|s| s.as_str()).collect();
    store::add_waiting(db, tx, incident_id, &names, now).await?;
    for step in missing {
        states.insert(step, "waiting".to_string());
    }
    for (step, new_state) in plan_releases(&states) {
        store::release(tx, incident_id, step.as_str(), new_state, now).await?;
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

pub use crate::store::setup_steps::StepReport;

/// The stored state of each step of an incident, in step order, for `status` and the demo.
pub async fn step_report(db: &Db, incident_id: &str) -> Result<Vec<StepReport>, sqlx::Error> {
    let mut out = store::report(db, incident_id).await?;
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
