//! Distributions (SPEC §13) through `incident-bot report`: p50/p90 with n per phase and per severity, and the
//! change-failure rate and failed-deployment recovery time (DORA), each checked against an independent
//! computation from the raw rows — on PostgreSQL also by SQL (`percentile_cont`), on every backend by the
//! percentile definition written out here.

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use incident_bot::clock::Clock;
use incident_bot::db::{Backend, Db};
use serde_json::Value;
use sqlx::Row;

use crate::helpers::{declare_done, fresh_database_url, incident, World};

/// The figures compared, in seconds: name → (n, p50, p90); p50/p90 `None` under 5 values. Plus counts.
type Figures = BTreeMap<String, (i64, Option<f64>, Option<f64>)>;

/// PostgreSQL's `percentile_cont`, written out: rank p·(n−1), linear between its neighbours.
fn cont(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = p * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

fn spread(mut v: Vec<f64>) -> (i64, Option<f64>, Option<f64>) {
    let n = v.len() as i64;
    if n < 5 {
        return (n, None, None);
    }
    (n, Some(cont(&mut v, 0.5)), Some(cont(&mut v, 0.9)))
}

/// `checkout` depends on `payments` in this catalog: a deploy to payments counts for checkout's incidents.
const CATALOG: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
spec:
  owner: group:team-payments
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
spec:
  owner: group:team-shop
  dependsOn:
    - component:payments
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: search
spec:
  owner: group:team-shop
";

/// Which incident services a deploy to a service counts for (the catalog above), as SQL rows.
const LINKS_SQL: &str =
    "(VALUES ('payments', 'payments'), ('checkout', 'checkout'), ('checkout', 'payments'),
                                 ('search', 'search')) AS links(incident_service, deploy_service)";

const PHASES: [(&str, &str, &str); 4] = [
    ("detection", "started_at", "acknowledged_at"),
    ("triage", "acknowledged_at", "identified_at"),
    ("remediation", "identified_at", "fixed_at"),
    ("verification", "fixed_at", "resolved_at"),
];

fn linked(incident_service: &str, deploy_service: &str) -> bool {
    incident_service == deploy_service
        || (incident_service == "checkout" && deploy_service == "payments")
}

