//! Running the bot in production: `/metrics`, logs (JSON, incident ids, no secrets), `/readyz` while the
//! database is away, graceful shutdown on SIGTERM mid-setup, and `incident-bot check-config`.
//! Where a database is involved these run on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use incident_bot::standins::harness::{catalog_for, catalog_yaml_for, secrets_for};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{Fault, SlackStandin, INCIDENTS_CHANNEL_ID};

use crate::helpers::{spawn_app, SETUP_LIMIT};

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// The value of one series in Prometheus text, 0 when absent. Labels in the order the bot writes them.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l[prefix.len()..].trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(base_url: &str) -> String {
    incident_bot::standins::install_tls();
    let resp = reqwest::get(format!("{base_url}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.expect("body")
}

/// A bot process (the real binary) against the stand-ins.
struct BotProcess {
    child: Child,
    base_url: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BotProcess {
    fn start(
        db_url: &str,
        catalog_path: &std::path::Path,
        slack: &SlackStandin,
        pager: &PagerStandin,
        env: &[(&str, &str)],
    ) -> BotProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_incident-bot"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(incident_bot::standins::harness::empty_settings_file())
            .env_remove("LOG_JSON")
            .env_remove("RUST_LOG")
            .env("DATABASE_URL", db_url)
            .env("CATALOG_PATH", catalog_path)
            .env("SLACK_API_URL", slack.base_url())
            .env("PAGERDUTY_EVENTS_URL", pager.pagerduty_events_url())
            .env("OPSGENIE_API_URL", pager.opsgenie_url())
            .env("INCIDENT_BOT_SETUP__SWEEP_INTERVAL_MS", "100")
            .env("INCIDENT_BOT_SETUP__BACKOFF_BASE_MS", "50")
            .env("INCIDENT_BOT_SETUP__BACKOFF_MAX_MS", "500")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (var, value) in &secrets_for(&catalog_for(pager)).named {
            cmd.env(var, value.expose());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the bot binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("a line");
        let port = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "port in {line:?}; stderr: {}",
                    stderr.lock().unwrap_or_else(|e| e.into_inner())
                )
            });
        BotProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit status.
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bot did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A temp dir with the shipped catalog pointed at the pager stand-in.
fn catalog_dir(pager: &PagerStandin) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("incident-bot-ops-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("catalog.yaml");
    std::fs::write(&path, catalog_yaml_for(pager)).expect("catalog written");
    (dir, path)
}

/// POSTs a slash command signed with `secret` to a bot at `base_url`.
async fn signed_slash(
    base_url: &str,
    secret: &str,
    text: &str,
    response_url: &str,
) -> reqwest::Response {
    try_signed_slash(base_url, secret, text, response_url)
        .await
        .expect("request sent")
}

async fn try_signed_slash(
    base_url: &str,
    secret: &str,
    text: &str,
    response_url: &str,
) -> reqwest::Result<reqwest::Response> {
    incident_bot::standins::install_tls();
    let body = serde_urlencoded::to_string([
        ("team_id", "T0001"),
        ("user_id", "U0DECLARER"),
        ("channel_id", "CGENERAL"),
        ("command", "/incident"),
        ("text", text),
        ("response_url", response_url),
    ])
    .expect("form");
    let ts = chrono::Utc::now().timestamp();
    reqwest::Client::new()
        .post(format!("{base_url}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            incident_bot::slack::verify::sign(secret.as_bytes(), ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
}

async fn wait_all_done(db: &incident_bot::db::Db, id: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let steps = incident_bot::incidents::setup::step_report(db, id)
            .await
            .expect("steps");
        if !steps.is_empty() && steps.iter().all(|s| s.state == "done") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "setup finished: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn incident_one(db: &incident_bot::db::Db) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(id) = sqlx::query_scalar::<_, String>("SELECT id FROM incidents WHERE number = 1")
            .fetch_one(&db.pool)
            .await
        {
            return id;
        }
        assert!(tokio::time::Instant::now() < deadline, "incident 1 stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_commands_slack_calls_429s_retries_and_step_latency() {
    let app = spawn_app().await;
    let before = scrape(&app.base_url).await;
    for family in [
        "incident_bot_slash_commands_total",
        "incident_bot_slack_api_calls_total",
        "incident_bot_slack_rate_limited_total",
        "incident_bot_setup_step_duration_seconds",
        "incident_bot_setup_step_retries_total",
        "incident_bot_phase_duration_seconds",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "{family} is declared"
        );
    }

    // The topic is rate limited once (then retried), the bookmarks fail once with a Slack error.
    app.slack.fail_next(
        "conversations.setTopic",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    app.slack
        .fail_next("bookmarks.add", Fault::error("internal_error"));
    let (status, _) = app
        .slash("start Checkout is down sev:P1 service:payments")
        .await
        .expect("slash");
    assert_eq!(status, 200);
    let id = app.incident_id(1).await.expect("incident");
    app.wait_for_setup(&id, SETUP_LIMIT).await.expect("setup");
    let (status, _) = app.slash("frobnicate everything").await.expect("slash");
    assert_eq!(status, 200);
    let refused = app
        .http
        .post(format!("{}/slack/commands", app.base_url))
        .header("x-slack-request-timestamp", "1")
        .header("x-slack-signature", "v0=00")
        .body("text=start")
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status().as_u16(), 401);
    incident_bot::observability::observe_phase("ops-test-detection", 90.0);

    let after = scrape(&app.base_url).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert!(
        delta(
            "incident_bot_slash_commands_total",
            &[("subcommand", "start"), ("result", "ok")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_slash_commands_total",
            &[("subcommand", "unknown"), ("result", "usage")]
        ) >= 1.0
    );
    assert!(delta("incident_bot_slack_requests_refused_total", &[]) >= 1.0);
    assert!(
        delta(
            "incident_bot_slack_api_calls_total",
            &[("method", "conversations.create"), ("result", "ok")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_slack_api_calls_total",
            &[
                ("method", "conversations.setTopic"),
                ("result", "ratelimited")
            ]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_slack_rate_limited_total",
            &[("method", "conversations.setTopic")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_slack_api_calls_total",
            &[("method", "bookmarks.add"), ("result", "internal_error")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_setup_step_retries_total",
            &[("step", "topic")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_setup_step_duration_seconds_count",
            &[("step", "topic"), ("outcome", "retry")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_setup_step_duration_seconds_count",
            &[("step", "channel"), ("outcome", "done")]
        ) >= 1.0
    );
    assert!(
        delta(
            "incident_bot_slack_api_call_duration_seconds_count",
            &[("method", "chat.postMessage")]
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &after,
            "incident_bot_phase_duration_seconds_bucket",
            &[("phase", "ops-test-detection"), ("le", "120")]
        ),
        1.0
    );
    // Free text typed by users never becomes a label.
    assert!(!after.contains("frobnicate"));
}

// ---------------------------------------------------------------------------------------------------------
// /readyz
// ---------------------------------------------------------------------------------------------------------

async fn readyz(base_url: &str) -> (u16, String) {
    incident_bot::standins::install_tls();
    let resp = reqwest::get(format!("{base_url}/readyz"))
        .await
        .expect("GET /readyz");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn wait_ready(base_url: &str, want: u16, limit: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let got = readyz(base_url).await;
        if got.0 == want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_unreachable_and_recovers_after() {
    let app = spawn_app().await;
    assert_eq!(readyz(&app.base_url).await, (200, "ready".to_string()));
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.base_url))
            .await
            .expect("healthz")
            .status()
            .as_u16(),
        200
    );
    if app.db_url.starts_with("postgres") {
        // The database stops taking connections and its sessions are cut, as in a failover or restart.
        let name = app.db_url.rsplit('/').next().expect("db name").to_string();
        let admin_url = std::env::var("TEST_DATABASE_URL").expect("postgres test url");
        let admin = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
        )))
        .execute(&admin)
        .await
        .expect("disallow connections");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE datname = '{name}'"
        )))
        .fetch_all(&admin)
        .await
        .expect("terminate sessions");
        let started = std::time::Instant::now();
        let (status, why) = wait_ready(&app.base_url, 503, Duration::from_secs(10)).await;
        assert_eq!(status, 503, "{why}");
        assert!(why.starts_with("database"), "{why}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "answered within the readiness deadline"
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
        )))
        .execute(&admin)
        .await
        .expect("allow connections");
        admin.close().await;
    } else {
        // The SQLite file goes away (volume unmounted, file deleted), then comes back.
        let path = app
            .db_url
            .strip_prefix("sqlite://")
            .expect("sqlite url")
            .to_string();
        let moved = format!("{path}.away");
        std::fs::rename(&path, &moved).expect("move the database file away");
        let (status, why) = readyz(&app.base_url).await;
        assert_eq!((status, why.as_str()), (503, "database file missing"));
        std::fs::rename(&moved, &path).expect("put it back");
    }
    let (status, why) = wait_ready(&app.base_url, 200, Duration::from_secs(15)).await;
    assert_eq!(status, 200, "ready again once the database is back: {why}");
}

