//! Alerts (`alerts`), the keys that make a storm one incident (`alert_links`) and the notices of alerts that
//! matched no service (`alert_notices`).
//!
//! - [`insert`]: every alert of one request in one write transaction, `ON CONFLICT DO NOTHING` on
//!   `(source, fingerprint, status, starts_at)`, so a re-sent payload stores nothing new;
//! - [`claim`] / [`finish`] / [`release`]: the rows are items of the one lease queue ([`crate::store::lease`]):
//!   claimed in batches in arrival order, finished in the transaction that does their effect;
//! - [`open_incident_for`] / [`take_links`]: the storm keys (`group:…`, `fp:…`, `service:…`), taken inside the
//!   declaring transaction; a key whose incident is resolved is free again;
//! - [`counts`]: what the card shows; [`firing`]: whether an incident still has a firing alert;
//! - [`add_notice`] / [`claim_notice`] / [`release_notice`]: the coalesced broadcast notices.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{from_ms, from_ms_opt, ms, Db};
use crate::domain::alert::{Alert, AlertStatus, Counts, Listed, Source, LISTED};
use crate::store::lease::{self, claimable, Outcome};

/// What a stored row says happened at its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
    /// A PagerDuty `incident.acknowledged` (the fingerprint is the PagerDuty incident).
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Acknowledged => "acknowledged",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "resolved" => Status::Resolved,
            "acknowledged" => Status::Acknowledged,
            _ => Status::Firing,
        }
    }
}

impl From<AlertStatus> for Status {
    fn from(s: AlertStatus) -> Self {
        match s {
            AlertStatus::Firing => Status::Firing,
            AlertStatus::Resolved => Status::Resolved,
        }
    }
}

/// One alert to store: the alert and what it says.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub status: Status,
    pub alert: Alert,
}

impl From<Alert> for Incoming {
    fn from(alert: Alert) -> Self {
        Incoming {
            status: alert.status.into(),
            alert,
        }
    }
}

/// Stores every alert of one request in one write transaction, before the request is answered. Returns how many
/// were new (a re-sent alert is not stored twice).
pub async fn insert(db: &Db, items: &[Incoming], now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    if items.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(&Incoming, String)> = items
        .iter()
        .map(|i| {
            let labels = serde_json::to_string(&i.alert.labels).unwrap_or_else(|_| "{}".into());
            (i, labels)
        })
        .collect();
    let mut tx = db.begin_write().await?;
    let n = db
        .insert_rows(
            &mut tx,
            (
                "INSERT INTO alerts (source, fingerprint, group_key, status, title, labels, starts_at, ends_at, link,
                                     received_at, state, attempts, next_attempt_at, updated_at)",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                "ON CONFLICT (source, fingerprint, status, starts_at) DO NOTHING",
            ),
            &rows,
            |q, (i, labels)| {
                let a = &i.alert;
                q.bind(a.source.as_str())
                    .bind(a.fingerprint.as_str())
                    .bind(a.group_key.as_deref())
                    .bind(i.status.as_str())
                    .bind(a.title.as_str())
                    .bind(labels.as_str())
                    .bind(ms(a.starts_at))
                    .bind(a.ends_at.map(ms))
                    .bind(a.link.as_deref())
                    .bind(ms(now))
                    .bind(ms(now))
                    .bind(ms(now))
            },
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// A stored alert claimed by this process.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub status: Status,
    pub alert: Alert,
    pub attempts: i64,
}

/// Claims up to `limit` due alerts, oldest first, for `owner` until `lease_ms` after `now`.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "UPDATE alerts SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1,
                updated_at = $3
         WHERE seq IN (SELECT seq FROM alerts WHERE state IN ('pending', 'running') AND ",
        claimable!("", "$3", "$4", "$1"),
        " ORDER BY seq LIMIT $5) AND ",
        claimable!("", "$3", "$4", "$1"),
        " RETURNING seq, source, fingerprint, group_key, status, title, labels, starts_at, ends_at, link, attempts"
    ))
    .bind(owner)
    .bind(ms(now) + lease_ms)
    .bind(ms(now))
    .bind(lease::alive_since())
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let source: String = r.try_get("source")?;
        let status = Status::parse(&r.try_get::<String, _>("status")?);
        let labels: String = r.try_get("labels")?;
        let labels: BTreeMap<String, String> = serde_json::from_str(&labels).unwrap_or_default();
        out.push(Claimed {
            seq: r.try_get("seq")?,
            status,
            attempts: r.try_get("attempts")?,
            alert: Alert {
                source: Source::parse(&source).unwrap_or(Source::Generic),
                fingerprint: r.try_get("fingerprint")?,
                group_key: r.try_get("group_key")?,
                status: if status == Status::Resolved {
                    AlertStatus::Resolved
                } else {
                    AlertStatus::Firing
                },
                title: r.try_get("title")?,
                labels,
                starts_at: from_ms(r.try_get("starts_at")?),
                ends_at: from_ms_opt(r.try_get("ends_at")?),
                link: r.try_get("link")?,
            },
        });
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}

