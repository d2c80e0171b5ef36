//! The digest's figures (SPEC §6), computed from incident rows — pure, no I/O, `now` passed in.
//!
//! Rules, also written down in README.md ("Digests and reports"):
//! - An incident belongs to the period it **started** in. MTTR figures use those of them that are resolved
//!   (by the time the figures are computed); the rest are counted as open.
//! - MTTR per severity: mean, median and max; the tier is the tier of the **median**.
//! - Phase shares are averaged over resolved incidents whose four phases are known (declared in Slack);
//!   "slowest" counts how often each phase was the longest one of an incident.
//! - Baseline incidents (imported from PagerDuty) know only detection (time to acknowledge) and MTTR; their
//!   triage, remediation and verification are unknown. They count everywhere MTTR counts, and in the detection
//!   phase of the chart; they do not count in phase shares, slowest-phase counts or the detection-method mix.
//! - In hours = Monday–Friday 09:00–18:00 in the digest's time zone, judged by `started_at`.
//! - p50 and p90 (PostgreSQL's `percentile_cont`) go with n; under 5 values they are "not enough data"
//!   ([`Spread`]). Phase distributions are over the same incidents as the phase means.
//! - Change-failure rate and failed-deployment recovery time: see [`link_deploys`] and docs/distributions.md.
//! - The customer-report warning fires when more than 20 % of P1s (with a known detection method) were
//!   reported by customers.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

use crate::domain::deploy::before_impact;
use crate::domain::mttr::{breakdown, median, tier, PhaseKind, Spread, Tier};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};

/// More than this share of P1s reported by customers earns a warning.
pub const CUSTOMER_P1_WARNING_SHARE: f64 = 0.20;
/// How many services and teams the "highest MTTR" lists show.
pub const TOP_N: usize = 3;
/// Working hours: Monday–Friday, from 09:00 (inclusive) to 18:00 (exclusive), local time.
pub const WORK_START_HOUR: u32 = 9;
pub const WORK_END_HOUR: u32 = 18;

/// Where an incident record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Declared in Slack: every phase is known.
    Slack,
    /// Imported history (PagerDuty): only acknowledge and resolve times are known.
    Baseline,
}

/// One incident, as the figures need it. `id`, `number`, `title` and `channel_id` are only needed (and, from the
/// database, only loaded) for incidents still open.
#[derive(Clone, Debug)]
pub struct IncidentRow {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    /// The service's team from the catalog.
    pub team: Option<String>,
    /// `None` when unknown (imported incidents).
    pub detection: Option<DetectionMethod>,
    pub origin: Origin,
    pub timeline: Timeline,
    /// A production deploy to the service or a dependency landed in the 2 hours before `started_at`.
    pub deploy_before: bool,
    pub channel_id: Option<String>,
}

impl IncidentRow {
    /// Resolved − started, once resolved (never negative).
    pub fn mttr(&self) -> Option<Duration> {
        self.timeline
            .resolved
            .as_ref()
            .map(|r| (r.at - self.timeline.started_at).max(Duration::zero()))
    }

    /// Open at instant `t`: started before it and not resolved by then.
    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        self.timeline.started_at < t && self.timeline.resolved.as_ref().is_none_or(|r| r.at > t)
    }

    /// Known time per phase plus the unknown remainder, for a resolved incident: `[detection, triage,
    /// remediation, verification, unknown]`. Slack incidents have no unknown part; baseline incidents know
    /// detection only when they were acknowledged.
    pub fn segments(&self, now: DateTime<Utc>) -> Option<[Duration; 5]> {
        let mttr = self.mttr()?;
        let mut out = [Duration::zero(); 5];
        match self.origin {
            Origin::Slack => {
                let b = breakdown(&self.timeline, now);
                for p in &b.phases {
                    out[p.kind.index()] = p.duration;
                }
            }
            Origin::Baseline => {
                let detection = self
                    .timeline
                    .acknowledged
                    .as_ref()
                    .map(|a| (a.at - self.timeline.started_at).clamp(Duration::zero(), mttr));
                out[0] = detection.unwrap_or_default();
                out[4] = mttr - out[0];
            }
        }
        Some(out)
    }
}

pub use crate::domain::period::Period;

/// Which incidents a digest or report covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub service: Option<String>,
    pub team: Option<String>,
    pub severity: Option<Severity>,
}

impl Filter {
    pub fn matches(&self, row: &IncidentRow) -> bool {
        self.matches_service(row.service.as_deref(), row.team.as_deref())
            && self.severity.is_none_or(|s| s == row.severity)
    }

    /// The service and team parts of the filter (a deploy has no severity).
    pub fn matches_service(&self, service: Option<&str>, team: Option<&str>) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w.trim())))
        };
        eq(&self.service, service) && eq(&self.team, team)
    }

    pub fn is_empty(&self) -> bool {
        self.service.is_none() && self.team.is_none() && self.severity.is_none()
    }

    /// `"service payments, team team-payments"`; empty when there is no filter.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.team {
            parts.push(format!("team {t}"));
        }
        if let Some(s) = &self.service {
            parts.push(format!("service {s}"));
        }
        if let Some(s) = self.severity {
            parts.push(s.as_str().to_string());
        }
        parts.join(", ")
    }
}

/// Whether `t` falls in working hours (Mon–Fri 09:00–18:00) in `tz`.
pub fn in_hours(t: DateTime<Utc>, tz: Tz) -> bool {
    let local = t.with_timezone(&tz);
    let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    weekday && (WORK_START_HOUR..WORK_END_HOUR).contains(&local.hour())
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(d.num_seconds())
}

