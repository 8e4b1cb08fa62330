//! Key-value concerns with an embedded (database) and a Redis
//! implementation: sessions, the token deny-list, the login throttle.

mod db_sessions;
mod deny;
mod redis_link;
mod redis_sessions;
mod throttle;

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

pub use db_sessions::DbSessionStore;
pub use deny::DenyStore;
pub use redis_link::RedisLink;
pub use redis_sessions::TimedRedisStore;
pub use throttle::Throttle;

/// The session store in force: chosen at startup from `REDIS_URL`.
#[derive(Clone)]
pub enum SessionBackend {
    Embedded(DbSessionStore),
    Redis(TimedRedisStore),
}

impl SessionBackend {
    pub fn name(&self) -> &'static str {
        match self {
            SessionBackend::Embedded(_) => "embedded (database)",
            SessionBackend::Redis(_) => "redis",
        }
    }

    /// Counts one session-store call.
    fn count<T, E>(&self, op: &'static str, result: &Result<T, E>) {
        let (store, metrics) = match self {
            SessionBackend::Embedded(s) => ("db", s.metrics()),
            SessionBackend::Redis(s) => ("redis", s.metrics()),
        };
        // actix-session's errors do not say why; a failed session call is
        // nearly always the store being away.
        let outcome = if result.is_ok() { "ok" } else { "unavailable" };
        metrics.store_op(store, op, outcome);
    }
}

type State = HashMap<String, String>;

impl SessionStore for SessionBackend {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let loaded = match self {
            SessionBackend::Embedded(s) => s.load(key).await,
            SessionBackend::Redis(s) => s.load(key).await,
        };
        self.count("session_load", &loaded);
        loaded
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let saved = match self {
            SessionBackend::Embedded(s) => s.save(state, ttl).await,
            SessionBackend::Redis(s) => s.save(state, ttl).await,
        };
        self.count("session_save", &saved);
        saved
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let updated = match self {
            SessionBackend::Embedded(s) => s.update(key, state, ttl).await,
            SessionBackend::Redis(s) => s.update(key, state, ttl).await,
        };
        self.count("session_update", &updated);
        updated
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let extended = match self {
            SessionBackend::Embedded(s) => s.update_ttl(key, ttl).await,
            SessionBackend::Redis(s) => s.update_ttl(key, ttl).await,
        };
        self.count("session_touch", &extended);
        extended
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let deleted = match self {
            SessionBackend::Embedded(s) => s.delete(key).await,
            SessionBackend::Redis(s) => s.delete(key).await,
        };
        self.count("session_delete", &deleted);
        deleted
    }
}
