//! Learning while the incident runs: stalled-phase nudges (deploy prompts are in [`super::deploy_prompt`]).
//!
//! **Stalled phase.** When the current phase has run longer than the team's own p90 for that phase at the
//! incident's current severity, the incident channel gets one message per phase: the figure, `n`, how long the
//! phase has run, the suspect deploys (production deploys to the service and its dependencies since 2 h before
//! impact) and two actions: page the service's escalation target (the escalation pager path of
//! [`super::outbox`], once per phase however many click) and open a deploy (a link button, only for a checked
//! http(s) URL). History: the phase's durations in incidents resolved in the last [`HISTORY_DAYS`] days whose
//! highest severity is the incident's current one — the service's own incidents when it has
//! [`SERVICE_HISTORY_MIN`] or more, else every service's; no nudge under [`MIN_SAMPLES`]. A phase counts only
//! where it really ran: its end recorded, its start recorded (detection starts at `started_at`), and not
//! *skipped* (0 s by the skip rule), so skips do not drag the figure down and imported incidents (which only
//! know acknowledge and resolve) add only their detection. The incident itself is not resolved, so it is never
//! in its own history. The percentile is `domain::mttr::percentile` (PostgreSQL's `percentile_cont`) at
//! `incidents.stalled_phase_percentile` (0.9; 0 switches nudges off).
//!
//! Mechanism: a timer row `stalled:<incident>:<phase>` ([`crate::store::timers`]), armed (due at once) when the
//! phase begins — declaration for detection, a phase change, a reopen — and re-armed by a correction or a severity
//! change. When it fires it re-reads the incident: resolved, or the phase no longer current → nothing; otherwise
//! it computes the figure and either waits (the timer is postponed to phase start + p90) or nudges. The claim of
//! the timer is one conditional `UPDATE`, so a phase is nudged once across replicas, and a nudged timer is never
//! re-armed.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::outbox::{self, Escalation};
use super::Incident;
use crate::catalog::PagerRoute;
use crate::config::IncidentSettings;
use crate::domain::deploy::Deploy;
use crate::domain::duration::format_duration;
use crate::domain::mttr::{self, PhaseKind};
use crate::domain::phase::Timeline;
use crate::domain::text::{self, escape_cut};
use crate::state::AppState;
use crate::store::timers::{self, Kind};
use crate::store::{deploys, incidents};

/// `action_id` of a nudge's "Page …" button; its value is `<incident id>|<phase>`.
pub const PAGE_ACTION_ID: &str = "stalled_page";
/// `action_id` prefix of a nudge's "Open deploy" link buttons.
pub const OPEN_DEPLOY_ACTION_ID: &str = "stalled_open_deploy";

/// How far back the history goes.
pub const HISTORY_DAYS: i64 = 90;
/// Resolved incidents of the service (at the severity) from which its own history is used.
pub const SERVICE_HISTORY_MIN: usize = 10;
/// Fewest durations that make a figure.
pub const MIN_SAMPLES: usize = 5;
/// The outcome of a stalled-phase timer that nudged: such a timer is never re-armed.
const NUDGED: &str = "nudged";
/// Most suspect deploys listed (and link buttons shown) in a nudge.
const SUSPECTS: i64 = 5;
const OPEN_BUTTONS: usize = 3;

fn timer_id(incident_id: &str, phase: PhaseKind) -> String {
    format!("stalled:{incident_id}:{}", phase.as_str())
}

/// When `phase` began in `tl`: `started_at` for detection, else its start milestone.
pub fn phase_start(tl: &Timeline, phase: PhaseKind) -> Option<DateTime<Utc>> {
    match phase.start() {
        None => Some(tl.started_at),
        Some(m) => tl.get(m).map(|s| s.at),
    }
}

/// `p90` for 0.9.
pub fn percentile_label(p: f64) -> String {
    format!("p{}", (p * 100.0).round() as i64)
}

// ── stalled phase: history (pure) ────────────────────────────────────────────────────────────────────────────

/// The duration of `phase` in a resolved incident, when the phase really ran (see the module doc).
pub fn ran_for(tl: &Timeline, phase: PhaseKind) -> Option<Duration> {
    let resolved = tl.resolved.as_ref()?;
    tl.get(phase.end())?;
    if phase.start().is_some_and(|m| tl.get(m).is_none()) {
        return None;
    }
    let span = *mttr::breakdown(tl, resolved.at).get(phase);
    (!span.skipped).then_some(span.duration)
}

/// Which history a figure came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The service's own resolved incidents at the severity.
    Service(String),
    /// Every resolved incident at the severity.
    Severity,
}

/// The figure a running phase is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub value: Duration,
    pub n: usize,
    pub scope: Scope,
}

