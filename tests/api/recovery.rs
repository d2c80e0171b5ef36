//! A bot process killed in the middle of setting up a war room has its unfinished steps finished within 5 s,
//! without any step done twice (the real binary, killed with SIGKILL): by itself started again, or by a second
//! replica on the same database with no restart; and a declaration that a process
//! acknowledged but died before storing as an incident still becomes one incident with its whole war room.

use std::time::Duration;

use incident_bot::standins::harness::{catalog_yaml_for, BotProcess, SIGNING_SECRET};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{Fault, SlackStandin, INCIDENTS_CHANNEL_ID};

/// The real binary against the stand-ins, with the shipped lease (30 s) and sweep interval. Slack calls get 30 s
/// before they time out, so a hung call is still hanging when the process is killed.
async fn start_bot(
    db_url: &str,
    catalog_path: &std::path::Path,
    slack: &SlackStandin,
    pager: &PagerStandin,
) -> BotProcess {
    let mut cmd = BotProcess::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_incident-bot")),
        db_url,
        catalog_path,
        std::path::Path::new("/nonexistent/incident-bot.toml"),
        slack,
        pager,
    );
    cmd.env("INCIDENT_BOT_SLACK__CALL_TIMEOUT_MS", "30000");
    // The shipped lease and sweep interval: liveness, not a short lease, is what hands the work over.
    let shipped = incident_bot::config::Settings::default().setup;
    cmd.env("INCIDENT_BOT_SETUP__LEASE_MS", shipped.lease_ms.to_string());
    cmd.env(
        "INCIDENT_BOT_SETUP__SWEEP_INTERVAL_MS",
        shipped.sweep_interval_ms.to_string(),
    );
    BotProcess::spawn(cmd, Duration::from_secs(30))
        .await
        .expect("the bot starts")
}

/// How long a war room may take to be finished by another process after its first one was killed.
const TAKE_OVER_LIMIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_server_killed_mid_setup_finishes_within_5_s_of_the_restart_without_running_any_step_twice(
) {
    killed_mid_setup(Survivor::StartedAfterTheKill).await;
}

#[tokio::test]
async fn a_replica_finishes_the_war_room_of_a_replica_killed_mid_setup_within_5_s_without_a_restart(
) {
    killed_mid_setup(Survivor::AlreadyRunning).await;
}

/// Who finishes the war room of the killed process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Survivor {
    /// The same bot, started again after the kill.
    StartedAfterTheKill,
    /// A second replica on the same database, running before the kill; nothing is restarted.
    AlreadyRunning,
}

