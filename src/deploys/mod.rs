//! Deploy events: storage and the "what landed on X recently" query that the incident card, the deploy
//! questions, the MTTR summary and the digest all share.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::db::{from_ms, ms, Db};

/// One stored deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub id: String,
    pub service: String,
    pub environment: String,
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub deployed_at: DateTime<Utc>,
    pub source: String,
}

/// Production deploys to any of `services` in `[since, until]`, newest first, at most `limit`.
pub async fn recent(
    db: &Db,
    services: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let mut out = Vec::new();
    for service in services {
        let rows = sqlx::query(
            "SELECT id, service, environment, version, commit_sha, url, author, deployed_at, source
             FROM deploys
             WHERE service = $1 AND environment = 'production' AND deployed_at >= $2 AND deployed_at <= $3
             ORDER BY deployed_at DESC LIMIT $4",
        )
        .bind(service)
        .bind(ms(since))
        .bind(ms(until))
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
        for r in rows {
            out.push(Deploy {
                id: r.try_get("id")?,
                service: r.try_get("service")?,
                environment: r.try_get("environment")?,
                version: r.try_get("version")?,
                commit_sha: r.try_get("commit_sha")?,
                url: r.try_get("url")?,
                author: r.try_get("author")?,
                deployed_at: from_ms(r.try_get("deployed_at")?),
                source: r.try_get("source")?,
            });
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.deployed_at));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// A deploy to store. `id` makes re-sending harmless; without one a fresh id is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeploy {
    pub id: Option<String>,
    pub service: String,
    pub environment: String,
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub deployed_at: DateTime<Utc>,
    pub source: String,
}

/// Stores one deploy; returns false when a deploy with the same id was already stored.
pub async fn insert(db: &Db, d: &NewDeploy, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let id =
        d.id.clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let r = sqlx::query(
        "INSERT INTO deploys (id, service, environment, version, commit_sha, url, author, deployed_at, source, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(&d.service)
    .bind(&d.environment)
    .bind(&d.version)
    .bind(&d.commit_sha)
    .bind(&d.url)
    .bind(&d.author)
    .bind(ms(d.deployed_at))
    .bind(&d.source)
    .bind(ms(now))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
