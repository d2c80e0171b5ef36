//! `incident-bot bench resources`: what the bot costs to run. The bench starts the Slack and pager stand-ins in
//! its own process, then runs this very binary (`std::env::current_exe()`) as `serve` against them, the way a
//! deployment runs it, and reads the child's memory from `/proc/<pid>/status` (Linux):
//!
//! - start to `/readyz` answering 200, on a fresh SQLite file (every migration applied) and on an already
//!   migrated one (target ≤ 300 ms);
//! - idle RSS once started and warmed up (target ≤ 30 MB);
//! - RSS while 200 slash commands arrive at once and their war rooms are set up against a Slack answering each
//!   call after 100 ms (peak `VmHWM`, target ≤ 60 MB);
//! - the size of the binary.
//!
//! Build with `--release` first: a debug binary is several times larger and slower.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{percentile, sorted};
use crate::standins::harness::{catalog_yaml_for, post_signed_to, slash_body, BotProcess};
use crate::standins::pager::PagerStandin;
use crate::standins::slack::{SlackStandin, GENERAL_CHANNEL_ID, INCIDENTS_CHANNEL_ID};

/// What to measure.
pub struct Options {
    /// Slash commands sent at once for the RSS-under-load figure.
    pub commands: usize,
    /// How long the Slack and pager stand-ins take to answer each call.
    pub latency: Duration,
    /// Starts timed per case (fresh file, migrated file).
    pub runs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            commands: 200,
            latency: Duration::from_millis(100),
            runs: 5,
        }
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// Everything a `serve` child needs, shared by every start.
struct Rig {
    exe: PathBuf,
    dir: PathBuf,
    catalog: PathBuf,
    slack: SlackStandin,
    pager: PagerStandin,
    http: reqwest::Client,
}

impl Rig {
    fn database(&self, name: &str) -> String {
        format!("sqlite://{}", self.dir.join(name).display())
    }

