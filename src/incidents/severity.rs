//! Severity changes (SPEC §12): `/incident sev P1|P2|P3` and the select on the card. The Slack side is
//! [`crate::http::slack::severity`].
//!
//! Exactly once, like a phase change ([`super::phases`]): one transaction writes the severity and the highest
//! severity held (`peak_severity`) with `UPDATE incidents … WHERE id = $ AND version = $`, one timeline line
//! (kind `severity`) and its effects as outbox rows: post the line, refresh the card, bring the topic and the
//! broadcast announcement up to date (one coalesced row that renders them from the database when it runs). The
//! first time the incident becomes P1 it also pages the service's secondary on-call at P1 (one row per incident,
//! so never twice) and arms the P1 escalations (acknowledgement, commander reminder) from now. A downgrade never
//! takes a page back. Of twenty simultaneous identical changes one wins; the others reload and are told the
//! incident already has that severity.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::outbox::{self, Escalation};
use crate::config::IncidentSettings;
use crate::domain::incident::Incident;
use crate::domain::severity::Severity;
use crate::slack::blocks;
use crate::state::AppState;
use crate::store::incidents;
use crate::store::timers::{self, Kind};

/// How often a change is retried after losing the version race before giving up.
const MAX_CONFLICTS: usize = 64;

/// What [`change`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored; `line` is the timeline line posted in the channel.
    Applied { line: String },
    /// Nothing changed; `reason` says why, for the person who asked.
    Refused { reason: String },
}

/// The timeline line of a change from `before` to `after` by `by` (pure; `by` is a Slack user id).
pub fn line(before: Severity, after: Severity, by: &str) -> String {
    let how = if after < before {
        "upgraded"
    } else {
        "downgraded"
    };
    format!(
        "{} Severity {how}: {} → {} — {} (by {})",
        blocks::severity_emoji(after),
        before.as_str(),
        after.as_str(),
        after.description(),
        crate::domain::text::user(by)
    )
}

/// Sets the severity of incident `incident_id` to `to` on behalf of `by` (of workspace `team`, when known).
pub async fn change(
    state: &Arc<AppState>,
    team: Option<&str>,
    incident_id: &str,
    to: Severity,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    for _ in 0..MAX_CONFLICTS {
        let Some(inc) = super::load(&state.db, incident_id).await? else {
            return Ok(Outcome::Refused {
                reason: "That incident does not exist (any more).".into(),
            });
        };
        if team.is_some_and(|t| !t.is_empty() && t != inc.team_id) {
            return Ok(Outcome::Refused {
                reason: "That incident belongs to another workspace.".into(),
            });
        }
        if inc.timeline.closed_at.is_some() {
            return Ok(Outcome::Refused {
                reason: "The incident is closed; its severity no longer changes.".into(),
            });
        }
        if inc.severity == to {
            return Ok(Outcome::Refused {
                reason: format!("*{}* is already {}.", inc.key(), to.as_str()),
            });
        }
        let now = state.clock.now();
        let mut tx = state.db.begin_write().await?;
        let cfg = &state.settings.incidents;
        let Some(line) = write(&mut tx, cfg, &inc, to, by, now).await? else {
            tx.rollback().await?;
            continue;
        };
        tx.commit().await?;
        outbox::kick(state);
        tracing::info!(incident = %inc.key(), from = inc.severity.as_str(), to = to.as_str(), "severity change stored");
        return Ok(Outcome::Applied { line });
    }
    Ok(Outcome::Refused {
        reason: "Too many changes at once — try again.".into(),
    })
}

/// Stores the change inside `tx` if `inc.version` is still current. Returns the line, or `None` when someone
/// else changed the incident first.
async fn write(
    tx: &mut sqlx::AnyConnection,
    cfg: &IncidentSettings,
    inc: &Incident,
    to: Severity,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    let peak = inc.peak_severity.min(to);
    if !incidents::save_severity(tx, &inc.id, inc.version, to, peak).await? {
        return Ok(None);
    }
    let text = line(inc.severity, to, by);
    let event_id =
        incidents::add_timeline_event(tx, &inc.id, now, "severity", Some(by), &text).await?;
    outbox::post_line(tx, &inc.id, &event_id, now).await?;
    outbox::refresh_card(tx, &inc.id, now).await?;
    outbox::sync_severity(tx, &inc.id, now).await?;
    // The figure of a stalled-phase nudge is the new severity's.
    super::nudges::arm(tx, cfg, &inc.id, &inc.timeline, now).await?;
    if to == Severity::P1 && inc.peak_severity != Severity::P1 {
        // First time at P1: page at P1 once, and arm what a P1 gets from now on.
        outbox::page(
            tx,
            &inc.id,
            Escalation::Upgrade,
            &format!("p1:{}", inc.id),
            now,
        )
        .await?;
        let status = inc.timeline.status();
        if status.is_active() && inc.timeline.acknowledged.is_none() {
            let due = now + Duration::minutes(cfg.p1_ack_escalation_minutes.max(0));
            let id = format!("p1_ack:{}", inc.id);
            timers::schedule(tx, &id, &inc.id, Kind::P1Ack, due, now).await?;
        }
        if status.is_active() && inc.roles.ic.is_none() {
            let due = now + Duration::minutes(cfg.ic_reminder_minutes.max(0));
            let id = format!("ic_reminder:{}", inc.id);
            timers::schedule(tx, &id, &inc.id, Kind::IcReminder, due, now).await?;
        }
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_which_way_the_severity_went() {
        assert_eq!(
            line(Severity::P2, Severity::P1, "U0ALICE"),
            "🔴 Severity upgraded: P2 → P1 — full outage (by <@U0ALICE>)"
        );
        assert!(line(Severity::P1, Severity::P3, "U0ALICE")
            .starts_with("🟡 Severity downgraded: P1 → P3"));
    }
}
