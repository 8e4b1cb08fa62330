//! The storage layer: every SQL query of the app lives under this module, and
//! every call runs on the blocking thread pool, never on an async worker.
//!
//! SQLite is set up for a server: WAL so readers never wait for the writer, a
//! busy timeout so concurrent writers queue instead of failing, foreign keys
//! on, and `BEGIN IMMEDIATE` for writes so a transaction never has to upgrade
//! its lock half way (which is where SQLite reports SQLITE_BUSY at once).

pub mod audit;
mod error;
pub mod kv;
pub mod logins;
pub mod messages;
mod models;
pub mod refresh;
pub mod revoked;
pub mod room_list;
pub mod rooms;
mod schema;
pub mod sessions;
pub mod users;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use error::StoreError;

use crate::metrics::Metrics;
pub use models::{Message, NewMessage, NewUser, Room, User};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

pub type Conn = SqliteConnection;

/// A handle on the database: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<SqliteConnection>>,
    metrics: Metrics,
}

#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite file and runs pending migrations.
    pub fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::other(e, "creating the database folder"))?;
        }
        // WAL is a property of the file: switch it once, on one connection,
        // before the pool opens several at the same time.
        let url = path.to_string_lossy().into_owned();
        let mut first = SqliteConnection::establish(&url)
            .map_err(|e| StoreError::other(e, "opening the database"))?;
        first
            .batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
            .map_err(StoreError::from)?;
        drop(first);
        let manager = ConnectionManager::<SqliteConnection>::new(url);
        let pool = Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(5))
            .connection_customizer(Box::new(Pragmas))
            .build(manager)
            .map_err(|e| StoreError::other(e, "opening the database"))?;
        let db = Db {
            pool,
            metrics: Metrics::default(),
        };
        db.migrate_blocking()?;
        Ok(db)
    }

    /// Counts every call from now on in `metrics`; set before the handle
    /// is shared, since clones keep the handle they were made with.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where this handle counts its calls.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs the migrations that have not run yet; returns how many ran.
    pub fn migrate_blocking(&self) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let done = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Other(anyhow::anyhow!("running migrations: {e}")))?;
        Ok(done.len())
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database task failed: {e}")))
        .and_then(|r| r);
        self.metrics
            .store_op("db", "query", crate::metrics::outcome(&result));
        result
    }
}

/// A trivial query: proves the database answers.
pub fn ping(conn: &mut Conn) -> Result<(), StoreError> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

/// Now, in Unix milliseconds, the unit of every time column.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
