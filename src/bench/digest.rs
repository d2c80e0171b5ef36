//! `incident-bot bench digest`: building the weekly digest over a database of 100,000 stored incidents
//! (target ≤ 500 ms on SQLite, release build).
//!
//! The incidents are spread over the last `days` days (mixed severities, services of the shipped catalog,
//! detection methods, 5 % imported baseline rows, 1 % still open) with deploys to the same services. Timed, each
//! from the database to the finished Slack message:
//! (a) the weekly digest — the last 7 days against the 7 before (figures, Block Kit and the PNG chart);
//! (b) the same digest with the chart left out (the figures alone);
//! (c) a report over every stored incident — all 100,000 in the period.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use super::{percentile, sorted};
use crate::catalog::Catalog;
use crate::db::{ms, Db};
use crate::digest::stats::{Filter, Period};
use crate::digest::{chart, data, render, report};

pub struct Options {
    pub incidents: usize,
    pub days: i64,
    pub runs: usize,
    /// Default: a new SQLite file in the temp directory.
    pub database_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            incidents: 100_000,
            days: 90,
            runs: 10,
            database_url: None,
        }
    }
}

/// A digest as it is posted, timed: rows → figures → blocks (→ chart).
async fn digest_once(
    db: &Db,
    catalog: &Catalog,
    period: Period,
    now: DateTime<Utc>,
    with_chart: bool,
) -> anyhow::Result<(f64, usize)> {
    let t0 = Instant::now();
    let d = data::build(db, catalog, &Filter::default(), period, chrono_tz::UTC, now).await?;
    let heading = render::Heading {
        title: "Incident digest".into(),
        scope: String::new(),
        tz: chrono_tz::UTC,
    };
    let blocks = render::blocks(&d, &heading, "bench");
    anyhow::ensure!(!blocks.is_empty(), "no blocks");
    if with_chart {
        let png = chart::render_png(
            &d,
            &render::chart_title(&d, &heading),
            ("7 days before", "last 7 days"),
        )?;
        anyhow::ensure!(png.len() > 1000, "empty chart");
    }
    Ok((
        t0.elapsed().as_secs_f64() * 1000.0,
        d.current.incidents + d.previous.incidents,
    ))
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let (url, temp_dir) = match &opts.database_url {
        Some(u) => (u.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "incident-bot-bench-digest-{}",
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir)?;
            (
                format!("sqlite://{}", dir.join("bench.db").display()),
                Some(dir),
            )
        }
    };
    let result = measure(&url, &opts).await;
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn measure(url: &str, opts: &Options) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    db.migrate().await?;
    let catalog = Catalog::parse(include_str!("../../config/catalog.yaml"))?;
    let now = Utc::now();
    println!(
        "bench digest: {} incidents over {} days, {:?} at {url}",
        opts.incidents, opts.days, db.backend
    );
    let t0 = Instant::now();
    let deploys = seed(&db, &catalog, opts, now).await?;
    println!(
        "    seeded {} incidents and {deploys} deploys in {:.1} s",
        opts.incidents,
        t0.elapsed().as_secs_f64()
    );

    let week = Period::days_before(now, 7);
    let mut rows_in_week = 0;
    let mut full = Vec::new();
    let mut figures_only = Vec::new();
    // One untimed run to warm the page cache, as a long-running bot would have it.
    digest_once(&db, &catalog, week, now, true).await?;
    for _ in 0..opts.runs.max(1) {
        let (ms, n) = digest_once(&db, &catalog, week, now, true).await?;
        full.push(ms);
        rows_in_week = n;
        figures_only.push(digest_once(&db, &catalog, week, now, false).await?.0);
    }
    let (full, figures_only) = (sorted(full), sorted(figures_only));
    let p50 = percentile(&full, 50.0);
    println!(
        "(a) weekly digest incl. chart ({rows_in_week} incidents in the two weeks compared): p50 {p50:.1} ms, max {:.1} ms — target ≤ 500 ms: {}",
        percentile(&full, 100.0),
        if percentile(&full, 100.0) <= 500.0 { "met" } else { "MISSED" }
    );
    println!(
        "(b) weekly digest, figures and blocks only: p50 {:.1} ms, max {:.1} ms",
        percentile(&figures_only, 50.0),
        percentile(&figures_only, 100.0)
    );

    // Where the time goes, once: loading (SQL, rows, deploy flags), figures, Block Kit, chart.
    let t = Instant::now();
    let rows = data::load(&db, &catalog, &Filter::default(), week).await?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let d = crate::digest::stats::compute(&rows, week, chrono_tz::UTC, now);
    let figures_ms = t.elapsed().as_secs_f64() * 1000.0;
    let heading = render::Heading {
        title: "Incident digest".into(),
        scope: String::new(),
        tz: chrono_tz::UTC,
    };
    let t = Instant::now();
    let blocks = render::blocks(&d, &heading, "bench");
    let blocks_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let png = chart::render_png(&d, "MTTR per phase", ("7 days before", "last 7 days"))?;
    let chart_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "    of which: load {load_ms:.1} ms ({} rows) · figures {figures_ms:.1} ms · blocks {blocks_ms:.1} ms ({} blocks) · chart {chart_ms:.1} ms ({} KiB)",
        rows.len(),
        blocks.len(),
        png.len() / 1024
    );

    let everything = Period::new(
        now - Duration::days(opts.days + 1),
        now + Duration::minutes(1),
    );
    let t = Instant::now();
    let rows = data::load(&db, &catalog, &Filter::default(), everything).await?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let d = crate::digest::stats::compute(&rows, everything, chrono_tz::UTC, now);
    let months = crate::digest::stats::monthly(&rows, everything, chrono_tz::UTC);
    let figures_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(d.current.incidents == opts.incidents && !months.is_empty());
    let mut all = Vec::new();
    let mut counted = 0;
    for _ in 0..opts.runs.clamp(1, 5) {
        let t = Instant::now();
        let r = report::build(
            &db,
            &catalog,
            &Filter::default(),
            everything,
            chrono_tz::UTC,
            now,
        )
        .await?;
        let text = report::render(&r, report::Format::Text, chrono_tz::UTC);
        anyhow::ensure!(!text.is_empty());
        let png = chart::render_png(&r.digest, "MTTR per phase", ("before", "period"))?;
        anyhow::ensure!(png.len() > 1000);
        all.push(t.elapsed().as_secs_f64() * 1000.0);
        counted = r.digest.current.incidents;
    }
    let all = sorted(all);
    println!(
        "(c) report over all {counted} stored incidents incl. chart: p50 {:.1} ms, max {:.1} ms — target ≤ 500 ms: {}",
        percentile(&all, 50.0),
        percentile(&all, 100.0),
        if percentile(&all, 100.0) <= 500.0 { "met" } else { "MISSED" }
    );
    println!("    of which: load {load_ms:.1} ms · figures and monthly {figures_ms:.1} ms");
    db.pool.close().await;
    Ok(())
}

