//! MTTR math: the four recovery phases of a timeline, their shares, the slowest phase, DORA-style tiers per severity,
//! medians, and share bars (SPEC §1, §5).

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::phase::{Milestone, Timeline};
use super::severity::Severity;

/// One of the four phases MTTR is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    /// started → acknowledged.
    Detection,
    /// acknowledged → identified.
    Triage,
    /// identified → fixed.
    Remediation,
    /// fixed → resolved.
    Verification,
}

impl PhaseKind {
    /// The phases in order.
    pub const ALL: [PhaseKind; 4] = [
        PhaseKind::Detection,
        PhaseKind::Triage,
        PhaseKind::Remediation,
        PhaseKind::Verification,
    ];

    /// `"Detection"`, `"Triage"`, `"Remediation"`, `"Verification"`.
    pub fn label(self) -> &'static str {
        match self {
            PhaseKind::Detection => "Detection",
            PhaseKind::Triage => "Triage",
            PhaseKind::Remediation => "Remediation",
            PhaseKind::Verification => "Verification",
        }
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Detection => "detection",
            PhaseKind::Triage => "triage",
            PhaseKind::Remediation => "remediation",
            PhaseKind::Verification => "verification",
        }
    }

    /// Position in [`PhaseKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            PhaseKind::Detection => 0,
            PhaseKind::Triage => 1,
            PhaseKind::Remediation => 2,
            PhaseKind::Verification => 3,
        }
    }

    /// The milestone that starts this phase; `None` for detection, which starts at `started_at`.
    pub fn start(self) -> Option<Milestone> {
        match self {
            PhaseKind::Detection => None,
            PhaseKind::Triage => Some(Milestone::Acknowledged),
            PhaseKind::Remediation => Some(Milestone::Identified),
            PhaseKind::Verification => Some(Milestone::Fixed),
        }
    }

    /// The milestone that ends this phase.
    pub fn end(self) -> Milestone {
        match self {
            PhaseKind::Detection => Milestone::Acknowledged,
            PhaseKind::Triage => Milestone::Identified,
            PhaseKind::Remediation => Milestone::Fixed,
            PhaseKind::Verification => Milestone::Resolved,
        }
    }

    /// The phase a milestone ends.
    pub fn ended_by(m: Milestone) -> Self {
        Self::ALL[m.index()]
    }
}

impl fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One phase of one incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseSpan {
    pub kind: PhaseKind,
    /// Never negative; zero when skipped or not started yet.
    pub duration: Duration,
    /// A responder skipped it (its start milestone was filled in by the skip rule), so it counts as 0.
    pub skipped: bool,
    /// The incident is in this phase now; `duration` runs to `now`.
    pub ongoing: bool,
}

/// The MTTR breakdown of one incident. `mttr` is the sum of the phases: resolved − started once resolved, the
/// elapsed time so far otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Breakdown {
    pub phases: [PhaseSpan; 4],
    pub mttr: Duration,
    pub resolved: bool,
}

/// Splits a timeline into its four phases. For an ongoing incident the current phase runs to `now` (`ongoing`),
/// and later phases are zero, neither skipped nor ongoing (not started).
pub fn breakdown(t: &Timeline, now: DateTime<Utc>) -> Breakdown {
    let mut cursor = t.started_at;
    let mut current_found = false;
    let mut phases = PhaseKind::ALL.map(|kind| PhaseSpan {
        kind,
        duration: Duration::zero(),
        skipped: false,
        ongoing: false,
    });
    for span in phases.iter_mut() {
        if current_found {
            break;
        }
        let kind = span.kind;
        let start_implicit = kind
            .start()
            .and_then(|m| t.get(m))
            .is_some_and(|s| s.implicit);
        match t.get(kind.end()) {
            Some(end) => {
                let d = non_negative(end.at - cursor);
                cursor = cursor.max(end.at);
                span.duration = d;
                span.skipped = start_implicit && d.is_zero();
            }
            None => {
                let later_recorded = Milestone::ALL[kind.end().index()..]
                    .iter()
                    .any(|m| t.get(*m).is_some());
                if later_recorded {
                    // Not reachable through `Timeline`'s operations; treat a hole as a skipped phase.
                    span.skipped = true;
                } else {
                    span.duration = non_negative(now - cursor);
                    span.ongoing = true;
                    current_found = true;
                }
            }
        }
    }
    let mttr = phases
        .iter()
        .fold(Duration::zero(), |acc, p| acc + p.duration);
    Breakdown {
        phases,
        mttr,
        resolved: t.resolved.is_some(),
    }
}

