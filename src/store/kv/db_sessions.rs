//! Sessions kept in the SQL database: the embedded default, which survives
//! restarts with no other service. Keys are stored as SHA-256 hashes.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

use crate::store::{now_ms, sessions, Db};
use crate::util::{random_token, sha256_hex};

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        self.db.metrics()
    }

    /// Deletes expired rows now and then, so the table does not grow forever.
    pub fn spawn_purger(&self) {
        let db = self.db.clone();
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                match db.run(|c| sessions::purge_expired(c, now_ms())).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
                }
            }
        });
    }
}

fn expiry(ttl: &Duration) -> i64 {
    now_ms().saturating_add(ttl.whole_milliseconds().try_into().unwrap_or(i64::MAX))
}

fn new_key() -> SessionKey {
    // 32 random bytes are 43 base64url characters, far under the 4 KiB cap.
    // unwrap-free: the conversion only fails above 4064 characters.
    SessionKey::try_from(random_token(32)).unwrap_or_else(|_| unreachable!("43-character key"))
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let hash = sha256_hex(key.as_ref());
        let state = self
            .db
            .run(move |c| sessions::load(c, &hash, now_ms()))
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        match state {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let key = new_key();
        let hash = sha256_hex(key.as_ref());
        let expires = expiry(ttl);
        self.db
            .run(move |c| sessions::upsert(c, &hash, &json, expires))
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let hash = sha256_hex(key.as_ref());
        let expires = expiry(ttl);
        // A session that expired meanwhile is not revived under its old key.
        let live = self
            .db
            .run(move |c| {
                let live = sessions::load(c, &hash, now_ms())?.is_some();
                if live {
                    sessions::upsert(c, &hash, &json, expires)?;
                }
                Ok(live)
            })
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        if live {
            Ok(key)
        } else {
            self.save(state, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            })
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let hash = sha256_hex(key.as_ref());
        let expires = expiry(ttl);
        self.db
            .run(move |c| sessions::touch(c, &hash, expires))
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let hash = sha256_hex(key.as_ref());
        self.db.run(move |c| sessions::delete(c, &hash)).await?;
        Ok(())
    }
}
