//! The one durable lease queue behind war-room setup steps (`setup_steps`), the outbox (`outbox`) and digest
//! runs (`digest_runs`).
//!
//! Each of those tables has `state` (`pending` → `running` → `done` | `failed`), `next_attempt_at`, `attempts`,
//! `lease_owner` and `lease_until`. A process claims a row with one conditional `UPDATE … RETURNING` (atomic on
//! SQLite and PostgreSQL, so two replicas never both get it) whose condition is [`claimable!`]: pending and due,
//! or running under a lease that ran out, or running for an owner that stopped heartbeating. A failure is retried
//! after [`retry_delay`]: Slack's `Retry-After` when it said one, else exponential backoff with jitter.
//!
//! Written once for every table: [`claim_sql!`] / [`bind_claim`] (claim the rows a key selects),
//! [`release_sql!`] / [`bind_release`] (store an [`Outcome`] while still holding the row) and
//! [`Outcome::failure`] (retry or give up). Digest runs use all of them; setup steps and the outbox use
//! [`claimable!`] and [`retry_delay`] in their own statements (they also set `first_attempt_at`, `result`, and
//! the outbox claims lane heads in batches).
//!
//! Liveness: every process writes a heartbeat to `process_heartbeats` every [`BEAT_EVERY`], on the wall clock
//! (a process is alive in real time, whatever clock the bot's logic runs on). Work leased by an owner whose
//! heartbeat is older than [`STALE_AFTER_MS`] is claimable by any other process at once, so a replica killed
//! mid-setup has its war rooms finished within seconds instead of after its lease. A process never takes its own
//! rows over by heartbeat, and the lease still bounds a process that is alive but hung.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::config::SetupSettings;
use crate::db::{ms, AnyQuery, Db};

/// How often a process writes its heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_millis(500);

/// A heartbeat older than this says its process is gone.
pub const STALE_AFTER_MS: i64 = 2_000;

/// The SQL condition under which a row of a lease-queue table may be claimed. Arguments, as SQL text: the
/// columns' table prefix (`""` or `"o."`), the parameter holding now (the bot's clock, epoch ms), the one holding
/// the oldest heartbeat that still counts ([`alive_since`]) and the one holding the claiming owner.
macro_rules! claimable {
    ($t:literal, $now:literal, $alive_since:literal, $me:literal) => {
        concat!(
            "((",
            $t,
            "state = 'pending' AND ",
            $t,
            "next_attempt_at <= ",
            $now,
            ") OR (",
            $t,
            "state = 'running' AND (",
            $t,
            "lease_until < ",
            $now,
            " OR (",
            $t,
            "lease_owner <> ",
            $me,
            " AND ",
            $t,
            "lease_owner NOT IN (SELECT owner FROM process_heartbeats WHERE beat_at >= ",
            $alive_since,
            ")))))"
        )
    };
}
pub(crate) use claimable;

/// The statement that claims rows of the lease-queue table `$table` selected by `$key`: `$1` is the claiming
/// owner, `$2` the lease's end, `$3` now (the bot's clock), `$4` the oldest heartbeat that counts; `$key`'s own
/// parameters start at `$5`. Bind the first four with [`bind_claim`].
macro_rules! claim_sql {
    ($table:literal, $key:literal, $returning:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3
             WHERE ",
            $key,
            " AND ",
            $crate::store::lease::claimable!("", "$3", "$4", "$1"),
            " RETURNING ",
            $returning
        )
    };
}
pub(crate) use claim_sql;

/// Binds [`claim_sql!`]'s `$1`–`$4`: `owner` claims until `now + lease_ms`.
pub fn bind_claim<'q>(
    q: AnyQuery<'q>,
    owner: &'q str,
    now: DateTime<Utc>,
    lease_ms: i64,
) -> AnyQuery<'q> {
    q.bind(owner)
        .bind(ms(now) + lease_ms)
        .bind(ms(now))
        .bind(alive_since())
}

/// The statement that releases a row of `$table` selected by `$key` with its [`Outcome`], only while `$5` holds
/// it: `$1` state, `$2` next attempt, `$3` error, `$4` now; `$key`'s own parameters start at `$6`. Bind the first
/// five with [`bind_release`].
macro_rules! release_sql {
    ($table:literal, $key:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET state = $1, next_attempt_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL,
                  updated_at = $4
             WHERE ",
            $key,
            " AND lease_owner = $5 AND state = 'running'"
        )
    };
}
pub(crate) use release_sql;

