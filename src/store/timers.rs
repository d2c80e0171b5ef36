//! The timers table (`timers`): escalation and close timers, their arming (`incidents.timers_armed`), the
//! conditional claim that fires each exactly once, and the reads for `/incident status`.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{from_ms, from_ms_opt, ms, Db};
use crate::domain::mttr::PhaseKind;
use crate::domain::severity::Severity;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A P1 still unacknowledged: page the secondary again.
    P1Ack,
    /// Still unresolved: page the escalation target.
    Unresolved,
    /// The monitoring window is over: close the incident.
    Close,
    /// A P1 still without an incident commander: remind the channel once.
    IcReminder,
    /// The next status update is due: remind the comms lead (or the IC) once.
    UpdateDue,
    /// The phase may have run past the team's p90 for it: nudge the channel once per phase.
    Stalled(PhaseKind),
    /// A follow-up is due today: remind its owner once.
    FollowupDue,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::P1Ack => "p1_ack",
            Kind::Unresolved => "unresolved",
            Kind::Close => "close",
            Kind::IcReminder => "ic_reminder",
            Kind::UpdateDue => "update_due",
            Kind::Stalled(PhaseKind::Detection) => "stalled_detection",
            Kind::Stalled(PhaseKind::Triage) => "stalled_triage",
            Kind::Stalled(PhaseKind::Remediation) => "stalled_remediation",
            Kind::Stalled(PhaseKind::Verification) => "stalled_verification",
            Kind::FollowupDue => "followup_due",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::P1Ack,
            Kind::Unresolved,
            Kind::Close,
            Kind::IcReminder,
            Kind::UpdateDue,
            Kind::FollowupDue,
        ]
        .into_iter()
        .chain(PhaseKind::ALL.map(Kind::Stalled))
        .find(|k| k.as_str() == s)
    }
}

/// Adds a timer (inside the caller's transaction); an existing one with the same id is left alone.
pub async fn schedule(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    kind: Kind,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO timers (id, incident_id, kind, due_at, fired, created_at) VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(incident_id)
    .bind(kind.as_str())
    .bind(ms(due))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds a timer, or makes an existing one due again at `due` unless it has already done its work (`outcome =
/// done_outcome`): a stalled-phase check is re-armed when its phase begins again, its start is corrected or the
/// severity changes, but a phase is nudged once.
pub async fn rearm(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    incident_id: &str,
    kind: Kind,
    due: DateTime<Utc>,
    done_outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO timers (id, incident_id, kind, due_at, fired, created_at) VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, fired = 0, fired_at = NULL, outcome = NULL
         WHERE timers.outcome IS NULL OR timers.outcome <> $6",
    )
    .bind(id)
    .bind(incident_id)
    .bind(kind.as_str())
    .bind(ms(due))
    .bind(ms(now))
    .bind(done_outcome)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Settles the incident's unfired timers of `kind` without firing them (inside the caller's transaction), with
