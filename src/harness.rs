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
use crate::pager::standin::PagerStandin;
use crate::slack::standin::SlackStandin;
use crate::slack::verify::sign;
use crate::startup::{AppState, Application};

pub const SIGNING_SECRET: &str = "harness-signing-secret";
pub const BOT_TOKEN: &str = "xoxb-harness-token";
pub const TEAM_ID: &str = "T0001";

/// The catalog shipped in `config/catalog.yaml`, as YAML, with its webhook routes pointed at the pager stand-in
/// (nothing leaves this machine).
pub fn catalog_yaml_for(pager: &PagerStandin) -> String {
    include_str!("../config/catalog.yaml").replace(
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
        deploy_api_token: Some(Secret::new("harness-deploy-token")),
        github_webhook_secret: Some(Secret::new("harness-github-secret")),
        gitlab_webhook_token: Some(Secret::new("harness-gitlab-token")),
        argocd_webhook_token: Some(Secret::new("harness-argocd-token")),
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
        let catalog = catalog_for(&pager);
        let secrets = secrets_for(&catalog);
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
        crate::startup::install_crypto_provider();
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
        let body = serde_urlencoded::to_string([
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
            ("response_url", &self.slack.response_url()),
            ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
        ])?;
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
            crate::slack::standin::GENERAL_CHANNEL_ID,
            text,
        )
        .await
    }

    /// The id of incident `number` in the harness workspace.
    pub async fn incident_id(&self, number: i64) -> anyhow::Result<String> {
        let id: String =
            sqlx::query_scalar("SELECT id FROM incidents WHERE team_id = $1 AND number = $2")
                .bind(TEAM_ID)
                .bind(number)
                .fetch_one(&self.state.db.pool)
                .await
                .with_context(|| format!("no incident {number}"))?;
        Ok(id)
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
