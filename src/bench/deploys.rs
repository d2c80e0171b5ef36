//! `incident-bot bench deploys`: the deploy store at scale.
//!
//! 1. Loads N deploy events (default 1,000,000) across 500 services spread over the last 365 days (85 %
//!    production), with multi-row inserts in transactions ([`crate::deploys::insert_batch`]).
//! 2. Times the "recent production deploys to X and its dependencies" lookup ([`crate::deploys::recent`], the
//!    query behind the incident card, deploy questions, MTTR summary and digest): a random service with its 3
//!    dependencies, a 2-hour window ending at a random instant. Target p99 ≤ 2 ms.
//! 3. Starts the real bot on the same database and, through its HTTP API, times batch ingestion
//!    (`POST /api/v1/deploys` with 500 events per request; target ≥ 5,000 events/s) of live events (deployed
//!    in the last hour, as CI reports them) and of a backfill (times spread over the year: every insert lands on
//!    a cold index page), and single-event POSTs of live events (target p99 ≤ 5 ms).
//!
//! SQLite by default (a new file under the temp dir); `--database-url postgres://…/db` runs on a **fresh**
//! database created on that server (and dropped afterwards).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;

use super::{percentile, sorted};
use crate::catalog::Catalog;
use crate::clock::SystemClock;
use crate::db::Db;
use crate::deploys::{self, NewDeploy};
use crate::standins::harness::{settings_for, Harness};
use crate::standins::pager::PagerStandin;
use crate::standins::slack::SlackStandin;

pub struct Options {
    /// Deploy events to load.
    pub events: usize,
    /// `None`: a new SQLite file. `postgres://…`: a fresh database on that server.
    pub database_url: Option<String>,
    /// Lookups to time.
    pub lookups: usize,
    /// Events sent through the API in batches.
    pub api_events: usize,
    /// Single-event POSTs to time.
    pub posts: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events: 1_000_000,
            database_url: None,
            lookups: 5_000,
            api_events: 50_000,
            posts: 2_000,
        }
    }
}

const SERVICES: usize = 500;
const DEPENDENCIES: [usize; 3] = [1, 7, 31];
const SPAN_DAYS: i64 = 365;
const API_BATCH: usize = 500;
const YEAR_MS: i64 = SPAN_DAYS * 86_400_000;
/// Events as CI reports them: deployed within the last hour.
const LIVE_MS: i64 = 3_600_000;

fn service_name(i: usize) -> String {
    format!("svc-{:03}", i % SERVICES)
}

/// 500 services, each depending on three others.
fn catalog() -> anyhow::Result<Catalog> {
    let mut yaml = String::new();
    for i in 0..SERVICES {
        yaml.push_str(&format!(
            "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {}\nspec:\n  owner: group:team-{}\n  dependsOn:\n",
            service_name(i),
            i % 40
        ));
        for d in DEPENDENCIES {
            yaml.push_str(&format!("    - component:{}\n", service_name(i + d)));
        }
    }
    Ok(Catalog::parse(&yaml)?)
}

/// A random deploy `n`, deployed at a random instant of the `span_ms` before `now`.
fn random_deploy(rng: &mut fastrand::Rng, now: DateTime<Utc>, n: usize, span_ms: i64) -> NewDeploy {
    let service = service_name(rng.usize(..SERVICES));
    let ago_ms = rng.i64(0..span_ms);
    let sha: String = (0..40)
        .map(|_| char::from_digit(rng.u32(..16), 16).unwrap_or('0'))
        .collect();
    NewDeploy {
        id: Some(format!("bench-{n}")),
        environment: if rng.u8(..100) < 85 {
            "production".into()
        } else {
            "staging".into()
        },
        version: Some(format!(
            "v{}.{}.{}",
            rng.u8(..10),
            rng.u8(..50),
            rng.u16(..500)
        )),
        url: Some(format!("https://ci.example/{service}/runs/{n}")),
        author: Some(format!("dev{}", rng.u8(..200))),
        commit_sha: Some(sha),
        deployed_at: now - Span::milliseconds(ago_ms),
        source: "bench".into(),
        service,
    }
}

