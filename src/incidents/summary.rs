//! The MTTR summary posted when an incident is resolved (SPEC §5), in the incident channel and the broadcast
//! channel: MTTR, each phase's duration and share with a bar, the slowest phase, the tier for the severity, the
//! comparison with the 90-day median of the same severity (and service), the detection method, and whether a
//! deploy landed on the service or a dependency in the 2 hours before impact; and each phase against the p50/p90
//! of the same phase in resolved incidents of the same severity over those 90 days, with n ("not enough data"
//! under 5; imported incidents, whose phases are unknown, are left out).
//!
//! Pure: [`Summary::compute`] takes the incident, the history and the deploys the caller loaded, and
//! [`Summary::render`] turns the figures into Block Kit. The I/O lives in [`super::outbox`].

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::Incident;
use crate::domain::deploy::Deploy;
use crate::domain::duration::format_duration;
use crate::domain::mttr::{self, bar, median, PhaseKind, Spread, Tier};
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::{self, escape, escape_cut};
use crate::slack::blocks;

/// How far back the median comparison looks.
pub const BASELINE_DAYS: i64 = 90;
/// Cells in each phase's share bar.
pub const BAR_WIDTH: usize = 20;

pub use crate::domain::incident::PastIncident;

/// One phase of the summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseLine {
    pub kind: PhaseKind,
    pub duration: Duration,
    /// Share of MTTR in 0..=1.
    pub share: f64,
    /// Skipped by a responder (counted as 0).
    pub skipped: bool,
}

/// A median over comparable incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub median: Duration,
    /// How many incidents it is the median of.
    pub count: usize,
}

/// Every figure of one summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub incident_id: String,
    pub key: String,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    pub channel_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
    pub mttr: Duration,
    pub phases: [PhaseLine; 4],
    pub slowest: Option<PhaseKind>,
    pub tier: Tier,
    /// Median MTTR of resolved incidents of the same severity in the 90 days before this resolution.
    pub severity_baseline: Option<Baseline>,
    /// The same, restricted to this incident's service.
    pub service_baseline: Option<Baseline>,
    /// Per phase: p50/p90 of that phase over the same incidents as `severity_baseline` whose phases are known.
    pub phase_baselines: [Spread; 4],
    /// Deploys to the service or a dependency in the 2 hours before impact.
    pub deploys: Vec<Deploy>,
    /// How often the incident was reopened during monitoring.
    pub reopens: u32,
}