fn non_negative(d: Duration) -> Duration {
    d.max(Duration::zero())
}

impl Breakdown {
    /// The span of one phase.
    pub fn get(&self, kind: PhaseKind) -> &PhaseSpan {
        &self.phases[kind.index()]
    }

    /// The phase's share of MTTR, in 0..=1; 0 when MTTR is 0.
    pub fn share(&self, kind: PhaseKind) -> f64 {
        let total = self.mttr.num_milliseconds();
        if total <= 0 {
            return 0.0;
        }
        let part = self.get(kind).duration.num_milliseconds() as f64 / total as f64;
        part.clamp(0.0, 1.0)
    }

    /// The phase that took longest (ties go to the earliest); `None` when every phase is zero.
    pub fn slowest(&self) -> Option<PhaseKind> {
        let mut best: Option<&PhaseSpan> = None;
        for p in &self.phases {
            if p.duration > Duration::zero() && best.is_none_or(|b| p.duration > b.duration) {
                best = Some(p);
            }
        }
        best.map(|p| p.kind)
    }

    /// The phase the incident is in now, `None` once resolved.
    pub fn current(&self) -> Option<PhaseKind> {
        self.phases.iter().find(|p| p.ongoing).map(|p| p.kind)
    }
}

/// DORA-style performance tier of a resolved incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Elite,
    High,
    Medium,
    Low,
}

impl Tier {
    /// Best first.
    pub const ALL: [Tier; 4] = [Tier::Elite, Tier::High, Tier::Medium, Tier::Low];

    /// `"elite"`, `"high"`, `"medium"`, `"low"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Elite => "elite",
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
        }
    }

    /// `"Elite"`, `"High"`, `"Medium"`, `"Low"`.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Elite => "Elite",
            Tier::High => "High",
            Tier::Medium => "Medium",
            Tier::Low => "Low",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Upper bounds (exclusive) of Elite, High and Medium for a severity, in minutes.
fn tier_limits_minutes(sev: Severity) -> [i64; 3] {
    match sev {
        Severity::P1 => [30, 120, 360],
        Severity::P2 => [60, 240, 720],
        Severity::P3 => [240, 480, 1440],
    }
}

/// The tier of an incident of severity `sev` that took `mttr` (half-open intervals: a P1 of exactly 30 min is High).
pub fn tier(sev: Severity, mttr: Duration) -> Tier {
    let limits = tier_limits_minutes(sev);
    limits
        .iter()
        .position(|&limit| mttr < Duration::minutes(limit))
        .map_or(Tier::Low, |i| Tier::ALL[i])
}

/// The MTTR range `[from, to)` of a tier for a severity; `to` is `None` for Low.
pub fn tier_bounds(sev: Severity, tier: Tier) -> (Duration, Option<Duration>) {
    let limits = tier_limits_minutes(sev);
    let i = tier as usize;
    let from = if i == 0 {
        Duration::zero()
    } else {
        Duration::minutes(limits[i - 1])
    };
    (from, limits.get(i).map(|&m| Duration::minutes(m)))
}

/// A share bar of `width` cells: `bar(0.5, 4)` is `"██░░"`. Shares outside 0..=1 (or NaN) are clamped.
pub fn bar(share: f64, width: usize) -> String {
    let share = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    let filled = ((share * width as f64).round() as usize).min(width);
    let mut s = String::with_capacity(width * 3);
    s.extend(std::iter::repeat_n('█', filled));
    s.extend(std::iter::repeat_n('░', width - filled));
    s
}

/// The median (mean of the middle two for an even count); sorts the slice. `None` when empty.
pub fn median(durations: &mut [Duration]) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    durations.sort();
    let mid = durations.len() / 2;
    if durations.len() % 2 == 1 {
        Some(durations[mid])
    } else {
        let (a, b) = (durations[mid - 1], durations[mid]);
        Some(a + (b - a) / 2)
    }
}

