//! A lost answer never causes a second post (SPEC §6, issue 14): when Slack applies a `chat.postMessage` but its
//! answer comes after the client gave up, the retry finds the earlier post in `conversations.history` — reading
//! every page back to when the first attempt began, however many messages were posted since — and posts nothing.

use std::collections::HashSet;
use std::time::Duration;

use incident_bot::slack::blocks::{announce_block_id, card_block_id, has_block_id};
use incident_bot::standins::slack::{Channel, Fault};
use serde_json::json;

use crate::helpers::{declared_number, spawn_app_with, SETUP_LIMIT};

/// Messages anywhere whose blocks carry `block_id`.
fn posts_with(channels: &[Channel], block_id: &str) -> usize {
    channels
        .iter()
        .flat_map(|c| &c.messages)
        .filter(|m| has_block_id(&json!({ "blocks": m.blocks }), block_id))
        .count()
}

#[tokio::test]
async fn a_post_answered_too_late_is_found_behind_hundreds_of_newer_messages() {
    let app = spawn_app_with(|s| s.slack.call_timeout_ms = 1_000).await;
    // The first two posts — the war room's card and the announcement in #incidents — take effect, but their
    // answers come long after the bot stopped waiting.
    for _ in 0..2 {
        app.slack
            .fail_next("chat.postMessage", Fault::Delay(Duration::from_secs(4)));
    }
    let (status, reply) = app
        .slash("start Checkout down sev:P2 service:checkout")
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = app.incident_id(declared_number(&reply)).await.unwrap();
    // As soon as each post lands, people post 250 messages after it in its channel.
    let wanted = [card_block_id(&id), announce_block_id(&id)];
    let mut flooded: HashSet<&String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
    while flooded.len() < wanted.len() {
        for ch in app.slack.channels() {
            for bid in &wanted {
                if !flooded.contains(bid) && posts_with(std::slice::from_ref(&ch), bid) > 0 {
                    assert!(app.slack.post_as(&ch.id, "U0CHATTY1", 250));
                    flooded.insert(bid);
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "posted: {flooded:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let steps = app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    for name in ["card", "announce"] {
        let s = steps.iter().find(|s| s.step == name).unwrap();
        assert_eq!(s.state, "done", "{s:?}");
        assert!(s.attempts >= 2, "the {name} step was retried: {s:?}");
    }
    let channels = app.slack.channels();
    assert_eq!(posts_with(&channels, &wanted[0]), 1, "one card");
    assert_eq!(posts_with(&channels, &wanted[1]), 1, "one announcement");
    let pages = app.slack.calls_to("conversations.history").len();
    assert!(pages >= 4, "every page read: {pages} history calls");
}
