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

/// One incident packed into one line of text: severity code (1–3), detection code (1 alert, 2 customer,
/// 3 engineer, 0 unknown = imported), service, started, acknowledged, identified, fixed, resolved (epoch ms or
/// empty), the four `*_implicit` flags as bits, and the id when still open — fields separated by U+001F.
macro_rules! packed_row {
    () => {
        "CASE severity WHEN 'P1' THEN '1' WHEN 'P3' THEN '3' ELSE '2' END || '\u{1f}' || \
         CASE WHEN source <> 'slack' THEN '0' WHEN detection = 'customer' THEN '2' WHEN detection = 'engineer' THEN '3' ELSE '1' END || '\u{1f}' || \
         coalesce(replace(replace(service, '\u{1f}', ' '), '\u{1e}', ' '), '') || '\u{1f}' || \
         cast(started_at AS TEXT) || '\u{1f}' || \
         coalesce(cast(acknowledged_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(identified_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(fixed_at AS TEXT), '') || '\u{1f}' || \
         coalesce(cast(resolved_at AS TEXT), '') || '\u{1f}' || \
         cast(acknowledged_implicit + 2 * identified_implicit + 4 * fixed_implicit + 8 * resolved_implicit AS TEXT) || '\u{1f}' || \
         CASE WHEN resolved_at IS NULL THEN id ELSE '' END"
    };
}

/// The incidents a digest needs: three disjoint index range scans (UNION ALL; one `OR` would scan every older
/// incident) — started in either period ($1 = previous start, $2 = end); started before and still open; started
/// before and resolved after the previous period's end ($3).
macro_rules! digest_rows {
    () => {
        concat!(
            "SELECT ",
            packed_row!(),
            " AS line FROM incidents WHERE started_at >= $1 AND started_at < $2
             UNION ALL
             SELECT ",
            packed_row!(),
            " FROM incidents WHERE resolved_at IS NULL AND started_at < $1
             UNION ALL
             SELECT ",
            packed_row!(),
            " FROM incidents WHERE resolved_at > $3 AND started_at < $1"
        )
    };
}

/// Every row in one text value, rows separated by U+001E. Tens of thousands of rows cross sqlx's SQLite worker
/// channel one by one, which costs far more than the query; one aggregated value makes loading a 100,000-incident
/// period several times faster (`incident-bot bench digest`).
const SQLITE_PACKED: &str = concat!(
    "SELECT group_concat(line, '\u{1e}') FROM (",
    digest_rows!(),
    ")"
);
const POSTGRES_PACKED: &str = concat!(
    "SELECT string_agg(line, '\u{1e}') FROM (",
    digest_rows!(),
    ") AS rows"
);

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
        Backend::Sqlite => SQLITE_PACKED,
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
    let mut f = [""; 10];
    let mut parts = line.split('\u{1f}');
    for slot in f.iter_mut() {
        *slot = parts.next()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let severity = match f[0] {
        "1" => Severity::P1,
        "3" => Severity::P3,
        _ => Severity::P2,
    };
    let (origin, detection) = match f[1] {
        "0" => (Origin::Baseline, None),
        "2" => (Origin::Slack, Some(DetectionMethod::Customer)),
        "3" => (Origin::Slack, Some(DetectionMethod::Engineer)),
        _ => (Origin::Slack, Some(DetectionMethod::Alert)),
    };
    let (service, team) = match f[2].trim() {
        "" => (None, None),
        s => {
            let (name, team) = services.get(s);
            (Some(name), team)
        }
    };
    let started_at = from_ms(f[3].parse().ok()?);
    let bits: i64 = f[8].parse().ok()?;
    let timeline = Timeline {
        started_at,
        declared_at: started_at,
        acknowledged: stamp(f[4], bits & 1 != 0)?,
        identified: stamp(f[5], bits & 2 != 0)?,
        fixed: stamp(f[6], bits & 4 != 0)?,
        resolved: stamp(f[7], bits & 8 != 0)?,
        closed_at: None,
    };
    Some(IncidentRow {
        id: f[9].to_string(),
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
