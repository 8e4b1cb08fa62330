//! bcrypt hashing and verification, always on the blocking thread pool.
//!
//! A login for an unknown email verifies against a dummy hash of the same
//! cost, so both failures take about as long and the answer reveals nothing.
//!
//! bcrypt is slow on purpose, so a flood of logins could take every
//! blocking thread. At most a few hashes run at once, a bounded number
//! wait, and past that a request fails at once with `Busy` (503), leaving
//! the rest of the app responsive.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OnceCell, Semaphore};

use crate::metrics::Metrics;

/// Hashes that may run at the same time.
const RUNNING: usize = 4;
/// Hashes that may wait for a turn; one more is refused.
const WAITING: usize = 64;

/// Too many password checks under way: try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks under way")]
pub struct Busy;

#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    dummy: Arc<OnceCell<String>>,
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    metrics: Metrics,
}

impl Hasher {
    pub fn new(cost: u32) -> Self {
        Self {
            cost,
            dummy: Arc::new(OnceCell::new()),
            admitted: Arc::new(Semaphore::new(RUNNING + WAITING)),
            running: Arc::new(Semaphore::new(RUNNING)),
            metrics: Metrics::default(),
        }
    }

    /// Times every hash and verification, and counts refusals, in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs one bcrypt job within the bounds. The time recorded is the
    /// job's own, not its wait for a turn.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            self.metrics.bcrypt_rejected();
            return Err(Busy.into());
        };
        let _running = self.running.acquire().await?;
        let metrics = self.metrics.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let done = job();
            metrics.bcrypt(op, started.elapsed());
            done
        })
        .await?)
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let cost = self.cost;
        self.run("hash", move || bcrypt::hash(password, cost))
            .await?
            .map_err(Into::into)
    }

    /// True when `password` matches `hash`; with no hash (unknown user), a
    /// verification of the same cost runs and the answer is false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => self.dummy().await?.to_owned(),
        };
        let ok = self
            .run("verify", move || bcrypt::verify(password, &hash))
            .await?
            .unwrap_or(false);
        Ok(ok && known)
    }

    async fn dummy(&self) -> anyhow::Result<&String> {
        self.dummy
            .get_or_try_init(|| async {
                let cost = self.cost;
                let secret = crate::util::random_token(24);
                self.run("hash", move || bcrypt::hash(secret, cost))
                    .await?
                    .map_err(anyhow::Error::from)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_the_right_password_only() {
        let h = Hasher::new(4);
        let hash = h.hash("correct horse".into()).await.unwrap();
        assert!(h
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!h.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!h.verify("correct horse".into(), None).await.unwrap());
    }
}