/// The figure for `phase` from the service's history (`own`, its resolved incidents at the severity) when it has
/// [`SERVICE_HISTORY_MIN`] incidents or more, else from the severity's (`all`); `None` under [`MIN_SAMPLES`]
/// durations. Also returns `n` when there is no figure.
pub fn figure(
    phase: PhaseKind,
    service: Option<&str>,
    own: &[Timeline],
    all: &[Timeline],
    p: f64,
) -> Result<Figure, usize> {
    let (pool, scope) = match service {
        Some(s) if own.len() >= SERVICE_HISTORY_MIN => (own, Scope::Service(s.to_string())),
        _ => (all, Scope::Severity),
    };
    let mut v: Vec<Duration> = pool.iter().filter_map(|tl| ran_for(tl, phase)).collect();
    let n = v.len();
    if n < MIN_SAMPLES {
        return Err(n);
    }
    let value = mttr::percentile(&mut v, p).ok_or(n)?;
    Ok(Figure { value, n, scope })
}

async fn figure_for(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    phase: PhaseKind,
    now: DateTime<Utc>,
) -> Result<Result<Figure, usize>, sqlx::Error> {
    let since = now - Duration::days(HISTORY_DAYS);
    let p = state.settings.incidents.stalled_phase_percentile;
    let own = match inc.service.as_deref() {
        Some(svc) => {
            incidents::resolved_history(tx, inc.severity, Some(svc), since, &inc.id).await?
        }
        None => Vec::new(),
    };
    let service = inc.service.as_deref();
    if service.is_some() && own.len() >= SERVICE_HISTORY_MIN {
        let own: Vec<Timeline> = own.into_iter().map(|i| i.timeline).collect();
        return Ok(figure(phase, service, &own, &[], p));
    }
    let all: Vec<Timeline> = incidents::resolved_history(tx, inc.severity, None, since, &inc.id)
        .await?
        .into_iter()
        .map(|i| i.timeline)
        .collect();
    Ok(figure(phase, service, &[], &all, p))
}

// ── stalled phase: arming and firing ─────────────────────────────────────────────────────────────────────────

/// Arms (or re-arms) the stalled-phase check of the incident's current phase, due at once: the timer works out
/// the figure and waits until the phase passes it. Inside the caller's transaction; nothing when nudges are off
/// or the incident is resolved, and never again for a phase already nudged.
pub(crate) async fn arm(
    tx: &mut sqlx::AnyConnection,
    cfg: &IncidentSettings,
    incident_id: &str,
    tl: &Timeline,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if cfg.stalled_phase_percentile <= 0.0 || !tl.status().is_active() {
        return Ok(());
    }
    let Some(phase) = mttr::breakdown(tl, now).current() else {
        return Ok(());
    };
    timers::rearm(
        tx,
        &timer_id(incident_id, phase),
        incident_id,
        Kind::Stalled(phase),
        now,
        NUDGED,
        now,
    )
    .await
}

/// The detection check of a just-declared incident, for the batch arming of [`super::timers`]: due a minute
/// after the declaration (not at once, like [`arm`]), so a burst of declarations is not followed by a burst of
/// history reads; a detection p90 under a minute is then nudged up to a minute late.
pub(crate) fn declared_timer(
    cfg: &IncidentSettings,
    incident_id: &str,
    declared_at: DateTime<Utc>,
) -> Option<timers::NewTimer> {
    (cfg.stalled_phase_percentile > 0.0).then(|| {
        (
            timer_id(incident_id, PhaseKind::Detection),
            incident_id.to_string(),
            Kind::Stalled(PhaseKind::Detection),
            declared_at + Duration::minutes(1),
        )
    })
}

/// What a fired stalled-phase timer came to.
pub(crate) enum Fired {
    /// Done: the timer's outcome.
    Outcome(String),
    /// Not past the figure yet: due again then.
    Wait(DateTime<Utc>),
}

