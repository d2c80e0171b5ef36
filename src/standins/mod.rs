//! Stand-ins for the outside world, and what runs the bot against them. Nothing here is used in production:
//! `incident-bot demo`, the benchmarks and the integration tests use it.
//!
//! - [`slack`]: a fake Slack Web API that answers like Slack (errors, `429` with `Retry-After`, slow, dropped
//!   and late answers) and records every call; [`slack_socket`]: its Socket Mode side.
//! - [`pager`]: fake PagerDuty Events v2, Opsgenie and webhook receivers; [`pager_rest`]: a fake PagerDuty REST
//!   API for `import pagerduty`.
//! - [`harness`]: a whole bot wired to the stand-ins on a free port, driven with signed requests.
//! - [`demo`]: `incident-bot demo`, a whole incident told as a story; [`story`] prints what changed in the Slack
//!   stand-in, [`mrkdwn`] renders Slack's mrkdwn and Block Kit for a terminal and as HTML, [`slack_page`] writes
//!   the conversation as one Slack-like HTML page (`demo --html`).

/// Installs rustls' `ring` provider as the process default, as `main` does for the binary: the tests, the
/// benchmarks and the demo build HTTP clients through the stand-ins without going through `main`. Idempotent.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The stand-in Slack workspace's id (Web API and Socket Mode).
pub const TEAM_ID: &str = "T0001";

pub mod demo;
pub mod harness;
pub mod mrkdwn;
pub mod pager;
pub mod pager_rest;
pub mod slack;
pub mod slack_page;
pub mod slack_socket;
pub mod story;
