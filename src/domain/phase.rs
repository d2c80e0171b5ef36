//! The incident phase state machine: milestones (`Acknowledge` … `Resolved`), the timeline of stamps, the skip
//! rule, reopening during monitoring, closing, and corrections of recorded timestamps (SPEC §1).
//!
//! Invariants kept by every operation here (and relied on by [`crate::domain::mttr`]):
//! `started_at <= declared_at`; the recorded milestones form a prefix of
//! `acknowledged, identified, fixed, resolved`; and `started_at <= acknowledged <= identified <= fixed <= resolved`
//! over the recorded ones, so no phase duration is ever negative.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::duration::format_duration;

/// A moment that ends a recovery phase; each is a button on the incident card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Milestone {
    /// A responder acknowledged: detection ends.
    Acknowledged,
    /// Root cause identified: triage ends.
    Identified,
    /// Fix deployed or rollback executed: remediation ends.
    Fixed,
    /// Fix confirmed in production: verification ends, MTTR ends.
    Resolved,
}

impl Milestone {
    /// Every milestone, in the order they happen.
    pub const ALL: [Milestone; 4] = [
        Milestone::Acknowledged,
        Milestone::Identified,
        Milestone::Fixed,
        Milestone::Resolved,
    ];

    /// Parses a milestone name or alias, any case: `ack`, `acknowledged`, `identified`, `root-cause`, `rca`,
    /// `fixed`, `fix`, `resolved`, `resolve` (and a few close spellings).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "ack" | "acknowledge" | "acknowledged" => Some(Milestone::Acknowledged),
            "identified" | "identify" | "root-cause" | "root_cause" | "rootcause" | "rca" => {
                Some(Milestone::Identified)
            }
            "fixed" | "fix" | "fix-deployed" => Some(Milestone::Fixed),
            "resolved" | "resolve" => Some(Milestone::Resolved),
            _ => None,
        }
    }

    /// Stable lowercase name: `"acknowledged"`, `"identified"`, `"fixed"`, `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::Acknowledged => "acknowledged",
            Milestone::Identified => "identified",
            Milestone::Fixed => "fixed",
            Milestone::Resolved => "resolved",
        }
    }

    /// The button label on the incident card.
    pub fn label(self) -> &'static str {
        match self {
            Milestone::Acknowledged => "Acknowledge",
            Milestone::Identified => "Root cause identified",
            Milestone::Fixed => "Fix deployed",
            Milestone::Resolved => "Resolved",
        }
    }

    /// The Block Kit `action_id` of the button.
    pub fn action_id(self) -> &'static str {
        match self {
            Milestone::Acknowledged => "phase_ack",
            Milestone::Identified => "phase_identified",
            Milestone::Fixed => "phase_fixed",
            Milestone::Resolved => "phase_resolved",
        }
    }

    /// The milestone whose button has this `action_id`.
    pub fn from_action_id(action_id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.action_id() == action_id)
    }

    /// Position in [`Milestone::ALL`] (0 for `Acknowledged`).
    pub fn index(self) -> usize {
        match self {
            Milestone::Acknowledged => 0,
            Milestone::Identified => 1,
            Milestone::Fixed => 2,
            Milestone::Resolved => 3,
        }
    }

    /// The milestone before this one, if any.
    pub fn previous(self) -> Option<Self> {
        self.index().checked_sub(1).map(|i| Self::ALL[i])
    }

    /// The milestone after this one, if any.
    pub fn next(self) -> Option<Self> {
        Self::ALL.get(self.index() + 1).copied()
    }

    /// The status an incident is in right after this milestone is recorded.
    pub fn status(self) -> Status {
        match self {
            Milestone::Acknowledged => Status::Acknowledged,
            Milestone::Identified => Status::Identified,
            Milestone::Fixed => Status::Fixed,
            Milestone::Resolved => Status::Monitoring,
        }
    }
}

impl fmt::Display for Milestone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a milestone was recorded and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    /// The Slack user who clicked; `None` for stamps filled in by the skip rule.
    pub by: Option<String>,
    /// `true` when filled in by the skip rule (a later milestone was recorded first).
    pub implicit: bool,
}

impl Stamp {
    /// A stamp someone recorded on purpose.
    pub fn explicit(at: DateTime<Utc>, by: Option<String>) -> Self {
        Stamp {
            at,
            by,
            implicit: false,
        }
    }
}

