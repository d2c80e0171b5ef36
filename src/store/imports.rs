//! Incidents imported from other tools (`incident-bot import pagerduty`): their rows of the `incidents` table,
//! keyed by (`source`, `external_id`) so that importing again updates them instead of adding duplicates.

use chrono::{DateTime, Utc};

use crate::db::{ms, Db};
use crate::domain::severity::Severity;

/// An incident from another tool, as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedIncident {
    pub external_id: String,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub started_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: DateTime<Utc>,
}

/// Stores one PagerDuty incident, or updates it when imported before; true when it was new.
pub async fn store(db: &Db, d: &ImportedIncident) -> Result<bool, sqlx::Error> {
    let existed: Option<String> = sqlx::query_scalar(
        "SELECT id FROM incidents WHERE source = 'pagerduty' AND external_id = $1",
    )
    .bind(&d.external_id)
    .fetch_optional(&db.pool)
    .await?;
    sqlx::query(
        "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
             started_at, declared_at, acknowledged_at, acknowledged_implicit, resolved_at, resolved_implicit,
             closed_at, version, source, external_id)
         VALUES ($1, 'pagerduty', $2, $3, $4, $5, 'unknown', 'pagerduty', $6, $6, $7, 0, $8, 0, $8, 0, 'pagerduty', $9)
         ON CONFLICT (source, external_id) DO UPDATE SET
             number = excluded.number, title = excluded.title, severity = excluded.severity,
             service = excluded.service, started_at = excluded.started_at, declared_at = excluded.declared_at,
             acknowledged_at = excluded.acknowledged_at, resolved_at = excluded.resolved_at,
             closed_at = excluded.closed_at",
    )
    .bind(format!("pagerduty-{}", d.external_id))
    .bind(d.number)
    .bind(&d.title)
    .bind(d.severity.as_str())
    .bind(&d.service)
    .bind(ms(d.started_at))
    .bind(d.acknowledged_at.map(ms))
    .bind(ms(d.resolved_at))
    .bind(&d.external_id)
    .execute(&db.pool)
    .await?;
    Ok(existed.is_none())
}
