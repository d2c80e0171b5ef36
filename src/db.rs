//! The database: one [`Db`] over SQLite (embedded, default) or PostgreSQL (several replicas).
//!
//! Both go through sqlx's `Any` driver, so every query is written once. Portable rules used everywhere:
//! instants are `BIGINT` epoch milliseconds (see [`ms`] / [`from_ms`]), flags are `BIGINT` 0/1, placeholders are
//! `$1…` (SQLite accepts them too), and claims use conditional `UPDATE … RETURNING`, which is atomic on both.
//! Migrations live in `migrations/sqlite` and `migrations/postgres` and run on start.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

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
}

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

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Connects (creating an SQLite file on first run). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            // No ping before each use: SQLite runs in this process, and the ping was a round trip to its
            // connection thread for every query (15 % of the declaration writer's time under a burst).
            Backend::Sqlite => opts
                .max_connections(SQLITE_CONNECTIONS)
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute(SQLITE_PRAGMAS).await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to the {backend:?} database"))?;
        let sqlite_file = (backend == Backend::Sqlite && !url.contains(":memory:")).then_some(url);
        Ok(Db {
            pool,
            backend,
            sqlite_file,
        })
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .context("migrations failed")?;
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

/// Makes an SQLite URL create its file on first run.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
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
        assert_eq!(sqlite_url("sqlite://x.db"), "sqlite://x.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://x.db?cache=shared"),
            "sqlite://x.db?cache=shared&mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite://x.db?mode=ro"), "sqlite://x.db?mode=ro");
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
}