#[tokio::test]
async fn report_distributions_and_change_failure_equal_an_independent_computation() {
    let db_url = fresh_database_url().await;
    let db = Db::connect(&db_url).await.expect("connects");
    db.migrate().await.expect("migrates");
    let mut seed: u64 = 7;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let since = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
    let until = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let span_min = (until - since).num_minutes() as u64;
    let services = ["payments", "checkout", "search"];
    // 40 incidents: P1 and P2, only 3 P3s (not enough data); phases of up to 3 hours to the millisecond;
    // every ninth still open; 2 on search 30 minutes apart (one deploy fails both: it recovers when the later
    // is resolved); and 2 started in the 2 hours after the period (they can still fail its deploys).
    let mut incidents = Vec::new();
    let twins = since + Duration::days(10);
    for i in 0..44_i64 {
        let started = match i {
            40 | 41 => until + Duration::minutes(30 + 40 * (i - 40)),
            42 | 43 => twins + Duration::minutes(30 * (i - 42)),
            _ => since + Duration::minutes(next(span_min) as i64),
        };
        let severity = if i < 3 {
            "P3"
        } else {
            ["P1", "P2"][(i % 2) as usize]
        };
        let service = if i >= 42 {
            "search"
        } else {
            services[next(3) as usize]
        };
        let mut t = started;
        let mut stamps = [None; 4];
        for s in stamps.iter_mut() {
            t += Duration::milliseconds(next(3 * 3600 * 1000) as i64);
            *s = Some(t.timestamp_millis());
        }
        if i % 9 == 4 {
            stamps[2] = None;
            stamps[3] = None;
        }
        sqlx::query(
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                 started_at, declared_at, acknowledged_at, identified_at, fixed_at, resolved_at)
             VALUES ($1, 'T0001', $2, 'Load', $3, $4, 'alert', 'U1', $5, $5, $6, $7, $8, $9)",
        )
        .bind(format!("inc-{i}"))
        .bind(i + 1)
        .bind(severity)
        .bind(service)
        .bind(started.timestamp_millis())
        .bind(stamps[0])
        .bind(stamps[1])
        .bind(stamps[2])
        .bind(stamps[3])
        .execute(&db.pool)
        .await
        .unwrap();
        incidents.push((service, started.timestamp_millis(), stamps[3]));
    }
    // 60 production deploys at random, 12 placed 0–2 h before an incident (some to a dependency), one exactly
    // 2 h before, one just outside; and staging deploys, which never count.
    let mut deploys: Vec<(String, i64, &str)> = Vec::new();
    for _ in 0..60 {
        let at = since + Duration::minutes(next(span_min) as i64);
        deploys.push((
            services[next(3) as usize].into(),
            at.timestamp_millis(),
            "production",
        ));
    }
    for (k, (service, started, _)) in incidents.iter().enumerate().step_by(3) {
        let target = if *service == "checkout" && k % 2 == 0 {
            "payments"
        } else {
            service
        };
        let before = match k {
            0 => 2 * 3600 * 1000,
            3 => 2 * 3600 * 1000 + 1,
            _ => next(2 * 3600 * 1000) as i64,
        };
        deploys.push((target.to_string(), started - before, "production"));
        deploys.push((target.to_string(), started - 60_000, "staging"));
    }
    deploys.push((
        "search".into(),
        (twins - Duration::hours(1)).timestamp_millis(),
        "production",
    ));
    for (i, (service, at, env)) in deploys.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deploys (id, service, environment, deployed_at, source, received_at)
             VALUES ($1, $2, $3, $4, 'test', $4)",
        )
        .bind(format!("d-{i}"))
        .bind(service)
        .bind(*env)
        .bind(*at)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let (s_ms, u_ms) = (since.timestamp_millis(), until.timestamp_millis());

    // Independent computation from the raw rows.
    let rows = sqlx::query(
        "SELECT severity, started_at, acknowledged_at, identified_at, fixed_at, resolved_at FROM incidents
         WHERE resolved_at IS NOT NULL AND started_at >= $1 AND started_at < $2",
    )
    .bind(s_ms)
    .bind(u_ms)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut expected = Figures::new();
    for (name, from, to) in PHASES {
        let v = rows
            .iter()
            .map(|r| (r.get::<i64, _>(to) - r.get::<i64, _>(from)) as f64 / 1000.0)
            .collect();
        expected.insert(format!("phase {name}"), spread(v));
    }
    for sev in ["P1", "P2", "P3"] {
        let v = rows
            .iter()
            .filter(|r| r.get::<String, _>("severity") == sev)
            .map(|r| {
                (r.get::<i64, _>("resolved_at") - r.get::<i64, _>("started_at")) as f64 / 1000.0
            })
            .collect();
        expected.insert(format!("mttr {sev}"), spread(v));
    }
    let prod: Vec<&(String, i64, &str)> = deploys
        .iter()
        .filter(|(_, at, env)| *env == "production" && *at >= s_ms && *at < u_ms)
        .collect();
    let mut failed = 0;
    let mut recovery = Vec::new();
    for (service, at, _) in &prod {
        let hits: Vec<Option<i64>> = incidents
            .iter()
            .filter(|(s, started, _)| {
                linked(s, service) && *at <= *started && *at >= started - 7_200_000
            })
            .map(|(_, _, resolved)| *resolved)
            .collect();
        if hits.is_empty() {
            continue;
        }
        failed += 1;
        if hits.iter().all(Option::is_some) {
            recovery.push((hits.iter().flatten().max().unwrap() - at) as f64 / 1000.0);
        }
    }
    expected.insert("deploys".into(), (prod.len() as i64, None, None));
    expected.insert("failed".into(), (failed, None, None));
    expected.insert("recovery".into(), spread(recovery));
    assert!(
        failed >= 8 && failed < prod.len() as i64,
        "{failed} of {}",
        prod.len()
    );
    assert_eq!(expected["mttr P3"].0, 3);

    if db.backend == Backend::Postgres {
        // The same figures by SQL.
        let mut by_sql = Figures::new();
        for (name, from, to) in PHASES {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n,
                        (percentile_cont(0.5) WITHIN GROUP (ORDER BY {to} - {from}) / 1000.0)::float8 AS p50,
                        (percentile_cont(0.9) WITHIN GROUP (ORDER BY {to} - {from}) / 1000.0)::float8 AS p90
                 FROM incidents WHERE resolved_at IS NOT NULL AND started_at >= $1 AND started_at < $2"
            )))
            .bind(s_ms)
            .bind(u_ms)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            let n: i64 = r.get("n");
            by_sql.insert(
                format!("phase {name}"),
                (
                    n,
                    (n >= 5).then(|| r.get("p50")),
                    (n >= 5).then(|| r.get("p90")),
                ),
            );
        }
        for r in sqlx::query(
            "SELECT severity, COUNT(*) AS n,
                    (percentile_cont(0.5) WITHIN GROUP (ORDER BY resolved_at - started_at) / 1000.0)::float8 AS p50,
                    (percentile_cont(0.9) WITHIN GROUP (ORDER BY resolved_at - started_at) / 1000.0)::float8 AS p90
             FROM incidents WHERE resolved_at IS NOT NULL AND started_at >= $1 AND started_at < $2
             GROUP BY severity",
        )
        .bind(s_ms)
        .bind(u_ms)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        {
            let n: i64 = r.get("n");
            by_sql.insert(
                format!("mttr {}", r.get::<String, _>("severity")),
                (n, (n >= 5).then(|| r.get("p50")), (n >= 5).then(|| r.get("p90"))),
            );
        }
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH prod AS (
                 SELECT id, service, deployed_at FROM deploys
                 WHERE environment = 'production' AND deployed_at >= $1 AND deployed_at < $2),
             failed AS (
                 SELECT p.id, p.deployed_at, bool_and(i.resolved_at IS NOT NULL) AS recovered,
                        MAX(i.resolved_at) AS last_resolved
                 FROM prod p
                 JOIN {LINKS_SQL} ON links.deploy_service = p.service
                 JOIN incidents i ON i.service = links.incident_service
                      AND p.deployed_at BETWEEN i.started_at - 7200000 AND i.started_at
                 GROUP BY p.id, p.deployed_at)
             SELECT (SELECT COUNT(*) FROM prod) AS deploys, (SELECT COUNT(*) FROM failed) AS failed,
                    COUNT(*) FILTER (WHERE recovered) AS n,
                    (percentile_cont(0.5) WITHIN GROUP (ORDER BY last_resolved - deployed_at)
                        FILTER (WHERE recovered) / 1000.0)::float8 AS p50,
                    (percentile_cont(0.9) WITHIN GROUP (ORDER BY last_resolved - deployed_at)
                        FILTER (WHERE recovered) / 1000.0)::float8 AS p90
             FROM failed"
        )))
        .bind(s_ms)
        .bind(u_ms)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let n: i64 = r.get("n");
        by_sql.insert("deploys".into(), (r.get("deploys"), None, None));
        by_sql.insert("failed".into(), (r.get("failed"), None, None));
        by_sql.insert(
            "recovery".into(),
            (
                n,
                (n >= 5).then(|| r.get("p50")),
                (n >= 5).then(|| r.get("p90")),
            ),
        );
        assert_same("SQL", &by_sql, &expected);
    }
    db.pool.close().await;

    let dir = std::env::temp_dir().join(format!("dist-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
            .args([
                "report",
                "--since",
                "2026-09-01",
                "--until",
                "2026-11-01",
                "--tz",
                "UTC",
                "--format",
                format,
            ])
            .env("DATABASE_URL", &db_url)
            .env("CATALOG_PATH", &catalog)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs the binary");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };

    // JSON.
    let report: Value = serde_json::from_str(&run("json")).expect("json");
    let cur = &report["current"];
    let dist = |v: &Value| {
        (
            v["n"].as_i64().expect("n"),
            v["p50_seconds"].as_f64(),
            v["p90_seconds"].as_f64(),
        )
    };
    let mut got = Figures::new();
    for p in cur["phases"]["phases"].as_array().expect("phases") {
        got.insert(
            format!("phase {}", p["phase"].as_str().unwrap()),
            dist(&p["distribution"]),
        );
    }
    for s in cur["severities"].as_array().expect("severities") {
        got.insert(
            format!("mttr {}", s["severity"].as_str().unwrap()),
            dist(&s["distribution"]),
        );
    }
    let cf = &cur["change_failure"];
    got.insert(
        "deploys".into(),
        (cf["deploys"].as_i64().unwrap(), None, None),
    );
    got.insert(
        "failed".into(),
        (cf["failed"].as_i64().unwrap(), None, None),
    );
    got.insert("recovery".into(), dist(&cf["recovery"]));
    assert_same("report --format json", &got, &expected);
    let rate = cf["rate"].as_f64().expect("rate");
    assert!((rate - failed as f64 / prod.len() as f64).abs() < 1e-9);

    // CSV: minutes with one decimal.
    let csv = run("csv");
    let cell = |metric: &str, group: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("current,{metric},{group},")))
            .unwrap_or_else(|| panic!("{metric} {group} in {csv}"))
            .split(',')
            .nth(3)
            .unwrap()
            .to_string()
    };
    let (n, _, p90) = expected["phase triage"];
    assert_eq!(cell("phase_n", "triage"), n.to_string());
    let csv_p90: f64 = cell("phase_p90", "triage").parse().unwrap();
    assert!((csv_p90 - p90.unwrap() / 60.0).abs() <= 0.05, "{csv_p90}");
    assert_eq!(cell("mttr_p50", "P3"), "", "not enough data");
    assert_eq!(cell("failed_deploys", "all"), failed.to_string());
    assert_eq!(
        cell("change_failure_rate", "all"),
        format!("{:.1}", failed as f64 * 100.0 / prod.len() as f64)
    );

    // Text: the counts beside the rate, the definition, and "not enough data" for the 3 P3s.
    let text = run("text");
    assert!(
        text.contains(&format!(
            "Change-failure rate: {failed} of {} production deploys ({:.1} %)",
            prod.len(),
            failed as f64 * 100.0 / prod.len() as f64
        )),
        "{text}"
    );
    assert!(
        text.contains("A failed deployment is a production deploy"),
        "{text}"
    );
    assert!(text.contains("P3 · incidents 3 (▲ 3 from 0)"), "{text}");
    assert!(text.contains("not enough data (n 3)"), "{text}");
    let triage = text
        .lines()
        .find(|l| l.starts_with("Triage"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        triage.contains(&format!("(n {n})")) && triage.contains("p90 "),
        "{triage}"
    );
}