/// The `p`-th percentile (0.0–1.0) with linear interpolation between the two nearest ranks — the same
/// definition as PostgreSQL's `percentile_cont(p)`, so a figure can be checked against SQL. Sorts the slice;
/// `None` when empty. Millisecond precision (the interpolated point is rounded to the nearest millisecond).
pub fn percentile(durations: &mut [Duration], p: f64) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    durations.sort();
    let p = p.clamp(0.0, 1.0);
    let rank = p * (durations.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (durations[lo], durations[hi]);
    let frac = rank - lo as f64;
    let between = ((b - a).num_milliseconds() as f64 * frac).round() as i64;
    Some(a + Duration::milliseconds(between))
}

/// Fewer samples than this and a distribution says "not enough data" instead of a p50 and p90.
pub const MIN_SAMPLES: usize = 5;

/// The p50 and p90 ([`percentile`], PostgreSQL's `percentile_cont`) of some durations, with how many there are;
/// both `None` under [`MIN_SAMPLES`] ("not enough data").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    pub n: usize,
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
}

impl Spread {
    pub fn of(mut durations: Vec<Duration>) -> Spread {
        let n = durations.len();
        if n < MIN_SAMPLES {
            return Spread {
                n,
                p50: None,
                p90: None,
            };
        }
        Spread {
            n,
            p50: percentile(&mut durations, 0.5),
            p90: percentile(&mut durations, 0.9),
        }
    }

    /// `"p50 12m · p90 40m (n 7)"`, or `"not enough data (n 3)"`.
    pub fn label(&self, fmt: impl Fn(Duration) -> String) -> String {
        match (self.p50, self.p90) {
            (Some(a), Some(b)) => format!("p50 {} · p90 {} (n {})", fmt(a), fmt(b), self.n),
            _ => format!("not enough data (n {})", self.n),
        }
    }
}

impl Serialize for Spread {
    /// `{"n": 7, "p50_seconds": 720, "p90_seconds": 2400}` (nulls under [`MIN_SAMPLES`]); seconds with
    /// millisecond decimals, so they can be compared with SQL.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let secs = |d: Option<Duration>| d.map(|d| d.num_milliseconds() as f64 / 1000.0);
        let mut st = s.serialize_struct("Spread", 3)?;
        st.serialize_field("n", &self.n)?;
        st.serialize_field("p50_seconds", &secs(self.p50))?;
        st.serialize_field("p90_seconds", &secs(self.p90))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phase::CorrectionTarget;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn mins(m: i64) -> Duration {
        Duration::minutes(m)
    }

    fn hms(h: i64, m: i64, s: i64) -> Duration {
        Duration::hours(h) + Duration::minutes(m) + Duration::seconds(s)
    }

    fn resolved_in_order() -> Timeline {
        let mut tl = Timeline::new(t(14, 0), t(14, 5));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.record(Milestone::Identified, t(14, 30), None).unwrap();
        tl.record(Milestone::Fixed, t(14, 45), None).unwrap();
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        tl
    }

    #[test]
    fn resolved_incident_splits_mttr_into_four_phases() {
        let b = breakdown(&resolved_in_order(), t(18, 0));
        let durations: Vec<_> = b.phases.iter().map(|p| p.duration).collect();
        assert_eq!(durations, vec![mins(10), mins(20), mins(15), mins(15)]);
        assert_eq!(b.mttr, mins(60));
        assert!(b.resolved);
        assert!(b.phases.iter().all(|p| !p.skipped && !p.ongoing));
        assert_eq!(b.current(), None);
    }

    #[test]
    fn shares_add_up_and_slowest_is_the_longest_phase() {
        let b = breakdown(&resolved_in_order(), t(18, 0));
        assert!((b.share(PhaseKind::Triage) - 20.0 / 60.0).abs() < 1e-9);
        let total: f64 = PhaseKind::ALL.iter().map(|k| b.share(*k)).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(b.slowest(), Some(PhaseKind::Triage));
    }

