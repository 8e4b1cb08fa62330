//! The real app on a free loopback port, with its own data folder and, in
//! Redis mode, its own `redis-server`, in either authentication mode.

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

/// Which authentication strategy the app runs with (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Opaque session id in the `chat_session` cookie.
    Session,
    /// Access and refresh tokens (`chat_access`, `chat_refresh`, Bearer).
    Jwt,
}

impl Auth {
    /// The cookies that carry a browser's login in this mode.
    pub fn credential_cookies(self) -> &'static [&'static str] {
        match self {
            Auth::Session => &[super::SESSION_COOKIE],
            Auth::Jwt => &[super::ACCESS_COOKIE, super::REFRESH_COOKIE],
        }
    }
}

/// An authentication mode and a store: one cell of the test matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub auth: Auth,
    pub store: Store,
}

impl Mode {
    pub fn session(store: Store) -> Mode {
        Mode {
            auth: Auth::Session,
            store,
        }
    }

    pub fn jwt(store: Store) -> Mode {
        Mode {
            auth: Auth::Jwt,
            store,
        }
    }
}

/// A store alone means the default mode, sessions.
impl From<Store> for Mode {
    fn from(store: Store) -> Mode {
        Mode::session(store)
    }
}

/// A running app, the data folder and the Redis server behind it. Dropped
/// while running, it is stopped by `stop_dropped_apps` (which the test
/// runner calls), since stopping takes an `await` that `Drop` cannot do.
pub struct TestApp {
    app: Option<chat::RunningApp>,
    mode: Mode,
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
    /// Starts the app with the test defaults for `mode` (a `Store` alone
    /// means session mode).
    pub async fn spawn(mode: impl Into<Mode>) -> TestApp {
        TestApp::spawn_with(mode, &[]).await
    }

    /// Starts the app with the test defaults plus `extra` settings, which
    /// win over the defaults. With Redis, every secret the mode needs is
    /// configured (instances must agree); without, the app generates them.
    pub async fn spawn_with(mode: impl Into<Mode>, extra: &[(&str, &str)]) -> TestApp {
        let mode = mode.into();
        let data = tempfile::Builder::new()
            .prefix("chat-data-")
            .tempdir()
            .expect("create a temporary data folder");
        let mut pairs = vec![
            ("DATA_DIR".to_owned(), data.path().display().to_string()),
            ("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("BCRYPT_COST".to_owned(), "4".to_owned()),
        ];
        if mode.auth == Auth::Jwt {
            pairs.push(("AUTH_MODE".to_owned(), "jwt".to_owned()));
        }
        let redis = match mode.store {
            Store::Embedded => None,
            Store::Redis => {
                let redis = RedisServer::start();
                pairs.push(("REDIS_URL".to_owned(), redis.url()));
                pairs.push(("SESSION_SECRET".to_owned(), random_secret()));
                if mode.auth == Auth::Jwt {
                    pairs.push(("JWT_SECRET".to_owned(), random_secret()));
                    pairs.push(("JWT_REFRESH_SECRET".to_owned(), random_secret()));
                }
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
            mode,
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

    /// A second instance of the same deployment: same settings, data
    /// folder, database and Redis, its own port. This instance keeps the
    /// shared services alive, so it must outlive the second.
    pub async fn second_instance(&self) -> TestApp {
        TestApp {
            app: Some(start(&self.pairs).await),
            mode: self.mode,
            pairs: self.pairs.clone(),
            redis: None,
            data: None,
        }
    }

    /// Stops the app for good.
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn auth(&self) -> Auth {
        self.mode.auth
    }

    pub fn store(&self) -> Store {
        self.mode.store
    }

    /// A setting the app was started with, if it was given one.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The access and refresh signing keys of token mode: as configured, or
    /// as the app generated them into its data folder.
    pub fn jwt_secrets(&self) -> (String, String) {
        let read = |key: &str, file: &str| {
            self.setting(key).map_or_else(
                || {
                    let path = self.data_dir().join(file);
                    std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
                        .trim()
                        .to_owned()
                },
                str::to_owned,
            )
        };
        (
            read("JWT_SECRET", "jwt_secret"),
            read("JWT_REFRESH_SECRET", "jwt_refresh_secret"),
        )
    }

    fn running(&self) -> &chat::RunningApp {
        self.app.as_ref().expect("the app is running")
    }

    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// The address of the metrics-only listener, when METRICS_ADDR set one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running().metrics_addr
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
    super::logs::install();
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