/// Stores the incidents and deploys; returns how many deploys.
async fn seed(
    db: &Db,
    catalog: &Catalog,
    opts: &Options,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let services: Vec<String> = catalog.services().iter().map(|s| s.name.clone()).collect();
    anyhow::ensure!(!services.is_empty(), "the shipped catalog has services");
    let mut rng = fastrand::Rng::with_seed(42);
    let span_ms = Duration::days(opts.days).num_milliseconds();
    let mut tx = db.pool.begin().await?;
    for n in 0..opts.incidents {
        let started = now - Duration::milliseconds(rng.i64(0..span_ms));
        let severity = match rng.u8(0..100) {
            0..=14 => "P1",
            15..=64 => "P2",
            _ => "P3",
        };
        let detection = match rng.u8(0..100) {
            0..=69 => "alert",
            70..=84 => "customer",
            _ => "engineer",
        };
        let service = &services[rng.usize(0..services.len())];
        let baseline = rng.u8(0..100) < 5;
        let open = !baseline && rng.u8(0..100) < 1;
        let mut t = started;
        let mut stamps = [None; 4];
        for (i, s) in stamps.iter_mut().enumerate() {
            if open && i >= 1 {
                break;
            }
            t += Duration::minutes(rng.i64(1..90));
            *s = Some(ms(t));
        }
        if baseline {
            stamps[1] = None;
            stamps[2] = None;
        }
        sqlx::query(
            "INSERT INTO incidents (id, team_id, number, title, severity, service, detection, declared_by,
                 started_at, declared_at, acknowledged_at, identified_at, fixed_at, resolved_at, closed_at,
                 source, external_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'UBENCH', $8, $8, $9, $10, $11, $12, $12, $13, $14)",
        )
        .bind(format!("bench-{n}"))
        .bind(if baseline { "pagerduty" } else { "TBENCH" })
        .bind(n as i64 + 1)
        .bind(format!("Benchmark incident {n}"))
        .bind(severity)
        .bind(service)
        .bind(if baseline { "unknown" } else { detection })
        .bind(ms(started))
        .bind(stamps[0])
        .bind(stamps[1])
        .bind(stamps[2])
        .bind(stamps[3])
        .bind(if baseline { "pagerduty" } else { "slack" })
        .bind(baseline.then(|| format!("PBENCH{n}")))
        .execute(&mut *tx)
        .await?;
    }
    let deploys = opts.incidents / 20;
    for n in 0..deploys {
        let at = now - Duration::milliseconds(rng.i64(0..span_ms));
        sqlx::query(
            "INSERT INTO deploys (id, service, environment, version, deployed_at, source, received_at)
             VALUES ($1, $2, 'production', $3, $4, 'bench', $4)",
        )
        .bind(format!("bench-deploy-{n}"))
        .bind(&services[rng.usize(0..services.len())])
        .bind(format!("v{n}"))
        .bind(ms(at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(deploys)
}
