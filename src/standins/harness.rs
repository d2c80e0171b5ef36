//! A whole bot wired to the built-in stand-ins, in this process: the Slack stand-in, the pager stand-in and
//! the real HTTP server on a free port. `incident-bot demo`, the benchmarks and the integration tests all
//! drive the bot through it, with correctly signed requests, exactly as Slack would.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{Secret, Secrets, Settings};
use crate::db::Db;
use crate::incidents::setup::{step_report, StepReport};
use crate::slack::verify::sign;
use crate::standins::pager::PagerStandin;
use crate::standins::slack::SlackStandin;
use crate::startup::Application;
use crate::state::AppState;

pub const SIGNING_SECRET: &str = "harness-signing-secret";
pub const BOT_TOKEN: &str = "xoxb-harness-token";
pub const TEAM_ID: &str = "T0001";
/// `ALERT_API_TOKEN` of the bots the harness starts.
pub const ALERT_TOKEN: &str = "harness-alert-token";
/// `DEPLOY_API_TOKEN` of the bots the harness starts.
pub const DEPLOY_TOKEN: &str = "harness-deploy-token";
/// `PAGERDUTY_WEBHOOK_SECRET` of the bots the harness starts.
pub const PAGERDUTY_WEBHOOK_SECRET: &str = "harness-pagerduty-webhook-secret";

/// The catalog shipped in `config/catalog.yaml`, as YAML, with its webhook routes pointed at the pager stand-in
/// (nothing leaves this machine).
pub fn catalog_yaml_for(pager: &PagerStandin) -> String {
    include_str!("../../config/catalog.yaml").replace(
        "https://hooks.acme.example/",
        &format!("{}/", pager.webhook_url("acme")),
    )
}

/// [`catalog_yaml_for`], parsed.
pub fn catalog_for(pager: &PagerStandin) -> Catalog {
    Catalog::parse(&catalog_yaml_for(pager)).expect("the shipped catalog parses")
}

/// Settings pointing at the stand-ins, with quick retries for tests.
pub fn settings_for(slack: &SlackStandin, pager: &PagerStandin, database_url: &str) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        ..Settings::default()
    };
    s.slack.api_url = slack.base_url();
    s.slack.call_timeout_ms = 2_000;
    s.pager.pagerduty_events_url = pager.pagerduty_events_url();
    s.pager.opsgenie_api_url = pager.opsgenie_url();
    s.pager.call_timeout_ms = 2_000;
    s.setup.backoff_base_ms = 50;
    s.setup.backoff_max_ms = 1_000;
    s.setup.lease_ms = 3_000;
    s.setup.sweep_interval_ms = 100;
    s
}

/// Secrets for the stand-ins: every variable the catalog names gets a made-up key.
pub fn secrets_for(catalog: &Catalog) -> Secrets {
    let mut s = Secrets {
        slack_bot_token: Some(Secret::new(BOT_TOKEN)),
        slack_signing_secret: Some(Secret::new(SIGNING_SECRET)),
        deploy_api_token: Some(Secret::new(DEPLOY_TOKEN)),
        github_webhook_secret: Some(Secret::new("harness-github-secret")),
        gitlab_webhook_token: Some(Secret::new("harness-gitlab-token")),
        argocd_webhook_token: Some(Secret::new("harness-argocd-token")),
        alert_api_token: Some(Secret::new(ALERT_TOKEN)),
        pagerduty_webhook_secret: Some(Secret::new(PAGERDUTY_WEBHOOK_SECRET)),
        ..Secrets::default()
    };
    for var in catalog.secret_vars() {
        s.named.insert(
            var.clone(),
            Secret::new(format!("{:0<32}", var.to_lowercase().replace('_', ""))),
        );
    }
    s
}

/// A running bot plus its stand-ins.
pub struct Harness {
    pub base_url: String,
    pub state: Arc<AppState>,
    pub slack: SlackStandin,
    pub pager: PagerStandin,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    /// Starts stand-ins and a bot on `database_url` (migrated here).
    pub async fn start(database_url: &str) -> anyhow::Result<Harness> {
        let slack = SlackStandin::start().await?;
        let pager = PagerStandin::start().await?;
        let settings = settings_for(&slack, &pager, database_url);
        Self::start_with(settings, slack, pager, Arc::new(SystemClock)).await
    }