/// `outcome` as what happened: a newer status update replaces the reminder of the one before.
pub async fn supersede(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    kind: Kind,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE timers SET fired = 1, fired_at = $1, outcome = $2
         WHERE incident_id = $3 AND kind = $4 AND fired = 0",
    )
    .bind(ms(now))
    .bind(outcome)
    .bind(incident_id)
    .bind(kind.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Whether the incident's unresolved escalation is still due, or has already paged.
pub async fn unresolved_live(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
) -> Result<bool, sqlx::Error> {
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timers
         WHERE incident_id = $1 AND kind = 'unresolved' AND (fired = 0 OR outcome = 'escalated')",
    )
    .bind(incident_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(live > 0)
}

/// Whether any incident has its escalation timers still to arm (one read, no write lock).
pub async fn any_unarmed(db: &Db) -> Result<bool, sqlx::Error> {
    let unarmed: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM incidents WHERE timers_armed = 0 LIMIT 1")
            .fetch_optional(&db.pool)
            .await?;
    Ok(unarmed.is_some())
}

/// An incident whose timers are being armed.
#[derive(Debug, Clone)]
pub struct Unarmed {
    pub id: String,
    /// Declared as a P1.
    pub p1: bool,
    pub declared_at: DateTime<Utc>,
    pub acknowledged: bool,
    /// Resolved or closed.
    pub settled: bool,
}

/// Flags up to `limit` incidents not yet armed (`timers_armed = 0`, a partial index), newest first, with a
/// conditional `UPDATE`, so with several replicas each incident is armed by one of them.
pub async fn take_unarmed(
    tx: &mut sqlx::AnyConnection,
    limit: i64,
) -> Result<Vec<Unarmed>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE incidents SET timers_armed = 1
         WHERE timers_armed = 0
           AND id IN (SELECT id FROM incidents WHERE timers_armed = 0 ORDER BY declared_at DESC LIMIT $1)
         RETURNING id, severity, declared_at, acknowledged_at, resolved_at, closed_at",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            let severity: String = row.try_get("severity")?;
            Ok(Unarmed {
                id: row.try_get("id")?,
                p1: severity == Severity::P1.as_str(),
                declared_at: from_ms(row.try_get("declared_at")?),
                acknowledged: row.try_get::<Option<i64>, _>("acknowledged_at")?.is_some(),
                settled: row.try_get::<Option<i64>, _>("resolved_at")?.is_some()
                    || row.try_get::<Option<i64>, _>("closed_at")?.is_some(),
            })
        })
        .collect()
}

/// A timer to add: id, incident id, kind, due.
pub type NewTimer = (String, String, Kind, DateTime<Utc>);

/// Adds timers in one multi-row statement; existing ids are left alone.
pub async fn schedule_all(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    timers: &[NewTimer],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    db.insert_rows(
        tx,
        (
            "INSERT INTO timers (id, incident_id, kind, due_at, fired, created_at)",
            "(?, ?, ?, ?, 0, ?)",
            "ON CONFLICT (id) DO NOTHING",
        ),
        timers,
        |q, (id, incident_id, kind, due)| {
            q.bind(id.as_str())
                .bind(incident_id.as_str())
                .bind(kind.as_str())
                .bind(ms(*due))
                .bind(ms(now))
        },
    )
    .await
    .map(|_| ())
}

/// Ids of the timers due at `now`, oldest first, at most 100.
pub async fn due(db: &Db, now: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM timers WHERE fired = 0 AND due_at <= $1 ORDER BY due_at LIMIT 100",
    )
    .bind(ms(now))
    .fetch_all(&db.pool)
    .await
}

/// Flips timer `id` to fired if it is due and nobody else has: its incident id and kind (as stored).
pub async fn claim(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE timers SET fired = 1, fired_at = $1 WHERE id = $2 AND fired = 0 AND due_at <= $1
         RETURNING incident_id, kind",
    )
    .bind(ms(now))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    claimed
        .map(|row| Ok((row.try_get("incident_id")?, row.try_get("kind")?)))
        .transpose()
}

/// Makes a claimed timer due again at `due`.
pub async fn postpone(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    due: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE timers SET fired = 0, fired_at = NULL, due_at = $1 WHERE id = $2")
        .bind(ms(due))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Records what a fired timer did.
pub async fn set_outcome(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE timers SET outcome = $1 WHERE id = $2")
        .bind(outcome)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One escalation timer as `/incident status` shows it.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub kind: Kind,
    pub due_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub fired: bool,
    pub outcome: Option<String>,
}

/// The incident's escalation timers, by due time.
pub async fn escalations(db: &Db, incident_id: &str) -> Result<Vec<Escalation>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, due_at, fired, fired_at, outcome FROM timers
         WHERE incident_id = $1 AND kind IN ('p1_ack', 'unresolved') ORDER BY due_at",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Escalation {
                kind: Kind::parse(&kind).unwrap_or(Kind::Unresolved),
                due_at: from_ms(r.try_get("due_at")?),
                fired: r.try_get::<i64, _>("fired")? != 0,
                fired_at: from_ms_opt(r.try_get("fired_at")?),
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}
