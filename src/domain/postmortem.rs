//! The postmortem draft (SPEC §13): one Markdown file built from what the bot stored — summary, impact window,
//! the four phases with the slowest marked, the timeline, deploys before impact, the detection method, the
//! service's alert and runbook coverage, the questions worth answering, and the follow-ups. Pure: the caller
//! ([`crate::incidents::postmortem`]) gathers a [`Draft`]; [`render`] turns it into the file's bytes, the same
//! bytes whether uploaded to Slack or written by `incident-bot export … --format postmortem`.
//!
//! Untrusted text (titles, services, captured messages, deploy fields, follow-ups) goes through [`md`]: one line,
//! Markdown's inline punctuation escaped, so it can neither start a heading or list nor end a table cell.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::deploy::Deploy;
use super::duration::format_duration;
use super::followup::Followup;
use super::mttr::{self, PhaseKind};
use super::phase::Timeline;
use super::severity::{DetectionMethod, Severity};
use super::text;
use super::timeline::Entry;

/// The service's coverage in the catalog (as `check-config` counts it) and in the alert routes.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The catalog's name of the service.
    pub service: String,
    pub runbook_url: Option<String>,
    pub dashboard_url: Option<String>,
    /// Slack owners or on-call users to invite.
    pub owner: bool,
    /// A pager route.
    pub pager: bool,
    /// The actions (`declare`, `attach`, `notify`) of the alert routes that name this service.
    pub alert_routes: Vec<String>,
}

/// Everything the draft shows, loaded by the caller.
#[derive(Debug, Clone)]
pub struct Draft {
    pub key: String,
    pub title: String,
    pub severity: Severity,
    pub peak_severity: Severity,
    pub service: Option<String>,
    pub declared_by: String,
    pub ic: Option<String>,
    pub comms: Option<String>,
    pub detection: DetectionMethod,
    pub timeline: Timeline,
    /// Every stored timeline line, oldest first.
    pub entries: Vec<Entry>,
    /// Production deploys to the service or a dependency in the 2 hours before impact.
    pub deploys: Vec<Deploy>,
    /// `None` when the incident names no service, or one the catalog does not know (`service` is then set).
    pub coverage: Option<Coverage>,
    pub followups: Vec<Followup>,
    /// The zone every time is written in.
    pub tz: Tz,
    /// For an unresolved incident: the phases run to here.
    pub now: DateTime<Utc>,
}

/// Untrusted text as one line of Markdown inline text: invisible characters removed, line breaks and other
/// control characters made spaces, and the punctuation that could make a heading, emphasis, a link, HTML, a
/// table cell boundary or code escaped with a backslash.
pub fn md(s: &str) -> String {
    let clean = text::plain(s, usize::MAX);
    let mut out = String::with_capacity(clean.len() + 8);
    for c in clean.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// Slack text (a stored timeline line or a captured message) as plain text: `<@U1>` → `@U1`, `<#C1|ops>` →
/// `#ops`, `<!date^…|09:04 UTC>` → `09:04 UTC`, `<!here>` → `@here`, `<https://x|label>` → `label (https://x)`,
/// then `&lt;` `&gt;` `&amp;` decoded. With `bot_line`, the bot's own `*bold*` and `` `code` `` marks are dropped.
pub fn slack_to_plain(s: &str, bot_line: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let Some(j) = tail.find('>') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let inner = &tail[..j];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        let shown = if let Some(id) = target.strip_prefix('@') {
            format!("@{}", label.unwrap_or(id))
        } else if let Some(id) = target.strip_prefix('#') {
            format!("#{}", label.unwrap_or(id))
        } else if let Some(special) = target.strip_prefix('!') {
            match label {
                Some(l) => l.to_string(),
                None => format!("@{special}"),
            }
        } else {
            match label {
                Some(l) if l != target => format!("{l} ({target})"),
                _ => target.to_string(),
            }
        };
        out.push_str(&shown);
        rest = &tail[j + 1..];
    }
    out.push_str(rest);
    let mut plain = text::decode_slash(&out);
    if bot_line {
        plain.retain(|c| c != '*' && c != '`');
    }
    plain
}

