//! Phase changes of an incident: recording a milestone (the card's buttons and `/incident ack|identified|fixed|
//! resolved`), reopening during monitoring (`phase_reopen`, `/incident reopen`), correcting a timestamp
//! (`/incident set`), closing when the monitoring window ends (a timer), and `/incident status`. The Slack side
//! (reading the payloads, the replies) is [`crate::http::slack::phases`]; here a change is a [`Change`] by a
//! user, and its result an [`Outcome`].
//!
//! Exactly once: a change is one transaction that writes the new timeline with
//! `UPDATE incidents … WHERE id = $ AND version = $` (optimistic concurrency), the timeline line
//! (`timeline_events`) and the Slack side effects it causes (rows in [`super::outbox`]). Of twenty simultaneous
//! identical clicks one wins the version; the others reload, find the milestone recorded and are told the current
//! phase. The side effects run after the commit, after Slack has had its answer.
//!
//! The pure parts — planning a change ([`plan`]) and the timeline line it posts ([`line`]) — are unit-tested here.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::outbox;
use super::Incident;
use crate::config::IncidentSettings;
use crate::db::Db;
use crate::domain::duration::format_duration;
use crate::domain::mttr::{self, PhaseKind};
use crate::domain::phase::{
    CorrectionTarget, Milestone, Status, Timeline, Transition, TransitionError,
};
use crate::domain::text::{self, escape_cut};
use crate::slack::blocks;
use crate::state::AppState;
use crate::store::incidents;
use crate::store::timers::{self, Kind};

/// `action_id` of the Reopen button (shown while monitoring).
pub const REOPEN_ACTION_ID: &str = "phase_reopen";

/// How often a change is retried after losing the version race before giving up.
const MAX_CONFLICTS: usize = 64;

/// What someone asked to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Record(Milestone),
    Reopen,
    Correct {
        target: CorrectionTarget,
        at: DateTime<Utc>,
    },
    /// The monitoring window is over (the close timer).
    Close,
}

impl Change {
    /// The change a card button asks for.
    pub fn from_action_id(action_id: &str) -> Option<Change> {
        if action_id == REOPEN_ACTION_ID {
            return Some(Change::Reopen);
        }
        Milestone::from_action_id(action_id).map(Change::Record)
    }
}

/// What a change did, for the timeline line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Recorded(Transition),
    Reopened,
    Corrected {
        target: CorrectionTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Closed,
}

impl Event {
    /// `timeline_events.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Recorded(t) => t.milestone.as_str(),
            Event::Reopened => "reopened",
            Event::Corrected { .. } => "corrected",
            Event::Closed => "closed",
        }
    }
}

/// The result of [`apply`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored; `line` is the timeline line that will be posted in the channel.
    Applied {
        incident: Box<Incident>,
        line: String,
    },
    /// Nothing changed; `reason` says why, for the person who asked.
    Refused { reason: String },
}