/// Counts equal; p50/p90 within 2 ms (the report rounds to the millisecond).
fn assert_same(what: &str, got: &Figures, expected: &Figures) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (k, (n, p50, p90)) in expected {
        let (gn, g50, g90) = got[k];
        assert_eq!(gn, *n, "{what}: n of {k}");
        for (q, g, e) in [("p50", g50, p50), ("p90", g90, p90)] {
            match (g, e) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 0.002, "{what}: {k} {q} {g} vs {e}"),
                (None, None) => {}
                _ => panic!("{what}: {k} {q} {g:?} vs {e:?}"),
            }
        }
    }
}

/// The MTTR summary posted at resolution sets each phase against the same phase's p50/p90 in P2s resolved in
/// the last 90 days (history inserted as stored rows; an imported incident's phases are unknown and left out).
#[tokio::test]
async fn the_summary_sets_each_phase_against_the_same_severitys_p50_and_p90() {
    let w = World::new().await;
    let bot = w.bot().await;
    let now = w.clock.now();
    // Five P2s with triage 10, 20, 30, 40, 50 min (p50 30m, p90 40 + 0.6 × 10 = 46m), detection 5, the rest 5.
    for (n, triage) in [10i64, 20, 30, 40, 50].into_iter().enumerate() {
        let started = now - Duration::days(n as i64 + 1);
        let ack = started + Duration::minutes(5);
        let identified = ack + Duration::minutes(triage);
        let fixed = identified + Duration::minutes(5);
        let resolved = fixed + Duration::minutes(5);
        sqlx::query(
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                 started_at, declared_at, acknowledged_at, identified_at, fixed_at, resolved_at, closed_at)
             VALUES ($1, 'T0001', $2, 'old', 'P2', 'search', 'alert', 'U1', $3, $3, $4, $5, $6, $7, $7)",
        )
        .bind(format!("old-{n}"))
        .bind(100 + n as i64)
        .bind(started.timestamp_millis())
        .bind(ack.timestamp_millis())
        .bind(identified.timestamp_millis())
        .bind(fixed.timestamp_millis())
        .bind(resolved.timestamp_millis())
        .execute(&bot.state.db.pool)
        .await
        .unwrap();
    }
    // An imported P2 of 10 hours: counts for the MTTR median, not for the phases.
    let started = now - Duration::days(7);
    sqlx::query(
        "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by, source,
             started_at, declared_at, acknowledged_at, resolved_at, closed_at)
         VALUES ('imp', 'T0001', 200, 'imported', 'P2', 'search', 'unknown', 'import', 'pagerduty', $1, $1, $1, $2, $2)",
    )
    .bind(started.timestamp_millis())
    .bind((started + Duration::hours(10)).timestamp_millis())
    .execute(&bot.state.db.pool)
    .await
    .unwrap();

    let id = declare_done(&bot, "start Search slow service:search").await;
    w.clock.advance(Duration::minutes(50));
    assert_eq!(bot.click("U1", "phase_resolved", &id).await.unwrap(), 200);
    bot.wait_for_effects(&id, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    let channel = incident(&bot, &id).await.channel_id.unwrap();
    let summary = w
        .slack
        .channel_by_name(&channel)
        .expect("war room")
        .messages
        .iter()
        .filter_map(|m| m.blocks.as_ref().map(|b| b.to_string()))
        .find(|b| b.contains("Phases against"))
        .unwrap_or_else(|| panic!("{}", w.slack.render_channel(&channel)));
    assert!(
        summary.contains("*Phases against P2s of the last 90 days* (p50 · p90 · n):"),
        "{summary}"
    );
    // Resolved at once: the 50 minutes are detection; triage took 0s.
    assert!(
        summary.contains("Detection 50m · p50 5m · p90 5m (n 5) · above p90"),
        "{summary}"
    );
    assert!(
        summary.contains("Triage 0s · p50 30m · p90 46m (n 5) · at or below p50"),
        "{summary}"
    );
    // The MTTR median still counts the imported incident: 6 incidents.
    assert!(summary.contains("(6 incidents)"), "{summary}");
}