fn secs_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.num_seconds()),
        None => s.serialize_none(),
    }
}

/// Count, mean, median and max of some MTTRs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MttrStat {
    pub count: usize,
    #[serde(rename = "mean_seconds", serialize_with = "secs_opt")]
    pub mean: Option<Duration>,
    #[serde(rename = "median_seconds", serialize_with = "secs_opt")]
    pub median: Option<Duration>,
    #[serde(rename = "max_seconds", serialize_with = "secs_opt")]
    pub max: Option<Duration>,
}

impl MttrStat {
    pub fn of(mut durations: Vec<Duration>) -> MttrStat {
        if durations.is_empty() {
            return MttrStat::default();
        }
        let total: i64 = durations.iter().map(Duration::num_milliseconds).sum();
        let mean = Duration::milliseconds(total / durations.len() as i64);
        let max = durations.iter().copied().max();
        MttrStat {
            count: durations.len(),
            mean: Some(mean),
            median: median(&mut durations),
            max,
        }
    }
}

/// MTTR of one severity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeverityFigures {
    pub severity: Severity,
    /// Incidents of this severity that started in the period.
    pub incidents: usize,
    /// Over the resolved ones.
    pub mttr: MttrStat,
    /// Tier of the median MTTR.
    pub tier: Option<Tier>,
    /// p50 and p90 of the resolved ones' MTTR.
    pub distribution: Spread,
}

impl SeverityFigures {
    fn of(severity: Severity, rows: &[&IncidentRow]) -> SeverityFigures {
        let of_sev: Vec<&&IncidentRow> = rows.iter().filter(|r| r.severity == severity).collect();
        let mttrs: Vec<Duration> = of_sev.iter().filter_map(|r| r.mttr()).collect();
        let distribution = Spread::of(mttrs.clone());
        let mttr = MttrStat::of(mttrs);
        SeverityFigures {
            distribution,
            severity,
            incidents: of_sev.len(),
            tier: mttr.median.map(|m| tier(severity, m)),
            mttr,
        }
    }
}

/// One phase over the period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseFigure {
    pub phase: PhaseKind,
    /// Mean of the phase's share of each incident's MTTR (0..=1); `None` without incidents.
    pub average_share: Option<f64>,
    /// How many incidents had this as their slowest phase.
    pub slowest: usize,
    #[serde(rename = "mean_seconds", serialize_with = "secs_opt")]
    pub mean: Option<Duration>,
    /// p50 and p90 of the phase's duration, over the same incidents as the mean.
    pub distribution: Spread,
}

/// Where the time went.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseFigures {
    /// Resolved incidents whose four phases are known (the base of the figures below).
    pub incidents: usize,
    /// Resolved incidents whose phases are partly unknown (imported baseline).
    pub unknown: usize,
    pub phases: Vec<PhaseFigure>,
}

impl PhaseFigures {
    fn of(resolved: &[&IncidentRow], now: DateTime<Utc>) -> PhaseFigures {
        let mut share_sum = [0.0f64; 4];
        let mut share_n = 0usize;
        let mut slowest = [0usize; 4];
        let mut dur_sum = [0i64; 4];
        let mut durations: [Vec<Duration>; 4] = Default::default();
        let mut known = 0usize;
        for r in resolved.iter().filter(|r| r.origin == Origin::Slack) {
            let b = breakdown(&r.timeline, now);
            known += 1;
            for p in &b.phases {
                dur_sum[p.kind.index()] += p.duration.num_milliseconds();
                durations[p.kind.index()].push(p.duration);
            }
            if b.mttr > Duration::zero() {
                share_n += 1;
                for k in PhaseKind::ALL {
                    share_sum[k.index()] += b.share(k);
                }
            }
            if let Some(k) = b.slowest() {
                slowest[k.index()] += 1;
            }
        }
        let phases = PhaseKind::ALL
            .iter()
            .map(|&k| PhaseFigure {
                phase: k,
                average_share: (share_n > 0).then(|| share_sum[k.index()] / share_n as f64),
                slowest: slowest[k.index()],
                mean: (known > 0)
                    .then(|| Duration::milliseconds(dur_sum[k.index()] / known as i64)),
                distribution: Spread::of(durations[k.index()].clone()),
            })
            .collect();
        PhaseFigures {
            incidents: known,
            unknown: resolved.len() - known,
            phases,
        }
    }

    pub fn get(&self, k: PhaseKind) -> &PhaseFigure {
        &self.phases[k.index()]
    }
}

/// How incidents were noticed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionFigures {
    pub alert: usize,
    pub customer: usize,
    pub engineer: usize,
    /// Declared in Slack and nobody has said yet how it was noticed.
    pub unknown: usize,
    /// Imported incidents: the import does not know the method.
    pub imported: usize,
    /// P1s with a known detection method, and how many of them customers reported.
    pub p1: usize,
    pub p1_customer: usize,
    pub p1_customer_share: Option<f64>,
    /// More than 20 % of P1s were customer-reported.
    pub customer_warning: bool,
}

