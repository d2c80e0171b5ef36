//! The database: one [`Db`] over SQLite (embedded, default) or PostgreSQL (several replicas).
//!
//! Both go through sqlx's `Any` driver, so every query is written once. Portable rules used everywhere:
//! instants are `BIGINT` epoch milliseconds (see [`ms`] / [`from_ms`]), flags are `BIGINT` 0/1, placeholders are
//! `$1…` (SQLite accepts them too), and claims use conditional `UPDATE … RETURNING`, which is atomic on both.
//! Migrations live in `migrations/sqlite` and `migrations/postgres` and run on start; read-only commands
//! (`report`) open the database with [`Db::connect_read_only`], which never creates or migrates anything and
//! says what is missing instead.
//!
//! Errors say once what failed and where: the file of an SQLite database, `host:port/database` of a PostgreSQL
//! one (never the password), then the driver's message without repeating it.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::errors::once;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The URL of an SQLite database file, for [`Db::spawn_checkpointer`].
    sqlite_file: Option<String>,
    /// Where the database is, for messages: see [`place`].
    place: String,
}

/// How long a PostgreSQL server may take to accept the first connection before `connect` gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite allows one writer at a time, and a connection that finds the database locked sleeps in SQLite's busy
/// handler (1, 2, 5, 10 … ms). With one pooled connection, queries queue fairly in the pool instead, which keeps
/// a burst of slash commands acknowledged in milliseconds (see `incident-bot bench warroom`).
const SQLITE_CONNECTIONS: u32 = 1;

/// Set on every SQLite connection: write-ahead log; commits durable against a crash of the process (not of the
/// machine) without an fsync each; the log checkpointed by [`Db::spawn_checkpointer`] rather than inside commits;
/// wait up to 10 s for another process's lock; foreign keys enforced.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000; \
PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;";
/// Set on every connection of a read-only SQLite open: nothing that writes to the file.
const SQLITE_READ_PRAGMAS: &str = "PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Connects (creating an SQLite file on first run). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Self::open(url, false).await
    }

    /// For read-only commands: opens an existing database without creating, changing or migrating anything
    /// (SQLite read-only), and fails naming what is missing when its schema is not this version's.
    pub async fn connect_read_only(url: &str) -> anyhow::Result<Db> {
        let db = Self::open(url, true).await?;
        db.require_schema().await?;
        Ok(db)
    }

    async fn open(url: &str, read_only: bool) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, place) = place(url)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(url, read_only),
            Backend::Postgres => url.to_string(),
        };
        if backend == Backend::Sqlite && read_only && !std::path::Path::new(&place).exists() {
            anyhow::bail!(
                "the SQLite database {place} does not exist; run `incident-bot migrate` to create it"
            );
        }
        if backend == Backend::Postgres {
            probe(&url, &place).await?;
        }
        let pool = pool_options(backend, read_only)
            .connect(&url)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot open the {backend} database {place}: {}", once(&e))
            })?;
        let sqlite_file =
            (backend == Backend::Sqlite && !read_only && !url.contains(":memory:")).then_some(url);
        Ok(Db {
            pool,
            backend,
            sqlite_file,
            place,
        })
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrator().run(&self.pool).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot migrate the {} database {}: {}",
                self.backend,
                self.place,
                once(&e)
            )
        })
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Fails, naming what is missing, unless every migration of this version has been applied.
    pub async fn require_schema(&self) -> anyhow::Result<()> {
        let fail = |e: sqlx::Error| {
            anyhow::anyhow!(
                "cannot read the {} database {}: {}",
                self.backend,
                self.place,
                once(&e)
            )
        };
        let tables = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let found: i64 = sqlx::query_scalar(tables)
            .fetch_one(&self.pool)
            .await
            .map_err(fail)?;
        if found == 0 {
            anyhow::bail!(
                "the {} database {} has no incident-bot schema; run `incident-bot migrate` first",
                self.backend,
                self.place
            );
        }
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(fail)?;
        let missing: Vec<String> = self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| format!("{:04} ({})", m.version, m.description))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the {} database {} is older than this incident-bot (not applied: migration {}); \
                 run `incident-bot migrate` first",
                self.backend,
                self.place,
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// SQLite: checkpoints the write-ahead log every [`CHECKPOINT_EVERY`] from a connection of its own. Left to
    /// itself, SQLite checkpoints inside whichever commit takes the log past its `wal_autocheckpoint` size,
    /// stalling the one writer connection — and every declaration queued behind it — for the copy and its
    /// fsyncs (4–5 ms each here). That size is 10,000 pages (40 MB) for the pooled connection, which a second
    /// of even a war-room storm does not reach, so only this task checkpoints while the server runs; a command
    /// line run without it (`import`) still checkpoints inside commits. A `PASSIVE` checkpoint waits for no
    /// reader or writer. Does nothing for PostgreSQL or an in-memory database.
    pub fn spawn_checkpointer(&self) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.sqlite_file.clone()?;
        Some(tokio::spawn(async move {
            use sqlx::Connection;
            let mut conn = match sqlx::AnyConnection::connect(&url).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "no WAL checkpointer; SQLite will checkpoint inside commits");
                    return;
                }
            };
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::debug!(error = %e, "WAL checkpoint skipped");
                }
            }
        }))
    }

    /// `SELECT 1`, for `/readyz`.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Starts a write transaction (on SQLite `BEGIN IMMEDIATE`, so concurrent writers queue instead of failing
    /// half-way on a lock upgrade).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Inserts `items` with multi-row statements (see [`multi_row_sql`]) of at most [`MAX_ROWS`] rows — one
    /// statement, one round trip, for any ordinary batch — each item's values bound by `bind` in the order of
    /// the `?` in `row`. Returns the rows inserted.
    pub async fn insert_rows<'a, T>(
        &self,
        conn: &mut sqlx::AnyConnection,
        (head, row, tail): (&str, &str, &str),
        items: &'a [T],
        bind: impl Fn(AnyQuery<'a>, &'a T) -> AnyQuery<'a>,
    ) -> Result<u64, sqlx::Error> {
        let mut inserted = 0;
        for chunk in items.chunks(MAX_ROWS) {
            let sql = multi_row_sql(self.backend, head, row, chunk.len(), tail);
            // A statement for one row is kept prepared; the many sizes of a batch are prepared when used, which
            // is cheap with anonymous placeholders, and do not crowd the statement cache.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == 1);
            for item in chunk {
                q = bind(q, item);
            }
            inserted += q.execute(&mut *conn).await?.rows_affected();
        }
        Ok(inserted)
    }
}

