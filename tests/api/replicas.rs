//! Several replicas on one database behave as one bot (SPEC §8, issue 7): three bot processes — the real
//! binary — with no load balancer, requests sent round-robin by the test, one replica killed with SIGKILL in the
//! middle of setting up a war room and replaced by a fourth.
//!
//! What is sent: slash commands declaring several incidents (each to the next replica), a mention delivered to
//! two replicas at once (an Events API retry landing elsewhere), every phase button clicked twice at the same
//! instant on two different replicas, escalation timers coming due while all replicas tick, and a scheduled
//! digest that every replica finds due when it starts. What is checked: one channel, card, pin, set of
//! bookmarks, page, announcement, timeline line per change, escalation page, MTTR summary and digest — and every
//! setup step, outbox row and timer finished.
//!
//! Backends: on PostgreSQL (`TEST_DATABASE_URL`) the replicas also race through the migrations at start (sqlx
//! holds an advisory lock). On SQLite the same processes share one database file (WAL, busy timeout); SQLite has
//! no migration lock across processes, so the test migrates the file before starting them. Several replicas are
//! a PostgreSQL deployment in production; the SQLite run shows the claims are atomic there too.
//!
//! Escalation minutes are whole minutes in the settings, so instead of waiting five minutes the test moves the
//! armed timers' due time to now ("time passes"), and the three replicas race to fire them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use incident_bot::catalog::Catalog;
use incident_bot::db::{ms, Backend, Db};
use incident_bot::domain::phase::Milestone;
use incident_bot::slack::blocks::{announce_block_id, card_block_id};
use incident_bot::standins::harness::{
    block_actions_body, catalog_for, catalog_yaml_for, post_signed_to, slash_body, BotProcess,
};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::{
    Channel, Fault, Message, SlackStandin, BOT_USER_ID, GENERAL_CHANNEL_ID, INCIDENTS_CHANNEL_ID,
};
use serde_json::{json, Value};
use sqlx::Row;

const LIMIT: Duration = Duration::from_secs(30);

/// The incidents declared round-robin: (title and options, service).
const DECLARED: [(&str, &str); 6] = [
    (
        "start Payments are failing sev:P1 service:payments",
        "payments",
    ),
    ("start Checkout is slow sev:P2 service:checkout", "checkout"),
    (
        "start Search returns nothing sev:P1 service:search",
        "search",
    ),
    ("start Logins time out sev:P1 service:auth", "auth"),
    (
        "start Stock counts are wrong sev:P3 service:inventory",
        "inventory",
    ),
    (
        "start Card payments declined 🇩🇪 sev:P2 service:payments",
        "payments",
    ),
];

/// Stand-ins, one database and the files every replica reads (also used by `replays`).
pub(crate) struct Cluster {
    pub(crate) slack: SlackStandin,
    pager: PagerStandin,
    catalog: Catalog,
    db_url: String,
    pub(crate) db: Db,
    dir: PathBuf,
    catalog_path: PathBuf,
    config_path: PathBuf,
    pub(crate) http: reqwest::Client,
    next: AtomicUsize,
}

