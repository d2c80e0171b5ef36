//! [`AppState`]: the plain bag of shared parts that every handler and worker gets (by `Arc`), built once by
//! [`crate::startup::Application`]. It holds the adapters and the process's place in the lease queues, nothing
//! that belongs to a single feature, so every layer above the adapters can import it without a cycle.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::{Secrets, Settings};
use crate::db::Db;
use crate::pager::Pager;
use crate::slack::{SlackClient, SlackError};

/// Everything a handler or worker needs.
pub struct AppState {
    pub settings: Settings,
    pub secrets: Secrets,
    pub db: Db,
    pub slack: SlackClient,
    pub pager: Pager,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    /// This process in the lease queues: its owner id and the war rooms it is driving.
    pub worker: crate::store::lease::Worker,
    /// One outbox drain at a time in this process ([`crate::incidents::outbox::kick`]).
    pub outbox: crate::store::lease::Coalesced,
    /// One alert drain at a time in this process ([`crate::alerts::kick`]).
    pub alerts: crate::store::lease::Coalesced,
    /// Declarations waiting for the transaction in progress, stored together next ([`crate::store::declarations`]).
    pub declarations: crate::store::declarations::Intake,
}

impl AppState {
    /// The broadcast channel's ID (configured by name or ID).
    pub async fn broadcast_channel(&self) -> Result<String, SlackError> {
        self.slack
            .channel_id(&self.settings.slack.broadcast_channel)
            .await
    }

    /// The time zone for times typed by users (`incidents.default_timezone`).
    pub fn default_tz(&self) -> chrono_tz::Tz {
        self.settings
            .incidents
            .default_timezone
            .parse()
            .unwrap_or(chrono_tz::UTC)
    }

    /// The user's Slack time zone (remembered for a while, see [`crate::slack::memory`]); the configured default
    /// when Slack does not say.
    pub async fn user_tz(&self, user: &str) -> chrono_tz::Tz {
        self.slack
            .time_zone(user, self.clock.now())
            .await
            .unwrap_or_else(|| self.default_tz())
    }
}
