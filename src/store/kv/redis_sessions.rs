//! actix-session's Redis store behind a time limit, and rebuilt when Redis
//! comes back. The Redis client has no response timeout of its own, so
//! without the limit a stalled Redis would hang every request; and once
//! its connection manager has given up reconnecting it stays broken, so
//! after a failure a fresh store replaces it as soon as Redis answers.
//! Record keys are `session:` plus the SHA-256 of the id, so a Redis dump
//! logs nobody in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use actix_session::storage::{
    LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration;

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::util::sha256_hex;

const TIMEOUT: StdDuration = StdDuration::from_secs(2);
const REBUILD_EVERY: StdDuration = StdDuration::from_millis(500);

#[derive(Clone)]
pub struct TimedRedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: Secret,
    metrics: Metrics,
    store: RwLock<RedisSessionStore>,
    rebuilding: AtomicBool,
}

async fn build(url: &str) -> anyhow::Result<RedisSessionStore> {
    let build = RedisSessionStore::builder(url)
        .cache_keygen(|key| format!("session:{}", sha256_hex(key)))
        .build();
    tokio::time::timeout(StdDuration::from_secs(5), build)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 seconds"))?
}

impl TimedRedisStore {
    pub async fn connect(url: &Secret, metrics: Metrics) -> anyhow::Result<Self> {
        let store = build(url.expose()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                metrics,
                store: RwLock::new(store),
                rebuilding: AtomicBool::new(false),
            }),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn current(&self) -> RedisSessionStore {
        self.inner
            .store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After a failure: builds a fresh store in the background until Redis
    /// answers again, then swaps it in. One rebuild at a time.
    fn heal(&self) {
        if self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                match build(inner.url.expose()).await {
                    Ok(store) => {
                        *inner.store.write().unwrap_or_else(|p| p.into_inner()) = store;
                        tracing::info!("session store reconnected to Redis");
                        break;
                    }
                    Err(e) => tracing::debug!(error = %e, "Redis still unreachable"),
                }
                tokio::time::sleep(REBUILD_EVERY).await;
            }
            inner.rebuilding.store(false, Ordering::Release);
        });
    }

    async fn limited<T, E>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
        wrap: impl FnOnce(anyhow::Error) -> E,
    ) -> Result<T, E> {
        let result = match tokio::time::timeout(TIMEOUT, fut).await {
            Ok(result) => result,
            Err(_) => Err(wrap(anyhow::anyhow!(
                "redis did not answer within {TIMEOUT:?}"
            ))),
        };
        if result.is_err() {
            self.heal();
        }
        result
    }
}

impl SessionStore for TimedRedisStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let store = self.current();
        self.limited(store.load(key), LoadError::Other).await
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let store = self.current();
        self.limited(store.save(state, ttl), SaveError::Other).await
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let store = self.current();
        self.limited(store.update(key, state, ttl), UpdateError::Other)
            .await
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let store = self.current();
        self.limited(store.update_ttl(key, ttl), |e| e).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let store = self.current();
        self.limited(store.delete(key), |e| e).await
    }
}
