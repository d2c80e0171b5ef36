//! Alerts attached to an open incident: one transaction per incident and batch marks them done, and asks for a
//! card refresh throttled to one edit per `alerts.card_min_interval_ms` (the card shows the counts, not each
//! alert), so a storm of thousands of alerts is a few card edits.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::incidents::outbox;
use crate::state::AppState;
use crate::store::alerts as stored;

/// Attaches each incident's alerts (claimed rows `seqs`).
pub(super) async fn attach(
    state: &Arc<AppState>,
    by_incident: &BTreeMap<String, Vec<i64>>,
) -> anyhow::Result<()> {
    if by_incident.is_empty() {
        return Ok(());
    }
    let interval = state.settings.alerts.card_min_interval_ms as i64;
    for (incident_id, seqs) in by_incident {
        let now = state.clock.now();
        let mut tx = state.db.begin_write().await?;
        let n = stored::finish(
            &mut tx,
            seqs,
            state.worker.owner(),
            Some(incident_id),
            "attached",
            now,
        )
        .await?;
        if n > 0 {
            outbox::refresh_card_throttled(&mut tx, incident_id, now, interval).await?;
        }
        tx.commit().await?;
        crate::observability::alerts_processed("attached", n);
    }
    outbox::kick(state);
    Ok(())
}
