//! Declaring an incident: one transaction stores the incident, its per-workspace number, its war-room steps
//! and the first timeline line, so a declaration is either wholly stored or not at all — and it is stored
//! before Slack gets its answer, so nothing acknowledged is lost. The steps then run in the background
//! ([`super::setup`]).
//!
//! Declarations go through one [`Intake`] task per process, which stores everything that arrived together in
//! one transaction of a few multi-row statements (group commit): a burst of 200 `/incident start`s costs a
//! handful of database round trips instead of a thousand. The channel step is stored already claimed by this
//! process, so the war room starts without another query.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::setup::Runner;
use super::Incident;
use crate::db::{ms, Db};
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::startup::AppState;

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

/// The war-room steps as stored at declaration: (step, state, attempts). The channel step comes first and is
/// claimed by the declaring process; the others wait for it. A unit test keeps this in line with `Step`.
const INITIAL_STEPS: [(&str, &str, i64); 9] = [
    ("channel", "running", 1),
    ("topic", "waiting", 0),
    ("invite", "waiting", 0),
    ("card", "waiting", 0),
    ("pin", "waiting", 0),
    ("bookmarks", "waiting", 0),
    ("page", "waiting", 0),
    ("announce", "waiting", 0),
    ("notify", "waiting", 0),
];

/// Most declarations stored in one transaction.
const MAX_BATCH: usize = 200;

type Reply = oneshot::Sender<Result<Incident, String>>;

/// The per-process declaration writer (see the module doc).
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::UnboundedSender<(DeclareRequest, DateTime<Utc>, Reply)>,
}

