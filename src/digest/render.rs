//! Rendering a [`Digest`] for people — pure. [`lines`] gives the figures line by line, each with its change
//! against the previous period, in Slack mrkdwn ([`Style::Slack`]) or plain text for the terminal
//! ([`Style::Plain`]); [`blocks`] wraps them in Block Kit for `chat.postMessage`. Titles, service and team names
//! are untrusted: escaped for Slack ([`Style::text`]), and every block is cut to Slack's limits.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::stats::{
    ChangeFailure, Digest, Figures, MttrStat, Period, Ranked, WORK_END_HOUR, WORK_START_HOUR,
};
use crate::domain::duration::format_duration;
use crate::domain::mttr::{bar, PhaseKind, Spread};
use crate::domain::severity::Severity;
use crate::domain::text;
use crate::slack::blocks::severity_emoji;

/// Where the text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Slack mrkdwn: `*bold*`, emoji, channel links.
    Slack,
    /// A terminal: no markup.
    Plain,
}

impl Style {
    fn bold(self, s: &str) -> String {
        match self {
            Style::Slack => format!("*{s}*"),
            Style::Plain => s.to_string(),
        }
    }

    /// Untrusted text (a title, a service or team name), cut to `max` characters: escaped for Slack, without
    /// invisible or control characters for a terminal.
    pub fn text(self, s: &str, max: usize) -> String {
        match self {
            Style::Slack => text::escape_cut(s, max),
            Style::Plain => text::plain(s, max),
        }
    }
}

/// What the digest is about, for its heading.
#[derive(Clone, Debug)]
pub struct Heading {
    /// e.g. `Weekly incident digest`.
    pub title: String,
    /// e.g. `team team-payments`; empty for every incident.
    pub scope: String,
    pub tz: Tz,
}

/// `Mon 16 Nov 09:00 – Mon 23 Nov 2026 09:00 (Europe/Berlin)`.
pub fn period_label(p: Period, tz: Tz) -> String {
    let (s, e) = (p.start.with_timezone(&tz), p.end.with_timezone(&tz));
    format!(
        "{} – {} ({})",
        s.format("%a %d %b %H:%M"),
        e.format("%a %d %b %Y %H:%M"),
        tz.name()
    )
}

/// `16 Nov – 23 Nov 2026`.
pub fn short_period(p: Period, tz: Tz) -> String {
    let (s, e) = (p.start.with_timezone(&tz), p.end.with_timezone(&tz));
    format!("{} – {}", s.format("%d %b"), e.format("%d %b %Y"))
}

fn arrow(diff: i64) -> &'static str {
    match diff.signum() {
        1 => "▲",
        -1 => "▼",
        _ => "=",
    }
}

/// `7 (▲ 2 from 5)`.
pub fn count_change(cur: usize, prev: usize) -> String {
    let diff = cur as i64 - prev as i64;
    if diff == 0 {
        format!("{cur} (= from {prev})")
    } else {
        format!("{cur} ({} {} from {prev})", arrow(diff), diff.abs())
    }
}

/// `1h 10m (▼ 20m from 1h 30m)`; `—` without a current value; `(none before)` without a previous one.
pub fn duration_change(cur: Option<Duration>, prev: Option<Duration>) -> String {
    match (cur, prev) {
        (None, None) => "—".into(),
        (None, Some(p)) => format!("— (from {})", format_duration(p)),
        (Some(c), None) => format!("{} (none before)", format_duration(c)),
        (Some(c), Some(p)) => {
            let diff = c - p;
            let d = diff.num_seconds();
            if d.abs() < 60 {
                format!("{} (= from {})", format_duration(c), format_duration(p))
            } else {
                format!(
                    "{} ({} {} from {})",
                    format_duration(c),
                    arrow(d),
                    format_duration(diff.abs()),
                    format_duration(p)
                )
            }
        }
    }
}

