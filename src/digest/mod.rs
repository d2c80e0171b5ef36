//! Weekly digests (SPEC §6) and reports: where recovery time goes, week by week.
//!
//! - [`stats`]: the figures, pure (counts, MTTR per severity with tier, phase shares, detection mix, deploys,
//!   in/out of hours, top services and teams, still-open incidents, monthly MTTR).
//! - [`data`]: reading incidents (and deploy flags) from the database.
//! - [`render`]: Slack Block Kit and plain text; [`chart`]: the PNG chart of MTTR per phase.
//! - [`schedule`]: when each configured digest is due (pure); [`runs`]: the `digest_runs` claims that make each
//!   digest post exactly once across replicas; [`post`]: posting to Slack (message, then chart upload) and the
//!   scheduler loop.
//! - [`report`]: `incident-bot report` (text, JSON, CSV).
//! - [`followups`]: follow-up completion per team (digest and report).

pub mod chart;
pub mod data;
pub mod followups;
pub mod post;
pub mod render;
pub mod report;
pub mod runs;
pub mod schedule;
pub mod stats;
