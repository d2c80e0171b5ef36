//! Deploy events as data: one stored deploy ([`Deploy`]) and one to store ([`NewDeploy`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

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
