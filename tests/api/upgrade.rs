//! Upgrades: a database made by the previous release's migrations, holding a resolved incident with its
//! timeline, a running incident and a deploy, is migrated to this version's schema when the bot starts on it, with
//! every row intact; the bot then answers from that data and carries on numbering.

use std::sync::Arc;

use chrono::{Duration, Utc};
use incident_bot::db::{ms, Backend, Db};
use incident_bot::standins::harness::{settings_for, Harness, TEAM_ID};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::SlackStandin;
use sqlx::Row;

use crate::helpers::{declared_number, fresh_database_url, TestApp, SETUP_LIMIT};

/// The last migration of the previous release (`0012_drop_declaration_log.sql`); `0013_alerts.sql` and later
/// are this version's.
const PREVIOUS_RELEASE: i64 = 12;

#[tokio::test]
async fn a_database_of_the_previous_release_is_migrated_with_its_data_intact() {
    let url = fresh_database_url().await;
    let now = Utc::now();
    let started = now - Duration::hours(3);
    {
        let db = Db::connect(&url).await.expect("connects");
        let previous = match db.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        previous
            .run_to(PREVIOUS_RELEASE, &db.pool)
            .await
            .expect("the previous release's schema");
        let alerts_table: i64 = sqlx::query_scalar(match db.backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'alerts'",
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'alerts'"
            }
        })
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(alerts_table, 0, "the database is at the previous schema");

        // What the previous release wrote: a resolved incident (its phases and timeline), a running one, the
        // workspace's counter, a deploy.
        sqlx::query("INSERT INTO workspace_counters (team_id, last_number) VALUES ($1, 2)")
            .bind(TEAM_ID)
            .execute(&db.pool)
            .await
            .unwrap();
        for (id, number, title, resolved) in [
            (
                "old-1",
                1_i64,
                "Checkout 502s",
                Some(ms(started + Duration::minutes(50))),
            ),
            ("old-2", 2_i64, "Search slow", None),
        ] {
            sqlx::query(
                "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                    channel_id, channel_name, card_ts, started_at, declared_at, acknowledged_at, acknowledged_by,
                    resolved_at, resolved_by, version)
                 VALUES ($1, $2, $3, $4, 'P1', 'payments', 'customer', 'U0DECLARER', $5, $6, '1700000000.000100',
                    $7, $8, $9, 'U0ONCALL', $10, $11, 3)",
            )
            .bind(id)
            .bind(TEAM_ID)
            .bind(number)
            .bind(title)
            .bind(format!("C0OLD{number}"))
            .bind(format!("inc-{number}-old"))
            .bind(ms(started))
            .bind(ms(started + Duration::minutes(5)))
            .bind(ms(started + Duration::minutes(12)))
            .bind(resolved)
            .bind(resolved.map(|_| "U0ONCALL"))
            .execute(&db.pool)
            .await
            .unwrap();
        }
        for (i, detail) in [
            "🟢 Acknowledged by <@U0ONCALL>",
            "✅ Resolved by <@U0ONCALL>",
        ]
        .iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail)
                 VALUES ($1, 'old-1', $2, 'phase', 'U0ONCALL', $3)",
            )
            .bind(format!("ev-{i}"))
            .bind(ms(started + Duration::minutes(12 + 38 * i as i64)))
            .bind(*detail)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO deploys (id, service, environment, version, commit_sha, url, author, deployed_at, source,
                                  received_at)
             VALUES ('dep-1', 'payments', 'production', 'v7.1.0', 'abc1234', NULL, 'dora', $1, 'api', $1)",
        )
        .bind(ms(now - Duration::minutes(30)))
        .execute(&db.pool)
        .await
        .unwrap();
        db.pool.close().await;
    }

    // This version's bot starts on it (and migrates it).
    let slack = SlackStandin::start().await.expect("slack stand-in");
    let pager = PagerStandin::start().await.expect("pager stand-in");
    let settings = settings_for(&slack, &pager, &url);
    let h = Harness::start_with(
        settings,
        slack,
        pager,
        Arc::new(incident_bot::clock::SystemClock),
    )
    .await
    .expect("the bot starts on the previous release's database");
    let app = TestApp { h, db_url: url };
    let db = &app.state.db;

    let rows = sqlx::query(
        "SELECT id, number, title, severity, service, detection, channel_id, started_at, acknowledged_at,
                resolved_at, version
         FROM incidents ORDER BY number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let first = &rows[0];
    assert_eq!(first.get::<String, _>("id"), "old-1");
    assert_eq!(first.get::<String, _>("title"), "Checkout 502s");
    assert_eq!(first.get::<String, _>("severity"), "P1");
    assert_eq!(first.get::<String, _>("detection"), "customer");
    assert_eq!(first.get::<String, _>("channel_id"), "C0OLD1");
    assert_eq!(first.get::<i64, _>("started_at"), ms(started));
    assert_eq!(
        first.get::<Option<i64>, _>("acknowledged_at"),
        Some(ms(started + Duration::minutes(12)))
    );
    assert_eq!(
        first.get::<Option<i64>, _>("resolved_at"),
        Some(ms(started + Duration::minutes(50)))
    );
    assert_eq!(first.get::<i64, _>("version"), 3);
    assert_eq!(rows[1].get::<Option<i64>, _>("resolved_at"), None);
    let timeline: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM timeline_events WHERE incident_id = 'old-1' ORDER BY at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        timeline,
        [
            "🟢 Acknowledged by <@U0ONCALL>",
            "✅ Resolved by <@U0ONCALL>"
        ]
    );

    // The bot answers from the old rows: the running incident is listed, the deploy is found.
    let (status, listed) = app.slash("list").await.unwrap();
    assert_eq!(status, 200);
    let listed = listed.to_string();
    assert!(
        listed.contains("INC-2") && listed.contains("Search slow"),
        "{listed}"
    );
    assert!(!listed.contains("Checkout 502s"), "resolved: {listed}");
    let (_, deploys) = app.slash("deploys payments").await.unwrap();
    assert!(deploys.to_string().contains("v7.1.0"), "{deploys}");

    // And carries on: the next declaration is INC-3, and its war room stands on the new schema.
    let (status, reply) = app
        .slash("start Ledger errors sev:P2 service:payments")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(declared_number(&reply), 3);
    let id = app.incident_id(3).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT)
        .await
        .expect("the new incident's war room is set up");
}
