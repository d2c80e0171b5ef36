//! Declaring an incident: one transaction stores the incident (its row is also the declaration's record: who,
//! when, what) with its per-workspace number and its first war-room step, so a declaration is either wholly
//! stored or not at all — and it is stored before Slack gets its answer, so nothing acknowledged is lost. The
//! steps then run in the background ([`super::setup`]).
//!
//! Declarations go through one [`Intake`] writer per process, which stores everything that arrived together in
//! one transaction of three statements fed the whole batch as JSON (group commit): a burst of 200 `/incident
//! start`s costs a handful of database round trips instead of a thousand. On SQLite the writer has a thread of
//! its own, so the burst's own HTTP requests do not hold up its round trips. Of the war-room steps only the
//! first, the channel, is stored — already claimed by this process, so the war room starts without another
//! query; the steps that wait for it are stored when it settles. War rooms are held until every declaration received before them
//! has been answered — its [`Declared`] dropped by the handler that built the acknowledgement — and the burst
//! is over ([`Intake::quiet`]), then started together: acknowledgements go first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::setup::Runner;
use super::Incident;
use crate::db::{ms, Backend, Db};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::startup::AppState;
use sqlx::any::AnyRow;
use sqlx::Row;

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

/// Most declarations stored in one transaction (each batch is bound as one JSON text per statement, about
/// 300 bytes per declaration).
const MAX_BATCH: usize = 200;

type Reply = oneshot::Sender<Result<Incident, String>>;

/// The per-process declaration writer (see the module doc).
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::UnboundedSender<(DeclareRequest, DateTime<Utc>, Reply)>,
    gate: Arc<Gate>,
}

/// Counts declarations received and answered, for [`Intake::quiet`].
#[derive(Debug)]
struct Gate {
    /// Declarations received so far by this process.
    received: AtomicU64,
    /// Declarations answered so far: acknowledged to Slack (their [`Declared`] dropped) or refused.
    answered: AtomicU64,
    /// The answered count, published only when it catches up with `received`: waking every waiting war room
    /// on each answer would cost a burst of N declarations N² wake-ups.
    caught_up: watch::Sender<u64>,
    /// When the latest declaration was received.
    last: Mutex<tokio::time::Instant>,
}

impl Gate {
    fn answer(&self) {
        let answered = self.answered.fetch_add(1, Ordering::SeqCst) + 1;
        if answered >= self.received.load(Ordering::SeqCst) {
            self.caught_up.send_if_modified(|v| {
                let newer = answered > *v;
                *v = (*v).max(answered);
                newer
            });
        }
    }
}

/// Counts one declaration as answered when dropped: held by [`Declared`] until the handler has built Slack's
/// answer, or dropped by [`Intake::submit`] on an error.
#[derive(Debug)]
struct Answer(Arc<Gate>);

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.answer();
    }
}

/// An incident just stored. Its war room is held until every declaration received before it is answered
/// ([`Intake::quiet`]), so keep this value until the acknowledgement is built and drop it then.
#[derive(Debug)]
pub struct Declared {
    pub incident: Incident,
    _answer: Answer,
}

impl std::ops::Deref for Declared {
    type Target = Incident;
    fn deref(&self) -> &Incident {
        &self.incident
    }
}