    #[test]
    fn slowest_breaks_ties_towards_the_earliest_phase() {
        let b = breakdown(&resolved_in_order(), t(18, 0));
        let mut tied = b.clone();
        tied.phases[1].duration = mins(5);
        assert_eq!(
            tied.slowest(),
            Some(PhaseKind::Remediation),
            "15m remediation ties 15m verification"
        );
        tied.phases[0].duration = mins(15);
        assert_eq!(tied.slowest(), Some(PhaseKind::Detection));
    }

    #[test]
    fn fixed_before_identified_marks_remediation_skipped() {
        let mut tl = Timeline::new(t(14, 0), t(14, 0));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.record(Milestone::Fixed, t(14, 40), None).unwrap();
        tl.record(Milestone::Resolved, t(14, 50), None).unwrap();
        let b = breakdown(&tl, t(15, 0));
        assert_eq!(b.get(PhaseKind::Triage).duration, mins(30));
        assert!(!b.get(PhaseKind::Triage).skipped);
        let rem = b.get(PhaseKind::Remediation);
        assert!(rem.skipped);
        assert_eq!(rem.duration, Duration::zero());
        assert_eq!(b.mttr, mins(50));
    }

    #[test]
    fn resolving_straight_away_skips_everything_after_detection() {
        let mut tl = Timeline::new(t(14, 0), t(14, 0));
        tl.record(Milestone::Resolved, t(14, 20), None).unwrap();
        let b = breakdown(&tl, t(15, 0));
        assert_eq!(b.get(PhaseKind::Detection).duration, mins(20));
        assert!(!b.get(PhaseKind::Detection).skipped);
        for k in [
            PhaseKind::Triage,
            PhaseKind::Remediation,
            PhaseKind::Verification,
        ] {
            assert!(b.get(k).skipped, "{k}");
        }
        assert_eq!(b.slowest(), Some(PhaseKind::Detection));
    }

    #[test]
    fn a_corrected_skipped_milestone_is_no_longer_skipped() {
        let mut tl = Timeline::new(t(14, 0), t(14, 0));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.record(Milestone::Fixed, t(14, 40), None).unwrap();
        tl.correct(
            CorrectionTarget::Milestone(Milestone::Identified),
            t(14, 25),
        )
        .unwrap();
        let b = breakdown(&tl, t(15, 0));
        assert_eq!(b.get(PhaseKind::Triage).duration, mins(15));
        assert_eq!(b.get(PhaseKind::Remediation).duration, mins(15));
        assert!(!b.get(PhaseKind::Remediation).skipped);
    }

    #[test]
    fn ongoing_incident_runs_the_current_phase_to_now() {
        let mut tl = Timeline::new(t(14, 0), t(14, 5));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        let b = breakdown(&tl, t(14, 25));
        assert!(!b.resolved);
        assert_eq!(b.current(), Some(PhaseKind::Triage));
        let triage = b.get(PhaseKind::Triage);
        assert!(triage.ongoing);
        assert_eq!(triage.duration, mins(15));
        for k in [PhaseKind::Remediation, PhaseKind::Verification] {
            let p = b.get(k);
            assert_eq!(p.duration, Duration::zero());
            assert!(!p.ongoing && !p.skipped);
        }
        assert_eq!(b.mttr, mins(25));
    }

    #[test]
    fn a_now_before_the_last_stamp_gives_zero_not_negative() {
        let mut tl = Timeline::new(t(14, 0), t(14, 5));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        let b = breakdown(&tl, t(13, 0));
        assert!(b.phases.iter().all(|p| p.duration >= Duration::zero()));
        assert_eq!(b.get(PhaseKind::Triage).duration, Duration::zero());
    }

    #[test]
    fn reopened_incident_measures_mttr_to_the_final_resolution() {
        let mut tl = resolved_in_order();
        tl.reopen(t(15, 10), mins(30)).unwrap();
        tl.record(Milestone::Fixed, t(15, 20), None).unwrap();
        tl.record(Milestone::Resolved, t(15, 40), None).unwrap();
        let b = breakdown(&tl, t(16, 0));
        assert_eq!(b.mttr, mins(100));
        assert_eq!(b.get(PhaseKind::Remediation).duration, mins(50));
        assert_eq!(b.get(PhaseKind::Verification).duration, mins(20));
    }

