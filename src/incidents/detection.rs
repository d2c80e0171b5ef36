//! How an incident was detected, said after it was declared (SPEC section 11, last point). A person who declares
//! without `via:` leaves the method `unknown`; the card then asks "How was this detected?" with one button per
//! method. The first answer is recorded, with a timeline line; later clicks are told what was already said.
//!
//! Exactly once: the answer is one `UPDATE … WHERE detection = 'unknown'` in the transaction that also stores the
//! timeline line and queues the card refresh (and the summaries' refresh when the incident is already resolved).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::outbox;
use crate::domain::severity::DetectionMethod;
use crate::state::AppState;
use crate::store::incidents;

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
    if !incidents::set_detection(&mut tx, incident_id, method).await? {
        tx.rollback().await?;
        let now_said = super::load(&state.db, incident_id)
            .await?
            .map_or(inc.detection, |i| i.detection);
        return Ok(Outcome::AlreadySaid(now_said));
    }
    let text = line(&inc.key(), method, by);
    let event_id =
        incidents::add_timeline_event(&mut tx, incident_id, now, "detection", Some(by), &text)
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
    fn the_line_names_who_said_and_how() {
        assert_eq!(
            line("INC-7", DetectionMethod::Customer, "U1"),
            "🧭 <@U1> says INC-7 was detected by a customer report (detection method `customer`)"
        );
    }
}
