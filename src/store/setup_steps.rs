//! The war-room setup steps (`setup_steps`): one row per step of an incident, on the one lease queue of
//! [`crate::store::lease`] — claiming due steps ([`claim`]), storing how one went ([`complete`]), releasing the
//! steps that waited for it ([`states_in`], [`add_waiting`], [`release`]) — and the reads of `/incident status`,
//! the sweeper and the outbox. Steps are named as stored (`channel`, `card`, …).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{ms, Db};
use crate::store::lease::{self, claimable};

/// Incidents with due or abandoned steps, at most 200.
pub async fn due_incidents(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        r#"SELECT DISTINCT incident_id FROM setup_steps
         WHERE "#,
        claimable!("", "$1", "$2", "$3"),
        r#"
         LIMIT 200"#
    ))
    .bind(ms(now))
    .bind(lease::alive_since())
    .bind(owner)
    .fetch_all(&db.pool)
    .await
}

/// Claims every due step of the incident for `owner` until `lease_until` (epoch ms): the steps' names and
/// attempt numbers.
pub async fn claim(
    db: &Db,
    incident_id: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        r#"UPDATE setup_steps
         SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3,
             first_attempt_at = COALESCE(first_attempt_at, $6)
         WHERE incident_id = $4 AND "#, claimable!("", "$3", "$5", "$1"), r#"
         RETURNING step, attempts"#),
    )
    .bind(owner)
    .bind(lease_until)
    .bind(ms(now))
    .bind(incident_id)
    .bind(lease::alive_since())
    .bind(lease::wall_ms())
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("step")?, r.try_get("attempts")?)))
        .collect()
}

/// When something may next become claimable (epoch ms): a retry coming due or another owner's lease running
/// out.
pub async fn next_wake(db: &Db, incident_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT state, next_attempt_at, lease_until FROM setup_steps
         WHERE incident_id = $1 AND state IN ('pending', 'running')",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    let mut wake: Option<i64> = None;
    for r in rows {
        let state: String = r.try_get("state")?;
        let at: Option<i64> = if state == "pending" {
            Some(r.try_get("next_attempt_at")?)
        } else {
            r.try_get("lease_until")?
        };
        if let Some(at) = at {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
    }
    Ok(wake)
}

/// How a claimed step went, as stored.
#[derive(Debug, Clone)]
pub struct Completion<'a> {
    /// `done`, `pending` or `failed`.
    pub state: &'a str,
    pub result: Option<String>,
    pub error: Option<String>,
    /// Epoch ms.
    pub next_attempt_at: i64,
}

/// Releases step `step` of the incident (if `owner` still holds it) with `how`. Returns whether the lease was
/// still held.
pub async fn complete(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    step: &str,
    owner: &str,
    how: Completion<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE setup_steps
         SET state = $1, result = $2, last_error = COALESCE($3, last_error), next_attempt_at = $4,
             lease_owner = NULL, lease_until = NULL, updated_at = $5
         WHERE incident_id = $6 AND step = $7 AND state = 'running' AND lease_owner = $8",
    )
    .bind(how.state)
    .bind(how.result)
    .bind(how.error)
    .bind(how.next_attempt_at)
    .bind(ms(now))
    .bind(incident_id)
    .bind(step)
    .bind(owner)
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Every stored step of the incident with its state, inside the caller's transaction.
pub async fn states_in(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT step, state FROM setup_steps WHERE incident_id = $1")
        .bind(incident_id)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("step")?, r.try_get("state")?)))
        .collect()
}

/// Stores `steps` as waiting (one multi-row statement); steps already stored are left alone.
pub async fn add_waiting(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    steps: &[&'static str],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let now = ms(now);
    db.insert_rows(
        &mut *tx,
        (
            "INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, updated_at)",
            "(?, ?, 'waiting', 0, ?, ?)",
            "ON CONFLICT (incident_id, step) DO NOTHING",
        ),
        steps,
        |q, step| q.bind(incident_id).bind(*step).bind(now).bind(now),
    )
    .await
    .map(|_| ())
}

/// Moves a waiting step to `new_state` (`pending` or `skipped`).
pub async fn release(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    step: &str,
    new_state: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE setup_steps SET state = $1, next_attempt_at = $2, updated_at = $2
         WHERE incident_id = $3 AND step = $4 AND state = 'waiting'",
    )
    .bind(new_state)
    .bind(ms(now))
    .bind(incident_id)
    .bind(step)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One step's stored state.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: String,
    pub state: String,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i64,
}

