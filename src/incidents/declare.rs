//! Declaring an incident, in two steps so that Slack gets its answer within milliseconds even under a burst:
//!
//! 1. **Acknowledged once logged.** A declaration is acknowledged once it is in the *declaration log*: one
//!    narrow row per batch of declarations stored together (group commit), written in the same transaction as
//!    the per-workspace numbers they take. Nothing acknowledged is lost: the log is durable, and every row in it
//!    becomes incidents.
//! 2. **Then made an incident.** Once the burst has been answered ([`Intake::quiet`]), each log row becomes its
//!    incident rows and their first war-room step (the channel, claimed by this process) in one transaction that
//!    also deletes the row, and the war rooms start ([`super::setup::start_declared`]). A row left by a
//!    process that died between the two steps is taken over by any replica's sweeper ([`recover`]); deleting the
//!    row in the transaction that inserts its incidents makes each declaration exactly one incident.
//!
//! Writing the log costs the database a fraction of what the incident rows with their nine indexes cost: that is
//! what the acknowledgement waits for, and why the incident rows wait for the acknowledgements instead.
//! Declarations go through one [`Intake`] writer per process, which stores everything that arrived together in
//! one transaction; on SQLite the writer has a thread of its own, so the burst's own HTTP requests do not hold up
//! its round trips to SQLite's connection thread.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot, watch};

use super::setup;
use super::Incident;
use crate::clock::Clock;
use crate::db::{from_ms, ms, Backend, Db};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::Title;
use crate::state::AppState;

/// What a user asked for, already parsed.
#[derive(Debug, Clone)]
pub struct DeclareRequest {
    pub team_id: String,
    pub user_id: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    /// Normalised at the front door ([`Title::parse`]): stored as it is.
    pub title: Title,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    /// When impact began; defaults to the declaration time. Never after it.
    pub started_at: Option<DateTime<Utc>>,
}

/// How long the intake must have received nothing before declarations become incidents and their war rooms
/// start (see [`Intake::quiet`]).
pub const QUIET: Duration = Duration::from_millis(2);

/// The longest declarations wait to become incidents while more keep arriving.
pub const MAX_HOLD: Duration = Duration::from_millis(25);

/// Most declarations in one log row, and so in one transaction that makes them incidents: a transaction
/// making 64 incidents holds SQLite's one writer for about a millisecond and a half, which is the longest a
/// declaration arriving meanwhile waits for it.
const MAX_BATCH: usize = 64;

/// A log row older than this (or than the step lease, if shorter) belongs to a process that died before making
/// it incidents, and any replica's sweeper takes it over ([`recover`]). A live process makes its rows incidents
/// within [`MAX_HOLD`] and a few milliseconds.
const ABANDONED_AFTER_MS: i64 = 5_000;

/// How long the writer waits before trying again to make a log row incidents after a database error.
const RETRY_AFTER: Duration = Duration::from_millis(200);

type Reply = oneshot::Sender<Result<Incident, String>>;

/// What the writer is asked to do.
enum Job {
    /// Log a declaration received at the given time, then answer.
    Declare(DeclareRequest, DateTime<Utc>, Reply),
    /// Make every logged declaration an incident now (at shutdown), then answer.
    Flush(oneshot::Sender<()>),
}

/// The per-process declaration writer (see the module doc).
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake").finish_non_exhaustive()
    }
}

/// What the handlers and the writer share.
struct Shared {
    gate: Gate,
    /// Where war rooms are started once their incidents are stored (set by [`Intake::start_war_rooms_for`]).
    starter: OnceLock<Starter>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("gate", &self.gate).finish()
    }
}

/// The bot whose war rooms the writer starts, and the runtime they run on (the SQLite writer's thread has a
/// runtime of its own). Weak: the bot owns its intake.
struct Starter {
    state: Weak<AppState>,
    runtime: tokio::runtime::Handle,
}

/// Counts declarations received and answered, for [`Intake::quiet`].
#[derive(Debug)]
struct Gate {
    /// Declarations received so far by this process.
    received: AtomicU64,
    /// Declarations answered so far: acknowledged to Slack (their [`Declared`] dropped) or refused.
    answered: AtomicU64,
    /// The answered count, published only when it catches up with `received`: waking every waiter on each
    /// answer would cost a burst of N declarations N² wake-ups.
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

