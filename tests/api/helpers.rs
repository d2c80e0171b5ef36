//! `spawn_app()`: a bot on a fresh, isolated database, wired to the Slack and pager stand-ins.
//!
//! The backend comes from `TEST_DATABASE_URL`: unset → a new SQLite file per test; `postgres://…` → a new
//! PostgreSQL database per test, created on that server.

use std::sync::Arc;
use std::time::Duration;

use incident_bot::clock::{Clock, ManualClock};
use incident_bot::config::Settings;
use incident_bot::standins::harness::{settings_for, Harness};
use incident_bot::standins::pager::PagerStandin;
use incident_bot::standins::slack::SlackStandin;
use sqlx::any::AnyPoolOptions;

/// A fresh database URL for one test.
pub async fn fresh_database_url() -> String {
    sqlx::any::install_default_drivers();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let admin = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("TEST_DATABASE_URL is reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .expect("can create a test database");
            admin.close().await;
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
            format!("{base}/{name}")
        }
        _ => {
            let dir = std::env::temp_dir().join("incident-bot-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!(
                "sqlite://{}",
                dir.join(format!("{}.db", uuid::Uuid::new_v4())).display()
            )
        }
    }
}

pub struct TestApp {
    pub h: Harness,
    #[allow(dead_code)]
    pub db_url: String,
}

/// Every test checks, when its app goes away, that each Web API call the bot made used a real Slack method and
/// real argument names (`tests/fixtures/slack_web_openapi_v2.json`, plus the newer methods SPEC lists).
impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        static SPEC: std::sync::OnceLock<crate::openapi::SlackSpec> = std::sync::OnceLock::new();
        let spec = SPEC
            .get_or_init(|| crate::openapi::SlackSpec::load().expect("Slack's OpenAPI spec loads"));
        spec.assert_conforms(&self.h.slack.calls());
    }
}

impl std::ops::Deref for TestApp {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

/// A bot on a fresh database with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let slack = SlackStandin::start().await.expect("slack stand-in");
    let pager = PagerStandin::start().await.expect("pager stand-in");
    let db_url = fresh_database_url().await;
    let mut settings = settings_for(&slack, &pager, &db_url);
    tweak(&mut settings);
    let h = Harness::start_with(
        settings,
        slack,
        pager,
        Arc::new(incident_bot::clock::SystemClock),
    )
    .await
    .expect("bot starts");
    TestApp { h, db_url }
}

/// A bot with a given clock on a fresh database.
#[allow(dead_code)]
pub async fn spawn_app_with_clock(clock: Arc<dyn Clock>) -> TestApp {
    let slack = SlackStandin::start().await.expect("slack stand-in");
    let pager = PagerStandin::start().await.expect("pager stand-in");
    let db_url = fresh_database_url().await;
    let settings = settings_for(&slack, &pager, &db_url);
    let h = Harness::start_with(settings, slack, pager, clock)
        .await
        .expect("bot starts");
    TestApp { h, db_url }
}

pub const SETUP_LIMIT: Duration = Duration::from_secs(20);

