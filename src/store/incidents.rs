//! The incident rows (`incidents`) and their timeline lines (`timeline_events`): reads by id, number and
//! channel, the columns that war-room setup, detection and phase changes write.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{from_ms, from_ms_opt, ms, Db};
use crate::domain::incident::{Incident, PastIncident, Role, Roles};
use crate::domain::phase::{Stamp, Timeline};
use crate::domain::severity::{DetectionMethod, Severity};

/// `SELECT <every incident column> FROM incidents <tail>` as a `&'static str`.
macro_rules! select_incidents {
    ($tail:literal) => {
        concat!(
            "SELECT id, team_id, number, title, severity, service, detection, declared_by, \
             origin_channel, response_url, channel_id, channel_name, card_ts, started_at, declared_at, \
             acknowledged_at, acknowledged_by, acknowledged_implicit, identified_at, identified_by, identified_implicit, \
             fixed_at, fixed_by, fixed_implicit, resolved_at, resolved_by, resolved_implicit, closed_at, ic_user, comms_user, version, is_private, \
             COALESCE(peak_severity, severity) AS peak_sev \
             FROM incidents ",
            $tail
        )
    };
}

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

/// An incident from a row of [`select_incidents!`].
pub(crate) fn incident_from_row(row: &AnyRow) -> Result<Incident, sqlx::Error> {
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
        peak_severity: Severity::parse(&row.try_get::<String, _>("peak_sev")?).unwrap_or_default(),
        service: row.try_get("service")?,
        detection: DetectionMethod::from_stored(&detection),
        declared_by: row.try_get("declared_by")?,
        origin_channel: row.try_get("origin_channel")?,
        response_url: row.try_get("response_url")?,
        channel_id: row.try_get("channel_id")?,
        channel_name: row.try_get("channel_name")?,
        card_ts: row.try_get("card_ts")?,
        private: row.try_get::<i64, _>("is_private")? != 0,
        timeline,
        roles: Roles {
            ic: row.try_get("ic_user")?,
            comms: row.try_get("comms_user")?,
        },
        version: row.try_get("version")?,
    })
}

