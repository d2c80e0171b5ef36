//! Incidents: the stored record ([`Incident`], data from [`crate::domain::incident`], its rows in
//! [`crate::store::incidents`]), declaring one ([`declare`], with the start of impact it names: [`started`]),
//! setting up its war room ([`setup`] runs the steps, [`steps`] says what each step does), and what the card shows
//! ([`card_view`]); the timeline people read, add messages to and export ([`timeline`]); what the incident
//! teaches: the postmortem draft ([`postmortem`]) and the follow-ups ([`followups`]).

pub mod declare;
pub mod deploy_prompt;
pub mod detection;
pub mod followups;
pub mod nudges;
pub mod outbox;
pub mod phases;
pub mod postmortem;
pub mod roles;
pub mod setup;
pub mod severity;
pub mod started;
pub mod steps;
pub mod summary;
pub mod timeline;
pub mod timers;
pub mod updates;

pub use crate::domain::incident::Incident;
pub use crate::store::incidents::{by_channel, load, open};

use crate::domain::deploy::Deploy;
use crate::slack::blocks::{unknown_service_line, CardView};
use crate::state::AppState;

/// What the card of `inc` shows: the incident with its catalog entry (or a "did you mean" line), the deploys
/// before impact, the clock's now and the monitoring window.
pub fn card_view<'a>(state: &AppState, inc: &'a Incident, deploys: Vec<Deploy>) -> CardView<'a> {
    let svc = inc.service.as_deref().and_then(|s| state.catalog.get(s));
    let unknown_service = match (inc.service.as_deref(), svc) {
        (Some(name), None) => Some(unknown_service_line(
            name,
            &state.catalog.suggest(name, &[]),
        )),
        _ => None,
    };
    CardView {
        inc,
        service_name: svc.map(|s| s.name.clone()).or_else(|| inc.service.clone()),
        runbook: svc.and_then(|s| s.runbook_url.clone()),
        dashboard: svc.and_then(|s| s.dashboard_url.clone()),
        deploys,
        unknown_service,
        now: state.clock.now(),
        monitoring: chrono::Duration::minutes(state.settings.incidents.monitoring_minutes.max(0)),
        alerts: None,
    }
}
