//! `incident-bot bench warroom`: how fast `/incident start` is acknowledged and how fast the war room stands,
//! with the Slack stand-in answering every call after a fixed latency (100 ms by default).
//!
//! (a) acknowledgement latency p50/p90/p99 with N commands in flight at once (200, then 20, by default), pooled
//!     over several bursts after a warm-up burst (printed, not counted), next to the same bursts of
//!     `/incident help` (no database) as the floor of this machine; Slack's side is a raw, pre-signed load
//!     generator in another process ([`SlackLoad`], the hidden `bench slack-load` subcommand of this binary);
//! (b) command → card posted (Slack has answered the card's `chat.postMessage`);
//! (c) command → every setup step done.
//! A bot calling Slack one step after another would need about 8 round trips for (c).
//!
//! Next to (a) it prints the CPU time the bot's threads and the load generator spent per burst (Linux): on a small
//! machine the sum over the cores is what bounds the p99.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::{percentile, sorted};
use crate::slack::verify::sign;
use crate::standins::harness::{slash_body, Harness, SIGNING_SECRET};

pub struct Options {
    /// Commands in flight at once for (a), one figure each.
    pub commands: Vec<usize>,
    pub latency: Duration,
    pub runs: usize,
    pub bursts: usize,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("incident-bot-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}", dir.join("bench.db").display());
    let h = Harness::start(&db_url).await?;
    h.slack.set_latency(opts.latency);
    h.pager.set_latency(opts.latency);
    // The bot learns who it is and where the broadcast channel is once, at start; do it before measuring.
    crate::startup::warm_up(&h.state).await;
    let rtt = opts.latency.as_secs_f64() * 1000.0;
    println!("bench warroom: Slack and pager stand-ins answer every call after {rtt:.0} ms; SQLite at {db_url}");