impl Intake {
    /// Starts the writer. Steps are claimed for `owner` until `lease_ms` from their declaration. Fails only if
    /// the operating system gives SQLite's writer no thread.
    pub fn start(db: Db, owner: String, lease_ms: i64) -> std::io::Result<Intake> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(DeclareRequest, DateTime<Utc>, Reply)>();
        let backend = db.backend;
        let writer = async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<(DeclareRequest, DateTime<Utc>)>, Vec<Reply>) = batch
                    .into_iter()
                    .map(|(req, now, reply)| ((req, now), reply))
                    .unzip();
                let t0 = std::time::Instant::now();
                let stored = store_batch(&db, &items, &owner, lease_ms).await;
                tracing::debug!(
                    n = items.len(),
                    ms = t0.elapsed().as_secs_f64() * 1e3,
                    "declarations stored"
                );
                match stored {
                    Ok(incidents) => {
                        for (reply, inc) in replies.into_iter().zip(incidents) {
                            let _ = reply.send(Ok(inc));
                        }
                    }
                    // One bad declaration must not fail the others: store them one by one.
                    Err(e) if items.len() > 1 => {
                        tracing::warn!(error = %e, n = items.len(), "batched declaration failed; storing one by one");
                        for (item, reply) in items.into_iter().zip(replies) {
                            let one = store_batch(&db, &[item], &owner, lease_ms).await;
                            let _ =
                                reply.send(one.map(|mut v| v.remove(0)).map_err(|e| e.to_string()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        };
        match backend {
            Backend::Sqlite => on_own_thread(writer)?,
            Backend::Postgres => drop(tokio::spawn(writer)),
        }
        Ok(Intake {
            tx,
            gate: Arc::new(Gate {
                received: AtomicU64::new(0),
                answered: AtomicU64::new(0),
                caught_up: watch::channel(0).0,
                last: Mutex::new(tokio::time::Instant::now()),
            }),
        })
    }

    /// Waits until the intake is quiet: every declaration received so far answered, and none received for
    /// [`QUIET`] — or at most [`MAX_HOLD`] in all. A new war room waits for this before its first Slack call, so
    /// that setting up war rooms (connections, JSON, TLS: real CPU) never holds back the acknowledgement of
    /// commands still coming in: under a burst, every acknowledgement goes first. A lone declaration waits
    /// about [`QUIET`].
    ///
    /// One task waits here for all the war rooms held ([`Runner::kick_claimed`]); the timer worker and the
    /// step sweeper wait here too before each round.
    pub async fn quiet(&self) {
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        let mut caught_up = self.gate.caught_up.subscribe();
        loop {
            let target = self.gate.received.load(Ordering::SeqCst);
            if self.gate.answered.load(Ordering::SeqCst) < target {
                let wait = caught_up.wait_for(|a| *a >= target);
                // An error cannot happen while `self` holds the sender.
                if tokio::time::timeout_at(deadline, wait).await.is_err() {
                    return;
                }
            }
            let last = *self.gate.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            if now >= deadline || now.duration_since(last) >= QUIET {
                return;
            }
            tokio::time::sleep_until((last + QUIET).min(deadline)).await;
        }
    }

    /// Stores one declaration (with whatever else arrives meanwhile); returns it once committed.
    pub async fn submit(
        &self,
        req: DeclareRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Declared> {
        *self.gate.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
        self.gate.received.fetch_add(1, Ordering::SeqCst);
        let answer = Answer(self.gate.clone());
        let (reply, stored) = oneshot::channel();
        self.tx
            .send((req, now, reply))
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?;
        let incident = stored
            .await
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("could not store the incident: {e}"))?;
        Ok(Declared {
            incident,
            _answer: answer,
        })
    }
}

/// Runs the SQLite writer on a thread of its own with a single-threaded runtime. Each batch is several round
/// trips to SQLite's connection thread, and on the shared runtime every reply waited in the queue behind the
/// HTTP requests of the very burst being stored: moving the writer here cut the median acknowledgement in
/// bursts of 200 from 15.5 to 11.5 ms (`incident-bot bench warroom`). PostgreSQL keeps the writer on the shared runtime: its
/// pooled sockets belong to the runtime that opened them. The thread ends when every [`Intake`] is dropped.
fn on_own_thread(
    writer: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("declare-intake".into())
        .spawn(move || runtime.block_on(writer))?;
    Ok(())
}

/// Declares: stores the incident (before the caller answers Slack) and starts its war room, which waits until
/// the returned [`Declared`] — and every other declaration received meanwhile — has been answered.
#[tracing::instrument(skip_all, fields(team = %req.team_id, user = %req.user_id))]
pub async fn declare(state: &Arc<AppState>, req: DeclareRequest) -> anyhow::Result<Declared> {
    let declared = state.intake.submit(req, state.clock.now()).await?;
    Runner::kick_claimed(state, declared.incident.clone());
    Ok(declared)
}

/// Stores declarations in one transaction; returns the incidents in the same order.
///
/// Three statements, each of one fixed text whatever the batch (so prepared once and kept), fed the batch as
/// a JSON array: bump each workspace's counter by its number of declarations (`RETURNING` the new last
/// number), insert the incidents — each number read from its counter, joined in the statement itself, minus its
/// offset from the workspace's last declaration in the batch — and insert their channel steps. Statements
/// built for each batch size (`VALUES (…), (…)` with a counter subquery per row) cost SQLite more to prepare
/// than to run. On SQLite the transaction and its three statements are one call to the connection thread;
/// PostgreSQL takes one statement per call.
async fn store_batch(
    db: &Db,
    items: &[(DeclareRequest, DateTime<Utc>)],
    owner: &str,
    lease_ms: i64,
) -> Result<Vec<Incident>, sqlx::Error> {
    // Each workspace in the batch once, in arrival order, with its number of declarations.
    let mut teams: Vec<(&str, i64)> = Vec::new();
    for (req, _) in items {
        match teams.iter_mut().find(|(t, _)| *t == req.team_id) {
            Some((_, k)) => *k += 1,
            None => teams.push((req.team_id.as_str(), 1)),
        }
    }
    // How far each declaration's number is below its workspace's new last number: arrival order.
    let mut seen: Vec<i64> = vec![0; teams.len()];
    let below_last: Vec<i64> = items
        .iter()
        .map(|(req, _)| {
            let t = teams
                .iter()
                .position(|(t, _)| *t == req.team_id)
                .expect("listed above");
            seen[t] += 1;
            teams[t].1 - seen[t]
        })
        .collect();
    let mut incidents: Vec<Incident> = items
        .iter()
        .map(|(req, now)| Incident {
            id: uuid::Uuid::new_v4().to_string(),
            team_id: req.team_id.clone(),
            number: 0,
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
            timeline: Timeline::new(req.started_at.map(|s| s.min(*now)).unwrap_or(*now), *now),
            version: 0,
        })
        .collect();

    let counters = serde_json::to_string(&teams).map_err(json_error)?;
    // One array per incident, its columns in the order the statements below read them.
    let rows: Vec<serde_json::Value> = incidents
        .iter()
        .zip(&below_last)
        .map(|(inc, below)| {
            serde_json::json!([
                inc.id,
                inc.team_id,
                below,
                inc.title,
                inc.severity.as_str(),
                inc.service,
                inc.detection.as_str(),
                inc.declared_by,
                inc.origin_channel,
                inc.response_url,
                ms(inc.timeline.started_at),
                ms(inc.timeline.declared_at),
            ])
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(json_error)?;

    let last_numbers: Vec<AnyRow> = match db.backend {
        Backend::Sqlite => {
            // The transaction travels with its statements: one trip to SQLite's connection thread per batch,
            // where `begin()` and `commit()` would make three. A failed statement stops the call inside the
            // transaction, which is then rolled back (a failure before `BEGIN` makes that a harmless error).
            let mut conn = db.pool.acquire().await?;
            let stored = sqlx::query(SQLITE_STORE)
                .bind(counters)
                .bind(rows.clone())
                .bind(owner.to_string())
                .bind(lease_ms)
                .bind(rows)
                .fetch_all(&mut *conn)
                .await;
            if stored.is_err() {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            }
            stored?
        }
        Backend::Postgres => {
            let mut tx = db.begin_write().await?;
            let numbers = sqlx::query(POSTGRES_COUNTERS)
                .bind(counters)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(POSTGRES_INCIDENTS)
                .bind(rows.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query(POSTGRES_STEPS)
                .bind(owner.to_string())
                .bind(lease_ms)
                .bind(rows)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            numbers
        }
    };

    let mut last: std::collections::HashMap<String, i64> = Default::default();
    for row in &last_numbers {
        last.insert(row.try_get("team_id")?, row.try_get("last_number")?);
    }
    for (inc, below) in incidents.iter_mut().zip(below_last) {
        inc.number = last.get(&inc.team_id).ok_or(sqlx::Error::RowNotFound)? - below;
    }
    Ok(incidents)
}

fn json_error(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

/// [`store_batch`] on SQLite, one call from `BEGIN` to `COMMIT`: the `?` are the counters (`[[team, count],
/// …]`), the incident rows, the lease owner, the lease length and the incident rows again. `WHERE true` tells
/// SQLite's parser that `ON CONFLICT` belongs to the `INSERT`, not to a join. Only the channel step is stored,
/// already claimed by this process: every other step depends on it and is stored when it settles (see
/// `setup::release_dependents`).
const SQLITE_STORE: &str = "\
BEGIN IMMEDIATE;
INSERT INTO workspace_counters (team_id, last_number)
SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + excluded.last_number
RETURNING team_id, last_number;
INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, origin_channel,
                       response_url, started_at, declared_at)
SELECT r.value ->> 0, r.value ->> 1, c.last_number - (r.value ->> 2), r.value ->> 3, r.value ->> 4,
       r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, r.value ->> 10, r.value ->> 11
FROM json_each(?) r JOIN workspace_counters c ON c.team_id = r.value ->> 1;
INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, lease_until, updated_at)
SELECT value ->> 0, 'channel', 'running', 1, value ->> 11, ?, (value ->> 11) + ?, value ->> 11 FROM json_each(?);
COMMIT";

/// [`store_batch`] on PostgreSQL: the counters.
const POSTGRES_COUNTERS: &str = "\
INSERT INTO workspace_counters (team_id, last_number)
SELECT c ->> 0, (c ->> 1)::bigint FROM json_array_elements($1::json) c
ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + excluded.last_number
RETURNING team_id, last_number";

/// [`store_batch`] on PostgreSQL: the incidents.
const POSTGRES_INCIDENTS: &str = "\
INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, origin_channel,
                       response_url, started_at, declared_at)
SELECT r ->> 0, r ->> 1, c.last_number - (r ->> 2)::bigint, r ->> 3, r ->> 4, r ->> 5, r ->> 6, r ->> 7,
       r ->> 8, r ->> 9, (r ->> 10)::bigint, (r ->> 11)::bigint
FROM json_array_elements($1::json) r JOIN workspace_counters c ON c.team_id = r ->> 1";

/// [`store_batch`] on PostgreSQL: the channel steps (see [`SQLITE_STORE`]).
const POSTGRES_STEPS: &str = "\
INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, lease_until, updated_at)
SELECT r ->> 0, 'channel', 'running', 1, (r ->> 11)::bigint, $1, (r ->> 11)::bigint + $2, (r ->> 11)::bigint
FROM json_array_elements($3::json) r";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::steps::Step;

    async fn memory_db() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    async fn intake() -> Intake {
        Intake::start(memory_db().await, "test-owner".into(), 60_000).unwrap()
    }

    /// Declares `title` through `intake` and returns it stored, not yet answered.
    async fn submitted(intake: &Intake, title: &str) -> Declared {
        intake.submit(request(title), Utc::now()).await.unwrap()
    }

    fn request(title: &str) -> DeclareRequest {
        DeclareRequest {
            team_id: "T1".into(),
            user_id: "U1".into(),
            origin_channel: None,
            response_url: None,
            title: title.into(),
            severity: Severity::P2,
            service: None,
            detection: DetectionMethod::default(),
            started_at: None,
        }
    }

    /// Whether `quiet()` returns within `within` of (real) time.
    async fn quiet_within(intake: &Intake, within: Duration) -> bool {
        tokio::time::timeout(within, intake.quiet()).await.is_ok()
    }

    #[tokio::test]
    async fn a_new_war_room_waits_until_every_declaration_received_has_been_answered() {
        let intake = intake().await;
        let first = submitted(&intake, "Checkout down").await;
        let second = submitted(&intake, "Search slow").await;
        assert_eq!((first.number, second.number), (1, 2));
        // Stored, but the handlers have not answered Slack yet: the war rooms are held back.
        assert!(!quiet_within(&intake, QUIET * 4).await);
        drop(first);
        assert!(!quiet_within(&intake, QUIET * 4).await);
        drop(second);
        assert!(quiet_within(&intake, QUIET * 4).await);
    }

    #[tokio::test]
    async fn a_war_room_is_held_back_no_longer_than_max_hold_even_if_an_answer_never_comes() {
        let intake = intake().await;
        let _never_answered = submitted(&intake, "Checkout down").await;
        let t0 = std::time::Instant::now();
        intake.quiet().await;
        assert!(t0.elapsed() >= MAX_HOLD);
    }

    #[tokio::test]
    async fn everything_waiting_for_a_quiet_intake_goes_on_once_it_is_quiet() {
        let intake = intake().await;
        let declared = submitted(&intake, "Checkout down").await;
        let waiting: Vec<_> = (0..50)
            .map(|_| {
                let intake = intake.clone();
                tokio::spawn(async move { intake.quiet().await })
            })
            .collect();
        tokio::time::sleep(QUIET * 4).await;
        assert!(waiting.iter().all(|w| !w.is_finished()));
        drop(declared);
        for w in waiting {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("every waiter goes on")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_batch_that_fails_half_way_is_rolled_back_and_the_next_one_is_stored() {
        let db = memory_db().await;
        // The incidents insert fails after the counter was bumped in the same transaction.
        sqlx::query(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON incidents WHEN NEW.title = 'boom'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let failed = store_batch(&db, &[(request("boom"), Utc::now())], "me", 1000).await;
        assert!(failed.is_err());
        let stored = store_batch(&db, &[(request("Checkout down"), Utc::now())], "me", 1000)
            .await
            .expect("the connection is not left inside the failed transaction");
        assert_eq!(
            stored[0].number, 1,
            "the failed batch's number was rolled back"
        );
        let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(incidents, 1);
    }

    #[tokio::test]
    async fn a_batch_numbers_each_workspace_in_arrival_order_after_its_earlier_incidents() {
        let db = memory_db().await;
        let in_team = |team: &str, title: &str| {
            let mut r = request(title);
            r.team_id = team.into();
            (r, Utc::now())
        };
        let first = store_batch(&db, &[in_team("T1", "a")], "me", 1000)
            .await
            .unwrap();
        assert_eq!(first[0].number, 1);
        let batch = [
            in_team("T2", "b"),
            in_team("T1", "c"),
            in_team("T2", "d"),
            in_team("T1", "e"),
            in_team("T3", "f"),
        ];
        let stored = store_batch(&db, &batch, "me", 1000).await.unwrap();
        let numbers: Vec<(&str, &str, i64)> = stored
            .iter()
            .map(|i| (i.team_id.as_str(), i.title.as_str(), i.number))
            .collect();
        assert_eq!(
            numbers,
            [
                ("T2", "b", 1),
                ("T1", "c", 2),
                ("T2", "d", 2),
                ("T1", "e", 3),
                ("T3", "f", 1)
            ]
        );
        // What was returned is what was stored.
        for inc in &stored {
            let number: i64 = sqlx::query_scalar("SELECT number FROM incidents WHERE id = $1")
                .bind(&inc.id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(number, inc.number, "{}", inc.title);
        }
        let steps: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM setup_steps WHERE step = 'channel' AND state = 'running' AND lease_owner = 'me'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(steps, 6);
    }

    #[tokio::test]
    async fn a_refused_declaration_counts_as_answered() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        // No migrations: the insert fails, and the declarer gets an error instead of an acknowledgement.
        let intake = Intake::start(db, "test-owner".into(), 60_000).unwrap();
        assert!(intake
            .submit(request("Checkout down"), Utc::now())
            .await
            .is_err());
        assert!(quiet_within(&intake, QUIET * 4).await);
    }

    #[test]
    fn the_channel_step_stored_at_declaration_is_the_only_step_that_waits_for_nothing() {
        let free: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|s| s.dependencies().is_empty())
            .collect();
        assert_eq!(free, [Step::Channel]);
    }
}