/// Binds [`release_sql!`]'s `$1`–`$5`.
pub fn bind_release<'q>(
    q: AnyQuery<'q>,
    owner: &'q str,
    outcome: &'q Outcome,
    now: DateTime<Utc>,
) -> AnyQuery<'q> {
    let (state, next_at, error) = match outcome {
        Outcome::Done => ("done", now, None),
        Outcome::Retry { at, error } => ("pending", *at, Some(error.as_str())),
        Outcome::Failed(e) => ("failed", now, Some(e.as_str())),
    };
    q.bind(state)
        .bind(ms(next_at))
        .bind(error)
        .bind(ms(now))
        .bind(owner)
}

/// What happened to an attempt at a claimed row, and so what the row becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished (`done`).
    Done,
    /// Try again at this instant (`pending`).
    Retry { at: DateTime<Utc>, error: String },
    /// Give up (`failed`).
    Failed(String),
}

impl Outcome {
    /// A failed attempt number `attempt`: retried after [`retry_delay`] (`retry_after` when the other side said
    /// one) while it is retryable and attempts remain (`policy.max_attempts`), else failed.
    pub fn failure(
        error: String,
        retryable: bool,
        retry_after: Option<Duration>,
        attempt: i64,
        policy: &SetupSettings,
        now: DateTime<Utc>,
    ) -> Outcome {
        if !retryable || attempt >= policy.max_attempts {
            return Outcome::Failed(error);
        }
        let wait = retry_delay(
            retry_after,
            policy.backoff_base_ms,
            policy.backoff_max_ms,
            attempt,
        );
        Outcome::Retry {
            at: now + chrono::Duration::milliseconds(wait.as_millis() as i64),
            error,
        }
    }
}

/// Epoch milliseconds on the wall clock.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The oldest heartbeat that still says its process is alive.
pub fn alive_since() -> i64 {
    wall_ms() - STALE_AFTER_MS
}

/// How long to wait before attempt `attempt + 1`: what the other side asked for (`Retry-After`), else
/// `base · 2^(attempt-1)` capped at `max`, with ±25 % jitter so that retries of many rows spread out.
pub fn retry_delay(
    retry_after: Option<Duration>,
    base_ms: u64,
    max_ms: u64,
    attempt: i64,
) -> Duration {
    retry_after.unwrap_or_else(|| {
        let exp = base_ms
            .saturating_mul(1u64 << (attempt.clamp(1, 20) - 1) as u32)
            .min(max_ms);
        let jitter = fastrand::f64() * 0.5 + 0.75;
        Duration::from_millis(((exp as f64) * jitter) as u64)
    })
}

/// Writes `owner`'s heartbeat now.
pub async fn beat(db: &Db, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO process_heartbeats (owner, beat_at) VALUES ($1, $2)
         ON CONFLICT (owner) DO UPDATE SET beat_at = excluded.beat_at",
    )
    .bind(owner)
    .bind(wall_ms())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Heartbeats forever; once an hour also forgets the heartbeats of processes gone for a day.
pub async fn beat_forever(db: Db, owner: String) {
    let mut n: u64 = 0;
    loop {
        if let Err(e) = beat(&db, &owner).await {
            tracing::warn!(error = %e, "heartbeat not written; other replicas may take this process's work over");
        }
        if n.is_multiple_of(7_200) {
            let day_ago = wall_ms() - 86_400_000;
            let _ = sqlx::query("DELETE FROM process_heartbeats WHERE beat_at < $1")
                .bind(day_ago)
                .execute(&db.pool)
                .await;
        }
        n = n.wrapping_add(1);
        tokio::time::sleep(BEAT_EVERY).await;
    }
}

/// Says that `owner` has stopped (after a clean shutdown), so its leftovers are taken over at once.
pub async fn retire(db: &Db, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM process_heartbeats WHERE owner = $1")
        .bind(owner)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// This process in the lease queues: the owner id it claims rows under (one per process, so its heartbeat
/// covers everything it holds), and the incidents whose war rooms it is driving right now.
#[derive(Debug)]
pub struct Worker {
    owner: String,
    active: Mutex<HashSet<String>>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            owner: uuid::Uuid::new_v4().to_string(),
            active: Mutex::default(),
        }
    }
}

impl Worker {
    /// The lease owner id of this process.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Records that this process works on `key`; false if it already does.
    pub fn start(&self, key: &str) -> bool {
        self.active().insert(key.to_string())
    }

    /// Records that this process no longer works on `key`.
    pub fn finish(&self, key: &str) {
        self.active().remove(key);
    }

    /// How many keys this process is working on right now.
    pub fn active_count(&self) -> usize {
        self.active().len()
    }