fn when(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn user(id: Option<&str>) -> String {
    id.map(md).unwrap_or_else(|| "nobody".into())
}

fn percent(share: f64) -> i64 {
    (share * 100.0).round() as i64
}

/// The draft as Markdown (ends with a newline).
pub fn render(d: &Draft) -> String {
    let mut o = String::new();
    push_line(
        &mut o,
        &format!("# Postmortem draft: {} — {}\n", d.key, md(&d.title)),
    );
    push_line(
        &mut o,
        &format!(
            "_A draft built by incident-bot from what it recorded; times in {}. Edit it into the postmortem._\n",
            d.tz.name()
        ),
    );
    summary(&mut o, d);
    impact_window(&mut o, d);
    phases(&mut o, d);
    timeline(&mut o, d);
    deploys_before_impact(&mut o, d);
    detection(&mut o, d);
    coverage(&mut o, d);
    questions(&mut o, d);
    followups(&mut o, d);
    o
}

fn push_line(o: &mut String, s: &str) {
    o.push_str(s);
    o.push('\n');
}

/// The "Summary" section.
fn summary(o: &mut String, d: &Draft) {
    let mut line = |s: &str| push_line(o, s);
    line("## Summary");
    line("");
    line(&format!("- **Incident:** {} — {}", d.key, md(&d.title)));
    line(&format!(
        "- **Severity:** {} (peak {})",
        d.severity.as_str(),
        d.peak_severity.as_str()
    ));
    line(&format!(
        "- **Service:** {}",
        d.service
            .as_deref()
            .map(md)
            .unwrap_or_else(|| "none given".into())
    ));
    line(&format!("- **Declared by:** {}", md(&d.declared_by)));
    line(&format!(
        "- **Roles:** incident commander {}; comms lead {}",
        user(d.ic.as_deref()),
        user(d.comms.as_deref())
    ));
    line(&format!(
        "- **Status:** {}",
        d.timeline.status().label().to_lowercase()
    ));
    line("");
}

/// The "Impact window" section.
fn impact_window(o: &mut String, d: &Draft) {
    let tz = d.tz;
    let resolved = d.timeline.resolved.as_ref().map(|s| s.at);
    let b = mttr::breakdown(&d.timeline, resolved.unwrap_or(d.now));
    let mut line = |s: &str| push_line(o, s);
    line("## Impact window");
    line("");
    line(&format!(
        "- **Impact started:** {}",
        when(d.timeline.started_at, tz)
    ));
    line(&format!(
        "- **Declared:** {}",
        when(d.timeline.declared_at, tz)
    ));
    match resolved {
        Some(r) => {
            line(&format!("- **Resolved:** {}", when(r, tz)));
            line(&format!(
                "- **MTTR:** {} (tier {} for a {})",
                format_duration(b.mttr),
                mttr::tier(d.peak_severity, b.mttr).label(),
                d.peak_severity.as_str()
            ));
        }
        None => {
            line(&format!(
                "- **Resolved:** not yet (as of {})",
                when(d.now, tz)
            ));
            line(&format!(
                "- **Elapsed so far:** {}",
                format_duration(b.mttr)
            ));
        }
    }
    line("");
}

/// The "Phases" section.
fn phases(o: &mut String, d: &Draft) {
    let resolved = d.timeline.resolved.as_ref().map(|s| s.at);
    let b = mttr::breakdown(&d.timeline, resolved.unwrap_or(d.now));
    let slowest = b.slowest();
    let mut line = |s: &str| push_line(o, s);
    line("## Phases");
    line("");
    line("| Phase | Duration | Share of MTTR | Note |");
    line("|---|---|---|---|");
    for p in &b.phases {
        let note = if p.skipped {
            "skipped"
        } else if Some(p.kind) == slowest {
            "**slowest**"
        } else if p.ongoing {
            "ongoing"
        } else {
            ""
        };
        line(&format!(
            "| {} | {} | {}% | {note} |",
            p.kind.label(),
            format_duration(p.duration),
            percent(b.share(p.kind))
        ));
    }
    line("");
}

/// The "Timeline" section.
fn timeline(o: &mut String, d: &Draft) {
    let tz = d.tz;
    let mut line = |s: &str| push_line(o, s);
    line("## Timeline");
    line("");
    if d.entries.is_empty() {
        line("Nothing was recorded on the timeline.");
    } else {
        line("| Time | What | Who | Detail |");
        line("|---|---|---|---|");
        for e in &d.entries {
            let detail = if e.kind == super::timeline::MESSAGE_KIND {
                if e.deleted {
                    "(captured message, since deleted)".to_string()
                } else {
                    let link = e
                        .permalink
                        .as_deref()
                        .and_then(text::checked_url)
                        .map(|u| format!(" ([message]({}))", md_url(u.as_str())))
                        .unwrap_or_default();
                    format!("“{}”{link}", md(&slack_to_plain(&e.detail, false)))
                }
            } else {
                md(&slack_to_plain(&e.detail, true))
            };
            line(&format!(
                "| {} | {} | {} | {detail} |",
                when(e.at, tz),
                md(&e.kind),
                e.actor.as_deref().map(md).unwrap_or_default()
            ));
        }
    }
    line("");
}

/// The "Deploys in the 2 hours before impact" section.
fn deploys_before_impact(o: &mut String, d: &Draft) {
    let tz = d.tz;
    let mut line = |s: &str| push_line(o, s);
    line("## Deploys in the 2 hours before impact");
    line("");
    match &d.service {
        None => line("Not checked: the incident names no service."),
        Some(svc) if d.deploys.is_empty() => line(&format!(
            "None: nothing was deployed to production on {} or its dependencies.",
            md(svc)
        )),
        Some(svc) => {
            for dep in &d.deploys {
                let mut s = format!("- {} — **{}**", when(dep.deployed_at, tz), md(&dep.service));
                if !dep.service.eq_ignore_ascii_case(svc) {
                    s.push_str(" (dependency)");
                }
                if let Some(v) = &dep.version {
                    s.push_str(&format!(" {}", md(v)));
                }
                if let Some(a) = &dep.author {
                    s.push_str(&format!(" by {}", md(a)));
                }
                s.push_str(&format!(
                    ", {} before impact",
                    format_duration(d.timeline.started_at - dep.deployed_at)
                ));
                if let Some(u) = dep.url.as_deref().and_then(text::checked_url) {
                    s.push_str(&format!(" ([deploy]({}))", md_url(u.as_str())));
                }
                line(&s);
            }
        }
    }
    line("");
}

/// The "Detection" section.
fn detection(o: &mut String, d: &Draft) {
    let resolved = d.timeline.resolved.as_ref().map(|s| s.at);
    let b = mttr::breakdown(&d.timeline, resolved.unwrap_or(d.now));
    let mut line = |s: &str| push_line(o, s);
    line("## Detection");
    line("");
    line(&format!("- **Detected via:** {}", d.detection.as_str()));
    line(&format!(
        "- **Time to detect (impact → acknowledged):** {}",
        format_duration(b.get(PhaseKind::Detection).duration)
    ));
    line("");
}

/// The "Alert and runbook coverage" section.
fn coverage(o: &mut String, d: &Draft) {
    let mut line = |s: &str| push_line(o, s);
    line("## Alert and runbook coverage");
    line("");
    match (&d.coverage, &d.service) {
        (_, None) => line("Not known: the incident names no service."),
        (None, Some(svc)) => line(&format!(
            "{} is not in the service catalog: no runbook, dashboard, owner, pager route or alert route is known for it.",
            md(svc)
        )),
        (Some(c), Some(_)) => {
            let link = |label: &str, u: &Option<String>| match u.as_deref().and_then(text::checked_url) {
                Some(u) => format!("- **{label}:** yes ({})", md_url(u.as_str())),
                None => format!("- **{label}:** missing"),
            };
            line(&format!("Service **{}** in the catalog:", md(&c.service)));
            line("");
            line(&link("Runbook", &c.runbook_url));
            line(&link("Dashboard", &c.dashboard_url));
            line(&format!("- **Owner to invite:** {}", yes(c.owner)));
            line(&format!("- **Pager route:** {}", yes(c.pager)));
            line(&format!(
                "- **Alert routes that target it:** {}",
                if c.alert_routes.is_empty() {
                    "none".to_string()
                } else {
                    format!("{} ({})", c.alert_routes.len(), c.alert_routes.join(", "))
                }
            ));
        }
    }
    line("");
}

/// The "Questions worth answering" section.
fn questions(o: &mut String, d: &Draft) {
    let resolved = d.timeline.resolved.as_ref().map(|s| s.at);
    let b = mttr::breakdown(&d.timeline, resolved.unwrap_or(d.now));
    let slowest = b.slowest();
    let mut line = |s: &str| push_line(o, s);
    line("## Questions worth answering");
    line("");
    let slow = match slowest {
        Some(k) => format!(
            "1. **Why did {} take {} ({}% of the time)?** What was being done, and what was waited on?",
            k.label().to_lowercase(),
            format_duration(b.get(k).duration),
            percent(b.share(k))
        ),
        None => "1. **Which phase took longest?** Every phase took 0s as recorded: were the times recorded late?"
            .to_string(),
    };
    line(&slow);
    let missing_docs: Vec<&str> = match &d.coverage {
        Some(c) => [
            (c.runbook_url.is_none(), "no runbook"),
            (c.dashboard_url.is_none(), "no dashboard"),
        ]
        .into_iter()
        .filter_map(|(m, s)| m.then_some(s))
        .collect(),
        None => Vec::new(),
    };
    line(&format!(
        "2. **What information was missing?** What did responders have to find out by asking or searching?{}",
        if missing_docs.is_empty() {
            String::new()
        } else {
            format!(" The catalog lists {} for this service.", missing_docs.join(" and "))
        }
    ));
    line("3. **What tooling got in the way?** Access, dashboards, deploy or rollback tools, paging, this bot.");
    line(&format!(
        "4. **Could detection have been automatic?** {}",
        detection_question(d, &b)
    ));
    line("");
}

/// The "Follow-ups" section.
fn followups(o: &mut String, d: &Draft) {
    let tz = d.tz;
    let mut line = |s: &str| push_line(o, s);
    line("## Follow-ups");
    line("");
    if d.followups.is_empty() {
        line("None yet. Add one with `/incident followup <text> [@owner] [due:YYYY-MM-DD]`.");
    } else {
        for f in &d.followups {
            let mut s = format!(
                "- [{}] #{} {}",
                if f.is_done() { "x" } else { " " },
                f.id,
                md(&f.text)
            );
            s.push_str(&format!(" — owner {}", user(f.owner.as_deref())));
            if let Some(due) = f.due_on {
                s.push_str(&format!(", due {}", due.format("%Y-%m-%d")));
            }
            if let Some(at) = f.done_at {
                s.push_str(&format!(
                    ", done {} by {}",
                    when(at, tz),
                    user(f.done_by.as_deref())
                ));
            }
            line(&s);
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "missing"
    }
}

/// A checked URL inside a Markdown link target or text: nothing that ends it.
fn md_url(u: &str) -> String {
    u.replace('(', "%28")
        .replace(')', "%29")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace(' ', "%20")
}

/// The detection question, made concrete from how the incident was detected.
fn detection_question(d: &Draft, b: &mttr::Breakdown) -> String {
    let took = format_duration(b.get(PhaseKind::Detection).duration);
    let routes = d
        .coverage
        .as_ref()
        .map(|c| c.alert_routes.len())
        .unwrap_or(0);
    let svc = d
        .service
        .as_deref()
        .map(md)
        .unwrap_or_else(|| "the service".into());
    let routes_text = if routes == 0 {
        format!("no alert route targets {svc}")
    } else {
        format!("{routes} alert route(s) target {svc} and none caught it first")
    };
    match d.detection {
        DetectionMethod::Customer => format!(
            "A customer reported it, {took} after impact began, and {routes_text}. Which signal (error rate, \
             latency, a synthetic check) would have fired before the customer noticed?"
        ),
        DetectionMethod::Engineer => format!(
            "An engineer noticed it, {took} after impact began, and {routes_text}. What did they see, and can an \
             alert watch for it?"
        ),
        DetectionMethod::Alert => format!(
            "An alert detected it; acknowledging took {took} from the start of impact. Could the alert fire \
             sooner (threshold, evaluation window), or page the right person first?"
        ),
        DetectionMethod::Unknown => format!(
            "Nobody recorded how it was detected ({routes_text}). Say how, and whether an alert could have \
             caught it."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_on_one_line_and_cannot_make_structure() {
        let s = md("Title\n# heading\r\n| a | b | <script> [x](javascript:y) `code` *b*");
        assert!(!s.contains('\n'), "{s}");
        assert!(s.contains("\\# heading"), "{s}");
        assert!(s.contains("\\| a \\|"), "{s}");
        assert!(s.contains("\\<script\\>"), "{s}");
        assert!(s.contains("\\[x\\]"), "{s}");
        assert!(s.contains("\\`code\\`"), "{s}");
    }

    #[test]
    fn slack_markup_reads_as_plain_text() {
        assert_eq!(
            slack_to_plain(
                "✋ <@U0A> acked at <!date^1^{time}|09:04 UTC> · *MTTR* `x` in <#C1|ops> &lt;b&gt;",
                true
            ),
            "✋ @U0A acked at 09:04 UTC · MTTR x in #ops <b>"
        );
        assert_eq!(
            slack_to_plain("see <https://x.test|docs> <!here> *hi*", false),
            "see docs (https://x.test) @here *hi*"
        );
    }

    #[test]
    fn urls_cannot_close_a_link() {
        assert_eq!(
            md_url("https://x.test/a(b)|c"),
            "https://x.test/a%28b%29%7Cc"
        );
    }
}