impl DetectionFigures {
    fn of(rows: &[&IncidentRow]) -> DetectionFigures {
        let count = |m: DetectionMethod| rows.iter().filter(|r| r.detection == Some(m)).count();
        let known = |r: &&&IncidentRow| r.detection.is_some_and(|m| m != DetectionMethod::Unknown);
        let p1: Vec<_> = rows
            .iter()
            .filter(|r| r.severity == Severity::P1)
            .filter(known)
            .collect();
        let p1_customer = p1
            .iter()
            .filter(|r| r.detection == Some(DetectionMethod::Customer))
            .count();
        let share = (!p1.is_empty()).then(|| p1_customer as f64 / p1.len() as f64);
        DetectionFigures {
            alert: count(DetectionMethod::Alert),
            customer: count(DetectionMethod::Customer),
            engineer: count(DetectionMethod::Engineer),
            unknown: count(DetectionMethod::Unknown),
            imported: rows.iter().filter(|r| r.detection.is_none()).count(),
            p1: p1.len(),
            p1_customer,
            p1_customer_share: share,
            customer_warning: share.is_some_and(|s| s > CUSTOMER_P1_WARNING_SHARE),
        }
    }

    /// Incidents with a known method.
    pub fn known(&self) -> usize {
        self.alert + self.customer + self.engineer
    }
}

/// Incidents that followed a deploy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployFigures {
    pub incidents: usize,
    pub with_deploy: usize,
    pub share: Option<f64>,
}

/// A production deploy, as the change-failure figures need it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployRow {
    pub deployed_at: DateTime<Utc>,
    /// Linked to at least one incident (see [`link_deploys`]): a failed deployment.
    pub failed: bool,
    /// For a failed deployment whose linked incidents are all resolved: the last of those resolutions.
    pub recovered_at: Option<DateTime<Utc>>,
}

/// An incident, as [`link_deploys`] needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkIncident {
    /// The services a deploy to which counts for this incident: its own and its catalog dependencies.
    pub services: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Marks each production deploy `(service, deployed_at)` as failed when it landed before impact
/// ([`before_impact`]: in the 2 hours up to `started_at`, the rule of the card's "deploys before impact") of an
/// incident on that service or on a service that depends on it; its recovery is the last resolution of its
/// linked incidents, once all of them are resolved. Service names compare case-insensitively.
pub fn link_deploys(
    deploys: &[(String, DateTime<Utc>)],
    incidents: &[LinkIncident],
) -> Vec<DeployRow> {
    deploys
        .iter()
        .map(|(service, at)| {
            let linked: Vec<&LinkIncident> = incidents
                .iter()
                .filter(|i| {
                    before_impact(*at, i.started_at)
                        && i.services.iter().any(|s| s.eq_ignore_ascii_case(service))
                })
                .collect();
            let recovered_at = if linked.iter().all(|i| i.resolved_at.is_some()) {
                linked.iter().filter_map(|i| i.resolved_at).max()
            } else {
                None
            };
            DeployRow {
                deployed_at: *at,
                failed: !linked.is_empty(),
                recovered_at,
            }
        })
        .collect()
}

/// DORA's change-failure rate and failed-deployment recovery time over the production deploys of a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangeFailure {
    /// Production deploys in the period.
    pub deploys: usize,
    /// Those linked to an incident.
    pub failed: usize,
    /// `failed / deploys`; `None` without deploys.
    pub rate: Option<f64>,
    /// Deploy → recovery of each failed deployment whose incidents are all resolved.
    pub recovery: Spread,
    /// Failed deployments with a linked incident still open.
    pub unrecovered: usize,
}

impl ChangeFailure {
    pub fn of(deploys: &[DeployRow], period: Period) -> ChangeFailure {
        let in_period: Vec<&DeployRow> = deploys
            .iter()
            .filter(|d| period.contains(d.deployed_at))
            .collect();
        let failed: Vec<&&DeployRow> = in_period.iter().filter(|d| d.failed).collect();
        let recovery: Vec<Duration> = failed
            .iter()
            .filter_map(|d| {
                d.recovered_at
                    .map(|r| (r - d.deployed_at).max(Duration::zero()))
            })
            .collect();
        ChangeFailure {
            deploys: in_period.len(),
            failed: failed.len(),
            rate: (!in_period.is_empty()).then(|| failed.len() as f64 / in_period.len() as f64),
            unrecovered: failed.len() - recovery.len(),
            recovery: Spread::of(recovery),
        }
    }
}

/// Out-of-hours vs in-hours MTTR.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HoursFigures {
    pub in_hours: MttrStat,
    pub out_of_hours: MttrStat,
}

/// A service or team and its MTTR.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub name: String,
    pub mttr: MttrStat,
}

/// Mean time per phase of one severity's resolved incidents, for the chart: detection, triage, remediation,
/// verification and the unknown part of imported incidents. Their sum is the mean MTTR.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseMeans {
    pub severity: Severity,
    pub resolved: usize,
    #[serde(rename = "segments_seconds", serialize_with = "segments_secs")]
    pub segments: [Duration; 5],
}

fn segments_secs<S: Serializer>(d: &[Duration; 5], s: S) -> Result<S::Ok, S::Error> {
    let v: Vec<i64> = d.iter().map(Duration::num_seconds).collect();
    v.serialize(s)
}

/// Every figure of one period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub period: Period,
    /// Incidents that started in the period.
    pub incidents: usize,
    pub resolved: usize,
    /// Incidents open at the end of the period (whenever they started).
    pub open_at_end: usize,
    pub mttr: MttrStat,
    pub severities: Vec<SeverityFigures>,
    pub phases: PhaseFigures,
    pub detection: DetectionFigures,
    pub deploys: DeployFigures,
    pub hours: HoursFigures,
    /// Every service with a resolved incident, highest mean MTTR first (the digest shows the first [`TOP_N`]).
    pub services: Vec<Ranked>,
    pub teams: Vec<Ranked>,
    pub phase_means: Vec<PhaseMeans>,
    /// Change-failure rate and failed-deployment recovery time (DORA).
    pub change_failure: ChangeFailure,
}

