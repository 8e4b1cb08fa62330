//! The deny-list of access-token ids revoked before they expire: in the
//! database (embedded) or in Redis with a TTL. Requests never read it; it
//! lets an instance that starts later build its local view.

use std::time::Duration;

use redis::AsyncCommands;

use super::RedisLink;
use crate::metrics::outcome;
use crate::store::{revoked, Db, StoreError};

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum DenyStore {
    Embedded(Db),
    Redis(RedisLink),
}

impl DenyStore {
    pub async fn add(&self, jti: &str, expires_ms: i64) -> Result<(), StoreError> {
        match self {
            DenyStore::Embedded(db) => {
                let jti = jti.to_owned();
                let added = db.run(move |c| revoked::add(c, &jti, expires_ms)).await;
                db.metrics().store_op("db", "deny_add", outcome(&added));
                added
            }
            DenyStore::Redis(link) => {
                let ttl = expires_ms.saturating_sub(crate::store::now_ms()).max(1);
                let key = format!("deny:{jti}");
                link.run("deny_add", TIMEOUT, |mut conn| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(expires_ms)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await
            }
        }
    }

    /// Every entry still in force, with its expiry.
    pub async fn live(&self) -> Result<Vec<(String, i64)>, StoreError> {
        match self {
            DenyStore::Embedded(db) => {
                let live = db.run(|c| revoked::live(c, crate::store::now_ms())).await;
                db.metrics().store_op("db", "deny_scan", outcome(&live));
                live
            }
            DenyStore::Redis(link) => {
                link.run(
                    "deny_scan",
                    Duration::from_secs(10),
                    |mut conn| async move {
                        let mut keys = Vec::new();
                        {
                            let mut iter = conn.scan_match::<_, String>("deny:*").await?;
                            while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
                                keys.push(k);
                            }
                        }
                        let mut out = Vec::new();
                        for key in keys {
                            let exp: Option<i64> = conn.get(&key).await?;
                            if let (Some(exp), Some(jti)) = (exp, key.strip_prefix("deny:")) {
                                out.push((jti.to_owned(), exp));
                            }
                        }
                        Ok(out)
                    },
                )
                .await
            }
        }
    }
}