fn pct(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// `43 % (▲ 10 pts from 33 %)`.
pub fn share_change(cur: Option<f64>, prev: Option<f64>) -> String {
    match cur {
        None => match prev {
            None => "—".into(),
            Some(p) => format!("— (from {})", pct(p)),
        },
        Some(c) => format!("{} {}", pct(c), share_delta(c, prev)),
    }
}

/// `(▲ 10 pts from 33 %)`, `(= from 20 %)` or `(none before)`.
fn share_delta(cur: f64, prev: Option<f64>) -> String {
    match prev {
        None => "(none before)".into(),
        Some(p) => {
            let pts = ((cur - p) * 100.0).round() as i64;
            if pts == 0 {
                format!("(= from {})", pct(p))
            } else {
                let unit = if pts.abs() == 1 { "pt" } else { "pts" };
                format!("({} {} {unit} from {})", arrow(pts), pts.abs(), pct(p))
            }
        }
    }
}

fn stat_line(style: Style, label: &str, cur: &MttrStat, prev: &MttrStat) -> String {
    format!(
        "{} mean {} · median {} · {} resolved",
        style.bold(label),
        duration_change(cur.mean, prev.mean),
        duration_change(cur.median, prev.median),
        cur.count
    )
}

fn severity_line(style: Style, sev: Severity, cur: &Figures, prev: &Figures) -> String {
    let (c, p) = (cur.severity(sev), prev.severity(sev));
    let mark = match style {
        Style::Slack => format!("{} ", severity_emoji(sev)),
        Style::Plain => String::new(),
    };
    if c.incidents == 0 && p.incidents == 0 {
        return format!("{mark}{} · no incidents, none before", sev.as_str());
    }
    let tier = match (c.tier, p.tier) {
        (Some(t), Some(pt)) if t != pt => format!(" · tier {} (was {pt})", style.bold(t.label())),
        (Some(t), _) => format!(" · tier {}", style.bold(t.label())),
        (None, _) => String::new(),
    };
    format!(
        "{mark}{} · incidents {} · mean {} · median {}{tier} · {}",
        sev.as_str(),
        count_change(c.incidents, p.incidents),
        duration_change(c.mttr.mean, p.mttr.mean),
        duration_change(c.mttr.median, p.mttr.median),
        spread(&c.distribution),
    )
}

/// `p50 12m · p90 40m (n 7)` or `not enough data (n 3)`.
pub fn spread(s: &Spread) -> String {
    s.label(format_duration)
}

/// What a failed deployment is, in one sentence (the digest's footer and the report say it).
pub const FAILED_DEPLOYMENT: &str = "A failed deployment is a production deploy to an incident's service or one of its dependencies in the 2 hours before the incident started; it recovers when its incidents are resolved (docs/distributions.md).";

/// `4 of 57 production deploys (7.0 %)`.
pub fn change_failure_rate(c: &ChangeFailure) -> String {
    match c.rate {
        Some(r) => format!(
            "{} of {} production deploys ({:.1} %)",
            c.failed,
            c.deploys,
            r * 100.0
        ),
        None => "no production deploys recorded".into(),
    }
}

fn change_failure_lines(style: Style, cur: &ChangeFailure, prev: &ChangeFailure) -> Vec<String> {
    let before = match prev.rate {
        Some(_) => format!(" (before: {})", change_failure_rate(prev)),
        None => String::new(),
    };
    let mut recovery = format!(
        "{} {}",
        style.bold("Failed-deployment recovery time:"),
        spread(&cur.recovery)
    );
    if cur.unrecovered > 0 {
        recovery.push_str(&format!(" · {} not recovered yet", cur.unrecovered));
    }
    vec![
        format!(
            "{} {}{before}",
            style.bold("Change-failure rate:"),
            change_failure_rate(cur)
        ),
        recovery,
    ]
}

fn ranked_line(style: Style, label: &str, cur: &[Ranked], prev: &[Ranked]) -> Option<String> {
    if cur.is_empty() {
        return None;
    }
    let items: Vec<String> = cur
        .iter()
        .take(super::stats::TOP_N)
        .map(|r| {
            let before = prev
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(&r.name))
                .and_then(|p| p.mttr.mean);
            format!(
                "{} {} over {}",
                style.text(&r.name, 80),
                duration_change(r.mttr.mean, before),
                r.mttr.count
            )
        })
        .collect();
    Some(format!("{} {}", style.bold(label), items.join(" · ")))
}

