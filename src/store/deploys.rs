//! The deploy events table (`deploys`): storing events ([`insert`], [`insert_batch`]: one transaction, a
//! repeated `id` changes nothing) and the reads over it — the "what landed on X recently" query that the incident
//! card, the deploy questions, the MTTR summary and the digest all share ([`recent`]), [`recent_all`], [`production_times`] (change-failure rate), [`list`]
//! (`GET /api/v1/deploys`) and [`history_services`] (for "did you mean …?").

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{from_ms, ms, AnyQuery, Db};

pub use crate::domain::deploy::{Deploy, NewDeploy};

/// The environment [`recent`] looks at.
pub const PRODUCTION: &str = "production";

fn from_row(r: &AnyRow) -> Result<Deploy, sqlx::Error> {
    Ok(Deploy {
        id: r.try_get("id")?,
        service: r.try_get("service")?,
        environment: r.try_get("environment")?,
        version: r.try_get("version")?,
        commit_sha: r.try_get("commit_sha")?,
        url: r.try_get("url")?,
        author: r.try_get("author")?,
        deployed_at: from_ms(r.try_get("deployed_at")?),
        source: r.try_get("source")?,
    })
}

/// How many services one [`recent`] statement takes; longer lists are split (and the parts merged).
const RECENT_SLOTS: usize = 16;

/// One statement for up to 16 services: a fixed `IN` list (unused slots repeat a name), so it is prepared
/// once and served by the `(service, deployed_at)` index on both backends (one range scan per service; the
/// environment is checked on the rows in the window).
const RECENT_SQL: &str =
    "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
     FROM deploys
     WHERE service IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       AND environment = 'production' AND deployed_at >= $17 AND deployed_at <= $18
     ORDER BY deployed_at DESC LIMIT $19";

/// Production deploys to any of `services` in `[since, until]`, newest first, at most `limit`.
pub async fn recent(
    db: &Db,
    services: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let names = distinct(services);
    if names.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for chunk in names.chunks(RECENT_SLOTS) {
        let rows = recent_query(chunk, since, until, limit)
            .fetch_all(&db.pool)
            .await?;
        for r in &rows {
            out.push(from_row(r)?);
        }
    }
    Ok(newest(out, names.len(), limit))
}

/// [`recent`] inside the caller's transaction (a timer that decides and writes in one).
pub async fn recent_in(
    conn: &mut sqlx::AnyConnection,
    services: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let names = distinct(services);
    if names.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for chunk in names.chunks(RECENT_SLOTS) {
        let rows = recent_query(chunk, since, until, limit)
            .fetch_all(&mut *conn)
            .await?;
        for r in &rows {
            out.push(from_row(r)?);
        }
    }
    Ok(newest(out, names.len(), limit))
}

fn distinct(services: &[String]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::with_capacity(services.len());
    for s in services {
        if !names.contains(&s.as_str()) {
            names.push(s);
        }
    }
    names
}

/// [`RECENT_SQL`] for up to [`RECENT_SLOTS`] services.
fn recent_query<'q>(
    chunk: &[&'q str],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> AnyQuery<'q> {
    let mut q = sqlx::query(RECENT_SQL);
    for slot in 0..RECENT_SLOTS {
        q = q.bind(chunk.get(slot).copied().unwrap_or(chunk[0]));
    }
    q.bind(ms(since)).bind(ms(until)).bind(limit)
}

/// The parts of a split [`recent`] merged: newest first, at most `limit`.
fn newest(mut out: Vec<Deploy>, services: usize, limit: i64) -> Vec<Deploy> {
    if services > RECENT_SLOTS {
        out.sort_by_key(|d| std::cmp::Reverse(d.deployed_at));
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    out
}

/// Production deploys to every service in `[since, until]`, newest first, at most `limit`.
pub async fn recent_all(
    db: &Db,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
         FROM deploys
         WHERE deployed_at >= $1 AND deployed_at <= $2 AND environment = 'production'
         ORDER BY deployed_at DESC LIMIT $3",
    )
    .bind(ms(since))
    .bind(ms(until))
    .bind(limit.max(0))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Service and time of every production deploy in `[since, until)`, oldest first (the change-failure figures).
pub async fn production_times(
    db: &Db,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT service, deployed_at FROM deploys
         WHERE deployed_at >= $1 AND deployed_at < $2 AND environment = 'production'
         ORDER BY deployed_at",
    )
    .bind(ms(since))
    .bind(ms(until))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("service")?, from_ms(r.try_get("deployed_at")?))))
        .collect()
}

/// What `GET /api/v1/deploys` filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: i64,
}

