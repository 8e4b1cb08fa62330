//! Counters of failed logins in fixed windows: in process (the embedded
//! setup is one process) or in Redis, shared by every instance. A counter
//! past its limit refuses further attempts until its window ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::RedisLink;
use crate::store::{now_ms, StoreError};

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum Throttle {
    Embedded(Arc<Mutex<HashMap<String, (u32, i64)>>>),
    Redis(RedisLink),
}

fn redis_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("redis: {e}"))
}

impl Throttle {
    pub fn embedded() -> Self {
        Throttle::Embedded(Arc::default())
    }

    /// The milliseconds left in the window of `key` when its count has
    /// reached `limit`; none when attempts are still allowed.
    pub async fn blocked(&self, key: &str, limit: u32) -> Result<Option<i64>, StoreError> {
        match self {
            Throttle::Embedded(map) => {
                let now = now_ms();
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                Ok(map
                    .get(key)
                    .filter(|(count, end)| *count >= limit && *end > now)
                    .map(|(_, end)| end - now))
            }
            Throttle::Redis(link) => {
                let mut conn = link.conn();
                let key = format!("throttle:{key}");
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
                let query = pipe.query_async::<(Option<u32>, i64)>(&mut conn);
                let (count, ttl) = tokio::time::timeout(TIMEOUT, query)
                    .await
                    .map_err(redis_err)?
                    .map_err(|e| {
                        link.failed();
                        redis_err(e)
                    })?;
                Ok((count.unwrap_or(0) >= limit && ttl > 0).then_some(ttl))
            }
        }
    }

    /// Counts one failure against `key`, in a window of `window` from the
    /// first failure.
    pub async fn hit(&self, key: &str, window: Duration) -> Result<(), StoreError> {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match self {
            Throttle::Embedded(map) => {
                let now = now_ms();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                // Forget ended windows now and then, so the map stays small.
                if map.len() > 10_000 {
                    map.retain(|_, (_, end)| *end > now);
                }
                let slot = map.entry(key.to_owned()).or_insert((0, now + window_ms));
                if slot.1 <= now {
                    *slot = (0, now + window_ms);
                }
                slot.0 = slot.0.saturating_add(1);
                Ok(())
            }
            Throttle::Redis(link) => {
                let mut conn = link.conn();
                let key = format!("throttle:{key}");
                let mut pipe = redis::pipe();
                pipe.cmd("INCR").arg(&key).ignore();
                pipe.cmd("PEXPIRE")
                    .arg(&key)
                    .arg(window_ms)
                    .arg("NX")
                    .ignore();
                let query = pipe.query_async::<()>(&mut conn);
                tokio::time::timeout(TIMEOUT, query)
                    .await
                    .map_err(redis_err)?
                    .map_err(|e| {
                        link.failed();
                        redis_err(e)
                    })
            }
        }
    }

    pub async fn clear(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Throttle::Embedded(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                Ok(())
            }
            Throttle::Redis(link) => {
                let mut conn = link.conn();
                let mut cmd = redis::cmd("DEL");
                cmd.arg(format!("throttle:{key}"));
                let query = cmd.query_async::<()>(&mut conn);
                tokio::time::timeout(TIMEOUT, query)
                    .await
                    .map_err(redis_err)?
                    .map_err(redis_err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_blocked_at_its_limit_until_cleared() {
        let t = Throttle::embedded();
        for _ in 0..3 {
            assert_eq!(t.blocked("k", 3).await.unwrap(), None);
            t.hit("k", Duration::from_secs(60)).await.unwrap();
        }
        let left = t.blocked("k", 3).await.unwrap().expect("blocked");
        assert!(left > 0 && left <= 60_000);
        assert_eq!(t.blocked("other", 3).await.unwrap(), None);
        t.clear("k").await.unwrap();
        assert_eq!(t.blocked("k", 3).await.unwrap(), None);
    }
}
