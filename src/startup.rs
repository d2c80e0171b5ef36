//! Building and running the application: [`Application`] builds the [`AppState`] once (the composition root:
//! database, Slack client, pager, catalog, clock), binds the listener (port 0 in tests), runs migrations, starts
//! the background workers and serves HTTP. Nothing below the application imports this module.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{Secrets, Settings};
use crate::db::Db;
use crate::pager::Pager;
use crate::slack::SlackClient;
use crate::state::AppState;

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
        let state = Arc::new(build_state(settings, secrets, db, catalog, clock)?);
        // Alive before claiming anything: other replicas must not take this process's work over.
        crate::store::lease::beat(&state.db, state.worker.owner())
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
            tokio::spawn(async move { warm_up(&state).await });
        }
        let checkpointer = state.db.spawn_checkpointer().map(AbortOnDrop);
        let heartbeat = AbortOnDrop(tokio::spawn(crate::store::lease::beat_forever(
            state.db.clone(),
            state.worker.owner().to_string(),
        )));
        let sweeper = AbortOnDrop(tokio::spawn(crate::incidents::setup::sweep_forever(
            state.clone(),
        )));
        let timers = AbortOnDrop(tokio::spawn(crate::incidents::timers::run_forever(
            state.clone(),
        )));
        let digests = AbortOnDrop(tokio::spawn(crate::digest::post::run_forever(
            state.clone(),
        )));
        let alerts = AbortOnDrop(tokio::spawn(crate::alerts::run_forever(state.clone())));
        let socket = crate::http::slack::socket_mode::spawn(&state, stop_rx).map(AbortOnDrop);
        let app = crate::http::router(state.clone());
        let limits = state.settings.http.clone();
        crate::http::server::serve(self.listener, app, &limits, async move {
            signals.recv().await;
            tracing::info!("stopping: no new requests; finishing the work in flight");
            let _ = stop_tx.send(true);
        })
        .await?;
        drop(sweeper);
        drop(timers);
        drop(checkpointer);
        drop(digests);
        drop(alerts);
        finish_in_flight(&state, socket).await;
        drop(heartbeat);
        // Whatever this process leased and did not finish is taken over at once by another replica (or on the
        // next start).
        let _ = crate::store::lease::retire(&state.db, state.worker.owner()).await;
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
    let busy = state.worker.active_count();
    if busy > 0 {
        tracing::info!(
            incidents = busy,
            "waiting for war rooms being set up to finish"
        );
    }
    if state
        .worker
        .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        tracing::info!("stopped cleanly");
    } else {
        tracing::warn!(
            incidents = state.worker.active_count(),
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

/// Builds the parts every handler and worker shares (once per process).
pub fn build_state(
    settings: Settings,
    secrets: Secrets,
    db: Db,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    let slack = SlackClient::new(
        &settings.slack_api_base(),
        secrets.slack_bot_token.as_ref(),
        Duration::from_millis(settings.slack.call_timeout_ms),
    )?;
    let pager = Pager::new(settings.pager.clone())?;
    let worker = crate::store::lease::Worker::default();
    Ok(AppState {
        settings,
        secrets,
        db,
        slack,
        pager,
        catalog: Arc::new(catalog),
        clock,
        worker,
        outbox: Default::default(),
        declarations: Default::default(),
        alerts: Default::default(),
    })
}

/// Learns the bot's identity and the broadcast channel's ID now, so the first war room does not wait for
/// them. Failures are only logged: both are asked again when needed.
pub async fn warm_up(state: &AppState) {
    let (me, broadcast) = tokio::join!(state.slack.identity(), state.broadcast_channel());
    if let Err(e) = me {
        tracing::warn!(error = %e, "auth.test failed at start");
    }
    if let Err(e) = broadcast {
        tracing::warn!(error = %e, "could not find the broadcast channel at start");
    }
}
