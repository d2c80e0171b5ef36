//! Storing declarations, with group commit.
//!
//! A declaration is stored in one write transaction — the signed request's digest (so that a byte-identical
//! replay declares nothing), the workspace's next number, the incident row and its first war-room step (the
//! channel, claimed by this process) — and only then acknowledged. Nothing acknowledged is lost; a declaration
//! is one incident or nothing.
//!
//! Declarations that arrive while a transaction is being written wait for it and are then stored together, in
//! the next one ([`Intake::store`]): a handful of multi-row statements for the whole group instead of six
//! statements each. SQLite has one writer, so during a burst of `/incident start` this is the difference
//! between a queue of 200 transactions and a few transactions of many rows (`incident-bot bench warroom`:
//! the acknowledgement p99 with 200 in flight). A lone declaration is written at once, alone: there is no
//! timer and no background thread. If a group's transaction fails, its declarations are retried one by one,
//! so that one bad declaration fails alone.
//!
//! The statements are those of each table's own file: [`super::replays::first_sights_in`],
//! [`super::incidents::take_numbers`] and [`super::incidents::insert`], [`super::setup_steps::insert_claimed_channels`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::replays::{self, Sighting};
use super::{incidents, setup_steps};
use crate::db::Db;
use crate::domain::incident::Incident;
use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::Title;

/// What a user (or an alert) asked for, already parsed.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub team_id: String,
    pub user_id: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    /// Normalised at the front door ([`Title::parse`]): stored as it is.
    pub title: Title,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    /// When impact began; defaults to the declaration time. Never after it.
    pub started_at: Option<DateTime<Utc>>,
    /// The signed Slack request that asked, recorded as seen in the declaration's own transaction: a
    /// byte-identical replay declares nothing.
    pub sighting: Option<Sighting>,
    /// A private incident (`private:yes`, the form's checkbox).
    pub private: bool,
}

/// Who claims a new incident's channel step, and for how long: this process, for the setup lease.
#[derive(Debug, Clone)]
pub struct Claim {
    pub owner: String,
    pub lease_ms: i64,
}

type Answer = Result<Option<Incident>, String>;
type Waiting = ((Declaration, DateTime<Utc>), oneshot::Sender<Answer>);

