//! Reading what the digest needs: the incidents of a period and the one before it (plus those still open), read
//! by [`crate::store::digests`], each with its catalog team and whether a deploy to its service or a dependency
//! landed in the 2 hours before it started ([`crate::deploys::recent`], fetched once per service); and the
//! production deploys of both periods, linked to incidents for the change-failure figures ([`load_deploys`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::stats::{self, DeployRow, Digest, Filter, IncidentRow, LinkIncident, Origin, Period};
use crate::catalog::Catalog;
use crate::db::Db;
use crate::deploys;
use crate::store::digests::{self, DigestIncident, OpenIncident};

/// How far before `started_at` a deploy counts as "right before" the incident.
pub const DEPLOY_WINDOW: Duration = crate::domain::deploy::BEFORE_IMPACT;

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
    let deploys = load_deploys(db, catalog, filter, period).await?;
    Ok(stats::compute_with_deploys(
        &rows, &deploys, period, tz, now,
    ))
}

/// The production deploys of `period` and the period before it whose service (and its catalog team) `filter`
/// selects, each marked failed or not ([`stats::link_deploys`]) against every incident (of the filter's severity,
/// if it has one) that started up to 2 hours after the period's end — so a deploy's status does not depend on
/// the service or team filter.
pub async fn load_deploys(
    db: &Db,
    catalog: &Catalog,
    filter: &Filter,
    period: Period,
) -> Result<Vec<DeployRow>, sqlx::Error> {
    let previous = period.previous();
    let mut services = ServiceInfo::new(catalog);
    let mut deploys = Vec::new();
    for (service, at) in deploys::production_times(db, previous.start, period.end).await? {
        let (name, team) = services.get(&service);
        if filter.matches_service(Some(&name), team.as_deref()) {
            deploys.push((name, at));
        }
    }
    if deploys.is_empty() {
        return Ok(Vec::new());
    }
    let mut incidents = Vec::new();
    for i in digests::incident_starts(db, previous.start, period.end + DEPLOY_WINDOW).await? {
        let Some(service) = i.service.as_deref() else {
            continue;
        };
        if filter.severity.is_some_and(|s| s != i.severity) {
            continue;
        }
        let (name, _) = services.get(service);
        let mut linked = vec![name.clone()];
        linked.extend(catalog.dependency_names(&name));
        incidents.push(LinkIncident {
            services: linked,
            started_at: i.started_at,
            resolved_at: i.resolved_at,
        });
    }
    Ok(stats::link_deploys(&deploys, &incidents))
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
    let found = digests::incidents(db, previous.start, period.end, previous.end).await?;
    let mut services = ServiceInfo::new(catalog);
    let mut rows = Vec::new();
    for found in found {
        let row = to_row(found, &mut services);
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

/// A stored incident as a digest row, with its service's catalog spelling and team.
fn to_row(i: DigestIncident, services: &mut ServiceInfo) -> IncidentRow {
    let (service, team) = match i.service.as_deref() {
        None => (None, None),
        Some(s) => {
            let (name, team) = services.get(s);
            (Some(name), team)
        }
    };
    IncidentRow {
        id: i.open_id,
        number: 0,
        title: String::new(),
        severity: i.severity,
        service,
        team,
        detection: i.detection,
        origin: if i.imported {
            Origin::Baseline
        } else {
            Origin::Slack
        },
        timeline: i.timeline,
        deploy_before: false,
        channel_id: None,
    }
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
    let mut by_id: HashMap<String, OpenIncident> = digests::open_incidents(db, period.end)
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    for row in rows.iter_mut().filter(|r| r.timeline.resolved.is_none()) {
        if let Some(open) = by_id.remove(&row.id) {
            row.number = open.number;
            row.title = open.title;
            row.channel_id = open.channel_id;
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
