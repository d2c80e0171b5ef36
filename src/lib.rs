//! incident-bot: a Slack bot that cuts Mean Time to Restore.
//!
//! Where things live:
//! - [`http`]: the front door — Slack commands, interactions, events and Socket Mode (`http::slack`), deploy API,
//!   health.
//! - [`incidents`]: declaring incidents and the war-room setup steps.
//! - [`alerts`]: alerts from monitoring tools declaring incidents, attaching to them and resolving them.
//! - [`domain`]: pure logic with no I/O — phases, MTTR math, tiers, command parsing, channel slugs.
//! - [`slack`]: the Slack Web API client, request verification, Block Kit rendering.
//! - [`pager`]: paging the secondary on-call (PagerDuty, Opsgenie, generic webhook).
//! - [`catalog`]: the Backstage service catalog.
//! - [`db`]: the database (SQLite or PostgreSQL) and migrations.
//! - [`digest`]: weekly digests (figures, chart, schedule, exactly-once posting) and `incident-bot report`.
//! - [`import`]: baseline history from PagerDuty (`incident-bot import pagerduty`).
//! - [`standins`]: stand-ins for Slack and the pagers, the in-process harness, and `incident-bot demo` — what the
//!   tests, the benchmarks and the demo run against; nothing in production calls them.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod bench;
pub mod catalog;
pub mod check_config;
pub mod clock;
pub mod config;
pub mod db;
pub mod deploys;
pub mod digest;
pub mod domain;
pub mod errors;
pub mod http;
pub mod import;
pub mod incidents;
pub mod observability;
pub mod pager;
#[cfg(test)]
mod rendering_tests;
pub mod slack;
pub mod standins;
pub mod startup;
pub mod state;
pub mod store;