    // Slack's side, in another process, with a connection for each command of the largest burst.
    let most = opts.commands.iter().copied().max().unwrap_or(0);
    let mut load = SlackLoad::spawn(&h.base_url, &h.slack.response_url(), most).await?;
    let mut declared = 0;
    for &n in &opts.commands {
        // Reference: the same burst of `/incident help`, which touches no database — the HTTP floor on this
        // machine. The first burst warms the keep-alive connections, as Slack's would be warm.
        let help: Vec<String> = vec!["help".to_string(); n];
        load.burst(help.clone(), "Usage").await?;
        let (floor, floor_cpu) = load.burst(help, "Usage").await?;
        println!(
            "    reference: `/incident help`, {n} in flight (no database): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&floor, 50.0),
            percentile(&floor, 99.0)
        );
        print_cpu("`/incident help`", &floor_cpu, 1);

        // (a) n commands in flight at once, several times: each burst's war rooms are set up before the next.
        // Burst 0 warms the bot's side as the help bursts warmed Slack's: the bot's pooled connections to Slack
        // (a burst of war rooms opens one per call in flight) and the database's pages. It is printed, not
        // counted.
        let mut acks = Vec::new();
        let mut burst_p99 = Vec::new();
        let mut cpu: BTreeMap<String, u64> = BTreeMap::new();
        for burst in 0..=opts.bursts {
            let texts: Vec<String> = (0..n)
                .map(|i| format!("start Load test outage {n}-{burst}-{i} sev:P2 service:search"))
                .collect();
            let (times, burst_cpu) = load.burst(texts, "Declaring").await?;
            if burst == 0 {
                println!(
                    "    warm-up burst (not counted): p50 {:.2} ms, p99 {:.2} ms",
                    percentile(&times, 50.0),
                    percentile(&times, 99.0)
                );
            } else {
                for (thread, us) in burst_cpu {
                    *cpu.entry(thread).or_default() += us;
                }
                burst_p99.push(percentile(&times, 99.0));
                acks.extend(times);
            }
            for _ in 0..n {
                declared += 1;
                h.wait_for_setup(&h.incident_id(declared).await?, Duration::from_secs(120))
                    .await?;
            }
        }
        let acks = sorted(acks);
        let target = match n {
            20 => "   (target p99 ≤ 20 ms)",
            200 => "   (target p99 ≤ 100 ms)",
            _ => "",
        };
        println!(
            "(a) acknowledgement, {n} commands in flight, {} bursts: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms{target}",
            opts.bursts,
            percentile(&acks, 50.0),
            percentile(&acks, 90.0),
            percentile(&acks, 99.0),
            percentile(&acks, 100.0)
        );
        println!(
            "    p99 of each burst, in order: {}",
            burst_p99
                .iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        print_cpu("`/incident start`", &cpu, opts.bursts);
    }
    load.stop().await;

    // (b) and (c), one incident at a time.
    let mut card = Vec::new();
    let mut all = Vec::new();
    for i in 0..opts.runs {
        let number = declared + 1 + i as i64;
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

/// Slack's side of a burst of slash commands, in another process (`incident-bot bench slack-load`, see
/// [`serve_load`]) and kept as cheap as this machine allows, so that the figure is the bot's own and not the load
/// generator's: each command goes on its own keep-alive connection, opened (and used once) beforehand as Slack's
/// would be; every request is built and signed before the clock starts; requests are written and responses read
/// as raw HTTP/1.1.
struct SlackLoad {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// One burst, as the load generator reads it on its standard input (one JSON line).
#[derive(Serialize, Deserialize)]
struct BurstJob {
    texts: Vec<String>,
    /// What every answer must contain.
    expect: String,
}

/// What the load generator answers for a burst (one JSON line): each command's time in ms and the CPU time
/// (µs) the generator spent, or why the burst failed.
#[derive(Serialize, Deserialize)]
struct BurstDone {
    times: Vec<f64>,
    cpu_us: u64,
    error: Option<String>,
}

/// The name the load generator's CPU time is reported under.
const LOAD: &str = "slack-load";

impl SlackLoad {
    /// Starts the load generator with `n` connections to the bot at `base_url` (`http://host:port`).
    async fn spawn(base_url: &str, response_url: &str, n: usize) -> anyhow::Result<SlackLoad> {
        let addr = base_url.trim_start_matches("http://");
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench", "slack-load", "--addr", addr, "--response-url"])
            .arg(response_url)
            .args(["--connections", &n.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = stdout.next_line().await?;
        anyhow::ensure!(
            ready.as_deref() == Some("ready"),
            "the load generator did not start: {ready:?}"
        );
        Ok(SlackLoad {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends `/incident <text>` for each text at once, one per connection. Returns each command's time from its
    /// first byte sent to its whole answer read, in ms, sorted, and the CPU time (µs) each thread of this
    /// process and the load generator spent meanwhile ([`thread_cpu`]); fails unless every answer is a 200 that
    /// contains `expect`.
    async fn burst(
        &mut self,
        texts: Vec<String>,
        expect: &str,
    ) -> anyhow::Result<(Vec<f64>, BTreeMap<String, u64>)> {
        let mut job = serde_json::to_vec(&BurstJob {
            texts,
            expect: expect.to_string(),
        })?;
        job.push(b'\n');
        let before = thread_cpu();
        self.stdin.write_all(&job).await?;
        self.stdin.flush().await?;
        let line = self
            .stdout
            .next_line()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the load generator has stopped"))?;
        let after = thread_cpu();
        let done: BurstDone = serde_json::from_str(&line)?;
        if let Some(e) = done.error {
            anyhow::bail!("{e}");
        }
        let mut cpu: BTreeMap<String, u64> = after
            .into_iter()
            .map(|(thread, us)| {
                let spent = us.saturating_sub(before.get(&thread).copied().unwrap_or(0));
                (thread, spent)
            })
            .collect();
        cpu.insert(LOAD.to_string(), done.cpu_us);
        Ok((sorted(done.times), cpu))
    }

    /// Ends the load generator (its input closes).
    async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait().await;
    }
}

/// `incident-bot bench slack-load`: the load generator of [`SlackLoad`]. Opens `connections` connections to the
/// bot at `addr`, says `ready`, then runs each burst read on its standard input and answers on its standard
/// output, until its input closes.
pub async fn serve_load(addr: &str, response_url: &str, connections: usize) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = addr.parse()?;
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        conns.push(s);
    }
    let mut out = tokio::io::stdout();
    out.write_all(b"ready\n").await?;
    out.flush().await?;
    let mut jobs = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = jobs.next_line().await? {
        let job: BurstJob = serde_json::from_str(&line)?;
        let requests: Vec<Vec<u8>> = job
            .texts
            .iter()
            .map(|t| slash_request(addr, response_url, t))
            .collect();
        let before = thread_cpu().values().sum::<u64>();
        let times = burst(&mut conns, requests, &job.expect).await;
        let cpu_us = thread_cpu().values().sum::<u64>().saturating_sub(before);
        let done = match times {
            Ok(times) => BurstDone {
                times,
                cpu_us,
                error: None,
            },
            Err(e) => BurstDone {
                times: Vec::new(),
                cpu_us,
                error: Some(e.to_string()),
            },
        };
        let mut line = serde_json::to_vec(&done)?;
        line.push(b'\n');
        out.write_all(&line).await?;
        out.flush().await?;
    }
    Ok(())
}

async fn burst(
    conns: &mut [tokio::net::TcpStream],
    requests: Vec<Vec<u8>>,
    expect: &str,
) -> anyhow::Result<Vec<f64>> {
    anyhow::ensure!(
        requests.len() <= conns.len(),
        "more commands than connections"
    );
    futures::future::join_all(
        conns
            .iter_mut()
            .zip(requests)
            .map(|(conn, request)| async move {
                let t0 = Instant::now();
                conn.write_all(&request).await?;
                let (status, body) = read_response(conn).await?;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                anyhow::ensure!(
                    status == 200 && body.contains(expect),
                    "HTTP {status}: {body}"
                );
                Ok::<f64, anyhow::Error>(ms)
            }),
    )
    .await
    .into_iter()
    .collect()
}

/// The raw, signed HTTP request Slack would send for `/incident <text>`.
fn slash_request(addr: std::net::SocketAddr, response_url: &str, text: &str) -> Vec<u8> {
    let body = slash_body(
        "U0DECLARER",
        crate::standins::slack::GENERAL_CHANNEL_ID,
        text,
        response_url,
    );
    let ts = chrono::Utc::now().timestamp();
    let signature = sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
    format!(
        "POST /slack/commands HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         x-slack-request-timestamp: {ts}\r\nx-slack-signature: {signature}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 response with a `content-length`; returns its status and body.
async fn read_response(conn: &mut tokio::net::TcpStream) -> anyhow::Result<(u16, String)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no status line in {head:?}"))?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or_else(|| anyhow::anyhow!("no content-length in {head:?}"))?;
            while buf.len() < end + 4 + length {
                let n = conn.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
            return Ok((status, body));
        }
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// CPU time (µs) spent so far by this process's threads, summed by thread name, from
/// `/proc/self/task/*/schedstat` (Linux). Empty where that does not exist.
fn thread_cpu() -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        *by_name.entry(name.trim().to_string()).or_default() += ns / 1000;
    }
    by_name
}

/// Prints the CPU time per burst of each busy thread, named for what it does.
fn print_cpu(what: &str, cpu: &BTreeMap<String, u64>, bursts: usize) {
    if cpu.is_empty() {
        return;
    }
    let role = |thread: &str| match thread {
        "tokio-rt-worker" => "bot runtime (HTTP, handlers)",
        "sqlx-sqlite-wor" => "SQLite connection",
        LOAD => "Slack's side (load generator, another process)",
        _ => "other",
    };
    let mut by_role: BTreeMap<&str, u64> = BTreeMap::new();
    for (thread, us) in cpu {
        *by_role.entry(role(thread)).or_default() += us;
    }
    let per_burst = |us: u64| us as f64 / bursts.max(1) as f64 / 1000.0;
    let total: u64 = by_role.values().sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "    CPU per burst of {what}: {:.1} ms in all on {cores} cores — {}",
        per_burst(total),
        by_role
            .iter()
            .filter(|(_, us)| per_burst(**us) >= 0.05)
            .map(|(role, us)| format!("{role} {:.1} ms", per_burst(*us)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
