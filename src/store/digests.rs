//! What the digest stores and reads: the incidents of a period and the one before it (plus those still open) from
//! `incidents` ([`incidents`], [`open_incidents`], [`incident_starts`] for the change-failure rate); and `digest_runs`, one row per scheduled digest (channel, scope, period start), so that with
//! several replicas on one database each digest is posted exactly once.
//!
//! A replica first makes sure the row exists (`INSERT … ON CONFLICT DO NOTHING`), then *claims* it through the
//! lease queue (`lease::claim_sql!`, atomic on SQLite and PostgreSQL): only a pending run that is due, or a
//! running one whose lease ran out or whose owner stopped heartbeating, can be claimed. Posting stores each
//! finished step (the message's `ts`, then the chart's file id) while holding the lease, so a take-over resumes
//! after the last stored step instead of posting twice; [`finish`] releases the run (`lease::release_sql!`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{from_ms, ms, Backend, Db};
use crate::domain::period::Period;
use crate::domain::phase::{Stamp, Timeline};
use crate::domain::severity::{DetectionMethod, Severity};
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

/// One incident packed into one line of text, fields separated by U+001F: a code (severity 1–3, plus 4 × the
/// detection method — 1 alert, 2 customer, 3 engineer, 4 not yet said, 0 imported — plus 32 × the four
/// `*_implicit` flags as bits), service, started, acknowledged, identified, fixed, resolved (epoch ms or empty), and the id
/// when still open.
macro_rules! packed_row {
    () => {
        "cast(CASE COALESCE(peak_severity, severity) WHEN 'P1' THEN 1 WHEN 'P3' THEN 3 ELSE 2 END \
              + 4 * CASE WHEN source <> 'slack' THEN 0 WHEN detection = 'customer' THEN 2 \
                         WHEN detection = 'engineer' THEN 3 \
                         WHEN detection = 'alert' THEN 1 ELSE 4 END \
              + 32 * (acknowledged_implicit + 2 * identified_implicit + 4 * fixed_implicit + 8 * resolved_implicit) \
              AS TEXT) || '\u{1f}' || \
         coalesce(replace(replace(service, '\u{1f}', ' '), '\u{1e}', ' '), '') || '\u{1f}' || \
         cast(started_at AS TEXT) || '\u{1f}' || \
         coalesce(cast(acknowledged_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(identified_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(fixed_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(resolved_at AS TEXT), '') || '\u{1f}' || \
         CASE WHEN resolved_at IS NULL THEN id ELSE '' END"
    };
}

/// The incidents a digest needs, in three disjoint parts (UNION ALL; one `OR` would scan every older incident):
/// started in either period (`$1` = previous start, `$2` = end); started before and still open; started before
/// and resolved after the previous period's end (`$3`). The column expressions say which index SQLite may use:
/// a `+` in front of a column keeps it off that column's index (see [`Plan`]).
macro_rules! digest_rows {
    ($in_period:literal, $older_started:literal, $older_resolved:literal) => {
        concat!(
            "SELECT ",
            packed_row!(),
            " AS line FROM incidents WHERE ",
            $in_period,
            " >= $1 AND ",
            $in_period,
            " < $2
             UNION ALL
             SELECT ",
            packed_row!(),
            " FROM incidents WHERE resolved_at IS NULL AND +started_at < $1
             UNION ALL
             SELECT ",
            packed_row!(),
            " FROM incidents WHERE ",
            $older_resolved,
            " > $3 AND ",
            $older_started,
            " < $1"
        )
    };
}

/// Every row in one text value, rows separated by U+001E. Tens of thousands of rows cross sqlx's SQLite worker
/// channel one by one, which costs far more than the query; one aggregated value makes loading a 100,000-incident
/// period several times faster (`incident-bot bench digest`).
macro_rules! sqlite_packed {
    ($($arg:literal),*) => {
        concat!("SELECT group_concat(line, '\u{1e}') FROM (", digest_rows!($($arg),*), ")")
    };
}

/// SQLite variants, by [`Plan`]: `[scan the periods][older incidents by start time]`.
const SQLITE_PACKED: [[&str; 2]; 2] = [
    [
        sqlite_packed!("started_at", "+started_at", "resolved_at"),
        sqlite_packed!("started_at", "started_at", "+resolved_at"),
    ],
    [
        sqlite_packed!("+started_at", "+started_at", "resolved_at"),
        sqlite_packed!("+started_at", "started_at", "+resolved_at"),
    ],
];
const POSTGRES_PACKED: &str = concat!(
    "SELECT string_agg(line, '\u{1e}') FROM (",
    digest_rows!("started_at", "started_at", "resolved_at"),
    ") AS rows"
);