/// Plans `change` on `before` (pure): the new timeline and the event, or why not.
pub fn plan(
    change: Change,
    before: &Timeline,
    now: DateTime<Utc>,
    monitoring: Duration,
    by: Option<&str>,
) -> Result<(Timeline, Event), String> {
    let mut after = before.clone();
    let event = match change {
        Change::Record(m) => after
            .record(m, now, by.map(str::to_string))
            .map(Event::Recorded)
            .map_err(|e| refusal(&e))?,
        Change::Reopen => {
            after.reopen(now, monitoring).map_err(|e| refusal(&e))?;
            Event::Reopened
        }
        Change::Close => {
            after.close(now).map_err(|e| refusal(&e))?;
            Event::Closed
        }
        Change::Correct { target, at } => {
            if at > now {
                return Err(format!(
                    "{} ({}) is in the future — a timestamp can only be corrected to a moment that has passed",
                    target.as_str(),
                    at.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            let from = match target {
                CorrectionTarget::Started => before.started_at,
                CorrectionTarget::Milestone(m) => before.get(m).map(|s| s.at).unwrap_or(at),
            };
            after.correct(target, at).map_err(|e| e.to_string())?;
            Event::Corrected {
                target,
                from,
                to: at,
            }
        }
    };
    Ok((after, event))
}

/// A refusal for humans: the domain's reason, with the way forward.
fn refusal(e: &TransitionError) -> String {
    match e {
        TransitionError::AlreadyRecorded { current } => format!(
            "Already recorded — the incident is at *{}*{}.",
            current.label(),
            match current {
                Status::Monitoring => " (resolved, monitoring)",
                _ => "",
            }
        ),
        TransitionError::Closed => {
            "The incident is closed; nothing changes any more (timestamps can still be corrected with `/incident set`)."
                .to_string()
        }
        other => format!("{}.", capitalise(&other.to_string())),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Applies `change` to incident `incident_id` on behalf of `by`, exactly once however many ask at the same time.
pub async fn apply(
    state: &Arc<AppState>,
    incident_id: &str,
    change: Change,
    by: Option<&str>,
) -> Result<Outcome, sqlx::Error> {
    apply_at(state, incident_id, change, by, None).await
}

/// [`apply`], recording the change as of `at` (never later than now nor before impact began) rather than now:
/// an acknowledgement made in another tool (PagerDuty) keeps the moment it was made.
pub async fn apply_at(
    state: &Arc<AppState>,
    incident_id: &str,
    change: Change,
    by: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Result<Outcome, sqlx::Error> {
    let monitoring = monitoring_window(state);
    for _ in 0..MAX_CONFLICTS {
        let Some(inc) = super::load(&state.db, incident_id).await? else {
            return Ok(Outcome::Refused {
                reason: "That incident does not exist (any more).".into(),
            });
        };
        let now = match at {
            Some(at) => at.min(state.clock.now()).max(inc.timeline.started_at),
            None => state.clock.now(),
        };
        let (after, event) = match plan(change, &inc.timeline, now, monitoring, by) {
            Ok(p) => p,
            Err(reason) => return Ok(Outcome::Refused { reason }),
        };
        let mut tx = state.db.begin_write().await?;
        let cfg = &state.settings.incidents;
        let Some(line) = write(&mut tx, cfg, &inc, &after, &event, by, now).await? else {
            tx.rollback().await?;
            continue;
        };
        tx.commit().await?;
        outbox::kick(state);
        tracing::info!(incident = %inc.key(), event = event.kind(), by = by.unwrap_or("-"), "phase change stored");
        let incident = Incident {
            timeline: after,
            version: inc.version + 1,
            ..inc
        };
        return Ok(Outcome::Applied {
            incident: Box::new(incident),
            line,
        });
    }
    Ok(Outcome::Refused {
        reason: "Too many changes at once — try again.".into(),
    })
}

/// Stores a planned change inside `tx`: the timeline (if `inc.version` is still current), the timeline line and
/// the side effects. Returns the line, or `None` when someone else changed the incident first.
pub(crate) async fn write(
    tx: &mut sqlx::AnyConnection,
    cfg: &IncidentSettings,
    inc: &Incident,
    after: &Timeline,
    event: &Event,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    let monitoring = Duration::minutes(cfg.monitoring_minutes.max(0));
    if !incidents::save_timeline(tx, &inc.id, inc.version, after).await? {
        return Ok(None);
    }
    let version = inc.version + 1;
    let text = line(&inc.key(), &inc.timeline, after, event, by, monitoring);
    let event_id = incidents::add_timeline_event(tx, &inc.id, now, event.kind(), by, &text).await?;
    outbox::post_line(tx, &inc.id, &event_id, now).await?;
    outbox::refresh_card(tx, &inc.id, now).await?;
    // A phase that begins (or whose start was corrected) gets its stalled-phase check.
    super::nudges::arm(tx, cfg, &inc.id, after, now).await?;
    match event {
        Event::Recorded(t) if t.milestone == Milestone::Resolved => {
            outbox::post_summaries(tx, &inc.id, version, now).await?;
            timers::schedule(
                tx,
                &format!("close:{}:{version}", inc.id),
                &inc.id,
                Kind::Close,
                t.at + monitoring,
                now,
            )
            .await?;
        }
        Event::Reopened => {
            let after = Duration::minutes(cfg.unresolved_escalation_minutes.max(0));
            rearm_unresolved(tx, inc, version, after, now).await?
        }
        Event::Corrected { .. } if !after.status().is_active() => {
            outbox::refresh_summaries(tx, &inc.id, now).await?;
            if let Some(end) = after.monitoring_ends_at(monitoring) {
                // A corrected resolution moves the end of the monitoring window.
                let id = format!("close:{}:{version}", inc.id);
                timers::schedule(tx, &id, &inc.id, Kind::Close, end, now).await?;
            }
        }
        _ => {}
    }
    Ok(Some(text))
}

/// After a reopen: unless the escalation target was already paged or is still due to be, arm the unresolved
/// escalation again (due `unresolved_after` the declaration, or now if that has passed).
async fn rearm_unresolved(
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    version: i64,
    unresolved_after: Duration,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if timers::unresolved_live(tx, &inc.id).await? {
        return Ok(());
    }
    let due = (inc.timeline.declared_at + unresolved_after).max(now);
    timers::schedule(
        tx,
        &format!("unresolved:{}:{version}", inc.id),
        &inc.id,
        Kind::Unresolved,
        due,
        now,
    )
    .await
}

/// The incident's escalation timers for `/incident status`: `re-page if not acknowledged at 14:07`,
/// `…: escalated (14:07)`.
async fn describe_escalations(db: &Db, incident_id: &str) -> Result<Vec<String>, sqlx::Error> {
    Ok(timers::escalations(db, incident_id)
        .await?
        .into_iter()
        .map(|e| {
            let name = match e.kind {
                Kind::P1Ack => "re-page if not acknowledged",
                _ => "page the escalation target if unresolved",
            };
            let when = blocks::slack_time(e.fired_at.unwrap_or(e.due_at));
            if e.fired {
                format!(
                    "{name}: {} ({when})",
                    e.outcome.unwrap_or_else(|| "fired".into())
                )
            } else {
                format!("{name} at {when}")
            }
        })
        .collect())
}

/// The configured monitoring window.
pub fn monitoring_window(state: &AppState) -> Duration {
    Duration::minutes(state.settings.incidents.monitoring_minutes.max(0))
}

// ── timeline lines (pure) ──────────────────────────────────────────────────────────────────────────────────────

/// `14:32` for every reader in their own time zone.
pub fn clock_time(t: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{time}}|{}>",
        t.timestamp(),
        t.format("%H:%M UTC")
    )
}

fn who(by: Option<&str>) -> String {
    by.map_or_else(|| "Someone".to_string(), text::user)
}

/// What each phase took, for the phases ended by `milestones`: `triage took 30m · remediation skipped`.
fn ended_phases(after: &Timeline, milestones: &[Milestone], now: DateTime<Utc>) -> String {
    let b = mttr::breakdown(after, now);
    milestones
        .iter()
        .map(|m| {
            let span = b.get(PhaseKind::ended_by(*m));
            let name = span.kind.as_str();
            if span.skipped {
                format!("{name} skipped")
            } else {
                format!("{name} took {}", format_duration(span.duration))
            }
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Every recorded phase after a correction: `detection 14m · triage 16m · remediation skipped`.
fn recorded_phases(tl: &Timeline, now: DateTime<Utc>) -> String {
    let b = mttr::breakdown(tl, now);
    let parts: Vec<String> = b
        .phases
        .iter()
        .filter(|p| tl.get(p.kind.end()).is_some())
        .map(|p| {
            if p.skipped {
                format!("{} skipped", p.kind.as_str())
            } else {
                format!("{} {}", p.kind.as_str(), format_duration(p.duration))
            }
        })
        .collect();
    if parts.is_empty() {
        "no phase has ended yet".to_string()
    } else {
        parts.join(" · ")
    }
}

/// The one timeline line a change posts in the incident channel.
pub fn line(
    key: &str,
    before: &Timeline,
    after: &Timeline,
    event: &Event,
    by: Option<&str>,
    monitoring: Duration,
) -> String {
    match event {
        Event::Recorded(t) => {
            let (emoji, verb) = match t.milestone {
                Milestone::Acknowledged => ("✋", "acknowledged".to_string()),
                Milestone::Identified => ("🔍", "identified the root cause".to_string()),
                Milestone::Fixed => ("🛠️", "deployed the fix".to_string()),
                Milestone::Resolved => ("✅", format!("resolved {key}")),
            };
            let mut ended = t.skipped.clone();
            ended.push(t.milestone);
            let mut s = format!(
                "{emoji} {} {verb} at {} — {}",
                who(by),
                clock_time(t.at),
                ended_phases(after, &ended, t.at)
            );
            if t.milestone == Milestone::Resolved {
                let b = mttr::breakdown(after, t.at);
                s.push_str(&format!(
                    " · *MTTR {}* · monitoring for {}: `Reopen` if it comes back",
                    format_duration(b.mttr),
                    format_duration(monitoring)
                ));
            }
            s
        }
        Event::Reopened => {
            let was = before
                .resolved
                .as_ref()
                .map(|r| mttr::breakdown(before, r.at).mttr);
            format!(
                "↩️ {} reopened {key} — back in remediation; MTTR keeps running until it is resolved again{}",
                who(by),
                was.map(|d| format!(" (it was {} at the first resolution)", format_duration(d)))
                    .unwrap_or_default()
            )
        }
        Event::Corrected { target, from, to } => {
            let end = after.resolved.as_ref().map(|r| r.at).unwrap_or(*to);
            let b = mttr::breakdown(after, end.max(*to));
            let total = if b.resolved {
                format!(" · *MTTR {}*", format_duration(b.mttr))
            } else {
                String::new()
            };
            format!(
                "✏️ {} corrected *{}* from {} to {} — {}{total}",
                who(by),
                target.as_str(),
                clock_time(*from),
                clock_time(*to),
                recorded_phases(after, end.max(*to))
            )
        }
        Event::Closed => {
            let mttr = after
                .resolved
                .as_ref()
                .map(|r| format_duration(mttr::breakdown(after, r.at).mttr))
                .unwrap_or_else(|| "—".into());
            format!(
                "🔒 {key} is closed — {} of monitoring passed without a reopen. Final *MTTR {mttr}*.",
                format_duration(monitoring)
            )
        }
    }
}

// ── asked from Slack ─────────────────────────────────────────────────────────────────────────────────────────

/// A click on the card's phase button for `change` in workspace `team` (when the payload says): [`apply`], unless
/// the incident belongs to another workspace.
pub async fn click(
    state: &Arc<AppState>,
    team: Option<&str>,
    incident_id: &str,
    change: Change,
    user: &str,
) -> Result<Outcome, sqlx::Error> {
    let foreign = match (team, super::load(&state.db, incident_id).await?) {
        (Some(t), Some(inc)) => !t.is_empty() && inc.team_id != t,
        _ => false,
    };
    if foreign {
        return Ok(Outcome::Refused {
            reason: "That incident belongs to another workspace.".into(),
        });
    }
    apply(state, incident_id, change, Some(user)).await
}

/// `/incident status`: where the incident stands, every timestamp, the elapsed time, the monitoring window, and
/// anything that went wrong setting up the war room.
pub async fn status_text(state: &AppState, inc: &Incident) -> Result<String, sqlx::Error> {
    let now = state.clock.now();
    let tl = &inc.timeline;
    let st = tl.status();
    let b = mttr::breakdown(tl, now);
    let mut out = vec![format!(
        "{} *{}* · {} · {} · {}",
        blocks::severity_emoji(inc.severity),
        inc.key(),
        escape_cut(&inc.title, 2_000),
        inc.severity.as_str(),
        escape_cut(inc.service.as_deref().unwrap_or("no service"), 200)
    )];
    let phase_now = match b.current() {
        Some(k) => format!(
            " — {} running for {}",
            k.as_str(),
            format_duration(b.get(k).duration)
        ),
        None => String::new(),
    };
    out.push(format!("*Status:* {}{phase_now}", st.label()));
    out.push(format!(
        "*Impact started* {} · *declared* {} by {}",
        blocks::slack_time(tl.started_at),
        blocks::slack_time(tl.declared_at),
        text::user(&inc.declared_by)
    ));
    let holder = |u: Option<&str>| u.map_or_else(|| "—".to_string(), text::user);
    out.push(format!(
        "*IC:* {} · *Comms lead:* {}",
        holder(inc.roles.ic.as_deref()),
        holder(inc.roles.comms.as_deref())
    ));
    let view = blocks::CardView {
        inc,
        service_name: inc.service.clone(),
        runbook: None,
        dashboard: None,
        deploys: Vec::new(),
        unknown_service: None,
        now,
        monitoring: monitoring_window(state),
        alerts: None,
    };
    out.push(view.phases_text());
    match st {
        Status::Monitoring => {
            if let Some(end) = tl.monitoring_ends_at(monitoring_window(state)) {
                out.push(format!(
                    "👀 Monitoring until {} — `/incident reopen` if it comes back.",
                    blocks::slack_time(end)
                ));
            }
        }
        Status::Closed => {
            if let Some(c) = tl.closed_at {
                out.push(format!("🔒 Closed {}.", blocks::slack_time(c)));
            }
        }
        _ => {}
    }
    let escalations = describe_escalations(&state.db, &inc.id).await?;
    if !escalations.is_empty() {
        out.push(format!("*Escalation:* {}", escalations.join(" · ")));
    }
    let steps = super::setup::step_report(&state.db, &inc.id).await?;
    let problems: Vec<String> = steps
        .iter()
        .filter(|s| s.state == "failed" || (s.state == "pending" && s.attempts > 0))
        .map(|s| {
            format!(
                "{} {} ({})",
                s.step,
                if s.state == "failed" {
                    "failed"
                } else {
                    "is being retried"
                },
                escape_cut(s.last_error.as_deref().unwrap_or("no error recorded"), 300)
            )
        })
        .collect();
    let unfinished = steps
        .iter()
        .filter(|s| matches!(s.state.as_str(), "waiting" | "pending" | "running"))
        .count();
    if !problems.is_empty() {
        out.push(format!("⚠️ *War-room setup:* {}", problems.join("; ")));
    } else if unfinished > 0 {
        out.push(format!(
            "⏳ War-room setup: {unfinished} step(s) still running."
        ));
    }
    let effects = outbox::problems(&state.db, &inc.id).await?;
    if !effects.is_empty() {
        out.push(format!(
            "⚠️ *Slack/pager updates:* {}",
            escape_cut(&effects.join("; "), 1_000)
        ));
    }
    Ok(text::cut(&out.join("\n"), text::SECTION_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn window() -> Duration {
        Duration::minutes(30)
    }

    fn fresh() -> Timeline {
        Timeline::new(t(14, 0), t(14, 2))
    }

    /// Strips Slack's `<!date^…|fallback>` to the fallback, for readable assertions.
    fn plain(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("<!date^") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let end = tail.find('>').unwrap();
            let inner = &tail[..end];
            out.push_str(inner.rsplit('|').next().unwrap());
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn apply_plan(tl: &Timeline, change: Change, now: DateTime<Utc>) -> (Timeline, String) {
        let (after, event) = plan(change, tl, now, window(), Some("U1")).unwrap();
        let l = line("INC-3", tl, &after, &event, Some("U1"), window());
        (after, plain(&l))
    }

    #[test]
    fn button_action_ids_map_to_changes() {
        assert_eq!(
            Change::from_action_id("phase_ack"),
            Some(Change::Record(Milestone::Acknowledged))
        );
        assert_eq!(
            Change::from_action_id("phase_resolved"),
            Some(Change::Record(Milestone::Resolved))
        );
        assert_eq!(Change::from_action_id("phase_reopen"), Some(Change::Reopen));
        assert_eq!(Change::from_action_id("something_else"), None);
    }

    #[test]
    fn each_milestone_posts_a_line_with_the_phase_it_ended() {
        let tl = fresh();
        let (tl, l) = apply_plan(&tl, Change::Record(Milestone::Acknowledged), t(14, 4));
        assert_eq!(l, "✋ <@U1> acknowledged at 14:04 UTC — detection took 4m");
        let (tl, l) = apply_plan(&tl, Change::Record(Milestone::Identified), t(14, 22));
        assert_eq!(
            l,
            "🔍 <@U1> identified the root cause at 14:22 UTC — triage took 18m"
        );
        let (tl, l) = apply_plan(&tl, Change::Record(Milestone::Fixed), t(14, 34));
        assert_eq!(
            l,
            "🛠️ <@U1> deployed the fix at 14:34 UTC — remediation took 12m"
        );
        let (_, l) = apply_plan(&tl, Change::Record(Milestone::Resolved), t(14, 43));
        assert_eq!(
            l,
            "✅ <@U1> resolved INC-3 at 14:43 UTC — verification took 9m · *MTTR 43m* · monitoring for 30m: \
             `Reopen` if it comes back"
        );
    }

    #[test]
    fn fixed_before_identified_says_remediation_was_skipped() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Acknowledged), t(14, 4));
        let (_, l) = apply_plan(&tl, Change::Record(Milestone::Fixed), t(14, 34));
        assert_eq!(
            l,
            "🛠️ <@U1> deployed the fix at 14:34 UTC — triage took 30m · remediation skipped"
        );
    }

    #[test]
    fn resolving_straight_away_skips_three_phases_in_one_line() {
        let (_, l) = apply_plan(&fresh(), Change::Record(Milestone::Resolved), t(14, 20));
        assert!(
            l.starts_with(
                "✅ <@U1> resolved INC-3 at 14:20 UTC — detection took 20m · triage skipped · \
                 remediation skipped · verification skipped · *MTTR 20m*"
            ),
            "{l}"
        );
    }

    #[test]
    fn a_second_identical_click_is_refused_with_the_current_phase() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Acknowledged), t(14, 4));
        let err = plan(
            Change::Record(Milestone::Acknowledged),
            &tl,
            t(14, 4),
            window(),
            Some("U2"),
        )
        .unwrap_err();
        assert_eq!(err, "Already recorded — the incident is at *Acknowledged*.");
    }

    #[test]
    fn a_stale_card_click_on_an_earlier_phase_names_the_current_one() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Fixed), t(14, 30));
        let err = plan(
            Change::Record(Milestone::Identified),
            &tl,
            t(14, 31),
            window(),
            None,
        )
        .unwrap_err();
        assert_eq!(err, "Already recorded — the incident is at *Fix deployed*.");
    }

    #[test]
    fn reopen_then_resolve_again_runs_mttr_to_the_final_resolution() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Resolved), t(14, 20));
        let (tl, l) = apply_plan(&tl, Change::Reopen, t(14, 25));
        assert_eq!(
            l,
            "↩️ <@U1> reopened INC-3 — back in remediation; MTTR keeps running until it is resolved again \
             (it was 20m at the first resolution)"
        );
        assert_eq!(tl.status(), Status::Identified);
        let (_, l) = apply_plan(&tl, Change::Record(Milestone::Resolved), t(15, 0));
        assert!(l.contains("*MTTR 1h 00m*"), "{l}");
    }

    #[test]
    fn reopen_after_the_window_is_refused_and_says_why() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Resolved), t(14, 20));
        let err = plan(Change::Reopen, &tl, t(14, 50), window(), None).unwrap_err();
        assert_eq!(
            err,
            "The 30m monitoring window after resolution is over; declare a new incident instead."
        );
        let err = plan(Change::Reopen, &fresh(), t(14, 50), window(), None).unwrap_err();
        assert!(err.contains("not resolved"), "{err}");
    }

    #[test]
    fn a_correction_line_re_derives_the_phases() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Acknowledged), t(14, 4));
        let (tl, _) = apply_plan(&tl, Change::Record(Milestone::Fixed), t(14, 34));
        let (tl, l) = apply_plan(
            &tl,
            Change::Correct {
                target: CorrectionTarget::Milestone(Milestone::Identified),
                at: t(14, 20),
            },
            t(14, 40),
        );
        assert_eq!(
            l,
            "✏️ <@U1> corrected *identified* from 14:34 UTC to 14:20 UTC — detection 4m · triage 16m · remediation 14m"
        );
        let (_, l) = apply_plan(&tl, Change::Record(Milestone::Resolved), t(14, 43));
        assert!(l.contains("*MTTR 43m*"), "{l}");
    }

    #[test]
    fn an_out_of_order_or_future_correction_is_refused_with_the_reason() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Acknowledged), t(14, 10));
        let (tl, _) = apply_plan(&tl, Change::Record(Milestone::Identified), t(14, 20));
        let err = plan(
            Change::Correct {
                target: CorrectionTarget::Milestone(Milestone::Identified),
                at: t(14, 5),
            },
            &tl,
            t(14, 30),
            window(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "identified (14:05 UTC) would be before acknowledged (14:10 UTC)"
        );
        let err = plan(
            Change::Correct {
                target: CorrectionTarget::Started,
                at: t(15, 0),
            },
            &tl,
            t(14, 30),
            window(),
            None,
        )
        .unwrap_err();
        assert!(err.contains("is in the future"), "{err}");
    }

    #[test]
    fn closing_posts_the_final_mttr() {
        let (tl, _) = apply_plan(&fresh(), Change::Record(Milestone::Resolved), t(14, 20));
        let (after, event) = plan(Change::Close, &tl, t(14, 50), window(), None).unwrap();
        assert_eq!(after.status(), Status::Closed);
        assert_eq!(
            line("INC-3", &tl, &after, &event, None, window()),
            "🔒 INC-3 is closed — 30m of monitoring passed without a reopen. Final *MTTR 20m*."
        );
    }
}