/// `seq IN (1, 2, 3)`: the numbers come from the database, never from a sender.
fn seq_list(seqs: &[i64]) -> String {
    let list: Vec<String> = seqs.iter().map(i64::to_string).collect();
    format!("seq IN ({})", list.join(", "))
}

/// Marks claimed alerts done (inside the transaction that did their effect), with the incident they went to and
/// what they did. Returns how many were still held by `owner`: fewer means another process took them over, and
/// the caller must roll back.
pub async fn finish(
    conn: &mut sqlx::AnyConnection,
    seqs: &[i64],
    owner: &str,
    incident_id: Option<&str>,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    for chunk in seqs.chunks(500) {
        let sql = format!(
            "UPDATE alerts SET state = 'done', incident_id = COALESCE($1, incident_id), outcome = $2,
                    lease_owner = NULL, lease_until = NULL, updated_at = $3
             WHERE {} AND lease_owner = $4 AND state = 'running'",
            seq_list(chunk)
        );
        done += sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(incident_id)
            .bind(outcome)
            .bind(ms(now))
            .bind(owner)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(done)
}

/// Gives claimed alerts back with an [`Outcome`] (retry later, or failed) while `owner` still holds them.
pub async fn release(
    db: &Db,
    seqs: &[i64],
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for chunk in seqs.chunks(500) {
        let sql = format!(
            "UPDATE alerts SET state = $1, next_attempt_at = $2, last_error = $3, lease_owner = NULL,
                    lease_until = NULL, updated_at = $4
             WHERE {} AND lease_owner = $5 AND state = 'running'",
            seq_list(chunk)
        );
        lease::bind_release(sqlx::query(sqlx::AssertSqlSafe(sql)), owner, outcome, now)
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// The open incident a storm key or the service points at: an incident declared for the same group or
/// fingerprint, else any open incident of the service (declared by an alert or by a person).
pub async fn open_incident_for(
    conn: &mut sqlx::AnyConnection,
    keys: &[String],
    service: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    for key in keys {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT l.incident_id FROM alert_links l JOIN incidents i ON i.id = l.incident_id
             WHERE l.key = $1 AND i.resolved_at IS NULL",
        )
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(service) = service else {
        return Ok(None);
    };
    sqlx::query_scalar(
        "SELECT id FROM incidents WHERE service = $1 AND resolved_at IS NULL ORDER BY declared_at LIMIT 1",
    )
    .bind(service)
    .fetch_optional(&mut *conn)
    .await
}

/// Takes the storm keys for `incident_id` inside its declaring transaction: a key is free when absent or when
/// its incident is resolved. False when an open incident holds one of them (the caller rolls back and attaches).
pub async fn take_links(
    conn: &mut sqlx::AnyConnection,
    keys: &[String],
    incident_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    for key in keys {
        let taken = sqlx::query(
            "INSERT INTO alert_links (key, incident_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET incident_id = excluded.incident_id, created_at = excluded.created_at
             WHERE alert_links.incident_id IN (SELECT id FROM incidents WHERE resolved_at IS NOT NULL)",
        )
        .bind(key)
        .bind(incident_id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The bot incident a PagerDuty incident was attached to or declared.
pub async fn incident_of_pagerduty(
    conn: &mut sqlx::AnyConnection,
    pagerduty_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT incident_id FROM alerts
         WHERE source = 'pagerduty' AND fingerprint = $1 AND status = 'firing' AND incident_id IS NOT NULL
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(pagerduty_id)
    .fetch_optional(&mut *conn)
    .await
}

/// The incident the firing alert `(source, fingerprint)` went to most recently.
pub async fn incident_of_alert(
    conn: &mut sqlx::AnyConnection,
    source: &str,
    fingerprint: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT incident_id FROM alerts
         WHERE source = $1 AND fingerprint = $2 AND status = 'firing' AND incident_id IS NOT NULL
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(source)
    .bind(fingerprint)
    .fetch_optional(&mut *conn)
    .await
}

/// How many of the incident's alerts were resolved since `since` (epoch ms), with the titles of the first `first`.
pub async fn resolved_since(
    conn: &mut sqlx::AnyConnection,
    incident_id: &str,
    since: i64,
    first: i64,
) -> Result<(i64, Vec<String>), sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM alerts
         WHERE incident_id = $1 AND status = 'resolved' AND outcome = 'resolved' AND updated_at >= $2",
    )
    .bind(incident_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let titles: Vec<String> = sqlx::query_scalar(
        "SELECT title FROM alerts
         WHERE incident_id = $1 AND status = 'resolved' AND outcome = 'resolved' AND updated_at >= $2
         ORDER BY seq LIMIT $3",
    )
    .bind(incident_id)
    .bind(since)
    .bind(first)
    .fetch_all(&mut *conn)
    .await?;
    Ok((n, titles))
}

/// How many distinct alerts of the incident are firing now (their latest processed row is firing).
pub async fn firing(conn: &mut sqlx::AnyConnection, incident_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(DISTINCT f.source || ':' || f.fingerprint) FROM alerts f
         WHERE f.incident_id = $1 AND f.status = 'firing' AND f.state = 'done'
           AND NOT EXISTS (SELECT 1 FROM alerts r
                           WHERE r.source = f.source AND r.fingerprint = f.fingerprint AND r.status = 'resolved'
                             AND r.seq > f.seq AND r.state = 'done')",
    )
    .bind(incident_id)
    .fetch_one(&mut *conn)
    .await
}

/// The alerts of an incident, for its card; `None` when it has none.
pub async fn counts(db: &Db, incident_id: &str) -> Result<Option<Counts>, sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT source || ':' || fingerprint) FROM alerts
         WHERE incident_id = $1 AND status = 'firing' AND state = 'done'",
    )
    .bind(incident_id)
    .fetch_one(&mut *conn)
    .await?;
    if total == 0 {
        return Ok(None);
    }
    let firing = firing(&mut conn, incident_id).await?;
    let rows = sqlx::query(
        "SELECT title, source, link, starts_at FROM alerts
         WHERE seq IN (SELECT MIN(seq) FROM alerts
                       WHERE incident_id = $1 AND status = 'firing' AND state = 'done'
                       GROUP BY source, fingerprint)
         ORDER BY seq LIMIT $2",
    )
    .bind(incident_id)
    .bind(LISTED as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut first = Vec::new();
    for r in rows {
        first.push(Listed {
            title: r.try_get("title")?,
            source: r.try_get("source")?,
            link: r.try_get("link")?,
            starts_at: from_ms(r.try_get("starts_at")?),
        });
    }
    Ok(Some(Counts {
        total,
        firing,
        first,
    }))
}

// ── notices of alerts that matched no service ──────────────────────────────────────────────────────────────────

/// Adds `count` unmatched alerts (with up to a few sample lines) to the pending notice, or starts one due no
/// sooner than `min_gap_ms` after the previous notice (one post per second per channel).
pub async fn add_notice(
    conn: &mut sqlx::AnyConnection,
    count: i64,
    sample: &[String],
    now: DateTime<Utc>,
    min_gap_ms: i64,
) -> Result<(), sqlx::Error> {
    let pending: Option<(i64, String)> = sqlx::query(
        "SELECT seq, sample FROM alert_notices WHERE state = 'pending' AND attempts = 0 ORDER BY seq LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| {
        Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("sample")?))
    })
    .transpose()?;
    if let Some((seq, old)) = pending {
        let mut lines: Vec<String> = serde_json::from_str(&old).unwrap_or_default();
        lines.extend(sample.iter().cloned());
        lines.truncate(LISTED);
        sqlx::query(
            "UPDATE alert_notices SET count = count + $1, sample = $2, updated_at = $3 WHERE seq = $4",
        )
        .bind(count)
        .bind(serde_json::to_string(&lines).unwrap_or_else(|_| "[]".into()))
        .bind(ms(now))
        .bind(seq)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(next_attempt_at) FROM alert_notices")
        .fetch_one(&mut *conn)
        .await?;
    let due = last.map_or(ms(now), |l| (l + min_gap_ms).max(ms(now)));
    let mut lines = sample.to_vec();
    lines.truncate(LISTED);
    sqlx::query(
        "INSERT INTO alert_notices (count, sample, state, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $4, $4)",
    )
    .bind(count)
    .bind(serde_json::to_string(&lines).unwrap_or_else(|_| "[]".into()))
    .bind(due)
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A claimed notice.
#[derive(Debug, Clone)]
pub struct Notice {
    pub seq: i64,
    pub count: i64,
    pub sample: Vec<String>,
    pub attempts: i64,
    /// When the first attempt began (wall clock), to look for a post an interrupted attempt made.
    pub first_attempt_at: Option<i64>,
}

/// Claims the oldest due notice.
pub async fn claim_notice(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_ms: i64,
) -> Result<Option<Notice>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE alert_notices SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1,
                updated_at = $3, first_attempt_at = COALESCE(first_attempt_at, $5)
         WHERE seq IN (SELECT seq FROM alert_notices WHERE state IN ('pending', 'running') AND ",
        claimable!("", "$3", "$4", "$1"),
        " ORDER BY seq LIMIT 1) AND ",
        claimable!("", "$3", "$4", "$1"),
        " RETURNING seq, count, sample, attempts, first_attempt_at"
    ))
    .bind(owner)
    .bind(ms(now) + lease_ms)
    .bind(ms(now))
    .bind(lease::alive_since())
    .bind(lease::wall_ms())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        let sample: String = r.try_get("sample")?;
        Ok(Notice {
            seq: r.try_get("seq")?,
            count: r.try_get("count")?,
            sample: serde_json::from_str(&sample).unwrap_or_default(),
            attempts: r.try_get("attempts")?,
            first_attempt_at: r.try_get("first_attempt_at")?,
        })
    })
    .transpose()
}