/// Where an incident stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Declared, nobody acknowledged yet (detection running).
    Investigating,
    /// Acknowledged (triage running).
    Acknowledged,
    /// Root cause identified (remediation running).
    Identified,
    /// Fix deployed (verification running).
    Fixed,
    /// Resolved, within the monitoring window; can still be reopened.
    Monitoring,
    /// Resolved and the monitoring window is over.
    Closed,
}

impl Status {
    /// Stable lowercase name, e.g. for storage: `"investigating"` … `"closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Acknowledged => "acknowledged",
            Status::Identified => "identified",
            Status::Fixed => "fixed",
            Status::Monitoring => "monitoring",
            Status::Closed => "closed",
        }
    }

    /// Parses [`Status::as_str`] back.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Investigating,
            Status::Acknowledged,
            Status::Identified,
            Status::Fixed,
            Status::Monitoring,
            Status::Closed,
        ]
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// For humans: `"Investigating"`, `"Acknowledged"`, `"Root cause identified"`, `"Fix deployed"`,
    /// `"Monitoring"`, `"Closed"`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Investigating => "Investigating",
            Status::Acknowledged => "Acknowledged",
            Status::Identified => "Root cause identified",
            Status::Fixed => "Fix deployed",
            Status::Monitoring => "Monitoring",
            Status::Closed => "Closed",
        }
    }

    /// `true` until the incident is resolved.
    pub fn is_active(self) -> bool {
        !matches!(self, Status::Monitoring | Status::Closed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a successful [`Timeline::record`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub milestone: Milestone,
    /// The instant recorded (after clamping to the previous milestone).
    pub at: DateTime<Utc>,
    /// Earlier milestones filled in by the skip rule, in order.
    pub skipped: Vec<Milestone>,
}

/// Why a phase change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The milestone (or a later one) is already recorded — e.g. the second of two simultaneous clicks.
    #[error("already recorded — the incident is at: {current}")]
    AlreadyRecorded { current: Status },
    /// The incident is closed; nothing changes any more (timestamps can still be corrected).
    #[error("the incident is closed")]
    Closed,
    /// Reopen/close asked of an incident that is not resolved.
    #[error("the incident is not resolved (it is at: {current}), so there is nothing to reopen or close")]
    NotMonitoring { current: Status },
    /// Reopen asked after the monitoring window.
    #[error("the {} monitoring window after resolution is over; declare a new incident instead", format_duration(*.window))]
    WindowExpired { window: Duration },
}

/// What a correction targets: the start of impact, or a milestone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorrectionTarget {
    Started,
    Milestone(Milestone),
}

impl CorrectionTarget {
    /// `"started"` or the milestone's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionTarget::Started => "started",
            CorrectionTarget::Milestone(m) => m.as_str(),
        }
    }
}

impl fmt::Display for CorrectionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a timestamp correction was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorrectionError {
    /// The corrected time would put recorded timestamps out of order; `reason` says which, for humans.
    #[error("{reason}")]
    OutOfOrder { reason: String },
    /// The milestone has not been recorded yet; record it (click the button) instead.
    #[error("{milestone} has not been recorded yet — record it first, then correct it")]
    NotRecorded { milestone: Milestone },
}

