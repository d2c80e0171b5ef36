//! An alert declares an incident: stored like `/incident start` ([`crate::incidents::declare::store_in`]) with
//! impact starting at the alert's start, detection method `alert`, the bot as declarer — in one transaction that
//! also takes the storm's keys and marks the alert done. Then the war room is set up exactly as for a person's
//! declaration ([`crate::incidents::setup::start_declared`]).

use std::sync::Arc;

use crate::domain::alert::Decision;
use crate::domain::severity::DetectionMethod;
use crate::domain::text::{self, Title};
use crate::incidents::declare::{store_in, DeclareRequest};
use crate::incidents::{outbox, setup};
use crate::state::AppState;
use crate::store::alerts::{self as stored, Claimed};

/// What a declaration came to.
#[derive(Debug)]
pub(super) enum Declared {
    /// Declared: the new incident's id.
    New(String),
    /// Another declaration (another replica) holds one of the storm's keys: attach to its incident.
    Existing(String),
    /// This process no longer holds the alert (another took it over): nothing done.
    NotMine,
}

/// The source's name as people know it.
pub(super) fn source_name(source: &str) -> &'static str {
    match source {
        "alertmanager" => "Alertmanager",
        "grafana" => "Grafana",
        "datadog" => "Datadog",
        "pagerduty" => "PagerDuty",
        _ => "an alert",
    }
}

/// Declares an incident for alert `c`, taking `keys`.
pub(super) async fn declare(
    state: &Arc<AppState>,
    c: &Claimed,
    d: &Decision,
    keys: &[String],
) -> anyhow::Result<Declared> {
    let me = state.slack.identity().await?;
    let now = state.clock.now();
    let owner = state.worker.owner();
    let title = Title::parse(&c.alert.title)
        .or_else(|| Title::parse("Alert"))
        .ok_or_else(|| anyhow::anyhow!("no title"))?;
    let req = DeclareRequest {
        team_id: me.team_id.clone(),
        user_id: me.user_id.clone(),
        origin_channel: None,
        response_url: None,
        title,
        severity: d.severity,
        service: d.service.clone(),
        detection: DetectionMethod::Alert,
        started_at: Some(c.alert.starts_at),
        // Alerts are made exactly once by their own table (one row per source, fingerprint, status, start).
        sighting: None,
        private: false,
    };
    let mut tx = state.db.begin_write().await?;
    let inc = store_in(state, &mut tx, req, now).await?;
    if !stored::take_links(&mut tx, keys, &inc.id, now).await? {
        tx.rollback().await?;
        let mut conn = state.db.pool.acquire().await?;
        return match stored::open_incident_for(&mut conn, keys, d.service.as_deref()).await? {
            Some(id) => Ok(Declared::Existing(id)),
            None => anyhow::bail!("a storm key is taken by an incident that is not open"),
        };
    }
    if stored::finish(&mut tx, &[c.seq], owner, Some(&inc.id), "declared", now).await? != 1 {
        tx.rollback().await?;
        return Ok(Declared::NotMine);
    }
    let link = match &c.alert.link {
        Some(u) => format!(" · {}", text::link(u, "view the alert")),
        None => String::new(),
    };
    let line = format!(
        "🚨 Declared by {}: *{}*{link}",
        source_name(c.alert.source.as_str()),
        text::escape_cut(&c.alert.title, 500)
    );
    let event_id =
        crate::store::incidents::add_timeline_event(&mut tx, &inc.id, now, "alert", None, &line)
            .await?;
    outbox::post_line(&mut tx, &inc.id, &event_id, now).await?;
    tx.commit().await?;
    tracing::info!(incident = %inc.key(), source = c.alert.source.as_str(), "incident declared by an alert");
    crate::observability::alerts_processed("declared", 1);
    let id = inc.id.clone();
    setup::start_declared(state, inc);
    outbox::kick(state);
    Ok(Declared::New(id))
}
