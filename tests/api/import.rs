//! `incident-bot import pagerduty` against the fake PagerDuty REST API in the pager stand-in, and
//! `incident-bot report` over what it stored — through the real binary and through the library.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use incident_bot::catalog::Catalog;
use incident_bot::db::Db;
use incident_bot::import::pagerduty::{self, Options};
use incident_bot::import::LineProgress;
use incident_bot::standins::pager::{FakeIncident, PagerStandin, RestFault};
use serde_json::Value;
use sqlx::Row;

use crate::helpers::{fresh_database_url, spawn_app};

const TOKEN: &str = "y_NbAkKc66ryYTWUXYEu";

fn fake(
    n: i64,
    service: &str,
    created: DateTime<Utc>,
    ack_min: Option<i64>,
    resolve_min: Option<i64>,
) -> FakeIncident {
    FakeIncident {
        id: format!("PINC{n:04}"),
        number: n,
        title: format!("Imported outage {n}"),
        service_id: format!("PSVC{}", service.len()),
        service_name: service.into(),
        priority: (n % 3 == 0).then(|| "P1".to_string()),
        urgency: "high".into(),
        created_at: created,
        acknowledged_at: ack_min.map(|m| created + chrono::Duration::minutes(m)),
        resolved_at: resolve_min.map(|m| created + chrono::Duration::minutes(m)),
    }
}

/// 120 resolved incidents over the last 20 days (two pages of 100) and one still open.
fn seed(pager: &PagerStandin) -> chrono::DateTime<Utc> {
    let rest = pager.pagerduty_rest();
    rest.set_token(TOKEN);
    let now = Utc::now();
    for n in 1..=120 {
        let created = now - chrono::Duration::hours(4 * n);
        let ack = (n % 2 == 0).then_some(5);
        rest.add_incident(fake(
            n,
            if n % 4 == 0 {
                "payments"
            } else {
                "Legacy Mail"
            },
            created,
            ack,
            Some(60),
        ));
    }
    rest.add_incident(fake(
        500,
        "payments",
        now - chrono::Duration::hours(1),
        Some(2),
        None,
    ));
    now
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn import_stores_resolved_incidents_with_known_phases_only_and_is_safe_to_run_twice() {
    let pager = PagerStandin::start().await.expect("pager");
    let now = seed(&pager);
    pager
        .pagerduty_rest()
        .fail_next(RestFault::RateLimited { reset_secs: 1 });
    let db = Db::connect(&fresh_database_url().await).await.expect("db");
    db.migrate().await.expect("migrate");
    let catalog = Catalog::parse(include_str!("../../config/catalog.yaml")).expect("catalog");
    let opts = Options::new(
        &pager.pagerduty_api_url(),
        TOKEN,
        now - chrono::Duration::days(30),
        now,
    );

    let mut lines = LineProgress::new(Vec::new());
    let first = pagerduty::run(&db, &catalog, opts.clone(), &mut lines)
        .await
        .expect("import");
    assert_eq!((first.seen, first.inserted, first.updated), (120, 120, 0));
    assert_eq!(first.rate_limited, 1);
    let out = String::from_utf8(lines.into_inner()).expect("utf-8");
    assert!(
        out.contains("rate limited by PagerDuty; waiting 1 s"),
        "{out}"
    );
    assert!(out.contains("imported 120/120 incidents"), "{out}");

    // Requests: authenticated, versioned, paginated, resolved only.
    let reqs = pager.pagerduty_rest().requests();
    assert_eq!(reqs[0].status, 429);
    let lists: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/incidents" && r.status == 200)
        .collect();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[1].param("offset"), Some("100"));
    assert_eq!(lists[0].param("statuses[]"), Some("resolved"));
    assert!(reqs.iter().all(|r| r
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Token token={TOKEN}"))));
    assert!(reqs.iter().all(|r| r
        .headers
        .iter()
        .any(|(k, v)| k == "accept" && v == "application/vnd.pagerduty+json;version=2")));
    assert_eq!(
        reqs.iter()
            .filter(|r| r.path.ends_with("/log_entries"))
            .count(),
        120
    );

    // Stored as baseline: identified and fixed unknown (NULL), acknowledged only when PagerDuty has it.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM incidents WHERE source = 'pagerduty'"
        )
        .await,
        120
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM incidents WHERE identified_at IS NOT NULL OR fixed_at IS NOT NULL").await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM incidents WHERE acknowledged_at IS NOT NULL"
        )
        .await,
        60
    );
    let row = sqlx::query(
        "SELECT service, severity, detection, started_at, acknowledged_at, resolved_at FROM incidents WHERE external_id = 'PINC0012'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("row");
    assert_eq!(
        row.get::<String, _>("service"),
        "payments",
        "mapped to the catalog by name"
    );
    assert_eq!(row.get::<String, _>("severity"), "P1", "priority P1");
    assert_eq!(row.get::<String, _>("detection"), "unknown");
    let started: i64 = row.get("started_at");
    assert_eq!(
        row.get::<Option<i64>, _>("acknowledged_at"),
        Some(started + 5 * 60_000)
    );
    assert_eq!(row.get::<i64, _>("resolved_at"), started + 60 * 60_000);

    // Again: nothing new, nothing doubled.
    let second = pagerduty::run(&db, &catalog, opts, &mut pagerduty::Quiet)
        .await
        .expect("import again");
    assert_eq!((second.inserted, second.updated), (0, 120));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM incidents").await, 120);
}