    /// Starts `serve` on `db_url` and waits for `/readyz`; the bot and how long that took.
    async fn start(&self, db_url: &str) -> anyhow::Result<(BotProcess, Duration)> {
        let mut cmd = BotProcess::command(
            &self.exe,
            db_url,
            &self.catalog,
            &self.dir.join("no-settings-file.toml"),
            &self.slack,
            &self.pager,
        );
        // The production log level, into a pipe the bench drains.
        cmd.env("RUST_LOG", "info,sqlx=warn,tower_http=info");
        let t0 = Instant::now();
        let bot = BotProcess::spawn(cmd, Duration::from_secs(30)).await?;
        let url = format!("{}/readyz", bot.base_url);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok((bot, t0.elapsed()));
                }
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "/readyz never answered 200"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / MB
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗ over target"
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let dir = std::env::temp_dir().join(format!("incident-bot-bench-res-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let slack = SlackStandin::start().await?;
    let pager = PagerStandin::start().await?;
    let catalog = dir.join("catalog.yaml");
    std::fs::write(&catalog, catalog_yaml_for(&pager))?;
    let rig = Rig {
        exe: exe.clone(),
        dir: dir.clone(),
        catalog,
        slack,
        pager,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
    };
    let result = measure(&rig, &opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(rig: &Rig, opts: &Options) -> anyhow::Result<()> {
    let size = std::fs::metadata(&rig.exe)?.len();
    println!(
        "bench resources: {} ({:.1} MB{}), `serve` on SQLite against the stand-ins",
        rig.exe.display(),
        size as f64 / MB,
        if cfg!(debug_assertions) {
            ", DEBUG build — build with --release for real figures"
        } else {
            ""
        }
    );

    // Start to /readyz: fresh files (every migration runs), then the same files again (nothing to migrate).
    let mut fresh = Vec::new();
    let mut migrated = Vec::new();
    for run in 0..opts.runs.max(1) {
        let db = rig.database(&format!("start-{run}.db"));
        let (bot, took) = rig.start(&db).await?;
        fresh.push(took.as_secs_f64() * 1000.0);
        drop(bot);
        let (bot, took) = rig.start(&db).await?;
        migrated.push(took.as_secs_f64() * 1000.0);
        drop(bot);
    }
    let (fresh, migrated) = (sorted(fresh), sorted(migrated));
    let worst = fresh.last().copied().unwrap_or(f64::NAN);
    println!(
        "(a) start → /readyz 200, fresh SQLite file (migrations applied): median {:.0} ms, max {:.0} ms   (target ≤ 300 ms) {}",
        percentile(&fresh, 50.0),
        worst,
        verdict(worst <= 300.0)
    );
    let worst_m = migrated.last().copied().unwrap_or(f64::NAN);
    println!(
        "    start → /readyz 200, already migrated file: median {:.0} ms, max {:.0} ms   {}",
        percentile(&migrated, 50.0),
        worst_m,
        verdict(worst_m <= 300.0)
    );

    // Idle: started, warmed up (auth.test, the broadcast channel looked up), workers ticking.
    let db = rig.database("load.db");
    let (mut bot, _) = rig.start(&db).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = bot
        .memory_kib()
        .context("no /proc/<pid>/status (Linux only)")?;
    let threads = threads(bot.pid());
    println!(
        "(b) idle RSS after start: {:.1} MB ({threads} threads)   (target ≤ 30 MB) {}",
        mb(idle),
        verdict(mb(idle) <= 30.0)
    );

    // Load: N slash commands at once, then their war rooms set up against a slow Slack.
    rig.slack.set_latency(opts.latency);
    rig.pager.set_latency(opts.latency);
    let announced_before = announcements(&rig.slack);
    let response_url = rig.slack.response_url();
    let url = format!("{}/slack/commands", bot.base_url);
    let t0 = Instant::now();
    let sampler = {
        let pid = bot.pid();
        tokio::spawn(async move {
            let mut peak = 0u64;
            let path = format!("/proc/{pid}/status");
            while let Some((rss, _)) = crate::standins::harness::proc_memory_kib(&path) {
                peak = peak.max(rss);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let statuses = futures::future::join_all((0..opts.commands).map(|i| {
        let body = slash_body(
            "U0DECLARER",
            GENERAL_CHANNEL_ID,
            &format!("start Load test outage {i} sev:P2 service:payments"),
            &response_url,
        );
        let http = &rig.http;
        let url = &url;
        async move {
            post_signed_to(
                http,
                url,
                "application/x-www-form-urlencoded",
                body.into_bytes(),
                chrono::Utc::now().timestamp(),
            )
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
        }
    }))
    .await;
    let acked = t0.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    anyhow::ensure!(
        ok == opts.commands,
        "only {ok} of {} commands were acknowledged",
        opts.commands
    );
    let (after_burst, _) = bot.memory_kib().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while announcements(&rig.slack) < announced_before + opts.commands {
        anyhow::ensure!(
            Instant::now() < deadline,
            "war rooms not set up within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rooms_done = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (settled, hwm) = bot.memory_kib().unwrap_or_default();
    let _ = bot.kill();
    let sampled_peak = sampler.await.unwrap_or_default();
    let peak = hwm.max(sampled_peak);
    println!(
        "(c) {} commands at once (Slack answering in {} ms): all acknowledged in {:.0} ms, war rooms announced after {:.1} s",
        opts.commands,
        opts.latency.as_millis(),
        acked.as_secs_f64() * 1000.0,
        rooms_done.as_secs_f64()
    );
    println!(
        "    RSS: {:.1} MB after the burst, peak {:.1} MB (VmHWM), {:.1} MB once the war rooms stood   (target ≤ 60 MB) {}",
        mb(after_burst),
        mb(peak),
        mb(settled),
        verdict(mb(peak) <= 60.0)
    );
    println!(
        "(d) binary size: {:.1} MB ({} bytes)",
        size_of(&rig.exe) as f64 / MB,
        size_of(&rig.exe)
    );
    Ok(())
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Announcements posted in #incidents (one per war room).
fn announcements(slack: &SlackStandin) -> usize {
    slack
        .channel_by_name(INCIDENTS_CHANNEL_ID)
        .map(|c| c.messages.len())
        .unwrap_or(0)
}

/// The `Threads:` line of `/proc/<pid>/status`.
fn threads(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}
