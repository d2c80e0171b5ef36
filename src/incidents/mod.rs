//! Incidents: the stored record ([`Incident`]), declaring one ([`declare`], with the start of impact it names:
//! [`started`]) and setting up its war room ([`setup`] runs the steps, [`steps`] says what each step does).

pub mod declare;
pub mod detection;
pub mod outbox;
pub mod phases;
pub mod setup;
pub mod started;
pub mod steps;
pub mod summary;
pub mod timers;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{from_ms, from_ms_opt, Db};
use crate::domain::phase::{Stamp, Timeline};
use crate::domain::severity::{DetectionMethod, Severity};

/// An incident as stored.
#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub team_id: String,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    pub declared_by: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub card_ts: Option<String>,
    pub timeline: Timeline,
    pub version: i64,
}

impl Incident {
    /// `INC-42`.
    pub fn key(&self) -> String {
        format!("INC-{}", self.number)
    }
}

/// `SELECT <every incident column> FROM incidents <tail>` as a `&'static str`.
macro_rules! select_incidents {
    ($tail:literal) => {
        concat!(
            "SELECT id, team_id, number, title, severity, service, detection, declared_by, \
             origin_channel, response_url, channel_id, channel_name, card_ts, started_at, declared_at, \
             acknowledged_at, acknowledged_by, acknowledged_implicit, identified_at, identified_by, identified_implicit, \
             fixed_at, fixed_by, fixed_implicit, resolved_at, resolved_by, resolved_implicit, closed_at, version \
             FROM incidents ",
            $tail
        )
    };
}
#[allow(unused_imports)]
pub(crate) use select_incidents;

fn stamp(row: &AnyRow, name: &str) -> Result<Option<Stamp>, sqlx::Error> {
    let at: Option<i64> = row.try_get(format!("{name}_at").as_str())?;
    let by: Option<String> = row.try_get(format!("{name}_by").as_str())?;
    let implicit: i64 = row.try_get(format!("{name}_implicit").as_str())?;
    Ok(at.map(|at| Stamp {
        at: from_ms(at),
        by,
        implicit: implicit != 0,
    }))
}

impl Incident {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Incident, sqlx::Error> {
        let severity: String = row.try_get("severity")?;
        let detection: String = row.try_get("detection")?;
        let timeline = Timeline {
            started_at: from_ms(row.try_get("started_at")?),
            declared_at: from_ms(row.try_get("declared_at")?),
            acknowledged: stamp(row, "acknowledged")?,
            identified: stamp(row, "identified")?,
            fixed: stamp(row, "fixed")?,
            resolved: stamp(row, "resolved")?,
            closed_at: from_ms_opt(row.try_get("closed_at")?),
        };
        Ok(Incident {
            id: row.try_get("id")?,
            team_id: row.try_get("team_id")?,
            number: row.try_get("number")?,
            title: row.try_get("title")?,
            severity: Severity::parse(&severity).unwrap_or_default(),
            service: row.try_get("service")?,
            detection: DetectionMethod::from_stored(&detection),
            declared_by: row.try_get("declared_by")?,
            origin_channel: row.try_get("origin_channel")?,
            response_url: row.try_get("response_url")?,
            channel_id: row.try_get("channel_id")?,
            channel_name: row.try_get("channel_name")?,
            card_ts: row.try_get("card_ts")?,
            timeline,
            version: row.try_get("version")?,
        })
    }
}

/// Loads one incident by id.
pub async fn load(db: &Db, id: &str) -> Result<Option<Incident>, sqlx::Error> {
    let row = sqlx::query(select_incidents!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(Incident::from_row).transpose()
}

/// The incident whose war room is `channel_id`, if any.
pub async fn by_channel(db: &Db, channel_id: &str) -> Result<Option<Incident>, sqlx::Error> {
    let row = sqlx::query(select_incidents!("WHERE channel_id = $1"))
        .bind(channel_id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(Incident::from_row).transpose()
}

/// Incidents not yet resolved, oldest first.
pub async fn open(db: &Db, team_id: &str) -> Result<Vec<Incident>, sqlx::Error> {
    let rows = sqlx::query(select_incidents!(
        "WHERE team_id = $1 AND resolved_at IS NULL ORDER BY number"
    ))
    .bind(team_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Incident::from_row).collect()
}
