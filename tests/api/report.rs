//! `incident-bot report`'s monthly MTTR over all severities (the founding document's query groups by month only),
//! checked against an independent computation: on PostgreSQL the same figures computed by SQL
//! (`percentile_cont` for the median), on SQLite computed here from the raw rows.

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{Datelike, TimeZone, Utc};
use incident_bot::db::{Backend, Db};
use serde_json::Value;
use sqlx::Row;

use crate::helpers::fresh_database_url;

/// Month → (resolved count, mean, median, max), in seconds.
type Monthly = BTreeMap<String, (i64, f64, f64, f64)>;

#[tokio::test]
async fn monthly_mttr_over_all_severities_equals_an_independent_computation() {
    let db_url = fresh_database_url().await;
    let db = Db::connect(&db_url).await.expect("connects");
    db.migrate().await.expect("migrates");
    // 90 incidents from August to October 2026, every severity, MTTRs from minutes to a day; every seventh
    // still open (no MTTR), and a few on the edges of months.
    let mut seed: u64 = 42;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let first = Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).unwrap();
    for i in 0..90_i64 {
        let started = if i % 30 == 0 {
            first + chrono::Duration::days(31 * (i / 30)) // midnight on a month's first day
        } else {
            first + chrono::Duration::minutes(next(91 * 24 * 60) as i64)
        };
        let mttr = chrono::Duration::seconds(60 + next(24 * 3600) as i64);
        let resolved = (i % 7 != 3).then(|| (started + mttr).timestamp_millis());
        sqlx::query(
            "INSERT INTO incidents (id, team_id, number, title, severity, detection, declared_by, started_at,
                                    declared_at, resolved_at, resolved_by)
             VALUES ($1, 'T0001', $2, 'Load', $3, 'engineer', 'U1', $4, $4, $5, 'U1')",
        )
        .bind(format!("inc-{i}"))
        .bind(i + 1)
        .bind(["P1", "P2", "P3"][(i % 3) as usize])
        .bind(started.timestamp_millis())
        .bind(resolved)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let (since, until) = (first, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());

    let expected: Monthly = match db.backend {
        Backend::Postgres => sqlx::query(
            "SELECT to_char(to_timestamp(started_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
                    COUNT(*) AS n,
                    (AVG(resolved_at - started_at) / 1000.0)::float8 AS mean,
                    (percentile_cont(0.5) WITHIN GROUP (ORDER BY resolved_at - started_at) / 1000.0)::float8 AS median,
                    (MAX(resolved_at - started_at) / 1000.0)::float8 AS max
             FROM incidents
             WHERE resolved_at IS NOT NULL AND started_at >= $1 AND started_at < $2
             GROUP BY 1 ORDER BY 1",
        )
        .bind(since.timestamp_millis())
        .bind(until.timestamp_millis())
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let f = |c: &str| r.try_get::<f64, _>(c).unwrap();
            (
                r.get::<String, _>("month"),
                (r.get::<i64, _>("n"), f("mean"), f("median"), f("max")),
            )
        })
        .collect(),
        Backend::Sqlite => {
            let rows = sqlx::query(
                "SELECT started_at, resolved_at FROM incidents
                 WHERE resolved_at IS NOT NULL AND started_at >= $1 AND started_at < $2",
            )
            .bind(since.timestamp_millis())
            .bind(until.timestamp_millis())
            .fetch_all(&db.pool)
            .await
            .unwrap();
            let mut by_month: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for r in rows {
                let (s, e): (i64, i64) = (r.get("started_at"), r.get("resolved_at"));
                let at = Utc.timestamp_millis_opt(s).unwrap();
                by_month
                    .entry(format!("{:04}-{:02}", at.year(), at.month()))
                    .or_default()
                    .push((e - s) as f64 / 1000.0);
            }
            by_month
                .into_iter()
                .map(|(m, mut v)| {
                    v.sort_by(f64::total_cmp);
                    let n = v.len();
                    let median = if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2.0
                    };
                    let mean = v.iter().sum::<f64>() / n as f64;
                    (m, (n as i64, mean, median, v[n - 1]))
                })
                .collect()
        }
    };
    assert_eq!(expected.len(), 3, "August, September, October");
    db.pool.close().await;

    let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args([
            "report",
            "--since",
            "2026-08-01",
            "--until",
            "2026-11-01",
            "--tz",
            "UTC",
            "--format",
            "json",
        ])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs the binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let got: Monthly = report["monthly"]
        .as_array()
        .expect("monthly")
        .iter()
        .map(|m| {
            let s = |k: &str| m["mttr"][k].as_f64().expect(k);
            (
                m["month"].as_str().unwrap().to_string(),
                (
                    m["mttr"]["count"].as_i64().unwrap(),
                    s("mean_seconds"),
                    s("median_seconds"),
                    s("max_seconds"),
                ),
            )
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (month, (n, mean, median, max)) in &expected {
        let (gn, gmean, gmedian, gmax) = got[month];
        assert_eq!(gn, *n, "{month}: resolved incidents");
        // The report gives whole seconds.
        for (what, g, e) in [
            ("mean", gmean, *mean),
            ("median", gmedian, *median),
            ("max", gmax, *max),
        ] {
            assert!(
                (g - e).abs() < 1.0,
                "{month} {what}: report {g} s, computed {e} s"
            );
        }
    }
    // The text report shows the same month's figures in its `all` column.
    let text = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args([
            "report",
            "--since",
            "2026-08-01",
            "--until",
            "2026-11-01",
            "--tz",
            "UTC",
        ])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs the binary");
    let text = String::from_utf8_lossy(&text.stdout);
    for (month, (n, ..)) in &expected {
        let line = text
            .lines()
            .find(|l| l.starts_with(month.as_str()))
            .unwrap_or_else(|| panic!("{month} in {text}"));
        let all = line.split(" P1 ").next().unwrap_or_default();
        assert!(
            all.contains(" all ") && all.trim_end().ends_with(&format!("· {n}")),
            "{line}"
        );
    }
}
