//! A Redis connection that heals. The client's connection manager gives up
//! after a few failed reconnections and then stays broken, so after any
//! failure a fresh manager is built in the background, every half second,
//! until Redis answers, and swapped in.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::Metrics;
use crate::store::StoreError;

const REBUILD_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    metrics: Metrics,
    conn: RwLock<ConnectionManager>,
    rebuilding: AtomicBool,
}

/// A manager with time limits, so a stalled Redis fails commands quickly
/// instead of hanging them.
async fn manager(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(3))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2);
    tokio::time::timeout(
        Duration::from_secs(5),
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within 5 seconds"))?
    .map_err(Into::into)
}

impl RedisLink {
    pub async fn connect(url: &str, metrics: Metrics) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = manager(&client).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                metrics,
                conn: RwLock::new(conn),
                rebuilding: AtomicBool::new(false),
            }),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// The current connection (cheap to clone).
    fn conn(&self) -> ConnectionManager {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reports a failed command: rebuilds the connection in the background.
    fn failed(&self) {
        if self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                match manager(&inner.client).await {
                    Ok(conn) => {
                        *inner.conn.write().unwrap_or_else(|p| p.into_inner()) = conn;
                        tracing::info!("reconnected to Redis");
                        break;
                    }
                    Err(e) => tracing::debug!(error = %e, "Redis still unreachable"),
                }
                tokio::time::sleep(REBUILD_EVERY).await;
            }
            inner.rebuilding.store(false, Ordering::Release);
        });
    }

    /// Runs commands on the current connection within `limit`; a failure
    /// or a timeout starts a rebuild and is `Unavailable` (503). `op` names
    /// the call in the store-operation counts.
    pub async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        limit: Duration,
        commands: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome = match tokio::time::timeout(limit, commands(self.conn())).await {
            Ok(Ok(value)) => {
                self.inner.metrics.store_op("redis", op, "ok");
                return Ok(value);
            }
            Ok(Err(e)) => anyhow::anyhow!("redis: {e}"),
            Err(_) => anyhow::anyhow!("redis did not answer within {limit:?}"),
        };
        self.inner.metrics.store_op("redis", op, "unavailable");
        self.failed();
        Err(StoreError::Unavailable(outcome))
    }

    /// Whether Redis answers a PING within two seconds.
    pub async fn ping(&self) -> bool {
        let ping = self.run("ping", Duration::from_secs(2), |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        });
        ping.await.is_ok()
    }
}
