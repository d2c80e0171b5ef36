//! Building and running the application: [`AppState`] (shared by `Arc` with every handler and worker) and
//! [`Application`], which binds the listener (port 0 in tests), runs migrations, starts the background workers
//! and serves HTTP.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{Secrets, Settings};
use crate::db::Db;
use crate::incidents::setup::Runner;
use crate::pager::Pager;
use crate::slack::{SlackClient, SlackError};

/// Installs rustls' ring provider once (reqwest and slack-morphism would otherwise disagree).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Who the bot is in Slack (from `auth.test`, asked once).
#[derive(Debug, Clone)]
pub struct BotIdentity {
    pub user_id: String,
    pub team_id: String,
    /// Workspace URL, e.g. `https://acme.slack.com/`.
    pub url: String,
}

/// Everything a handler or worker needs.
pub struct AppState {
    pub settings: Settings,
    pub secrets: Secrets,
    pub db: Db,
    pub slack: SlackClient,
    pub pager: Pager,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    /// For `response_url` replies.
    pub http: reqwest::Client,
    pub setup: Runner,
    identity: OnceCell<BotIdentity>,
    broadcast: OnceCell<String>,
}

impl AppState {
    pub fn new(
        settings: Settings,
        secrets: Secrets,
        db: Db,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        install_crypto_provider();
        let slack = SlackClient::new(
            &settings.slack_api_base(),
            secrets.slack_bot_token.as_ref(),
            Duration::from_millis(settings.slack.call_timeout_ms),
        )?;
        let pager = Pager::new(settings.pager.clone())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.slack.call_timeout_ms))
            .build()?;
        Ok(AppState {
            settings,
            secrets,
            db,
            slack,
            pager,
            catalog: Arc::new(catalog),
            clock,
            http,
            setup: Runner::default(),
            identity: OnceCell::new(),
            broadcast: OnceCell::new(),
        })
    }

    /// The bot's own identity, asked of Slack once.
    pub async fn identity(&self) -> Result<BotIdentity, SlackError> {
        self.identity
            .get_or_try_init(|| async {
                let v = self.slack.call("auth.test", json!({})).await?;
                Ok(BotIdentity {
                    user_id: v["user_id"].as_str().unwrap_or_default().to_string(),
                    team_id: v["team_id"].as_str().unwrap_or_default().to_string(),
                    url: v["url"]
                        .as_str()
                        .unwrap_or("https://slack.com/")
                        .to_string(),
                })
            })
            .await
            .cloned()
    }

    /// A link to a channel that opens it in Slack.
    pub async fn channel_link(&self, channel_id: &str) -> String {
        match self.identity().await {
            Ok(me) if me.url.starts_with("http") => {
                format!("{}/archives/{channel_id}", me.url.trim_end_matches('/'))
            }
            _ => format!("https://slack.com/app_redirect?channel={channel_id}"),
        }
    }

    /// The broadcast channel's ID (configured by name or ID; a name is looked up once).
    pub async fn broadcast_channel(&self) -> Result<String, SlackError> {
        self.broadcast
            .get_or_try_init(|| async {
                let wanted = self.settings.slack.broadcast_channel.trim_start_matches('#').to_string();
                if looks_like_channel_id(&wanted) {
                    return Ok(wanted);
                }
                let mut cursor = String::new();
                for _ in 0..50 {
                    let mut args = json!({ "types": "public_channel,private_channel", "exclude_archived": true, "limit": 1000 });
                    if !cursor.is_empty() {
                        args["cursor"] = json!(cursor);
                    }
                    let v = self.slack.call("conversations.list", args).await?;
                    if let Some(c) = v["channels"].as_array().into_iter().flatten().find(|c| c["name"].as_str() == Some(wanted.as_str())) {
                        return Ok(c["id"].as_str().unwrap_or_default().to_string());
                    }
                    cursor = v["response_metadata"]["next_cursor"].as_str().unwrap_or_default().to_string();
                    if cursor.is_empty() {
                        break;
                    }
                }
                Err(SlackError::Api { method: "conversations.list".into(), code: format!("broadcast channel #{wanted} not found") })
            })
            .await
            .cloned()
    }
}

fn looks_like_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A running bot: HTTP server plus background workers.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Connects to the database, migrates, and binds `settings.listen` (use port 0 in tests).
    pub async fn build(
        settings: Settings,
        secrets: Secrets,
        catalog: Catalog,
    ) -> anyhow::Result<Application> {
        let db = Db::connect(&settings.database_url).await?;
        db.migrate().await?;
        Self::build_with(settings, secrets, catalog, db, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with a given database and clock.
    pub async fn build_with(
        settings: Settings,
        secrets: Secrets,
        catalog: Catalog,
        db: Db,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let state = Arc::new(AppState::new(settings, secrets, db, catalog, clock)?);
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Starts the workers and serves until the process is stopped.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        tokio::spawn(Runner::sweep_forever(state.clone()));
        let app = crate::http::router(state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

impl AppState {
    /// The time zone for times typed by users (`incidents.default_timezone`).
    pub fn default_tz(&self) -> chrono_tz::Tz {
        self.settings
            .incidents
            .default_timezone
            .parse()
            .unwrap_or(chrono_tz::UTC)
    }
}
