//! # keyroll-store
//!
//! Session stores for keyroll, and the rotation engine on top of them.
//!
//! - [`Store`]: a small async trait (load, create, save, delete,
//!   compare-and-swap, ordered batch scan, purge) with backends behind
//!   features: `sqlite` (default; embedded, WAL), `postgres`, `redis`. SQL
//!   backends use Django's session table layout (`session_key` varchar(40)
//!   primary key, `session_data` text, `expire_date` indexed), so a
//!   `django_session` table Django created works as it is.
//! - [`SessionEngine`]: load → verify against the key ring → stale data is
//!   re-signed with the primary and written back with compare-and-swap (a
//!   concurrent write always wins) → save. [`SessionEngine::load`] tells a
//!   missing session from a refused one ([`LoadOutcome`]);
//!   [`SessionEngine::load_refreshing`] lets the caller replace a stale
//!   session's data in the same write; [`SessionEngine::under`] works under
//!   one given ring snapshot ([`EngineAt`]).
//! - [`census`] and [`resign`]: walk a whole table in key order, in batches,
//!   in constant memory; `resign` is idempotent and resumable.
//!
//! Schema creation is explicit: call [`Store::ensure_schema`].
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use keyroll::{KeyRing, Secret};
//! use keyroll_store::{open_store, SessionEngine, StoreOptions};
//! use time::{Duration, OffsetDateTime};
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
//! let store = open_store(&url, &StoreOptions::default()).await?;
//! store.ensure_schema().await?;
//! let engine = SessionEngine::new(store, &KeyRing::new(Secret::from("a-long-secret-key-0123456789abcdef")).expect("a non-empty secret"));
//! let now = OffsetDateTime::now_utc();
//! let mut data = keyroll::SessionData::new();
//! data.insert("cart".into(), 3.into());
//! let key = engine.create(&data, now + Duration::days(14), now).await?;
//! let loaded = engine.load(&key, now).await?.into_loaded().expect("a session");
//! assert_eq!(*loaded.data, data);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

mod bulk;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod datetime;
mod engine;
mod memory;
mod params;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod timeouts;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod tls;
mod url;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use bulk::{
    census, purge, resign, BulkOptions, Census, Progress, PurgeBatch, ResignSummary, Users,
    PURGE_BATCH_MAX, PURGE_BATCH_MIN, PURGE_BATCH_TIME,
};
pub use engine::{
    EngineAt, FixedRing, LoadOutcome, LoadedSession, PreparedRing, Refresh, RingSource, Saved,
    SessionEngine, StatsSnapshot,
};
pub use memory::MemoryStore;
pub use store::{
    check_table_name, is_valid_session_key, new_session_key, KeyRange, LockedBatch, LockedScan,
    PurgeFrom, Purged, RowCounts, SessionRecord, StorageOrder, Store, StoreError, Swap, UserTable,
    MAX_SESSION_KEY_LEN, PURGE_BATCH, SESSION_KEY_CHARS, SESSION_KEY_LEN,
};
pub use timeouts::Timeouts;
pub use url::{open_store, StoreOptions, DEFAULT_REDIS_PREFIX, DEFAULT_TABLE, DJANGO_TABLE};

#[cfg(feature = "mysql")]
pub use mysql::MysqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