/// Loads one incident by id.
pub async fn load(db: &Db, id: &str) -> Result<Option<Incident>, sqlx::Error> {
    let row = sqlx::query(select_incidents!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(incident_from_row).transpose()
}

/// The incident whose war room is `channel_id`, if any.
pub async fn by_channel(db: &Db, channel_id: &str) -> Result<Option<Incident>, sqlx::Error> {
    let row = sqlx::query(select_incidents!("WHERE channel_id = $1"))
        .bind(channel_id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(incident_from_row).transpose()
}

/// Incidents not yet resolved, oldest first.
pub async fn open(db: &Db, team_id: &str) -> Result<Vec<Incident>, sqlx::Error> {
    let rows = sqlx::query(select_incidents!(
        "WHERE team_id = $1 AND resolved_at IS NULL ORDER BY number"
    ))
    .bind(team_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(incident_from_row).collect()
}

/// Loads one incident by id inside the caller's transaction.
pub async fn load_in(
    tx: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<Incident>, sqlx::Error> {
    let row = sqlx::query(select_incidents!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(incident_from_row).transpose()
}

/// Takes the workspace's next `n` incident numbers (in the declaration's transaction, so a rolled-back
/// declaration takes none); returns the first of them.
pub async fn take_numbers(
    tx: &mut sqlx::AnyConnection,
    team_id: &str,
    n: i64,
) -> Result<i64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO workspace_counters (team_id, last_number) VALUES ($1, $2)
         ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + $2
         RETURNING last_number",
    )
    .bind(team_id)
    .bind(n)
    .fetch_one(&mut *tx)
    .await?;
    Ok(last - n + 1)
}

/// A declared incident's first row.
pub struct NewIncident<'a> {
    pub id: &'a str,
    pub team_id: &'a str,
    pub number: i64,
    pub title: &'a str,
    pub severity: Severity,
    pub service: Option<&'a str>,
    pub detection: DetectionMethod,
    pub declared_by: &'a str,
    pub origin_channel: Option<&'a str>,
    pub response_url: Option<&'a str>,
    pub started_at: DateTime<Utc>,
    pub declared_at: DateTime<Utc>,
    pub private: bool,
}

/// Inserts declared incidents' rows (one multi-row statement for a group of declarations).
pub async fn insert(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    news: &[NewIncident<'_>],
) -> Result<(), sqlx::Error> {
    db.insert_rows(
        tx,
        (
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                                    origin_channel, response_url, started_at, declared_at, is_private)",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "",
        ),
        news,
        |q, new| {
            q.bind(new.id)
                .bind(new.team_id)
                .bind(new.number)
                .bind(new.title)
                .bind(new.severity.as_str())
                .bind(new.service)
                .bind(new.detection.as_str())
                .bind(new.declared_by)
                .bind(new.origin_channel)
                .bind(new.response_url)
                .bind(ms(new.started_at))
                .bind(ms(new.declared_at))
                .bind(i64::from(new.private))
        },
    )
    .await?;
    Ok(())
}

/// The newest timeline line of `kind`: its id and time (epoch ms).
pub async fn latest_event(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    kind: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query(
        "SELECT id, at FROM timeline_events WHERE incident_id = $1 AND kind = $2 ORDER BY at DESC LIMIT 1",
    )
    .bind(incident_id)
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| Ok((r.try_get("id")?, r.try_get("at")?)))
    .transpose()
}

/// Replaces the text of timeline line `event_id`.
pub async fn set_timeline_detail(
    tx: &mut sqlx::AnyConnection,
    event_id: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE timeline_events SET detail = $1 WHERE id = $2")
        .bind(detail)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Stores one timeline line (`timeline_events`) and returns its id.
pub async fn add_timeline_event(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    at: DateTime<Utc>,
    kind: &str,
    actor: Option<&str>,
    detail: &str,
) -> Result<String, sqlx::Error> {
    let event_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event_id)
    .bind(incident_id)
    .bind(ms(at))
    .bind(kind)
    .bind(actor)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    Ok(event_id)
}

/// The text of one timeline line, if it is still there.
pub async fn timeline_detail(db: &Db, event_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT detail FROM timeline_events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(&db.pool)
        .await
}

/// Writes every timestamp of `tl` if the stored version of incident `id` is still `version`; bumps the
/// version. Returns whether it was still current (optimistic concurrency).
pub async fn save_timeline(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    tl: &Timeline,
) -> Result<bool, sqlx::Error> {
    let at = |s: &Option<Stamp>| s.as_ref().map(|s| ms(s.at));
    let by = |s: &Option<Stamp>| s.as_ref().and_then(|s| s.by.clone());
    let implicit = |s: &Option<Stamp>| i64::from(s.as_ref().is_some_and(|s| s.implicit));
    let r = sqlx::query(
        "UPDATE incidents SET started_at = $1,
             acknowledged_at = $2, acknowledged_by = $3, acknowledged_implicit = $4,
             identified_at = $5, identified_by = $6, identified_implicit = $7,
             fixed_at = $8, fixed_by = $9, fixed_implicit = $10,
             resolved_at = $11, resolved_by = $12, resolved_implicit = $13,
             closed_at = $14, version = version + 1
         WHERE id = $15 AND version = $16",
    )
    .bind(ms(tl.started_at))
    .bind(at(&tl.acknowledged))
    .bind(by(&tl.acknowledged))
    .bind(implicit(&tl.acknowledged))
    .bind(at(&tl.identified))
    .bind(by(&tl.identified))
    .bind(implicit(&tl.identified))
    .bind(at(&tl.fixed))
    .bind(by(&tl.fixed))
    .bind(implicit(&tl.fixed))
    .bind(at(&tl.resolved))
    .bind(by(&tl.resolved))
    .bind(implicit(&tl.resolved))
    .bind(tl.closed_at.map(ms))
    .bind(id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets the severity of incident `id` (and its highest severity, `peak`) if the stored version is still
/// `version`; bumps the version. Returns whether it was still current.
pub async fn save_severity(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    severity: Severity,
    peak: Severity,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE incidents SET severity = $1, peak_severity = $2, version = version + 1
         WHERE id = $3 AND version = $4",
    )
    .bind(severity.as_str())
    .bind(peak.as_str())
    .bind(id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives `role` of incident `id` to `user` if the stored version is still `version`; bumps the version.
/// Returns whether it was still current (optimistic concurrency, like [`save_timeline`]).
pub async fn save_role(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    role: Role,
    user: &str,
) -> Result<bool, sqlx::Error> {
    let sql = match role {
        Role::Commander => {
            "UPDATE incidents SET ic_user = $1, version = version + 1 WHERE id = $2 AND version = $3"
        }
        Role::Comms => {
            "UPDATE incidents SET comms_user = $1, version = version + 1 WHERE id = $2 AND version = $3"
        }
    };
    let r = sqlx::query(sql)
        .bind(user)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Records how incident `id` was detected, unless somebody already said (`detection` is no longer
/// `unknown`). Returns whether this call recorded it.
pub async fn set_detection(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    method: DetectionMethod,
) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query("UPDATE incidents SET detection = $1 WHERE id = $2 AND detection = $3")
            .bind(method.as_str())
            .bind(id)
            .bind(DetectionMethod::Unknown.as_str())
            .execute(&mut *tx)
            .await?;
    Ok(updated.rows_affected() == 1)
}

/// Other incidents whose highest severity was `severity`, resolved in `[since, until]`, all but `except_id`.
pub async fn resolved_between(
    db: &Db,
    severity: Severity,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    except_id: &str,
) -> Result<Vec<PastIncident>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, COALESCE(peak_severity, severity) AS severity, service, started_at, acknowledged_at,
                identified_at, fixed_at, resolved_at, source FROM incidents
         WHERE COALESCE(peak_severity, severity) = $1 AND resolved_at IS NOT NULL AND resolved_at >= $2 AND resolved_at <= $3 AND id <> $4",
    )
    .bind(severity.as_str())
    .bind(ms(since))
    .bind(ms(until))
    .bind(except_id)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let sev: String = r.try_get("severity")?;
        let source: String = r.try_get("source")?;
        let started_at = from_ms(r.try_get("started_at")?);
        let resolved_at = from_ms(r.try_get("resolved_at")?);
        let stamp = |c: &str| -> Result<Option<Stamp>, sqlx::Error> {
            Ok(from_ms_opt(r.try_get(c)?).map(|at| Stamp::explicit(at, None)))
        };
        let timeline = Timeline {
            started_at,
            declared_at: started_at,
            acknowledged: stamp("acknowledged_at")?,
            identified: stamp("identified_at")?,
            fixed: stamp("fixed_at")?,
            resolved: Some(Stamp::explicit(resolved_at, None)),
            closed_at: None,
        };
        out.push(PastIncident {
            id: r.try_get("id")?,
            severity: Severity::parse(&sev).unwrap_or_default(),
            service: r.try_get("service")?,
            started_at,
            resolved_at,
            phases: (source == "slack").then(|| {
                crate::domain::mttr::breakdown(&timeline, resolved_at)
                    .phases
                    .map(|p| p.duration)
            }),
        });
    }
    Ok(out)
}

/// Incidents resolved since `since` whose highest severity was `severity` (of `service` only, when given), all
/// but `except_id`: the history a stalled-phase nudge compares the current phase with (inside the caller's
/// transaction: the timer decides and writes in one).
pub async fn resolved_history(
    tx: &mut sqlx::AnyConnection,
    severity: Severity,
    service: Option<&str>,
    since: DateTime<Utc>,
    except_id: &str,
) -> Result<Vec<Incident>, sqlx::Error> {
    let rows = match service {
        Some(svc) => {
            sqlx::query(select_incidents!(
                "WHERE COALESCE(peak_severity, severity) = $1 AND resolved_at IS NOT NULL AND resolved_at >= $2
                   AND id <> $3 AND service = $4"
            ))
            .bind(severity.as_str())
            .bind(ms(since))
            .bind(except_id)
            .bind(svc)
            .fetch_all(&mut *tx)
            .await?
        }
        None => {
            sqlx::query(select_incidents!(
                "WHERE COALESCE(peak_severity, severity) = $1 AND resolved_at IS NOT NULL AND resolved_at >= $2
                   AND id <> $3"
            ))
            .bind(severity.as_str())
            .bind(ms(since))
            .bind(except_id)
            .fetch_all(&mut *tx)
            .await?
        }
    };
    rows.iter().map(incident_from_row).collect()
}

/// Open incidents (not resolved) of every workspace that have a service, for matching deploys against.
pub async fn open_with_service(tx: &mut sqlx::AnyConnection) -> Result<Vec<Incident>, sqlx::Error> {
    let rows = sqlx::query(select_incidents!(
        "WHERE resolved_at IS NULL AND closed_at IS NULL AND service IS NOT NULL"
    ))
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(incident_from_row).collect()
}

/// How many timeline lines of `kind` the incident has.
pub async fn count_events(db: &Db, incident_id: &str, kind: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM timeline_events WHERE incident_id = $1 AND kind = $2")
        .bind(incident_id)
        .bind(kind)
        .fetch_one(&db.pool)
        .await
}

/// Records the incident's war-room channel.
pub async fn set_channel(
    db: &Db,
    id: &str,
    channel_id: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE incidents SET channel_id = $1, channel_name = $2 WHERE id = $3")
        .bind(channel_id)
        .bind(name)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records the `ts` of the incident's card.
pub async fn set_card_ts(db: &Db, id: &str, ts: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE incidents SET card_ts = $1 WHERE id = $2")
        .bind(ts)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Every timeline line of the incident, oldest first (captured messages at their own time).
pub async fn timeline_entries(
    db: &Db,
    incident_id: &str,
) -> Result<Vec<crate::domain::timeline::Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT at, kind, actor, detail, permalink, deleted FROM timeline_events
         WHERE incident_id = $1 ORDER BY at, id",
    )
    .bind(incident_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::domain::timeline::Entry {
                at: from_ms(r.try_get("at")?),
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                detail: r.try_get("detail")?,
                permalink: r.try_get("permalink")?,
                deleted: r.try_get::<i64, _>("deleted")? != 0,
            })
        })
        .collect()
}

