//! Deploy events as data: one stored deploy ([`Deploy`]) and one to store ([`NewDeploy`]).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// How long before an incident's `started_at` a production deploy to its service or one of its dependencies
/// counts as "before impact" (the card, the MTTR summary, the digest and the change-failure rate share it).
pub const BEFORE_IMPACT: Duration = Duration::hours(2);

/// A deploy at `deployed_at` landed "before impact" of an incident that started at `started_at`: within
/// [`BEFORE_IMPACT`] before it, both ends included.
pub fn before_impact(deployed_at: DateTime<Utc>, started_at: DateTime<Utc>) -> bool {
    deployed_at <= started_at && deployed_at >= started_at - BEFORE_IMPACT
}

/// One stored deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    pub id: String,
    pub service: String,
    pub environment: String,
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub deployed_at: DateTime<Utc>,
    pub source: String,
}

/// A deploy to store. `id` makes re-sending harmless; without one a fresh id is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeploy {
    pub id: Option<String>,
    pub service: String,
    pub environment: String,
    pub version: Option<String>,
    pub commit_sha: Option<String>,
    pub url: Option<String>,
    pub author: Option<String>,
    pub deployed_at: DateTime<Utc>,
    pub source: String,
}
