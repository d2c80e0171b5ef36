//! Resolved alerts: each incident's resolutions of a batch post one timeline line; when the incident's last
//! firing alert resolves, the bot asks once "Alert resolved N minutes ago — mark Resolved?" (one button), or,
//! where the alert's route says `auto_resolve`, records the resolution itself — in the same transaction that
//! marks the alerts done, so a crash cannot resolve twice or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::db::ms;
use crate::domain::alert::{decide, Route};
use crate::domain::phase::Milestone;
use crate::domain::text;
use crate::incidents::phases::{self, Change};
use crate::incidents::{self, outbox};
use crate::state::AppState;
use crate::store::alerts::{self as stored, Claimed};

pub(super) async fn resolve(
    state: &Arc<AppState>,
    resolved: &[&Claimed],
    routes: &[Route],
) -> anyhow::Result<()> {
    if resolved.is_empty() {
        return Ok(());
    }
    let owner = state.worker.owner();
    let mut by_incident: BTreeMap<String, Vec<&Claimed>> = BTreeMap::new();
    let mut orphans = Vec::new();
    {
        let mut conn = state.db.pool.acquire().await?;
        for c in resolved {
            match stored::incident_of_alert(
                &mut conn,
                c.alert.source.as_str(),
                &c.alert.fingerprint,
            )
            .await?
            {
                Some(id) => by_incident.entry(id).or_default().push(c),
                None => orphans.push(c.seq),
            }
        }
    }
    if !orphans.is_empty() {
        // Their firing alert went to no incident (it was only posted, or never arrived).
        let mut tx = state.db.begin_write().await?;
        let n =
            stored::finish(&mut tx, &orphans, owner, None, "ignored", state.clock.now()).await?;
        tx.commit().await?;
        crate::observability::alerts_processed("ignored", n);
    }
    let known = |name: &str| state.catalog.get(name).map(|s| s.name.clone());
    let cfg = &state.settings.incidents;
    let monitoring = phases::monitoring_window(state);
    for (incident_id, alerts) in by_incident {
        let Some(inc) = incidents::load(&state.db, &incident_id).await? else {
            continue;
        };
        let now = state.clock.now();
        let seqs: Vec<i64> = alerts.iter().map(|c| c.seq).collect();
        let mut tx = state.db.begin_write().await?;
        let n = stored::finish(&mut tx, &seqs, owner, Some(&incident_id), "resolved", now).await?;
        if n == 0 {
            tx.rollback().await?;
            continue;
        }
        let names: Vec<String> = alerts
            .iter()
            .take(3)
            .map(|c| format!("*{}*", text::escape_cut(&c.alert.title, 200)))
            .collect();
        let line = if alerts.len() == 1 {
            format!("✅ Alert resolved: {}", names.join(""))
        } else {
            let more = alerts.len().saturating_sub(names.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "✅ {} alerts resolved: {}{tail}",
                alerts.len(),
                names.join(", ")
            )
        };
        let event_id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO timeline_events (id, incident_id, at, kind, actor, detail) VALUES ($1, $2, $3, 'alert', NULL, $4)",
        )
        .bind(&event_id)
        .bind(&incident_id)
        .bind(ms(now))
        .bind(&line)
        .execute(&mut *tx)
        .await?;
        outbox::post_line(&mut tx, &incident_id, &event_id, now).await?;
        outbox::refresh_card_throttled(
            &mut tx,
            &incident_id,
            now,
            state.settings.alerts.card_min_interval_ms as i64,
        )
        .await?;
        let still_firing = stored::firing(&mut tx, &incident_id).await?;
        if still_firing == 0 && inc.timeline.status().is_active() && inc.timeline.resolved.is_none()
        {
            let auto = alerts
                .iter()
                .any(|c| decide(&c.alert, routes, known).auto_resolve);
            if auto {
                let change = Change::Record(Milestone::Resolved);
                if let Ok((after, event)) =
                    phases::plan(change, &inc.timeline, now, monitoring, None)
                {
                    if phases::write(&mut tx, cfg, &inc, &after, &event, None, now)
                        .await?
                        .is_none()
                    {
                        tx.rollback().await?;
                        anyhow::bail!("{} changed while resolving it; retried", inc.key());
                    }
                }
            } else {
                let ended = alerts
                    .iter()
                    .filter_map(|c| c.alert.ends_at)
                    .max()
                    .unwrap_or(now)
                    .min(now);
                outbox::prompt_resolve(&mut tx, &incident_id, ended, now).await?;
            }
        }
        tx.commit().await?;
        crate::observability::alerts_processed("resolved", n);
    }
    outbox::kick(state);
    Ok(())
}