// ---------------------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------------------

/// The real binary for the shutdown tests, signing secret `ops-shutdown-signing-secret`, logging at info.
fn shutdown_bot(
    db_url: &str,
    catalog_path: &std::path::Path,
    slack: &SlackStandin,
    pager: &PagerStandin,
) -> BotProcess {
    BotProcess::start(
        db_url,
        catalog_path,
        slack,
        pager,
        &[
            ("SLACK_BOT_TOKEN", "xoxb-ops-shutdown"),
            ("SLACK_SIGNING_SECRET", "ops-shutdown-signing-secret"),
            ("RUST_LOG", "info"),
        ],
    )
}

#[tokio::test]
async fn sigterm_mid_setup_stops_taking_requests_and_finishes_the_war_room_before_exiting() {
    let slack = SlackStandin::start().await.expect("slack");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = crate::helpers::fresh_database_url().await;
    let (dir, catalog_path) = catalog_dir(&pager);
    // Slack is slow: every call takes 100 ms, and the card takes 1.5 s more.
    slack.set_latency(Duration::from_millis(100));
    slack.fail_next(
        "chat.postMessage",
        Fault::Delay(Duration::from_millis(1500)),
    );
    let mut bot = shutdown_bot(&db_url, &catalog_path, &slack, &pager);
    let resp = signed_slash(
        &bot.base_url,
        "ops-shutdown-signing-secret",
        "start Payments down sev:P1 service:payments",
        &slack.response_url(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);

    // SIGTERM while the slow card post is in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while slack.count("chat.postMessage") < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "setup reached the card"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bot.sigterm();

    // New connections are refused while the process is still finishing the war room.
    let addr = bot.base_url.trim_start_matches("http://").to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        assert!(
            bot.child.try_wait().expect("try_wait").is_none(),
            "still running while the card is in flight"
        );
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stopped accepting connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let status = bot.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "clean exit: {status:?}\n{}", bot.stderr());

    // Everything was done by the process that got SIGTERM: no restart happened.
    let db = incident_bot::db::Db::connect(&db_url).await.expect("db");
    let id = incident_one(&db).await;
    let steps = incident_bot::incidents::setup::step_report(&db, &id)
        .await
        .expect("steps");
    assert!(
        steps.iter().all(|s| s.state == "done"),
        "every step done before exit: {steps:?}\n{}",
        bot.stderr()
    );
    let chans: Vec<_> = slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-1"))
        .collect();
    assert_eq!(chans.len(), 1);
    assert_eq!(chans[0].pins.len(), 1, "the card was posted and pinned");
    let announced = slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .map(|c| c.messages.len())
        .unwrap_or_default();
    assert_eq!(announced, 1, "announced");
    assert_eq!(pager.pagerduty_alerts().len(), 1, "paged");
    assert!(bot.stderr().contains("stopped cleanly"), "{}", bot.stderr());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigterm_as_declarations_are_acknowledged_still_stores_and_sets_up_every_one_before_exiting(
) {
    let slack = SlackStandin::start().await.expect("slack");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = crate::helpers::fresh_database_url().await;
    let (dir, catalog_path) = catalog_dir(&pager);
    let mut bot = shutdown_bot(&db_url, &catalog_path, &slack, &pager);
    // Ten declarations at once; SIGTERM as soon as the first is acknowledged, while the others are being
    // answered and before their incidents are stored (they wait until the burst has been answered). A request
    // the server had not yet read when the signal came is refused (its connection closed): it was never
    // acknowledged, and must leave nothing behind.
    let mut sent: futures::stream::FuturesUnordered<_> = (0..10)
        .map(|i| {
            let base_url = bot.base_url.clone();
            let response_url = slack.response_url();
            async move {
                try_signed_slash(
                    &base_url,
                    "ops-shutdown-signing-secret",
                    &format!("start Outage {i}"),
                    &response_url,
                )
                .await
            }
        })
        .collect();
    let first = futures::StreamExt::next(&mut sent)
        .await
        .expect("an answer")
        .expect("the first declaration is answered");
    assert_eq!(first.status().as_u16(), 200);
    bot.sigterm();
    let mut acknowledged = vec![first.json::<serde_json::Value>().await.expect("JSON")];
    while let Some(answer) = futures::StreamExt::next(&mut sent).await {
        if let Ok(resp) = answer {
            assert_eq!(resp.status().as_u16(), 200, "a request read is answered");
            acknowledged.push(resp.json().await.expect("JSON"));
        }
    }
    let status = bot.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "clean exit: {status:?}\n{}", bot.stderr());

    // Every acknowledged declaration is an incident whose war room was set up by this process before it exited,
    // and nothing else was stored.
    let db = incident_bot::db::Db::connect(&db_url).await.expect("db");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(stored, acknowledged.len() as i64, "{acknowledged:?}");
    for reply in &acknowledged {
        let number = crate::helpers::declared_number(reply);
        let id = incident_bot::standins::harness::incident_id_in(&db, number)
            .await
            .expect("stored");
        let steps = incident_bot::incidents::setup::step_report(&db, &id)
            .await
            .expect("steps");
        assert!(
            steps.iter().all(|s| s.state == "done"),
            "INC-{number}: every step done before exit: {steps:?}\n{}",
            bot.stderr()
        );
    }
    let rooms = slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .count();
    assert_eq!(rooms, acknowledged.len());
    assert!(bot.stderr().contains("stopped cleanly"), "{}", bot.stderr());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn json_logs_carry_the_incident_id_and_never_a_secret() {
    let slack = SlackStandin::start().await.expect("slack");
    let pager = PagerStandin::start().await.expect("pager");
    let db_url = crate::helpers::fresh_database_url().await;
    let (dir, catalog_path) = catalog_dir(&pager);
    let bot_token = "xoxb-ops-logs-7d41c0b2e9f3";
    let signing = "ops-logs-signing-secret-5a9e1f";
    let deploy = "ops-logs-deploy-token-c3b8d2";
    let github = "ops-logs-github-secret-0f6a4e";
    let app_token = "xapp-1-A0001-ops-logs-9b3e7c";
    let routing_keys: Vec<String> = secrets_for(&catalog_for(&pager))
        .named
        .values()
        .map(|s| s.expose().to_string())
        .collect();
    assert!(!routing_keys.is_empty());

    // Failures that get logged: a rate limit, a Slack error, a pager that answers 500 once.
    slack.fail_next(
        "conversations.setTopic",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    slack.fail_next("bookmarks.add", Fault::error("internal_error"));
    pager.fail_next("pagerduty", Fault::Status(500));
    let mut bot = BotProcess::start(
        &db_url,
        &catalog_path,
        &slack,
        &pager,
        &[
            ("SLACK_BOT_TOKEN", bot_token),
            ("SLACK_SIGNING_SECRET", signing),
            ("DEPLOY_API_TOKEN", deploy),
            ("GITHUB_WEBHOOK_SECRET", github),
            ("SLACK_APP_TOKEN", app_token),
            ("LOG_JSON", "1"),
            ("RUST_LOG", "trace"),
        ],
    );
    let mut bodies = Vec::new();
    let resp = signed_slash(
        &bot.base_url,
        signing,
        "start Payments down sev:P1 service:payments",
        &slack.response_url(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    bodies.push(resp.text().await.unwrap_or_default());
    // Refused and malformed requests, whose error replies must not echo a secret either.
    let resp = signed_slash(&bot.base_url, "wrong-secret", "list", "").await;
    assert_eq!(resp.status().as_u16(), 401);
    bodies.push(resp.text().await.unwrap_or_default());
    let ts = chrono::Utc::now().timestamp();
    let body = format!("token={bot_token}&text=%ZZ");
    let resp = reqwest::Client::new()
        .post(format!("{}/slack/commands", bot.base_url))
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            incident_bot::slack::verify::sign(signing.as_bytes(), ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    bodies.push(resp.text().await.unwrap_or_default());

    let db = incident_bot::db::Db::connect(&db_url).await.expect("db");
    let id = incident_one(&db).await;
    wait_all_done(&db, &id, Duration::from_secs(30)).await;
    // Socket Mode ran with the app token too.
    assert!(
        slack
            .socket_mode()
            .wait_for_connections(1, Duration::from_secs(10))
            .await
    );
    bot.sigterm();
    let status = bot.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success());
    let logs = bot.stderr();

    let mut secrets: Vec<String> = vec![
        bot_token.into(),
        signing.into(),
        deploy.into(),
        github.into(),
        app_token.into(),
    ];
    secrets.extend(routing_keys);
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret is in the logs");
        for b in &bodies {
            assert!(
                !b.contains(s.as_str()),
                "a secret is in an error reply: {b}"
            );
        }
    }

    // Every line is JSON; every line from the setup of the incident carries its id.
    let mut about_setup = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        let msg = v["fields"]["message"].as_str().unwrap_or_default();
        let in_setup = target.starts_with("incident_bot::incidents::steps")
            || target.starts_with("incident_bot::pager")
            || (target.starts_with("incident_bot::incidents::setup")
                && msg != "setup sweep failed");
        if in_setup {
            about_setup += 1;
            assert!(line.contains(&id), "no incident id on: {line}");
        }
    }
    assert!(about_setup >= 10, "setup was logged ({about_setup} lines)");
    // The retried step and the failed call are among them, with their cause.
    assert!(logs.contains("step will be retried"));
    assert!(logs.contains("ratelimited") || logs.contains("rate limited"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------------------------------------

pub(crate) fn check_config(dir: &std::path::Path, toml: &str, catalog: &str) -> (i32, String) {
    let config = dir.join("bot.toml");
    std::fs::write(
        &config,
        toml.replace("CATALOG", &dir.join("catalog.yaml").display().to_string()),
    )
    .expect("config written");
    std::fs::write(dir.join("catalog.yaml"), catalog).expect("catalog written");
    let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env_remove("SLACK_APP_TOKEN")
        .env_remove("INCIDENT_BOT_INCIDENTS__DEFAULT_TIMEZONE")
        .env_remove("CATALOG_PATH")
        .env("SLACK_BOT_TOKEN", "xoxb-check")
        .env("SLACK_SIGNING_SECRET", "check-signing")
        .env("PD_SET_KEY", "abc123456789")
        .output()
        .expect("check-config runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

pub(crate) const GOOD_CATALOG: &str = "---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  links:
    - url: https://runbooks.example/payments
      title: Runbook
      type: runbook
    - url: https://grafana.example/payments
      title: Dashboard
      type: dashboard
  annotations:
    incident-bot/slack-owners: U0OWNER01
    incident-bot/pager: pagerduty:PD_SET_KEY
spec:
  owner: team-payments
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: search
  annotations:
    incident-bot/pager: pagerduty:PD_UNSET_KEY_FOR_TEST
spec:
  owner: team-discovery
";

#[test]
fn check_config_names_file_line_and_key_of_each_mistake_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("incident-bot-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let toml = r#"listen = "0.0.0.0:3000"
catalog_path = "CATALOG"

[slack]
broadcast_chanel = "incidents"
broadcast_channel = "Incident Room"

[setup]
max_attempts = "eight"

[incidents]
default_timezone = "Mars/Olympus_Mons"
"#;
    let (code, out) = check_config(&dir, toml, GOOD_CATALOG);
    assert_ne!(code, 0, "{out}");
    let file = dir.join("bot.toml").display().to_string();
    let catalog = dir.join("catalog.yaml").display().to_string();
    for expected in [
        format!("{file}:5: error: slack.broadcast_chanel: unknown key"),
        "did you mean `broadcast_channel`".to_string(),
        format!("{file}:6: error: slack.broadcast_channel: \"Incident Room\" is not a Slack channel name"),
        format!("{file}:9: error: setup.max_attempts: invalid type"),
        format!("{file}:12: error: incidents.default_timezone: \"Mars/Olympus_Mons\" is not an IANA time zone"),
        format!(
            "{catalog}:24: warning: metadata.annotations.incident-bot/pager: PD_UNSET_KEY_FOR_TEST is not set"
        ),
        "4 errors, 1 warning".to_string(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    // The coverage table comes with it: search has no runbook, dashboard or owner.
    assert!(
        out.contains("service   runbook  dashboard  owner  pager"),
        "{out}"
    );
    assert!(
        out.contains("search    ✗        ✗          ✗      ✓"),
        "{out}"
    );
    assert!(out.contains("1 of 2 services has coverage gaps"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_reports_catalog_errors_with_line_and_key() {
    let dir = std::env::temp_dir().join(format!("incident-bot-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let catalog = "---\nkind: Component\nmetadata:\n  name: payments\n---\nkind: Component\nmetadata:\n  name: payments\n";
    let (code, out) = check_config(&dir, "catalog_path = \"CATALOG\"\n", catalog);
    assert_ne!(code, 0, "{out}");
    let path = dir.join("catalog.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{path}:6: error: metadata.name: duplicate service name \"payments\""
        )),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_passes_a_good_configuration_with_its_coverage_table() {
    let dir = std::env::temp_dir().join(format!("incident-bot-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let toml = "catalog_path = \"CATALOG\"\n[slack]\nbroadcast_channel = \"#incidents\"\n[incidents]\ndefault_timezone = \"Europe/Berlin\"\n";
    let (code, out) = check_config(&dir, toml, GOOD_CATALOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 errors"), "{out}");
    assert!(
        out.contains("payments  ✓        ✓          ✓      ✓"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
