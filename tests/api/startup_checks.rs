//! What the commands check before they do anything: `serve` refuses a configuration `check-config` calls
//! broken, naming each error; read-only commands (`report`) never create or migrate the database they are
//! pointed at and say what is missing; `/readyz` is 503 while Slack rejects the bot token.
//! Run on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;

use crate::helpers::fresh_database_url;

/// A scratch directory with an empty configuration file in it.
fn scratch() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("incident-bot-startup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("bot.toml");
    std::fs::write(&config, "").expect("config");
    (dir, config)
}

/// Runs the real binary with `args` against `db_url`; its exit code and stdout + stderr.
fn run(args: &[&str], db_url: &str) -> (i32, String) {
    let (dir, config) = scratch();
    let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .current_dir(&dir)
        .env("DATABASE_URL", db_url)
        .env_remove("CATALOG_PATH")
        .env_remove("LOG_JSON")
        .env_remove("INCIDENT_BOT_INCIDENTS__DEFAULT_TIMEZONE")
        .output()
        .expect("the binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn sqlite_path(db_url: &str) -> Option<PathBuf> {
    db_url.strip_prefix("sqlite://").map(PathBuf::from)
}

/// What a database holds: its tables, the migrations recorded as applied, and (SQLite) the file's bytes.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tables: Vec<String>,
    migrations: Vec<i64>,
    file: Option<Vec<u8>>,
}

async fn snapshot(db_url: &str) -> Snapshot {
    sqlx::any::install_default_drivers();
    let file = sqlite_path(db_url).map(|p| std::fs::read(p).expect("database file"));
    let (url, sql) = if file.is_some() {
        (
            format!("{db_url}?mode=ro"),
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
    } else {
        (
            db_url.to_string(),
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
        )
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(sql)
        .fetch_all(&pool)
        .await
        .expect("tables");
    let migrations = if tables.iter().any(|t| t == "_sqlx_migrations") {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("versions")
    } else {
        Vec::new()
    };
    pool.close().await;
    Snapshot {
        tables,
        migrations,
        file,
    }
}

fn migrations_dir(db_url: &str) -> PathBuf {
    let backend = if db_url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend)
}

/// Applies every migration but the last (a database left by the previous version); the last one's version.
async fn migrate_all_but_last(db_url: &str) -> i64 {
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir(db_url))
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let last = files.pop().expect("a migration");
    let older = std::env::temp_dir().join(format!("incident-bot-older-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&older).expect("dir");
    for f in &files {
        std::fs::copy(f, older.join(f.file_name().expect("name"))).expect("copy");
    }
    let db = incident_bot::db::Db::connect(db_url).await.expect("db");
    let migrator = sqlx::migrate::Migrator::new(older.clone())
        .await
        .expect("migrator");
    migrator.run(&db.pool).await.expect("older migrations");
    db.pool.close().await;
    let _ = std::fs::remove_dir_all(&older);
    last.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').next())
        .and_then(|v| v.parse().ok())
        .expect("numbered migration")
}

#[tokio::test]
async fn report_on_an_empty_database_says_the_schema_is_missing_and_creates_nothing() {
    let db_url = fresh_database_url().await;
    if let Some(path) = sqlite_path(&db_url) {
        // No file at all: not created.
        let (code, out) = run(&["report"], &db_url);
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains(&format!(
                "the SQLite database {} does not exist; run `incident-bot migrate`",
                path.display()
            )),
            "{out}"
        );
        assert!(!path.exists(), "report created the database file");
        // An empty file (as `touch` or a fresh volume leaves it).
        std::fs::write(&path, b"").expect("empty file");
    }
    let before = snapshot(&db_url).await;
    assert!(before.tables.is_empty(), "{before:?}");
    let (code, out) = run(&["report", "--since", "30d"], &db_url);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("has no incident-bot schema; run `incident-bot migrate` first"),
        "{out}"
    );
    assert_eq!(out.matches("incident-bot schema").count(), 1, "{out}");
    assert_eq!(snapshot(&db_url).await, before, "the database is unchanged");
}

