//! `manifest.yml` is a valid Slack app manifest that asks for exactly the bot scopes the code uses.

use std::collections::BTreeSet;

use crate::helpers::{spawn_app, SETUP_LIMIT};

/// The bot scope each Web API method needs (Slack's method reference, bot tokens).
fn scope_of(method: &str) -> Option<&'static str> {
    Some(match method {
        "auth.test" | "views.open" | "apps.connections.open" | "chat.getPermalink" => return None,
        "bookmarks.add" => "bookmarks:write",
        "bookmarks.list" => "bookmarks:read",
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" => "chat:write",
        "conversations.create" | "conversations.setTopic" | "conversations.invite" => {
            "channels:manage"
        }
        "conversations.history" | "conversations.replies" => "channels:history",
        "conversations.join" => "channels:join",
        "conversations.list" | "conversations.info" => "channels:read",
        "files.getUploadURLExternal" | "files.completeUploadExternal" => "files:write",
        "pins.add" => "pins:write",
        "users.info" => "users:read",
        other => panic!("no scope known for {other}: add it to this table and to manifest.yml"),
    })
}

fn manifest() -> serde_yaml::Value {
    serde_yaml::from_str(include_str!("../../manifest.yml")).expect("manifest.yml is YAML")
}

#[test]
fn the_manifest_declares_the_command_interactivity_and_mentions() {
    let m = manifest();
    assert_eq!(m["features"]["slash_commands"][0]["command"], "/incident");
    assert!(m["features"]["slash_commands"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/slack/commands"));
    assert_eq!(m["settings"]["interactivity"]["is_enabled"], true);
    assert!(m["settings"]["interactivity"]["request_url"]
        .as_str()
        .unwrap()
        .ends_with("/slack/interactions"));
    assert!(m["settings"]["event_subscriptions"]["request_url"]
        .as_str()
        .unwrap()
        .ends_with("/slack/events"));
    let events: Vec<&str> = m["settings"]["event_subscriptions"]["bot_events"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(
        events,
        ["app_mention", "reaction_added", "message.channels"]
    );
    let shortcut = &m["features"]["shortcuts"][0];
    assert_eq!(shortcut["type"], "message");
    assert_eq!(
        shortcut["callback_id"],
        incident_bot::http::slack::interactions::ADD_TO_TIMELINE
    );
}

/// Every Slack Web API method named in the bot's source (the stand-ins excepted).
fn methods_in_source() -> BTreeSet<String> {
    let spec = crate::openapi::SlackSpec::load().unwrap();
    let mut found = BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && !name.contains("standin") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, piece) in text.split('"').enumerate() {
                    if i % 2 == 1 && spec.has_method(piece) {
                        found.insert(piece.to_string());
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn the_manifest_asks_for_exactly_the_scopes_of_the_methods_the_bot_calls() {
    let in_source = methods_in_source();
    let m = manifest();
    let declared: BTreeSet<&str> = m["oauth_config"]["scopes"]["bot"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let mut expected: BTreeSet<&str> = in_source.iter().filter_map(|m| scope_of(m)).collect();
    expected.insert("commands");
    expected.insert("app_mentions:read");
    // reaction_added events (📌 captures a message).
    expected.insert("reactions:read");
    assert_eq!(
        declared, expected,
        "manifest scopes vs the scopes of {in_source:?}"
    );

    // And what a real run calls is among what the source names.
    let app = spawn_app().await;
    let (status, _) = app
        .slash("start Payments down sev:P1 service:payments")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let called: BTreeSet<String> = app.slack.calls().into_iter().map(|c| c.method).collect();
    assert!(
        called.is_subset(&in_source),
        "{called:?} not all in {in_source:?}"
    );
}
