//! Alerts that declare nothing — they name no catalog service, or their route says `notify`, or `attach` found
//! nothing open — are said in the broadcast channel. A storm of them is summarised: they are gathered into the
//! pending notice (count and the first few), and notices are posted at most one a second, so Slack's
//! one-message-per-second-per-channel limit is kept however many arrive.

use std::sync::Arc;

use serde_json::json;

use crate::domain::alert::LISTED;
use crate::domain::text;
use crate::slack::client::Post;
use crate::state::AppState;
use crate::store::alerts::{self as stored, Claimed};
use crate::store::lease::Outcome;

/// Least time between two notices, in milliseconds (Slack: about one message per second per channel).
const NOTICE_GAP_MS: i64 = 1_000;

/// One line of a notice: title (escaped, linked only to a checked URL) and source.
fn line(c: &Claimed) -> String {
    let title = text::plain(&c.alert.title, 150);
    let shown = match &c.alert.link {
        Some(u) => text::link(u, &title),
        None => text::escape(&title),
    };
    format!(
        "• {shown} ({})",
        super::declare::source_name(c.alert.source.as_str())
    )
}

/// Marks `alerts` done and adds them to the pending notice, in one transaction.
pub(super) async fn gather(state: &Arc<AppState>, alerts: &[&Claimed]) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let now = state.clock.now();
    let seqs: Vec<i64> = alerts.iter().map(|c| c.seq).collect();
    let sample: Vec<String> = alerts.iter().take(LISTED).map(|c| line(c)).collect();
    let mut tx = state.db.begin_write().await?;
    let n = stored::finish(&mut tx, &seqs, state.worker.owner(), None, "notified", now).await?;
    if n > 0 {
        stored::add_notice(&mut tx, n as i64, &sample, now, NOTICE_GAP_MS).await?;
    }
    tx.commit().await?;
    crate::observability::alerts_processed("notified", n);
    Ok(())
}

/// Posts the due notices to the broadcast channel.
pub(super) async fn post_due(state: &Arc<AppState>) -> anyhow::Result<()> {
    let owner = state.worker.owner();
    let lease_ms = state.settings.setup.lease_ms as i64;
    while let Some(n) = stored::claim_notice(&state.db, owner, state.clock.now(), lease_ms).await? {
        let outcome = match post(state, &n).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::failure(
                e.to_string(),
                e.is_retryable(),
                e.retry_after(),
                n.attempts,
                &state.settings.setup,
                state.clock.now(),
            ),
        };
        stored::release_notice(&state.db, n.seq, owner, &outcome, state.clock.now()).await?;
    }
    Ok(())
}

async fn post(state: &AppState, n: &stored::Notice) -> Result<(), crate::slack::SlackError> {
    let channel = state.broadcast_channel().await?;
    let bid = format!("alert_notice:{}", n.seq);
    if n.attempts > 1
        && state
            .slack
            .find_message(&channel, &bid, n.first_attempt_at)
            .await?
            .is_some()
    {
        return Ok(());
    }
    let noun = if n.count == 1 { "alert" } else { "alerts" };
    let mut lines = vec![format!(
        "📣 *{} {noun}* matched no catalog service, so no incident was declared:",
        n.count
    )];
    lines.extend(n.sample.iter().cloned());
    let more = n.count - n.sample.len() as i64;
    if more > 0 {
        lines.push(format!("…and {more} more"));
    }
    let body = text::cut(&lines.join("\n"), text::SECTION_TEXT);
    let blocks =
        json!([{ "type": "section", "block_id": bid, "text": { "type": "mrkdwn", "text": body } }]);
    state
        .slack
        .post_message_joining(&Post::blocks(&channel, &body, blocks))
        .await?;
    Ok(())
}
