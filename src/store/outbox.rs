//! The outbox (`outbox`): Slack posts, card refreshes, summaries and pages stored in the transaction that caused
//! them, and run after the commit in per-incident lanes. Enqueueing ([`insert`], [`request`]), the claim of the
//! due head of every lane ([`claim`], on the one lease queue of [`crate::store::lease`]) and the release
//! ([`complete`]), and the reads that `/incident status` and the summary need.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::db::{ms, Db};
use crate::store::lease::{self, claimable};

/// Whether a row with this id was ever queued (inside the caller's transaction).
pub async fn exists(tx: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.is_some())
}

/// Inserts a row (inside the caller's transaction); an existing row with the same id is left alone.
pub async fn insert(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    lane: &str,
    kind: &str,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, incident_id, lane, kind, payload, state, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(incident_id)
    .bind(lane)
    .bind(kind)
    .bind(payload.to_string())
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Inserts a coalesced row, or asks an existing one to run again (bumping its generation).
pub async fn request(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    lane: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, incident_id, lane, kind, payload, state, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '{}', 'pending', $5, $5, $5)
         ON CONFLICT (id) DO UPDATE SET
             generation = outbox.generation + 1,
             state = CASE WHEN outbox.state = 'running' THEN 'running' ELSE 'pending' END,
             attempts = CASE WHEN outbox.state = 'running' THEN outbox.attempts ELSE 0 END,
             next_attempt_at = excluded.next_attempt_at,
             updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(incident_id)
    .bind(lane)
    .bind(kind)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Like [`request`], at most once per `min_interval_ms`: a row already waiting or running is left as it is; a
/// finished one runs again `min_interval_ms` after it last ran (or now if that has passed).
#[allow(clippy::too_many_arguments)]
pub async fn request_throttled(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    lane: &str,
    kind: &str,
    now: DateTime<Utc>,
    min_interval_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, incident_id, lane, kind, payload, state, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $5, $6, '{}', 'pending', $3, $3, $3)
         ON CONFLICT (id) DO UPDATE SET
             generation = outbox.generation + 1,
             state = CASE WHEN outbox.state = 'running' THEN 'running' ELSE 'pending' END,
             attempts = CASE WHEN outbox.state = 'running' THEN outbox.attempts ELSE 0 END,
             next_attempt_at = CASE WHEN outbox.state IN ('pending', 'running') THEN outbox.next_attempt_at
                                    WHEN outbox.updated_at + $4 > $3 THEN outbox.updated_at + $4
                                    ELSE $3 END",
    )
    .bind(id)
    .bind(incident_id)
    .bind(ms(now))
    .bind(min_interval_ms)
    .bind(lane)
    .bind(kind)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A claimed row.
#[derive(Debug, Clone)]
pub struct Job {
    pub seq: i64,
    pub id: String,
    pub incident_id: String,
    pub kind: String,
    pub payload: Value,
    pub attempts: i64,
    pub generation: i64,
}

/// Claims for `owner`, until `lease_until` (epoch ms), at most `batch` rows: the due head of every incident's
/// lanes.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: i64,
    batch: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        r#"UPDATE outbox
         SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3,
             first_attempt_at = COALESCE(first_attempt_at, $6)
         WHERE seq IN (
             SELECT o.seq FROM outbox o
             WHERE "#, claimable!("o.", "$3", "$5", "$1"), r#"
               AND NOT EXISTS (
                   SELECT 1 FROM outbox e
                   WHERE e.incident_id = o.incident_id AND e.lane = o.lane AND e.seq < o.seq
                     AND e.state IN ('pending', 'running'))
             ORDER BY o.seq
             LIMIT $4)
           AND "#, claimable!("", "$3", "$5", "$1"), r#"
         RETURNING seq, id, incident_id, kind, payload, attempts, generation"#),
    )
    .bind(owner)
    .bind(lease_until)
    .bind(ms(now))
    .bind(batch)
    .bind(lease::alive_since())
    .bind(lease::wall_ms())
    .fetch_all(&db.pool)
    .await?;
    let mut jobs = Vec::new();
    for r in rows {
        let payload: String = r.try_get("payload")?;
        jobs.push(Job {
            seq: r.try_get("seq")?,
            id: r.try_get("id")?,
            incident_id: r.try_get("incident_id")?,
            kind: r.try_get("kind")?,
            payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            attempts: r.try_get("attempts")?,
            generation: r.try_get("generation")?,
        });
    }
    Ok(jobs)
}

