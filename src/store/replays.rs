//! Requests already seen, so that a repeat has no second effect: signatures of signed Slack requests (a
//! byte-identical replay inside the 5-minute window) and ids of Events API deliveries (Slack's retries).
//!
//! Each is recorded with one `INSERT … ON CONFLICT DO NOTHING`, so of two replicas on one database exactly one
//! records it first. Only a SHA-256 digest of a signature is stored. Rows are kept as long as a repeat can still
//! arrive ([`forget_old`]): a signature until its timestamp leaves the window (older ones are refused as stale
//! anyway), an event id for an hour (Slack retries within minutes).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::db::{ms, Db};

/// How long an event id is remembered.
pub const EVENT_IDS_KEPT: chrono::Duration = chrono::Duration::hours(1);

const RECORD_SIGNATURE: &str =
    "INSERT INTO slack_signatures (digest, at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING";

/// A signed request to record as seen: the digest of its signature and its timestamp (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub digest: String,
    pub at_ms: i64,
}

/// Records a request signature's digest (`at_ms`: the request's timestamp); false when it was already recorded.
pub async fn first_sight(db: &Db, digest: &str, at_ms: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(RECORD_SIGNATURE)
        .bind(digest)
        .bind(at_ms)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// [`first_sight`] for several requests inside the caller's transaction, so that what they asked for and the
/// record that they were seen commit together (declarations: one write instead of two). Returns the digests
/// recorded now; a digest missing from it was already recorded (a replay). The digests must be distinct.
pub async fn first_sights_in(
    db: &Db,
    tx: &mut sqlx::AnyConnection,
    seen: &[&Sighting],
) -> Result<HashSet<String>, sqlx::Error> {
    db.insert_rows_returning(
        tx,
        (
            "INSERT INTO slack_signatures (digest, at)",
            "(?, ?)",
            "ON CONFLICT (digest) DO NOTHING RETURNING digest",
        ),
        seen,
        |q, s| q.bind(s.digest.as_str()).bind(s.at_ms),
    )
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect()
}

/// Records an Events API delivery's `event_id` (received `at`); false when it was already recorded (a Slack
/// retry).
pub async fn first_delivery(
    db: &Db,
    event_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO processed_events (event_id, at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(ms(at))
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes signatures whose timestamp is more than `window` (the signature tolerance) and a minute before `now`
/// (the minute covers the rounding of the window check to seconds), and event ids older than
/// [`EVENT_IDS_KEPT`]. Returns how many rows went.
pub async fn forget_old(
    db: &Db,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<u64, sqlx::Error> {
    let signatures = sqlx::query("DELETE FROM slack_signatures WHERE at < $1")
        .bind(ms(now - window - chrono::Duration::minutes(1)))
        .execute(&db.pool)
        .await?;
    let events = sqlx::query("DELETE FROM processed_events WHERE at < $1")
        .bind(ms(now - EVENT_IDS_KEPT))
        .execute(&db.pool)
        .await?;
    Ok(signatures.rows_affected() + events.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signature_is_seen_first_once_and_forgotten_after_the_window() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let now = Utc::now();
        assert!(first_sight(&db, "abc", ms(now)).await.unwrap());
        assert!(!first_sight(&db, "abc", ms(now)).await.unwrap());
        sqlx::query("INSERT INTO processed_events (event_id, at) VALUES ('Ev1', $1), ('Ev2', $2)")
            .bind(ms(now - chrono::Duration::minutes(61)))
            .bind(ms(now - chrono::Duration::minutes(30)))
            .execute(&db.pool)
            .await
            .unwrap();
        let window = chrono::Duration::minutes(5);
        assert_eq!(forget_old(&db, now, window).await.unwrap(), 1, "Ev1 only");
        assert_eq!(
            forget_old(&db, now + window + chrono::Duration::seconds(61), window)
                .await
                .unwrap(),
            1,
            "the signature, once out of the window"
        );
        assert!(first_sight(&db, "abc", ms(now)).await.unwrap());
    }
}
