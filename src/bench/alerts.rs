//! `incident-bot bench alerts`: an alert storm against the real bot (HTTP server, worker, outbox) and the Slack
//! stand-in, on a new SQLite file (or a fresh PostgreSQL database with `--database-url`).
//!
//! `--alerts` firing alerts (default 10,000) for three catalog services, sent as Alertmanager webhooks of
//! `--per-request` alerts each (default 10, one group per service and request), `--concurrency` requests in
//! flight. Printed: alerts accepted per second (target ≥ 2,000/s on SQLite), the acknowledgement (202)
//! latency p50/p99 under the storm, the time until every alert was processed, incidents made (target ≤ 3),
//! card edits, and the Slack calls made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{percentile, sorted};
use crate::clock::SystemClock;
use crate::standins::harness::{settings_for, Harness, ALERT_TOKEN};
use crate::standins::pager::PagerStandin;
use crate::standins::slack::SlackStandin;

pub struct Options {
    pub alerts: usize,
    pub per_request: usize,
    pub concurrency: usize,
    /// `None`: a new SQLite file. `postgres://…`: a fresh database on that server.
    pub database_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alerts: 10_000,
            per_request: 10,
            concurrency: 32,
            database_url: None,
        }
    }
}

const SERVICES: [&str; 3] = ["payments", "checkout", "search"];

/// Request `n`'s Alertmanager body: `per` alerts of one service's group.
fn body(n: usize, per: usize, started: chrono::DateTime<chrono::Utc>) -> String {
    let service = SERVICES[n % SERVICES.len()];
    let alerts: Vec<_> = (0..per)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": { "alertname": "HighErrorRate", "service": service, "severity": "critical",
                            "instance": format!("{service}-{n}-{i}:9090") },
                "annotations": { "summary": format!("{service}: 5xx above 5%") },
                "startsAt": started.to_rfc3339(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("http://prometheus.example.com:9090/graph?g0.expr=up&n={n}"),
                "fingerprint": format!("{n:06}{i:04}"),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"HighErrorRate\", service=\"{service}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-bot",
        "groupLabels": { "alertname": "HighErrorRate", "service": service },
        "commonLabels": { "alertname": "HighErrorRate", "service": service, "severity": "critical" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts,
    })
    .to_string()
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::standins::install_tls();
    let slack = SlackStandin::start().await?;
    let pager = PagerStandin::start().await?;
    let (url, cleanup) = match &opts.database_url {
        Some(u) if u.starts_with("postgres") => {
            let (url, name) = super::deploys::fresh_postgres(u).await?;
            (url, Some((u.clone(), name)))
        }
        _ => {
            let dir = std::env::temp_dir().join("incident-bot-bench");
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("alerts-{}.db", uuid::Uuid::new_v4()));
            (format!("sqlite://{}", path.display()), None)
        }
    };
    let settings = settings_for(&slack, &pager, &url);
    let h = Arc::new(
        Harness::start_with(
            settings,
            slack.clone(),
            pager.clone(),
            Arc::new(SystemClock),
        )
        .await?,
    );
    let requests = opts.alerts.div_ceil(opts.per_request.max(1));
    let per = opts.per_request.max(1);
    let started_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    let bodies: Vec<String> = (0..requests).map(|n| body(n, per, started_at)).collect();
    println!(
        "bench alerts: {} alerts in {requests} Alertmanager webhooks of {per}, {} in flight, {}",
        requests * per,
        opts.concurrency,
        if cleanup.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let begin = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let bodies = Arc::new(bodies);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (h, next, bodies) = (h.clone(), next.clone(), bodies.clone());
        workers.spawn(async move {
            let mut lat = Vec::new();
            let mut refused = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(b) = bodies.get(n) else { break };
                let t = Instant::now();
                let r = h
                    .http
                    .post(format!("{}/api/v1/alerts/alertmanager", h.base_url))
                    .bearer_auth(ALERT_TOKEN)
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()
                    .await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if !matches!(&r, Ok(r) if r.status().as_u16() == 202) {
                    refused += 1;
                }
            }
            (lat, refused)
        });
    }
    let mut latencies = Vec::new();
    let mut refused = 0;
    while let Some(r) = workers.join_next().await {
        let (l, f) = r?;
        latencies.extend(l);
        refused += f;
    }
    let sent_in = begin.elapsed();
    let lat = sorted(latencies);
    // Until every alert is processed.
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE state IN ('pending', 'running')")
                .fetch_one(&h.state.db.pool)
                .await?;
        if left == 0 {
            break;
        }
        if begin.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("{left} alerts still unprocessed after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let processed_in = begin.elapsed();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM incidents")
        .fetch_all(&h.state.db.pool)
        .await?;
    for id in &ids {
        let _ = h.wait_for_setup(id, Duration::from_secs(60)).await;
        let _ = h.wait_for_effects(id, Duration::from_secs(60)).await;
    }
    let settled_in = begin.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
        .fetch_one(&h.state.db.pool)
        .await?;
    let card_edits: u32 = slack
        .channels()
        .iter()
        .flat_map(|c| {
            c.messages
                .iter()
                .filter(|m| c.pins.contains(&m.ts))
                .map(|m| m.edited)
        })
        .sum();
    let calls = slack.calls();
    let mut by_method: std::collections::BTreeMap<String, usize> = Default::default();
    for c in &calls {
        *by_method.entry(c.method.clone()).or_default() += 1;
    }
    println!(
        "  accepted:        {:.0} alerts/s ({stored} stored, {refused} requests refused) in {:.2} s",
        stored as f64 / sent_in.as_secs_f64(),
        sent_in.as_secs_f64()
    );
    println!(
        "  202 latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 100.0)
    );
    println!(
        "  processed:       every alert after {:.2} s; war rooms and cards settled after {:.2} s",
        processed_in.as_secs_f64(),
        settled_in.as_secs_f64()
    );
    println!("  incidents made:  {} (target ≤ 3)", ids.len());
    println!(
        "  card edits:      {card_edits} (at most one per incident every {} ms)",
        h.state.settings.alerts.card_min_interval_ms
    );
    println!(
        "  Slack calls:     {} ({})",
        calls.len(),
        by_method
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(h);
    if let Some((server, name)) = cleanup {
        super::deploys::drop_postgres(&server, &name).await;
    }
    Ok(())
}
