//! Declaring an incident: one transaction stores the incident, its per-workspace number, its war-room steps
//! and the first timeline line, so a declaration is either wholly stored or not at all. The steps then run
//! in the background ([`super::setup`]); the caller has already answered Slack.

use chrono::{DateTime, Utc};

use super::Incident;
use crate::db::{ms, Db};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};

/// What a user asked for, already parsed.
#[derive(Debug, Clone)]
pub struct DeclareRequest {
    pub team_id: String,
    pub user_id: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    /// When impact began; defaults to the declaration time. Never after it.
    pub started_at: Option<DateTime<Utc>>,
}

/// Every war-room step of a new incident in one statement (a declaration must be cheap: it is stored before
/// Slack gets its answer). Steps without dependencies start `pending`, the others `waiting`; a unit test keeps
/// this in line with `Step::ALL` and `Step::dependencies`.
const INSERT_STEPS: &str = "INSERT INTO setup_steps (incident_id, step, state, next_attempt_at, updated_at) VALUES \
     ($1, 'channel', 'pending', $2, $2), ($1, 'topic', 'waiting', $2, $2), ($1, 'invite', 'waiting', $2, $2), \
     ($1, 'card', 'waiting', $2, $2), ($1, 'pin', 'waiting', $2, $2), ($1, 'bookmarks', 'waiting', $2, $2), \
     ($1, 'page', 'waiting', $2, $2), ($1, 'announce', 'waiting', $2, $2), ($1, 'notify', 'waiting', $2, $2)";

/// Stores the incident and its setup steps. Returns the stored incident.
#[tracing::instrument(skip_all, fields(team = %req.team_id, user = %req.user_id))]
pub async fn store(
    db: &Db,
    req: DeclareRequest,
    now: DateTime<Utc>,
) -> Result<Incident, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let started_at = req.started_at.map(|s| s.min(now)).unwrap_or(now);
    let mut tx = db.pool.begin().await?;
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO workspace_counters (team_id, last_number) VALUES ($1, 1)
         ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + 1
         RETURNING last_number",
    )
    .bind(&req.team_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                                origin_channel, response_url, started_at, declared_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(&req.team_id)
    .bind(number)
    .bind(&req.title)
    .bind(req.severity.as_str())
    .bind(&req.service)
    .bind(req.detection.as_str())
    .bind(&req.user_id)
    .bind(&req.origin_channel)
    .bind(&req.response_url)
    .bind(ms(started_at))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    sqlx::query(INSERT_STEPS)
        .bind(&id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail) VALUES ($1, $2, $3, 'declared', $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&id)
    .bind(ms(now))
    .bind(&req.user_id)
    .bind(format!("{} declared {} ({})", req.user_id, req.title, req.severity.as_str()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Incident {
        id,
        team_id: req.team_id,
        number,
        title: req.title,
        severity: req.severity,
        service: req.service,
        detection: req.detection,
        declared_by: req.user_id,
        origin_channel: req.origin_channel,
        response_url: req.response_url,
        channel_id: None,
        channel_name: None,
        card_ts: None,
        timeline: Timeline::new(started_at, now),
        version: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::steps::Step;

    #[test]
    fn the_step_insert_covers_every_step_with_its_initial_state() {
        for step in Step::ALL {
            let state = if step.dependencies().is_empty() {
                "pending"
            } else {
                "waiting"
            };
            let row = format!("($1, '{}', '{state}', $2, $2)", step.as_str());
            assert!(
                INSERT_STEPS.contains(&row),
                "{row} missing from INSERT_STEPS"
            );
        }
        assert_eq!(INSERT_STEPS.matches("($1,").count(), Step::ALL.len());
    }
}
