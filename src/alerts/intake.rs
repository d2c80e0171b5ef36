//! Receiving alerts: a payload read into alerts ([`read`], 400 naming the field otherwise), stored in one
//! transaction ([`store`]) before the sender gets its 202, then handed to the worker ([`super::kick`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::alert::{self, Alert, FieldError, PagerDutyEvent, Source};
use crate::state::AppState;
use crate::store::alerts::{self as stored, Incoming, Status};

/// Reads the body `source` sent. A PagerDuty event the bot does not act on gives no alert.
pub fn read(source: Source, body: &[u8], now: DateTime<Utc>) -> Result<Vec<Incoming>, FieldError> {
    let alerts = match source {
        Source::Alertmanager => alert::alertmanager(body)?,
        Source::Grafana => alert::grafana(body)?,
        Source::Datadog => alert::datadog(body)?,
        Source::Generic => alert::generic(body, now)?,
        Source::PagerDuty => {
            return Ok(match alert::pagerduty(body)? {
                PagerDutyEvent::Alert(a) => vec![a.into()],
                PagerDutyEvent::Acknowledged { incident, at } => vec![Incoming {
                    status: Status::Acknowledged,
                    alert: Alert {
                        source: Source::PagerDuty,
                        fingerprint: incident,
                        group_key: None,
                        status: alert::AlertStatus::Firing,
                        title: "acknowledged in PagerDuty".into(),
                        labels: Default::default(),
                        starts_at: at,
                        ends_at: None,
                        link: None,
                    },
                }],
                PagerDutyEvent::Ignored(kind) => {
                    tracing::debug!(%kind, "PagerDuty event ignored");
                    Vec::new()
                }
            });
        }
    };
    Ok(alerts.into_iter().map(Incoming::from).collect())
}

/// What storing a request's alerts came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub received: usize,
    /// New rows (a re-sent alert is stored once).
    pub stored: u64,
}

/// Stores the alerts (all or none) and wakes the worker.
pub async fn store(state: &Arc<AppState>, items: &[Incoming]) -> Result<Stored, sqlx::Error> {
    let stored = stored::insert(&state.db, items, state.clock.now()).await?;
    if stored > 0 {
        super::kick(state);
    }
    crate::observability::alerts_received(items.len() as u64, stored);
    Ok(Stored {
        received: items.len(),
        stored,
    })
}