impl Intake {
    /// Starts the writer. Steps are claimed for `owner` until `lease_ms` from their declaration.
    pub fn start(db: Db, owner: String, lease_ms: i64) -> Intake {
        let (tx, mut rx) = mpsc::unbounded_channel::<(DeclareRequest, DateTime<Utc>, Reply)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let items: Vec<(DeclareRequest, DateTime<Utc>)> =
                    batch.iter().map(|(r, now, _)| (r.clone(), *now)).collect();
                let t0 = std::time::Instant::now();
                let stored = store_batch(&db, &items, &owner, lease_ms).await;
                tracing::debug!(
                    n = items.len(),
                    ms = t0.elapsed().as_secs_f64() * 1e3,
                    "declarations stored"
                );
                match stored {
                    Ok(incidents) => {
                        for ((_, _, reply), inc) in batch.into_iter().zip(incidents) {
                            let _ = reply.send(Ok(inc));
                        }
                    }
                    // One bad declaration must not fail the others: store them one by one.
                    Err(e) if batch.len() > 1 => {
                        tracing::warn!(error = %e, n = batch.len(), "batched declaration failed; storing one by one");
                        for (req, now, reply) in batch {
                            let one = store_batch(&db, &[(req, now)], &owner, lease_ms).await;
                            let _ =
                                reply.send(one.map(|mut v| v.remove(0)).map_err(|e| e.to_string()));
                        }
                    }
                    Err(e) => {
                        for (_, _, reply) in batch {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Intake { tx }
    }

    /// Stores one declaration (with whatever else arrives meanwhile); returns it once committed.
    pub async fn submit(
        &self,
        req: DeclareRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Incident> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((req, now, reply))
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the declaration writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("could not store the incident: {e}"))
    }
}

/// Declares: stores the incident (before the caller answers Slack) and starts its war room.
#[tracing::instrument(skip_all, fields(team = %req.team_id, user = %req.user_id))]
pub async fn declare(state: &Arc<AppState>, req: DeclareRequest) -> anyhow::Result<Incident> {
    let inc = state.intake.submit(req, state.clock.now()).await?;
    Runner::kick_claimed(state, inc.clone());
    Ok(inc)
}

/// `($1, $2, …, $n), ($n+1, …)`: placeholders for `rows` rows of `width` values.
fn placeholders(rows: usize, width: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            row(&p)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores declarations in one transaction; returns the incidents in the same order.
async fn store_batch(
    db: &Db,
    items: &[(DeclareRequest, DateTime<Utc>)],
    owner: &str,
    lease_ms: i64,
) -> Result<Vec<Incident>, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    // Numbers: one counter bump per workspace in the batch, handed out in arrival order.
    let mut next_number: std::collections::HashMap<&str, i64> = Default::default();
    for (req, _) in items {
        if next_number.contains_key(req.team_id.as_str()) {
            continue;
        }
        let k = items
            .iter()
            .filter(|(r, _)| r.team_id == req.team_id)
            .count() as i64;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO workspace_counters (team_id, last_number) VALUES ($1, $2)
             ON CONFLICT (team_id) DO UPDATE SET last_number = workspace_counters.last_number + $2
             RETURNING last_number",
        )
        .bind(&req.team_id)
        .bind(k)
        .fetch_one(&mut *tx)
        .await?;
        next_number.insert(req.team_id.as_str(), last - k + 1);
    }
    let incidents: Vec<Incident> = items
        .iter()
        .map(|(req, now)| {
            let n = next_number
                .get_mut(req.team_id.as_str())
                .expect("counted above");
            let number = *n;
            *n += 1;
            let started_at = req.started_at.map(|s| s.min(*now)).unwrap_or(*now);
            Incident {
                id: uuid::Uuid::new_v4().to_string(),
                team_id: req.team_id.clone(),
                number,
                title: req.title.clone(),
                severity: req.severity,
                service: req.service.clone(),
                detection: req.detection,
                declared_by: req.user_id.clone(),
                origin_channel: req.origin_channel.clone(),
                response_url: req.response_url.clone(),
                channel_id: None,
                channel_name: None,
                card_ts: None,
                timeline: Timeline::new(started_at, *now),
                version: 0,
            }
        })
        .collect();

    // The SQL below is generated from placeholders only; every value is bound.
    let sql = format!(
        "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, \
         origin_channel, response_url, started_at, declared_at) VALUES {}",
        placeholders(incidents.len(), 12, |p| format!("({})", p.join(", ")))
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for inc in &incidents {
        q = q
            .bind(&inc.id)
            .bind(&inc.team_id)
            .bind(inc.number)
            .bind(&inc.title)
            .bind(inc.severity.as_str())
            .bind(&inc.service)
            .bind(inc.detection.as_str())
            .bind(&inc.declared_by)
            .bind(&inc.origin_channel)
            .bind(&inc.response_url)
            .bind(ms(inc.timeline.started_at))
            .bind(ms(inc.timeline.declared_at));
    }
    q.execute(&mut *tx).await?;

    let sql = format!(
        "INSERT INTO setup_steps (incident_id, step, state, attempts, next_attempt_at, lease_owner, lease_until, \
         updated_at) VALUES {}",
        placeholders(incidents.len(), 4, |p| {
            let (id, now, owner, lease) = (&p[0], &p[1], &p[2], &p[3]);
            INITIAL_STEPS
                .iter()
                .map(|(step, state, attempts)| {
                    if *state == "running" {
                        format!("({id}, '{step}', '{state}', {attempts}, {now}, {owner}, {lease}, {now})")
                    } else {
                        format!("({id}, '{step}', '{state}', {attempts}, {now}, NULL, NULL, {now})")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for inc in &incidents {
        let now = ms(inc.timeline.declared_at);
        q = q.bind(&inc.id).bind(now).bind(owner).bind(now + lease_ms);
    }
    q.execute(&mut *tx).await?;

    let sql = format!(
        "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail) VALUES {}",
        placeholders(incidents.len(), 5, |p| format!(
            "({}, {}, {}, 'declared', {}, {})",
            p[0], p[1], p[2], p[3], p[4]
        ))
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for inc in &incidents {
        q = q
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&inc.id)
            .bind(ms(inc.timeline.declared_at))
            .bind(&inc.declared_by)
            .bind(format!(
                "{} declared {} ({})",
                inc.declared_by,
                inc.title,
                inc.severity.as_str()
            ));
    }
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(incidents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::steps::Step;

    #[test]
    fn the_initial_steps_are_every_step_with_only_the_channel_ready_to_run() {
        let names: Vec<&str> = INITIAL_STEPS.iter().map(|(s, _, _)| *s).collect();
        let all: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, all);
        for (name, state, _) in INITIAL_STEPS {
            let step = Step::parse(name).unwrap();
            assert_eq!(step.dependencies().is_empty(), state == "running", "{name}");
        }
    }

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(
            placeholders(2, 3, |p| format!("({})", p.join(","))),
            "($1,$2,$3), ($4,$5,$6)"
        );
    }
}