/// A message captured into the incident's timeline.
pub struct Captured<'a> {
    pub incident_id: &'a str,
    /// The message's Slack `ts` in the incident's channel.
    pub message_ts: &'a str,
    /// The message's own time.
    pub at: DateTime<Utc>,
    pub author: Option<&'a str>,
    /// As Slack gave it (untrusted).
    pub text: &'a str,
    pub permalink: Option<&'a str>,
}

/// Stores a captured message; false (nothing stored) when the incident already holds that message.
pub async fn capture_message(db: &Db, m: &Captured<'_>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail, message_ts, permalink)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (incident_id, message_ts) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(m.incident_id)
    .bind(ms(m.at))
    .bind(crate::domain::timeline::MESSAGE_KIND)
    .bind(m.author)
    .bind(m.text)
    .bind(m.message_ts)
    .bind(m.permalink)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the incident's timeline already holds message `message_ts`.
pub async fn is_captured(
    db: &Db,
    incident_id: &str,
    message_ts: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM timeline_events WHERE incident_id = $1 AND message_ts = $2",
    )
    .bind(incident_id)
    .bind(message_ts)
    .fetch_one(&db.pool)
    .await?;
    Ok(n > 0)
}

/// A captured message was edited in Slack: its new text. Returns whether a captured message was changed.
pub async fn edit_captured(
    db: &Db,
    incident_id: &str,
    message_ts: &str,
    text: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE timeline_events SET detail = $1 WHERE incident_id = $2 AND message_ts = $3",
    )
    .bind(text)
    .bind(incident_id)
    .bind(message_ts)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// A captured message was deleted in Slack: marked deleted, its text dropped. Returns whether one was marked.
pub async fn delete_captured(
    db: &Db,
    incident_id: &str,
    message_ts: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE timeline_events SET deleted = 1, detail = '' WHERE incident_id = $1 AND message_ts = $2",
    )
    .bind(incident_id)
    .bind(message_ts)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The incidents numbered `number` (one per workspace), oldest first.
pub async fn by_number(db: &Db, number: i64) -> Result<Vec<Incident>, sqlx::Error> {
    let rows = sqlx::query(select_incidents!("WHERE number = $1 ORDER BY declared_at"))
        .bind(number)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(incident_from_row).collect()
}
