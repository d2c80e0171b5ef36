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
use crate::store::incidents as timeline;

/// A resolution line waits this long before it is posted, gathering the resolutions that follow (a storm of
/// them is a line a second at most, within Slack's one message per second per channel).
const LINE_GATHER_MS: i64 = 1_000;

/// Posts "✅ Alert resolved: …", or adds this batch's resolutions to the line not posted yet.
async fn line(
    tx: &mut sqlx::AnyConnection,
    incident_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let pending = timeline::latest_event(tx, incident_id, "alert_resolved").await?;
    let open = match pending {
        Some((id, at)) if outbox::hold_unposted_line(tx, &id).await? => Some((id, at)),
        _ => None,
    };
    let since = open.as_ref().map_or(ms(now), |(_, at)| *at);
    let (n, titles) = stored::resolved_since(tx, incident_id, since, 3).await?;
    let names: Vec<String> = titles
        .iter()
        .map(|t| format!("*{}*", text::escape_cut(t, 200)))
        .collect();
    let detail = if n <= 1 {
        format!("✅ Alert resolved: {}", names.join(""))
    } else {
        let more = (n as usize).saturating_sub(names.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("✅ {n} alerts resolved: {}{tail}", names.join(", "))
    };
    match open {
        Some((id, _)) => {
            timeline::set_timeline_detail(tx, &id, &detail).await?;
        }
        None => {
            let event_id =
                timeline::add_timeline_event(tx, incident_id, now, "alert_resolved", None, &detail)
                    .await?;
            let due = now + chrono::Duration::milliseconds(LINE_GATHER_MS);
            outbox::post_line(tx, incident_id, &event_id, due).await?;
        }
    }
    Ok(())
}

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
        line(&mut tx, &incident_id, now).await?;
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
