//! The postmortem draft (SPEC §13): uploaded to the incident channel at resolution and on `/incident
//! postmortem`, as Markdown built from stored data only; compared byte for byte with a golden file
//! (`UPDATE_GOLDEN=1` rewrites it), and `incident-bot export … --format postmortem` writes the same bytes.

use std::time::Duration;

use incident_bot::clock::Clock;
use incident_bot::config::AlertRouteSettings;
use incident_bot::domain::deploy::NewDeploy;
use incident_bot::standins::harness::{Harness, TEAM_ID};
use serde_json::json;

use crate::helpers::{declare_done, incident, World};

const LIMIT: Duration = Duration::from_secs(20);

fn golden_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/postmortem")
        .join(name)
}

/// Compares `got` with the golden file `name`, or rewrites it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no golden file {}: run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        want == got,
        "the draft differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        path.display()
    );
}

async fn slash_in(bot: &Harness, id: &str, user: &str, text: &str) -> String {
    let ch = incident(bot, id).await.channel_id.unwrap();
    let (status, reply) = bot.slash_as(user, &ch, text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    bot.wait_for_effects(id, LIMIT).await.unwrap();
    reply["text"].as_str().unwrap_or_default().to_string()
}

/// The "Add to incident timeline" shortcut on a message of `channel` written at `at`.
async fn capture(bot: &Harness, id: &str, at: chrono::DateTime<chrono::Utc>, text: &str) {
    let channel = incident(bot, id).await.channel_id.unwrap();
    let ts = format!("{}.000100", at.timestamp());
    let payload = json!({
        "type": "message_action", "callback_id": "add_to_timeline",
        "trigger_id": incident_bot::standins::harness::trigger_id(),
        "action_ts": ts, "message_ts": ts, "response_url": bot.slack.response_url(),
        "team": { "id": TEAM_ID, "domain": "acme" }, "channel": { "id": channel, "name": "incident" },
        "user": { "id": "U0ALICE", "name": "alice" },
        "message": { "type": "message", "user": "U0ALICE", "ts": ts, "text": text },
        "token": "legacy-verification-token",
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let resp = bot
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while incident_bot::store::incidents::count_events(&bot.state.db, id, "message")
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "message never captured"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Files uploaded to `channel` named like a postmortem draft, as text.
fn drafts(bot: &Harness, channel: &str) -> Vec<String> {
    bot.slack
        .uploaded_files()
        .into_iter()
        .filter(|f| f.channel_id == channel && f.filename.ends_with("-postmortem.md"))
        .map(|f| String::from_utf8(f.bytes).unwrap())
        .collect()
}

async fn wait_drafts(bot: &Harness, channel: &str, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let d = drafts(bot, channel);
        if d.len() >= n {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} draft(s), wanted {n}",
            d.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_draft_uploaded_at_resolution_matches_the_golden_file_and_the_export() {
    let w = World::new().await;
    let bot = w
        .bot_with(|s| {
            s.incidents.default_timezone = "Europe/Paris".into();
            // No escalation line racing the commands below.
            s.incidents.unresolved_escalation_minutes = 600;
            s.alerts.routes.push(AlertRouteSettings {
                matchers: vec!["team=\"payments\"".into()],
                service: Some("payments".into()),
                severity: Some("P1".into()),
                action: "declare".into(),
                auto_resolve: false,
            });
        })
        .await;
    let t0 = w.clock.now();
    incident_bot::store::deploys::insert(
        &bot.state.db,
        &NewDeploy {
            id: Some("dep-1".into()),
            service: "payments".into(),
            environment: "production".into(),
            version: Some("v2.14.1".into()),
            commit_sha: None,
            url: Some("https://ci.acme.example/deploys/1".into()),
            author: Some("alice".into()),
            deployed_at: t0 - chrono::Duration::minutes(45),
            source: "test".into(),
        },
        t0,
    )
    .await
    .unwrap();
    // A hostile title: a newline, a heading mark, a table bar, a mention.
    let id = declare_done(
        &bot,
        "start Card payments failing # | <!channel> sev:P1 service:payments via:customer started:-5m",
    )
    .await;
    let channel = incident(&bot, &id).await.channel_id.unwrap();

    w.clock.advance(chrono::Duration::minutes(4));
    slash_in(&bot, &id, "U0ALICE", "ack").await;
    slash_in(&bot, &id, "U0ALICE", "role ic <@U0ALICE|alice>").await;
    w.clock.advance(chrono::Duration::minutes(3));
    capture(
        &bot,
        &id,
        w.clock.now(),
        "Declines spiked after v2.14.1 — *rolling back* | see <https://x.test|x>",
    )
    .await;
    w.clock.advance(chrono::Duration::minutes(20));
    slash_in(&bot, &id, "U0ALICE", "identified").await;
    let reply = slash_in(
        &bot,
        &id,
        "U0ALICE",
        "followup Alert on card declines <@U0BOB|bob> due:2026-11-30",
    )
    .await;
    assert!(reply.contains("#1"), "{reply}");
    w.clock.advance(chrono::Duration::minutes(6));
    slash_in(&bot, &id, "U0ALICE", "fixed").await;
    w.clock.advance(chrono::Duration::minutes(5));
    slash_in(&bot, &id, "U0ALICE", "resolved").await;

    let uploaded = wait_drafts(&bot, &channel, 1).await;
    assert_eq!(uploaded.len(), 1, "one draft at resolution");
    let md = &uploaded[0];
    golden("resolved_p1.md", md);
    // What a reader checks: the slowest phase named, the deploy, coverage and the follow-up.
    assert!(md.contains("| Triage | 23m | 53% | **slowest** |"), "{md}");
    assert!(md.contains("1. **Why did triage take 23m"), "{md}");
    assert!(
        md.contains("**payments** v2.14.1 by alice, 40m before impact"),
        "{md}"
    );
    assert!(
        md.contains("- **Alert routes that target it:** 1 (declare)"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] #1 Alert on card declines — owner U0BOB, due 2026-11-30"),
        "{md}"
    );
    assert!(
        md.contains("Times in Europe/Paris") || md.contains("times in Europe/Paris"),
        "{md}"
    );
    // The title cannot make structure: one heading line, escaped.
    assert_eq!(
        md.lines().filter(|l| l.starts_with("# ")).count(),
        1,
        "{md}"
    );
    assert!(md.contains("\\# \\| \\<\\!channel\\>"), "{md}");
    // The upload's comment pings nobody.
    let comments: Vec<String> = bot
        .slack
        .calls_to("files.completeUploadExternal")
        .into_iter()
        .map(|c| {
            c.params["initial_comment"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        comments.iter().all(|c| !c.contains("<!channel>")),
        "{comments:?}"
    );

    // The export writes the same bytes, read-only.
    let out = incident_bot::incidents::postmortem::export_cli(
        &bot.state.settings,
        &bot.state.catalog,
        &w.db_url,
        "INC-1",
        None,
        w.clock.now(),
    )
    .await
    .unwrap();
    assert!(out == *md, "export differs:\n{out}");

    // `/incident postmortem` uploads it again, once per request (a replay has no effect).
    let (status, _) = bot
        .slash_as("U0ALICE", &channel, "postmortem")
        .await
        .unwrap();
    assert_eq!(status, 200);
    bot.wait_for_effects(&id, LIMIT).await.unwrap();
    let again = wait_drafts(&bot, &channel, 2).await;
    assert_eq!(again[1], *md);
}

#[tokio::test]
async fn postmortem_outside_an_incident_channel_says_where_to_run_it() {
    let w = World::new().await;
    let bot = w.bot().await;
    let (status, reply) = bot.slash("postmortem").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("incident's channel"),
        "{reply}"
    );
    assert!(bot.slack.uploaded_files().is_empty());
}

#[test]
fn the_postmortem_export_never_creates_a_database() {
    let dir = std::env::temp_dir().join(format!("incident-bot-pm-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("none.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args([
            "export",
            "INC-1",
            "--format",
            "postmortem",
            "--database-url",
        ])
        .arg(format!("sqlite://{}", db.display()))
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("INCIDENT_BOT_CONFIG")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("does not exist; run `incident-bot migrate`"),
        "{stderr}"
    );
    assert!(!db.exists(), "export created the database file");
    let _ = std::fs::remove_dir_all(&dir);
}
