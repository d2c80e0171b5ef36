//! Reading what the digest needs from the database: the incidents of a period and the one before it (plus
//! those still open), each with its catalog team and whether a deploy to its service or a dependency landed in
//! the 2 hours before it started ([`crate::deploys::recent`], fetched once per service).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use super::stats::{self, Digest, Filter, IncidentRow, Origin, Period};
use crate::catalog::Catalog;
use crate::db::{from_ms, ms, Backend, Db};
use crate::deploys;
use crate::domain::phase::{Stamp, Timeline};
use crate::domain::severity::{DetectionMethod, Severity};

/// One incident packed into one line of text, fields separated by U+001F: a code (severity 1–3, plus 4 × the
/// detection method — 1 alert, 2 customer, 3 engineer, 4 not yet said, 0 imported — plus 32 × the four
/// `*_implicit` flags as bits), service, started, acknowledged, identified, fixed, resolved (epoch ms or empty), and the id
/// when still open.
macro_rules! packed_row {
    () => {
        "cast(CASE severity WHEN 'P1' THEN 1 WHEN 'P3' THEN 3 ELSE 2 END \
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

/// How far before `started_at` a deploy counts as "right before" the incident.
pub const DEPLOY_WINDOW: Duration = Duration::hours(2);

/// Builds the digest of `period` for the incidents `filter` selects.
pub async fn build(
    db: &Db,
    catalog: &Catalog,
    filter: &Filter,
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Digest, sqlx::Error> {
    let rows = load(db, catalog, filter, period).await?;
    Ok(stats::compute(&rows, period, tz, now))
}

/// Every incident that started in `period` or the period before it, or was open at the end of either, that
/// `filter` selects.
pub async fn load(
    db: &Db,
    catalog: &Catalog,
    filter: &Filter,
    period: Period,
) -> Result<Vec<IncidentRow>, sqlx::Error> {
    let previous = period.previous();
    let sql = match db.backend {
        Backend::Sqlite => {
            let p = plan(db, previous.start, period.end, previous.end).await?;
            SQLITE_PACKED[usize::from(p.scan_periods)][usize::from(p.older_by_started)]
        }
        Backend::Postgres => POSTGRES_PACKED,
    };
    let packed: Option<String> = sqlx::query_scalar(sql)
        .bind(ms(previous.start))
        .bind(ms(period.end))
        .bind(ms(previous.end))
        .fetch_one(&db.pool)
        .await?;
    let mut services = ServiceInfo::new(catalog);
    let mut rows = Vec::new();
    for line in packed.as_deref().unwrap_or_default().split('\u{1e}') {
        if line.is_empty() {
            continue;
        }
        let row = parse_line(line, &mut services)
            .ok_or_else(|| sqlx::Error::Decode(format!("unreadable digest row `{line}`").into()))?;
        if filter.matches(&row) {
            rows.push(row);
        }
    }
    describe_open(db, period, &mut rows).await?;
    mark_deploys(db, catalog, &mut rows).await?;
    Ok(rows)
}

/// Catalog spelling and team per service name, looked up once each.
struct ServiceInfo<'a> {
    catalog: &'a Catalog,
    cache: HashMap<String, (String, Option<String>)>,
}

impl<'a> ServiceInfo<'a> {
    fn new(catalog: &'a Catalog) -> Self {
        ServiceInfo {
            catalog,
            cache: HashMap::new(),
        }
    }

    fn get(&mut self, name: &str) -> (String, Option<String>) {
        if let Some(hit) = self.cache.get(name) {
            return hit.clone();
        }
        let info = match self.catalog.get(name) {
            Some(s) => (s.name.clone(), s.team.clone()),
            None => (name.to_string(), None),
        };
        self.cache.insert(name.to_string(), info.clone());
        info
    }
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

/// One packed line (see [`packed_row`]) back into a row; `None` when it is not one.
fn parse_line(line: &str, services: &mut ServiceInfo) -> Option<IncidentRow> {
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
    let (origin, detection) = match (code >> 2) & 7 {
        0 => (Origin::Baseline, None),
        1 => (Origin::Slack, Some(DetectionMethod::Alert)),
        2 => (Origin::Slack, Some(DetectionMethod::Customer)),
        3 => (Origin::Slack, Some(DetectionMethod::Engineer)),
        _ => (Origin::Slack, Some(DetectionMethod::Unknown)),
    };
    let bits = code >> 5;
    let (service, team) = match f[1].trim() {
        "" => (None, None),
        s => {
            let (name, team) = services.get(s);
            (Some(name), team)
        }
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
    Some(IncidentRow {
        id: f[7].to_string(),
        number: 0,
        title: String::new(),
        severity,
        service,
        team,
        detection,
        origin,
        timeline,
        deploy_before: false,
        channel_id: None,
    })
}

/// Fills in number, title and channel of the rows still open (the only ones shown by name).
async fn describe_open(
    db: &Db,
    period: Period,
    rows: &mut [IncidentRow],
) -> Result<(), sqlx::Error> {
    if !rows.iter().any(|r| r.timeline.resolved.is_none()) {
        return Ok(());
    }
    let found = sqlx::query(
        "SELECT id, number, title, channel_id FROM incidents WHERE resolved_at IS NULL AND started_at < $1",
    )
    .bind(ms(period.end))
    .fetch_all(&db.pool)
    .await?;
    let mut by_id: HashMap<String, (i64, String, Option<String>)> = HashMap::new();
    for r in &found {
        by_id.insert(
            r.try_get("id")?,
            (
                r.try_get("number")?,
                r.try_get("title")?,
                r.try_get("channel_id")?,
            ),
        );
    }
    for row in rows.iter_mut().filter(|r| r.timeline.resolved.is_none()) {
        if let Some((number, title, channel)) = by_id.remove(&row.id) {
            row.number = number;
            row.title = title;
            row.channel_id = channel;
        }
    }
    Ok(())
}

/// Sets `deploy_before` on each row: one deploy query per service (covering all its incidents), then a
/// binary search per incident.
async fn mark_deploys(
    db: &Db,
    catalog: &Catalog,
    rows: &mut [IncidentRow],
) -> Result<(), sqlx::Error> {
    let mut by_service: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(s) = &r.service {
            match by_service.get_mut(s.as_str()) {
                Some(list) => list.push(i),
                None => {
                    by_service.insert(s.clone(), vec![i]);
                }
            }
        }
    }
    for (service, idx) in by_service {
        let (Some(first), Some(last)) = (
            idx.iter().map(|&i| rows[i].timeline.started_at).min(),
            idx.iter().map(|&i| rows[i].timeline.started_at).max(),
        ) else {
            continue;
        };
        let mut names = vec![service.clone()];
        names.extend(catalog.dependency_names(&service));
        let found = deploys::recent(db, &names, first - DEPLOY_WINDOW, last, i64::MAX).await?;
        let mut times: Vec<DateTime<Utc>> = found.into_iter().map(|d| d.deployed_at).collect();
        times.sort();
        for i in idx {
            let started = rows[i].timeline.started_at;
            let from = times.partition_point(|t| *t < started - DEPLOY_WINDOW);
            rows[i].deploy_before = times.get(from).is_some_and(|t| *t <= started);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_line_reads_back_into_a_row() {
        let catalog = Catalog::empty();
        let mut services = ServiceInfo::new(&catalog);
        // P1 (1) + customer (4 × 2) + fixed implicit (32 × 4) = 137.
        let line = "137\u{1f}payments\u{1f}1000\u{1f}61000\u{1f}\u{1f}121000\u{1f}181000\u{1f}";
        let row = parse_line(line, &mut services).expect("a row");
        assert_eq!(row.severity, Severity::P1);
        assert_eq!(row.detection, Some(DetectionMethod::Customer));
        assert_eq!(row.origin, Origin::Slack);
        assert_eq!(row.service.as_deref(), Some("payments"));
        assert_eq!(row.timeline.started_at, from_ms(1000));
        assert_eq!(row.timeline.identified, None);
        assert!(!row.timeline.acknowledged.as_ref().expect("ack").implicit);
        assert!(row.timeline.fixed.as_ref().expect("fixed").implicit);
        assert_eq!(row.mttr(), Some(Duration::minutes(3)));
        let open = "2\u{1f}\u{1f}5\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}pagerduty-P1";
        let row = parse_line(open, &mut services).expect("a row");
        assert_eq!(
            (row.origin, row.detection, row.service),
            (Origin::Baseline, None, None)
        );
        assert_eq!(row.id, "pagerduty-P1");
        // P3 (3) + not yet said (4 × 4) + every phase implicit (32 × 15) = 499.
        let unknown = "499\u{1f}\u{1f}5\u{1f}6\u{1f}6\u{1f}6\u{1f}6\u{1f}";
        let row = parse_line(unknown, &mut services).expect("a row");
        assert_eq!(
            (row.severity, row.origin, row.detection),
            (Severity::P3, Origin::Slack, Some(DetectionMethod::Unknown))
        );
        assert!(row.timeline.resolved.as_ref().expect("resolved").implicit);
    }

    #[test]
    fn a_malformed_line_is_refused() {
        let catalog = Catalog::empty();
        let mut services = ServiceInfo::new(&catalog);
        assert!(parse_line("1\u{1f}2", &mut services).is_none());
        let bad_time = "5\u{1f}x\u{1f}soon\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}";
        assert!(parse_line(bad_time, &mut services).is_none());
    }
}