/// How SQLite should read (it has no statistics to choose well with bound parameters): read the table straight
/// through when the two periods span more than a quarter of the time between the oldest and newest incident,
/// else the `started_at` index; find the older incidents still open at the previous period's end through
/// whichever of the `started_at` and `resolved_at` indexes has fewer entries in range (index-only counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    scan_periods: bool,
    older_by_started: bool,
}

async fn plan(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    older_resolved_after: DateTime<Utc>,
) -> Result<Plan, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT min(started_at) FROM incidents), (SELECT max(started_at) FROM incidents),
                (SELECT count(*) FROM incidents WHERE started_at < $1),
                (SELECT count(*) FROM incidents WHERE resolved_at > $2)",
    )
    .bind(ms(from))
    .bind(ms(older_resolved_after))
    .fetch_one(&db.pool)
    .await?;
    let (oldest, newest): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let (by_start, by_resolve): (i64, i64) = (row.try_get(2)?, row.try_get(3)?);
    let scan_periods = match (oldest, newest) {
        (Some(oldest), Some(newest)) => {
            let overlap = ms(to).min(newest + 1) - ms(from).max(oldest);
            overlap * 4 > newest + 1 - oldest
        }
        _ => false,
    };
    Ok(Plan {
        scan_periods,
        older_by_started: by_start < by_resolve,
    })
}

/// An incident as the digest reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestIncident {
    /// The id while still open, else empty.
    pub open_id: String,
    pub severity: Severity,
    /// The service name as stored.
    pub service: Option<String>,
    /// `None` for imported incidents.
    pub detection: Option<DetectionMethod>,
    /// Imported from another tool (a baseline incident).
    pub imported: bool,
    pub timeline: Timeline,
}

/// Every incident that started in `[from, to)`, or started before `from` and is still open or was resolved
/// after `older_resolved_after`.
pub async fn incidents(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    older_resolved_after: DateTime<Utc>,
) -> Result<Vec<DigestIncident>, sqlx::Error> {
    let sql = match db.backend {
        Backend::Sqlite => {
            let p = plan(db, from, to, older_resolved_after).await?;
            SQLITE_PACKED[usize::from(p.scan_periods)][usize::from(p.older_by_started)]
        }
        Backend::Postgres => POSTGRES_PACKED,
    };
    let packed: Option<String> = sqlx::query_scalar(sql)
        .bind(ms(from))
        .bind(ms(to))
        .bind(ms(older_resolved_after))
        .fetch_one(&db.pool)
        .await?;
    let mut out = Vec::new();
    for line in packed.as_deref().unwrap_or_default().split('\u{1e}') {
        if line.is_empty() {
            continue;
        }
        out.push(parse_line(line).ok_or_else(|| {
            sqlx::Error::Decode(format!("unreadable digest row `{line}`").into())
        })?);
    }
    Ok(out)
}

/// An incident as the change-failure figures need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentStart {
    pub severity: Severity,
    pub service: Option<String>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Every incident that started in `[from, to)`: highest severity, service, start and resolution.
pub async fn incident_starts(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<IncidentStart>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT COALESCE(peak_severity, severity) AS severity, service, started_at, resolved_at
         FROM incidents WHERE started_at >= $1 AND started_at < $2",
    )
    .bind(ms(from))
    .bind(ms(to))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let sev: String = r.try_get("severity")?;
            let resolved: Option<i64> = r.try_get("resolved_at")?;
            Ok(IncidentStart {
                severity: Severity::parse(&sev).unwrap_or_default(),
                service: r.try_get("service")?,
                started_at: from_ms(r.try_get("started_at")?),
                resolved_at: resolved.map(from_ms),
            })
        })
        .collect()
}

/// An open incident as the digest names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenIncident {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub channel_id: Option<String>,
}

