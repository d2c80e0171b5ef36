//! The fault and abuse suite (issue 7), each test against one bot:
//!
//! 1. Slack answering 500, 429 with `Retry-After`, hanging or answering after `slack.call_timeout_ms`, and
//!    dropping the connection after the call took effect — during war-room setup and during phase updates —
//!    and the pager failing the same ways: every step and update still happens, and happens once.
//! 2. The database restarted mid-run. PostgreSQL: the test database refuses connections for a second and every
//!    session of the bot is terminated (`pg_terminate_backend`), twice, while commands and events stream in.
//!    SQLite runs inside the bot's process and cannot restart on its own; the honest equivalent is another
//!    process holding the database file's write lock (`BEGIN EXCLUSIVE`, like a stuck backup) for 1.5 s, twice.
//!    Either way: nothing the bot acknowledged is lost, what it refused is retried by Slack and taken once, and
//!    the bot recovers without a restart.
//! 3. 10,000 mixed requests (`FAULTS_REQUESTS` changes the count) against the real binary, 32 in flight: valid
//!    commands, clicks, events, Slack retries and deploy events; bad signatures, replays, oversized, malformed
//!    and random bodies; unicode and control characters. Each is answered with the right status, each valid one
//!    takes effect exactly once, nothing forged or replayed takes effect, the process never panics and its memory
//!    stays bounded.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use incident_bot::db::{Backend, Db};
use incident_bot::domain::phase::Milestone;
use incident_bot::domain::text;
use incident_bot::slack::blocks::{announce_block_id, card_block_id};
use incident_bot::slack::verify::sign;
use incident_bot::standins::harness::{
    block_actions_body, catalog_yaml_for, slash_body, BotProcess, SIGNING_SECRET,
};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{
    Channel, Fault, Message, SlackStandin, BOT_USER_ID, GENERAL_CHANNEL_ID, INCIDENTS_CHANNEL_ID,
};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

const LIMIT: Duration = Duration::from_secs(30);
const DEPLOY_TOKEN: &str = "harness-deploy-token";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn block_ids(m: &Message) -> Vec<String> {
    m.blocks
        .as_ref()
        .and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn with_block(ch: &Channel, prefix: &str) -> usize {
    ch.messages
        .iter()
        .filter(|m| block_ids(m).iter().any(|b| b.starts_with(prefix)))
        .count()
}

fn channel(slack: &SlackStandin, id: &str) -> Channel {
    slack
        .channels()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("channel {id}"))
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect(sql)
}