impl Cluster {
    pub(crate) async fn new() -> Cluster {
        incident_bot::standins::install_tls();
        let slack = SlackStandin::start().await.expect("slack stand-in");
        let pager = PagerStandin::start().await.expect("pager stand-in");
        let db_url = crate::helpers::fresh_database_url().await;
        let dir =
            std::env::temp_dir().join(format!("incident-bot-replicas-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let catalog_path = dir.join("catalog.yaml");
        std::fs::write(&catalog_path, catalog_yaml_for(&pager)).expect("catalog written");
        // A weekly digest for #incidents: its latest slot has passed, so every replica finds it due at start.
        let config_path = dir.join("incident-bot.toml");
        std::fs::write(
            &config_path,
            "[[digests]]\nchannel = \"incidents\"\nday = \"monday\"\ntime = \"09:00\"\ntimezone = \"UTC\"\n",
        )
        .expect("config written");
        let db = Db::connect(&db_url).await.expect("database");
        if db.backend == Backend::Sqlite {
            db.migrate().await.expect("migrations");
        }
        Cluster {
            catalog: catalog_for(&pager),
            slack,
            pager,
            db_url,
            db,
            dir,
            catalog_path,
            config_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) async fn replica(&self) -> BotProcess {
        let mut cmd = BotProcess::command(
            Path::new(env!("CARGO_BIN_EXE_incident-bot")),
            &self.db_url,
            &self.catalog_path,
            &self.config_path,
            &self.slack,
            &self.pager,
        );
        cmd.env("INCIDENT_BOT_INCIDENTS__MONITORING_MINUTES", "0")
            .env("INCIDENT_BOT_INCIDENTS__TIMER_TICK_MS", "100")
            // Long enough that the calls hung on purpose are still waiting when the replica is killed.
            .env("INCIDENT_BOT_SLACK__CALL_TIMEOUT_MS", "30000");
        BotProcess::spawn(cmd, LIMIT)
            .await
            .expect("a replica starts")
    }

    /// The next replica, round-robin.
    fn pick<'a>(&self, replicas: &'a [BotProcess]) -> &'a BotProcess {
        &replicas[self.next.fetch_add(1, Ordering::SeqCst) % replicas.len()]
    }

    async fn post(&self, bot: &BotProcess, path: &str, ct: &str, body: String, retry: u32) -> u16 {
        let url = format!("{}{path}", bot.base_url);
        let ts = chrono::Utc::now().timestamp();
        let sig = incident_bot::slack::verify::sign(
            incident_bot::standins::harness::SIGNING_SECRET.as_bytes(),
            ts,
            body.as_bytes(),
        );
        let mut req = self
            .http
            .post(url)
            .header("content-type", ct)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig);
        if retry > 0 {
            req = req
                .header("x-slack-retry-num", retry.to_string())
                .header("x-slack-retry-reason", "http_timeout");
        }
        req.body(body)
            .send()
            .await
            .expect("the replica answers")
            .status()
            .as_u16()
    }

    async fn slash(&self, bot: &BotProcess, text: &str) -> Value {
        let body = slash_body(
            "U0DECLARER",
            GENERAL_CHANNEL_ID,
            text,
            &self.slack.response_url(),
        );
        let resp = post_signed_to(
            &self.http,
            &format!("{}/slack/commands", bot.base_url),
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            chrono::Utc::now().timestamp(),
        )
        .await
        .expect("the replica answers");
        assert_eq!(resp.status().as_u16(), 200, "/incident {text}");
        resp.json().await.expect("a JSON reply")
    }

    async fn incident_ids(&self) -> Vec<(i64, String)> {
        let rows = sqlx::query("SELECT number, id FROM incidents ORDER BY number")
            .fetch_all(&self.db.pool)
            .await
            .expect("incidents");
        rows.iter()
            .map(|r| (r.get::<i64, _>("number"), r.get::<String, _>("id")))
            .collect()
    }