/// Every incident started before `before` and still open.
pub async fn open_incidents(
    db: &Db,
    before: DateTime<Utc>,
) -> Result<Vec<OpenIncident>, sqlx::Error> {
    let found = sqlx::query(
        "SELECT id, number,
                CASE WHEN is_private = 0 THEN title ELSE '🔒 private incident' END AS title,
                CASE WHEN is_private = 0 THEN channel_id ELSE NULL END AS channel_id
         FROM incidents WHERE resolved_at IS NULL AND started_at < $1",
    )
    .bind(ms(before))
    .fetch_all(&db.pool)
    .await?;
    found
        .iter()
        .map(|r| {
            Ok(OpenIncident {
                id: r.try_get("id")?,
                number: r.try_get("number")?,
                title: r.try_get("title")?,
                channel_id: r.try_get("channel_id")?,
            })
        })
        .collect()
}

fn stamp(at: &str, implicit: bool) -> Option<Option<Stamp>> {
    if at.is_empty() {
        return Some(None);
    }
    Some(Some(Stamp {
        at: from_ms(at.parse().ok()?),
        by: None,
        implicit,
    }))
}

/// One packed line (see [`packed_row`]) back into an incident; `None` when it is not one.
fn parse_line(line: &str) -> Option<DigestIncident> {
    let mut f = [""; 8];
    let mut parts = line.split('\u{1f}');
    for slot in f.iter_mut() {
        *slot = parts.next()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let code: i64 = f[0].parse().ok()?;
    let severity = match code & 3 {
        1 => Severity::P1,
        3 => Severity::P3,
        _ => Severity::P2,
    };
    let (imported, detection) = match (code >> 2) & 7 {
        0 => (true, None),
        1 => (false, Some(DetectionMethod::Alert)),
        2 => (false, Some(DetectionMethod::Customer)),
        3 => (false, Some(DetectionMethod::Engineer)),
        _ => (false, Some(DetectionMethod::Unknown)),
    };
    let bits = code >> 5;
    let service = match f[1].trim() {
        "" => None,
        s => Some(s.to_string()),
    };
    let started_at = from_ms(f[2].parse().ok()?);
    let timeline = Timeline {
        started_at,
        declared_at: started_at,
        acknowledged: stamp(f[3], bits & 1 != 0)?,
        identified: stamp(f[4], bits & 2 != 0)?,
        fixed: stamp(f[5], bits & 4 != 0)?,
        resolved: stamp(f[6], bits & 8 != 0)?,
        closed_at: None,
    };
    Some(DigestIncident {
        open_id: f[7].to_string(),
        severity,
        service,
        detection,
        imported,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_line_reads_back_into_a_row() {
        // P1 (1) + customer (4 × 2) + fixed implicit (32 × 4) = 137.
        let line = "137\u{1f}payments\u{1f}1000\u{1f}61000\u{1f}\u{1f}121000\u{1f}181000\u{1f}";
        let row = parse_line(line).expect("a row");
        assert_eq!(row.severity, Severity::P1);
        assert_eq!(row.detection, Some(DetectionMethod::Customer));
        assert!(!row.imported);
        assert_eq!(row.service.as_deref(), Some("payments"));
        assert_eq!(row.timeline.started_at, from_ms(1000));
        assert_eq!(row.timeline.identified, None);
        assert!(!row.timeline.acknowledged.as_ref().expect("ack").implicit);
        assert!(row.timeline.fixed.as_ref().expect("fixed").implicit);
        let resolved = row.timeline.resolved.as_ref().expect("resolved").at;
        assert_eq!(
            resolved - row.timeline.started_at,
            chrono::Duration::minutes(3)
        );
        let open = "2\u{1f}\u{1f}5\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}pagerduty-P1";
        let row = parse_line(open).expect("a row");
        assert_eq!(
            (row.imported, row.detection, row.service),
            (true, None, None)
        );
        assert_eq!(row.open_id, "pagerduty-P1");
        // P3 (3) + not yet said (4 × 4) + every phase implicit (32 × 15) = 499.
        let unknown = "499\u{1f}\u{1f}5\u{1f}6\u{1f}6\u{1f}6\u{1f}6\u{1f}";
        let row = parse_line(unknown).expect("a row");
        assert_eq!(
            (row.severity, row.imported, row.detection),
            (Severity::P3, false, Some(DetectionMethod::Unknown))
        );
        assert!(row.timeline.resolved.as_ref().expect("resolved").implicit);
    }

    #[test]
    fn a_malformed_line_is_refused() {
        assert!(parse_line("1\u{1f}2").is_none());
        let bad_time = "5\u{1f}x\u{1f}soon\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}";
        assert!(parse_line(bad_time).is_none());
    }
}