/// Waits until the `COUNT(*)` of `sql` is 0.
async fn settle(db: &Db, what: &str, sql: &'static str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = count(db, sql).await;
        if left == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {left} left after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn everything_settled(db: &Db, limit: Duration) {
    settle(
        db,
        "setup steps",
        "SELECT COUNT(*) FROM setup_steps WHERE state IN ('waiting', 'pending', 'running')",
        limit,
    )
    .await;
    settle(
        db,
        "outbox rows",
        "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'running')",
        limit,
    )
    .await;
}

/// Checks one incident's war room: one channel, card, pin, set of bookmarks and announcement.
fn assert_one_war_room(
    slack: &SlackStandin,
    inc: &incident_bot::incidents::Incident,
    bookmarks: usize,
) {
    let key = inc.key();
    let id = inc
        .channel_id
        .as_deref()
        .unwrap_or_else(|| panic!("{key} has a channel"));
    let room = channel(slack, id);
    assert_eq!(
        with_block(&room, &card_block_id(&inc.id)),
        1,
        "{key}: one card"
    );
    assert_eq!(room.pins.len(), 1, "{key}: pinned once");
    let links: HashSet<&str> = room.bookmarks.iter().map(|b| b.link.as_str()).collect();
    assert_eq!(
        (room.bookmarks.len(), links.len()),
        (bookmarks, bookmarks),
        "{key}: each bookmark once: {:?}",
        room.bookmarks
    );
    assert_eq!(
        with_block(
            &channel(slack, INCIDENTS_CHANNEL_ID),
            &announce_block_id(&inc.id)
        ),
        1,
        "{key}: announced once"
    );
}

// ---------------------------------------------------------------------------------------------------------
// 1. Slack and the pager failing in every way
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn slack_500s_429s_timeouts_and_dropped_connections_delay_the_war_room_and_phases_but_nothing_happens_twice(
) {
    let app = spawn_app_with(|s| {
        s.slack.call_timeout_ms = 400;
        s.pager.call_timeout_ms = 400;
    })
    .await;
    incident_bot::startup::warm_up(&app.state).await;
    let slack = &app.slack;
    let slow = Fault::Delay(Duration::from_millis(1_200));
    // Setup: every Web API call the war room needs fails at least once, in a different way.
    slack.fail_next("conversations.create", Fault::Status(500));
    slack.fail_next("conversations.create", Fault::Drop);
    slack.fail_next(
        "conversations.setTopic",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    slack.fail_next("conversations.setTopic", Fault::Status(502));
    slack.fail_next("conversations.invite", slow.clone());
    slack.fail_next("chat.postMessage", Fault::Drop);
    slack.fail_next("chat.postMessage", slow.clone());
    slack.fail_next("pins.add", Fault::Hang);
    slack.fail_next("bookmarks.add", Fault::Status(500));
    slack.fail_next("bookmarks.add", Fault::Drop);
    app.pager.fail_next("pagerduty", Fault::Status(500));
    app.pager.fail_next("pagerduty", Fault::Drop);
    app.pager.fail_next(
        "pagerduty",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );

    let started = Instant::now();
    let (status, reply) = app
        .slash("start Payments down sev:P1 service:payments")
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    let acked = started.elapsed();
    let id = app.incident_id(1).await.unwrap();
    let steps = app.wait_for_setup(&id, LIMIT).await.unwrap();
    let setup_took = started.elapsed();
    assert!(
        steps.iter().all(|s| s.state == "done"),
        "every step done despite the faults: {steps:#?}"
    );
    let retried: Vec<String> = steps
        .iter()
        .filter(|s| s.attempts > 1)
        .map(|s| format!("{} ×{}", s.step, s.attempts))
        .collect();
    for step in ["channel", "topic", "invite", "pin", "bookmarks", "page"] {
        assert!(
            retried.iter().any(|r| r.starts_with(step)),
            "{step} was retried: {retried:?}"
        );
    }
    let inc = incident_bot::incidents::load(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    let channels: Vec<_> = slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .collect();
    assert_eq!(
        channels.len(),
        1,
        "one channel, though its creation was answered by a dropped connection"
    );
    assert_one_war_room(slack, &inc, 2);
    let room = channel(slack, inc.channel_id.as_deref().unwrap());
    assert!(room.topic.contains("Payments down"), "{}", room.topic);
    for user in ["U0DECLARER", "U0PAYOWN1", "U0PAYOWN2", "U0PAYONC1"] {
        assert!(room.members.iter().any(|m| m == user), "{user} invited");
    }
    let alerts = app.pager.pagerduty_alerts();
    assert_eq!(
        alerts.len(),
        1,
        "one page (the pager collapses a retried one by its key)"
    );

    // Phase updates: the card refresh and the timeline lines meet the same faults.
    slack.fail_next("chat.update", Fault::Status(500));
    slack.fail_next(
        "chat.update",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    slack.fail_next("chat.update", Fault::Hang);
    slack.fail_next("chat.postMessage", Fault::Drop);
    slack.fail_next("chat.postMessage", slow);
    slack.fail_next("chat.postMessage", Fault::Status(503));
    slack.fail_next("chat.postMessage", Fault::Hang);
    for m in Milestone::ALL {
        assert_eq!(
            app.click("U0RESPOND1", m.action_id(), &id).await.unwrap(),
            200
        );
    }
    app.wait_for_effects(&id, LIMIT).await.unwrap();
    let failed = count(
        &app.state.db,
        "SELECT COUNT(*) FROM outbox WHERE state <> 'done'",
    )
    .await;
    assert_eq!(failed, 0, "every update went out in the end");
    let room = channel(slack, inc.channel_id.as_deref().unwrap());
    let events: Vec<String> =
        sqlx::query_scalar("SELECT id FROM timeline_events WHERE incident_id = $1")
            .bind(&id)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(events.len(), 4, "four phase changes stored");
    for e in &events {
        assert_eq!(
            with_block(&room, &format!("ob:post:{e}")),
            1,
            "timeline line {e} posted once"
        );
    }
    assert_eq!(with_block(&room, "ob:post:"), 4, "no stray timeline line");
    assert_eq!(
        with_block(&room, &format!("ob:summary:{id}:")),
        1,
        "one summary in the room"
    );
    assert_eq!(
        with_block(
            &channel(slack, INCIDENTS_CHANNEL_ID),
            &format!("ob:summary:{id}:")
        ),
        1,
        "one summary in #incidents"
    );
    let card = room
        .messages
        .iter()
        .find(|m| block_ids(m).iter().any(|b| *b == card_block_id(&id)))
        .expect("the card");
    assert!(card.edited >= 1, "the card was updated in place");
    let card_text = incident_bot::standins::slack::blocks_to_text(card.blocks.as_ref().unwrap());
    assert!(
        card_text.contains("*Status* Monitoring") && card_text.contains("*MTTR*"),
        "{card_text}"
    );
    eprintln!(
        "faults/slack: acknowledged in {acked:?}, war room done in {setup_took:.1?} with retries {retried:?}; \
         {} Slack calls, {} pager requests",
        slack.calls().len(),
        app.pager.requests().len()
    );
}

// ---------------------------------------------------------------------------------------------------------
// 2. The database restarted mid-run
// ---------------------------------------------------------------------------------------------------------

/// Takes the database away for a moment, as a restart would (see the module doc for SQLite).
async fn restart_database(app: &TestApp) {
    if app.db_url.starts_with("postgres") {
        let name = app.db_url.rsplit('/').next().expect("db name").to_string();
        let admin_url = std::env::var("TEST_DATABASE_URL").expect("postgres test url");
        let admin = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("admin connection");
        let exec = |sql: String| {
            let admin = admin.clone();
            async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&admin)
                    .await
                    .expect("admin statement");
            }
        };
        exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
        exec(format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        exec(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
        admin.close().await;
    } else {
        let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.db_url)
            .await
            .expect("a second connection to the file");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut other)
            .await
            .expect("write lock");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        sqlx::query("COMMIT")
            .execute(&mut other)
            .await
            .expect("unlock");
        let _ = sqlx::Connection::close(other).await;
    }
}

fn event_body(event_id: &str) -> String {
    json!({
        "token": "legacy-verification-token",
        "team_id": incident_bot::standins::harness::TEAM_ID,
        "api_app_id": "A0001",
        "event": { "type": "message", "user": "U061F7AUR", "text": "hello", "ts": "1764100000.000001",
                   "channel": GENERAL_CHANNEL_ID, "event_ts": "1764100000.000001" },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_764_100_000,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_loses_nothing_the_bot_acknowledged() {
    let app = spawn_app_with(|_| {}).await;
    incident_bot::startup::warm_up(&app.state).await;
    let total = 48usize;
    let app = Arc::new(app);
    let begin = tokio::time::Instant::now();
    let stream = {
        let app = app.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..total)
                .map(|i| {
                    let app = app.clone();
                    async move {
                        tokio::time::sleep_until(begin + Duration::from_millis(60 * i as u64))
                            .await;
                        let sent = Instant::now();
                        let declared = app
                            .slash(&format!("start Outage dbr{i} sev:P2 service:search"))
                            .await
                            .map(|(s, v)| (s, v["text"].as_str().unwrap_or_default().to_string()))
                            .unwrap_or((0, String::new()));
                        let event = app
                            .post_signed("/slack/events", JSON, event_body(&format!("EvDBR{i}")))
                            .await
                            .map(|r| r.status().as_u16())
                            .unwrap_or(0);
                        (i, declared, event, sent.elapsed())
                    }
                })
                .buffer_unordered(total)
                .collect::<Vec<_>>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    restart_database(&app).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    restart_database(&app).await;
    let results = stream.await.expect("the request stream");

    // Slack retries an event delivery that was not answered 200; a person re-types a refused command.
    let mut refused_events = 0;
    let slowest = results.iter().map(|r| r.3).max().unwrap_or_default();
    for (i, _, event, _) in &results {
        if *event != 200 {
            refused_events += 1;
            let resp = app
                .post_signed("/slack/events", JSON, event_body(&format!("EvDBR{i}")))
                .await
                .expect("retry");
            assert_eq!(
                resp.status().as_u16(),
                200,
                "the retry is taken once the database is back"
            );
        }
    }
    let after: Vec<u16> = futures::future::join_all((0..4).map(|i| {
        let app = app.clone();
        async move {
            app.slash(&format!("start After the restart dba{i} sev:P3"))
                .await
        }
    }))
    .await
    .into_iter()
    .map(|r| r.expect("answered").0)
    .collect();
    assert_eq!(after, vec![200; 4], "the bot recovered without a restart");

    let db = &app.state.db;
    everything_settled(db, LIMIT).await;
    let mut accepted = 0;
    let mut refused = Vec::new();
    for (i, (status, text), _, _) in &results {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE title = $1")
            .bind(format!("Outage dbr{i}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if *status == 200 && text.contains("Declaring *INC-") {
            accepted += 1;
            assert_eq!(
                stored, 1,
                "acknowledged declaration {i} is stored once: {text}"
            );
        } else {
            refused.push((*i, *status));
            assert!(stored <= 1, "declaration {i} stored at most once");
            // Slack does not retry a slash command: the user is told, in words, to try again.
            assert_eq!(
                (*status, text.as_str()),
                (200, incident_bot::http::slack::commands::FAILED),
                "declaration {i} refused with a reply the user can act on"
            );
        }
    }
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM processed_events WHERE event_id LIKE 'EvDBR%'"
        )
        .await,
        total as i64,
        "every event taken exactly once, retries included"
    );
    // Every stored incident got its whole war room, once.
    let failed_steps = count(db, "SELECT COUNT(*) FROM setup_steps WHERE state <> 'done'").await;
    assert_eq!(failed_steps, 0, "every setup step done after the restart");
    let incidents: Vec<String> = sqlx::query_scalar("SELECT id FROM incidents ORDER BY number")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let rooms = app
        .slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .count();
    assert_eq!(rooms, incidents.len(), "one channel per stored incident");
    for id in &incidents {
        let inc = incident_bot::incidents::load(db, id)
            .await
            .unwrap()
            .unwrap();
        let bookmarks = inc
            .service
            .as_deref()
            .and_then(|name| app.state.catalog.get(name))
            .map_or(0, |svc| {
                usize::from(svc.runbook_url.is_some()) + usize::from(svc.dashboard_url.is_some())
            });
        assert_one_war_room(&app.slack, &inc, bookmarks);
    }
    let (ready, _) = {
        let r = reqwest::get(format!("{}/readyz", app.base_url))
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(ready, 200);
    // The outage was real: PostgreSQL refused work while it was down; SQLite made writers wait for the lock.
    match db.backend {
        Backend::Postgres => assert!(!refused.is_empty(), "some requests met the outage"),
        Backend::Sqlite => assert!(
            slowest >= Duration::from_millis(1_000),
            "requests waited for the lock ({slowest:?})"
        ),
    }
    eprintln!(
        "faults/database ({:?}): {total} declarations + {total} events during two outages (slowest answer \
         {slowest:.1?}): {accepted} declarations \
         acknowledged and stored, {} refused {:?} (told to try again; not stored, or stored at most once); {refused_events} events \
         refused then retried and taken once; {} incidents set up with one war room each",
        db.backend,
        refused.len(),
        refused,
        incidents.len()
    );
}

// ---------------------------------------------------------------------------------------------------------
// 3. 10,000 mixed requests
// ---------------------------------------------------------------------------------------------------------

/// What a request of the storm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Declare,
    DeclareOdd,
    Click,
    Event,
    EventRetry,
    Mention,
    Help,
    List,
    Unknown,
    OutsideChannel,
    BadSignature,
    Replay,
    Oversized,
    Malformed,
    RandomSigned,
    RandomUnsigned,
    Deploy,
    DeployRetry,
    DeployBadToken,
    DeployMalformed,
}

/// The mix, per 100 requests.
const MIX: [(Kind, usize); 20] = [
    (Kind::Declare, 1),
    (Kind::DeclareOdd, 1),
    (Kind::Click, 6),
    (Kind::Event, 8),
    (Kind::EventRetry, 3),
    (Kind::Mention, 1),
    (Kind::Help, 3),
    (Kind::List, 2),
    (Kind::Unknown, 6),
    (Kind::OutsideChannel, 2),
    (Kind::BadSignature, 15),
    (Kind::Replay, 10),
    (Kind::Oversized, 3),
    (Kind::Malformed, 15),
    (Kind::RandomSigned, 6),
    (Kind::RandomUnsigned, 6),
    (Kind::Deploy, 5),
    (Kind::DeployRetry, 2),
    (Kind::DeployBadToken, 3),
    (Kind::DeployMalformed, 2),
];

/// How a Slack request is signed.
#[derive(Debug, Clone)]
enum Signing {
    /// Correctly, now.
    Valid,
    /// Correctly, `offset` seconds away from now (outside the 5-minute window).
    Stale(i64),
    /// With the wrong secret.
    WrongSecret,
    /// A made-up signature.
    Garbage,
    /// Headers missing.
    Missing,
    /// A correct signature of another body.
    OtherBody,
    /// A timestamp that is not a number.
    BadTimestamp,
    /// Not a Slack request (deploy API): no Slack headers.
    NotSlack,
}

#[derive(Debug, Clone)]
struct Req {
    kind: Kind,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    signing: Signing,
    bearer: Option<&'static str>,
    /// Statuses that are right for it.
    expect: &'static [u16],
    /// Text the answer must contain.
    expect_text: Option<&'static str>,
    /// Pad the body with `a` up to this many bytes when sending (oversized bodies are made on the fly).
    pad_to: usize,
}

/// Unicode and control characters that users (or attackers) put into text; the first 7 are printable.
const ODD: [&str; 14] = [
    "🔥💥",
    "Zahlungsausfall äöüß",
    "ошибка платежей",
    "支付失败",
    "\u{200f}مدفوعات\u{200f}",
    "e\u{301}\u{302}\u{303}",
    "👩\u{200d}👩\u{200d}👧",
    "\u{7}\u{8}bell",
    "\u{1b}[31mred\u{1b}[0m",
    "line\r\nbreak",
    "tab\tstop",
    "nul\u{0}byte",
    "\u{feff}bom",
    "\u{202e}reversed",
];

struct Storm {
    reqs: Vec<Req>,
    /// Unique tokens in the titles of valid declarations.
    declared: Vec<String>,
    /// Tokens that must never be stored (forged or replayed declarations).
    forbidden: Vec<String>,
    events: HashSet<String>,
    mentions: Vec<String>,
    deploys: HashSet<String>,
    clicked: HashSet<String>,
    /// (title token, the odd text around it) of declarations with unicode or control characters.
    odd_titles: Vec<(String, &'static str)>,
}

fn storm(
    n: usize,
    seed: u64,
    incidents: &[incident_bot::incidents::Incident],
    response_url: &str,
) -> Storm {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kinds: Vec<Kind> = Vec::with_capacity(n);
    while kinds.len() < n {
        for (k, per100) in MIX {
            for _ in 0..per100 {
                kinds.push(k);
            }
        }
    }
    kinds.truncate(n);
    rng.shuffle(&mut kinds);
    let mut s = Storm {
        reqs: Vec::with_capacity(n),
        declared: Vec::new(),
        forbidden: Vec::new(),
        events: HashSet::new(),
        mentions: Vec::new(),
        deploys: HashSet::new(),
        clicked: HashSet::new(),
        odd_titles: Vec::new(),
    };
    let mut event_ids: Vec<String> = Vec::new();
    let mut deploy_ids: Vec<String> = Vec::new();
    let slash =
        |text: &str| slash_body("U0ABUSER1", GENERAL_CHANNEL_ID, text, response_url).into_bytes();
    let random_bytes = |rng: &mut fastrand::Rng| {
        let len = rng.usize(1..2_000);
        (0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>()
    };
    for (i, kind) in kinds.into_iter().enumerate() {
        let slack_path = ["/slack/commands", "/slack/interactions", "/slack/events"][i % 3];
        let req = |path, content_type, body, signing, expect: &'static [u16]| Req {
            kind,
            path,
            content_type,
            body,
            signing,
            bearer: None,
            expect,
            expect_text: None,
            pad_to: 0,
        };
        let r = match kind {
            Kind::Declare => {
                let token = format!("storm{i}x");
                s.declared.push(token.clone());
                let sev = ["P1", "P2", "P3"][i % 3];
                let svc = [
                    "payments",
                    "checkout",
                    "search",
                    "auth",
                    "inventory",
                    "notifications",
                ][i % 6];
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash(&format!(
                        "start Storm outage {token} sev:{sev} service:{svc}"
                    )),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("Declaring *INC-");
                r
            }
            Kind::DeclareOdd => {
                let token = format!("storm{i}x");
                s.declared.push(token.clone());
                let odd = ODD[i % ODD.len()];
                s.odd_titles.push((token.clone(), odd));
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash(&format!("start {odd} {token} {odd} sev:P3")),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("Declaring *INC-");
                r
            }
            Kind::Click => {
                let inc = &incidents[i % incidents.len()];
                s.clicked.insert(inc.id.clone());
                let m = Milestone::ALL[(inc.number as usize) % 4];
                let body = block_actions_body(
                    inc,
                    "U0RESPOND1",
                    m.action_id(),
                    response_url,
                    chrono::Utc::now(),
                )
                .expect("click body");
                req(
                    "/slack/interactions",
                    FORM,
                    body.into_bytes(),
                    Signing::Valid,
                    &[200],
                )
            }
            Kind::Event => {
                let id = format!("EvStorm{i}");
                event_ids.push(id.clone());
                s.events.insert(id.clone());
                req(
                    "/slack/events",
                    JSON,
                    event_body(&id).into_bytes(),
                    Signing::Valid,
                    &[200],
                )
            }
            Kind::EventRetry => {
                let id = match event_ids.is_empty() {
                    true => {
                        let id = format!("EvStorm{i}");
                        event_ids.push(id.clone());
                        id
                    }
                    false => event_ids[rng.usize(..event_ids.len())].clone(),
                };
                s.events.insert(id.clone());
                req(
                    "/slack/events",
                    JSON,
                    event_body(&id).into_bytes(),
                    Signing::Valid,
                    &[200],
                )
            }
            Kind::Mention => {
                let id = format!("EvStormMention{i}");
                let ts = format!("1764200000.{i:06}");
                s.mentions.push(ts.clone());
                s.events.insert(id.clone());
                let body = json!({
                    "token": "legacy-verification-token", "team_id": incident_bot::standins::harness::TEAM_ID,
                    "api_app_id": "A0001", "type": "event_callback", "event_id": id, "event_time": 1_764_200_000,
                    "event": { "type": "app_mention", "user": "U061F7AUR", "ts": ts, "event_ts": ts,
                               "channel": GENERAL_CHANNEL_ID,
                               "text": format!("<@{BOT_USER_ID}> any deploys to checkout in the last 3 hours? {}", ODD[i % ODD.len()]) },
                });
                req(
                    "/slack/events",
                    JSON,
                    body.to_string().into_bytes(),
                    Signing::Valid,
                    &[200],
                )
            }
            Kind::Help => {
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash("help"),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("*Usage:*");
                r
            }
            Kind::List => {
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash("list"),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("pen incidents");
                r
            }
            Kind::Unknown => {
                let junk: String = (0..rng.usize(1..6))
                    .map(|_| ODD[rng.usize(..ODD.len())])
                    .collect();
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash(&format!("frobnicate{} {junk}", ODD[i % ODD.len()])),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("*Usage:*");
                r
            }
            Kind::OutsideChannel => {
                let mut r = req(
                    "/slack/commands",
                    FORM,
                    slash("ack"),
                    Signing::Valid,
                    &[200],
                );
                r.expect_text = Some("works in an incident's own channel");
                r
            }
            Kind::BadSignature => {
                let token = format!("forged{i}x");
                s.forbidden.push(token.clone());
                let signing = match i % 6 {
                    0 => Signing::WrongSecret,
                    1 => Signing::Garbage,
                    2 => Signing::Missing,
                    3 => Signing::OtherBody,
                    4 => Signing::BadTimestamp,
                    _ => Signing::WrongSecret,
                };
                let body = match slack_path {
                    "/slack/commands" => slash(&format!("start Forged {token} sev:P1")),
                    "/slack/interactions" => {
                        let inc = &incidents[i % incidents.len()];
                        block_actions_body(
                            inc,
                            "U0FORGER1",
                            "phase_resolved",
                            response_url,
                            chrono::Utc::now(),
                        )
                        .expect("click body")
                        .into_bytes()
                    }
                    _ => event_body(&format!("EvForged{i}")).into_bytes(),
                };
                req(slack_path, FORM, body, signing, &[401])
            }
            Kind::Replay => {
                let token = format!("replayed{i}x");
                s.forbidden.push(token.clone());
                let offset = if i % 4 == 0 {
                    rng.i64(301..3_600)
                } else {
                    -rng.i64(301..86_400 * 3)
                };
                let body = match slack_path {
                    "/slack/commands" => slash(&format!("start Replayed {token} sev:P1")),
                    "/slack/interactions" => {
                        let inc = &incidents[i % incidents.len()];
                        block_actions_body(
                            inc,
                            "U0REPLAY1",
                            "phase_resolved",
                            response_url,
                            chrono::Utc::now(),
                        )
                        .expect("click body")
                        .into_bytes()
                    }
                    _ => event_body(&format!("EvReplayed{i}")).into_bytes(),
                };
                req(slack_path, FORM, body, Signing::Stale(offset), &[401])
            }
            Kind::Oversized => {
                let size = 256 * 1024 + rng.usize(1..200_000);
                let path = [
                    "/slack/commands",
                    "/slack/interactions",
                    "/slack/events",
                    "/api/v1/deploys",
                ][i % 4];
                let mut r = req(
                    path,
                    FORM,
                    b"text=".to_vec(),
                    if i % 2 == 0 {
                        Signing::Valid
                    } else {
                        Signing::Garbage
                    },
                    &[413],
                );
                r.pad_to = size;
                if path == "/api/v1/deploys" {
                    r.signing = Signing::NotSlack;
                    r.bearer = Some(DEPLOY_TOKEN);
                    r.content_type = JSON;
                }
                r
            }
            Kind::Malformed => {
                let (path, ct, body): (&'static str, &'static str, Vec<u8>) = match i % 10 {
                    0 => ("/slack/commands", FORM, b"text=start%20Broken%20sev%3AP1".to_vec()),
                    1 => ("/slack/commands", FORM, b"user_id=U1&channel_id=C1&text=help".to_vec()),
                    2 => ("/slack/interactions", FORM, b"payload=not%20json".to_vec()),
                    3 => ("/slack/interactions", FORM, b"nopayload=1".to_vec()),
                    4 => ("/slack/interactions", FORM, b"payload=%7B%22actions%22%3A%5B%5D%7D".to_vec()),
                    5 => (
                        "/slack/interactions",
                        FORM,
                        serde_urlencoded::to_string([(
                            "payload",
                            json!({"type": "block_actions", "actions": [{"action_id": "phase_ack", "value": "x"}]})
                                .to_string(),
                        )])
                        .expect("form")
                        .into_bytes(),
                    ),
                    6 => ("/slack/events", JSON, b"{not json".to_vec()),
                    7 => ("/slack/events", JSON, b"{\"type\":\"event_callback\"}".to_vec()),
                    8 => ("/slack/events", JSON, b"[]".to_vec()),
                    _ => ("/slack/events", JSON, "{\"type\":\"event_callback\",\"event_id\":\"\u{0}\"".as_bytes().to_vec()),
                };
                // No two requests from Slack are alike (each has its own trigger_id or timestamps): a copy sent in
                // the same second would be taken for a replay and answered with an empty 200.
                let mut body = body;
                if ct == FORM {
                    body.extend_from_slice(format!("&n={i}").as_bytes());
                }
                req(path, ct, body, Signing::Valid, &[400])
            }
            Kind::RandomSigned => req(
                slack_path,
                FORM,
                random_bytes(&mut rng),
                Signing::Valid,
                &[400],
            ),
            Kind::RandomUnsigned => req(
                slack_path,
                FORM,
                random_bytes(&mut rng),
                Signing::Garbage,
                &[401],
            ),
            Kind::Deploy | Kind::DeployRetry => {
                let id = if kind == Kind::DeployRetry && !deploy_ids.is_empty() {
                    deploy_ids[rng.usize(..deploy_ids.len())].clone()
                } else {
                    let id = format!("storm-deploy-{i}");
                    deploy_ids.push(id.clone());
                    id
                };
                s.deploys.insert(id.clone());
                let body = json!({ "id": id, "service": "checkout", "version": format!("v1.{i}.0 {}", ODD[i % 7]),
                                   "author": ODD[(i + 3) % 7] });
                let mut r = req(
                    "/api/v1/deploys",
                    JSON,
                    body.to_string().into_bytes(),
                    Signing::NotSlack,
                    &[200, 201],
                );
                r.bearer = Some(DEPLOY_TOKEN);
                r
            }
            Kind::DeployBadToken => {
                let body = json!({ "id": format!("storm-forged-deploy-{i}"), "service": "checkout", "version": "evil" });
                let mut r = req(
                    "/api/v1/deploys",
                    JSON,
                    body.to_string().into_bytes(),
                    Signing::NotSlack,
                    &[401],
                );
                r.bearer = if i % 2 == 0 {
                    Some("harness-deploy-tokem")
                } else {
                    None
                };
                r
            }
            Kind::DeployMalformed => {
                // No service; not JSON; a control character in a field (deploy fields must be printable).
                let body: Vec<u8> = match i % 3 {
                    0 => b"{\"version\":\"v1\"}".to_vec(),
                    1 => b"\xff\xfe not json".to_vec(),
                    _ => {
                        json!({ "service": "checkout", "version": format!("v1{}", ODD[7 + i % 5]) })
                            .to_string()
                            .into_bytes()
                    }
                };
                let mut r = req("/api/v1/deploys", JSON, body, Signing::NotSlack, &[400]);
                r.bearer = Some(DEPLOY_TOKEN);
                r
            }
        };
        s.reqs.push(r);
    }
    s
}

/// Sends one request; its status (0 when the connection failed) and body.
async fn send(http: &reqwest::Client, base: &str, r: &Req) -> (u16, String) {
    let now = chrono::Utc::now().timestamp();
    let secret = SIGNING_SECRET.as_bytes();
    let mut body = r.body.clone();
    if body.len() < r.pad_to {
        body.resize(r.pad_to, b'a');
    }
    let headers: Option<(String, String)> = match &r.signing {
        Signing::Valid => Some((now.to_string(), sign(secret, now, &body))),
        Signing::Stale(off) => Some(((now + off).to_string(), sign(secret, now + off, &body))),
        Signing::WrongSecret => {
            Some((now.to_string(), sign(b"not-the-signing-secret", now, &body)))
        }
        Signing::Garbage => Some((now.to_string(), format!("v0={}", "ab".repeat(32)))),
        Signing::OtherBody => Some((now.to_string(), sign(secret, now, b"text=help"))),
        Signing::BadTimestamp => Some(("yesterday".into(), sign(secret, now, &body))),
        Signing::Missing | Signing::NotSlack => None,
    };
    let mut b = http
        .post(format!("{base}{}", r.path))
        .header("content-type", r.content_type);
    if let Some((ts, sig)) = headers {
        b = b
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig);
    }
    if let Some(token) = r.bearer {
        b = b.bearer_auth(token);
    }
    match b.body(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(e) => (0, format!("{e:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_requests_are_each_answered_right_and_valid_ones_take_effect_exactly_once(
) {
    let n: usize = std::env::var("FAULTS_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    incident_bot::standins::install_tls();
    let slack = SlackStandin::start().await.expect("slack stand-in");
    let pager = PagerStandin::start().await.expect("pager stand-in");
    let db_url = crate::helpers::fresh_database_url().await;
    let dir = std::env::temp_dir().join(format!("incident-bot-storm-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let catalog_path = dir.join("catalog.yaml");
    std::fs::write(&catalog_path, catalog_yaml_for(&pager)).expect("catalog");
    let mut cmd = BotProcess::command(
        Path::new(env!("CARGO_BIN_EXE_incident-bot")),
        &db_url,
        &catalog_path,
        &dir.join("none.toml"),
        &slack,
        &pager,
    );
    cmd.env("RUST_LOG", "error");
    let mut bot = BotProcess::spawn(cmd, LIMIT).await.expect("the bot starts");
    let db = Db::connect(&db_url).await.expect("database");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let response_url = slack.response_url();

    // Incidents to click on, set up before the storm.
    let seeded = 12;
    for i in 0..seeded {
        let svc = ["payments", "checkout", "search", "auth"][i % 4];
        let body = slash_body(
            "U0DECLARER",
            GENERAL_CHANNEL_ID,
            &format!("start Seeded {i} sev:P2 service:{svc}"),
            &response_url,
        );
        let req = Req {
            kind: Kind::Declare,
            path: "/slack/commands",
            content_type: FORM,
            body: body.into_bytes(),
            signing: Signing::Valid,
            bearer: None,
            expect: &[200],
            expect_text: None,
            pad_to: 0,
        };
        assert_eq!(send(&http, &bot.base_url, &req).await.0, 200);
    }
    everything_settled(&db, LIMIT).await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM incidents ORDER BY number")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut incidents = Vec::new();
    for id in &ids {
        incidents.push(
            incident_bot::incidents::load(&db, id)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let plan = storm(n, 0x5eed, &incidents, &response_url);
    let (rss_before, _) = bot.memory_kib().expect("/proc/<pid>/status");

    let started = Instant::now();
    let base = bot.base_url.clone();
    let results: Vec<(usize, u16, String)> = futures::stream::iter(plan.reqs.iter().enumerate())
        .map(|(i, r)| {
            let http = &http;
            let base = &base;
            async move {
                let (status, body) = send(http, base, r).await;
                (i, status, body)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let storm_took = started.elapsed();
    let (rss_after_storm, _) = bot.memory_kib().expect("/proc/<pid>/status");

    // Every answer is the right one.
    let mut by_kind: HashMap<Kind, (usize, HashMap<u16, usize>)> = HashMap::new();
    let mut wrong = Vec::new();
    for (i, status, body) in &results {
        let r = &plan.reqs[*i];
        let e = by_kind.entry(r.kind).or_default();
        e.0 += 1;
        *e.1.entry(*status).or_default() += 1;
        let text_ok = r.expect_text.is_none_or(|t| body.contains(t));
        if !r.expect.contains(status) || !text_ok {
            wrong.push(format!(
                "{:?} {} → {status} {}",
                r.kind,
                r.path,
                body.chars().take(160).collect::<String>()
            ));
        }
    }
    let mut kinds: Vec<_> = by_kind.iter().collect();
    kinds.sort_by_key(|(k, _)| **k);
    for (k, (sent, statuses)) in &kinds {
        let mut st: Vec<_> = statuses.iter().collect();
        st.sort();
        eprintln!("storm: {k:?}: {sent} sent, statuses {st:?}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {n} requests answered wrongly, e.g.:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every valid request took effect exactly once; nothing forged or replayed did.
    everything_settled(&db, Duration::from_secs(60)).await;
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM incidents")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        titles.len(),
        seeded + plan.declared.len(),
        "one incident per valid declaration"
    );
    for token in &plan.declared {
        let n = titles
            .iter()
            .filter(|t| t.split_whitespace().any(|w| w == token))
            .count();
        assert_eq!(n, 1, "{token} declared once: {titles:?}");
    }
    // Unicode arrives intact; control characters, direction overrides and zero-width characters never reach a
    // stored title (a zero-width joiner inside an emoji sequence stays).
    for (token, odd) in &plan.odd_titles {
        let title = titles
            .iter()
            .find(|t| t.split_whitespace().any(|w| w == token))
            .expect("stored");
        assert!(!title.chars().any(char::is_control), "{title:?}");
        assert!(
            !title
                .chars()
                .any(|c| text::is_invisible(c) && c != '\u{200d}'),
            "{title:?}"
        );
        if !odd.chars().any(char::is_control) {
            let visible = text::strip_invisible(odd);
            assert!(title.contains(&visible), "{title:?} keeps {visible:?}");
        }
    }
    for token in &plan.forbidden {
        assert!(
            !titles.iter().any(|t| t.contains(token.as_str())),
            "{token} must not be stored"
        );
    }
    let events: Vec<String> = sqlx::query_scalar("SELECT event_id FROM processed_events")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let stored_events: HashSet<String> = events.iter().cloned().collect();
    assert_eq!(events.len(), stored_events.len());
    assert_eq!(
        stored_events, plan.events,
        "each event id taken once, none forged or replayed"
    );
    let deploy_rows = count(&db, "SELECT COUNT(*) FROM deploys").await;
    assert_eq!(
        deploy_rows as usize,
        plan.deploys.len(),
        "one deploy per id"
    );
    let created = results
        .iter()
        .filter(|(i, s, _)| {
            matches!(plan.reqs[*i].kind, Kind::Deploy | Kind::DeployRetry) && *s == 201
        })
        .count();
    assert_eq!(
        created,
        plan.deploys.len(),
        "201 once per deploy id, 200 for its retries"
    );
    for inc in &incidents {
        let lines: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM timeline_events WHERE incident_id = $1")
                .bind(&inc.id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        let expected = i64::from(plan.clicked.contains(&inc.id));
        assert_eq!(
            lines,
            expected,
            "{}: one phase change however often it was clicked",
            inc.key()
        );
        let room = channel(&slack, inc.channel_id.as_deref().unwrap());
        assert_eq!(
            with_block(&room, "ob:post:"),
            expected as usize,
            "{}: its line posted once",
            inc.key()
        );
    }
    let rooms = slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .count();
    assert_eq!(rooms, titles.len(), "one channel per incident");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM setup_steps WHERE state <> 'done'"
        )
        .await,
        0,
        "every step done"
    );
    let general = channel(&slack, GENERAL_CHANNEL_ID);
    for ts in &plan.mentions {
        let answers = general
            .messages
            .iter()
            .filter(|m| m.thread_ts.as_deref() == Some(ts.as_str()))
            .count();
        assert_eq!(answers, 1, "mention {ts} answered once");
    }

    // The process is alive, never panicked, and its memory stayed bounded.
    let health = http
        .get(format!("{}/healthz", bot.base_url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    assert!(bot.is_running(), "the bot is alive");
    assert_eq!(bot.panics(), 0, "no panic:\n{}", bot.stderr());
    let (rss_end, hwm) = bot.memory_kib().expect("/proc/<pid>/status");
    eprintln!(
        "storm ({:?}): {n} requests, 32 in flight, in {storm_took:.1?} ({:.0}/s); {} incidents declared, {} events \
         ({} mentions), {} deploys, {} clicked incidents; {} answered with an error status as expected; \
         bot RSS {} MiB before, {} MiB after the storm, {} MiB once settled, peak {} MiB",
        db.backend,
        n as f64 / storm_took.as_secs_f64(),
        plan.declared.len(),
        plan.events.len(),
        plan.mentions.len(),
        plan.deploys.len(),
        plan.clicked.len(),
        results.iter().filter(|(_, s, _)| *s >= 400).count(),
        rss_before / 1024,
        rss_after_storm / 1024,
        rss_end / 1024,
        hwm / 1024,
    );
    assert!(
        hwm < 256 * 1024,
        "peak RSS {} MiB stays under 256 MiB (debug build)",
        hwm / 1024
    );
    assert!(
        rss_end < rss_before + 96 * 1024,
        "RSS grew from {} to {} MiB",
        rss_before / 1024,
        rss_end / 1024
    );
    bot.kill().ok();
    let _ = std::fs::remove_dir_all(&dir);
}