impl Figures {
    /// The figures of `period` over `rows` (rows outside it are ignored), without deploys.
    pub fn of(rows: &[IncidentRow], period: Period, tz: Tz, now: DateTime<Utc>) -> Figures {
        Figures::with_deploys(rows, &[], period, tz, now)
    }

    /// The figures of `period` over `rows` and the production `deploys` (those outside it are ignored).
    pub fn with_deploys(
        rows: &[IncidentRow],
        deploys: &[DeployRow],
        period: Period,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Figures {
        let started: Vec<&IncidentRow> = rows
            .iter()
            .filter(|r| period.contains(r.timeline.started_at))
            .collect();
        let resolved: Vec<&IncidentRow> = started
            .iter()
            .copied()
            .filter(|r| r.timeline.resolved.is_some())
            .collect();
        let with_deploy = started.iter().filter(|r| r.deploy_before).count();
        let (inside, outside): (Vec<&IncidentRow>, Vec<&IncidentRow>) = resolved
            .iter()
            .partition(|r| in_hours(r.timeline.started_at, tz));
        let mttrs = |rs: &[&IncidentRow]| rs.iter().filter_map(|r| r.mttr()).collect::<Vec<_>>();
        Figures {
            period,
            incidents: started.len(),
            resolved: resolved.len(),
            open_at_end: rows.iter().filter(|r| r.open_at(period.end)).count(),
            mttr: MttrStat::of(mttrs(&resolved)),
            severities: Severity::ALL
                .iter()
                .map(|&s| SeverityFigures::of(s, &started))
                .collect(),
            phases: PhaseFigures::of(&resolved, now),
            detection: DetectionFigures::of(&started),
            deploys: DeployFigures {
                incidents: started.len(),
                with_deploy,
                share: (!started.is_empty()).then(|| with_deploy as f64 / started.len() as f64),
            },
            hours: HoursFigures {
                in_hours: MttrStat::of(mttrs(&inside)),
                out_of_hours: MttrStat::of(mttrs(&outside)),
            },
            services: rank(&resolved, |r| r.service.as_deref()),
            teams: rank(&resolved, |r| r.team.as_deref()),
            phase_means: Severity::ALL
                .iter()
                .map(|&s| phase_means(s, &resolved, now))
                .collect(),
            change_failure: ChangeFailure::of(deploys, period),
        }
    }

    pub fn severity(&self, s: Severity) -> &SeverityFigures {
        &self.severities[s as usize]
    }
}

fn rank<'a>(
    resolved: &[&'a IncidentRow],
    key: impl Fn(&'a IncidentRow) -> Option<&'a str>,
) -> Vec<Ranked> {
    let mut groups: HashMap<&'a str, Vec<Duration>> = HashMap::new();
    for r in resolved {
        if let (Some(name), Some(m)) = (key(r), r.mttr()) {
            groups.entry(name).or_default().push(m);
        }
    }
    let mut out: Vec<Ranked> = groups
        .into_iter()
        .map(|(name, ds)| Ranked {
            name: name.to_string(),
            mttr: MttrStat::of(ds),
        })
        .collect();
    out.sort_by(|a, b| {
        b.mttr
            .mean
            .cmp(&a.mttr.mean)
            .then(b.mttr.count.cmp(&a.mttr.count))
            .then(a.name.cmp(&b.name))
    });
    out
}

fn phase_means(severity: Severity, resolved: &[&IncidentRow], now: DateTime<Utc>) -> PhaseMeans {
    let mut sums = [0i64; 5];
    let mut n = 0i64;
    for r in resolved.iter().filter(|r| r.severity == severity) {
        if let Some(seg) = r.segments(now) {
            n += 1;
            for (s, d) in sums.iter_mut().zip(seg) {
                *s += d.num_milliseconds();
            }
        }
    }
    PhaseMeans {
        severity,
        resolved: n as usize,
        segments: sums.map(|s| Duration::milliseconds(if n > 0 { s / n } else { 0 })),
    }
}

/// An incident that is still open.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenIncident {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub channel_id: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(rename = "open_for_seconds", serialize_with = "secs")]
    pub open_for: Duration,
    /// The phase it is in.
    pub phase: Option<PhaseKind>,
}

/// A digest: this period, the one before, and what is still open now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Digest {
    pub current: Figures,
    pub previous: Figures,
    /// Open now (started before the period's end), longest open first.
    pub still_open: Vec<OpenIncident>,
    pub generated_at: DateTime<Utc>,
    pub time_zone: String,
}

/// Builds the digest of `period` (and the period of equal length before it) from `rows`, which must hold every
/// incident that started in either period and every incident open at either period's end.
pub fn compute(rows: &[IncidentRow], period: Period, tz: Tz, now: DateTime<Utc>) -> Digest {
    compute_with_deploys(rows, &[], period, tz, now)
}

/// [`compute`] with the production deploys of both periods, for the change-failure figures.
pub fn compute_with_deploys(
    rows: &[IncidentRow],
    deploys: &[DeployRow],
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
) -> Digest {
    let mut still_open: Vec<OpenIncident> = rows
        .iter()
        .filter(|r| r.timeline.resolved.is_none() && r.timeline.started_at < period.end)
        .map(|r| OpenIncident {
            id: r.id.clone(),
            number: r.number,
            title: r.title.clone(),
            severity: r.severity,
            service: r.service.clone(),
            channel_id: r.channel_id.clone(),
            started_at: r.timeline.started_at,
            open_for: (now - r.timeline.started_at).max(Duration::zero()),
            phase: breakdown(&r.timeline, now).current(),
        })
        .collect();
    still_open.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then(a.number.cmp(&b.number))
    });
    Digest {
        current: Figures::with_deploys(rows, deploys, period, tz, now),
        previous: Figures::with_deploys(rows, deploys, period.previous(), tz, now),
        still_open,
        generated_at: now,
        time_zone: tz.name().to_string(),
    }
}