/// The incident number in the acknowledgement of `/incident start` ("Declaring *INC-42* · …").
#[allow(dead_code)]
pub fn declared_number(reply: &serde_json::Value) -> i64 {
    let text = reply["text"].as_str().unwrap_or_default();
    text.split("*INC-")
        .nth(1)
        .and_then(|rest| rest.split('*').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no incident number in {reply}"))
}

/// Texts posted to response URLs (ephemeral replies to clicks and slow commands, follow-ups to commands).
#[allow(dead_code)]
pub fn responses(app: &TestApp) -> Vec<String> {
    app.slack
        .responses()
        .iter()
        .filter_map(|(_, v)| v["text"].as_str().map(str::to_string))
        .collect()
}

/// Waits (up to `limit`) for a text posted to a response URL that contains `needle`, and returns it.
#[allow(dead_code)]
pub async fn response_containing(app: &TestApp, needle: &str, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(t) = responses(app).into_iter().find(|t| t.contains(needle)) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reply containing {needle:?}: {:?}",
            responses(app)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stand-ins, a fresh database and a manual clock shared by every bot a test starts (restarts, replicas).
#[allow(dead_code)]
pub struct World {
    pub slack: SlackStandin,
    pub pager: PagerStandin,
    pub db_url: String,
    pub clock: Arc<ManualClock>,
}

#[allow(dead_code)]
impl World {
    /// The clock starts at Wednesday 2026-11-25 09:00 UTC.
    pub async fn new() -> World {
        World {
            slack: SlackStandin::start().await.unwrap(),
            pager: PagerStandin::start().await.unwrap(),
            db_url: fresh_database_url().await,
            clock: Arc::new(ManualClock::new(
                chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 25, 9, 0, 0).unwrap(),
            )),
        }
    }

    /// A bot on the world's database and clock, with default test settings.
    pub async fn bot(&self) -> Harness {
        self.bot_with(|_| {}).await
    }

    /// Like [`World::bot`], with settings adjusted by `tweak`.
    pub async fn bot_with(&self, tweak: impl FnOnce(&mut Settings)) -> Harness {
        let mut settings = settings_for(&self.slack, &self.pager, &self.db_url);
        tweak(&mut settings);
        let clock: Arc<dyn Clock> = self.clock.clone();
        Harness::start_with(settings, self.slack.clone(), self.pager.clone(), clock)
            .await
            .unwrap()
    }
}

/// `/incident start <text>` on `bot`, answered 200; waits until the new incident's war room is set up and
/// returns its id.
#[allow(dead_code)]
pub async fn declare_ready(bot: &Harness, text: &str) -> String {
    let (status, reply) = bot.slash(text).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let id = bot.incident_id(declared_number(&reply)).await.unwrap();
    bot.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    id
}

/// [`declare_ready`], asserting that every war-room step is done.
#[allow(dead_code)]
pub async fn declare_done(bot: &Harness, text: &str) -> String {
    let id = declare_ready(bot, text).await;
    let steps = bot.wait_for_setup(&id, SETUP_LIMIT).await.unwrap();
    assert!(steps.iter().all(|s| s.state == "done"), "{steps:?}");
    id
}

/// The incident as stored.
#[allow(dead_code)]
pub async fn incident(bot: &Harness, id: &str) -> incident_bot::incidents::Incident {
    incident_bot::incidents::load(&bot.state.db, id)
        .await
        .unwrap()
        .unwrap()
}

/// Clicks a button the bot posted (`action_id`, with the button's own `value`) in incident `incident_id`'s
/// channel as `user`, signed like Slack. Returns the HTTP status of the bot's answer.
#[allow(dead_code)]
pub async fn click_button(
    bot: &Harness,
    user: &str,
    incident_id: &str,
    action_id: &str,
    value: &str,
) -> u16 {
    let inc = incident(bot, incident_id).await;
    let body = incident_bot::standins::harness::block_actions_body(
        &inc,
        user,
        action_id,
        &bot.slack.response_url(),
        bot.state.clock.now(),
    )
    .unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let mut payload: serde_json::Value = serde_json::from_str(&form[0].1).unwrap();
    payload["actions"][0]["value"] = serde_json::json!(value);
    let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    bot.post_signed(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        body,
    )
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// Waits until `cond` holds (the bots' timer ticks and queues run meanwhile); fails naming `what` after 20 s.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `block_id` of a message's first block: what kind of message it is (`card`, `ob:stalled:…`, …).
pub fn first_block_id(m: &incident_bot::standins::slack::Message) -> String {
    m.blocks
        .as_ref()
        .and_then(|b| b[0]["block_id"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A message's text as a reader sees it (its blocks flattened; empty for a message without blocks).
pub fn text_of(m: &incident_bot::standins::slack::Message) -> String {
    m.blocks
        .as_ref()
        .map(incident_bot::standins::slack::blocks_to_text)
        .unwrap_or_default()
}

/// The timeline lines the bot posted in incident `id`'s channel, in order.
pub async fn lines(bot: &Harness, id: &str) -> Vec<String> {
    let inc = incident(bot, id).await;
    bot.slack
        .channel_by_name(inc.channel_id.as_deref().unwrap())
        .unwrap()
        .messages
        .iter()
        .filter(|m| first_block_id(m).starts_with("ob:post:"))
        .map(text_of)
        .collect()
}
