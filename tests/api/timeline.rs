//! The incident timeline (SPEC §12): messages captured with a 📌 reaction or the "Add to incident timeline"
//! shortcut (once per message, edits and deletions followed), `/incident timeline` in the reader's time zone,
//! and `incident-bot export`. Through the real server with signed requests and the Slack stand-in.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, SETUP_LIMIT};
use incident_bot::domain::timeline::{ts_instant, Entry};
use incident_bot::standins::harness::TEAM_ID;
use incident_bot::standins::slack::GENERAL_CHANNEL_ID;

const REACTION_ADDED: &str = include_str!("../fixtures/slack_reaction_added_event.json");
const LIMIT: Duration = Duration::from_secs(10);
const ALICE: &str = "U0ALICE01";
const BOB: &str = "U0BOB0001";

/// Declares INC-1 and waits for its war room; its id and channel.
async fn incident(app: &TestApp) -> (String, String) {
    let (status, _) = app
        .slash("start Payments down sev:P2 service:payments")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let id = app.incident_id(1).await.unwrap();
    app.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    (id, inc.channel_id.unwrap())
}

async fn post_event(app: &TestApp, body: String) {
    let resp = app
        .post_signed("/slack/events", "application/json", body)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the event is acknowledged");
}

/// Slack's example `reaction_added` delivery, as a 📌 by `user` on message `ts` of `channel`.
fn pushpin(event_id: &str, user: &str, channel: &str, ts: &str) -> String {
    let mut v: Value = serde_json::from_str(REACTION_ADDED).expect("the fixture parses");
    v["event_id"] = json!(event_id);
    v["team_id"] = json!(TEAM_ID);
    v["event"]["reaction"] = json!("pushpin");
    v["event"]["user"] = json!(user);
    v["event"]["item"]["channel"] = json!(channel);
    v["event"]["item"]["ts"] = json!(ts);
    v["event"]["item_user"] = json!(ALICE);
    v.to_string()
}

fn message_event(event_id: &str, channel: &str, event: Value) -> String {
    let mut event = event;
    event["type"] = json!("message");
    event["channel"] = json!(channel);
    json!({
        "token": "XXYYZZ", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
        "event_id": event_id, "event_time": 1_700_000_000, "authed_users": [], "event": event,
    })
    .to_string()
}