impl Db {
    /// [`Db::insert_rows`] for a statement with a `RETURNING` tail: the rows it returned, from every chunk.
    pub async fn insert_rows_returning<'a, T>(
        &self,
        conn: &mut sqlx::AnyConnection,
        (head, row, tail): (&str, &str, &str),
        items: &'a [T],
        bind: impl Fn(AnyQuery<'a>, &'a T) -> AnyQuery<'a>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let mut rows = Vec::new();
        for chunk in items.chunks(MAX_ROWS) {
            let sql = multi_row_sql(self.backend, head, row, chunk.len(), tail);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == 1);
            for item in chunk {
                q = bind(q, item);
            }
            rows.extend(q.fetch_all(&mut *conn).await?);
        }
        Ok(rows)
    }
}

/// The text `{head} VALUES {row}, {row}, … {tail}` with `rows` copies of `row`, a tuple in which each `?`
/// stands for one bound value (constants may be written in it; no `?` may appear inside a literal).
/// SQLite keeps the anonymous `?`: with `$N` names it scans the whole parameter list for each one while
/// preparing and again while binding — quadratic, 40 ms for a 200-declaration batch. PostgreSQL gets
/// `$1…$n`. Built from the caller's static text only; values are always bound.
pub fn multi_row_sql(backend: Backend, head: &str, row: &str, rows: usize, tail: &str) -> String {
    let values = vec![row; rows].join(", ");
    let values = match backend {
        Backend::Sqlite => values,
        Backend::Postgres => {
            let mut n = 0;
            values
                .split('?')
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part.to_string()
                    } else {
                        n += 1;
                        format!("${n}{part}")
                    }
                })
                .collect()
        }
    };
    format!("{head} VALUES {values} {tail}")
}

/// A query being built, bound with `.bind(…)`.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// How often [`Db::spawn_checkpointer`] checkpoints.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Most rows in one multi-row `INSERT` (12 values each is 6,000 parameters, under every backend's limit).
pub const MAX_ROWS: usize = 500;

/// An SQLite URL that creates its file on first run, or (read-only) opens an existing file without writing.
fn sqlite_url(url: &str, read_only: bool) -> String {
    let mode = if read_only { "mode=ro" } else { "mode=rwc" };
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{mode}")
    } else {
        format!("{url}?{mode}")
    }
}