async fn killed_mid_setup(survivor: Survivor) {
    incident_bot::standins::install_tls();
    let slack = SlackStandin::start().await.unwrap();
    let pager = PagerStandin::start().await.unwrap();
    let db_url = crate::helpers::fresh_database_url().await;
    let dir = std::env::temp_dir().join(format!("incident-bot-recovery-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog_path = dir.join("catalog.yaml");
    std::fs::write(&catalog_path, catalog_yaml_for(&pager)).unwrap();

    // The card post and the bookmarks take effect in Slack but never answer: the bot is killed while waiting.
    slack.fail_next("chat.postMessage", Fault::Hang);
    slack.fail_next("bookmarks.add", Fault::Hang);
    let mut first = start_bot(&db_url, &catalog_path, &slack, &pager).await;

    let body = serde_urlencoded::to_string([
        ("team_id", "T0001"),
        ("user_id", "U0DECLARER"),
        ("channel_id", "CGENERAL"),
        ("command", "/incident"),
        ("text", "start Payments down sev:P1 service:payments"),
        ("response_url", &slack.response_url()),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp();
    let resp = reqwest::Client::new()
        .post(format!("{}/slack/commands", first.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            incident_bot::slack::verify::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // Wait until Slack has seen the hung calls (their effects are applied), then kill -9.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while slack.count("chat.postMessage") < 1 || slack.count("bookmarks.add") < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "setup reached the card: {:?}",
            slack
                .calls()
                .iter()
                .map(|c| c.method.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let replica = match survivor {
        Survivor::AlreadyRunning => Some(start_bot(&db_url, &catalog_path, &slack, &pager).await),
        Survivor::StartedAfterTheKill => None,
    };
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = tokio::time::Instant::now();
    drop(first);

    let (second, from) = match replica {
        Some(running) => (running, killed),
        None => {
            let restarted = start_bot(&db_url, &catalog_path, &slack, &pager).await;
            (restarted, tokio::time::Instant::now())
        }
    };
    let db = incident_bot::db::Db::connect(&db_url).await.unwrap();
    let id: String = sqlx::query_scalar("SELECT id FROM incidents WHERE number = 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    loop {
        let steps = incident_bot::incidents::setup::step_report(&db, &id)
            .await
            .unwrap();
        if steps.iter().all(|s| s.state == "done") {
            break;
        }
        assert!(
            from.elapsed() < TAKE_OVER_LIMIT,
            "{survivor:?}: setup not finished {TAKE_OVER_LIMIT:?} after the {}: {steps:?}",
            if survivor == Survivor::AlreadyRunning {
                "kill"
            } else {
                "restart"
            }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);

    assert_eq!(slack.count("conversations.create"), 1, "one channel");
    let chans: Vec<_> = slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-1"))
        .collect();
    assert_eq!(chans.len(), 1);
    let ch = &chans[0];
    let cards = ch
        .messages
        .iter()
        .filter(|m| {
            m.blocks
                .as_ref()
                .is_some_and(|b| b.to_string().contains("card:"))
        })
        .count();
    assert_eq!(cards, 1, "one card");
    assert_eq!(ch.pins.len(), 1, "pinned once");
    assert_eq!(
        ch.bookmarks.len(),
        2,
        "runbook and dashboard once each: {:?}",
        ch.bookmarks
    );
    let announcements = slack
        .channels()
        .into_iter()
        .find(|c| c.id == INCIDENTS_CHANNEL_ID)
        .unwrap()
        .messages
        .len();
    assert_eq!(announcements, 1, "announced once");
    assert_eq!(pager.pagerduty_alerts().len(), 1, "paged once");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a process leaves behind when it dies right after acknowledging a declaration, before its war room
/// started: the incident stored with its channel step claimed by that process (`src/store/declarations.rs`).
/// The process has no heartbeat, so any replica's sweeper takes the step over and sets the war room up once.
#[tokio::test]
async fn a_declaration_acknowledged_by_a_process_that_died_before_starting_its_war_room_gets_one_war_room(
) {
    let app = crate::helpers::spawn_app().await;
    let db = &app.state.db;
    let acknowledged = chrono::Utc::now() - chrono::Duration::seconds(1);
    let request = incident_bot::incidents::declare::DeclareRequest {
        team_id: incident_bot::standins::harness::TEAM_ID.into(),
        user_id: "U0DECLARER".into(),
        origin_channel: Some(incident_bot::standins::slack::GENERAL_CHANNEL_ID.into()),
        response_url: None,
        title: incident_bot::domain::text::Title::parse("Checkout down").unwrap(),
        severity: incident_bot::domain::severity::Severity::P1,
        service: Some("payments".into()),
        detection: incident_bot::domain::severity::DetectionMethod::parse("customer").unwrap(),
        started_at: Some(acknowledged - chrono::Duration::minutes(1)),
        sighting: None,
        private: false,
    };
    let dead = incident_bot::store::declarations::Claim {
        owner: "a-dead-process".into(),
        lease_ms: 30_000,
    };
    let stored = incident_bot::store::declarations::store(db, &[(request, acknowledged)], &dead)
        .await
        .unwrap()
        .pop()
        .flatten()
        .expect("not a replay");

    let id = app.incident_id(1).await.expect("stored");
    assert_eq!(id, stored.id);
    let steps = app
        .wait_for_setup(&id, crate::helpers::SETUP_LIMIT)
        .await
        .unwrap();
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    let inc = incident_bot::incidents::load(db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            inc.title.as_str(),
            inc.severity.as_str(),
            inc.service.as_deref()
        ),
        ("Checkout down", "P1", Some("payments"))
    );
    assert_eq!(inc.detection.as_str(), "customer");
    assert_eq!(
        (inc.timeline.declared_at - inc.timeline.started_at).num_minutes(),
        1
    );
    assert_eq!(inc.channel_name.as_deref(), Some("inc-1-checkout-down"));
    assert_eq!(app.slack.count("conversations.create"), 1, "one channel");
    assert_eq!(app.pager.pagerduty_alerts().len(), 1, "paged once");

    // Numbering goes on after the taken-over declaration.
    let (status, reply) = app.slash("start Search slow").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(crate::helpers::declared_number(&reply), 2);
    let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(incidents <= 2);
    app.incident_id(2).await.unwrap();
}
