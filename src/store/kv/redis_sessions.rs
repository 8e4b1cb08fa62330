//! actix-session's Redis store behind a time limit. The Redis client has no
//! response timeout of its own, so without this a stalled Redis would hang
//! every request. Record keys are `session:` plus the SHA-256 of the id, so
//! a Redis dump logs nobody in.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration as StdDuration;

use actix_session::storage::{
    LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration;

use crate::util::sha256_hex;

const TIMEOUT: StdDuration = StdDuration::from_secs(2);

#[derive(Clone)]
pub struct TimedRedisStore {
    inner: RedisSessionStore,
}

impl TimedRedisStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let build = RedisSessionStore::builder(url)
            .cache_keygen(|key| format!("session:{}", sha256_hex(key)))
            .build();
        let inner = tokio::time::timeout(StdDuration::from_secs(5), build)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 5 seconds"))??;
        Ok(Self { inner })
    }
}

async fn limited<T, E>(
    fut: impl Future<Output = Result<T, E>>,
    wrap: impl FnOnce(anyhow::Error) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(wrap(anyhow::anyhow!(
            "redis did not answer within {TIMEOUT:?}"
        ))),
    }
}

impl SessionStore for TimedRedisStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        limited(self.inner.load(key), LoadError::Other).await
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        limited(self.inner.save(state, ttl), SaveError::Other).await
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        limited(self.inner.update(key, state, ttl), UpdateError::Other).await
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        limited(self.inner.update_ttl(key, ttl), |e| e).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        limited(self.inner.delete(key), |e| e).await
    }
}