/// The `message_action` payload of the "Add to incident timeline" shortcut used by `user` on message `ts`.
fn shortcut_body(app: &TestApp, user: &str, channel: &str, ts: &str, text: &str) -> String {
    let payload = json!({
        "type": "message_action",
        "callback_id": "add_to_timeline",
        "trigger_id": incident_bot::standins::harness::trigger_id(),
        "action_ts": ts,
        "message_ts": ts,
        "response_url": app.slack.response_url(),
        "team": { "id": TEAM_ID, "domain": "acme" },
        "channel": { "id": channel, "name": "incident" },
        "user": { "id": user, "name": user.to_lowercase() },
        "message": { "type": "message", "user": ALICE, "ts": ts, "text": text },
        "token": "legacy-verification-token",
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

async fn shortcut(app: &TestApp, user: &str, channel: &str, ts: &str, text: &str) {
    let resp = app
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            shortcut_body(app, user, channel, ts, text),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

async fn entries(app: &TestApp, id: &str) -> Vec<Entry> {
    incident_bot::store::incidents::timeline_entries(&app.state.db, id)
        .await
        .unwrap()
}

async fn messages(app: &TestApp, id: &str) -> Vec<Entry> {
    entries(app, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "message")
        .collect()
}

/// Waits until `cond` holds of the captured messages.
async fn wait_messages(app: &TestApp, id: &str, cond: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let m = messages(app, id).await;
        if cond(&m) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What people were told only for them: ephemeral messages and `response_url` replies.
fn told(app: &TestApp) -> Vec<String> {
    let mut out: Vec<String> = app.slack.ephemerals().into_iter().map(|e| e.2).collect();
    out.extend(
        app.slack
            .responses()
            .into_iter()
            .filter_map(|r| r.1["text"].as_str().map(str::to_string)),
    );
    out
}

async fn wait_told(app: &TestApp, needle: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !told(app).iter().any(|t| t.contains(needle)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never told {needle:?}: {:?}",
            told(app)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_pushpin_captures_a_message_once() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let ts = app
        .slack
        .say(
            &ch,
            ALICE,
            "rolled back payments to v41 &amp; errors dropping",
        )
        .unwrap();
    let first = pushpin("Ev0PIN1", BOB, &ch, &ts);
    post_event(&app, first.clone()).await;
    let got = wait_messages(&app, &id, |m| m.len() == 1).await;
    let e = &got[0];
    assert_eq!(
        e.actor.as_deref(),
        Some(ALICE),
        "the author, not the reactor"
    );
    assert_eq!(
        e.detail,
        "rolled back payments to v41 &amp; errors dropping"
    );
    assert_eq!(
        Some(e.at),
        ts_instant(&ts).map(|t| {
            // Stored to the millisecond.
            chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
        })
    );
    let link = e.permalink.clone().unwrap();
    assert!(
        link.contains(&ch) && link.contains(&ts.replace('.', "")),
        "{link}"
    );
    wait_told(&app, "📌 Added to INC-1's timeline").await;
    let read = app.slack.count("conversations.history") + app.slack.count("conversations.replies");

    // Slack retries the same delivery; somebody else pins it too.
    post_event(&app, first).await;
    post_event(&app, pushpin("Ev0PIN2", "U0CAROL01", &ch, &ts)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(messages(&app, &id).await.len(), 1, "one entry per message");
    let confirmations = told(&app)
        .iter()
        .filter(|t| t.contains("Added to INC-1"))
        .count();
    assert_eq!(confirmations, 1, "confirmed once: {:?}", told(&app));
    assert_eq!(
        app.slack.count("conversations.history") + app.slack.count("conversations.replies"),
        read,
        "a message already captured is not read again"
    );

    // Other reactions and 📌 outside incident channels capture nothing and say nothing.
    let said = told(&app).len();
    let mut thumbs: Value = serde_json::from_str(&pushpin("Ev0THUMB", BOB, &ch, &ts)).unwrap();
    thumbs["event"]["reaction"] = json!("thumbsup");
    post_event(&app, thumbs.to_string()).await;
    let elsewhere = app.slack.say(GENERAL_CHANNEL_ID, ALICE, "lunch?").unwrap();
    post_event(
        &app,
        pushpin("Ev0PIN3", BOB, GENERAL_CHANNEL_ID, &elsewhere),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&app, &id).await.len(), 1);
    assert_eq!(told(&app).len(), said, "{:?}", told(&app));
}

#[tokio::test]
async fn a_pushpin_on_a_thread_reply_captures_the_reply() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let parent = app.slack.say(&ch, BOB, "what changed?").unwrap();
    let reply = app
        .slack
        .say_in_thread(&ch, Some(&parent), ALICE, "config push at 14:01")
        .unwrap();
    post_event(&app, pushpin("Ev0PIN1", BOB, &ch, &reply)).await;
    let got = wait_messages(&app, &id, |m| m.len() == 1).await;
    assert_eq!(got[0].detail, "config push at 14:01");
    assert_eq!(got[0].actor.as_deref(), Some(ALICE));
    assert_eq!(app.slack.count("conversations.replies"), 1);
}

#[tokio::test]
async fn the_shortcut_captures_a_message_and_refuses_politely_outside_incidents() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let text = "DB failover finished at 14:10";
    let ts = app.slack.say(&ch, ALICE, text).unwrap();
    shortcut(&app, BOB, &ch, &ts, text).await;
    let got = wait_messages(&app, &id, |m| m.len() == 1).await;
    assert_eq!(got[0].detail, text);
    assert_eq!(got[0].actor.as_deref(), Some(ALICE));
    assert!(got[0].permalink.is_some());
    wait_told(&app, "📌 Added to INC-1's timeline").await;

    // Again: nothing new stored, and the user is told it is already there.
    shortcut(&app, BOB, &ch, &ts, text).await;
    wait_told(&app, "already on INC-1's timeline").await;
    assert_eq!(messages(&app, &id).await.len(), 1);

    let other = app.slack.say(GENERAL_CHANNEL_ID, ALICE, "hello").unwrap();
    shortcut(&app, BOB, GENERAL_CHANNEL_ID, &other, "hello").await;
    wait_told(&app, "not an incident's channel").await;
    assert_eq!(messages(&app, &id).await.len(), 1);
}

#[tokio::test]
async fn edits_and_deletions_of_a_captured_message_are_followed() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let ts = app
        .slack
        .say(&ch, ALICE, "root cause: cert expiry")
        .unwrap();
    post_event(&app, pushpin("Ev0PIN1", BOB, &ch, &ts)).await;
    wait_messages(&app, &id, |m| m.len() == 1).await;

    let edit = |event_id: &str, text: &str| {
        message_event(
            event_id,
            &ch,
            json!({
                "subtype": "message_changed", "hidden": true, "ts": "1700000000.000100",
                "message": { "type": "message", "user": ALICE, "text": text, "ts": ts,
                             "edited": { "user": ALICE, "ts": "1700000000.000000" } },
                "previous_message": { "type": "message", "user": ALICE, "text": "root cause: cert expiry", "ts": ts },
            }),
        )
    };
    post_event(
        &app,
        edit("Ev0EDIT1", "root cause: expired TLS cert on payments-db"),
    )
    .await;
    let got = wait_messages(&app, &id, |m| m[0].detail.contains("TLS")).await;
    assert_eq!(got[0].detail, "root cause: expired TLS cert on payments-db");
    // An edit of a message nobody captured changes nothing.
    let other = app.slack.say(&ch, ALICE, "not pinned").unwrap();
    post_event(
        &app,
        message_event(
            "Ev0EDIT2",
            &ch,
            json!({ "subtype": "message_changed", "message": { "user": ALICE, "text": "edited", "ts": other } }),
        ),
    )
    .await;
    assert_eq!(messages(&app, &id).await.len(), 1);

    post_event(
        &app,
        message_event(
            "Ev0DEL1",
            &ch,
            json!({ "subtype": "message_deleted", "hidden": true, "deleted_ts": ts, "ts": "1700000001.000100" }),
        ),
    )
    .await;
    let got = wait_messages(&app, &id, |m| m[0].deleted).await;
    assert!(
        !got[0].detail.contains("TLS"),
        "a deleted message's text is not kept"
    );
    let (_, reply) = app.slash_as(BOB, &ch, "timeline").await.unwrap();
    let reply = reply["text"].as_str().unwrap().to_string();
    assert!(reply.contains("(message deleted)"), "{reply}");
    assert!(!reply.contains("TLS"), "{reply}");

    // A thread parent deleted in Slack becomes a "tombstone" (a message_changed): deleted too.
    let parent = app.slack.say(&ch, ALICE, "thread about the fix").unwrap();
    post_event(&app, pushpin("Ev0PIN2", BOB, &ch, &parent)).await;
    wait_messages(&app, &id, |m| m.len() == 2).await;
    post_event(
        &app,
        message_event(
            "Ev0TOMB1",
            &ch,
            json!({ "subtype": "message_changed", "hidden": true,
                    "message": { "type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                                 "ts": parent, "thread_ts": parent, "user": "USLACKBOT" } }),
        ),
    )
    .await;
    wait_messages(&app, &id, |m| m.iter().all(|e| e.deleted)).await;
}

#[tokio::test]
async fn the_timeline_command_lists_everything_in_order_in_the_readers_zone() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let ts = app
        .slack
        .say(&ch, ALICE, "seeing 500s since 14:02")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _) = app.slash_as(BOB, &ch, "ack").await.unwrap();
    assert_eq!(status, 200);
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    // Captured after the acknowledgement, but written before it: it comes first.
    post_event(&app, pushpin("Ev0PIN1", BOB, &ch, &ts)).await;
    wait_messages(&app, &id, |m| m.len() == 1).await;

    app.slack.set_user_tz(BOB, "America/New_York");
    let (status, reply) = app.slash_as(BOB, &ch, "timeline").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral", "{reply}");
    let text = reply["text"].as_str().unwrap();
    assert!(text.contains("INC-1 timeline"), "{text}");
    assert!(text.contains("America/New_York"), "{text}");
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let local = ts_instant(&ts)
        .unwrap()
        .with_timezone(&ny)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let message_line = text
        .lines()
        .find(|l| l.contains("seeing 500s"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(message_line.contains(&local), "{message_line} vs {local}");
    let at_message = text.find("seeing 500s").unwrap();
    let at_ack = text
        .find("*acknowledged*")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(at_message < at_ack, "in the order things happened: {text}");
    // Every stored line is there.
    assert_eq!(
        text.lines().count() - 1,
        entries(&app, &id).await.len(),
        "{text}"
    );

    let (_, reply) = app
        .slash_as(BOB, GENERAL_CHANNEL_ID, "timeline")
        .await
        .unwrap();
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("works in an incident's channel"),
        "{reply}"
    );
}

#[tokio::test]
async fn the_bots_own_lines_render_in_the_timeline_and_captured_text_never_pings() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let (status, _) = app.slash_as(BOB, &ch, "ack").await.unwrap();
    assert_eq!(status, 200);
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    let ts = app
        .slack
        .say(&ch, ALICE, "<!channel> ack from <@U0BOSS001> please")
        .unwrap();
    post_event(&app, pushpin("Ev0PIN1", BOB, &ch, &ts)).await;
    wait_messages(&app, &id, |m| m.len() == 1).await;

    let (_, reply) = app.slash_as(BOB, &ch, "timeline").await.unwrap();
    let text = reply["text"].as_str().unwrap();
    // The acknowledgement names its author as a Slack mention (Slack shows the name), not as escaped text.
    let ack = text
        .lines()
        .find(|l| l.contains("*acknowledged*"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(ack.contains(&format!("<@{BOB}>")), "{ack}");
    assert!(!text.contains("&lt;@") && !text.contains("&amp;"), "{text}");
    // The captured message's mentions are text: nobody is pinged.
    let pinned = text
        .lines()
        .find(|l| l.contains("please"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!pinned.contains("<!channel>"), "{pinned}");
    assert!(!pinned.contains("<@U0BOSS001>"), "{pinned}");
    assert!(pinned.contains("@U0BOSS001"), "{pinned}");

    // The Markdown export reads as text: names for mentions, no Slack markup, no entity soup.
    let md = incident_bot::incidents::timeline::export_cli(&app.db_url, "INC-1", "md", "UTC")
        .await
        .unwrap();
    let ack = md
        .lines()
        .find(|l| l.contains("| acknowledged |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(ack.contains(&format!("@{BOB}")), "{ack}");
    assert!(!ack.contains("&lt;") && !ack.contains("<!date"), "{ack}");
}

#[tokio::test]
async fn hostile_text_in_a_captured_message_never_reaches_slack_raw() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let hostile = "<!channel> <!here> <@U0BOSS001> <https://evil.example|click me> \u{202e}gnp.exe";
    let ts = app.slack.say(&ch, ALICE, hostile).unwrap();
    post_event(&app, pushpin("Ev0PIN1", BOB, &ch, &ts)).await;
    let got = wait_messages(&app, &id, |m| m.len() == 1).await;
    assert_eq!(got[0].detail, hostile, "stored raw");
    let (_, reply) = app.slash_as(BOB, &ch, "timeline").await.unwrap();
    let text = reply["text"].as_str().unwrap();
    for raw in [
        "<!channel>",
        "<!here>",
        "<@U0BOSS001>",
        "<https://evil",
        "\u{202e}",
    ] {
        assert!(!text.contains(raw), "{raw} in {text}");
        for call in app.slack.calls() {
            assert!(
                !Value::Object(call.params.clone()).to_string().contains(raw),
                "{raw} sent to {}",
                call.method
            );
        }
        for t in told(&app) {
            assert!(!t.contains(raw), "{raw} told: {t}");
        }
    }
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
}

#[tokio::test]
async fn export_writes_the_whole_timeline_as_markdown_and_json() {
    let app = spawn_app().await;
    let (id, ch) = incident(&app).await;
    let ts = app.slack.say(&ch, ALICE, "a | b &lt;c&gt;").unwrap();
    shortcut(&app, BOB, &ch, &ts, "a | b &lt;c&gt;").await;
    wait_messages(&app, &id, |m| m.len() == 1).await;
    let (status, _) = app.slash_as(BOB, &ch, "ack").await.unwrap();
    assert_eq!(status, 200);
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    let stored = entries(&app, &id).await;

    let out = incident_bot::incidents::timeline::export_cli(&app.db_url, "INC-1", "json", "UTC")
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), stored.len());
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    let stored_kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, stored_kinds);
    let msg = rows.iter().find(|r| r["kind"] == "message").unwrap();
    assert_eq!(msg["text"], "a | b <c>");
    assert_eq!(msg["author"], ALICE);
    assert!(msg["permalink"].as_str().unwrap().starts_with("https://"));
    for r in rows {
        let at = r["at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        assert!(at.ends_with('Z'), "{at}");
    }

    let md =
        incident_bot::incidents::timeline::export_cli(&app.db_url, "INC-1", "md", "Asia/Tokyo")
            .await
            .unwrap();
    assert!(md.starts_with("# INC-1 timeline"), "{md}");
    assert!(
        md.contains("| time | kind | author | text | link |"),
        "{md}"
    );
    assert!(md.contains("a \\| b &lt;c&gt;"), "{md}");
    assert!(md.contains("JST"), "{md}");
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| 20")).count(),
        stored.len()
    );

    // The real binary prints the same, reading the database named on its command line.
    let (code, stdout, stderr) =
        export_binary(&["INC-1", "--format", "json", "--database-url", &app.db_url]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, out);

    let err = incident_bot::incidents::timeline::export_cli(&app.db_url, "INC-9", "md", "UTC")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no incident INC-9"), "{err}");
}

/// Runs `incident-bot export <args>` in an empty directory; (exit code, stdout, stderr).
fn export_binary(args: &[&str]) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("incident-bot-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .arg("export")
        .args(args)
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("INCIDENT_BOT_CONFIG")
        .output()
        .expect("the binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_never_creates_or_migrates_a_database() {
    let path = std::env::temp_dir().join(format!("incident-bot-none-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    let (code, _, stderr) = export_binary(&["INC-1", "--database-url", &url]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("does not exist; run `incident-bot migrate`"),
        "{stderr}"
    );
    assert!(!path.exists(), "export created the database file");
    let (code, _, stderr) = export_binary(&["INC-1", "--format", "pdf", "--database-url", &url]);
    assert_ne!(code, 0);
    assert!(stderr.contains("use md or json"), "{stderr}");
}