/// This process's declarations waiting for the transaction in progress (see the module doc).
#[derive(Default)]
pub struct Intake {
    pending: Mutex<Vec<Waiting>>,
    /// Held while a group is written; the next writer takes every declaration pending by then.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Intake {
    /// Stores `d`, received at `now`, with the declarations arriving beside it. `None`: the request was a replay
    /// of one already seen ([`Declaration::sighting`]), and nothing was stored.
    ///
    /// A group is written by a task of its own, so a caller that gives up (the answer deadline) cancels
    /// nobody else's declaration; its own is then stored or not, as the late answer says.
    pub async fn store(
        &self,
        db: &Db,
        d: Declaration,
        now: DateTime<Utc>,
        claim: &Claim,
    ) -> anyhow::Result<Option<Incident>> {
        let (tx, mut rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("the intake's lock is never poisoned")
            .push(((d, now), tx));
        let turn = tokio::select! {
            biased;
            answer = &mut rx => return unpack(answer),
            turn = self.turn.clone().lock_owned() => turn,
        };
        let group = std::mem::take(
            &mut *self
                .pending
                .lock()
                .expect("the intake's lock is never poisoned"),
        );
        if !group.is_empty() {
            let (db, claim) = (db.clone(), claim.clone());
            tokio::spawn(async move {
                write_group(&db, group, &claim).await;
                drop(turn);
            });
        }
        unpack(rx.await)
    }
}

fn unpack(answer: Result<Answer, oneshot::error::RecvError>) -> anyhow::Result<Option<Incident>> {
    match answer {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
        Err(_) => Err(anyhow::anyhow!(
            "the declaration's transaction was abandoned"
        )),
    }
}

async fn write_group(db: &Db, group: Vec<Waiting>, claim: &Claim) {
    let (items, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    tracing::debug!(
        declarations = items.len(),
        "storing a group of declarations"
    );
    match store(db, &items, claim).await {
        Ok(stored) => {
            for (answer, inc) in answers.into_iter().zip(stored) {
                let _ = answer.send(Ok(inc));
            }
        }
        Err(e) if items.len() == 1 => {
            for answer in answers {
                let _ = answer.send(Err(e.to_string()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, declarations = items.len(), "a group of declarations failed; storing them one by one");
            for (item, answer) in items.into_iter().zip(answers) {
                let one = store(db, std::slice::from_ref(&item), claim).await;
                let _ = answer.send(
                    one.map(|mut v| v.pop().flatten())
                        .map_err(|e| e.to_string()),
                );
            }
        }
    }
}

/// Stores `items` (each with the time it was received) in one transaction; one answer per item, in order:
/// the incident, or `None` for a replay.
pub async fn store(
    db: &Db,
    items: &[(Declaration, DateTime<Utc>)],
    claim: &Claim,
) -> Result<Vec<Option<Incident>>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let stored = store_in(db, &mut tx, items, claim).await?;
    tx.commit().await?;
    Ok(stored)
}

/// [`store`] inside the caller's write transaction, so that the caller can do more in it (an alert's
/// declaration takes its storm keys there) and commits or rolls back the whole.
pub async fn store_in(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    items: &[(Declaration, DateTime<Utc>)],
    claim: &Claim,
) -> Result<Vec<Option<Incident>>, sqlx::Error> {
    let fresh = first_sightings(db, tx, items).await?;
    let numbers = take_numbers(tx, items, &fresh).await?;
    let incidents: Vec<Option<Incident>> = items
        .iter()
        .zip(&numbers)
        .map(|((d, now), n)| n.map(|n| incident(d, *now, n)))
        .collect();
    let new: Vec<incidents::NewIncident> = incidents
        .iter()
        .flatten()
        .map(|i| incidents::NewIncident {
            id: &i.id,
            team_id: &i.team_id,
            number: i.number,
            title: &i.title,
            severity: i.severity,
            service: i.service.as_deref(),
            detection: i.detection,
            declared_by: &i.declared_by,
            origin_channel: i.origin_channel.as_deref(),
            response_url: i.response_url.as_deref(),
            started_at: i.timeline.started_at,
            declared_at: i.timeline.declared_at,
            private: i.private,
        })
        .collect();
    incidents::insert(db, tx, &new).await?;
    // Only the channel step is stored: every other step depends on it and is stored when it settles.
    let steps: Vec<(&str, DateTime<Utc>)> = new.iter().map(|i| (i.id, i.declared_at)).collect();
    setup_steps::insert_claimed_channels(db, tx, &steps, &claim.owner, claim.lease_ms).await?;
    Ok(incidents)
}

/// Records the signatures of the signed items; true for each item that is not a replay (unsigned items, and
/// the first of identical signatures, in this group or before it).
async fn first_sightings(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    items: &[(Declaration, DateTime<Utc>)],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut in_group = HashSet::new();
    let firsts: Vec<bool> = items
        .iter()
        .map(|(d, _)| {
            d.sighting
                .as_ref()
                .is_none_or(|s| in_group.insert(&s.digest))
        })
        .collect();
    let signed: Vec<&Sighting> = items
        .iter()
        .zip(&firsts)
        .filter_map(|((d, _), first)| d.sighting.as_ref().filter(|_| *first))
        .collect();
    if signed.is_empty() {
        return Ok(firsts);
    }
    let recorded = replays::first_sights_in(db, tx, &signed).await?;
    Ok(items
        .iter()
        .zip(firsts)
        .map(|((d, _), first)| {
            first
                && d.sighting
                    .as_ref()
                    .is_none_or(|s| recorded.contains(&s.digest))
        })
        .collect())
}

/// Takes the next numbers of each workspace for the `fresh` items, in arrival order: one counter update per
/// workspace in the group.
async fn take_numbers(
    tx: &mut sqlx::AnyConnection,
    items: &[(Declaration, DateTime<Utc>)],
    fresh: &[bool],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let mut wanted: Vec<(&str, i64)> = Vec::new();
    for ((d, _), _) in items.iter().zip(fresh).filter(|(_, f)| **f) {
        match wanted.iter_mut().find(|(team, _)| *team == d.team_id) {
            Some((_, n)) => *n += 1,
            None => wanted.push((&d.team_id, 1)),
        }
    }
    let mut next: HashMap<&str, i64> = HashMap::new();
    for (team, n) in wanted {
        next.insert(team, incidents::take_numbers(tx, team, n).await?);
    }
    Ok(items
        .iter()
        .zip(fresh)
        .map(|((d, _), f)| {
            f.then(|| {
                let n = next.get_mut(d.team_id.as_str()).expect("counted above");
                *n += 1;
                *n - 1
            })
        })
        .collect())
}

/// The incident that `d`, received at `now`, becomes with `number`.
fn incident(d: &Declaration, now: DateTime<Utc>, number: i64) -> Incident {
    let started_at = d.started_at.map(|s| s.min(now)).unwrap_or(now);
    Incident {
        id: uuid::Uuid::new_v4().to_string(),
        team_id: d.team_id.clone(),
        number,
        title: d.title.as_str().to_string(),
        severity: d.severity,
        peak_severity: d.severity,
        service: d.service.clone(),
        detection: d.detection,
        declared_by: d.user_id.clone(),
        origin_channel: d.origin_channel.clone(),
        response_url: d.response_url.clone(),
        channel_id: None,
        channel_name: None,
        card_ts: None,
        private: d.private,
        timeline: Timeline::new(started_at, now),
        roles: Default::default(),
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row as _;

    async fn memory_db() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn request(team: &str, title: &str) -> Declaration {
        Declaration {
            team_id: team.into(),
            user_id: "U1".into(),
            origin_channel: None,
            response_url: None,
            title: Title::parse(title).expect("a title"),
            severity: Severity::P2,
            service: None,
            detection: DetectionMethod::default(),
            started_at: None,
            sighting: None,
            private: false,
        }
    }

    fn signed(title: &str, digest: &str) -> Declaration {
        Declaration {
            sighting: Some(Sighting {
                digest: digest.into(),
                at_ms: 1,
            }),
            ..request("T1", title)
        }
    }

    fn me() -> Claim {
        Claim {
            owner: "me".into(),
            lease_ms: 60_000,
        }
    }

    async fn one(db: &Db, d: Declaration) -> Result<Option<Incident>, sqlx::Error> {
        store(db, &[(d, Utc::now())], &me())
            .await
            .map(|mut v| v.pop().flatten())
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
    }

    #[tokio::test]
    async fn a_declaration_is_stored_with_its_channel_step_claimed_by_this_process() {
        let db = memory_db().await;
        let inc = one(&db, request("T1", "Checkout down"))
            .await
            .unwrap()
            .expect("not a replay");
        let row = sqlx::query("SELECT number, title FROM incidents WHERE id = $1")
            .bind(&inc.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>("number").unwrap(), 1);
        assert_eq!(row.try_get::<String, _>("title").unwrap(), "Checkout down");
        let owner: String = sqlx::query_scalar(
            "SELECT lease_owner FROM setup_steps WHERE incident_id = $1 AND step = 'channel' AND state = 'running'",
        )
        .bind(&inc.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(owner, "me");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM setup_steps").await, 1);
    }

    #[tokio::test]
    async fn each_workspace_is_numbered_in_arrival_order_within_a_group_and_across_groups() {
        let db = memory_db().await;
        let now = Utc::now();
        let group: Vec<_> = [
            ("T1", "a"),
            ("T2", "b"),
            ("T1", "c"),
            ("T2", "d"),
            ("T3", "e"),
        ]
        .into_iter()
        .map(|(team, title)| (request(team, title), now))
        .collect();
        let first = store(&db, &group, &me()).await.unwrap();
        let second = store(&db, &group[..2], &me()).await.unwrap();
        let numbers: Vec<(String, i64)> = first
            .iter()
            .chain(&second)
            .map(|i| i.as_ref().expect("not a replay"))
            .map(|i| (i.team_id.clone(), i.number))
            .collect();
        let expected = [
            ("T1", 1),
            ("T2", 1),
            ("T1", 2),
            ("T2", 2),
            ("T3", 1),
            ("T1", 3),
            ("T2", 3),
        ];
        assert_eq!(numbers, expected.map(|(t, n)| (t.to_string(), n)).to_vec());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 7);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM setup_steps").await, 7);
    }

    #[tokio::test]
    async fn a_declaration_that_fails_half_way_stores_nothing_and_takes_no_number() {
        let db = memory_db().await;
        // The step insert fails after the counter was bumped and the incident inserted in the same transaction.
        sqlx::query(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON setup_steps
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        assert!(one(&db, request("T1", "a")).await.is_err());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 0);
        sqlx::query("DROP TRIGGER refuse")
            .execute(&db.pool)
            .await
            .unwrap();
        let inc = one(&db, request("T1", "b"))
            .await
            .expect("the connection is not left inside the failed transaction")
            .expect("not a replay");
        assert_eq!(
            inc.number, 1,
            "the failed declaration's number was rolled back"
        );
    }

    #[tokio::test]
    async fn a_replayed_request_declares_nothing_and_takes_no_number_even_within_one_group() {
        let db = memory_db().await;
        let now = Utc::now();
        let group = [
            (signed("a", "d1"), now),
            (signed("a", "d1"), now),
            (request("T1", "b"), now),
        ];
        let stored = store(&db, &group, &me()).await.unwrap();
        let numbers: Vec<Option<i64>> = stored
            .iter()
            .map(|i| i.as_ref().map(|i| i.number))
            .collect();
        assert_eq!(numbers, [Some(1), None, Some(2)]);
        let replay = one(&db, signed("a", "d1")).await.unwrap();
        assert!(replay.is_none(), "a replay in a later group stores nothing");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 2);
        let next = one(&db, request("T1", "c")).await.unwrap();
        assert_eq!(
            next.map(|i| i.number),
            Some(3),
            "the replays took no number"
        );
    }

    #[tokio::test]
    async fn declarations_arriving_together_are_each_stored_once_with_distinct_numbers() {
        let db = memory_db().await;
        let intake = Arc::new(Intake::default());
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let (db, intake) = (db.clone(), intake.clone());
                tokio::spawn(async move {
                    let d = if i % 10 == 9 {
                        signed("replayed", "same") // six copies of one signed request
                    } else {
                        request("T1", &format!("incident {i}"))
                    };
                    intake.store(&db, d, Utc::now(), &me()).await
                })
            })
            .collect();
        let mut numbers = Vec::new();
        for t in tasks {
            if let Some(inc) = t.await.unwrap().unwrap() {
                numbers.push(inc.number);
            }
        }
        numbers.sort();
        assert_eq!(
            numbers,
            (1..=55).collect::<Vec<i64>>(),
            "54 + one of the six copies"
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 55);
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM setup_steps WHERE step = 'channel'"
            )
            .await,
            55
        );
    }

    #[tokio::test]
    async fn one_bad_declaration_in_a_group_fails_alone() {
        let db = memory_db().await;
        sqlx::query(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON incidents WHEN NEW.title = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let intake = Arc::new(Intake::default());
        let tasks: Vec<_> = ["a", "b", "bad", "c", "d"]
            .into_iter()
            .map(|title| {
                let (db, intake) = (db.clone(), intake.clone());
                tokio::spawn(async move {
                    (
                        title,
                        intake
                            .store(&db, request("T1", title), Utc::now(), &me())
                            .await,
                    )
                })
            })
            .collect();
        for t in tasks {
            let (title, stored) = t.await.unwrap();
            assert_eq!(stored.is_err(), title == "bad", "{title}: {stored:?}");
        }
        assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 4);
        assert_eq!(
            count(&db, "SELECT MAX(number) FROM incidents").await,
            4,
            "no number was lost to the failed one"
        );
    }
}
