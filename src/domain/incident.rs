//! An incident as stored: pure data, read by the store and rendered by the Slack adapter.

use chrono::{DateTime, Duration, Utc};

use crate::domain::phase::Timeline;
use crate::domain::severity::{DetectionMethod, Severity};

/// An incident as stored.
#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub team_id: String,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    pub declared_by: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub card_ts: Option<String>,
    pub timeline: Timeline,
    pub version: i64,
}

impl Incident {
    /// `INC-42`.
    pub fn key(&self) -> String {
        format!("INC-{}", self.number)
    }
}

/// Another incident, as the comparison needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastIncident {
    pub id: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: DateTime<Utc>,
}

impl PastIncident {
    /// Its MTTR (never negative).
    pub fn mttr(&self) -> Duration {
        (self.resolved_at - self.started_at).max(Duration::zero())
    }
}