/// How a claimed row went, as stored.
#[derive(Debug, Clone)]
pub struct Completion<'a> {
    /// `done`, `pending` or `failed`.
    pub state: &'a str,
    pub result: Option<String>,
    pub error: Option<String>,
    /// Epoch ms.
    pub next_attempt_at: i64,
    /// Added to `attempts` (`-1`: the attempt does not count).
    pub attempts_delta: i64,
    /// When the row was asked to run again meanwhile: wait this long (ms) after `next_attempt_at`.
    pub throttle_ms: i64,
}

/// Releases `job` (if `owner` still holds it) with `how`; a row asked to run again meanwhile (a newer
/// generation) goes back to pending. Returns whether the lease was still held.
pub async fn complete(
    tx: &mut sqlx::AnyConnection,
    job: &Job,
    owner: &str,
    how: Completion<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE outbox
         SET state = CASE WHEN generation <> $1 AND $2 <> 'pending' THEN 'pending' ELSE $2 END,
             attempts = CASE WHEN generation <> $1 AND $2 <> 'pending' THEN 0 ELSE attempts + $3 END,
             result = COALESCE($4, result), last_error = COALESCE($5, last_error),
             next_attempt_at = CASE WHEN generation <> $1 AND $2 <> 'pending' THEN $6 + $10 ELSE $6 END,
             lease_owner = NULL, lease_until = NULL, updated_at = $7
         WHERE seq = $8 AND state = 'running' AND lease_owner = $9",
    )
    .bind(job.generation)
    .bind(how.state)
    .bind(how.attempts_delta)
    .bind(how.result)
    .bind(how.error)
    .bind(how.next_attempt_at)
    .bind(ms(now))
    .bind(job.seq)
    .bind(owner)
    .bind(how.throttle_ms)
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Rows of the incident not finished yet (pending or running).
pub async fn unfinished(db: &Db, incident_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE incident_id = $1 AND state IN ('pending', 'running')",
    )
    .bind(incident_id)
    .fetch_one(&db.pool)
    .await
}

/// A failed or struggling row.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: String,
    pub failed: bool,
    pub last_error: Option<String>,
}

/// Failed or struggling rows of the incident, oldest first.
pub async fn problems(db: &Db, incident_id: &str) -> Result<Vec<Problem>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, state, attempts, last_error FROM outbox
         WHERE incident_id = $1 AND last_error IS NOT NULL AND (state = 'failed' OR (state = 'pending' AND attempts > 0))
         ORDER BY seq",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Problem {
                kind: r.try_get("kind")?,
                failed: r.try_get::<String, _>("state")? == "failed",
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}

/// Deletes finished line and page rows last touched before `before` (summaries are kept: a correction edits
/// them).
pub async fn forget_old(db: &Db, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM outbox WHERE state IN ('done', 'failed') AND kind IN ('post', 'page') AND updated_at < $1",
    )
    .bind(ms(before))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected())
}

/// When row `seq`'s first attempt began (wall-clock epoch ms).
pub async fn first_attempt_at(db: &Db, seq: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT first_attempt_at FROM outbox WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&db.pool)
        .await
        .map(Option::flatten)
}

/// How many summary rows of the incident with the same payload were queued after row `seq`.
pub async fn newer_summaries(
    db: &Db,
    incident_id: &str,
    seq: i64,
    payload: &Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE incident_id = $1 AND kind = 'summary' AND seq > $2 AND payload = $3",
    )
    .bind(incident_id)
    .bind(seq)
    .bind(payload.to_string())
    .fetch_one(&db.pool)
    .await
}

/// A summary row that was posted: its id, payload and result (`posted <channel> <ts>`).
#[derive(Debug, Clone)]
pub struct Posted {
    pub id: String,
    pub payload: String,
    pub result: String,
}

/// The incident's posted summaries, newest first.
pub async fn posted_summaries(db: &Db, incident_id: &str) -> Result<Vec<Posted>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, payload, result FROM outbox
         WHERE incident_id = $1 AND kind = 'summary' AND state = 'done' AND result LIKE 'posted %'
         ORDER BY seq DESC",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Posted {
                id: r.try_get("id")?,
                payload: r.try_get("payload")?,
                result: r.try_get("result")?,
            })
        })
        .collect()
}

/// Whether job `id` is still waiting for its first attempt; if so it is held (on PostgreSQL its row is locked
/// until the caller's transaction ends), so the caller may still change what it will do.
pub async fn hold_pending(tx: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let held = sqlx::query(
        "UPDATE outbox SET updated_at = updated_at WHERE id = $1 AND state = 'pending' AND attempts = 0",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(held == 1)
}