#[tokio::test]
async fn report_on_an_older_schema_names_the_missing_migration_and_changes_nothing() {
    let db_url = fresh_database_url().await;
    let missing = migrate_all_but_last(&db_url).await;
    let before = snapshot(&db_url).await;
    assert!(!before.migrations.contains(&missing), "{before:?}");
    let (code, out) = run(&["report"], &db_url);
    assert_ne!(code, 0, "{out}");
    for expected in [
        "is older than this incident-bot".to_string(),
        format!("not applied: migration {missing:04} ("),
        "run `incident-bot migrate` first".to_string(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(snapshot(&db_url).await, before, "the database is unchanged");
    // Once migrated, the same command reads it.
    let (code, out) = run(&["migrate"], &db_url);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["report", "--since", "30d"], &db_url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No incidents in the period"), "{out}");
}

// ---------------------------------------------------------------------------------------------------------
// serve refuses a broken configuration
// ---------------------------------------------------------------------------------------------------------

/// An environment variable set (`Some`) or removed (`None`) for one run.
type Var<'a> = (&'a str, Option<&'a str>);

const SIGNING: &str = "startup-signing-\"quoted\\-secret-51e0";
const BOT_TOKEN: &str = "xoxb-startup-9f3a7c";

/// Runs `serve` with `args` and `env` (on top of a bot token, a signing secret and a SQLite file in a scratch
/// directory); it must exit by itself within 20 s. Its exit code, stdout + stderr, and whether the database
/// file was created.
fn serve(args: &[&str], env: &[Var]) -> (i32, String, bool) {
    let (dir, _) = scratch();
    let db = dir.join("bot.db");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incident-bot"));
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(&dir)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING)
        .env("SLACK_API_URL", "http://127.0.0.1:9/api")
        .env("CATALOG_PATH", dir.join("catalog.yaml"))
        .env_remove("SLACK_APP_TOKEN")
        .env_remove("INCIDENT_BOT_CONFIG")
        .env_remove("LOG_JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().expect("the binary runs");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "serve started anyway:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let created = db.exists();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), text, created)
}

/// The refusal: non-zero, nothing served, no database made, and no secret echoed.
fn assert_refused(code: i32, out: &str, created: bool) {
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("refusing to start"), "{out}");
    assert!(!out.contains("listening"), "{out}");
    assert!(
        !created,
        "the database was created before the configuration was checked"
    );
    for secret in [SIGNING, BOT_TOKEN, "startup-signing", "9f3a7c"] {
        assert!(!out.contains(secret), "a secret is echoed: {out}");
    }
}