    /// Waits until this process works on nothing, at most `limit`. True when everything finished.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.active_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One draining loop at a time per process: a kick while the loop runs makes it go round once more instead of
/// starting a second one.
#[derive(Debug, Default)]
pub struct Coalesced {
    draining: AtomicBool,
    again: AtomicBool,
}

impl Coalesced {
    /// Asks for a round; true when the caller must start the loop (none is running).
    pub fn kick(&self) -> bool {
        self.again.store(true, Ordering::SeqCst);
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// Call at the start of each round.
    pub fn round(&self) {
        self.again.store(false, Ordering::SeqCst);
    }

    /// Call after each round: true when the loop must go round once more (kicked meanwhile), false when it
    /// stopped.
    pub fn again(&self) -> bool {
        if self.again.load(Ordering::SeqCst) {
            return true;
        }
        self.draining.store(false, Ordering::SeqCst);
        self.again.load(Ordering::SeqCst) && !self.draining.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..200 {
            let first = retry_delay(None, 100, 5_000, 1).as_millis();
            assert!((75..=125).contains(&first), "{first}");
            let third = retry_delay(None, 100, 5_000, 3).as_millis();
            assert!((300..=500).contains(&third), "{third}");
            assert!(retry_delay(None, 100, 5_000, 40).as_millis() <= 6_250);
        }
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let asked = Some(Duration::from_secs(7));
        assert_eq!(retry_delay(asked, 100, 5_000, 3), Duration::from_secs(7));
    }

    #[test]
    fn the_condition_names_every_part_once_per_table_prefix() {
        let c = claimable!("o.", "$3", "$5", "$1");
        assert_eq!(
            c,
            "((o.state = 'pending' AND o.next_attempt_at <= $3) OR (o.state = 'running' AND (o.lease_until < $3 \
             OR (o.lease_owner <> $1 AND o.lease_owner NOT IN (SELECT owner FROM process_heartbeats WHERE beat_at >= $5)))))"
        );
    }

    #[test]
    fn the_claim_and_release_statements_name_the_table_the_key_and_the_condition() {
        let claim = claim_sql!("t", "k = $5", "attempts");
        assert!(
            claim.starts_with("UPDATE t SET state = 'running', lease_owner = $1, lease_until = $2")
        );
        assert!(claim.contains(concat!(
            "WHERE k = $5 AND ",
            claimable!("", "$3", "$4", "$1")
        )));
        assert!(claim.ends_with(" RETURNING attempts"));
        let release = release_sql!("t", "k = $6");
        assert!(
            release.starts_with("UPDATE t SET state = $1, next_attempt_at = $2, last_error = $3")
        );
        assert!(release.ends_with("WHERE k = $6 AND lease_owner = $5 AND state = 'running'"));
    }

    #[test]
    fn a_failure_is_retried_while_attempts_remain_then_fails() {
        let policy = SetupSettings {
            max_attempts: 3,
            ..SetupSettings::default()
        };
        let now = chrono::Utc::now();
        let asked = Some(Duration::from_secs(7));
        let retry = Outcome::failure("busy".into(), true, asked, 2, &policy, now);
        assert_eq!(
            retry,
            Outcome::Retry {
                at: now + chrono::Duration::seconds(7),
                error: "busy".into()
            }
        );
        let last = Outcome::failure("busy".into(), true, asked, 3, &policy, now);
        assert_eq!(last, Outcome::Failed("busy".into()));
        let permanent = Outcome::failure("gone".into(), false, None, 1, &policy, now);
        assert_eq!(permanent, Outcome::Failed("gone".into()));
    }

    async fn memory_db() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    /// One digest run leased by `owner` until far in the future, so only liveness can free it.
    async fn leased_row(db: &Db, owner: &str) {
        sqlx::query(
            "INSERT INTO digest_runs (channel, scope, period_start, period_end, state, attempts, next_attempt_at,
                                      lease_owner, lease_until, created_at, updated_at)
             VALUES ('C1', 'all', 0, 1, 'running', 1, 0, $1, $2, 0, 0)",
        )
        .bind(owner)
        .bind(i64::MAX / 2)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    async fn claimable_by(db: &Db, me: &str) -> i64 {
        sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM digest_runs WHERE ",
            claimable!("", "$1", "$2", "$3")
        ))
        .bind(0_i64)
        .bind(alive_since())
        .bind(me)
        .fetch_one(&db.pool)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn work_of_a_process_that_stopped_heartbeating_is_claimable_by_others_only() {
        let db = memory_db().await;
        leased_row(&db, "dead").await;
        beat(&db, "dead").await.unwrap();
        assert_eq!(claimable_by(&db, "other").await, 0, "alive: leased");
        sqlx::query("UPDATE process_heartbeats SET beat_at = $1")
            .bind(wall_ms() - STALE_AFTER_MS - 1)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(claimable_by(&db, "other").await, 1, "stale: taken over");
        assert_eq!(claimable_by(&db, "dead").await, 0, "never by itself");
        retire(&db, "dead").await.unwrap();
        assert_eq!(claimable_by(&db, "other").await, 1, "retired: taken over");
    }
}
