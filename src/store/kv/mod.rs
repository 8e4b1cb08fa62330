//! Key-value concerns with an embedded (database) and a Redis
//! implementation. Only the session store exists so far.

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
}

type State = HashMap<String, String>;

impl SessionStore for SessionBackend {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        match self {
            SessionBackend::Embedded(s) => s.load(key).await,
            SessionBackend::Redis(s) => s.load(key).await,
        }
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        match self {
            SessionBackend::Embedded(s) => s.save(state, ttl).await,
            SessionBackend::Redis(s) => s.save(state, ttl).await,
        }
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        match self {
            SessionBackend::Embedded(s) => s.update(key, state, ttl).await,
            SessionBackend::Redis(s) => s.update(key, state, ttl).await,
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        match self {
            SessionBackend::Embedded(s) => s.update_ttl(key, ttl).await,
            SessionBackend::Redis(s) => s.update_ttl(key, ttl).await,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        match self {
            SessionBackend::Embedded(s) => s.delete(key).await,
            SessionBackend::Redis(s) => s.delete(key).await,
        }
    }
}