    /// Starts a bot with the given settings against running stand-ins.
    pub async fn start_with(
        settings: Settings,
        slack: SlackStandin,
        pager: PagerStandin,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Harness> {
        let secrets = secrets_for(&catalog_for(&pager));
        Self::start_with_secrets(settings, secrets, slack, pager, clock).await
    }

    /// [`Harness::start_with`] with given secrets (e.g. without a token, to see an endpoint unconfigured).
    pub async fn start_with_secrets(
        settings: Settings,
        secrets: Secrets,
        slack: SlackStandin,
        pager: PagerStandin,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Harness> {
        let catalog = catalog_for(&pager);
        let db = Db::connect(&settings.database_url).await?;
        db.migrate().await?;
        let app = Application::build_with(settings, secrets, catalog, db, clock).await?;
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let server = tokio::spawn(async move {
            if let Err(e) = app.run_until_stopped().await {
                tracing::error!(error = %e, "harness server stopped");
            }
        });
        super::install_tls();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Harness {
            base_url,
            state,
            slack,
            pager,
            http,
            server,
        })
    }

    /// POSTs `body` to `path` signed like Slack signs it.
    pub async fn post_signed(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<reqwest::Response> {
        let ts = self.state.clock.now().timestamp();
        let sig = sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
        Ok(self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await?)
    }

    /// Types `/incident <text>` as `user` in `channel`; returns Slack's view of the reply (status, JSON or null).
    pub async fn slash_as(
        &self,
        user: &str,
        channel: &str,
        text: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let body = slash_body(user, channel, text, &self.slack.response_url());
        let resp = self
            .post_signed("/slack/commands", "application/x-www-form-urlencoded", body)
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `/incident <text>` typed by U0DECLARER in #general.
    pub async fn slash(&self, text: &str) -> anyhow::Result<(u16, Value)> {
        self.slash_as(
            "U0DECLARER",
            crate::standins::slack::GENERAL_CHANNEL_ID,
            text,
        )
        .await
    }

    /// The id of incident `number` in the harness workspace (see [`incident_id_in`]).
    pub async fn incident_id(&self, number: i64) -> anyhow::Result<String> {
        incident_id_in(&self.state.db, number).await
    }

    /// The `payload=<json>` form body of a click on button `action_id` of incident `incident_id`'s card by `user`,
    /// shaped like Slack's `block_actions` (see `tests/fixtures/slack_block_actions.json`).
    pub async fn click_body(
        &self,
        user: &str,
        action_id: &str,
        incident_id: &str,
    ) -> anyhow::Result<String> {
        let inc = crate::incidents::load(&self.state.db, incident_id)
            .await?
            .with_context(|| format!("no incident {incident_id}"))?;
        block_actions_body(
            &inc,
            user,
            action_id,
            &self.slack.response_url(),
            self.state.clock.now(),
        )
    }

    /// Clicks button `action_id` (e.g. `phase_ack`, `phase_reopen`) on incident `incident_id`'s card as `user`,
    /// signed like Slack. Returns the HTTP status of the bot's answer.
    pub async fn click(
        &self,
        user: &str,
        action_id: &str,
        incident_id: &str,
    ) -> anyhow::Result<u16> {
        let body = self.click_body(user, action_id, incident_id).await?;
        let resp = self
            .post_signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body,
            )
            .await?;
        Ok(resp.status().as_u16())
    }

    /// Waits until every Slack/pager update queued for the incident (card, timeline lines, summaries, pages) is
    /// done or failed (at most `limit`).
    pub async fn wait_for_effects(&self, incident_id: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = crate::incidents::outbox::unfinished(&self.state.db, incident_id).await?;
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{left} update(s) of {incident_id} still pending after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every setup step of the incident is done, failed or skipped (at most `limit`).
    pub async fn wait_for_setup(
        &self,
        incident_id: &str,
        limit: Duration,
    ) -> anyhow::Result<Vec<StepReport>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let steps = step_report(&self.state.db, incident_id).await?;
            if !steps.is_empty()
                && steps
                    .iter()
                    .all(|s| matches!(s.state.as_str(), "done" | "failed" | "skipped"))
            {
                return Ok(steps);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("setup not finished after {limit:?}: {steps:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The id of incident `number` in the harness workspace of `db`. A declaration is acknowledged once logged and
/// becomes an incident row a few milliseconds later (`incidents::declare`), so this waits for it, 5 s at most.
pub async fn incident_id_in(db: &Db, number: i64) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM incidents WHERE team_id = $1 AND number = $2")
                .bind(TEAM_ID)
                .bind(number)
                .fetch_optional(&db.pool)
                .await?;
        match id {
            Some(id) => return Ok(id),
            None if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("no incident {number}")
            }
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// The `payload=<json>` form body of a click on button `action_id` (e.g. `phase_ack`) of `inc`'s card by `user`,
/// shaped like Slack's `block_actions` (see `tests/fixtures/slack_block_actions.json`).
pub fn block_actions_body(
    inc: &crate::incidents::Incident,
    user: &str,
    action_id: &str,
    response_url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<String> {
    let channel = inc.channel_id.clone().unwrap_or_default();
    let ts = inc.card_ts.clone().unwrap_or_default();
    let label = crate::domain::phase::Milestone::from_action_id(action_id)
        .map(|m| m.label())
        .unwrap_or("Reopen");
    let payload = serde_json::json!({
        "type": "block_actions",
        "team": { "id": TEAM_ID, "domain": "acme" },
        "user": { "id": user, "username": user.to_lowercase(), "team_id": TEAM_ID },
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "container": { "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false },
        "trigger_id": trigger_id(),
        "channel": { "id": channel, "name": inc.channel_name.clone().unwrap_or_default() },
        "message": { "bot_id": crate::standins::slack::BOT_ID, "type": "message", "text": "incident card",
                     "user": crate::standins::slack::BOT_USER_ID, "ts": ts },
        "response_url": response_url,
        "actions": [{
            "action_id": action_id,
            "block_id": crate::slack::blocks::PHASE_ACTIONS_BLOCK,
            "text": { "type": "plain_text", "text": label, "emoji": true },
            "value": inc.id,
            "type": "button",
            "action_ts": format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros()),
        }],
    });
    Ok(serde_urlencoded::to_string([(
        "payload",
        payload.to_string(),
    )])?)
}

/// A fresh `trigger_id`, shaped like Slack's: Slack gives every command and interaction its own, so two
/// requests alike in everything else still differ (and are not taken for a replay of each other).
pub fn trigger_id() -> String {
    format!(
        "{}.738474920.{:019x}",
        fastrand::u64(10_000_000_000..100_000_000_000),
        fastrand::u64(..)
    )
}

/// The form body Slack posts for `/incident <text>` typed by `user` in `channel`.
pub fn slash_body(user: &str, channel: &str, text: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "legacy-verification-token"),
        ("team_id", TEAM_ID),
        ("team_domain", "acme"),
        ("channel_id", channel),
        ("channel_name", "general"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/incident"),
        ("text", text),
        ("api_app_id", "A0001"),
        ("response_url", response_url),
        ("trigger_id", &trigger_id()),
    ])
    .unwrap_or_default()
}

/// POSTs `body` to `url` signed like Slack signs it at Unix time `ts` with [`SIGNING_SECRET`].
pub async fn post_signed_to(
    http: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    ts: i64,
) -> reqwest::Result<reqwest::Response> {
    let sig = sign(SIGNING_SECRET.as_bytes(), ts, &body);
    http.post(url)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await
}

/// A bot process — the real binary running `serve` — against the stand-ins, killed when dropped.
/// Its stderr (the logs) is kept for assertions; `RUST_LOG` defaults to `warn` (or `BOT_RUST_LOG` when set).
pub struct BotProcess {
    pub child: std::process::Child,
    pub base_url: String,
    stderr: Arc<std::sync::Mutex<String>>,
    panics: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An empty settings file (built-in defaults under the environment), shared by every bot process.
pub fn empty_settings_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join("incident-bot-empty-settings.toml");
    if !path.exists() {
        let _ = std::fs::write(&path, "");
    }
    path
}

impl BotProcess {
    /// The `serve` command for binary `exe` against the stand-ins on `database_url`, with the catalog at
    /// `catalog_path` (write [`catalog_yaml_for`] there), quick retries and short leases, and the settings file
    /// `config` (a path that does not exist means built-in defaults: an empty settings file is named instead,
    /// since `serve` refuses a named file that is missing). Add `.env(…)` to override more.
    pub fn command(
        exe: &std::path::Path,
        database_url: &str,
        catalog_path: &std::path::Path,
        config: &std::path::Path,
        slack: &SlackStandin,
        pager: &PagerStandin,
    ) -> std::process::Command {
        let empty;
        let config = if config.exists() {
            config
        } else {
            empty = empty_settings_file();
            empty.as_path()
        };
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(config)
            .env_remove("LOG_JSON")
            .env(
                "RUST_LOG",
                std::env::var("BOT_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("DATABASE_URL", database_url)
            .env("CATALOG_PATH", catalog_path)
            .env("SLACK_API_URL", slack.base_url())
            .env("PAGERDUTY_EVENTS_URL", pager.pagerduty_events_url())
            .env("OPSGENIE_API_URL", pager.opsgenie_url())
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("DEPLOY_API_TOKEN", DEPLOY_TOKEN)
            .env("ALERT_API_TOKEN", ALERT_TOKEN)
            .env("PAGERDUTY_WEBHOOK_SECRET", PAGERDUTY_WEBHOOK_SECRET)
            .env("INCIDENT_BOT_SETUP__LEASE_MS", "1500")
            .env("INCIDENT_BOT_SETUP__SWEEP_INTERVAL_MS", "100")
            .env("INCIDENT_BOT_SETUP__BACKOFF_BASE_MS", "50")
            .env("INCIDENT_BOT_SETUP__BACKOFF_MAX_MS", "1000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (var, value) in &secrets_for(&catalog_for(pager)).named {
            cmd.env(var, value.expose());
        }
        cmd
    }

    /// Starts `cmd` (see [`BotProcess::command`]) and waits (at most `limit`) for the line with its port.
    pub async fn spawn(
        mut cmd: std::process::Command,
        limit: Duration,
    ) -> anyhow::Result<BotProcess> {
        use std::io::BufRead;
        let mut child = cmd.spawn().context("the bot binary starts")?;
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let panics = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        if let Some(pipe) = child.stderr.take() {
            let sink = stderr.clone();
            let panics = panics.clone();
            std::thread::spawn(move || {
                let mut pipe = std::io::BufReader::new(pipe);
                let mut line = Vec::new();
                while matches!(pipe.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    let text = String::from_utf8_lossy(&line);
                    if text.contains("panicked at") {
                        panics.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the tail only: a long run must not grow the test's memory without bound.
                    if s.len() > 4 << 20 {
                        let cut = s.len() - (2 << 20);
                        let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                        s.drain(..cut);
                    }
                    s.push_str(&text);
                    line.clear();
                }
            });
        }
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Drain the rest so the bot never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Some(line))) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                anyhow::bail!("the bot did not say its port within {limit:?}; stderr:\n{err}");
            }
        };
        let port: u16 = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {line:?}"))?;
        Ok(BotProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            stderr,
            panics,
        })
    }

    /// How many panics the process reported on stderr so far (each `thread '…' panicked at` line).
    pub fn panics(&self) -> usize {
        self.panics.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process logged so far (the last few MB).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resident memory now (`VmRSS`) and at its peak (`VmHWM`), in KiB, from `/proc/<pid>/status` (Linux).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        proc_memory_kib(&format!("/proc/{}/status", self.pid()))
    }

    /// Kills the process with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// `VmRSS` and `VmHWM` in KiB from a `/proc/…/status` file (`/proc/self/status` for this process).
pub fn proc_memory_kib(status_path: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