fn pool_options(backend: Backend, read_only: bool) -> AnyPoolOptions {
    let opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
    match backend {
        // No ping before each use: SQLite runs in this process, and the ping was a round trip to its
        // connection thread for every query (15 % of the declaration writer's time under a burst).
        Backend::Sqlite => opts
            .max_connections(SQLITE_CONNECTIONS)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    // Read-only: only the per-connection settings (the journal mode is written to the file).
                    let pragmas = if read_only {
                        SQLITE_READ_PRAGMAS
                    } else {
                        SQLITE_PRAGMAS
                    };
                    conn.execute(pragmas).await?;
                    Ok(())
                })
            }),
        Backend::Postgres => opts.max_connections(16),
    }
}

/// The backend of a `DATABASE_URL` and where it points, for messages: the file of an SQLite database,
/// `host:port/database` of a PostgreSQL one (never user or password).
fn place(url: &str) -> anyhow::Result<(Backend, String)> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        let path = if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
            "(in memory)"
        } else {
            path
        };
        return Ok((Backend::Sqlite, path.to_string()));
    }
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid postgres:// URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("localhost");
    let port = parsed.port().unwrap_or(5432);
    let database = parsed.path().trim_start_matches('/');
    Ok((Backend::Postgres, format!("{host}:{port}/{database}")))
}

/// One connection to a PostgreSQL server, to tell why it cannot be reached (the pool would only say that it
/// timed out).
async fn probe(url: &str, place: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url)).await {
        Err(_) => anyhow::bail!(
            "cannot connect to the PostgreSQL database {place}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => anyhow::bail!(
            "cannot connect to the PostgreSQL database {place}: {}",
            once(&e)
        ),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// Epoch milliseconds, the stored form of every instant.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Back from epoch milliseconds.
pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// Optional variant of [`from_ms`].
pub fn from_ms_opt(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(sqlite_url("sqlite://x.db", false), "sqlite://x.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://x.db?cache=shared", false),
            "sqlite://x.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite://x.db?mode=ro", false),
            "sqlite://x.db?mode=ro"
        );
        assert_eq!(sqlite_url("sqlite://x.db", true), "sqlite://x.db?mode=ro");
    }

    #[test]
    fn multi_row_statements_keep_anonymous_placeholders_on_sqlite_and_number_them_on_postgres() {
        let head = "INSERT INTO t (a, b, c)";
        assert_eq!(
            multi_row_sql(
                Backend::Sqlite,
                head,
                "(?, 'x', ?)",
                2,
                "ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b, c) VALUES (?, 'x', ?), (?, 'x', ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            multi_row_sql(Backend::Postgres, head, "(?, 'x', ?)", 2, ""),
            "INSERT INTO t (a, b, c) VALUES ($1, 'x', $2), ($3, 'x', $4) "
        );
    }

    #[test]
    fn instants_round_trip_through_milliseconds() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 14, 32, 7).unwrap();
        assert_eq!(from_ms(ms(t)), t);
    }

    fn occurrences(text: &str, part: &str) -> usize {
        text.matches(part).count()
    }

    #[tokio::test]
    async fn a_closed_postgres_port_is_named_once_with_host_port_and_database_and_no_password() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("postgres://bot:hunter2-secret@127.0.0.1:{port}/incidents");
        let e = Db::connect(&url).await.unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!(
                "cannot connect to the PostgreSQL database 127.0.0.1:{port}/incidents: "
            )),
            "{msg}"
        );
        assert_eq!(occurrences(&msg, "refused"), 1, "{msg}");
        assert!(!msg.contains("hunter2") && !msg.contains("bot:"), "{msg}");
    }

    #[tokio::test]
    async fn an_unwritable_sqlite_path_is_named_once_with_the_reason_once() {
        let file = std::env::temp_dir().join(format!("incident-bot-db-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, "a file, not a directory").unwrap();
        let path = file.join("bot.db");
        let e = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!(
                "cannot open the SQLite database {}: ",
                path.display()
            )),
            "{msg}"
        );
        assert_eq!(
            occurrences(&msg, "unable to open database file"),
            1,
            "{msg}"
        );
        assert_eq!(occurrences(&msg, &path.display().to_string()), 1, "{msg}");
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn places_name_the_file_or_host_port_and_database_without_credentials() {
        assert_eq!(
            place("sqlite:///var/lib/bot/x.db?mode=rwc").unwrap(),
            (Backend::Sqlite, "/var/lib/bot/x.db".to_string())
        );
        assert_eq!(
            place("postgres://bot:pw@db.internal/incidents?sslmode=require").unwrap(),
            (Backend::Postgres, "db.internal:5432/incidents".to_string())
        );
        assert!(place("mysql://x").is_err());
    }
}