/// Stores how a notice went, while `owner` holds it.
pub async fn release_notice(
    db: &Db,
    seq: i64,
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    lease::bind_release(
        sqlx::query(lease::release_sql!("alert_notices", "seq = $6")),
        owner,
        outcome,
        now,
    )
    .bind(seq)
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn memory_db() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn alert(fp: &str, status: AlertStatus) -> Incoming {
        Alert {
            source: Source::Generic,
            fingerprint: fp.into(),
            group_key: None,
            status,
            title: format!("alert {fp}"),
            labels: BTreeMap::from([("service".to_string(), "payments".to_string())]),
            starts_at: from_ms(1_000),
            ends_at: None,
            link: None,
        }
        .into()
    }

    #[tokio::test]
    async fn a_resent_alert_is_stored_once_and_claimed_once() {
        let db = memory_db().await;
        let batch = [
            alert("a", AlertStatus::Firing),
            alert("b", AlertStatus::Firing),
        ];
        assert_eq!(insert(&db, &batch, Utc::now()).await.unwrap(), 2);
        assert_eq!(insert(&db, &batch, Utc::now()).await.unwrap(), 0);
        assert_eq!(
            insert(&db, &[alert("a", AlertStatus::Resolved)], Utc::now())
                .await
                .unwrap(),
            1,
            "its resolution is a row of its own"
        );
        let claimed = claim(&db, "me", Utc::now(), 60_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 3);
        assert_eq!(claimed[0].alert.fingerprint, "a");
        assert_eq!(claimed[2].status, Status::Resolved);
        lease::beat(&db, "me").await.unwrap();
        assert!(claim(&db, "other", Utc::now(), 60_000, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_notice_gathers_alerts_until_it_is_claimed() {
        let db = memory_db().await;
        let now = Utc::now();
        let mut conn = db.pool.acquire().await.unwrap();
        add_notice(&mut conn, 3, &["x".into()], now, 1_000)
            .await
            .unwrap();
        add_notice(&mut conn, 4, &["y".into()], now, 1_000)
            .await
            .unwrap();
        drop(conn);
        let n = claim_notice(&db, "me", now, 60_000).await.unwrap().unwrap();
        assert_eq!(
            (n.count, n.sample.clone()),
            (7, vec!["x".into(), "y".into()])
        );
        release_notice(&db, n.seq, "me", &Outcome::Done, now)
            .await
            .unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        add_notice(&mut conn, 1, &[], now, 1_000).await.unwrap();
        drop(conn);
        assert!(
            claim_notice(&db, "me", now, 60_000)
                .await
                .unwrap()
                .is_none(),
            "the next notice waits a second after the last"
        );
    }
}