impl Summary {
    /// The summary of a resolved incident; `None` while it is not resolved.
    ///
    /// `history` may hold any incidents: only those of the same severity resolved in the [`BASELINE_DAYS`] before
    /// this resolution count, and never this incident itself.
    pub fn compute(
        inc: &Incident,
        history: &[PastIncident],
        deploys: Vec<Deploy>,
        reopens: u32,
    ) -> Option<Summary> {
        let resolved_at = inc.timeline.resolved.as_ref()?.at;
        let b = mttr::breakdown(&inc.timeline, resolved_at);
        let phases = b.phases.map(|p| PhaseLine {
            kind: p.kind,
            duration: p.duration,
            share: b.share(p.kind),
            skipped: p.skipped,
        });
        let since = resolved_at - Duration::days(BASELINE_DAYS);
        let comparable: Vec<&PastIncident> = history
            .iter()
            .filter(|p| {
                p.id != inc.id
                    && p.severity == inc.peak_severity
                    && p.resolved_at >= since
                    && p.resolved_at <= resolved_at
            })
            .collect();
        let baseline = |list: Vec<&PastIncident>| {
            let mut d: Vec<Duration> = list.iter().map(|p| p.mttr()).collect();
            median(&mut d).map(|median| Baseline {
                median,
                count: d.len(),
            })
        };
        let service_baseline = inc.service.as_deref().and_then(|svc| {
            baseline(
                comparable
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.service
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case(svc))
                    })
                    .collect(),
            )
        });
        let phase_baselines = PhaseKind::ALL.map(|k| {
            Spread::of(
                comparable
                    .iter()
                    .filter_map(|p| p.phases.map(|ph| ph[k.index()]))
                    .collect(),
            )
        });
        Some(Summary {
            phase_baselines,
            incident_id: inc.id.clone(),
            key: inc.key(),
            title: inc.title.clone(),
            severity: inc.peak_severity,
            service: inc.service.clone(),
            detection: inc.detection,
            channel_id: inc.channel_id.clone(),
            started_at: inc.timeline.started_at,
            resolved_at,
            mttr: b.mttr,
            phases,
            slowest: b.slowest(),
            tier: mttr::tier(inc.peak_severity, b.mttr),
            severity_baseline: baseline(comparable),
            service_baseline,
            deploys,
            reopens,
        })
    }

    /// The summary as Slack mrkdwn (the body of [`Summary::render`]).
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        out.push(format!(
            "*MTTR {}* · tier *{}* for a {} ({})",
            format_duration(self.mttr),
            self.tier.label(),
            self.severity.as_str(),
            tier_range(self.severity, self.tier)
        ));
        out.push(format!("```\n{}\n```", self.phase_table()));
        out.push(match self.slowest {
            Some(k) => format!(
                "*Slowest phase:* {} — {} ({}% of MTTR)",
                k.label(),
                format_duration(self.phases[k.index()].duration),
                percent(self.phases[k.index()].share)
            ),
            None => "*Slowest phase:* none — every phase took 0s".to_string(),
        });
        out.push(format!(
            "*Against the last {BASELINE_DAYS} days:* {}",
            self.comparison()
        ));
        out.push(self.phase_comparison());
        out.push(format!("*Detected via:* {}", self.detection.as_str()));
        out.push(self.deploy_text());
        if self.reopens > 0 {
            let times = if self.reopens == 1 {
                "once".to_string()
            } else {
                format!("{} times", self.reopens)
            };
            out.push(format!(
                "↩️ Reopened {times} during monitoring — MTTR runs to the final resolution."
            ));
        }
        out.join("\n")
    }

    /// One line per phase: name, duration, bar, share, and a mark on the slowest or skipped ones.
    pub fn phase_table(&self) -> String {
        self.phases
            .iter()
            .map(|p| {
                let mark = if p.skipped {
                    "  skipped"
                } else if Some(p.kind) == self.slowest {
                    "  ← slowest"
                } else {
                    ""
                };
                format!(
                    "{:<13}{:>8}  {}  {:>3}%{mark}",
                    p.kind.label(),
                    format_duration(p.duration),
                    bar(p.share, BAR_WIDTH),
                    percent(p.share)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// "12m faster than the P1 median of 55m (7 incidents); payments: …", or why there is nothing to compare.
    pub fn comparison(&self) -> String {
        let sev = self.severity.as_str();
        let mut parts = Vec::new();
        match self.severity_baseline {
            Some(b) => parts.push(format!(
                "{} the {sev} median of {} ({})",
                relation(self.mttr, b.median),
                format_duration(b.median),
                count(b.count)
            )),
            None => parts.push(format!("no other resolved {sev} incident to compare with")),
        }
        if let Some(svc) = &self.service {
            let svc = escape_cut(svc, 80);
            match self.service_baseline {
                Some(b) => parts.push(format!(
                    "{} the {sev} median for {svc} of {} ({})",
                    relation(self.mttr, b.median),
                    format_duration(b.median),
                    count(b.count)
                )),
                None => parts.push(format!("first resolved {sev} on {svc} in that time")),
            }
        }
        parts.join("; ")
    }

    /// Each phase against the same phase's p50/p90 over the last 90 days of this severity: `Triage 30m · P1
    /// p50 12m · p90 25m (n 9) · above p90`, or `not enough data (n 3)`.
    pub fn phase_comparison(&self) -> String {
        let sev = self.severity.as_str();
        // Every phase is over the same incidents: one line when there are too few.
        if self.phase_baselines.iter().all(|b| b.p50.is_none()) {
            return format!(
                "*Phases against {sev}s of the last {BASELINE_DAYS} days:* not enough data (n {}, 5 needed)",
                self.phase_baselines[0].n
            );
        }
        let mut lines = vec![format!(
            "*Phases against {sev}s of the last {BASELINE_DAYS} days* (p50 · p90 · n):"
        )];
        for p in &self.phases {
            let b = &self.phase_baselines[p.kind.index()];
            let mark = match (b.p50, b.p90) {
                (_, Some(p90)) if p.duration > p90 => " · above p90",
                (Some(p50), _) if p.duration <= p50 => " · at or below p50",
                _ => "",
            };
            lines.push(format!(
                "{} {} · {}{mark}",
                p.kind.label(),
                format_duration(p.duration),
                b.label(format_duration)
            ));
        }
        lines.join("\n")
    }

    fn deploy_text(&self) -> String {
        let Some(svc) = &self.service else {
            return "*Deploy in the 2 h before impact:* not checked — no service given".to_string();
        };
        if self.deploys.is_empty() {
            return format!(
                "*Deploy in the 2 h before impact:* no — nothing shipped to {} or its dependencies",
                escape_cut(svc, 80)
            );
        }
        let mut lines = vec![format!(
            "*Deploy in the 2 h before impact:* yes — {}",
            if self.deploys.len() == 1 {
                "1 deploy".to_string()
            } else {
                format!("{} deploys", self.deploys.len())
            }
        )];
        for d in &self.deploys {
            lines.push(blocks::deploy_line(
                d,
                !d.service.eq_ignore_ascii_case(svc),
                self.started_at,
                "before impact",
            ));
        }
        lines.join("\n")
    }

    /// Plain-text fallback (notifications).
    pub fn fallback(&self) -> String {
        format!(
            "{} resolved — MTTR {} ({} tier for {})",
            self.key,
            format_duration(self.mttr),
            self.tier.label(),
            self.severity.as_str()
        )
    }

    /// Block Kit for `chat.postMessage`/`chat.update`. `block_id` names the first block (so a retry can find a
    /// summary that was posted but not recorded); `broadcast` adds a link to the war room, the incident channel's
    /// gets the "Add follow-up" button.
    pub fn render(&self, block_id: &str, broadcast: bool) -> Value {
        let header = text::cut(
            &format!("📊 {} resolved · {}", self.key, escape(&self.title)),
            text::HEADER_TEXT,
        );
        let mut context = format!(
            "{} {} · {} · impact {} → resolved {}",
            blocks::severity_emoji(self.severity),
            self.severity.as_str(),
            escape_cut(self.service.as_deref().unwrap_or("no service"), 200),
            blocks::slack_time(self.started_at),
            blocks::slack_time(self.resolved_at),
        );
        if broadcast {
            if let Some(c) = &self.channel_id {
                context.push_str(&format!(" · war room {}", text::channel(c)));
            }
        }
        let mut blocks = json!([
            { "type": "header", "block_id": block_id, "text": { "type": "plain_text", "text": header, "emoji": true } },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": context }] },
            { "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&self.text(), text::SECTION_TEXT) } },
        ]);
        if !broadcast {
            if let Some(list) = blocks.as_array_mut() {
                list.push(blocks::followup_add_button(&self.incident_id));
            }
        }
        blocks
    }
}

/// `"30m – 2h"`, `"< 30m"`, `"> 6h"`.
fn tier_range(sev: Severity, tier: Tier) -> String {
    let (from, to) = mttr::tier_bounds(sev, tier);
    match to {
        None => format!("> {}", short(from)),
        Some(to) if from.is_zero() => format!("< {}", short(to)),
        Some(to) => format!("{} – {}", short(from), short(to)),
    }
}

/// `2h` rather than `2h 00m` for whole hours.
fn short(d: Duration) -> String {
    if d.num_minutes() >= 60 && d.num_minutes() % 60 == 0 {
        format!("{}h", d.num_hours())
    } else {
        format_duration(d)
    }
}

fn relation(mttr: Duration, median: Duration) -> String {
    let diff = mttr - median;
    if diff.num_seconds().abs() < 60 {
        "about the same as".to_string()
    } else if diff < Duration::zero() {
        format!("{} faster than", format_duration(-diff))
    } else {
        format!("{} slower than", format_duration(diff))
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 incident".to_string()
    } else {
        format!("{n} incidents")
    }
}

fn percent(share: f64) -> i64 {
    (share * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phase::{CorrectionTarget, Milestone, Timeline};
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn mins(m: i64) -> Duration {
        Duration::minutes(m)
    }

    fn incident(sev: Severity, service: Option<&str>, timeline: Timeline) -> Incident {
        Incident {
            private: false,
            id: "inc-under-test".into(),
            team_id: "T1".into(),
            number: 7,
            title: "Card payments failing".into(),
            severity: sev,
            peak_severity: sev,
            service: service.map(str::to_string),
            detection: DetectionMethod::Customer,
            declared_by: "U1".into(),
            origin_channel: None,
            response_url: None,
            channel_id: Some("C1".into()),
            channel_name: Some("inc-7-card-payments-failing".into()),
            card_ts: None,
            timeline,
            roles: Default::default(),
            version: 3,
        }
    }

    fn past(id: &str, sev: Severity, service: &str, mttr_min: i64, days_ago: i64) -> PastIncident {
        let resolved_at = t(14, 0) - Duration::days(days_ago);
        PastIncident {
            id: id.into(),
            severity: sev,
            service: Some(service.into()),
            started_at: resolved_at - mins(mttr_min),
            resolved_at,
            phases: None,
        }
    }

    fn durations(s: &Summary) -> Vec<i64> {
        s.phases.iter().map(|p| p.duration.num_minutes()).collect()
    }

    /// started 14:00 · ack 14:04 · fixed 14:34 (identified skipped) · resolved 14:43.
    fn skipped_triage_timeline() -> Timeline {
        let mut tl = Timeline::new(t(14, 0), t(14, 2));
        tl.record(Milestone::Acknowledged, t(14, 4), Some("U2".into()))
            .unwrap();
        tl.record(Milestone::Fixed, t(14, 34), Some("U3".into()))
            .unwrap();
        tl.record(Milestone::Resolved, t(14, 43), Some("U3".into()))
            .unwrap();
        tl
    }

    #[test]
    fn a_skipped_phase_counts_zero_and_the_rest_add_up_to_mttr() {
        let inc = incident(Severity::P1, Some("payments"), skipped_triage_timeline());
        let s = Summary::compute(&inc, &[], Vec::new(), 0).unwrap();
        // detection 14:00→14:04, triage 14:04→14:34 (identified took the fix's instant), remediation skipped,
        // verification 14:34→14:43.
        assert_eq!(durations(&s), vec![4, 30, 0, 9]);
        assert!(s.phases[2].skipped);
        assert!(!s.phases[1].skipped);
        assert_eq!(s.mttr, mins(43));
        assert_eq!(s.slowest, Some(PhaseKind::Triage));
        assert_eq!(s.tier, Tier::High, "a 43m P1 is High (30m – 2h)");
        let table = s.phase_table();
        assert!(table.contains("Remediation        0s"), "{table}");
        assert!(table.contains("skipped"), "{table}");
        // 30/43 = 69.8 % → 70 %, 14 of 20 cells.
        assert!(
            table.contains(&format!("{}   70%  ← slowest", bar(30.0 / 43.0, 20))),
            "{table}"
        );
        assert_eq!(bar(30.0 / 43.0, 20).matches('█').count(), 14);
        let text = s.text();
        assert!(
            text.contains("*MTTR 43m* · tier *High* for a P1 (30m – 2h)"),
            "{text}"
        );
        assert!(
            text.contains("*Slowest phase:* Triage — 30m (70% of MTTR)"),
            "{text}"
        );
        assert!(text.contains("*Detected via:* customer"), "{text}");
    }

    #[test]
    fn each_phase_is_set_against_the_p50_and_p90_of_same_severity_incidents_with_known_phases() {
        let inc = incident(Severity::P1, Some("payments"), skipped_triage_timeline());
        let with = |id: &str, sev, triage: i64, days_ago| {
            let mut p = past(id, sev, "payments", 10 + triage, days_ago);
            p.phases = Some([mins(4), mins(triage), mins(3), mins(3)]);
            p
        };
        // Four P1s with phases: not enough data yet.
        let mut history = vec![
            with("a", Severity::P1, 5, 1),
            with("b", Severity::P1, 10, 2),
            with("c", Severity::P1, 15, 3),
            with("d", Severity::P1, 20, 4),
            past("imported", Severity::P1, "payments", 60, 5), // phases unknown: left out
            with("p2", Severity::P2, 1, 1),                    // other severity
            with("old", Severity::P1, 1, 91),                  // too old
        ];
        let s = Summary::compute(&inc, &history, Vec::new(), 0).unwrap();
        assert_eq!(s.phase_baselines[1].n, 4);
        assert!(
            s.text().contains(
                "*Phases against P1s of the last 90 days:* not enough data (n 4, 5 needed)"
            ),
            "{}",
            s.text()
        );
        // A fifth: triage 5, 10, 15, 20, 25 → p50 15m, p90 = 20 + 0.6 × 5 = 23m; this incident's 30m is above.
        history.push(with("e", Severity::P1, 25, 5));
        let s = Summary::compute(&inc, &history, Vec::new(), 0).unwrap();
        let triage = s.phase_baselines[1];
        assert_eq!(
            (triage.n, triage.p50, triage.p90),
            (5, Some(mins(15)), Some(mins(23)))
        );
        let text = s.text();
        assert!(
            text.contains("*Phases against P1s of the last 90 days* (p50 · p90 · n):"),
            "{text}"
        );
        assert!(
            text.contains("Triage 30m · p50 15m · p90 23m (n 5) · above p90"),
            "{text}"
        );
        assert!(
            text.contains("Detection 4m · p50 4m · p90 4m (n 5) · at or below p50"),
            "{text}"
        );
    }

    #[test]
    fn the_median_compares_same_severity_incidents_of_the_last_90_days_only() {
        let inc = incident(Severity::P1, Some("payments"), skipped_triage_timeline());
        let history = vec![
            past("a", Severity::P1, "payments", 30, 3),
            past("b", Severity::P1, "search", 70, 10),
            past("c", Severity::P1, "payments", 120, 89),
            past("d", Severity::P2, "payments", 5, 1), // other severity
            past("e", Severity::P1, "payments", 500, 91), // too old
            past("inc-under-test", Severity::P1, "payments", 1, 0), // this incident itself
        ];
        let s = Summary::compute(&inc, &history, Vec::new(), 0).unwrap();
        // P1 in 90 days: 30, 70, 120 → median 70m; payments P1: 30, 120 → median 75m.
        assert_eq!(
            s.severity_baseline,
            Some(Baseline {
                median: mins(70),
                count: 3
            })
        );
        assert_eq!(
            s.service_baseline,
            Some(Baseline {
                median: mins(75),
                count: 2
            })
        );
        assert_eq!(
            s.comparison(),
            "27m faster than the P1 median of 1h 10m (3 incidents); \
             32m faster than the P1 median for payments of 1h 15m (2 incidents)"
        );
    }

    #[test]
    fn without_history_the_summary_says_there_is_nothing_to_compare() {
        let inc = incident(Severity::P2, Some("search"), skipped_triage_timeline());
        let s = Summary::compute(&inc, &[], Vec::new(), 0).unwrap();
        assert_eq!(
            s.comparison(),
            "no other resolved P2 incident to compare with; first resolved P2 on search in that time"
        );
        assert_eq!(s.tier, Tier::Elite, "a 43m P2 is Elite (< 1h)");
        assert!(s.text().contains("tier *Elite* for a P2 (< 1h)"));
    }

    #[test]
    fn a_corrected_timestamp_re_derives_every_figure() {
        let mut tl = skipped_triage_timeline();
        // Root cause was really found at 14:20: triage 16m, remediation 14m, no longer skipped.
        tl.correct(
            CorrectionTarget::Milestone(Milestone::Identified),
            t(14, 20),
        )
        .unwrap();
        // Impact really began at 13:50: detection 14m, MTTR 53m.
        tl.correct(CorrectionTarget::Started, t(13, 50)).unwrap();
        let inc = incident(Severity::P1, Some("payments"), tl);
        let s = Summary::compute(&inc, &[], Vec::new(), 0).unwrap();
        assert_eq!(durations(&s), vec![14, 16, 14, 9]);
        assert!(s.phases.iter().all(|p| !p.skipped));
        assert_eq!(s.mttr, mins(53));
        assert_eq!(s.slowest, Some(PhaseKind::Triage));
        let shares: Vec<i64> = s.phases.iter().map(|p| percent(p.share)).collect();
        // 14/53 = 26.4 %, 16/53 = 30.2 %, 14/53 = 26.4 %, 9/53 = 17.0 %.
        assert_eq!(shares, vec![26, 30, 26, 17]);
    }

    #[test]
    fn a_reopened_incident_measures_mttr_to_the_final_resolution() {
        let mut tl = Timeline::new(t(14, 0), t(14, 0));
        tl.record(Milestone::Acknowledged, t(14, 5), None).unwrap();
        tl.record(Milestone::Identified, t(14, 15), None).unwrap();
        tl.record(Milestone::Fixed, t(14, 25), None).unwrap();
        tl.record(Milestone::Resolved, t(14, 30), None).unwrap();
        tl.reopen(t(14, 50), mins(30)).unwrap();
        tl.record(Milestone::Fixed, t(15, 10), None).unwrap();
        tl.record(Milestone::Resolved, t(15, 20), None).unwrap();
        let inc = incident(Severity::P1, None, tl);
        let s = Summary::compute(&inc, &[], Vec::new(), 1).unwrap();
        // remediation runs from identified (14:15) to the second fix (15:10): 55m; verification 10m.
        assert_eq!(durations(&s), vec![5, 10, 55, 10]);
        assert_eq!(s.mttr, mins(80));
        assert_eq!(s.slowest, Some(PhaseKind::Remediation));
        assert_eq!(s.tier, Tier::High);
        let text = s.text();
        assert!(text.contains("Reopened once"), "{text}");
        assert!(text.contains("not checked — no service given"), "{text}");
        assert_eq!(
            s.comparison(),
            "no other resolved P1 incident to compare with"
        );
    }

    #[test]
    fn deploys_before_impact_are_listed_with_dependencies_marked() {
        let inc = incident(Severity::P1, Some("payments"), skipped_triage_timeline());
        let d = |svc: &str, v: &str, min: i64| Deploy {
            id: v.into(),
            service: svc.into(),
            environment: "production".into(),
            version: Some(v.into()),
            commit_sha: None,
            url: None,
            author: Some("alice".into()),
            deployed_at: t(14, 0) - mins(min),
            source: "test".into(),
        };
        let s = Summary::compute(
            &inc,
            &[],
            vec![d("payments", "v2", 25), d("auth", "v7", 70)],
            0,
        )
        .unwrap();
        let text = s.text();
        assert!(
            text.contains("*Deploy in the 2 h before impact:* yes — 2 deploys"),
            "{text}"
        );
        assert!(
            text.contains("• *payments* `v2` by alice, 25m before impact"),
            "{text}"
        );
        assert!(
            text.contains("• *auth* (dependency) `v7` by alice, 1h 10m before impact"),
            "{text}"
        );
        let none = Summary::compute(&inc, &[], Vec::new(), 0).unwrap().text();
        assert!(
            none.contains("no — nothing shipped to payments or its dependencies"),
            "{none}"
        );
    }

    #[test]
    fn an_unresolved_incident_has_no_summary() {
        let tl = Timeline::new(t(14, 0), t(14, 0));
        assert!(Summary::compute(&incident(Severity::P3, None, tl), &[], Vec::new(), 0).is_none());
    }

    #[test]
    fn the_rendered_blocks_carry_the_block_id_and_link_the_war_room_in_broadcast() {
        let inc = incident(Severity::P1, Some("payments"), skipped_triage_timeline());
        let s = Summary::compute(&inc, &[], Vec::new(), 0).unwrap();
        let b = s.render("ob:summary:1", true);
        assert_eq!(b[0]["block_id"], "ob:summary:1");
        assert!(b[1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("<#C1>"));
        let own = s.render("ob:summary:2", false);
        assert!(!own[1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("<#C1>"));
        assert_eq!(s.fallback(), "INC-7 resolved — MTTR 43m (High tier for P1)");
    }

    #[test]
    fn tier_ranges_read_like_the_spec_table() {
        assert_eq!(tier_range(Severity::P1, Tier::Elite), "< 30m");
        assert_eq!(tier_range(Severity::P1, Tier::High), "30m – 2h");
        assert_eq!(tier_range(Severity::P2, Tier::Medium), "4h – 12h");
        assert_eq!(tier_range(Severity::P3, Tier::Low), "> 24h");
    }
}
