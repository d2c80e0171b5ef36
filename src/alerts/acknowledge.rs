//! A PagerDuty `incident.acknowledged` of a PagerDuty incident linked to an incident here records the
//! acknowledgement at the moment PagerDuty says, when none is recorded yet — in the transaction that marks the
//! event done, so it is recorded once however often PagerDuty re-sends it.

use std::sync::Arc;

use crate::domain::phase::Milestone;
use crate::incidents::phases::{self, Change};
use crate::incidents::{self, outbox};
use crate::state::AppState;
use crate::store::alerts::{self as stored, Claimed};

/// Who the acknowledgement is attributed to on the card and timeline.
const BY: &str = "PagerDuty";

pub(super) async fn acknowledge(state: &Arc<AppState>, acks: &[&Claimed]) -> anyhow::Result<()> {
    let owner = state.worker.owner();
    let monitoring = phases::monitoring_window(state);
    for c in acks {
        let linked = {
            let mut conn = state.db.pool.acquire().await?;
            stored::incident_of_pagerduty(&mut conn, &c.alert.fingerprint).await?
        };
        let inc = match &linked {
            Some(id) => incidents::load(&state.db, id).await?,
            None => None,
        };
        let now = state.clock.now();
        let mut tx = state.db.begin_write().await?;
        let Some(incident_id) = linked else {
            let n = stored::finish(&mut tx, &[c.seq], owner, None, "ignored", now).await?;
            tx.commit().await?;
            crate::observability::alerts_processed("ignored", n);
            continue;
        };
        if stored::finish(
            &mut tx,
            &[c.seq],
            owner,
            Some(&incident_id),
            "acknowledged",
            now,
        )
        .await?
            == 0
        {
            tx.rollback().await?;
            continue;
        }
        if let Some(inc) = inc.filter(|i| i.timeline.acknowledged.is_none()) {
            let at = c.alert.starts_at.min(now).max(inc.timeline.started_at);
            let change = Change::Record(Milestone::Acknowledged);
            if let Ok((after, event)) =
                phases::plan(change, &inc.timeline, at, monitoring, Some(BY))
            {
                let written = phases::write(
                    &mut tx,
                    &state.settings.incidents,
                    &inc,
                    &after,
                    &event,
                    Some(BY),
                    now,
                )
                .await?;
                if written.is_none() {
                    tx.rollback().await?;
                    anyhow::bail!("{} changed while acknowledging it; retried", inc.key());
                }
            }
        }
        tx.commit().await?;
        crate::observability::alerts_processed("acknowledged", 1);
    }
    if !acks.is_empty() {
        outbox::kick(state);
    }
    Ok(())
}
