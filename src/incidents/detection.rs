//! How an incident was detected, said after it was declared (SPEC section 11, last point). A person who declares
//! without `via:` leaves the method `unknown`; the card then asks "How was this detected?" with one button per
//! method. The first answer is recorded, with a timeline line; later clicks are told what was already said.
//!
//! Exactly once: the answer is one `UPDATE … WHERE detection = 'unknown'` in the transaction that also stores the
//! timeline line and queues the card refresh (and the summaries' refresh when the incident is already resolved).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::outbox;
use crate::db::ms;
use crate::domain::severity::DetectionMethod;
use crate::state::AppState;

/// `block_id` of the card's detection question.
pub const ACTIONS_BLOCK: &str = "detection_actions";

/// The prefix of the question's buttons: `detected_alert`, `detected_customer`, `detected_engineer`.
const ACTION_PREFIX: &str = "detected_";

/// The `action_id` of the button that answers `method`.
pub fn action_id(method: DetectionMethod) -> String {
    format!("{ACTION_PREFIX}{}", method.as_str())
}

/// The method a button of the question answers, if `action_id` is one.
pub fn from_action_id(action_id: &str) -> Option<DetectionMethod> {
    action_id
        .strip_prefix(ACTION_PREFIX)
        .and_then(DetectionMethod::parse)
}

/// What an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; the line that will be posted in the channel.
    Recorded { line: String },
    /// Somebody had already said; nothing changed.
    AlreadySaid(DetectionMethod),
    /// No such incident in this workspace.
    NotFound,
}

/// The timeline line of an answer.
pub fn line(key: &str, method: DetectionMethod, by: &str) -> String {
    let how = match method {
        DetectionMethod::Alert => "an alert",
        DetectionMethod::Customer => "a customer report",
        DetectionMethod::Engineer => "an engineer",
        DetectionMethod::Unknown => "nobody knows",
    };
    format!(
        "🧭 {} says {key} was detected by {how} (detection method `{method}`)",
        crate::domain::text::user(by)
    )
}

/// Records that incident `incident_id` of workspace `team_id` was detected via `method`, as `by` says, unless
/// somebody said already.
pub async fn record(
    state: &Arc<AppState>,
    team_id: &str,
    incident_id: &str,
    method: DetectionMethod,
    by: &str,
) -> Result<Outcome, sqlx::Error> {
    let Some(inc) = super::load(&state.db, incident_id).await? else {
        return Ok(Outcome::NotFound);
    };
    if !team_id.is_empty() && inc.team_id != team_id {
        return Ok(Outcome::NotFound);
    }
    if method == DetectionMethod::Unknown {
        return Ok(Outcome::AlreadySaid(inc.detection));
    }
    let now: DateTime<Utc> = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let updated =
        sqlx::query("UPDATE incidents SET detection = $1 WHERE id = $2 AND detection = $3")
            .bind(method.as_str())
            .bind(incident_id)
            .bind(DetectionMethod::Unknown.as_str())
            .execute(&mut *tx)
            .await?;
    if updated.rows_affected() != 1 {
        tx.rollback().await?;
        let now_said = super::load(&state.db, incident_id)
            .await?
            .map_or(inc.detection, |i| i.detection);
        return Ok(Outcome::AlreadySaid(now_said));
    }
    let text = line(&inc.key(), method, by);
    let event_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event_id)
    .bind(incident_id)
    .bind(ms(now))
    .bind("detection")
    .bind(by)
    .bind(&text)
    .execute(&mut *tx)
    .await?;
    outbox::post_line(&mut tx, incident_id, &event_id, now).await?;
    outbox::refresh_card(&mut tx, incident_id, now).await?;
    if !inc.timeline.status().is_active() {
        // The summaries already posted say how it was detected.
        outbox::refresh_summaries(&mut tx, incident_id, now).await?;
    }
    tx.commit().await?;
    outbox::kick(state);
    tracing::info!(incident = %inc.key(), method = method.as_str(), by, "detection method recorded");
    Ok(Outcome::Recorded { line: text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_method_has_a_button_that_reads_back() {
        for m in DetectionMethod::KNOWN {
            assert_eq!(from_action_id(&action_id(m)), Some(m));
        }
        assert_eq!(from_action_id("detected_unknown"), None);
        assert_eq!(from_action_id("phase_ack"), None);
        assert_eq!(from_action_id("detected_"), None);
    }

    #[test]
    fn the_line_names_who_said_and_how() {
        assert_eq!(
            line("INC-7", DetectionMethod::Customer, "U1"),
            "🧭 <@U1> says INC-7 was detected by a customer report (detection method `customer`)"
        );
    }
}