/// Creates a fresh database on the PostgreSQL server of `url`; returns its URL and name.
pub(crate) async fn fresh_postgres(url: &str) -> anyhow::Result<(String, String)> {
    sqlx::any::install_default_drivers();
    let name = format!("incident_bot_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| "cannot connect to the PostgreSQL server")?;
    // The name is made here from a UUID: nothing from outside reaches the statement.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .context("cannot create the bench database")?;
    admin.close().await;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

pub(crate) async fn drop_postgres(url: &str, name: &str) {
    let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(url).await else {
        return;
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    admin.close().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗ MISSED"
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let mut pg = None;
    let mut temp_dir = None;
    let db_url = match opts.database_url.as_deref() {
        Some(url) if url.starts_with("postgres") => {
            let (fresh, name) = fresh_postgres(url).await?;
            pg = Some((url.to_string(), name));
            fresh
        }
        Some(url) => url.to_string(),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "incident-bot-bench-deploys-{}",
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}", dir.join("deploys.db").display());
            temp_dir = Some(dir);
            url
        }
    };
    let result = bench(&opts, &db_url).await;
    if let Some((url, name)) = pg {
        drop_postgres(&url, &name).await;
    }
    if let Some(dir) = temp_dir {
        // About 300 MB for a million deploys: not left behind.
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn bench(opts: &Options, db_url: &str) -> anyhow::Result<()> {
    let db = Db::connect(db_url).await?;
    db.migrate().await?;
    println!(
        "bench deploys: {:?} at {}",
        db.backend,
        db_url.split('@').next_back().unwrap_or(db_url)
    );
    let catalog = catalog()?;
    let now = Utc::now();
    let mut rng = fastrand::Rng::with_seed(5);

    // 1. Load.
    let t0 = Instant::now();
    let chunk = 10_000;
    let mut loaded = 0;
    while loaded < opts.events {
        let n = chunk.min(opts.events - loaded);
        let batch: Vec<NewDeploy> = (loaded..loaded + n)
            .map(|i| random_deploy(&mut rng, now, i, YEAR_MS))
            .collect();
        deploys::insert_batch(&db, &batch, now).await?;
        loaded += n;
    }
    let load = t0.elapsed();
    println!(
        "load: {} events across {SERVICES} services over {SPAN_DAYS} days in {:.1} s ({:.0} events/s, multi-row inserts, {chunk} per transaction)",
        opts.events,
        load.as_secs_f64(),
        opts.events as f64 / load.as_secs_f64()
    );
    if db.backend == crate::db::Backend::Postgres {
        sqlx::query("ANALYZE deploys").execute(&db.pool).await?;
    }

    // 2. Lookups: a service and its dependencies, 2 h before a random instant.
    let mut samples = Vec::with_capacity(opts.lookups);
    let mut found = 0usize;
    for i in 0..opts.lookups + opts.lookups / 10 {
        let svc = service_name(rng.usize(..SERVICES));
        let mut names = vec![svc.clone()];
        names.extend(catalog.dependency_names(&svc));
        let until = now - Span::milliseconds(rng.i64(0..SPAN_DAYS * 86_400_000));
        let t = Instant::now();
        let got = deploys::recent(&db, &names, until - Span::hours(2), until, 10).await?;
        let took = t.elapsed();
        if i >= opts.lookups / 10 {
            samples.push(ms(took));
            found += got.len();
        }
    }
    let s = sorted(samples);
    let p99 = percentile(&s, 99.0);
    println!(
        "lookup \"recent deploys to X and its 3 dependencies, 2 h window\": {} lookups, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {:.2} deploys found on average   (target p99 ≤ 2 ms) {}",
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 90.0),
        p99,
        percentile(&s, 100.0),
        found as f64 / s.len().max(1) as f64,
        verdict(p99 <= 2.0)
    );
    db.pool.close().await;

    // 3. Through the real HTTP API.
    let slack = SlackStandin::start().await?;
    let pager = PagerStandin::start().await?;
    let settings = settings_for(&slack, &pager, db_url);
    let h = Harness::start_with(settings, slack, pager, std::sync::Arc::new(SystemClock)).await?;
    let token = h
        .state
        .secrets
        .deploy_api_token
        .as_ref()
        .map(|t| t.expose().to_string())
        .unwrap_or_default();
    let url = format!("{}/api/v1/deploys", h.base_url);
    let event_json = |d: &NewDeploy| -> Value {
        json!({
            "id": d.id, "service": d.service, "environment": d.environment, "version": d.version,
            "commit_sha": d.commit_sha, "url": d.url, "author": d.author,
            "deployed_at": d.deployed_at.to_rfc3339(), "source": "bench-api",
        })
    };
    // Bodies are built before timing: the figure is the bot's, not the generator's.
    let mut n = opts.events;
    for (what, span_ms) in [
        ("live events (deployed in the last hour)", LIVE_MS),
        ("backfill (deployed at random over the year)", YEAR_MS),
    ] {
        let bodies: Vec<String> = (0..opts.api_events.div_ceil(API_BATCH))
            .map(|_| {
                let events: Vec<Value> = (0..API_BATCH)
                    .map(|_| {
                        n += 1;
                        event_json(&random_deploy(&mut rng, now, n, span_ms))
                    })
                    .collect();
                json!({ "deploys": events }).to_string()
            })
            .collect();
        let t0 = Instant::now();
        let mut sent = 0;
        for body in &bodies {
            let r = h
                .http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(
                r.status().as_u16() == 201,
                "batch POST answered {}",
                r.status()
            );
            sent += API_BATCH;
        }
        let took = t0.elapsed();
        let rate = sent as f64 / took.as_secs_f64();
        println!(
            "batch ingestion via POST /api/v1/deploys, {what}: {sent} events in {} requests of {API_BATCH}, {:.2} s, {:.0} events/s   (target ≥ 5,000 events/s) {}",
            bodies.len(),
            took.as_secs_f64(),
            rate,
            verdict(rate >= 5_000.0)
        );
    }

    let singles: Vec<String> = (0..opts.posts + opts.posts / 10)
        .map(|_| {
            n += 1;
            event_json(&random_deploy(&mut rng, now, n, LIVE_MS)).to_string()
        })
        .collect();
    let mut samples = Vec::with_capacity(opts.posts);
    for (i, body) in singles.iter().enumerate() {
        let t = Instant::now();
        let r = h
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = r.status().as_u16();
        let _ = r.bytes().await?;
        let took = t.elapsed();
        anyhow::ensure!(status == 201, "single POST answered {status}");
        if i >= opts.posts / 10 {
            samples.push(ms(took));
        }
    }
    let s = sorted(samples);
    let p99 = percentile(&s, 99.0);
    println!(
        "single POST /api/v1/deploys (one live event, client round trip): {} requests, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms   (target p99 ≤ 5 ms) {}",
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 90.0),
        p99,
        percentile(&s, 99.9),
        percentile(&s, 100.0),
        verdict(p99 <= 5.0)
    );
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deploys")
        .fetch_one(&h.state.db.pool)
        .await?;
    println!("stored deploys at the end: {total}");
    h.state.db.pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_catalog_gives_every_service_three_dependencies() {
        let c = catalog().unwrap();
        assert_eq!(c.services().len(), SERVICES);
        assert_eq!(
            c.dependency_names("svc-499"),
            vec!["svc-000", "svc-006", "svc-030"]
        );
    }
}