/// The digest's body, one line (or short paragraph) per figure, grouped in sections.
pub fn sections(d: &Digest, tz: Tz, style: Style) -> Vec<Vec<String>> {
    let (cur, prev) = (&d.current, &d.previous);
    let mut out = Vec::new();

    out.push(vec![
        format!(
            "{} {} · resolved {} · open at the end {}",
            style.bold("Incidents:"),
            count_change(cur.incidents, prev.incidents),
            count_change(cur.resolved, prev.resolved),
            count_change(cur.open_at_end, prev.open_at_end),
        ),
        stat_line(style, "MTTR:", &cur.mttr, &prev.mttr),
    ]);

    let mut sev = vec![style.bold("MTTR by severity")];
    sev.extend(
        Severity::ALL
            .iter()
            .map(|&s| severity_line(style, s, cur, prev)),
    );
    out.push(sev);

    let mut phases = vec![format!(
        "{} (average share of MTTR over {} incidents · how often each phase was the slowest · mean, p50 and p90 with n)",
        style.bold("Where the time goes"),
        cur.phases.incidents
    )];
    if cur.phases.incidents == 0 {
        phases.push("No resolved incident with recorded phases.".into());
    } else {
        for k in PhaseKind::ALL {
            let (c, p) = (cur.phases.get(k), prev.phases.get(k));
            let share = c.average_share.unwrap_or(0.0);
            let label = format!("{:<12} {} {:>4}", k.label(), bar(share, 10), pct(share));
            let label = match style {
                Style::Slack => format!("`{label}`"),
                Style::Plain => label,
            };
            phases.push(format!(
                "{label} {} · slowest in {} · mean {} · {}",
                share_delta(share, p.average_share),
                count_change(c.slowest, p.slowest),
                c.mean.map(format_duration).unwrap_or_else(|| "—".into()),
                spread(&c.distribution)
            ));
        }
    }
    if cur.phases.unknown > 0 {
        phases.push(format!(
            "{} imported incident(s) have unknown triage, remediation and verification times and are left out here.",
            cur.phases.unknown
        ));
    }
    out.push(phases);

    let (cd, pd) = (&cur.detection, &prev.detection);
    let mut detection = vec![format!(
        "{} alert {} · customer {} · engineer {}{}{}",
        style.bold("Detected by:"),
        count_change(cd.alert, pd.alert),
        count_change(cd.customer, pd.customer),
        count_change(cd.engineer, pd.engineer),
        if cd.unknown > 0 || pd.unknown > 0 {
            format!(" · not yet said {}", count_change(cd.unknown, pd.unknown))
        } else {
            String::new()
        },
        if cd.imported > 0 {
            format!(" · unknown (imported) {}", cd.imported)
        } else {
            String::new()
        }
    )];
    if cd.customer_warning {
        let warn = match style {
            Style::Slack => ":warning: ",
            Style::Plain => "WARNING: ",
        };
        detection.push(format!(
            "{warn}{} — more than 20 %: customers noticed before monitoring did. Check the alerts of the services involved.",
            style.bold(&format!(
                "{} of {} P1s ({}) were reported by customers",
                cd.p1_customer,
                cd.p1,
                pct(cd.p1_customer_share.unwrap_or(0.0))
            ))
        ));
    } else if cd.p1 > 0 {
        detection.push(format!(
            "P1s reported by customers: {} of {} ({})",
            cd.p1_customer,
            cd.p1,
            share_change(cd.p1_customer_share, pd.p1_customer_share)
        ));
    }
    detection.push(format!(
        "{} {} of {} incidents — {}",
        style.bold("Deploy in the 2 hours before:"),
        cur.deploys.with_deploy,
        cur.deploys.incidents,
        share_change(cur.deploys.share, prev.deploys.share)
    ));
    out.push(detection);

    out.push(change_failure_lines(
        style,
        &cur.change_failure,
        &prev.change_failure,
    ));

    let mut hours = vec![format!(
        "{} (Mon–Fri {WORK_START_HOUR:02}:00–{WORK_END_HOUR:02}:00 {})",
        style.bold("In hours vs out of hours"),
        tz.name()
    )];
    hours.push(stat_line(
        style,
        "In hours:",
        &cur.hours.in_hours,
        &prev.hours.in_hours,
    ));
    hours.push(stat_line(
        style,
        "Out of hours:",
        &cur.hours.out_of_hours,
        &prev.hours.out_of_hours,
    ));
    out.push(hours);

    let mut top = vec![style.bold("Highest MTTR")];
    top.extend(ranked_line(
        style,
        "Services:",
        &cur.services,
        &prev.services,
    ));
    top.extend(ranked_line(style, "Teams:", &cur.teams, &prev.teams));
    if top.len() == 1 {
        top.push("No resolved incidents.".into());
    }
    out.push(top);

    let mut open = vec![format!(
        "{} {}",
        style.bold("Still open:"),
        d.still_open.len()
    )];
    for o in d.still_open.iter().take(10) {
        let room = match (&o.channel_id, style) {
            (Some(c), Style::Slack) => format!(" · <#{c}>"),
            _ => String::new(),
        };
        let mark = match style {
            Style::Slack => format!("{} ", severity_emoji(o.severity)),
            Style::Plain => "- ".into(),
        };
        open.push(format!(
            "{mark}INC-{} {} · {} · {} · open {} · {}{room}",
            o.number,
            style.text(&o.title, 150),
            o.severity.as_str(),
            style.text(o.service.as_deref().unwrap_or("no service"), 80),
            format_duration(o.open_for),
            o.phase.map(PhaseKind::label).unwrap_or("unknown phase"),
        ));
    }
    if d.still_open.len() > 10 {
        open.push(format!("… and {} more", d.still_open.len() - 10));
    }
    out.push(open);
    out
}

