//! `incident-bot demo`: a whole incident on an embedded SQLite database against the built-in Slack and pager
//! stand-ins, printed as the channels would show it. Needs no Slack account and no network.

use std::time::{Duration, Instant};

use chrono::Duration as Span;

use crate::deploys::{self, NewDeploy};
use crate::harness::Harness;
use crate::slack::standin::INCIDENTS_CHANNEL_ID;

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("incident-bot-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}", dir.join("demo.db").display());
    let h = Harness::start(&db_url).await?;
    h.slack.set_latency(Duration::from_millis(40));
    println!(
        "incident-bot demo — embedded database {db_url}, Slack stand-in at {}\n",
        h.slack.base_url()
    );

    let now = h.state.clock.now();
    for (service, version, author, minutes_ago) in [
        ("payments", "v2.14.0", "alice", 25),
        ("auth", "v7.2.1", "bob", 70),
        ("search", "v1.9.3", "carol", 40),
    ] {
        deploys::insert(
            &h.state.db,
            &NewDeploy {
                id: None,
                service: service.into(),
                environment: "production".into(),
                version: Some(version.into()),
                commit_sha: Some(format!("{:x}", md5ish(service))),
                url: Some(format!(
                    "https://github.com/acme/{service}/releases/tag/{version}"
                )),
                author: Some(author.into()),
                deployed_at: now - Span::minutes(minutes_ago),
                source: "demo".into(),
            },
            now,
        )
        .await?;
    }
    println!("── 3 deploys recorded (payments 25 min ago, its dependency auth 70 min ago, search 40 min ago)\n");

    let typed = "start Card payments failing at checkout sev:P1 service:payments started:-10m";
    println!("── U0DECLARER types: /incident {typed}");
    let t0 = Instant::now();
    let (status, reply) = h.slash(typed).await?;
    let ack = t0.elapsed();
    println!(
        "   HTTP {status} in {} ms, ephemeral reply: {}\n",
        ack.as_millis(),
        reply["text"].as_str().unwrap_or_default()
    );

    let id = h.incident_id(1).await?;
    let steps = h.wait_for_setup(&id, Duration::from_secs(30)).await?;
    println!(
        "── war room ready {} ms after the command (Slack answering every call after 40 ms)",
        t0.elapsed().as_millis()
    );
    for s in &steps {
        println!(
            "   {:<10} {:<8} {}",
            s.step,
            s.state,
            s.result
                .as_deref()
                .or(s.last_error.as_deref())
                .unwrap_or_default()
        );
    }
    let inc = crate::incidents::load(&h.state.db, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident vanished"))?;
    let name = inc.channel_name.clone().unwrap_or_default();
    println!("\n{}", h.slack.render_channel(&name));
    let incidents = h
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .map(|c| c.name);
    if let Some(n) = incidents {
        println!("{}", h.slack.render_channel(&n));
    }
    println!("── pages sent");
    for a in h.pager.pagerduty_alerts() {
        println!(
            "   PagerDuty alert dedup_key={} severity={} summary={:?} ({} trigger event(s))",
            a.dedup_key, a.severity, a.summary, a.trigger_count
        );
    }
    for r in h.slack.responses() {
        println!(
            "── reply to the declarer (response_url): {}",
            r.1["text"].as_str().unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A stable fake commit hash for the demo's deploys.
fn md5ish(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
