//! Follow-ups (`followups`): insert, read by id, incident and openness, give an owner, complete once, and the
//! per-team counts of the digest and `report`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{from_ms, from_ms_opt, ms, Db};
use crate::domain::followup::Followup;

macro_rules! select_followups {
    ($tail:literal) => {
        concat!(
            "SELECT id, incident_id, text, owner, due_on, created_by, created_at, done_at, done_by FROM followups ",
            $tail
        )
    };
}

fn from_row(r: &AnyRow) -> Result<Followup, sqlx::Error> {
    let due: Option<String> = r.try_get("due_on")?;
    Ok(Followup {
        id: r.try_get("id")?,
        incident_id: r.try_get("incident_id")?,
        text: r.try_get("text")?,
        owner: r.try_get("owner")?,
        due_on: due.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
        created_by: r.try_get("created_by")?,
        created_at: from_ms(r.try_get("created_at")?),
        done_at: from_ms_opt(r.try_get("done_at")?),
        done_by: r.try_get("done_by")?,
    })
}

/// A follow-up to store.
pub struct NewRow<'a> {
    pub incident_id: &'a str,
    pub text: &'a str,
    pub owner: Option<&'a str>,
    pub due_on: Option<NaiveDate>,
    pub created_by: &'a str,
}

/// Stores a follow-up (inside the caller's transaction); returns it with its number.
pub async fn insert(
    tx: &mut sqlx::AnyConnection,
    f: &NewRow<'_>,
    now: DateTime<Utc>,
) -> Result<Followup, sqlx::Error> {
    let due = f.due_on.map(|d| d.format("%Y-%m-%d").to_string());
    let row = sqlx::query(
        "INSERT INTO followups (incident_id, text, owner, due_on, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(f.incident_id)
    .bind(f.text)
    .bind(f.owner)
    .bind(due)
    .bind(f.created_by)
    .bind(ms(now))
    .fetch_one(&mut *tx)
    .await?;
    Ok(Followup {
        id: row.try_get("id")?,
        incident_id: f.incident_id.to_string(),
        text: f.text.to_string(),
        owner: f.owner.map(str::to_string),
        due_on: f.due_on,
        created_by: f.created_by.to_string(),
        created_at: from_ms(ms(now)),
        done_at: None,
        done_by: None,
    })
}

/// One follow-up by number (inside a transaction).
pub async fn get_in(
    tx: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<Option<Followup>, sqlx::Error> {
    let row = sqlx::query(select_followups!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// One follow-up by number.
pub async fn get(db: &Db, id: i64) -> Result<Option<Followup>, sqlx::Error> {
    let row = sqlx::query(select_followups!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The incident's follow-ups, in the order they were added.
pub async fn of_incident(db: &Db, incident_id: &str) -> Result<Vec<Followup>, sqlx::Error> {
    let rows = sqlx::query(select_followups!("WHERE incident_id = $1 ORDER BY id"))
        .bind(incident_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Open follow-ups of the incidents of workspace `team_id`: those with a due date first, oldest due first, then
/// the rest oldest first; at most `limit`.
pub async fn open_in_team(
    db: &Db,
    team_id: &str,
    limit: i64,
) -> Result<Vec<Followup>, sqlx::Error> {
    let sql = "SELECT f.id, f.incident_id, f.text, f.owner, f.due_on, f.created_by, f.created_at, f.done_at, f.done_by
         FROM followups f JOIN incidents i ON i.id = f.incident_id
         WHERE f.done_at IS NULL AND i.team_id = $1
         ORDER BY CASE WHEN f.due_on IS NULL THEN 1 ELSE 0 END, f.due_on, f.id LIMIT $2";
    let rows = sqlx::query(sql)
        .bind(team_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Gives follow-up `id` to `owner` (inside the caller's transaction).
pub async fn set_owner(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    owner: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE followups SET owner = $1 WHERE id = $2")
        .bind(owner)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Completes follow-up `id` unless it is done already (inside the caller's transaction); whether this call did.
pub async fn complete(
    tx: &mut sqlx::AnyConnection,
    id: i64,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE followups SET done_at = $1, done_by = $2 WHERE id = $3 AND done_at IS NULL",
    )
    .bind(ms(now))
    .bind(by)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// One follow-up with its incident's service, for the per-team counts.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRow {
    pub service: Option<String>,
    pub severity: Option<crate::domain::severity::Severity>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// Follow-ups created before `until` that were created at or after `since` or were still open at `since`, with
/// their incident's service.
pub async fn for_counts(
    db: &Db,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<CountRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.service, i.severity, f.created_at, f.done_at FROM followups f JOIN incidents i ON i.id = f.incident_id
         WHERE f.created_at < $1 AND (f.created_at >= $2 OR f.done_at IS NULL OR f.done_at >= $2)",
    )
    .bind(ms(until))
    .bind(ms(since))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CountRow {
                service: r.try_get("service")?,
                severity: crate::domain::severity::Severity::parse(
                    &r.try_get::<String, _>("severity")?,
                ),
                created_at: from_ms(r.try_get("created_at")?),
                done_at: from_ms_opt(r.try_get("done_at")?),
            })
        })
        .collect()
}