/// The stored state of each step of an incident (in no particular order).
pub async fn report(db: &Db, incident_id: &str) -> Result<Vec<StepReport>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT step, state, result, last_error, attempts FROM setup_steps WHERE incident_id = $1",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StepReport {
                step: r.try_get("step")?,
                state: r.try_get("state")?,
                result: r.try_get("result")?,
                last_error: r.try_get("last_error")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// The state of one step, if stored.
pub async fn state_of(
    db: &Db,
    incident_id: &str,
    step: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM setup_steps WHERE incident_id = $1 AND step = $2")
        .bind(incident_id)
        .bind(step)
        .fetch_optional(&db.pool)
        .await
}

/// What a finished step recorded (`announced <ts>`, …), if it is done.
pub async fn result_of(
    db: &Db,
    incident_id: &str,
    step: &str,
) -> Result<Option<String>, sqlx::Error> {
    let r: Option<Option<String>> = sqlx::query_scalar(
        "SELECT result FROM setup_steps WHERE incident_id = $1 AND step = $2 AND state = 'done'",
    )
    .bind(incident_id)
    .bind(step)
    .fetch_optional(&db.pool)
    .await?;
    Ok(r.flatten())
}

/// Whether a step is over (done, failed or skipped). The steps after the channel are stored when the channel
/// step settles, so a step not stored yet is still to come while the channel step is open; an incident with no
/// steps at all (an imported one) has nothing to wait for.
pub async fn settled(db: &Db, incident_id: &str, step: &str) -> Result<bool, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT step, state FROM setup_steps WHERE incident_id = $1 AND step IN ($2, 'channel')",
    )
    .bind(incident_id)
    .bind(step)
    .fetch_all(&db.pool)
    .await?;
    let mut own = None;
    let mut channel = None;
    for r in rows {
        let (name, st): (String, String) = (r.try_get("step")?, r.try_get("state")?);
        if name == step {
            own = Some(st);
        } else {
            channel = Some(st);
        }
    }
    Ok(own
        .or(channel)
        .is_none_or(|s| matches!(s.as_str(), "done" | "failed" | "skipped")))
}

/// When step `step`'s first attempt began (wall-clock epoch ms).
pub async fn first_attempt_at(
    db: &Db,
    incident_id: &str,
    step: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT first_attempt_at FROM setup_steps WHERE incident_id = $1 AND step = $2",
    )
    .bind(incident_id)
    .bind(step)
    .fetch_optional(&db.pool)
    .await
    .map(Option::flatten)
}

/// Why the channel step failed, if it did.
pub async fn channel_failure(db: &Db, incident_id: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT last_error FROM setup_steps WHERE incident_id = $1 AND step = 'channel' AND state = 'failed'",
    )
    .bind(incident_id)
    .fetch_optional(&db.pool)
    .await?
    .flatten())
}

/// Inserts new incidents' `channel` steps, the only ones that wait for nothing, each already claimed by `owner`
/// until `lease_ms` after its incident's declaration (`(incident id, declared at)`; the declaring process starts
/// them at once).
pub async fn insert_claimed_channels(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    incidents: &[(&str, DateTime<Utc>)],
    owner: &str,
    lease_ms: i64,
) -> Result<(), sqlx::Error> {
    db.insert_rows(
        tx,
        (
            "INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner,
                                      lease_until, updated_at)",
            "(?, 'channel', 'running', 1, ?, ?, ?, ?)",
            "",
        ),
        incidents,
        |q, (id, now)| {
            q.bind(*id)
                .bind(ms(*now))
                .bind(owner)
                .bind(ms(*now) + lease_ms)
                .bind(ms(*now))
        },
    )
    .await?;
    Ok(())
}
