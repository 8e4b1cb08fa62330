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
                let key = format!("throttle:{key}");
                let (count, ttl) = link
                    .run("throttle_check", TIMEOUT, |mut conn| async move {
                        redis::pipe()
                            .cmd("GET")
                            .arg(&key)
                            .cmd("PTTL")
                            .arg(&key)
                            .query_async::<(Option<u32>, i64)>(&mut conn)
                            .await
                    })
                    .await?;
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
                let key = format!("throttle:{key}");
                link.run("throttle_hit", TIMEOUT, |mut conn| async move {
                    redis::pipe()
                        .cmd("INCR")
                        .arg(&key)
                        .ignore()
                        .cmd("PEXPIRE")
                        .arg(&key)
                        .arg(window_ms)
                        .arg("NX")
                        .ignore()
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
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
                let key = format!("throttle:{key}");
                link.run("throttle_clear", TIMEOUT, |mut conn| async move {
                    redis::cmd("DEL")
                        .arg(key)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
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