/// Fires the stalled-phase timer of `phase` (claimed in `tx`): re-checks that the phase is still current, works
/// out the figure and, past it, queues the nudge in `tx`.
pub(crate) async fn fire(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    phase: PhaseKind,
    now: DateTime<Utc>,
) -> Result<Fired, sqlx::Error> {
    let p = state.settings.incidents.stalled_phase_percentile;
    if p <= 0.0 {
        return Ok(Fired::Outcome("not needed: nudges are off".into()));
    }
    if !inc.timeline.status().is_active() {
        return Ok(Fired::Outcome(
            "not needed: the incident is resolved".into(),
        ));
    }
    let b = mttr::breakdown(&inc.timeline, now);
    let (Some(start), Some(true)) = (
        phase_start(&inc.timeline, phase),
        b.current().map(|c| c == phase),
    ) else {
        return Ok(Fired::Outcome(format!(
            "not needed: {} ended",
            phase.as_str()
        )));
    };
    let fig = match figure_for(state, tx, inc, phase, now).await? {
        Ok(f) => f,
        Err(n) => {
            return Ok(Fired::Outcome(format!(
                "not needed: not enough history (n = {n}, fewer than {MIN_SAMPLES})"
            )))
        }
    };
    let running = now - start;
    if running <= fig.value {
        // "Longer than" the figure: due just after it.
        return Ok(Fired::Wait(start + fig.value + Duration::seconds(1)));
    }
    let suspects = suspect_deploys(state, tx, inc, now).await?;
    let (text, blocks) = nudge_message(state, inc, phase, &fig, running, &suspects, now);
    outbox::post_message(
        tx,
        &timer_id(&inc.id, phase),
        &inc.id,
        &text,
        &blocks,
        &[phase.as_str()],
        now,
    )
    .await?;
    Ok(Fired::Outcome(NUDGED.into()))
}

/// Production deploys to the incident's service and its dependencies since 2 h before impact (the card's lookup,
/// up to now).
async fn suspect_deploys(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    now: DateTime<Utc>,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let Some(service) = inc.service.as_deref() else {
        return Ok(Vec::new());
    };
    let names = super::steps::watched_services(state, service);
    let since = inc.timeline.started_at - Duration::hours(2);
    deploys::recent_in(tx, &names, since, now, SUSPECTS).await
}

/// The label of the page button: the Opsgenie team when the route names one.
fn page_label(route: &PagerRoute) -> String {
    match route {
        PagerRoute::Opsgenie {
            team: Some(team), ..
        } => text::cut_plain(
            &format!("Page {}", text::plain(team, 60)),
            text::BUTTON_TEXT,
        ),
        _ => "Page escalation target".into(),
    }
}

/// The nudge: text (fallback) and blocks.
fn nudge_message(
    state: &AppState,
    inc: &Incident,
    phase: PhaseKind,
    fig: &Figure,
    running: Duration,
    suspects: &[Deploy],
    now: DateTime<Utc>,
) -> (String, Value) {
    let pct = percentile_label(state.settings.incidents.stalled_phase_percentile);
    let whose = match &fig.scope {
        Scope::Service(s) => format!(
            "*{}* {} incidents",
            escape_cut(s, 80),
            inc.severity.as_str()
        ),
        Scope::Severity => format!("{} incidents", inc.severity.as_str()),
    };
    let head = format!(
        "🐢 *{}* has been running for *{}* — longer than the team's {pct} for {} in {whose} \
         ({pct} {}, n = {}).",
        phase.label(),
        format_duration(running),
        phase.as_str(),
        format_duration(fig.value),
        fig.n
    );
    let main = inc
        .service
        .as_deref()
        .map(|s| super::steps::watched_services(state, s))
        .and_then(|v| v.into_iter().next());
    let suspects_text = if suspects.is_empty() {
        "*Suspect deploys* (since 2 h before impact): none".to_string()
    } else {
        let lines: Vec<String> = suspects
            .iter()
            .map(|d| {
                let dependency = main.as_deref() != Some(d.service.as_str());
                crate::slack::blocks::deploy_line(d, dependency, now, "ago")
            })
            .collect();
        format!(
            "*Suspect deploys* (since 2 h before impact):\n{}",
            lines.join("\n")
        )
    };
    let mut buttons = Vec::new();
    let route = inc
        .service
        .as_deref()
        .and_then(|s| state.catalog.get(s))
        .and_then(|s| s.escalation.as_ref());
    if let Some(route) = route {
        buttons.push(json!({
            "type": "button", "style": "danger", "action_id": PAGE_ACTION_ID,
            "value": format!("{}|{}", inc.id, phase.as_str()),
            "text": { "type": "plain_text", "text": page_label(route) }
        }));
    }
    let linked: Vec<(&Deploy, url::Url)> = suspects
        .iter()
        .filter_map(|d| d.url.as_deref().and_then(text::checked_url).map(|u| (d, u)))
        .take(OPEN_BUTTONS)
        .collect();
    let several = linked.len() > 1;
    for (i, (d, u)) in linked.into_iter().enumerate() {
        let label = if several {
            let what = format!("Open {} {}", d.service, d.version.as_deref().unwrap_or(""));
            text::cut_plain(&text::plain(what.trim(), 200), text::BUTTON_TEXT)
        } else {
            "Open deploy".to_string()
        };
        buttons.push(json!({
            "type": "button", "action_id": format!("{OPEN_DEPLOY_ACTION_ID}_{i}"),
            "url": u.as_str(), "text": { "type": "plain_text", "text": label }
        }));
    }
    let mut blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&head, text::SECTION_TEXT) } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&suspects_text, text::SECTION_TEXT) } }),
    ];
    if route.is_none() {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn",
            "text": "No escalation target in the catalog (`incident-bot/escalation`): escalate by hand." }] }));
    }
    if !buttons.is_empty() {
        blocks
            .push(json!({ "type": "actions", "block_id": "stalled_actions", "elements": buttons }));
    }
    (text::cut(&head, text::SECTION_TEXT), Value::Array(blocks))
}

