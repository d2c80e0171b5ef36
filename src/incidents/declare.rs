//! Declaring an incident: one transaction stores the incident (its row is also the declaration's record: who,
//! when, what) with its per-workspace number and its first war-room step, so a declaration is either wholly
//! stored or not at all — and it is stored before Slack gets its answer, so nothing acknowledged is lost. The
//! steps then run in the background ([`super::setup`]).
//!
//! Declarations go through one [`Intake`] task per process, which stores everything that arrived together in
//! one transaction of a few multi-row statements (group commit): a burst of 200 `/incident start`s costs a
//! handful of database round trips instead of a thousand. Of the war-room steps only the first, the channel,
//! is stored — already claimed by this process, so the war room starts without another query; the steps that
//! wait for it are stored when it settles. War rooms start only once every declaration received before them
//! has been answered and the burst is over ([`Intake::quiet`]): acknowledgements go first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::setup::Runner;
use super::Incident;
use crate::db::{ms, Db};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::startup::AppState;

/// What a user asked for, already parsed.
#[derive(Debug, Clone)]
pub struct DeclareRequest {
    pub team_id: String,
    pub user_id: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    /// When impact began; defaults to the declaration time. Never after it.
    pub started_at: Option<DateTime<Utc>>,
}

/// How long the intake must have received nothing before new war rooms start (see [`Intake::quiet`]).
pub const QUIET: Duration = Duration::from_millis(2);

/// The longest a new war room is held back while declarations keep arriving.
pub const MAX_HOLD: Duration = Duration::from_millis(25);

/// Most declarations stored in one transaction.
const MAX_BATCH: usize = 200;

type Reply = oneshot::Sender<Result<Incident, String>>;

/// The per-process declaration writer (see the module doc).
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::UnboundedSender<(DeclareRequest, DateTime<Utc>, Reply)>,
    /// Declarations received so far by this process.
    received: Arc<AtomicU64>,
    /// Declarations answered so far (stored, or refused with an error).
    answered: watch::Receiver<u64>,
    /// When the latest declaration was received.
    last: Arc<Mutex<tokio::time::Instant>>,
}

impl Intake {
    /// Starts the writer. Steps are claimed for `owner` until `lease_ms` from their declaration.
    pub fn start(db: Db, owner: String, lease_ms: i64) -> Intake {
        let (tx, mut rx) = mpsc::unbounded_channel::<(DeclareRequest, DateTime<Utc>, Reply)>();
        let (answered_tx, answered) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let items: Vec<(DeclareRequest, DateTime<Utc>)> =
                    batch.iter().map(|(r, now, _)| (r.clone(), *now)).collect();
                let t0 = std::time::Instant::now();
                let stored = store_batch(&db, &items, &owner, lease_ms).await;
                tracing::debug!(
                    n = items.len(),
                    ms = t0.elapsed().as_secs_f64() * 1e3,
                    "declarations stored"
                );
                let n = batch.len() as u64;
                match stored {
                    Ok(incidents) => {
                        for ((_, _, reply), inc) in batch.into_iter().zip(incidents) {
                            let _ = reply.send(Ok(inc));
                        }
                    }
                    // One bad declaration must not fail the others: store them one by one.
                    Err(e) if batch.len() > 1 => {
                        tracing::warn!(error = %e, n = batch.len(), "batched declaration failed; storing one by one");
                        for (req, now, reply) in batch {
                            let one = store_batch(&db, &[(req, now)], &owner, lease_ms).await;
                            let _ =
                                reply.send(one.map(|mut v| v.remove(0)).map_err(|e| e.to_string()));
                        }
                    }
                    Err(e) => {
                        for (_, _, reply) in batch {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
                answered_tx.send_modify(|a| *a += n);
            }
        });
        Intake {
            tx,
            received: Arc::default(),
            answered,
            last: Arc::new(Mutex::new(tokio::time::Instant::now())),
        }
    }

    /// Waits until the intake is quiet: every declaration received so far answered, and none received for
    /// [`QUIET`] — or at most [`MAX_HOLD`] in all. A new war room waits for this before its first Slack call, so
    /// that setting up war rooms (connections, JSON, TLS: real CPU) never holds back the acknowledgement of
    /// commands still coming in: under a burst, every acknowledgement goes first. A lone declaration waits
    /// about [`QUIET`].
    pub async fn quiet(&self) {
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        let mut answered = self.answered.clone();
        loop {
            let target = self.received.load(Ordering::SeqCst);
            // An error means the writer stopped: nothing is left to wait for.
            let caught_up = answered.wait_for(|a| *a >= target);
            if tokio::time::timeout_at(deadline, caught_up).await.is_err() {
                return;
            }
            let last = self.last_received();
            let now = tokio::time::Instant::now();
            if now >= deadline || now.duration_since(last) >= QUIET {
                return;
            }
            tokio::time::sleep_until((last + QUIET).min(deadline)).await;
        }
    }

