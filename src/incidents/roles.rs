//! Roles (SPEC §12): the incident commander (IC) and the comms lead. `/incident role ic|comms @user` and the
//! card's "Take command" button give a role to a Slack user; giving the IC role to someone else while it is held
//! is a handoff (`IC: @a → @b`). The Slack side is [`crate::http::slack::roles`].
//!
//! Exactly once, like a phase change ([`super::phases`]): one transaction writes the holder with
//! `UPDATE incidents … WHERE id = $ AND version = $`, one timeline line (`timeline_events`, kind `role_ic` or
//! `role_comms`) and its Slack effects (post the line, refresh the card) as outbox rows. Of simultaneous changes
//! each either wins the version or reloads and goes again; a change to the person who already holds the role is
//! refused, so twenty identical clicks on "Take command" record one line.
//!
//! The reminder for a P1 without a commander is a timer ([`super::timers`], kind `ic_reminder`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::outbox;
use crate::domain::incident::{Incident, Role};
use crate::domain::text;
use crate::state::AppState;
use crate::store::incidents;

pub use crate::slack::blocks::TAKE_COMMAND_ACTION_ID;

/// How often a change is retried after losing the version race before giving up.
const MAX_CONFLICTS: usize = 64;

/// What [`assign`] did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored; `line` is the timeline line posted in the channel.
    Applied { line: String },
    /// Nothing changed; `reason` says why, for the person who asked.
    Refused { reason: String },
}

/// `timeline_events.kind` of a change of `role`.
pub fn event_kind(role: Role) -> &'static str {
    match role {
        Role::Commander => "role_ic",
        Role::Comms => "role_comms",
    }
}

/// The timeline line of `role` going from `before` to `user`, changed by `by` (pure). Every user id goes through
/// [`text::user`]: a mention only for what looks like a Slack user id.
pub fn line(role: Role, before: Option<&str>, user: &str, by: &str) -> String {
    let emoji = match role {
        Role::Commander => "🎖️",
        Role::Comms => "📣",
    };
    let change = match before {
        Some(b) => format!("{}: {} → {}", role.short(), text::user(b), text::user(user)),
        None => format!("{}: {}", role.short(), text::user(user)),
    };
    let how = if by == user {
        match role {
            Role::Commander => " (took command)".to_string(),
            Role::Comms => " (took the role)".to_string(),
        }
    } else {
        format!(" (set by {})", text::user(by))
    };
    format!("{emoji} {change}{how}")
}

/// Gives `role` of incident `incident_id` to `user`, on behalf of `by` (of workspace `team`, when known),
/// exactly once however many ask at once.
pub async fn assign(
    state: &Arc<AppState>,
    team: Option<&str>,
    incident_id: &str,
    role: Role,
    user: &str,
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
        if let Some(reason) = refusal(&inc, role, user) {
            return Ok(Outcome::Refused { reason });
        }
        let now = state.clock.now();
        let mut tx = state.db.begin_write().await?;
        let Some(line) = write(&mut tx, &inc, role, user, by, now).await? else {
            tx.rollback().await?;
            continue;
        };
        tx.commit().await?;
        outbox::kick(state);
        tracing::info!(incident = %inc.key(), role = role.as_str(), "role change stored");
        return Ok(Outcome::Applied { line });
    }
    Ok(Outcome::Refused {
        reason: "Too many changes at once — try again.".into(),
    })
}

/// Why `user` cannot be given `role` now, if they cannot.
fn refusal(inc: &Incident, role: Role, user: &str) -> Option<String> {
    if inc.timeline.closed_at.is_some() {
        return Some("The incident is closed; its roles no longer change.".into());
    }
    if inc.roles.get(role) == Some(user) {
        return Some(format!(
            "{} already holds that role: {} of *{}*.",
            text::user(user),
            role.label(),
            inc.key()
        ));
    }
    None
}

/// Stores the change inside `tx` if `inc.version` is still current: the holder, the line and its effects.
/// Returns the line, or `None` when someone else changed the incident first.
async fn write(
    tx: &mut sqlx::AnyConnection,
    inc: &Incident,
    role: Role,
    user: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    if !incidents::save_role(tx, &inc.id, inc.version, role, user).await? {
        return Ok(None);
    }
    let text = line(role, inc.roles.get(role), user, by);
    let event_id =
        incidents::add_timeline_event(tx, &inc.id, now, event_kind(role), Some(by), &text).await?;
    outbox::post_line(tx, &inc.id, &event_id, now).await?;
    outbox::refresh_card(tx, &inc.id, now).await?;
    Ok(Some(text))
}

/// The reminder posted in the channel of a P1 that has had no commander for `minutes` (since its declaration, or
/// its upgrade to P1).
pub fn reminder_line(inc: &Incident, minutes: i64) -> String {
    format!(
        "🧭 {} ({}) has had no incident commander for {minutes} minutes — click *Take command* on the card, or \
         `/incident role ic @someone`.",
        inc.key(),
        inc.severity.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_holder_and_handoff_lines() {
        assert_eq!(
            line(Role::Commander, None, "U0ALICE", "U0BOB"),
            "🎖️ IC: <@U0ALICE> (set by <@U0BOB>)"
        );
        assert_eq!(
            line(Role::Commander, Some("U0ALICE"), "U0BOB", "U0BOB"),
            "🎖️ IC: <@U0ALICE> → <@U0BOB> (took command)"
        );
        assert_eq!(
            line(Role::Comms, None, "U0CAROL", "U0CAROL"),
            "📣 Comms lead: <@U0CAROL> (took the role)"
        );
    }

    #[test]
    fn what_is_not_a_user_id_is_never_a_mention() {
        let l = line(Role::Commander, Some("<!channel>"), "U0BOB", "@here");
        assert!(!l.contains("<!channel>"), "{l}");
        assert!(l.contains("&lt;!channel&gt;"), "{l}");
        assert!(l.contains("set by @here"), "{l}");
    }
}