/// What a click on a nudge's page button answers (ephemerally).
pub async fn page_click(
    state: &Arc<AppState>,
    team: Option<&str>,
    value: &str,
) -> Result<String, sqlx::Error> {
    let (incident_id, phase) = value.split_once('|').unwrap_or((value, ""));
    let Some(inc) = super::load(&state.db, incident_id).await? else {
        return Ok("That incident does not exist (any more).".into());
    };
    if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
        return Ok("That incident belongs to another workspace.".into());
    }
    if !inc.timeline.status().is_active() {
        return Ok(format!("*{}* is resolved: nobody was paged.", inc.key()));
    }
    let key = format!("stalled:{}:{}", inc.id, phase);
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    if crate::store::outbox::exists(&mut tx, &format!("page:{key}")).await? {
        tx.rollback().await?;
        return Ok(
            "Already paged from this message — the channel says when the page went out.".into(),
        );
    }
    outbox::page(&mut tx, &inc.id, Escalation::Stalled, &key, now).await?;
    tx.commit().await?;
    outbox::kick(state);
    Ok("Paging the escalation target — the channel will say when the page went out.".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phase::Milestone;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
    }

    /// A resolved timeline: acknowledged, identified, fixed, resolved `a`, `b`, `c`, `d` minutes after 10:00.
    fn resolved(a: u32, b: u32, c: u32, d: u32) -> Timeline {
        let mut tl = Timeline::new(t(10, 0), t(10, 0));
        for (m, at) in [
            (Milestone::Acknowledged, a),
            (Milestone::Identified, b),
            (Milestone::Fixed, c),
            (Milestone::Resolved, d),
        ] {
            tl.record(m, t(10, 0) + Duration::minutes(at.into()), None)
                .unwrap();
        }
        tl
    }

    #[test]
    fn a_skipped_phase_and_a_phase_never_started_do_not_count() {
        let tl = resolved(5, 20, 30, 40);
        assert_eq!(ran_for(&tl, PhaseKind::Triage), Some(Duration::minutes(15)));
        // Fix deployed clicked during triage: remediation is skipped (0 s), triage ran until then.
        let mut skip = Timeline::new(t(10, 0), t(10, 0));
        skip.record(Milestone::Acknowledged, t(10, 5), None)
            .unwrap();
        skip.record(Milestone::Fixed, t(10, 30), None).unwrap();
        skip.record(Milestone::Resolved, t(10, 40), None).unwrap();
        assert_eq!(
            ran_for(&skip, PhaseKind::Triage),
            Some(Duration::minutes(25))
        );
        assert_eq!(ran_for(&skip, PhaseKind::Remediation), None);
        // Not resolved: not history.
        let mut open = Timeline::new(t(10, 0), t(10, 0));
        open.record(Milestone::Acknowledged, t(10, 5), None)
            .unwrap();
        assert_eq!(ran_for(&open, PhaseKind::Detection), None);
    }

    #[test]
    fn the_service_history_from_ten_incidents_else_the_severity_none_under_five() {
        // Triage 10, 20, …, 100 min: p90 by percentile_cont = rank 0.9·9 = 8.1 → 90 + 0.1·(100 − 90) = 91 min.
        let own: Vec<Timeline> = (1..=10)
            .map(|i| resolved(0, 10 * i, 10 * i + 1, 10 * i + 2))
            .collect();
        let f = figure(PhaseKind::Triage, Some("payments"), &own, &[], 0.9).unwrap();
        assert_eq!(f.value, Duration::minutes(91));
        assert_eq!((f.n, f.scope), (10, Scope::Service("payments".into())));
        // Nine of the service's: the severity's six (triage 1..6 min): rank 4.5 → 5 + 0.5·1 = 5.5 min.
        let all: Vec<Timeline> = (1..=6).map(|i| resolved(0, i, i + 1, i + 2)).collect();
        let f = figure(PhaseKind::Triage, Some("payments"), &own[..9], &all, 0.9).unwrap();
        assert_eq!(f.value, Duration::seconds(330));
        assert_eq!((f.n, f.scope), (6, Scope::Severity));
        assert_eq!(figure(PhaseKind::Triage, None, &[], &all[..4], 0.9), Err(4));
    }
}