    fn last_received(&self) -> tokio::time::Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores one declaration (with whatever else arrives meanwhile); returns it once committed.
    pub async fn submit(
        &self,
        req: DeclareRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Incident> {
        let (reply, answer) = oneshot::channel();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
        self.received.fetch_add(1, Ordering::SeqCst);
        self.tx
            .send((req, now, reply))
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("could not store the incident: {e}"))
    }
}

/// Declares: stores the incident (before the caller answers Slack) and starts its war room.
#[tracing::instrument(skip_all, fields(team = %req.team_id, user = %req.user_id))]
pub async fn declare(state: &Arc<AppState>, req: DeclareRequest) -> anyhow::Result<Incident> {
    let inc = state.intake.submit(req, state.clock.now()).await?;
    Runner::kick_claimed(state, inc.clone());
    Ok(inc)
}

/// Stores declarations in one transaction; returns the incidents in the same order.
async fn store_batch(
    db: &Db,
    items: &[(DeclareRequest, DateTime<Utc>)],
    owner: &str,
    lease_ms: i64,
) -> Result<Vec<Incident>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    // Numbers: one counter bump per workspace in the batch, handed out in arrival order.
    let mut next_number: std::collections::HashMap<&str, i64> = Default::default();
    for (req, _) in items {
        if next_number.contains_key(req.team_id.as_str()) {
            continue;
        }
        let k = items
            .iter()
            .filter(|(r, _)| r.team_id == req.team_id)
            .count() as i64;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO workspace_counters (team_id, last_number) VALUES ($1, $2)
             ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + $2
             RETURNING last_number",
        )
        .bind(&req.team_id)
        .bind(k)
        .fetch_one(&mut *tx)
        .await?;
        next_number.insert(req.team_id.as_str(), last - k + 1);
    }
    let incidents: Vec<Incident> = items
        .iter()
        .map(|(req, now)| {
            let n = next_number
                .get_mut(req.team_id.as_str())
                .expect("counted above");
            let number = *n;
            *n += 1;
            let started_at = req.started_at.map(|s| s.min(*now)).unwrap_or(*now);
            Incident {
                id: uuid::Uuid::new_v4().to_string(),
                team_id: req.team_id.clone(),
                number,
                title: req.title.clone(),
                severity: req.severity,
                service: req.service.clone(),
                detection: req.detection,
                declared_by: req.user_id.clone(),
                origin_channel: req.origin_channel.clone(),
                response_url: req.response_url.clone(),
                channel_id: None,
                channel_name: None,
                card_ts: None,
                timeline: Timeline::new(started_at, *now),
                version: 0,
            }
        })
        .collect();

    db.insert_rows(
        &mut tx,
        (
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, \
             origin_channel, response_url, started_at, declared_at)",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "",
        ),
        &incidents,
        |q, inc| {
            q.bind(&inc.id)
                .bind(&inc.team_id)
                .bind(inc.number)
                .bind(&inc.title)
                .bind(inc.severity.as_str())
                .bind(&inc.service)
                .bind(inc.detection.as_str())
                .bind(&inc.declared_by)
                .bind(&inc.origin_channel)
                .bind(&inc.response_url)
                .bind(ms(inc.timeline.started_at))
                .bind(ms(inc.timeline.declared_at))
        },
    )
    .await?;
    // Only the channel step is stored, already claimed by this process: every other step depends on it and is
    // stored when it settles (see `setup::release_dependents`), which keeps a burst of declarations cheap.
    db.insert_rows(
        &mut tx,
        (
            "INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, \
             lease_until, updated_at)",
            "(?, 'channel', 'running', 1, ?, ?, ?, ?)",
            "",
        ),
        &incidents,
        |q, inc| {
            let now = ms(inc.timeline.declared_at);
            q.bind(&inc.id)
                .bind(now)
                .bind(owner)
                .bind(now + lease_ms)
                .bind(now)
        },
    )
    .await?;
    tx.commit().await?;
    Ok(incidents)
}

#[cfg(test)]
mod tests {
    use crate::incidents::steps::Step;

    #[test]
    fn the_channel_step_stored_at_declaration_is_the_only_step_that_waits_for_nothing() {
        let free: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|s| s.dependencies().is_empty())
            .collect();
        assert_eq!(free, [Step::Channel]);
    }
}