#[test]
fn serve_refuses_a_configuration_check_config_calls_broken_naming_each_error() {
    let (dir, config) = scratch();
    std::fs::write(
        &config,
        "[slack]\nbroadcast_chanel = \"incidents\"\n\n[incidents]\ndefault_timezone = \"Mars/Olympus_Mons\"\n",
    )
    .expect("config");
    let file = config.display().to_string();
    let (code, out, created) = serve(&["--config", &file], &[]);
    assert_refused(code, &out, created);
    for expected in [
        "2 configuration errors".to_string(),
        format!("{file}:2: error: slack.broadcast_chanel: unknown key"),
        "did you mean `broadcast_channel`".to_string(),
        format!("{file}:5: error: incidents.default_timezone: \"Mars/Olympus_Mons\" is not an IANA time zone"),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    // The same configuration, fixed, starts (the refusal is about the errors, not about this harness).
    std::fs::write(
        &config,
        "[incidents]\ndefault_timezone = \"Europe/Berlin\"\n",
    )
    .expect("config");
    let (dir2, _) = scratch();
    let mut bot = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config", &file])
        .current_dir(&dir2)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir2.join("bot.db").display()),
        )
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING)
        .env("SLACK_API_URL", "http://127.0.0.1:9/api")
        .env("CATALOG_PATH", dir2.join("catalog.yaml"))
        .env_remove("SLACK_APP_TOKEN")
        .env_remove("INCIDENT_BOT_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(bot.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("a line");
    let _ = bot.kill();
    let _ = bot.wait();
    assert!(line.contains("listening on port"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn serve_refuses_a_named_configuration_file_that_does_not_exist() {
    let missing = "/nonexistent/incident-bot-startup.toml";
    let (code, out, created) = serve(&["--config", missing], &[]);
    assert_refused(code, &out, created);
    assert!(
        out.contains(&format!("{missing}: error: no such file")),
        "{out}"
    );
    // Named through the environment, the same.
    let (code, out, created) = serve(&[], &[("INCIDENT_BOT_CONFIG", Some(missing))]);
    assert_refused(code, &out, created);
    assert!(
        out.contains(&format!("{missing}: error: no such file")),
        "{out}"
    );
}

#[test]
fn serve_refuses_to_start_without_its_slack_secrets_naming_the_variable() {
    let cases: [(&[Var], &str); 3] = [
        (
            &[("SLACK_BOT_TOKEN", None)],
            "environment: error: SLACK_BOT_TOKEN: not set",
        ),
        (
            &[("SLACK_BOT_TOKEN", Some(""))],
            "environment: error: SLACK_BOT_TOKEN: not set",
        ),
        (
            &[("SLACK_SIGNING_SECRET", None)],
            "environment: error: SLACK_SIGNING_SECRET: not set, and no SLACK_APP_TOKEN",
        ),
    ];
    for (env, expected) in cases {
        let (code, out, created) = serve(&[], env);
        assert_refused(code, &out, created);
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // An app token of the wrong kind (a bot token pasted there) is refused without showing it.
    let (code, out, created) = serve(&[], &[("SLACK_APP_TOKEN", Some("xoxb-pasted-as-app-4c1d"))]);
    assert_refused(code, &out, created);
    assert!(
        out.contains("SLACK_APP_TOKEN: must be an app-level token"),
        "{out}"
    );
    assert!(!out.contains("pasted-as-app"), "{out}");
}

// ---------------------------------------------------------------------------------------------------------
// /readyz while Slack rejects the token
// ---------------------------------------------------------------------------------------------------------

async fn readyz(base_url: &str) -> (u16, String) {
    incident_bot::standins::install_tls();
    let resp = reqwest::get(format!("{base_url}/readyz"))
        .await
        .expect("GET /readyz");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn bot_token(app: &crate::helpers::TestApp) -> String {
    app.state
        .secrets
        .slack_bot_token
        .as_ref()
        .expect("a bot token")
        .expose()
        .to_string()
}

#[tokio::test]
async fn readyz_is_503_while_slack_rejects_the_token_and_ready_once_auth_test_succeeds() {
    let app = crate::helpers::spawn_app().await;
    // The token was revoked and a new one issued: Slack answers every call with invalid_auth.
    app.slack
        .set_token_prefix("xoxb-a-token-this-bot-does-not-have-");
    let (status, why) = readyz(&app.base_url).await;
    assert_eq!(
        (status, why.as_str()),
        (503, "slack rejects the bot token: invalid_auth")
    );
    assert!(!why.contains(&bot_token(&app)));
    // Probes, one after another and 50 at once, do not each ask Slack.
    let asked = app.slack.count("auth.test");
    for _ in 0..20 {
        assert_eq!(readyz(&app.base_url).await.0, 503);
    }
    let burst = futures::future::join_all((0..50).map(|_| readyz(&app.base_url))).await;
    assert!(burst.iter().all(|(s, _)| *s == 503));
    assert!(
        app.slack.count("auth.test") - asked <= 1,
        "{} auth.test calls for 70 probes",
        app.slack.count("auth.test") - asked
    );
    // The token is accepted again: ready at the next recheck, without a restart.
    app.slack.set_token_prefix("xoxb-");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = readyz(&app.base_url).await;
    while last.0 != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = readyz(&app.base_url).await;
    }
    assert_eq!((last.0, last.1.as_str()), (200, "ready"));
    let asked = app.slack.count("auth.test");
    for _ in 0..20 {
        assert_eq!(readyz(&app.base_url).await.0, 200);
    }
    assert_eq!(
        app.slack.count("auth.test"),
        asked,
        "an accepted token is not asked again at once"
    );
}

#[tokio::test]
async fn readyz_names_a_deactivated_or_revoked_token() {
    for code in ["account_inactive", "token_revoked"] {
        let app = crate::helpers::spawn_app().await;
        // Enough answers for the start's own auth.test and the probe.
        for _ in 0..3 {
            app.slack.fail_next(
                "auth.test",
                incident_bot::standins::slack::Fault::error(code),
            );
        }
        let (status, why) = readyz(&app.base_url).await;
        assert_eq!(
            (status, why.as_str()),
            (503, format!("slack rejects the bot token: {code}").as_str())
        );
        assert!(!why.contains(&bot_token(&app)));
    }
}

#[tokio::test]
async fn readyz_stays_ready_when_slack_is_unreachable_or_failing() {
    // A Slack outage says nothing about this replica's token: no reason to take it out of rotation.
    let app = crate::helpers::spawn_app().await;
    for _ in 0..3 {
        app.slack.fail_next(
            "auth.test",
            incident_bot::standins::slack::Fault::Status(503),
        );
    }
    assert_eq!(readyz(&app.base_url).await, (200, "ready".to_string()));
}

#[test]
fn serve_refuses_each_kind_of_error_check_config_reports() {
    let cases = [
        ("[slack\nbroadcast_channel = 1\n", "error: TOML syntax"),
        (
            "[setup]\nmax_attempts = \"eight\"\n",
            "error: setup.max_attempts: invalid type",
        ),
        ("listen = \"not an address\"\n", "error: listen:"),
        (
            "[slack]\nbroadcast_channel = \"Incident Room\"\n",
            "is not a Slack channel name",
        ),
        (
            "catalog_path = \"CATALOG\"\n",
            "error: metadata.name: duplicate service name",
        ),
    ];
    for (toml, expected) in cases {
        let (dir, config) = scratch();
        let catalog = dir.join("broken-catalog.yaml");
        std::fs::write(
            &catalog,
            "---\nkind: Component\nmetadata:\n  name: payments\n---\nkind: Component\nmetadata:\n  name: payments\n",
        )
        .expect("catalog");
        std::fs::write(
            &config,
            toml.replace("CATALOG", &catalog.display().to_string()),
        )
        .expect("config");
        let file = config.display().to_string();
        let (code, out, created) = serve(&["--config", &file], &[("CATALOG_PATH", None)]);
        assert_refused(code, &out, created);
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