    pub(crate) async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect(sql)
    }

    /// Waits until `sql` (a COUNT of unfinished things) is 0.
    pub(crate) async fn settle(&self, what: &str, sql: &'static str) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let left = self.count(sql).await;
            if left == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {left} left after {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn all_settled(&self) {
        self.settle(
            "setup steps",
            "SELECT COUNT(*) FROM setup_steps WHERE state <> 'done'",
        )
        .await;
        self.settle(
            "outbox rows",
            "SELECT COUNT(*) FROM outbox WHERE state <> 'done'",
        )
        .await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `app_mention` delivery asking about deploys, as the Events API posts it.
fn mention(event_id: &str, ts: &str) -> String {
    json!({
        "token": "legacy-verification-token",
        "team_id": incident_bot::standins::harness::TEAM_ID,
        "api_app_id": "A0001",
        "event": {
            "type": "app_mention",
            "user": "U061F7AUR",
            "text": format!("<@{BOT_USER_ID}> was there a deploy to payments recently?"),
            "ts": ts,
            "channel": GENERAL_CHANNEL_ID,
            "event_ts": ts,
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": chrono::Utc::now().timestamp(),
    })
    .to_string()
}

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

fn messages_with_block(ch: &Channel, block_id: &str) -> usize {
    ch.messages
        .iter()
        .filter(|m| block_ids(m).iter().any(|b| b == block_id))
        .count()
}

/// The idempotency key a page carries on the wire (PagerDuty `dedup_key`, Opsgenie `alias`, webhook header).
fn page_key(r: &incident_bot::standins::pager::PagerRequest) -> String {
    match r.endpoint.as_str() {
        "pagerduty" => r.body["dedup_key"].as_str().unwrap_or_default().to_string(),
        "opsgenie" => r.body["alias"].as_str().unwrap_or_default().to_string(),
        _ => r.header("idempotency-key").unwrap_or_default().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_one_killed_mid_setup_behave_as_one_bot() {
    let c = Cluster::new().await;
    let started = std::time::Instant::now();
    let (a, b, cc) = tokio::join!(c.replica(), c.replica(), c.replica());
    let mut replicas = vec![a, b, cc];

    // 1. The scheduled digest: every replica found it due at start; it is posted once.
    c.settle(
        "the scheduled digest",
        "SELECT COUNT(*) FROM digest_runs WHERE state <> 'done'",
    )
    .await;
    assert_eq!(c.count("SELECT COUNT(*) FROM digest_runs").await, 1);

    // 2. Incidents declared round-robin, all at once; a mention delivered to two replicas at the same time.
    let replies = futures::future::join_all(
        DECLARED
            .iter()
            .map(|(text, _)| c.slash(c.pick(&replicas), text)),
    )
    .await;
    for r in &replies {
        assert!(
            r["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Declaring *INC-"),
            "{r}"
        );
    }
    let asked_ts = "1764100000.000100";
    let body = mention("Ev0REPLICAS1", asked_ts);
    let (s1, s2) = tokio::join!(
        c.post(
            &replicas[0],
            "/slack/events",
            "application/json",
            body.clone(),
            0
        ),
        c.post(
            &replicas[1],
            "/slack/events",
            "application/json",
            body.clone(),
            1
        ),
    );
    assert_eq!((s1, s2), (200, 200), "both deliveries are acknowledged");
    // Slack retries once more, later, to the third replica.
    assert_eq!(
        c.post(&replicas[2], "/slack/events", "application/json", body, 2)
            .await,
        200
    );
    c.all_settled().await;

    // 3. One replica is killed with SIGKILL while two of its Slack calls hang (their effects applied).
    c.slack.fail_next("chat.postMessage", Fault::Hang);
    c.slack.fail_next("bookmarks.add", Fault::Hang);
    let victim = 0;
    let before_posts = c.slack.count("chat.postMessage");
    let before_bookmarks = c.slack.count("bookmarks.add");
    let reply = c
        .slash(
            &replicas[victim],
            "start Payments webhooks lost sev:P1 service:payments",
        )
        .await;
    assert!(
        reply["text"].as_str().unwrap_or_default().contains("INC-7"),
        "{reply}"
    );
    let killed_id = incident_bot::standins::harness::incident_id_in(&c.db, 7)
        .await
        .expect("incident 7 stored");
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let page_done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM setup_steps WHERE incident_id = $1 AND step = 'page' AND state = 'done'",
        )
        .bind(&killed_id)
        .fetch_one(&c.db.pool)
        .await
        .expect("steps");
        if c.slack.count("chat.postMessage") > before_posts
            && c.slack.count("bookmarks.add") > before_bookmarks
            && page_done == 1
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "setup of INC-7 reached the hung calls"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dead = replicas.remove(victim);
    dead.kill().expect("SIGKILL");
    let unfinished_at_kill = c
        .count("SELECT COUNT(*) FROM setup_steps WHERE state <> 'done'")
        .await;
    assert!(
        unfinished_at_kill > 0,
        "the replica died with steps unfinished"
    );
    replicas.push(c.replica().await);
    c.all_settled().await;

    // 4. Escalations come due (time passes) while every replica ticks.
    let incidents = c.incident_ids().await;
    assert_eq!(incidents.len(), 7, "seven incidents, no more");
    let deadline = tokio::time::Instant::now() + LIMIT;
    let p1s = c
        .count("SELECT COUNT(*) FROM incidents WHERE severity = 'P1'")
        .await;
    while c
        .count("SELECT COUNT(*) FROM timers WHERE kind IN ('p1_ack', 'unresolved')")
        .await
        < p1s + 7
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "escalation timers armed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The commander reminder of each P1 (armed with its escalations) comes due too.
    sqlx::query(
        "UPDATE timers SET due_at = $1 WHERE kind IN ('p1_ack', 'unresolved', 'ic_reminder')",
    )
    .bind(ms(chrono::Utc::now()) - 1_000)
    .execute(&c.db.pool)
    .await
    .expect("time passes");
    // (Stalled-phase checks, tests/api/nudges.rs, wait for their phase's p90: not counted here.)
    c.settle(
        "escalation timers",
        "SELECT COUNT(*) FROM timers WHERE fired = 0 AND kind NOT LIKE 'stalled%'",
    )
    .await;
    c.all_settled().await;

    // 5. Every phase button clicked twice at the same instant, on two different replicas.
    let responder_url = c.slack.response_url();
    let pairs = futures::future::join_all(incidents.iter().map(|(_, id)| {
        let replicas = &replicas;
        let c = &c;
        let url = responder_url.clone();
        async move {
            let mut pairs = 0;
            for (k, m) in Milestone::ALL.into_iter().enumerate() {
                let inc = incident_bot::incidents::load(&c.db, id)
                    .await
                    .expect("load")
                    .expect("incident");
                // Two clicks: each its own request (Slack gives each its own trigger_id), not one replayed.
                let click = || {
                    block_actions_body(&inc, "U0RESPOND1", m.action_id(), &url, chrono::Utc::now())
                        .expect("click body")
                };
                let (body, again) = (click(), click());
                let first = &replicas[k % replicas.len()];
                let second = &replicas[(k + 1) % replicas.len()];
                let ct = "application/x-www-form-urlencoded";
                let (s1, s2) = tokio::join!(
                    c.post(first, "/slack/interactions", ct, body.clone(), 0),
                    c.post(second, "/slack/interactions", ct, again, 0),
                );
                assert_eq!((s1, s2), (200, 200), "both clicks are acknowledged");
                pairs += 1;
            }
            pairs
        }
    }))
    .await
    .into_iter()
    .sum::<usize>();
    c.settle(
        "close timers",
        "SELECT COUNT(*) FROM incidents WHERE closed_at IS NULL",
    )
    .await;
    c.settle(
        "timers",
        "SELECT COUNT(*) FROM timers WHERE fired = 0 AND kind NOT LIKE 'stalled%'",
    )
    .await;
    c.all_settled().await;
    // Let a few more ticks pass on every replica: nothing more may happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.all_settled().await;
    let elapsed = started.elapsed();

    // ---- Slack as users see it ----
    let channels = c.slack.channels();
    let rooms: Vec<&Channel> = channels
        .iter()
        .filter(|ch| ch.name.starts_with("inc-"))
        .collect();
    assert_eq!(rooms.len(), 7, "one channel per incident");
    assert_eq!(
        c.slack.count("conversations.create"),
        7,
        "no channel made twice"
    );
    let broadcast = channels
        .iter()
        .find(|ch| ch.id == INCIDENTS_CHANNEL_ID)
        .expect("#incidents");
    let mut timeline_lines = 0;
    let mut summaries = 0;
    let mut expected_pages: HashSet<String> = HashSet::new();
    for (number, id) in &incidents {
        let inc = incident_bot::incidents::load(&c.db, id)
            .await
            .expect("load")
            .expect("incident");
        let room = rooms
            .iter()
            .find(|ch| Some(&ch.id) == inc.channel_id.as_ref())
            .unwrap_or_else(|| panic!("INC-{number} has its channel"));
        assert_eq!(
            messages_with_block(room, &card_block_id(id)),
            1,
            "INC-{number}: one card"
        );
        assert_eq!(room.pins.len(), 1, "INC-{number}: pinned once");
        let svc = c
            .catalog
            .get(inc.service.as_deref().unwrap_or_default())
            .expect("catalog service");
        let wanted_bookmarks =
            usize::from(svc.runbook_url.is_some()) + usize::from(svc.dashboard_url.is_some());
        let links: HashSet<&str> = room.bookmarks.iter().map(|b| b.link.as_str()).collect();
        assert_eq!(
            (room.bookmarks.len(), links.len()),
            (wanted_bookmarks, wanted_bookmarks),
            "INC-{number}: each bookmark once: {:?}",
            room.bookmarks
        );
        assert_eq!(
            messages_with_block(broadcast, &announce_block_id(id)),
            1,
            "INC-{number}: announced once"
        );
        // Every timeline line stored is posted exactly once (`ob:post:<event id>`).
        let events: Vec<(String, String)> =
            sqlx::query("SELECT id, kind FROM timeline_events WHERE incident_id = $1")
                .bind(id)
                .fetch_all(&c.db.pool)
                .await
                .expect("events")
                .iter()
                .map(|r| (r.get("id"), r.get("kind")))
                .collect();
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for (event_id, kind) in &events {
            *kinds.entry(kind.as_str()).or_default() += 1;
            assert_eq!(
                messages_with_block(room, &format!("ob:post:{event_id}")),
                1,
                "INC-{number}: the {kind} line is posted once"
            );
        }
        for m in Milestone::ALL {
            assert_eq!(
                kinds.get(m.as_str()),
                Some(&1),
                "INC-{number}: one {} line: {kinds:?}",
                m.as_str()
            );
        }
        assert_eq!(kinds.get("closed"), Some(&1), "INC-{number}: closed once");
        let p1 = inc.severity.as_str() == "P1";
        assert_eq!(
            kinds.get("escalated").copied().unwrap_or(0),
            1 + usize::from(p1),
            "INC-{number}: one line per escalation: {kinds:?}"
        );
        let posted_lines = room
            .messages
            .iter()
            .filter(|m| block_ids(m).iter().any(|b| b.starts_with("ob:post:")))
            .count();
        assert_eq!(posted_lines, events.len(), "INC-{number}: no stray line");
        timeline_lines += posted_lines;
        // One MTTR summary in the room and one in #incidents.
        let in_room = room
            .messages
            .iter()
            .filter(|m| {
                block_ids(m)
                    .iter()
                    .any(|b| b.starts_with(&format!("ob:summary:{id}:")))
            })
            .count();
        let in_broadcast = broadcast
            .messages
            .iter()
            .filter(|m| {
                block_ids(m)
                    .iter()
                    .any(|b| b.starts_with(&format!("ob:summary:{id}:")))
            })
            .count();
        assert_eq!(
            (in_room, in_broadcast),
            (1, 1),
            "INC-{number}: one summary each"
        );
        summaries += in_room + in_broadcast;
        // The pages this incident should have caused, by their idempotency key.
        let key = format!("incident-bot-{id}");
        if svc.pager.is_some() {
            expected_pages.insert(key.clone());
            if p1 {
                expected_pages.insert(format!("{key}-escalation-ack"));
            }
        }
        if svc.escalation.is_some() {
            expected_pages.insert(format!("{key}-escalation-unresolved"));
        }
    }
    // Pages: every expected one sent, none twice — not even collapsed by the pager.
    let requests = c.pager.requests();
    let mut sent: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        *sent.entry(page_key(r)).or_default() += 1;
    }
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "pages sent twice: {twice:?}");
    let sent_keys: HashSet<String> = sent.keys().cloned().collect();
    assert_eq!(sent_keys, expected_pages, "exactly the expected pages");
    // The mention, delivered three times to three replicas, is answered once.
    let general = channels
        .iter()
        .find(|ch| ch.id == GENERAL_CHANNEL_ID)
        .expect("#general");
    let answers = general
        .messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(asked_ts))
        .count();
    assert_eq!(answers, 1, "one answer to one question");
    assert_eq!(
        c.count("SELECT COUNT(*) FROM processed_events WHERE event_id = 'Ev0REPLICAS1'")
            .await,
        1
    );
    // Each double click recorded once; the second of each pair was told why nothing changed ("Already
    // recorded", or "closed" for a late second `Resolved`).
    let responder_path = responder_url
        .split_once("/response/")
        .map(|(_, n)| format!("/response/{n}"))
        .expect("a response URL");
    let refusals: Vec<String> = c
        .slack
        .responses()
        .into_iter()
        .filter(|(path, _)| *path == responder_path)
        .map(|(_, body)| body["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        refusals.len(),
        pairs,
        "one refusal per double click: {refusals:#?}"
    );
    assert!(
        refusals
            .iter()
            .all(|t| t.starts_with("Already recorded") || t.starts_with("The incident is closed")),
        "{refusals:#?}"
    );
    // The digest: one message (and at most one chart) in #incidents.
    let digests = broadcast
        .messages
        .iter()
        .filter(|m| block_ids(m).iter().any(|b| b.starts_with("digest-")))
        .count();
    assert_eq!(digests, 1, "the digest is posted once");
    let charts = c
        .slack
        .uploaded_files()
        .iter()
        .filter(|f| f.channel_id == broadcast.id)
        .count();
    assert!(charts <= 1, "{charts} charts");
    // Every step done, every update sent, every timer fired — and no replica panicked.
    assert_eq!(
        c.count("SELECT COUNT(*) FROM setup_steps WHERE state <> 'done'")
            .await,
        0
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM timers WHERE fired = 0 AND kind NOT LIKE 'stalled%'")
            .await,
        0
    );
    for r in replicas.iter_mut() {
        assert!(r.is_running(), "a replica died:\n{}", r.stderr());
        assert_eq!(r.panics(), 0, "a replica panicked:\n{}", r.stderr());
    }
    eprintln!(
        "replicas ({:?}): 3 replicas + 1 replacement, 1 killed mid-setup ({unfinished_at_kill} steps unfinished at \
         the kill); 7 incidents, 7 channels, 7 cards, {} pages, {timeline_lines} timeline lines, {summaries} \
         summaries, {pairs} double clicks, 1 digest — in {elapsed:.1?}",
        c.db.backend,
        requests.len(),
    );
}
