//! `incident-bot bench warroom`: how fast `/incident start` is acknowledged and how fast the war room stands,
//! with the Slack stand-in answering every call after a fixed latency (100 ms by default).
//!
//! (a) acknowledgement latency p50/p99 with N commands in flight at once;
//! (b) command → card posted (Slack has answered the card's `chat.postMessage`);
//! (c) command → every setup step done.
//! A bot calling Slack one step after another would need about 8 round trips for (c).

use std::time::{Duration, Instant};

use super::{percentile, sorted};
use crate::harness::Harness;

pub struct Options {
    pub commands: usize,
    pub latency: Duration,
    pub runs: usize,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("incident-bot-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}", dir.join("bench.db").display());
    let h = Harness::start(&db_url).await?;
    h.slack.set_latency(opts.latency);
    h.pager.set_latency(opts.latency);
    // The bot learns who it is and where the broadcast channel is once, at start; do it before measuring.
    h.state.warm_up().await;
    let rtt = opts.latency.as_secs_f64() * 1000.0;
    println!("bench warroom: Slack and pager stand-ins answer every call after {rtt:.0} ms; SQLite at {db_url}");

    // Reference: the same burst of `/incident help`, which touches no database — the HTTP floor on this machine.
    // The first burst also opens the keep-alive connections, as Slack's would be open.
    let help: Vec<String> = vec!["help".to_string(); opts.commands];
    burst(&h, &help).await?;
    let floor = burst(&h, &help).await?;
    println!(
        "    reference: `/incident help`, {} in flight (no database): p50 {:.2} ms, p99 {:.2} ms",
        opts.commands,
        percentile(&floor, 50.0),
        percentile(&floor, 99.0)
    );

    // (a) N commands in flight at once.
    let texts: Vec<String> = (0..opts.commands)
        .map(|i| format!("start Load test outage {i} sev:P2 service:search"))
        .collect();
    let acks = burst(&h, &texts).await?;
    println!(
        "(a) acknowledgement, {} commands in flight: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (target p99 ≤ 10 ms)",
        opts.commands,
        percentile(&acks, 50.0),
        percentile(&acks, 99.0),
        percentile(&acks, 100.0)
    );
    // Let the load's war rooms finish before timing single incidents.
    for n in 1..=opts.commands as i64 {
        h.wait_for_setup(&h.incident_id(n).await?, Duration::from_secs(120))
            .await?;
    }

    // (b) and (c), one incident at a time.
    let mut card = Vec::new();
    let mut all = Vec::new();
    for i in 0..opts.runs {
        let number = (opts.commands + i + 1) as i64;
        let t0 = Instant::now();
        let (status, _) = h
            .slash(&format!("start Timed outage {i} sev:P1 service:payments"))
            .await?;
        anyhow::ensure!(status == 200, "HTTP {status}");
        let id = h.incident_id(number).await?;
        let mut card_at = None;
        loop {
            let card_ts: Option<String> =
                sqlx::query_scalar("SELECT card_ts FROM incidents WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&h.state.db.pool)
                    .await?;
            if card_at.is_none() && card_ts.is_some() {
                card_at = Some(t0.elapsed());
            }
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM setup_steps WHERE incident_id = $1 AND state NOT IN ('done', 'failed', 'skipped')",
            )
            .bind(&id)
            .fetch_one(&h.state.db.pool)
            .await?;
            if open == 0 {
                all.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        card.push(card_at.unwrap_or_default().as_secs_f64() * 1000.0);
    }
    let (card, all) = (sorted(card), sorted(all));
    println!(
        "(b) command → card posted: p50 {:.0} ms, max {:.0} ms = {:.2} round trips   (target ≤ 2 round trips + 50 ms = {:.0} ms)",
        percentile(&card, 50.0),
        percentile(&card, 100.0),
        percentile(&card, 50.0) / rtt,
        2.0 * rtt + 50.0
    );
    println!(
        "(c) command → every step done: p50 {:.0} ms, max {:.0} ms = {:.2} round trips   (target ≤ 3 round trips + 50 ms = {:.0} ms; sequential ≈ 8 round trips)",
        percentile(&all, 50.0),
        percentile(&all, 100.0),
        percentile(&all, 50.0) / rtt,
        3.0 * rtt + 50.0
    );
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Sends every command at once; returns each one's time to its answer, in ms, sorted.
async fn burst(h: &Harness, texts: &[String]) -> anyhow::Result<Vec<f64>> {
    let times = futures::future::join_all(texts.iter().map(|t| async {
        let t0 = Instant::now();
        let (status, _) = h.slash(t).await?;
        anyhow::ensure!(status == 200, "HTTP {status}");
        Ok::<f64, anyhow::Error>(t0.elapsed().as_secs_f64() * 1000.0)
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(sorted(times))
}
