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
    /// Slack/pager side effects of phase changes (issue 4).
    pub outbox: crate::incidents::outbox::Outbox,
    /// Users' Slack time zones, for `/incident set 14:32`.
    pub user_tz: crate::incidents::phases::TzCache,
    /// Whether Slack accepts the bot token, for `/readyz`.
    pub slack_auth: crate::http::health::SlackAuth,
    identity: OnceCell<BotIdentity>,
    /// Channel IDs of configured channel names, looked up once.
    channel_ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl AppState {
    pub fn new(
        settings: Settings,
        secrets: Secrets,
        db: Db,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let slack = SlackClient::new(
            &settings.slack_api_base(),
            secrets.slack_bot_token.as_ref(),
            Duration::from_millis(settings.slack.call_timeout_ms),
        )?;
        let pager = Pager::new(settings.pager.clone())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.slack.call_timeout_ms))
            .build()?;
        let setup = Runner::default();
        Ok(AppState {
            settings,
            secrets,
            db,
            slack,
            pager,
            catalog: Arc::new(catalog),
            clock,
            http,
            setup,
            outbox: Default::default(),
            user_tz: Default::default(),
            slack_auth: Default::default(),
            identity: OnceCell::new(),
            channel_ids: Default::default(),
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

    /// Learns the bot's identity and the broadcast channel's ID now, so the first war room does not wait for
    /// them. Failures are only logged: both are asked again when needed.
    pub async fn warm_up(&self) {
        let (me, broadcast) = tokio::join!(self.identity(), self.broadcast_channel());
        if let Err(e) = me {
            tracing::warn!(error = %e, "auth.test failed at start");
        }
        if let Err(e) = broadcast {
            tracing::warn!(error = %e, "could not find the broadcast channel at start");
        }
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

    /// The broadcast channel's ID (configured by name or ID).
    pub async fn broadcast_channel(&self) -> Result<String, SlackError> {
        self.channel_id(&self.settings.slack.broadcast_channel)
            .await
    }

    /// A configured channel's ID: an ID as it is, a name (with or without `#`) looked up with
    /// `conversations.list` once and remembered.
    pub async fn channel_id(&self, configured: &str) -> Result<String, SlackError> {
        let name = configured.trim().trim_start_matches('#').to_string();
        if looks_like_channel_id(&name) {
            return Ok(name);
        }
        if let Some(id) = self
            .channel_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
        {
            return Ok(id.clone());
        }
        let found = self
            .slack
            .find_channel(|c| c["name"].as_str() == Some(name.as_str()))
            .await?;
        match found.as_ref().and_then(|c| c["id"].as_str()) {
            Some(id) => {
                self.channel_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, id.to_string());
                Ok(id.to_string())
            }
            None => Err(SlackError::Api {
                method: "conversations.list".into(),
                code: format!("channel #{name} not found"),
            }),
        }
    }
}

/// Whether a configured channel is already an ID (`C…`, `G…`, `D…`) rather than a name.
pub fn looks_like_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
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
        // Alive before claiming anything: other replicas must not take this process's work over.
        crate::store::lease::beat(&state.db, state.setup.owner())
            .await
            .context("cannot write this process's heartbeat")?;
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
    ///
    /// On SIGTERM or SIGINT: stop accepting connections, answer the requests in flight, stop Socket Mode, then
    /// let the war rooms being set up finish for at most `setup.shutdown_grace_ms` before returning.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let signals = StopSignals::register();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        {
            let state = state.clone();
            tokio::spawn(async move { state.warm_up().await });
        }
        let checkpointer = state.db.spawn_checkpointer().map(AbortOnDrop);
        let heartbeat = AbortOnDrop(tokio::spawn(crate::store::lease::beat_forever(
            state.db.clone(),
            state.setup.owner().to_string(),
        )));
        let sweeper = AbortOnDrop(tokio::spawn(Runner::sweep_forever(state.clone())));
        let timers = AbortOnDrop(tokio::spawn(crate::incidents::timers::run_forever(
            state.clone(),
        )));
        let digests = AbortOnDrop(tokio::spawn(crate::digest::post::run_forever(
            state.clone(),
        )));
        let socket = crate::socket_mode::spawn(&state, stop_rx).map(AbortOnDrop);
        let app = crate::http::router(state.clone());
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                signals.recv().await;
                tracing::info!("stopping: no new requests; finishing the work in flight");
                let _ = stop_tx.send(true);
            })
            .await?;
        drop(sweeper);
        drop(timers);
        drop(checkpointer);
        drop(digests);
        finish_in_flight(&state, socket).await;
        drop(heartbeat);
        // Whatever this process leased and did not finish is taken over at once by another replica (or on the
        // next start).
        let _ = crate::store::lease::retire(&state.db, state.setup.owner()).await;
        Ok(())
    }
}

/// Aborts a background task when dropped (e.g. when a test drops a running bot).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// After the server stopped: let Socket Mode close its connection and the war rooms being set up finish,
/// within the grace period. Whatever is left resumes on the next start (or on another replica).
async fn finish_in_flight(state: &AppState, socket: Option<AbortOnDrop>) {
    let grace = Duration::from_millis(state.settings.setup.shutdown_grace_ms);
    let deadline = tokio::time::Instant::now() + grace;
    if let Some(mut socket) = socket {
        let _ = tokio::time::timeout_at(deadline, &mut socket.0).await;
    }
    let busy = state.setup.active_count();
    if busy > 0 {
        tracing::info!(
            incidents = busy,
            "waiting for war rooms being set up to finish"
        );
    }
    if state
        .setup
        .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        tracing::info!("stopped cleanly");
    } else {
        tracing::warn!(
            incidents = state.setup.active_count(),
            "grace period over with war rooms unfinished; their steps resume on the next start"
        );
    }
}

/// SIGTERM and SIGINT, listened to from the moment the server starts (so an early signal is not lost).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! { _ = next(self.term) => {}, _ = next(self.int) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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