/// MTTR of one calendar month: over all severities and per severity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonthFigures {
    /// `2026-11`.
    pub month: String,
    pub incidents: usize,
    /// Over the month's resolved incidents of every severity.
    pub mttr: MttrStat,
    /// p50 and p90 of the same.
    pub distribution: Spread,
    pub severities: Vec<SeverityFigures>,
}

/// MTTR count, mean, median and max over all severities and per severity for each calendar month (in `tz`) that
/// has incidents starting in `period`, oldest first.
pub fn monthly(rows: &[IncidentRow], period: Period, tz: Tz) -> Vec<MonthFigures> {
    let mut months: Vec<((i32, u32), Vec<&IncidentRow>)> = Vec::new();
    let mut in_period: Vec<&IncidentRow> = rows
        .iter()
        .filter(|r| period.contains(r.timeline.started_at))
        .collect();
    in_period.sort_by_key(|r| r.timeline.started_at);
    for r in in_period {
        let local = r.timeline.started_at.with_timezone(&tz);
        let key = (local.year(), local.month());
        match months.last_mut() {
            Some((k, list)) if *k == key => list.push(r),
            _ => months.push((key, vec![r])),
        }
    }
    months
        .into_iter()
        .map(|((year, month), rs)| MonthFigures {
            month: format!("{year:04}-{month:02}"),
            incidents: rs.len(),
            mttr: MttrStat::of(rs.iter().filter_map(|r| r.mttr()).collect()),
            distribution: Spread::of(rs.iter().filter_map(|r| r.mttr()).collect()),
            severities: Severity::ALL
                .iter()
                .map(|&s| SeverityFigures::of(s, &rs))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phase::{Milestone, Stamp};
    use chrono::TimeZone;

    /// Monday 2026-11-16 00:00 UTC.
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
    }

    fn at(day: i64, h: i64, m: i64) -> DateTime<Utc> {
        monday() + Duration::days(day) + Duration::hours(h) + Duration::minutes(m)
    }

    fn mins(m: i64) -> Duration {
        Duration::minutes(m)
    }

    /// A resolved Slack incident: phases of `p` minutes each, starting at `start`.
    fn slack(n: i64, sev: Severity, start: DateTime<Utc>, p: [i64; 4]) -> IncidentRow {
        let mut tl = Timeline::new(start, start);
        let mut t = start;
        for (m, d) in Milestone::ALL.iter().zip(p) {
            t += mins(d);
            tl.record(*m, t, None).expect("in order");
        }
        row(n, sev, tl, Origin::Slack)
    }

    fn row(n: i64, sev: Severity, tl: Timeline, origin: Origin) -> IncidentRow {
        IncidentRow {
            id: format!("id-{n}"),
            number: n,
            title: format!("incident {n}"),
            severity: sev,
            service: Some("payments".into()),
            team: Some("team-payments".into()),
            detection: (origin == Origin::Slack).then_some(DetectionMethod::Alert),
            origin,
            timeline: tl,
            deploy_before: false,
            channel_id: Some(format!("C{n}")),
        }
    }

    fn baseline(
        n: i64,
        sev: Severity,
        start: DateTime<Utc>,
        ack: Option<i64>,
        resolved: i64,
    ) -> IncidentRow {
        let tl = Timeline {
            started_at: start,
            declared_at: start,
            acknowledged: ack.map(|a| Stamp::explicit(start + mins(a), None)),
            identified: None,
            fixed: None,
            resolved: Some(Stamp::explicit(start + mins(resolved), None)),
            closed_at: Some(start + mins(resolved)),
        };
        row(n, sev, tl, Origin::Baseline)
    }

    fn week() -> Period {
        Period::new(monday(), monday() + Duration::days(7))
    }

    fn now() -> DateTime<Utc> {
        monday() + Duration::days(7)
    }

    #[test]
    fn mean_median_and_max_of_a_severity_with_its_tier() {
        // P1s of 20, 40 and 90 minutes: mean 50m, median 40m (High), max 90m.
        let rows = vec![
            slack(1, Severity::P1, at(0, 10, 0), [5, 5, 5, 5]),
            slack(2, Severity::P1, at(1, 10, 0), [10, 10, 10, 10]),
            slack(3, Severity::P1, at(2, 10, 0), [30, 30, 20, 10]),
            slack(4, Severity::P2, at(2, 11, 0), [15, 15, 15, 15]),
        ];
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let p1 = f.severity(Severity::P1);
        assert_eq!(p1.incidents, 3);
        assert_eq!(p1.mttr.mean, Some(mins(50)));
        assert_eq!(p1.mttr.median, Some(mins(40)));
        assert_eq!(p1.mttr.max, Some(mins(90)));
        assert_eq!(p1.tier, Some(Tier::High));
        let p2 = f.severity(Severity::P2);
        assert_eq!(p2.mttr.median, Some(mins(60)));
        assert_eq!(p2.tier, Some(Tier::High));
        assert_eq!(f.severity(Severity::P3).mttr, MttrStat::default());
        assert_eq!(f.severity(Severity::P3).tier, None);
        assert_eq!(
            f.mttr.mean,
            Some(Duration::seconds(210 * 60 / 4)),
            "52m 30s"
        );
        assert_eq!(f.incidents, 4);
        assert_eq!(f.resolved, 4);
    }

    #[test]
    fn phase_shares_are_averaged_per_incident_and_slowest_is_counted() {
        // Incident A: 10/20/30/40 of 100 → shares .1 .2 .3 .4, slowest verification.
        // Incident B: 30/10/10/10 of 60 → shares .5 .1667 .1667 .1667, slowest detection.
        let rows = vec![
            slack(1, Severity::P2, at(0, 10, 0), [10, 20, 30, 40]),
            slack(2, Severity::P2, at(1, 10, 0), [30, 10, 10, 10]),
        ];
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let share = |k| f.phases.get(k).average_share.expect("share");
        assert!((share(PhaseKind::Detection) - 0.3).abs() < 1e-9);
        assert!((share(PhaseKind::Triage) - (0.2 + 1.0 / 6.0) / 2.0).abs() < 1e-9);
        assert!((share(PhaseKind::Verification) - (0.4 + 1.0 / 6.0) / 2.0).abs() < 1e-9);
        assert_eq!(f.phases.get(PhaseKind::Verification).slowest, 1);
        assert_eq!(f.phases.get(PhaseKind::Detection).slowest, 1);
        assert_eq!(f.phases.get(PhaseKind::Triage).slowest, 0);
        assert_eq!(f.phases.get(PhaseKind::Detection).mean, Some(mins(20)));
        assert_eq!(f.phases.incidents, 2);
    }

    #[test]
    fn incidents_nobody_said_how_were_detected_count_as_unknown_not_as_alerts() {
        let mut rows: Vec<IncidentRow> = (0..4)
            .map(|i| slack(i, Severity::P1, at(0, 10 + i, 0), [1, 1, 1, 1]))
            .collect();
        rows[0].detection = Some(DetectionMethod::Customer);
        rows[1].detection = Some(DetectionMethod::Unknown);
        rows[2].detection = Some(DetectionMethod::Unknown);
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let d = &f.detection;
        assert_eq!((d.alert, d.customer, d.unknown, d.imported), (1, 1, 2, 0));
        assert_eq!(d.known(), 2);
        assert_eq!(
            d.p1, 2,
            "the customer share is of P1s whose method is known"
        );
        assert_eq!(d.p1_customer_share, Some(0.5));
    }

    #[test]
    fn more_than_a_fifth_of_p1s_from_customers_raises_the_warning() {
        let mut rows: Vec<IncidentRow> = (0..5)
            .map(|i| slack(i, Severity::P1, at(0, 10 + i, 0), [1, 1, 1, 1]))
            .collect();
        rows[0].detection = Some(DetectionMethod::Customer);
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        assert_eq!(f.detection.p1_customer, 1);
        assert_eq!(f.detection.p1_customer_share, Some(0.2));
        assert!(
            !f.detection.customer_warning,
            "exactly 20 % is not more than 20 %"
        );
        rows[1].detection = Some(DetectionMethod::Customer);
        rows.push(slack(9, Severity::P2, at(1, 10, 0), [1, 1, 1, 1]));
        rows[5].detection = Some(DetectionMethod::Engineer);
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        assert_eq!(
            (
                f.detection.alert,
                f.detection.customer,
                f.detection.engineer
            ),
            (3, 2, 1)
        );
        assert!(f.detection.customer_warning);
    }

    #[test]
    fn deploy_share_counts_incidents_with_a_deploy_in_the_two_hours_before() {
        let mut rows: Vec<IncidentRow> = (0..4)
            .map(|i| slack(i, Severity::P2, at(0, 10 + i, 0), [1, 1, 1, 1]))
            .collect();
        rows[2].deploy_before = true;
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        assert_eq!(f.deploys.with_deploy, 1);
        assert_eq!(f.deploys.share, Some(0.25));
    }

    #[test]
    fn working_hours_are_weekdays_nine_to_six_in_the_digest_time_zone() {
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        // Monday 08:30 UTC = 09:30 in Berlin (CET): in hours there, not in UTC.
        assert!(in_hours(at(0, 8, 30), berlin));
        assert!(!in_hours(at(0, 8, 30), chrono_tz::UTC));
        // 18:00 sharp is out of hours; 17:59 is in.
        assert!(in_hours(at(0, 17, 59), chrono_tz::UTC));
        assert!(!in_hours(at(0, 18, 0), chrono_tz::UTC));
        // Saturday noon.
        assert!(!in_hours(at(5, 12, 0), chrono_tz::UTC));
    }

    #[test]
    fn out_of_hours_and_in_hours_mttr_are_split_by_start_time() {
        let rows = vec![
            slack(1, Severity::P2, at(0, 10, 0), [5, 5, 5, 5]), // in hours, 20m
            slack(2, Severity::P2, at(1, 14, 0), [10, 10, 10, 10]), // in hours, 40m
            slack(3, Severity::P2, at(2, 23, 0), [30, 30, 30, 30]), // night, 120m
            slack(4, Severity::P2, at(5, 12, 0), [15, 15, 15, 15]), // Saturday, 60m
        ];
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        assert_eq!(f.hours.in_hours.count, 2);
        assert_eq!(f.hours.in_hours.mean, Some(mins(30)));
        assert_eq!(f.hours.out_of_hours.count, 2);
        assert_eq!(f.hours.out_of_hours.mean, Some(mins(90)));
    }

    #[test]
    fn services_and_teams_are_ranked_by_mean_mttr() {
        let mut rows = vec![
            slack(1, Severity::P2, at(0, 10, 0), [5, 5, 5, 5]),
            slack(2, Severity::P2, at(1, 10, 0), [20, 20, 20, 20]),
            slack(3, Severity::P2, at(2, 10, 0), [10, 10, 10, 10]),
            slack(4, Severity::P2, at(3, 10, 0), [1, 1, 1, 1]),
        ];
        rows[1].service = Some("checkout".into());
        rows[1].team = Some("team-shop".into());
        rows[2].service = Some("search".into());
        rows[2].team = Some("team-shop".into());
        rows[3].service = None;
        rows[3].team = None;
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let names: Vec<_> = f.services.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["checkout", "search", "payments"]);
        assert_eq!(f.teams[0].name, "team-shop");
        assert_eq!(f.teams[0].mttr.mean, Some(mins(60)), "(80 + 40) / 2");
        assert_eq!(f.teams[1].mttr.mean, Some(mins(20)));
    }

    #[test]
    fn baseline_incidents_count_for_mttr_but_not_for_phase_shares() {
        let rows = vec![
            slack(1, Severity::P1, at(0, 10, 0), [10, 10, 10, 10]),
            baseline(2, Severity::P1, at(1, 10, 0), Some(5), 80),
            baseline(3, Severity::P1, at(2, 10, 0), None, 30),
        ];
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let p1 = f.severity(Severity::P1);
        assert_eq!(p1.mttr.count, 3);
        assert_eq!(p1.mttr.median, Some(mins(40)));
        assert_eq!(p1.mttr.mean, Some(mins(50)));
        assert_eq!(f.phases.incidents, 1);
        assert_eq!(f.phases.unknown, 2);
        assert_eq!(f.phases.get(PhaseKind::Detection).average_share, Some(0.25));
        assert_eq!(f.detection.imported, 2);
        assert_eq!(f.detection.unknown, 0);
        assert_eq!(f.detection.p1, 1, "only P1s with a known method");
        // Chart segments: detection (10 + 5 + 0) / 3, unknown (0 + 75 + 30) / 3.
        let means = &f.phase_means[0];
        assert_eq!(means.resolved, 3);
        assert_eq!(means.segments[0], mins(5));
        assert_eq!(
            means.segments[1],
            Duration::milliseconds(mins(10).num_milliseconds() / 3)
        );
        assert_eq!(means.segments[4], mins(35));
        let total = means.segments.iter().fold(Duration::zero(), |a, d| a + *d);
        assert!((total - mins(50)).num_milliseconds().abs() < 10);
    }

    #[test]
    fn previous_period_and_still_open_incidents_are_reported() {
        let mut open = slack(7, Severity::P1, at(6, 20, 0), [0, 0, 0, 0]);
        open.timeline = Timeline::new(at(6, 20, 0), at(6, 20, 0));
        open.timeline
            .record(Milestone::Acknowledged, at(6, 20, 10), None)
            .expect("ack");
        let rows = vec![
            slack(1, Severity::P2, at(-3, 10, 0), [10, 10, 10, 10]),
            slack(2, Severity::P2, at(-2, 10, 0), [20, 20, 20, 20]),
            slack(3, Severity::P2, at(2, 10, 0), [5, 5, 5, 5]),
            open,
        ];
        let d = compute(&rows, week(), chrono_tz::UTC, now());
        assert_eq!(d.previous.incidents, 2);
        assert_eq!(d.previous.severity(Severity::P2).mttr.mean, Some(mins(60)));
        assert_eq!(d.current.incidents, 2);
        assert_eq!(d.current.resolved, 1);
        assert_eq!(d.current.open_at_end, 1);
        assert_eq!(d.previous.open_at_end, 0);
        assert_eq!(d.still_open.len(), 1);
        assert_eq!(d.still_open[0].number, 7);
        assert_eq!(d.still_open[0].open_for, Duration::hours(4));
        assert_eq!(d.still_open[0].phase, Some(PhaseKind::Triage));
    }

    #[test]
    fn filters_match_service_team_and_severity_case_insensitively() {
        let r = slack(1, Severity::P1, at(0, 10, 0), [1, 1, 1, 1]);
        let f = |service: Option<&str>, team: Option<&str>, severity| Filter {
            service: service.map(String::from),
            team: team.map(String::from),
            severity,
        };
        assert!(f(None, None, None).matches(&r));
        assert!(f(Some("Payments"), None, None).matches(&r));
        assert!(f(None, Some("team-payments"), Some(Severity::P1)).matches(&r));
        assert!(!f(Some("search"), None, None).matches(&r));
        assert!(!f(None, None, Some(Severity::P2)).matches(&r));
        assert_eq!(
            f(Some("payments"), Some("t"), None).label(),
            "team t, service payments"
        );
    }

    #[test]
    fn monthly_figures_group_by_calendar_month_in_the_time_zone() {
        // 2026-10-31 23:30 UTC is 00:30 on 1 November in Berlin (CET, UTC+1, after summer time ended).
        let late_october = Utc.with_ymd_and_hms(2026, 10, 31, 23, 30, 0).unwrap();
        let rows = vec![
            slack(1, Severity::P1, late_october, [10, 10, 10, 10]),
            slack(2, Severity::P1, at(0, 10, 0), [20, 20, 20, 20]),
            slack(
                3,
                Severity::P1,
                Utc.with_ymd_and_hms(2026, 10, 5, 9, 0, 0).unwrap(),
                [5, 5, 5, 5],
            ),
        ];
        let period = Period::new(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(), now());
        let utc = monthly(&rows, period, chrono_tz::UTC);
        assert_eq!(utc.len(), 2);
        assert_eq!((utc[0].month.as_str(), utc[0].incidents), ("2026-10", 2));
        assert_eq!(utc[0].severities[0].mttr.mean, Some(mins(30)));
        assert_eq!(utc[0].severities[0].mttr.max, Some(mins(40)));
        let berlin = monthly(&rows, period, "Europe/Berlin".parse().expect("tz"));
        assert_eq!(
            (berlin[1].month.as_str(), berlin[1].incidents),
            ("2026-11", 2)
        );
        assert_eq!(berlin[1].severities[0].mttr.median, Some(mins(60)));
    }

    #[test]
    fn phases_and_severities_give_p50_and_p90_with_n_from_five_incidents() {
        // Triage of 10, 20, 30, 40 and 100 minutes: p50 30m, p90 = 40 + 0.6 × 60 = 76m.
        let mut rows: Vec<IncidentRow> = [10, 20, 30, 40, 100]
            .iter()
            .enumerate()
            .map(|(i, &t)| slack(i as i64, Severity::P2, at(i as i64, 10, 0), [5, t, 5, 5]))
            .collect();
        // A baseline incident does not count in phase figures.
        rows.push(baseline(9, Severity::P2, at(6, 10, 0), Some(1), 500));
        let f = Figures::of(&rows, week(), chrono_tz::UTC, now());
        let triage = f.phases.get(PhaseKind::Triage).distribution;
        assert_eq!(
            (triage.n, triage.p50, triage.p90),
            (5, Some(mins(30)), Some(mins(76)))
        );
        assert_eq!(
            f.phases.get(PhaseKind::Detection).distribution.p90,
            Some(mins(5))
        );
        // P2 MTTRs 25, 35, 45, 55, 115 and the baseline's 500: p50 = 50m, p90 = 115 + 0.5 × 385 = 307m 30s.
        let p2 = f.severity(Severity::P2).distribution;
        assert_eq!(p2.n, 6);
        assert_eq!(p2.p50, Some(mins(50)));
        assert_eq!(p2.p90, Some(mins(307) + Duration::seconds(30)));
        // Four is not enough.
        let f = Figures::of(&rows[..4], week(), chrono_tz::UTC, now());
        let triage = f.phases.get(PhaseKind::Triage).distribution;
        assert_eq!((triage.n, triage.p50, triage.p90), (4, None, None));
    }

    #[test]
    fn a_deploy_before_impact_of_an_incident_on_its_service_or_a_dependent_one_failed() {
        let inc = |services: &[&str], start: DateTime<Utc>, resolved: Option<i64>| LinkIncident {
            services: services.iter().map(|s| s.to_string()).collect(),
            started_at: start,
            resolved_at: resolved.map(|m| start + mins(m)),
        };
        // An incident on checkout (which depends on payments) at 12:00, resolved 13:00; another on payments
        // at Tuesday 12:00, still open.
        let incidents = vec![
            inc(&["checkout", "payments"], at(0, 12, 0), Some(60)),
            inc(&["payments"], at(1, 12, 0), None),
        ];
        let deploys = vec![
            ("Payments".to_string(), at(0, 10, 0)), // exactly 2 h before: failed, recovered after 3 h
            ("checkout".to_string(), at(0, 11, 30)), // failed, recovered after 1 h 30
            ("search".to_string(), at(0, 11, 0)),   // not a service of the incident
            ("checkout".to_string(), at(0, 9, 59)), // 2 h 1 min before: not linked
            ("checkout".to_string(), at(0, 12, 1)), // after the start: not linked
            ("payments".to_string(), at(1, 11, 0)), // failed, incident still open
        ];
        let rows = link_deploys(&deploys, &incidents);
        let failed: Vec<bool> = rows.iter().map(|d| d.failed).collect();
        assert_eq!(failed, vec![true, true, false, false, false, true]);
        assert_eq!(rows[0].recovered_at, Some(at(0, 13, 0)));
        assert_eq!(rows[5].recovered_at, None);
        let c = ChangeFailure::of(&rows, week());
        assert_eq!((c.deploys, c.failed, c.unrecovered), (6, 3, 1));
        assert_eq!(c.rate, Some(0.5));
        assert_eq!((c.recovery.n, c.recovery.p50), (2, None), "not enough data");
        // Five recovered failures: 1, 2, 3, 4 and 10 hours → p50 3h, p90 4h + 0.6 × 6h = 7h 36m.
        let rows: Vec<DeployRow> = [1, 2, 3, 4, 10]
            .iter()
            .map(|&h| DeployRow {
                deployed_at: at(2, 0, 0),
                failed: true,
                recovered_at: Some(at(2, h, 0)),
            })
            .chain(std::iter::once(DeployRow {
                deployed_at: at(-1, 0, 0), // the week before: left out
                failed: true,
                recovered_at: Some(at(-1, 1, 0)),
            }))
            .collect();
        let c = ChangeFailure::of(&rows, week());
        assert_eq!((c.deploys, c.failed, c.recovery.n), (5, 5, 5));
        assert_eq!(c.recovery.p50, Some(Duration::hours(3)));
        assert_eq!(c.recovery.p90, Some(Duration::hours(7) + mins(36)));
    }

    #[test]
    fn an_empty_period_has_no_means_and_no_warning() {
        let f = Figures::of(&[], week(), chrono_tz::UTC, now());
        assert_eq!(f.incidents, 0);
        assert_eq!(f.mttr.mean, None);
        assert!(f.phases.phases.iter().all(|p| p.average_share.is_none()));
        assert!(!f.detection.customer_warning);
        assert_eq!(f.deploys.share, None);
        assert!(f.services.is_empty());
    }
}
