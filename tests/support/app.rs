//! The real app on a free loopback port, with its own data folder and, in
//! Redis mode, its own `redis-server`.

use std::cell::RefCell;
use std::net::SocketAddr;

use tempfile::TempDir;

use super::redis::RedisServer;

/// Which session store the app runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// No `REDIS_URL`: sessions live in the SQLite database.
    Embedded,
    /// Sessions live in a `redis-server` started for the test.
    Redis,
}

/// A running app, the data folder and the Redis server behind it. Dropped
/// while running, it is stopped by `stop_dropped_apps` (which the test
/// runner calls), since stopping takes an `await` that `Drop` cannot do.
pub struct TestApp {
    app: Option<chat::RunningApp>,
    pairs: Vec<(String, String)>,
    redis: Option<RedisServer>,
    data: Option<TempDir>,
}

/// An app dropped while running, with what must outlive it.
struct Dropped {
    app: chat::RunningApp,
    _redis: Option<RedisServer>,
    _data: Option<TempDir>,
}

thread_local! {
    // Each test runs on its own thread, so this holds only its own apps.
    static DROPPED: RefCell<Vec<Dropped>> = const { RefCell::new(Vec::new()) };
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            let dropped = Dropped {
                app,
                _redis: self.redis.take(),
                _data: self.data.take(),
            };
            DROPPED.with(|d| d.borrow_mut().push(dropped));
        }
    }
}

/// Stops the apps this thread's test dropped while they were running, then
/// removes their Redis servers and data folders.
pub async fn stop_dropped_apps() {
    let dropped = DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for Dropped { app, .. } in dropped {
        app.stop().await;
    }
}

impl TestApp {
    /// Starts the app with the test defaults for `store`.
    pub async fn spawn(store: Store) -> TestApp {
        TestApp::spawn_with(store, &[]).await
    }

    /// Starts the app with the test defaults plus `extra` settings, which
    /// win over the defaults.
    pub async fn spawn_with(store: Store, extra: &[(&str, &str)]) -> TestApp {
        let data = tempfile::Builder::new()
            .prefix("chat-data-")
            .tempdir()
            .expect("create a temporary data folder");
        let mut pairs = vec![
            ("DATA_DIR".to_owned(), data.path().display().to_string()),
            ("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("BCRYPT_COST".to_owned(), "4".to_owned()),
        ];
        let redis = match store {
            Store::Embedded => None,
            Store::Redis => {
                let redis = RedisServer::start();
                pairs.push(("REDIS_URL".to_owned(), redis.url()));
                pairs.push(("SESSION_SECRET".to_owned(), random_secret()));
                Some(redis)
            }
        };
        for (key, value) in extra {
            pairs.retain(|(k, _)| k != key);
            pairs.push(((*key).to_owned(), (*value).to_owned()));
        }
        let app = start(&pairs).await;
        TestApp {
            app: Some(app),
            pairs,
            redis,
            data: Some(data),
        }
    }

    /// Stops the app and starts it again on the same data folder and Redis
    /// server. The port changes: point browsers at it again with
    /// `Browser::retarget`.
    pub async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.app = Some(start(&self.pairs).await);
    }

    /// Stops the app for good.
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    fn running(&self) -> &chat::RunningApp {
        self.app.as_ref().expect("the app is running")
    }

    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// The origin browsers use, such as `http://127.0.0.1:40123`.
    pub fn origin(&self) -> String {
        self.running().origin()
    }

    /// An absolute URL for a path on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// The WebSocket URL of the app.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data
            .as_ref()
            .map(TempDir::path)
            .expect("the data folder lives as long as the app")
    }

    /// The Redis server, in Redis mode.
    pub fn redis(&self) -> Option<&RedisServer> {
        self.redis.as_ref()
    }

    pub fn redis_mut(&mut self) -> Option<&mut RedisServer> {
        self.redis.as_mut()
    }
}

async fn start(pairs: &[(String, String)]) -> chat::RunningApp {
    let config = chat::config::Config::from_pairs(pairs.iter().cloned())
        .unwrap_or_else(|e| panic!("test configuration refused: {e:#}"));
    chat::start(config)
        .await
        .unwrap_or_else(|e| panic!("the app did not start: {e:#}"))
}

/// A fresh secret of 64 random bytes, hex-encoded (128 bytes as given).
/// Hex rather than base64url: no placeholder word such as `xxxx` can turn
/// up in it by chance, so the app's weak-secret check never refuses it.
pub fn random_secret() -> String {
    (0..64)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}