/// Deploys matching `f` (any environment unless one is given), newest first.
pub async fn list(db: &Db, f: &ListFilter) -> Result<Vec<Deploy>, sqlx::Error> {
    let (since, until, limit) = (ms(f.since), ms(f.until), f.limit.max(0));
    let rows = match (&f.service, &f.environment) {
        (Some(s), Some(e)) => {
            sqlx::query(
                "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
                 FROM deploys WHERE service = $1 AND environment = $2 AND deployed_at >= $3 AND deployed_at <= $4
                 ORDER BY deployed_at DESC LIMIT $5",
            )
            .bind(s)
            .bind(e)
            .bind(since)
            .bind(until)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        (Some(s), None) => {
            sqlx::query(
                "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
                 FROM deploys WHERE service = $1 AND deployed_at >= $2 AND deployed_at <= $3
                 ORDER BY deployed_at DESC LIMIT $4",
            )
            .bind(s)
            .bind(since)
            .bind(until)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        (None, Some(e)) => {
            sqlx::query(
                "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
                 FROM deploys WHERE environment = $1 AND deployed_at >= $2 AND deployed_at <= $3
                 ORDER BY deployed_at DESC LIMIT $4",
            )
            .bind(e)
            .bind(since)
            .bind(until)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        (None, None) => {
            sqlx::query(
                "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
                 FROM deploys WHERE deployed_at >= $1 AND deployed_at <= $2
                 ORDER BY deployed_at DESC LIMIT $3",
            )
            .bind(since)
            .bind(until)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Every distinct service name in the deploy history (for "did you mean …?"), in order, at most 10,000.
/// A loose index scan: one index probe per name, not a scan of every deploy.
pub async fn history_services(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<Option<String>> = sqlx::query_scalar(
        "WITH RECURSIVE s(name) AS (
             SELECT MIN(service) FROM deploys
             UNION ALL
             SELECT (SELECT MIN(service) FROM deploys WHERE service > s.name) FROM s WHERE s.name IS NOT NULL
         )
         SELECT name FROM s WHERE name IS NOT NULL LIMIT 10000",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(names.into_iter().flatten().collect())
}

const INSERT_ONE: &str = "INSERT INTO deploys (id, service, environment, version, commit_sha, url, author, deployed_at, source, received_at,
     prompt_pending) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";

/// Stores one deploy; returns false when a deploy with the same id was already stored.
pub async fn insert(db: &Db, d: &NewDeploy, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let id = d.id.clone().unwrap_or_else(new_id);
    let r = bind_row(sqlx::query(INSERT_ONE), &id, d, now)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// What [`insert_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// The id of each event, in order (given, or made here).
    pub ids: Vec<String>,
    /// How many were new; the others had an id already stored (or repeated in the batch).
    pub stored: u64,
}

/// Stores deploys in one transaction: all of them or, on error, none. Events whose id is already stored
/// (or appears earlier in the batch) change nothing.
pub async fn insert_batch(
    db: &Db,
    deploys: &[NewDeploy],
    now: DateTime<Utc>,
) -> Result<BatchOutcome, sqlx::Error> {
    let ids: Vec<String> = deploys
        .iter()
        .map(|d| d.id.clone().unwrap_or_else(new_id))
        .collect();
    if deploys.is_empty() {
        return Ok(BatchOutcome { ids, stored: 0 });
    }
    if let ([d], [id]) = (deploys, ids.as_slice()) {
        // One statement is atomic by itself: no transaction round trips.
        let r = bind_row(sqlx::query(INSERT_ONE), id, d, now)
            .execute(&db.pool)
            .await?;
        return Ok(BatchOutcome {
            stored: r.rows_affected(),
            ids,
        });
    }
    let mut tx = db.begin_write().await?;
    let rows: Vec<(&String, &NewDeploy)> = ids.iter().zip(deploys).collect();
    let stored = db
        .insert_rows(
            &mut tx,
            (
                "INSERT INTO deploys (id, service, environment, version, commit_sha, url, author, deployed_at, \
                 source, received_at, prompt_pending)",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "ON CONFLICT (id) DO NOTHING",
            ),
            &rows,
            |q, (id, d)| bind_row(q, id, d, now),
        )
        .await?;
    tx.commit().await?;
    Ok(BatchOutcome { ids, stored })
}

fn bind_row<'q>(q: AnyQuery<'q>, id: &str, d: &NewDeploy, now: DateTime<Utc>) -> AnyQuery<'q> {
    q.bind(id.to_string())
        .bind(d.service.clone())
        .bind(d.environment.clone())
        .bind(d.version.clone())
        .bind(d.commit_sha.clone())
        .bind(d.url.clone())
        .bind(d.author.clone())
        .bind(ms(d.deployed_at))
        .bind(d.source.clone())
        .bind(ms(now))
        // A new production deploy is matched against open incidents by the timer worker (deploy prompts).
        .bind(i64::from(d.environment == PRODUCTION))
}

/// One stored deploy by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<Deploy>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
         FROM deploys WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Whether any stored deploy still waits to be matched against open incidents (one read, no write lock).
pub async fn any_prompt_pending(db: &Db) -> Result<bool, sqlx::Error> {
    let pending: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM deploys WHERE prompt_pending = 1 LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(pending.is_some())
}

/// Takes up to `limit` deploys waiting to be matched (oldest received first) and clears their mark, with a
/// conditional `UPDATE`, so with several replicas each deploy is matched by one of them (inside the caller's
/// transaction, which also queues the prompts).
pub async fn take_prompt_pending(
    tx: &mut sqlx::AnyConnection,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE deploys SET prompt_pending = 0
         WHERE prompt_pending = 1
           AND id IN (SELECT id FROM deploys WHERE prompt_pending = 1 ORDER BY received_at LIMIT $1)
         RETURNING id, service, environment, version, commit_sha, url, author, deployed_at, source",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(from_row).collect()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_query_has_one_slot_per_service_then_the_window_and_limit() {
        for n in 1..=RECENT_SLOTS + 3 {
            assert!(RECENT_SQL.contains(&format!("${n}")), "${n}");
        }
        assert!(!RECENT_SQL.contains(&format!("${}", RECENT_SLOTS + 4)));
    }
}