/// The heading line.
pub fn title(d: &Digest, h: &Heading) -> String {
    let scope = if h.scope.is_empty() {
        String::new()
    } else {
        format!(" · {}", h.scope)
    };
    format!(
        "📊 {}{scope} · {}",
        h.title,
        short_period(d.current.period, h.tz)
    )
}

/// The whole digest as text (a terminal report, or the notification text of the Slack message).
pub fn text(d: &Digest, h: &Heading, style: Style) -> String {
    let mut out = vec![
        title(d, h),
        format!(
            "{} · compared with the 7 days before",
            period_label(d.current.period, h.tz)
        ),
    ];
    for s in sections(d, h.tz, style) {
        out.push(String::new());
        out.extend(s);
    }
    out.join("\n")
}

/// Block Kit for `chat.postMessage`. `block_id` marks the first block so that a retry can find the message.
pub fn blocks(d: &Digest, h: &Heading, block_id: &str) -> Vec<Value> {
    let mut heading = text::escape_cut(&title(d, h), text::HEADER_TEXT);
    if heading.is_empty() {
        heading.push_str("Incident digest");
    }
    let mut out = vec![
        json!({ "type": "header", "block_id": block_id, "text": { "type": "plain_text", "text": heading, "emoji": true } }),
        json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!(
            "{} · each figure with its change against the 7 days before",
            period_label(d.current.period, h.tz)
        ) }] }),
    ];
    for s in sections(d, h.tz, Style::Slack) {
        let body = text::cut(&s.join("\n"), text::SECTION_TEXT);
        out.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": body } }));
    }
    out.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!(
        "An incident counts in the week it started. Tier = the DORA-style tier of the median MTTR. p50/p90 need 5 values. {FAILED_DEPLOYMENT} Built {}.",
        crate::slack::blocks::slack_time(d.generated_at)
    ) }] }));
    out
}

/// The chart's title, also the file's comment in the channel.
pub fn chart_title(d: &Digest, h: &Heading) -> String {
    let scope = if h.scope.is_empty() {
        String::new()
    } else {
        format!(" · {}", h.scope)
    };
    format!(
        "MTTR per phase{scope} · {} vs the 7 days before",
        short_period(d.current.period, h.tz)
    )
}

/// When the digest was built, in the digest's time zone.
pub fn built_at(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(x: i64) -> Option<Duration> {
        Some(Duration::minutes(x))
    }

    #[test]
    fn changes_show_direction_amount_and_the_previous_value() {
        assert_eq!(count_change(7, 5), "7 (▲ 2 from 5)");
        assert_eq!(count_change(3, 5), "3 (▼ 2 from 5)");
        assert_eq!(count_change(4, 4), "4 (= from 4)");
        assert_eq!(duration_change(m(70), m(90)), "1h 10m (▼ 20m from 1h 30m)");
        assert_eq!(duration_change(m(45), None), "45m (none before)");
        assert_eq!(duration_change(None, m(45)), "— (from 45m)");
        assert_eq!(duration_change(None, None), "—");
        assert_eq!(
            share_change(Some(0.43), Some(0.33)),
            "43 % (▲ 10 pts from 33 %)"
        );
        assert_eq!(share_change(Some(0.2), Some(0.2)), "20 % (= from 20 %)");
        assert_eq!(
            share_change(Some(0.21), Some(0.2)),
            "21 % (▲ 1 pt from 20 %)"
        );
    }

    #[test]
    fn periods_are_labelled_in_the_digest_time_zone() {
        use chrono::TimeZone;
        let end = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
        let p = Period::days_before(end, 7);
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        assert_eq!(
            period_label(p, berlin),
            "Mon 16 Nov 09:00 – Mon 23 Nov 2026 09:00 (Europe/Berlin)"
        );
        assert_eq!(short_period(p, berlin), "16 Nov – 23 Nov 2026");
    }
}