    /// See [`Intake::quiet`]; waits until `deadline` at most.
    async fn quiet_until(&self, deadline: tokio::time::Instant) {
        let mut caught_up = self.caught_up.subscribe();
        loop {
            let target = self.received.load(Ordering::SeqCst);
            if self.answered.load(Ordering::SeqCst) < target {
                let wait = caught_up.wait_for(|a| *a >= target);
                // An error cannot happen while `self` holds the sender.
                if tokio::time::timeout_at(deadline, wait).await.is_err() {
                    return;
                }
            }
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            if now >= deadline || now.duration_since(last) >= QUIET {
                return;
            }
            tokio::time::sleep_until((last + QUIET).min(deadline)).await;
        }
    }
}

/// Counts one declaration as answered when dropped: held by [`Declared`] until the handler has built Slack's
/// answer, or dropped by [`Intake::submit`] on an error.
#[derive(Debug)]
struct Answer(Arc<Shared>);

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.gate.answer();
    }
}

/// A declaration just logged, with its number. It becomes an incident row — and its war room starts — once
/// every declaration received before it has been answered ([`Intake::quiet`]), so keep this value until the
/// acknowledgement is built and drop it then.
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
    /// Starts the writer. War-room steps are claimed for `owner` for `lease_ms` from when the incidents are
    /// stored (by `clock`). Fails only if the operating system gives SQLite's writer no thread.
    pub fn start(
        db: Db,
        owner: String,
        lease_ms: i64,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Intake> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let shared = Arc::new(Shared {
            gate: Gate {
                received: AtomicU64::new(0),
                answered: AtomicU64::new(0),
                caught_up: watch::channel(0).0,
                last: Mutex::new(tokio::time::Instant::now()),
            },
            starter: OnceLock::new(),
        });
        let backend = db.backend;
        let writer = Writer {
            db,
            owner,
            lease_ms,
            clock,
            shared: shared.clone(),
            logged: VecDeque::new(),
            retry_at: None,
        };
        match backend {
            Backend::Sqlite => on_own_thread(writer.run(rx))?,
            Backend::Postgres => drop(tokio::spawn(writer.run(rx))),
        }
        Ok(Intake { tx, shared })
    }

    /// From now on, the war rooms of declarations made incidents are started on `state` (on the runtime this
    /// is called from). Until then — in a unit test of the intake alone — incidents are stored but no war room
    /// starts.
    pub fn start_war_rooms_for(&self, state: &Arc<AppState>) {
        let _ = self.shared.starter.set(Starter {
            state: Arc::downgrade(state),
            runtime: tokio::runtime::Handle::current(),
        });
    }

    /// Waits until the intake is quiet: every declaration received so far answered, and none received for
    /// [`QUIET`] — or at most [`MAX_HOLD`] in all. The writer waits for this before it makes logged declarations
    /// incidents and starts their war rooms, and so do the timer worker and the step sweeper before each round:
    /// setting up war rooms (connections, JSON, TLS: real CPU) and background queries never hold back the
    /// acknowledgement of commands still coming in. A lone declaration waits about [`QUIET`].
    pub async fn quiet(&self) {
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        self.shared.gate.quiet_until(deadline).await
    }

    /// Logs one declaration (with whatever else arrives meanwhile); returns it, numbered, once committed.
    pub async fn submit(
        &self,
        req: DeclareRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Declared> {
        let gate = &self.shared.gate;
        *gate.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
        gate.received.fetch_add(1, Ordering::SeqCst);
        let answer = Answer(self.shared.clone());
        let (reply, stored) = oneshot::channel();
        self.tx
            .send(Job::Declare(req, now, reply))
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

    /// Makes every declaration logged by this process an incident and starts its war room, without waiting
    /// for a quiet intake (at shutdown). Returns once done, or once the writer has stopped.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

/// Runs the SQLite writer on a thread of its own with a single-threaded runtime. Each batch is a round trip to
/// SQLite's connection thread, and on the shared runtime every reply waited in the queue behind the HTTP
/// requests of the very burst being stored: moving the writer here cut the median acknowledgement in bursts of
/// 200 from 15.5 to 11.5 ms (`incident-bot bench warroom`). PostgreSQL keeps the writer on the shared runtime:
/// its pooled sockets belong to the runtime that opened them. The thread ends when every [`Intake`] is dropped.
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

/// Declares: logs the declaration (before the caller answers Slack). It becomes an incident, and its war room
/// starts, once the returned [`Declared`] — and every other declaration received meanwhile — has been answered.
#[tracing::instrument(skip_all, fields(team = %req.team_id, user = %req.user_id))]
pub async fn declare(state: &Arc<AppState>, req: DeclareRequest) -> anyhow::Result<Declared> {
    state.intake.submit(req, state.clock.now()).await
}

/// A log row: declarations acknowledged together, numbered, not yet incidents.
#[derive(Debug)]
struct Logged {
    seq: i64,
    incidents: Vec<Incident>,
    /// When this process logged it (the writer makes it incidents [`MAX_HOLD`] after this at the latest, however
    /// busy the intake); `None` for a row read back by a sweeper.
    at: Option<tokio::time::Instant>,
}

/// The writer: logs declarations as they come (first), and makes its log rows incidents when the intake is
/// quiet (then).
struct Writer {
    db: Db,
    owner: String,
    lease_ms: i64,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    /// This process's log rows not yet made incidents, oldest first.
    logged: VecDeque<Logged>,
    /// After a database error: when to try making the oldest row incidents again.
    retry_at: Option<tokio::time::Instant>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        loop {
            let job = if self.logged.is_empty() {
                rx.recv().await
            } else {
                // Declarations first: only a quiet intake lets a log row become incidents. Only the wait is
                // raced; making the incidents, once begun, is never cut short.
                tokio::select! {
                    biased;
                    job = rx.recv() => job,
                    () = self.due() => {
                        self.materialize_oldest().await;
                        continue;
                    }
                }
            };
            let Some(job) = job else { break };
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(job);
            while let Some(job) = next.take() {
                match job {
                    Job::Declare(req, at, reply) => batch.push((req, at, reply)),
                    Job::Flush(done) => flushes.push(done),
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.store(batch).await;
            }
            if !flushes.is_empty() {
                self.flush().await;
                for done in flushes {
                    let _ = done.send(());
                }
            }
        }
        // Every intake dropped: whatever was acknowledged still becomes incidents (their war rooms resume on the
        // next start, once their channel step's lease has run out).
        self.flush().await;
    }

    /// Resolves when the oldest log row may become incidents: the intake is quiet, or the row has waited
    /// [`MAX_HOLD`] — counted from when it was logged, so a steady stream of declarations cannot hold it back
    /// longer — and no retry is pending.
    async fn due(&self) {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
        let logged_at = self.logged.front().and_then(|l| l.at);
        let deadline = logged_at.unwrap_or_else(tokio::time::Instant::now) + MAX_HOLD;
        self.shared.gate.quiet_until(deadline).await;
    }

    /// Logs a batch of declarations and answers each.
    async fn store(&mut self, batch: Vec<(DeclareRequest, DateTime<Utc>, Reply)>) {
        let (items, replies): (Vec<(DeclareRequest, DateTime<Utc>)>, Vec<Reply>) = batch
            .into_iter()
            .map(|(req, at, reply)| ((req, at), reply))
            .unzip();
        let t0 = std::time::Instant::now();
        let logged = log_batch(&self.db, &items, &self.owner, ms(self.clock.now())).await;
        tracing::debug!(
            n = items.len(),
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "declarations logged"
        );
        match logged {
            Ok(logged) => {
                for (reply, inc) in replies.into_iter().zip(&logged.incidents) {
                    let _ = reply.send(Ok(inc.clone()));
                }
                self.logged.push_back(logged);
            }
            // One bad declaration must not fail the others: log them one by one.
            Err(e) if items.len() > 1 => {
                tracing::warn!(error = %e, n = items.len(), "batched declaration failed; logging one by one");
                for (item, reply) in items.into_iter().zip(replies) {
                    let now = ms(self.clock.now());
                    match log_batch(&self.db, &[item], &self.owner, now).await {
                        Ok(logged) => {
                            let _ = reply.send(Ok(logged.incidents[0].clone()));
                            self.logged.push_back(logged);
                        }
                        Err(e) => drop(reply.send(Err(e.to_string()))),
                    }
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }

    /// Makes the oldest log row incidents and starts their war rooms; after an error, tries again later.
    async fn materialize_oldest(&mut self) {
        let Some(oldest) = self.logged.front() else {
            return;
        };
        let now = self.clock.now();
        match materialize(&self.db, oldest, &self.owner, self.lease_ms, now).await {
            Ok(made) => {
                self.retry_at = None;
                let oldest = self.logged.pop_front().expect("looked at above");
                if made {
                    self.start_war_rooms(oldest.incidents);
                } else {
                    // A sweeper took the row over (this process looked dead to it): its war rooms are its.
                    tracing::info!(
                        seq = oldest.seq,
                        "declarations were made incidents by another process"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, seq = oldest.seq, "could not store declared incidents; retrying");
                self.retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Makes every log row of this process incidents now; stops at the first error (the rows are taken over by
    /// a sweeper later).
    async fn flush(&mut self) {
        while !self.logged.is_empty() {
            let before = self.logged.len();
            self.materialize_oldest().await;
            if self.logged.len() == before {
                return;
            }
        }
    }

    fn start_war_rooms(&self, incidents: Vec<Incident>) {
        let Some(starter) = self.shared.starter.get() else {
            return;
        };
        let Some(state) = starter.state.upgrade() else {
            return;
        };
        let _runtime = starter.runtime.enter();
        for inc in incidents {
            setup::start_declared(&state, inc);
        }
    }
}

/// Takes over log rows left by processes that died before making them incidents (older than
/// [`ABANDONED_AFTER_MS`], or than the lease if shorter), makes them incidents and starts their war rooms here.
/// Returns how many declarations were taken over. Called by the step sweeper.
pub async fn recover(state: &Arc<AppState>) -> Result<usize, sqlx::Error> {
    let now = state.clock.now();
    let lease_ms = state.settings.setup.lease_ms as i64;
    let abandoned = ms(now) - lease_ms.min(ABANDONED_AFTER_MS);
    let rows = sqlx::query(
        "SELECT seq, last_numbers, declarations FROM declaration_log WHERE received_at < $1 ORDER BY seq LIMIT 20",
    )
    .bind(abandoned)
    .fetch_all(&state.db.pool)
    .await?;
    let mut taken = 0;
    for row in rows {
        let logged = match parse_log_row(&row) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "a declaration log row cannot be read; left as it is");
                continue;
            }
        };
        let owner = state.worker.owner();
        if materialize(&state.db, &logged, owner, lease_ms, state.clock.now()).await? {
            tracing::warn!(
                seq = logged.seq,
                incidents = logged.incidents.len(),
                "took over declarations a stopped process had acknowledged"
            );
            taken += logged.incidents.len();
            for inc in logged.incidents {
                setup::start_declared(state, inc);
            }
        }
    }
    Ok(taken)
}

/// A declaration as the log and the incident insert carry it: a JSON array, so that SQL reads each field by
/// position. The third field is the incident number, except in the log, where it is how far the number is below
/// the workspace's last number after the batch (the numbers are not known until the batch's counters are
/// bumped, in the same call). Written from borrowed text (`Row<&str>`, no copies), read back owned
/// (`Row<String>`).
#[derive(Debug, Serialize, Deserialize)]
struct Row<S>(
    S,         // 0 id
    S,         // 1 team_id
    i64,       // 2 number (in the log: below the workspace's last number)
    S,         // 3 title
    S,         // 4 severity
    Option<S>, // 5 service
    S,         // 6 detection
    S,         // 7 declared_by
    Option<S>, // 8 origin_channel
    Option<S>, // 9 response_url
    i64,       // 10 started_at (ms)
    i64,       // 11 declared_at (ms)
);

impl<'a> Row<&'a str> {
    fn of(inc: &'a Incident, number: i64) -> Self {
        Row(
            &inc.id,
            &inc.team_id,
            number,
            &inc.title,
            inc.severity.as_str(),
            inc.service.as_deref(),
            inc.detection.as_str(),
            &inc.declared_by,
            inc.origin_channel.as_deref(),
            inc.response_url.as_deref(),
            ms(inc.timeline.started_at),
            ms(inc.timeline.declared_at),
        )
    }
}

impl Row<String> {
    fn incident(self, number: i64) -> Incident {
        Incident {
            id: self.0,
            team_id: self.1,
            number,
            title: self.3,
            severity: Severity::parse(&self.4).unwrap_or_default(),
            service: self.5,
            detection: DetectionMethod::from_stored(&self.6),
            declared_by: self.7,
            origin_channel: self.8,
            response_url: self.9,
            channel_id: None,
            channel_name: None,
            card_ts: None,
            timeline: Timeline::new(from_ms(self.10), from_ms(self.11)),
            version: 0,
        }
    }
}

/// The incidents of a log row read back (by [`recover`]).
fn parse_log_row(row: &AnyRow) -> Result<Logged, anyhow::Error> {
    let seq: i64 = row.try_get("seq")?;
    let last: HashMap<String, i64> =
        serde_json::from_str(&row.try_get::<String, _>("last_numbers")?)?;
    let rows: Vec<Row<String>> = serde_json::from_str(&row.try_get::<String, _>("declarations")?)?;
    let incidents = rows
        .into_iter()
        .map(|r| {
            let last = *last
                .get(&r.1)
                .ok_or_else(|| anyhow::anyhow!("no number for workspace {}", r.1))?;
            let number = last - r.2;
            Ok(r.incident(number))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Logged {
        seq,
        incidents,
        at: None,
    })
}

/// Logs declarations in one transaction: bumps each workspace's counter by its number of declarations and
/// stores one log row with the new last numbers; returns the row with the incidents numbered, in the same
/// order. On SQLite the transaction is one call to the connection thread; PostgreSQL takes one statement per
/// call.
async fn log_batch(
    db: &Db,
    items: &[(DeclareRequest, DateTime<Utc>)],
    owner: &str,
    now_ms: i64,
) -> Result<Logged, sqlx::Error> {
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
            title: req.title.as_str().to_string(),
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
    let rows: Vec<Row<&str>> = incidents
        .iter()
        .zip(&below_last)
        .map(|(inc, below)| Row::of(inc, *below))
        .collect();
    let rows = serde_json::to_string(&rows).map_err(json_error)?;

    let (seq, last): (i64, HashMap<String, i64>) = match db.backend {
        Backend::Sqlite => {
            // The transaction travels with its statements: one trip to SQLite's connection thread per batch.
            let mut conn = db.pool.acquire().await?;
            let logged = sqlx::query(SQLITE_LOG)
                .bind(counters)
                .bind(owner.to_string())
                .bind(now_ms)
                .bind(rows)
                .fetch_all(&mut *conn) // not fetch_one: it would stop the call at the row, before COMMIT
                .await;
            let row = match logged {
                Ok(mut rows) if rows.len() == 1 => rows.remove(0),
                Ok(_) => return Err(sqlx::Error::RowNotFound),
                Err(e) => {
                    rollback(&mut conn).await;
                    return Err(e);
                }
            };
            let last: String = row.try_get("last_numbers")?;
            (
                row.try_get("seq")?,
                serde_json::from_str(&last).map_err(json_error)?,
            )
        }
        Backend::Postgres => {
            let mut tx = db.begin_write().await?;
            let numbers = sqlx::query(POSTGRES_COUNTERS)
                .bind(counters)
                .fetch_all(&mut *tx)
                .await?;
            let mut last = HashMap::new();
            for row in &numbers {
                last.insert(row.try_get("team_id")?, row.try_get("last_number")?);
            }
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO declaration_log (owner, received_at, last_numbers, declarations)
                 VALUES ($1, $2, $3, $4) RETURNING seq",
            )
            .bind(owner.to_string())
            .bind(now_ms)
            .bind(serde_json::to_string(&last).map_err(json_error)?)
            .bind(rows)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            (seq, last)
        }
    };
    for (inc, below) in incidents.iter_mut().zip(below_last) {
        inc.number = last.get(&inc.team_id).ok_or(sqlx::Error::RowNotFound)? - below;
    }
    Ok(Logged {
        seq,
        incidents,
        at: Some(tokio::time::Instant::now()),
    })
}

/// Makes a log row incidents — its incident rows and their channel steps, claimed by `owner` until `lease_ms`
/// after `now` — and deletes the row, in one transaction. False if the row is gone: another process made it
/// incidents first (each declaration becomes exactly one incident).
async fn materialize(
    db: &Db,
    logged: &Logged,
    owner: &str,
    lease_ms: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let rows: Vec<Row<&str>> = logged
        .incidents
        .iter()
        .map(|inc| Row::of(inc, inc.number))
        .collect();
    let rows = serde_json::to_string(&rows).map_err(json_error)?;
    match db.backend {
        Backend::Sqlite => {
            let mut conn = db.pool.acquire().await?;
            let made = sqlx::query(SQLITE_MATERIALIZE)
                .bind(logged.seq)
                .bind(rows)
                .bind(owner.to_string())
                .bind(ms(now))
                .bind(lease_ms)
                .fetch_all(&mut *conn) // not fetch_optional: it would stop the call at the row, before COMMIT
                .await;
            match made {
                Ok(rows) => Ok(!rows.is_empty()),
                Err(e) => {
                    rollback(&mut conn).await;
                    Err(e)
                }
            }
        }
        Backend::Postgres => {
            let mut tx = db.begin_write().await?;
            // The row lock serializes processes taking the same row: the later one finds it gone.
            let taken = sqlx::query("DELETE FROM declaration_log WHERE seq = $1 RETURNING seq")
                .bind(logged.seq)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_none() {
                return Ok(false);
            }
            sqlx::query(POSTGRES_INCIDENTS)
                .bind(rows.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query(POSTGRES_STEPS)
                .bind(owner.to_string())
                .bind(ms(now))
                .bind(lease_ms)
                .bind(rows)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        }
    }
}

/// After a failed multi-statement call on SQLite: a statement that failed stopped the call inside its
/// transaction, so roll it back (a failure before `BEGIN` makes this a harmless error).
async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) {
    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
}

fn json_error(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

/// [`log_batch`] on SQLite, one call from `BEGIN` to `COMMIT`: `?1` the counters (`[[team, count], …]`), `?2`
/// the owner, `?3` when (ms), `?4` the declarations (a JSON array of [`Row`]s, stored as it is, never parsed
/// here). `WHERE true` tells SQLite's parser that `ON CONFLICT` belongs to the `INSERT`, not to a join.
const SQLITE_LOG: &str = "\
BEGIN IMMEDIATE;
INSERT INTO workspace_counters (team_id, last_number)
SELECT value ->> 0, value ->> 1 FROM json_each(?1) WHERE true
ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + excluded.last_number;
INSERT INTO declaration_log (owner, received_at, last_numbers, declarations)
SELECT ?2, ?3, json_group_object(team_id, last_number), ?4
FROM workspace_counters WHERE team_id IN (SELECT value ->> 0 FROM json_each(?1))
RETURNING seq, last_numbers;
COMMIT";

/// [`materialize`] on SQLite, one call from `BEGIN` to `COMMIT`: `?1` the log row, `?2` its incidents (a JSON
/// array of [`Row`]s), `?3` the lease owner, `?4` now (ms), `?5` the lease. Each insert happens only while the
/// row is still there; SQLite's one writer makes the check and the delete atomic. Returns the row's `seq` if
/// this call made it incidents, nothing if it was gone. Only the channel step is stored: every other step
/// depends on it and is stored when it settles (see `setup::release_dependents`).
const SQLITE_MATERIALIZE: &str = "\
BEGIN IMMEDIATE;
INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, origin_channel,
                       response_url, started_at, declared_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7,
       value ->> 8, value ->> 9, value ->> 10, value ->> 11
FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM declaration_log WHERE seq = ?1);
INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, lease_until, updated_at)
SELECT value ->> 0, 'channel', 'running', 1, ?4, ?3, ?4 + ?5, ?4
FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM declaration_log WHERE seq = ?1);
DELETE FROM declaration_log WHERE seq = ?1 RETURNING seq;
COMMIT";

/// [`log_batch`] on PostgreSQL: the counters.
const POSTGRES_COUNTERS: &str = "\
INSERT INTO workspace_counters (team_id, last_number)
SELECT c ->> 0, (c ->> 1)::bigint FROM json_array_elements($1::json) c
ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + excluded.last_number
RETURNING team_id, last_number";

/// [`materialize`] on PostgreSQL: the incidents.
const POSTGRES_INCIDENTS: &str = "\
INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, origin_channel,
                       response_url, started_at, declared_at)
SELECT r ->> 0, r ->> 1, (r ->> 2)::bigint, r ->> 3, r ->> 4, r ->> 5, r ->> 6, r ->> 7, r ->> 8, r ->> 9,
       (r ->> 10)::bigint, (r ->> 11)::bigint
FROM json_array_elements($1::json) r";

/// [`materialize`] on PostgreSQL: the channel steps (see [`SQLITE_MATERIALIZE`]).
const POSTGRES_STEPS: &str = "\
INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, lease_until, updated_at)
SELECT r ->> 0, 'channel', 'running', 1, $2, $1, $2 + $3, $2
FROM json_array_elements($4::json) r";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::incidents::steps::Step;

    async fn memory_db() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    async fn intake_on(db: Db) -> Intake {
        Intake::start(db, "test-owner".into(), 60_000, Arc::new(SystemClock)).unwrap()
    }

    async fn intake() -> Intake {
        intake_on(memory_db().await).await
    }

    /// Declares `title` through `intake` and returns it logged, not yet answered.
    async fn submitted(intake: &Intake, title: &str) -> Declared {
        intake.submit(request(title), Utc::now()).await.unwrap()
    }

    fn request(title: &str) -> DeclareRequest {
        DeclareRequest {
            team_id: "T1".into(),
            user_id: "U1".into(),
            origin_channel: None,
            response_url: None,
            title: Title::parse(title).expect("a title"),
            severity: Severity::P2,
            service: None,
            detection: DetectionMethod::default(),
            started_at: None,
        }
    }

    fn in_team(team: &str, title: &str) -> (DeclareRequest, DateTime<Utc>) {
        let mut r = request(title);
        r.team_id = team.into();
        (r, Utc::now())
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
    }

    /// Whether `quiet()` returns within `within` of (real) time.
    async fn quiet_within(intake: &Intake, within: Duration) -> bool {
        tokio::time::timeout(within, intake.quiet()).await.is_ok()
    }

    #[tokio::test]
    async fn the_intake_is_quiet_only_once_every_declaration_received_has_been_answered() {
        let intake = intake().await;
        let first = submitted(&intake, "Checkout down").await;
        let second = submitted(&intake, "Search slow").await;
        assert_eq!((first.number, second.number), (1, 2));
        // Logged, but the handlers have not answered Slack yet: not quiet.
        assert!(!quiet_within(&intake, QUIET * 4).await);
        drop(first);
        assert!(!quiet_within(&intake, QUIET * 4).await);
        drop(second);
        assert!(quiet_within(&intake, QUIET * 4).await);
    }

    #[tokio::test]
    async fn the_intake_is_waited_for_no_longer_than_max_hold_even_if_an_answer_never_comes() {
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
    async fn an_answered_declaration_becomes_an_incident_with_its_channel_step_claimed_by_this_process(
    ) {
        let db = memory_db().await;
        let intake = intake_on(db.clone()).await;
        let declared = submitted(&intake, "Checkout down").await;
        let id = declared.id.clone();
        drop(declared);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while count(&db, "SELECT COUNT(*) FROM incidents").await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "never made an incident"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let row = sqlx::query("SELECT number, title FROM incidents WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>("number").unwrap(), 1);
        assert_eq!(row.try_get::<String, _>("title").unwrap(), "Checkout down");
        let owner: String = sqlx::query_scalar(
            "SELECT lease_owner FROM setup_steps WHERE incident_id = $1 AND step = 'channel' AND state = 'running'",
        )
        .bind(&id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(owner, "test-owner");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 0);
    }

    #[tokio::test]
    async fn a_steady_stream_of_declarations_holds_back_the_first_ones_incident_no_longer_than_max_hold(
    ) {
        let db = memory_db().await;
        let intake = intake_on(db.clone()).await;
        let first = submitted(&intake, "First").await.id.clone();
        // A declaration every 5 ms for a second, none of them answered: the intake is never quiet, and only
        // MAX_HOLD (25 ms) since the first was logged lets it become an incident.
        let stream = {
            let intake = intake.clone();
            tokio::spawn(async move {
                let mut unanswered = Vec::new();
                for i in 0..200 {
                    unanswered.push(submitted(&intake, &format!("Outage {i}")).await);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                unanswered
            })
        };
        loop {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE id = $1")
                .bind(&first)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            if stored == 1 {
                break;
            }
            assert!(
                !stream.is_finished(),
                "the first declaration waited for the stream to end"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stream.abort();
    }

    #[tokio::test]
    async fn flushing_makes_incidents_of_declarations_still_held() {
        let db = memory_db().await;
        let intake = intake_on(db.clone()).await;
        let _held = submitted(&intake, "Checkout down").await;
        intake.flush().await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 0);
    }

    #[tokio::test]
    async fn a_logged_declaration_is_an_incident_only_once_made_one_and_made_one_exactly_once() {
        let db = memory_db().await;
        let logged = log_batch(&db, &[in_team("T1", "a")], "me", 1_000)
            .await
            .unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 1);
        assert!(materialize(&db, &logged, "me", 1_000, Utc::now())
            .await
            .unwrap());
        // A second process taking the same row over finds it gone and stores nothing.
        assert!(!materialize(&db, &logged, "other", 1_000, Utc::now())
            .await
            .unwrap());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM setup_steps").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 0);
    }

    #[tokio::test]
    async fn a_batch_that_fails_half_way_is_rolled_back_and_the_next_one_is_logged() {
        let db = memory_db().await;
        // The log insert fails after the counter was bumped in the same transaction.
        sqlx::query(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON declaration_log WHEN NEW.declarations LIKE '%boom%'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let failed = log_batch(&db, &[in_team("T1", "boom")], "me", 1_000).await;
        assert!(failed.is_err());
        let logged = log_batch(&db, &[in_team("T1", "Checkout down")], "me", 1_000)
            .await
            .expect("the connection is not left inside the failed transaction");
        assert_eq!(
            logged.incidents[0].number, 1,
            "the failed batch's number was rolled back"
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 1);
    }

    #[tokio::test]
    async fn making_incidents_that_fails_half_way_is_rolled_back_and_can_be_tried_again() {
        let db = memory_db().await;
        let logged = log_batch(&db, &[in_team("T1", "a"), in_team("T1", "b")], "me", 1_000)
            .await
            .unwrap();
        // The channel steps insert fails after the incidents were inserted in the same transaction.
        sqlx::query(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON setup_steps
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        assert!(materialize(&db, &logged, "me", 1_000, Utc::now())
            .await
            .is_err());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM declaration_log").await, 1);
        sqlx::query("DROP TRIGGER refuse")
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(materialize(&db, &logged, "me", 1_000, Utc::now())
            .await
            .unwrap());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 2);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM setup_steps").await, 2);
    }

    #[tokio::test]
    async fn a_batch_numbers_each_workspace_in_arrival_order_after_its_earlier_incidents() {
        let db = memory_db().await;
        let first = log_batch(&db, &[in_team("T1", "a")], "me", 1_000)
            .await
            .unwrap();
        assert_eq!(first.incidents[0].number, 1);
        let batch = [
            in_team("T2", "b"),
            in_team("T1", "c"),
            in_team("T2", "d"),
            in_team("T1", "e"),
            in_team("T3", "f"),
        ];
        let logged = log_batch(&db, &batch, "me", 1_000).await.unwrap();
        let numbers: Vec<(&str, &str, i64)> = logged
            .incidents
            .iter()
            .map(|i| (i.team_id.as_str(), i.title.as_str(), i.number))
            .collect();
        let expected = [
            ("T2", "b", 1),
            ("T1", "c", 2),
            ("T2", "d", 2),
            ("T1", "e", 3),
            ("T3", "f", 1),
        ];
        assert_eq!(numbers, expected);
        // The log row, read back as a sweeper would, gives the same incidents.
        let row = sqlx::query(
            "SELECT seq, last_numbers, declarations FROM declaration_log WHERE seq = $1",
        )
        .bind(logged.seq)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let read = parse_log_row(&row).unwrap();
        let read_numbers: Vec<(&str, &str, i64)> = read
            .incidents
            .iter()
            .map(|i| (i.team_id.as_str(), i.title.as_str(), i.number))
            .collect();
        assert_eq!(read_numbers, expected);
        assert_eq!(read.incidents[1].id, logged.incidents[1].id);
        // What is stored is what was returned.
        assert!(materialize(&db, &read, "me", 1_000, Utc::now())
            .await
            .unwrap());
        for inc in &logged.incidents {
            let number: i64 = sqlx::query_scalar("SELECT number FROM incidents WHERE id = $1")
                .bind(&inc.id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(number, inc.number, "{}", inc.title);
        }
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM setup_steps WHERE step = 'channel' AND state = 'running' AND lease_owner = 'me'").await,
            5
        );
    }

    #[tokio::test]
    async fn a_refused_declaration_counts_as_answered() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        // No migrations: the insert fails, and the declarer gets an error instead of an acknowledgement.
        let intake = intake_on(db).await;
        assert!(intake
            .submit(request("Checkout down"), Utc::now())
            .await
            .is_err());
        assert!(quiet_within(&intake, QUIET * 4).await);
    }

    #[test]
    fn the_channel_step_stored_with_the_incident_is_the_only_step_that_waits_for_nothing() {
        let free: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|s| s.dependencies().is_empty())
            .collect();
        assert_eq!(free, [Step::Channel]);
    }
}
