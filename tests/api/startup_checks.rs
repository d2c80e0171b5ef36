//! What the commands check before they do anything: read-only commands (`report`) never create or migrate
//! the database they are pointed at and say what is missing.
//! Run on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use std::path::PathBuf;
use std::process::Command;

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
