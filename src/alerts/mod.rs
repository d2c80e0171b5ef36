//! Alerts declare incidents (SPEC section 11).
//!
//! The front door ([`crate::http::alerts`]) reads a payload ([`intake::read`]), stores every alert in one
//! transaction ([`intake::store`]) and only then answers 202. Each stored alert is an item of the one lease queue
//! ([`crate::store::lease`]): a worker in some replica claims due alerts in batches, oldest first ([`drain`]),
//! and for each decides ([`crate::domain::alert::decide`], the routes of [`routes`]) what it does:
//! - a firing alert for an open incident of its group, fingerprint or service is attached to it ([`attach`]):
//!   one transaction per incident and batch, and a card refresh throttled to one edit per
//!   `alerts.card_min_interval_ms`;
//! - otherwise, when it declares, an incident is declared ([`declare`]) in one transaction that also takes the
//!   storm's keys (`alert_links`), so two replicas never declare twice for one storm: the second finds a key
//!   taken and attaches;
//! - an alert matching no service (or routed `notify`) is gathered into a notice for the broadcast channel
//!   ([`notify`]), at most one post a second;
//! - a resolved alert posts a timeline line, and when the incident's last firing alert resolves, asks once
//!   "Alert resolved N minutes ago — mark Resolved?" or resolves on its own where the route says so
//!   ([`resolve`]);
//! - a PagerDuty `incident.acknowledged` of a linked incident records its acknowledgement if none is recorded
//!   ([`acknowledge`]).
//!
//! Exactly once: a re-sent alert is not stored again; an alert is marked done in the transaction that does its
//! effect, so a crash leaves it claimable again (taken over when its process stops heartbeating) and a retry
//! finds the effect done or does it; Slack posts go through the outbox.

mod acknowledge;
mod attach;
mod declare;
pub mod intake;
mod notify;
mod resolve;
pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::alert::{decide, Action, Alert, Route};
use crate::state::AppState;
use crate::store::alerts::{self as stored, Claimed, Status};
use crate::store::lease::Outcome;

/// Wakes the worker (after alerts were stored), unless it is already draining: then it goes round once more.
pub fn kick(state: &Arc<AppState>) {
    if !state.alerts.kick() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            state.alerts.round();
            if let Err(e) = drain(&state).await {
                tracing::warn!(error = %e, "alert drain failed; the sweeper retries");
            }
            if !state.alerts.again() {
                break;
            }
        }
    });
}

/// Looks for due alerts (left by a crash, another replica, or a retry) and notices, every
/// `setup.sweep_interval_ms`.
pub async fn run_forever(state: Arc<AppState>) {
    let every = Duration::from_millis(state.settings.setup.sweep_interval_ms.max(50));
    loop {
        kick(&state);
        if let Err(e) = notify::post_due(&state).await {
            tracing::warn!(error = %e, "alert notices not posted; retried on the next sweep");
        }
        tokio::time::sleep(every).await;
    }
}

/// Claims and processes due alerts until none is left.
async fn drain(state: &Arc<AppState>) -> anyhow::Result<()> {
    loop {
        let now = state.clock.now();
        let batch = stored::claim(
            &state.db,
            state.worker.owner(),
            now,
            state.settings.setup.lease_ms as i64,
            state.settings.alerts.batch.max(1),
        )
        .await?;
        if batch.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = batch.iter().map(|c| c.seq).collect();
        let attempt = batch.iter().map(|c| c.attempts).max().unwrap_or(1);
        if let Err(e) = process(state, batch).await {
            // Whatever this batch did not finish is retried (rows already done are not touched).
            tracing::warn!(error = %format!("{e:#}"), "alerts will be retried");
            // An alert is never given up on: it is retried with capped backoff until Slack or the database
            // is back.
            let policy = crate::config::SetupSettings {
                max_attempts: i64::MAX,
                ..state.settings.setup.clone()
            };
            let outcome = Outcome::failure(
                format!("{e:#}"),
                true,
                None,
                attempt,
                &policy,
                state.clock.now(),
            );
            stored::release(
                &state.db,
                &seqs,
                state.worker.owner(),
                &outcome,
                state.clock.now(),
            )
            .await?;
        }
        notify::post_due(state).await?;
    }
}

/// The keys that make a storm one incident: its group, its fingerprint and its service.
fn storm_keys(alert: &Alert, service: Option<&str>) -> Vec<String> {
    let src = alert.source.as_str();
    let mut keys = Vec::new();
    if let Some(g) = &alert.group_key {
        keys.push(format!("group:{src}:{g}"));
    }
    keys.push(format!("fp:{src}:{}", alert.fingerprint));
    if let Some(s) = service {
        keys.push(format!("service:{}", s.to_ascii_lowercase()));
    }
    keys
}

/// Processes one claimed batch, in arrival order.
async fn process(state: &Arc<AppState>, batch: Vec<Claimed>) -> anyhow::Result<()> {
    let routes: Vec<Route> = routes::compile(&state.settings.alerts);
    let known = |name: &str| state.catalog.get(name).map(|s| s.name.clone());
    // Storm key → incident, learnt while going through the batch.
    let mut learnt: HashMap<String, String> = HashMap::new();
    let mut attached: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut unmatched: Vec<&Claimed> = Vec::new();
    let mut resolved: Vec<&Claimed> = Vec::new();
    let mut acknowledged: Vec<&Claimed> = Vec::new();
    for c in &batch {
        match c.status {
            Status::Resolved => {
                resolved.push(c);
                continue;
            }
            Status::Acknowledged => {
                acknowledged.push(c);
                continue;
            }
            Status::Firing => {}
        }
        let d = decide(&c.alert, &routes, known);
        if d.action == Action::Notify {
            unmatched.push(c);
            continue;
        }
        let keys = storm_keys(&c.alert, d.service.as_deref());
        let mut target = keys.iter().find_map(|k| learnt.get(k).cloned());
        if target.is_none() {
            let mut conn = state.db.pool.acquire().await?;
            target = stored::open_incident_for(&mut conn, &keys, d.service.as_deref()).await?;
        }
        if target.is_none() && d.action == Action::Declare {
            match declare::declare(state, c, &d, &keys).await? {
                declare::Declared::New(id) => {
                    for k in &keys {
                        learnt.insert(k.clone(), id.clone());
                    }
                    continue;
                }
                declare::Declared::Existing(id) => target = Some(id),
                declare::Declared::NotMine => continue,
            }
        }
        match target {
            Some(id) => {
                for k in &keys {
                    learnt.insert(k.clone(), id.clone());
                }
                attached.entry(id).or_default().push(c.seq);
            }
            // `attach` with nothing open to attach to: said in the broadcast channel.
            None => unmatched.push(c),
        }
    }
    attach::attach(state, &attached).await?;
    notify::gather(state, &unmatched).await?;
    resolve::resolve(state, &resolved, &routes).await?;
    acknowledge::acknowledge(state, &acknowledged).await?;
    Ok(())
}