/// Every timestamp of one incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub started_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub acknowledged: Option<Stamp>,
    pub identified: Option<Stamp>,
    pub fixed: Option<Stamp>,
    pub resolved: Option<Stamp>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Timeline {
    /// A freshly declared incident. A `started_at` after `declared_at` is clamped to `declared_at`.
    pub fn new(started_at: DateTime<Utc>, declared_at: DateTime<Utc>) -> Self {
        Timeline {
            started_at: started_at.min(declared_at),
            declared_at,
            acknowledged: None,
            identified: None,
            fixed: None,
            resolved: None,
            closed_at: None,
        }
    }

    /// The stamp of a milestone, if recorded.
    pub fn get(&self, m: Milestone) -> Option<&Stamp> {
        match m {
            Milestone::Acknowledged => self.acknowledged.as_ref(),
            Milestone::Identified => self.identified.as_ref(),
            Milestone::Fixed => self.fixed.as_ref(),
            Milestone::Resolved => self.resolved.as_ref(),
        }
    }

    fn slot(&mut self, m: Milestone) -> &mut Option<Stamp> {
        match m {
            Milestone::Acknowledged => &mut self.acknowledged,
            Milestone::Identified => &mut self.identified,
            Milestone::Fixed => &mut self.fixed,
            Milestone::Resolved => &mut self.resolved,
        }
    }

    /// Where the incident stands now.
    pub fn status(&self) -> Status {
        if self.closed_at.is_some() {
            return Status::Closed;
        }
        match self.last_recorded() {
            None => Status::Investigating,
            Some((m, _)) => m.status(),
        }
    }

    /// The latest recorded milestone and its stamp.
    pub fn last_recorded(&self) -> Option<(Milestone, &Stamp)> {
        Milestone::ALL
            .into_iter()
            .rev()
            .find_map(|m| self.get(m).map(|s| (m, s)))
    }

    /// The next milestone to record (the button that moves the incident on), `None` once resolved.
    pub fn next_milestone(&self) -> Option<Milestone> {
        match self.last_recorded() {
            None => Some(Milestone::Acknowledged),
            Some((m, _)) => m.next(),
        }
    }

    /// When the monitoring window of a resolved, not yet closed incident ends.
    pub fn monitoring_ends_at(&self, monitoring_window: Duration) -> Option<DateTime<Utc>> {
        if self.status() != Status::Monitoring {
            return None;
        }
        self.resolved
            .as_ref()
            .and_then(|r| r.at.checked_add_signed(monitoring_window))
    }

    /// Records a milestone at `at` (the click time) by `by`.
    ///
    /// Skip rule: every earlier milestone not yet recorded takes the same instant, marked implicit.
    /// `at` before the previous recorded milestone (or before `started_at`) is clamped up to it.
    pub fn record(
        &mut self,
        m: Milestone,
        at: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Transition, TransitionError> {
        if self.closed_at.is_some() {
            return Err(TransitionError::Closed);
        }
        let already = Milestone::ALL[m.index()..]
            .iter()
            .any(|later| self.get(*later).is_some());
        if already {
            return Err(TransitionError::AlreadyRecorded {
                current: self.status(),
            });
        }
        let floor = Milestone::ALL[..m.index()]
            .iter()
            .filter_map(|earlier| self.get(*earlier).map(|s| s.at))
            .fold(self.started_at, DateTime::max);
        let at = at.max(floor);
        let mut skipped = Vec::new();
        for earlier in &Milestone::ALL[..m.index()] {
            let slot = self.slot(*earlier);
            if slot.is_none() {
                *slot = Some(Stamp {
                    at,
                    by: None,
                    implicit: true,
                });
                skipped.push(*earlier);
            }
        }
        *self.slot(m) = Some(Stamp::explicit(at, by));
        Ok(Transition {
            milestone: m,
            at,
            skipped,
        })
    }

    /// Reopens a resolved incident during its monitoring window: `fixed` and `resolved` are cleared, the incident is
    /// back in remediation, and MTTR will run to the final resolution.
    ///
    /// A closed incident gives [`TransitionError::Closed`]; one not yet resolved [`TransitionError::NotMonitoring`];
    /// `now` at or after `resolved + monitoring_window` gives [`TransitionError::WindowExpired`].
    pub fn reopen(
        &mut self,
        now: DateTime<Utc>,
        monitoring_window: Duration,
    ) -> Result<(), TransitionError> {
        match self.status() {
            Status::Monitoring => {}
            Status::Closed => return Err(TransitionError::Closed),
            current => return Err(TransitionError::NotMonitoring { current }),
        }
        if let Some(ends) = self.monitoring_ends_at(monitoring_window) {
            if now >= ends {
                return Err(TransitionError::WindowExpired {
                    window: monitoring_window,
                });
            }
        }
        self.fixed = None;
        self.resolved = None;
        Ok(())
    }

    /// Closes a resolved incident (the monitoring window is over). `closed_at` is never before `resolved`.
    pub fn close(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match self.status() {
            Status::Monitoring => {}
            Status::Closed => return Err(TransitionError::Closed),
            current => return Err(TransitionError::NotMonitoring { current }),
        }
        let floor = self.resolved.as_ref().map_or(now, |r| r.at);
        self.closed_at = Some(now.max(floor));
        Ok(())
    }

    /// Corrects a recorded timestamp; the corrected stamp becomes explicit.
    ///
    /// Milestones that the skip rule filled in from the corrected one (implicit, same instant) move with it, so a
    /// skipped phase stays skipped. Refuses when the result would break
    /// `started <= acknowledged <= identified <= fixed <= resolved` or `started <= declared`.
    /// Allowed on closed incidents too.
    pub fn correct(
        &mut self,
        target: CorrectionTarget,
        at: DateTime<Utc>,
    ) -> Result<(), CorrectionError> {
        match target {
            CorrectionTarget::Started => {
                if at > self.declared_at {
                    return Err(out_of_order(
                        "started",
                        at,
                        "after",
                        "declared",
                        self.declared_at,
                    ));
                }
                if let Some((m, first)) = Milestone::ALL
                    .into_iter()
                    .find_map(|m| self.get(m).map(|s| (m, s.at)))
                {
                    if at > first {
                        return Err(out_of_order("started", at, "after", m.as_str(), first));
                    }
                }
                self.started_at = at;
                Ok(())
            }
            CorrectionTarget::Milestone(m) => {
                let old = match self.get(m) {
                    Some(s) => s.at,
                    None => return Err(CorrectionError::NotRecorded { milestone: m }),
                };
                // Implicit copies of this stamp, directly before it, move along with it.
                let mut chain = Vec::new();
                let mut prev_bound = ("started", self.started_at);
                for earlier in Milestone::ALL[..m.index()].iter().rev() {
                    match self.get(*earlier) {
                        Some(s)
                            if s.implicit
                                && s.at == old
                                && chain.len() == m.index() - earlier.index() - 1 =>
                        {
                            chain.push(*earlier)
                        }
                        Some(s) => {
                            prev_bound = (earlier.as_str(), s.at);
                            break;
                        }
                        None => {}
                    }
                }
                if at < prev_bound.1 {
                    return Err(out_of_order(
                        m.as_str(),
                        at,
                        "before",
                        prev_bound.0,
                        prev_bound.1,
                    ));
                }
                if let Some((later, next_at)) = Milestone::ALL[m.index() + 1..]
                    .iter()
                    .find_map(|l| self.get(*l).map(|s| (*l, s.at)))
                {
                    if at > next_at {
                        return Err(out_of_order(
                            m.as_str(),
                            at,
                            "after",
                            later.as_str(),
                            next_at,
                        ));
                    }
                }
                for c in chain {
                    if let Some(s) = self.slot(c).as_mut() {
                        s.at = at;
                    }
                }
                if let Some(s) = self.slot(m).as_mut() {
                    s.at = at;
                    s.implicit = false;
                }
                Ok(())
            }
        }
    }
}

fn out_of_order(
    what: &str,
    at: DateTime<Utc>,
    relation: &str,
    other: &str,
    other_at: DateTime<Utc>,
) -> CorrectionError {
    let (a, b) = format_pair(at, other_at);
    CorrectionError::OutOfOrder {
        reason: format!("{what} ({a}) would be {relation} {other} ({b})"),
    }
}

/// Formats two instants as compactly as still tells them apart: `14:32 UTC`, with seconds when they share a minute,
/// with the date when they fall on different days.
fn format_pair(a: DateTime<Utc>, b: DateTime<Utc>) -> (String, String) {
    let fmt = if a.date_naive() != b.date_naive() {
        "%Y-%m-%d %H:%M UTC"
    } else if a.format("%H:%M").to_string() == b.format("%H:%M").to_string() {
        "%H:%M:%S UTC"
    } else {
        "%H:%M UTC"
    };
    (a.format(fmt).to_string(), b.format(fmt).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn fresh() -> Timeline {
        Timeline::new(t(14, 0), t(14, 5))
    }

    fn user(u: &str) -> Option<String> {
        Some(u.to_string())
    }

    #[test]
    fn milestone_aliases_parse_in_any_case() {
        let cases = [
            ("ack", Milestone::Acknowledged),
            ("ACK", Milestone::Acknowledged),
            ("Acknowledged", Milestone::Acknowledged),
            ("identified", Milestone::Identified),
            ("root-cause", Milestone::Identified),
            ("RCA", Milestone::Identified),
            ("fixed", Milestone::Fixed),
            ("Fix", Milestone::Fixed),
            ("resolved", Milestone::Resolved),
            ("resolve", Milestone::Resolved),
        ];
        for (text, want) in cases {
            assert_eq!(Milestone::parse(text), Some(want), "{text}");
        }
        assert_eq!(Milestone::parse("done"), None);
        assert_eq!(Milestone::parse(""), None);
    }

    #[test]
    fn milestone_names_labels_and_action_ids_match_the_card() {
        assert_eq!(Milestone::Acknowledged.label(), "Acknowledge");
        assert_eq!(Milestone::Identified.label(), "Root cause identified");
        assert_eq!(Milestone::Fixed.label(), "Fix deployed");
        assert_eq!(Milestone::Resolved.label(), "Resolved");
        for m in Milestone::ALL {
            assert_eq!(Milestone::from_action_id(m.action_id()), Some(m));
            assert_eq!(Milestone::parse(m.as_str()), Some(m));
        }
        assert_eq!(Milestone::Acknowledged.action_id(), "phase_ack");
        assert_eq!(Milestone::from_action_id("phase_bogus"), None);
    }

    #[test]
    fn milestone_and_stamp_serialise_with_lowercase_names() {
        assert_eq!(
            serde_json::to_string(&Milestone::Identified).unwrap(),
            "\"identified\""
        );
        let s = Stamp::explicit(t(14, 10), user("U1"));
        let json = serde_json::to_string(&s).unwrap();
        let back: Stamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn new_timeline_clamps_a_start_after_declaration() {
        let tl = Timeline::new(t(15, 0), t(14, 0));
        assert_eq!(tl.started_at, t(14, 0));
        assert_eq!(tl.status(), Status::Investigating);
    }

    #[test]
    fn recording_in_order_walks_through_every_status() {
        let mut tl = fresh();
        assert_eq!(tl.next_milestone(), Some(Milestone::Acknowledged));
        let steps = [
            (Milestone::Acknowledged, Status::Acknowledged),
            (Milestone::Identified, Status::Identified),
            (Milestone::Fixed, Status::Fixed),
            (Milestone::Resolved, Status::Monitoring),
        ];
        for (i, (m, st)) in steps.into_iter().enumerate() {
            let tr = tl.record(m, t(14, 10 + i as u32 * 10), user("U1")).unwrap();
            assert!(tr.skipped.is_empty());
            assert_eq!(tl.status(), st);
            assert!(!tl.get(m).unwrap().implicit);
            assert_eq!(tl.get(m).unwrap().by.as_deref(), Some("U1"));
        }
        assert_eq!(tl.next_milestone(), None);
    }

    #[test]
    fn fixed_before_identified_fills_identified_and_ack_implicitly() {
        let mut tl = fresh();
        let tr = tl.record(Milestone::Fixed, t(14, 30), user("U2")).unwrap();
        assert_eq!(
            tr.skipped,
            vec![Milestone::Acknowledged, Milestone::Identified]
        );
        for m in [Milestone::Acknowledged, Milestone::Identified] {
            let s = tl.get(m).unwrap();
            assert_eq!(s.at, t(14, 30));
            assert!(s.implicit);
            assert_eq!(s.by, None);
        }
        assert!(!tl.fixed.as_ref().unwrap().implicit);
        assert_eq!(tl.status(), Status::Fixed);
    }

    #[test]
    fn twenty_identical_clicks_record_one_transition() {
        let mut tl = fresh();
        let mut ok = 0;
        for i in 0..20 {
            match tl.record(Milestone::Acknowledged, t(14, 10), Some(format!("U{i}"))) {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(
                    e,
                    TransitionError::AlreadyRecorded {
                        current: Status::Acknowledged
                    }
                ),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(tl.acknowledged.as_ref().unwrap().by.as_deref(), Some("U0"));
    }

    #[test]
    fn a_stale_click_on_an_earlier_button_is_told_the_current_phase() {
        let mut tl = fresh();
        tl.record(Milestone::Fixed, t(14, 30), None).unwrap();
        let err = tl
            .record(Milestone::Identified, t(14, 31), None)
            .unwrap_err();
        assert_eq!(
            err,
            TransitionError::AlreadyRecorded {
                current: Status::Fixed
            }
        );
        assert!(err.to_string().contains("Fix deployed"), "{err}");
    }

    #[test]
    fn a_click_time_before_the_previous_milestone_is_clamped_up_to_it() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 20), None).unwrap();
        let tr = tl.record(Milestone::Identified, t(14, 10), None).unwrap();
        assert_eq!(tr.at, t(14, 20));
        assert_eq!(tl.identified.as_ref().unwrap().at, t(14, 20));
        let mut tl = fresh();
        let tr = tl.record(Milestone::Acknowledged, t(13, 0), None).unwrap();
        assert_eq!(tr.at, t(14, 0), "never before started_at");
    }

    #[test]
    fn nothing_can_be_recorded_once_closed() {
        let mut tl = fresh();
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        tl.close(t(15, 30)).unwrap();
        assert_eq!(tl.status(), Status::Closed);
        assert_eq!(
            tl.record(Milestone::Resolved, t(15, 31), None),
            Err(TransitionError::Closed)
        );
        assert_eq!(tl.close(t(15, 40)), Err(TransitionError::Closed));
    }

    #[test]
    fn close_is_refused_before_resolution_and_never_predates_it() {
        let mut tl = fresh();
        assert_eq!(
            tl.close(t(14, 10)),
            Err(TransitionError::NotMonitoring {
                current: Status::Investigating
            })
        );
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        tl.close(t(14, 59)).unwrap();
        assert_eq!(tl.closed_at, Some(t(15, 0)));
    }

    #[test]
    fn reopen_within_the_window_returns_to_remediation() {
        let mut tl = fresh();
        tl.record(Milestone::Identified, t(14, 20), None).unwrap();
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        tl.reopen(t(15, 29), Duration::minutes(30)).unwrap();
        assert_eq!(tl.status(), Status::Identified);
        assert!(tl.fixed.is_none() && tl.resolved.is_none());
        assert!(tl.identified.is_some());
        tl.record(Milestone::Fixed, t(15, 40), None).unwrap();
        tl.record(Milestone::Resolved, t(15, 50), None).unwrap();
        assert_eq!(tl.resolved.as_ref().unwrap().at, t(15, 50));
    }

    #[test]
    fn reopen_at_or_after_the_window_end_is_refused() {
        let mut tl = fresh();
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        let err = tl.reopen(t(15, 30), Duration::minutes(30)).unwrap_err();
        assert_eq!(
            err,
            TransitionError::WindowExpired {
                window: Duration::minutes(30)
            }
        );
        assert!(err.to_string().contains("30m"), "{err}");
        assert_eq!(tl.status(), Status::Monitoring);
    }

    #[test]
    fn reopen_is_refused_while_still_active_or_closed() {
        let mut tl = fresh();
        tl.record(Milestone::Fixed, t(14, 30), None).unwrap();
        assert_eq!(
            tl.reopen(t(14, 31), Duration::minutes(30)),
            Err(TransitionError::NotMonitoring {
                current: Status::Fixed
            })
        );
        tl.record(Milestone::Resolved, t(14, 40), None).unwrap();
        tl.close(t(15, 10)).unwrap();
        assert_eq!(
            tl.reopen(t(14, 45), Duration::minutes(30)),
            Err(TransitionError::Closed)
        );
    }

    #[test]
    fn monitoring_window_end_is_known_only_while_monitoring() {
        let mut tl = fresh();
        assert_eq!(tl.monitoring_ends_at(Duration::minutes(30)), None);
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        assert_eq!(
            tl.monitoring_ends_at(Duration::minutes(30)),
            Some(t(15, 30))
        );
    }

    #[test]
    fn correcting_identified_before_acknowledged_names_both_times() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 40), None).unwrap();
        tl.record(Milestone::Identified, t(14, 50), None).unwrap();
        let err = tl
            .correct(
                CorrectionTarget::Milestone(Milestone::Identified),
                t(14, 32),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "identified (14:32 UTC) would be before acknowledged (14:40 UTC)"
        );
        assert_eq!(tl.identified.as_ref().unwrap().at, t(14, 50), "unchanged");
    }

    #[test]
    fn correcting_a_milestone_past_the_next_one_is_refused() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.record(Milestone::Identified, t(14, 20), None).unwrap();
        let err = tl
            .correct(
                CorrectionTarget::Milestone(Milestone::Acknowledged),
                t(14, 25),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "acknowledged (14:25 UTC) would be after identified (14:20 UTC)"
        );
    }

    #[test]
    fn correcting_an_unrecorded_milestone_says_so() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        let err = tl
            .correct(CorrectionTarget::Milestone(Milestone::Fixed), t(14, 20))
            .unwrap_err();
        assert_eq!(
            err,
            CorrectionError::NotRecorded {
                milestone: Milestone::Fixed
            }
        );
    }

    #[test]
    fn correcting_an_implicit_stamp_makes_it_explicit() {
        let mut tl = fresh();
        tl.record(Milestone::Fixed, t(14, 30), None).unwrap();
        tl.correct(
            CorrectionTarget::Milestone(Milestone::Identified),
            t(14, 20),
        )
        .unwrap();
        let s = tl.identified.as_ref().unwrap();
        assert_eq!(s.at, t(14, 20));
        assert!(!s.implicit);
        // acknowledged was skipped together with identified, so it moves with it and stays skipped.
        let ack = tl.acknowledged.as_ref().unwrap();
        assert_eq!(ack.at, t(14, 20));
        assert!(ack.implicit);
    }

    #[test]
    fn skipped_stamps_follow_the_milestone_that_filled_them() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.record(Milestone::Fixed, t(14, 50), None).unwrap();
        tl.correct(CorrectionTarget::Milestone(Milestone::Fixed), t(14, 40))
            .unwrap();
        let ident = tl.identified.as_ref().unwrap();
        assert_eq!(ident.at, t(14, 40));
        assert!(ident.implicit);
        // ...but not past an explicit one.
        let err = tl
            .correct(CorrectionTarget::Milestone(Milestone::Fixed), t(14, 5))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fixed (14:05 UTC) would be before acknowledged (14:10 UTC)"
        );
    }

    #[test]
    fn correcting_started_respects_declaration_and_first_milestone() {
        let mut tl = fresh();
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        tl.correct(CorrectionTarget::Started, t(13, 50)).unwrap();
        assert_eq!(tl.started_at, t(13, 50));
        let err = tl.correct(CorrectionTarget::Started, t(14, 6)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "started (14:06 UTC) would be after declared (14:05 UTC)"
        );
        let mut tl = Timeline::new(t(14, 0), t(14, 30));
        tl.record(Milestone::Acknowledged, t(14, 10), None).unwrap();
        let err = tl
            .correct(CorrectionTarget::Started, t(14, 20))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "started (14:20 UTC) would be after acknowledged (14:10 UTC)"
        );
    }

    #[test]
    fn corrections_are_allowed_after_closing() {
        let mut tl = fresh();
        tl.record(Milestone::Resolved, t(15, 0), None).unwrap();
        tl.close(t(15, 30)).unwrap();
        tl.correct(CorrectionTarget::Milestone(Milestone::Resolved), t(14, 55))
            .unwrap();
        assert_eq!(tl.resolved.as_ref().unwrap().at, t(14, 55));
        assert_eq!(tl.status(), Status::Closed);
    }

    #[test]
    fn out_of_order_reasons_show_seconds_or_dates_when_needed() {
        let a = Utc.with_ymd_and_hms(2026, 11, 25, 14, 32, 10).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 11, 25, 14, 32, 40).unwrap();
        assert_eq!(
            format_pair(a, b),
            ("14:32:10 UTC".to_string(), "14:32:40 UTC".to_string())
        );
        let c = Utc.with_ymd_and_hms(2026, 11, 24, 23, 50, 0).unwrap();
        assert_eq!(
            format_pair(c, a),
            (
                "2026-11-24 23:50 UTC".to_string(),
                "2026-11-25 14:32 UTC".to_string()
            )
        );
    }

    #[test]
    fn status_names_round_trip() {
        for st in [
            Status::Investigating,
            Status::Acknowledged,
            Status::Identified,
            Status::Fixed,
            Status::Monitoring,
            Status::Closed,
        ] {
            assert_eq!(Status::parse(st.as_str()), Some(st));
        }
        assert_eq!(Status::Identified.to_string(), "Root cause identified");
        assert!(Status::Fixed.is_active());
        assert!(!Status::Monitoring.is_active());
    }
}
