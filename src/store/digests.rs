//! The digest's tables: `digest_runs`, one row per scheduled digest (channel, scope, period start), so that with
//! several replicas on one database each digest is posted exactly once.
//!
//! A replica first makes sure the row exists (`INSERT … ON CONFLICT DO NOTHING`), then *claims* it through the
//! lease queue ([`lease::claim_sql!`], atomic on SQLite and PostgreSQL): only a pending run that is due, or a
//! running one whose lease ran out or whose owner stopped heartbeating, can be claimed. Posting stores each
//! finished step (the message's `ts`, then the chart's file id) while holding the lease, so a take-over resumes
//! after the last stored step instead of posting twice; [`finish`] releases the run ([`lease::release_sql!`]).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{ms, Db};
use crate::digest::stats::Period;
use crate::store::lease::{self, claim_sql, release_sql, Outcome};

/// Identifies one digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub channel: String,
    pub scope: String,
    pub period_start: DateTime<Utc>,
}

impl RunKey {
    /// A short stable id, used to find the posted message again (`block_id`).
    pub fn tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(format!(
            "{}|{}|{}",
            self.channel,
            self.scope,
            ms(self.period_start)
        ));
        format!("digest-{}", hex::encode(&h[..8]))
    }
}

/// A claimed run: what earlier attempts already did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub attempts: i64,
    pub message_ts: Option<String>,
    pub chart_file_id: Option<String>,
}

/// The outcome of trying to claim a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This replica owns the run until the lease ends.
    Mine(Claimed),
    /// Posted already (or given up on).
    Finished,
    /// Another replica holds it, or a retry is not due yet.
    NotNow,
}

/// Claims the run of `key` for `owner` until `now + lease_ms`.
pub async fn claim(
    db: &Db,
    key: &RunKey,
    period: Period,
    owner: &str,
    now: DateTime<Utc>,
    lease_ms: i64,
) -> Result<Claim, sqlx::Error> {
    sqlx::query(
        "INSERT INTO digest_runs (channel, scope, period_start, period_end, state, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)
         ON CONFLICT (channel, scope, period_start) DO NOTHING",
    )
    .bind(&key.channel)
    .bind(&key.scope)
    .bind(ms(key.period_start))
    .bind(ms(period.end))
    .bind(ms(now))
    .execute(&db.pool)
    .await?;
    let row = lease::bind_claim(
        sqlx::query(claim_sql!(
            "digest_runs",
            "channel = $5 AND scope = $6 AND period_start = $7",
            "attempts, message_ts, chart_file_id"
        )),
        owner,
        now,
        lease_ms,
    )
    .bind(&key.channel)
    .bind(&key.scope)
    .bind(ms(key.period_start))
    .fetch_optional(&db.pool)
    .await?;
    if let Some(r) = row {
        return Ok(Claim::Mine(Claimed {
            attempts: r.try_get("attempts")?,
            message_ts: r.try_get("message_ts")?,
            chart_file_id: r.try_get("chart_file_id")?,
        }));
    }
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM digest_runs WHERE channel = $1 AND scope = $2 AND period_start = $3",
    )
    .bind(&key.channel)
    .bind(&key.scope)
    .bind(ms(key.period_start))
    .fetch_optional(&db.pool)
    .await?;
    Ok(match state.as_deref() {
        Some("done") | Some("failed") => Claim::Finished,
        _ => Claim::NotNow,
    })
}

/// Something a run has done that a later attempt must not do again.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// The digest message was posted with this `ts`.
    Message(&'a str),
    /// The chart was shared with this file id.
    Chart(&'a str),
}

/// Stores a run's progress (only while `owner` holds the run). False when the lease was lost.
pub async fn save(
    db: &Db,
    key: &RunKey,
    owner: &str,
    progress: Progress<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let (message_ts, chart_file_id) = match progress {
        Progress::Message(ts) => (Some(ts), None),
        Progress::Chart(id) => (None, Some(id)),
    };
    let r = sqlx::query(
        "UPDATE digest_runs
         SET message_ts = COALESCE($1, message_ts), chart_file_id = COALESCE($2, chart_file_id), updated_at = $3
         WHERE channel = $4 AND scope = $5 AND period_start = $6 AND lease_owner = $7 AND state = 'running'",
    )
    .bind(message_ts)
    .bind(chart_file_id)
    .bind(ms(now))
    .bind(&key.channel)
    .bind(&key.scope)
    .bind(ms(key.period_start))
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Releases the run with its outcome (only while `owner` holds it).
pub async fn finish(
    db: &Db,
    key: &RunKey,
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let r = lease::bind_release(
        sqlx::query(release_sql!(
            "digest_runs",
            "channel = $6 AND scope = $7 AND period_start = $8"
        )),
        owner,
        outcome,
        now,
    )
    .bind(&key.channel)
    .bind(&key.scope)
    .bind(ms(key.period_start))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A stored run, for tests and operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub channel: String,
    pub scope: String,
    pub period_start: i64,
    pub period_end: i64,
    pub state: String,
    pub attempts: i64,
    pub message_ts: Option<String>,
    pub chart_file_id: Option<String>,
    pub last_error: Option<String>,
}

/// Every stored run, oldest period first.
pub async fn list(db: &Db) -> Result<Vec<RunRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT channel, scope, period_start, period_end, state, attempts, message_ts, chart_file_id, last_error
         FROM digest_runs ORDER BY period_start, channel, scope",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RunRow {
                channel: r.try_get("channel")?,
                scope: r.try_get("scope")?,
                period_start: r.try_get("period_start")?,
                period_end: r.try_get("period_end")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                message_ts: r.try_get("message_ts")?,
                chart_file_id: r.try_get("chart_file_id")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}