    #[test]
    fn share_is_zero_when_mttr_is_zero() {
        let mut tl = Timeline::new(t(14, 0), t(14, 0));
        tl.record(Milestone::Resolved, t(14, 0), None).unwrap();
        let b = breakdown(&tl, t(14, 0));
        assert_eq!(b.mttr, Duration::zero());
        assert_eq!(b.share(PhaseKind::Detection), 0.0);
        assert_eq!(b.slowest(), None);
    }

    #[test]
    fn p1_tier_boundaries_are_half_open() {
        let p1 = Severity::P1;
        assert_eq!(tier(p1, Duration::zero()), Tier::Elite);
        assert_eq!(tier(p1, hms(0, 29, 59)), Tier::Elite);
        assert_eq!(tier(p1, mins(30)), Tier::High);
        assert_eq!(tier(p1, hms(1, 59, 59)), Tier::High);
        assert_eq!(tier(p1, hms(2, 0, 0)), Tier::Medium);
        assert_eq!(tier(p1, hms(5, 59, 59)), Tier::Medium);
        assert_eq!(tier(p1, hms(6, 0, 0)), Tier::Low);
        assert_eq!(tier(p1, Duration::days(30)), Tier::Low);
    }

    #[test]
    fn p2_tier_boundaries_are_half_open() {
        let p2 = Severity::P2;
        assert_eq!(tier(p2, hms(0, 59, 59)), Tier::Elite);
        assert_eq!(tier(p2, hms(1, 0, 0)), Tier::High);
        assert_eq!(tier(p2, hms(3, 59, 59)), Tier::High);
        assert_eq!(tier(p2, hms(4, 0, 0)), Tier::Medium);
        assert_eq!(tier(p2, hms(11, 59, 59)), Tier::Medium);
        assert_eq!(tier(p2, hms(12, 0, 0)), Tier::Low);
    }

    #[test]
    fn p3_tier_boundaries_are_half_open() {
        let p3 = Severity::P3;
        assert_eq!(tier(p3, hms(3, 59, 59)), Tier::Elite);
        assert_eq!(tier(p3, hms(4, 0, 0)), Tier::High);
        assert_eq!(tier(p3, hms(7, 59, 59)), Tier::High);
        assert_eq!(tier(p3, hms(8, 0, 0)), Tier::Medium);
        assert_eq!(tier(p3, hms(23, 59, 59)), Tier::Medium);
        assert_eq!(tier(p3, hms(24, 0, 0)), Tier::Low);
    }

    #[test]
    fn tier_bounds_agree_with_tier() {
        assert_eq!(
            tier_bounds(Severity::P1, Tier::High),
            (mins(30), Some(mins(120)))
        );
        assert_eq!(tier_bounds(Severity::P3, Tier::Low), (mins(1440), None));
        for sev in Severity::ALL {
            for tr in Tier::ALL {
                let (from, to) = tier_bounds(sev, tr);
                assert_eq!(tier(sev, from), tr, "{sev} {tr}");
                if let Some(to) = to {
                    assert_eq!(tier(sev, to - Duration::seconds(1)), tr, "{sev} {tr}");
                }
            }
        }
    }