#[tokio::test]
async fn a_wrong_token_is_reported_not_retried() {
    let pager = PagerStandin::start().await.expect("pager");
    let now = seed(&pager);
    let db = Db::connect(&fresh_database_url().await).await.expect("db");
    db.migrate().await.expect("migrate");
    let opts = Options::new(
        &pager.pagerduty_api_url(),
        "wrong",
        now - chrono::Duration::days(30),
        now,
    );
    let err = pagerduty::run(&db, &Catalog::empty(), opts, &mut pagerduty::Quiet)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("PAGERDUTY_API_TOKEN"), "{err}");
    assert_eq!(pager.pagerduty_rest().requests().len(), 1);
}

#[tokio::test]
async fn imported_incidents_feed_the_digest_with_their_unknown_phases_shown() {
    let app = spawn_app().await;
    let now = seed(&app.pager);
    let catalog = Catalog::parse(include_str!("../../config/catalog.yaml")).expect("catalog");
    let opts = Options::new(
        &app.pager.pagerduty_api_url(),
        TOKEN,
        now - chrono::Duration::days(6),
        now,
    );
    let s = pagerduty::run(&app.state.db, &catalog, opts, &mut pagerduty::Quiet)
        .await
        .expect("import");
    assert_eq!(s.inserted, 36, "incidents created in the last 6 days");
    app.slash("digest").await.expect("slash");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.slack.uploaded_files().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            app.slack.render_channel("general")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = app.slack.render_channel("general");
    assert!(text.contains("Incidents:* 36 (▲ 36 from 0)"), "{text}");
    assert!(
        text.contains("36 imported incident(s) have unknown triage"),
        "{text}"
    );
    assert!(text.contains("unknown (imported) 36"), "{text}");
    assert!(text.contains("mean 1h 00m"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_with_progress_lines_and_reports_in_every_format() {
    let pager = PagerStandin::start().await.expect("pager");
    seed(&pager);
    let db_url = fresh_database_url().await;
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
            .args(args)
            .env("DATABASE_URL", &db_url)
            .env("PAGERDUTY_API_URL", pager.pagerduty_api_url())
            .env("PAGERDUTY_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run the binary");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // The stand-in answers from another worker thread while this one waits for the process.
    let out = run(&["import", "pagerduty", "--since", "30d"]);
    assert!(
        out.contains("found 120 incidents to import so far"),
        "{out}"
    );
    assert!(out.contains("imported 120/120 incidents"), "{out}");
    assert!(
        out.contains("120 PagerDuty incidents: 120 new, 0 updated, 0 skipped"),
        "{out}"
    );

    let json: Value = serde_json::from_str(&run(&["report", "--since", "30d", "--format", "json"]))
        .expect("json report");
    assert_eq!(json["current"]["incidents"], 120);
    assert_eq!(json["current"]["mttr"]["median_seconds"], 3600);
    assert_eq!(json["monthly"][0]["severities"][0]["severity"], "P1");
    let p1 = run(&[
        "report",
        "--since",
        "30d",
        "--severity",
        "P1",
        "--service",
        "payments",
        "--format",
        "json",
    ]);
    let p1: Value = serde_json::from_str(&p1).expect("json");
    assert_eq!(
        p1["current"]["incidents"], 10,
        "P1s (every third) of payments (every fourth)"
    );
    let csv = run(&["report", "--since", "30d", "--format", "csv"]);
    assert!(csv.starts_with("period,metric,group,value,unit\n"), "{csv}");
    assert!(
        csv.contains("current,mttr_median,all,60.0,minutes\n"),
        "{csv}"
    );
    let text = run(&["report", "--since", "30d"]);
    assert!(
        text.contains("Monthly MTTR, all severities and per severity"),
        "{text}"
    );
}

#[test]
fn an_unreachable_api_is_reported_within_seconds_naming_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let dir = std::env::temp_dir().join(format!("incident-bot-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args(["import", "pagerduty", "--since", "30d"])
        .current_dir(&dir)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("bot.db").display()),
        )
        .env("PAGERDUTY_API_URL", format!("http://127.0.0.1:{port}"))
        .env("PAGERDUTY_API_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "cannot reach the PagerDuty API at http://127.0.0.1:{port}: "
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        !text.contains("retrying"),
        "a refused connection is not retried: {text}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}
