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
    /// The highest severity the incident held (P1 highest): tier, summary and digests use it.
    pub peak_severity: Severity,
    pub service: Option<String>,
    pub detection: DetectionMethod,
    pub declared_by: String,
    pub origin_channel: Option<String>,
    pub response_url: Option<String>,
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub card_ts: Option<String>,
    /// Declared private: a private channel; the broadcast channel, digests and pages never see its title.
    pub private: bool,
    pub timeline: Timeline,
    /// Who holds the incident's roles.
    pub roles: Roles,
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
    /// Detection, triage, remediation and verification, when known (declared in Slack); `None` for imported
    /// incidents.
    pub phases: Option<[Duration; 4]>,
}

impl PastIncident {
    /// Its MTTR (never negative).
    pub fn mttr(&self) -> Duration {
        (self.resolved_at - self.started_at).max(Duration::zero())
    }
}

/// A role in running an incident (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The incident commander (IC): decides and delegates.
    Commander,
    /// The comms lead: keeps stakeholders informed.
    Comms,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Commander, Role::Comms];

    /// As typed in `/incident role ic|comms` and stored in `timeline_events.kind` (`role_ic`, `role_comms`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Commander => "ic",
            Role::Comms => "comms",
        }
    }

    /// Short, for timeline lines: `IC`, `Comms lead`.
    pub fn short(self) -> &'static str {
        match self {
            Role::Commander => "IC",
            Role::Comms => "Comms lead",
        }
    }

    /// For the card: `Commander`, `Comms lead`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Commander => "Commander",
            Role::Comms => "Comms lead",
        }
    }

    /// `ic`, `commander`, `incident-commander`, `comms`, `communications`, `comms-lead` (any case).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "ic" | "commander" | "incident-commander" | "incident_commander" | "lead" => {
                Some(Role::Commander)
            }
            "comms" | "comm" | "communications" | "comms-lead" | "comms_lead" | "cl" => {
                Some(Role::Comms)
            }
            _ => None,
        }
    }
}

/// The holders of an incident's roles: Slack user ids (as Slack gave them to the bot), `None` while vacant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub ic: Option<String>,
    pub comms: Option<String>,
}

impl Roles {
    pub fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Commander => self.ic.as_deref(),
            Role::Comms => self.comms.as_deref(),
        }
    }

    pub fn set(&mut self, role: Role, user: Option<String>) {
        match role {
            Role::Commander => self.ic = user,
            Role::Comms => self.comms = user,
        }
    }
}