    #[test]
    fn bars_fill_in_proportion_to_the_share() {
        assert_eq!(bar(0.0, 4), "░░░░");
        assert_eq!(bar(0.5, 4), "██░░");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(1.7, 4), "████");
        assert_eq!(bar(-1.0, 3), "░░░");
        assert_eq!(bar(f64::NAN, 2), "░░");
        assert_eq!(bar(0.3, 10).chars().count(), 10);
        assert_eq!(bar(0.5, 0), "");
    }

    #[test]
    fn median_of_odd_even_and_empty_lists() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [mins(30), mins(10), mins(20)]), Some(mins(20)));
        assert_eq!(
            median(&mut [mins(40), mins(10), mins(20), mins(30)]),
            Some(mins(25))
        );
        assert_eq!(median(&mut [mins(7)]), Some(mins(7)));
        // percentile_cont: rank = p·(n−1), interpolated between its neighbours.
        assert_eq!(percentile(&mut [], 0.9), None);
        assert_eq!(percentile(&mut [mins(7)], 0.9), Some(mins(7)));
        let mut ten: Vec<Duration> = (1..=10).rev().map(mins).collect();
        // rank 8.1 → 9 min + 0.1 × 1 min = 9 min 6 s
        assert_eq!(
            percentile(&mut ten, 0.9),
            Some(mins(9) + Duration::seconds(6))
        );
        assert_eq!(
            percentile(&mut ten, 0.5),
            Some(mins(5) + Duration::seconds(30))
        );
        assert_eq!(percentile(&mut ten, 1.0), Some(mins(10)));
    }

    #[test]
    fn a_spread_needs_five_samples_and_gives_p50_and_p90() {
        let four: Vec<Duration> = (1..=4).map(mins).collect();
        let s = Spread::of(four);
        assert_eq!((s.n, s.p50, s.p90), (4, None, None));
        assert_eq!(
            s.label(|d| d.num_minutes().to_string()),
            "not enough data (n 4)"
        );
        // 5 samples 10, 20, 30, 40, 100 min: p50 = rank 2 = 30m; p90 = rank 3.6 = 40 + 0.6 × 60 = 76m.
        let s = Spread::of(vec![mins(100), mins(10), mins(40), mins(20), mins(30)]);
        assert_eq!((s.n, s.p50, s.p90), (5, Some(mins(30)), Some(mins(76))));
        assert_eq!(
            s.label(|d| format!("{}m", d.num_minutes())),
            "p50 30m · p90 76m (n 5)"
        );
        let json = serde_json::to_value(s).expect("json");
        assert_eq!(json["p90_seconds"], 4560.0);
        assert_eq!(json["n"], 5);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Record(usize, i64),
        Correct(Option<usize>, i64),
        Reopen(i64),
        Close(i64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..4, -120i64..600).prop_map(|(m, at)| Op::Record(m, at)),
            (proptest::option::of(0usize..4), -120i64..600).prop_map(|(m, at)| Op::Correct(m, at)),
            (-120i64..600).prop_map(Op::Reopen),
            (-120i64..600).prop_map(Op::Close),
        ]
    }

    proptest::proptest! {
        #[test]
        fn durations_are_never_negative_for_any_sequence_of_changes(
            started in -60i64..60,
            ops in proptest::collection::vec(op(), 0..25),
            now in -120i64..700,
        ) {
            let base = t(14, 0);
            let at = |m: i64| base + Duration::minutes(m);
            let mut tl = Timeline::new(at(started), base);
            for op in ops {
                match op {
                    Op::Record(m, when) => {
                        let _ = tl.record(Milestone::ALL[m], at(when), None);
                    }
                    Op::Correct(target, when) => {
                        let target = target.map_or(CorrectionTarget::Started, |m| {
                            CorrectionTarget::Milestone(Milestone::ALL[m])
                        });
                        let _ = tl.correct(target, at(when));
                    }
                    Op::Reopen(when) => {
                        let _ = tl.reopen(at(when), mins(30));
                    }
                    Op::Close(when) => {
                        let _ = tl.close(at(when));
                    }
                }
                // Recorded stamps stay in order, after started, and form a prefix.
                let mut prev = tl.started_at;
                let mut gap = false;
                for m in Milestone::ALL {
                    match tl.get(m) {
                        Some(s) => {
                            proptest::prop_assert!(!gap, "hole before {m}: {tl:?}");
                            proptest::prop_assert!(s.at >= prev, "{m} out of order: {tl:?}");
                            prev = s.at;
                        }
                        None => gap = true,
                    }
                }
                proptest::prop_assert!(tl.started_at <= tl.declared_at);
                let b = breakdown(&tl, at(now));
                let sum = b.phases.iter().fold(Duration::zero(), |acc, p| acc + p.duration);
                proptest::prop_assert!(b.phases.iter().all(|p| p.duration >= Duration::zero()), "{b:?}");
                proptest::prop_assert_eq!(sum, b.mttr);
                proptest::prop_assert!(b.phases.iter().all(|p| !(p.skipped && p.ongoing)));
                if let Some(r) = &tl.resolved {
                    proptest::prop_assert_eq!(b.mttr, r.at - tl.started_at);
                }
                let shares: f64 = PhaseKind::ALL.iter().map(|k| b.share(*k)).sum();
                proptest::prop_assert!(b.mttr.is_zero() || (shares - 1.0).abs() < 1e-6);
            }
        }
    }
}
