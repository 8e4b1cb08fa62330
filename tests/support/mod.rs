//! The shared harness of the integration tests: the real app on a free
//! loopback port with its own data folder and, in Redis mode, its own
//! `redis-server`; a cookie-keeping HTTP client; a WebSocket client; token
//! reading and forging; and two macros: `all_modes!` runs a behaviour test
//! in both authentication modes with both stores, `both_stores!` runs a
//! test with both stores in the one mode it picks itself.

// Each test file uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod browser;
pub mod cookies;
pub mod html;
pub mod logs;
pub mod redis;
pub mod tokens;
pub mod ws;

use std::time::Duration;

pub use app::{Auth, Mode, Store, TestApp};
pub use browser::{Body, Browser, OriginHeader, Page};
pub use redis::RedisServer;
pub use ws::{ws_authenticated, ws_bearer, ws_connect, ws_joined, ws_open, Incoming, WsConn};

/// The most a whole test may take before it fails instead of hanging.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The session cookie's name (`auth::session::COOKIE_NAME` in `src/`).
pub const SESSION_COOKIE: &str = "chat_session";

/// Token mode's access-token cookie (`Path=/`).
pub const ACCESS_COOKIE: &str = "chat_access";

/// Token mode's refresh-token cookie (`Path=/auth`).
pub const REFRESH_COOKIE: &str = "chat_refresh";

/// The most the app may take to shut down at the end of a test.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// Generates, for each named `async fn(Mode)`, one test per authentication
/// mode and store: `session_embedded::<name>`, `session_redis::<name>`,
/// `jwt_embedded::<name>` and `jwt_redis::<name>`, each bounded by
/// `TEST_TIMEOUT`.
#[allow(unused_macros)]
macro_rules! all_modes {
    ($($name:ident),* $(,)?) => {
        $crate::support::all_modes!(@one session_embedded, Session, Embedded; $($name),*);
        $crate::support::all_modes!(@one session_redis, Session, Redis; $($name),*);
        $crate::support::all_modes!(@one jwt_embedded, Jwt, Embedded; $($name),*);
        $crate::support::all_modes!(@one jwt_redis, Jwt, Redis; $($name),*);
    };
    (@one $module:ident, $auth:ident, $store:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[actix_rt::test]
                async fn $name() {
                    let mode = $crate::support::Mode {
                        auth: $crate::support::Auth::$auth,
                        store: $crate::support::Store::$store,
                    };
                    $crate::support::run(super::$name(mode)).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use all_modes;

/// Generates, for each named `async fn(Store)`, one test per store:
/// `embedded::<name>` and `redis::<name>`, each bounded by `TEST_TIMEOUT`.
/// For tests of one mode's own mechanism; the test picks the mode.
#[allow(unused_macros)]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[actix_rt::test]
                async fn $name() {
                    $crate::support::run(super::$name($crate::support::Store::Embedded)).await;
                }
            )*
        }
        mod redis {
            $(
                #[actix_rt::test]
                async fn $name() {
                    $crate::support::run(super::$name($crate::support::Store::Redis)).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;

/// Runs a test body, failing it when it takes longer than `TEST_TIMEOUT`,
/// then stops the apps it left running.
pub async fn run(body: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("the test did not finish within {TEST_TIMEOUT:?}");
    }
    if tokio::time::timeout(STOP_TIMEOUT, app::stop_dropped_apps())
        .await
        .is_err()
    {
        panic!("the app did not stop within {STOP_TIMEOUT:?}");
    }
}

/// A new browser registered (and so logged in) as `name`, with the email
/// `<name>@example.com` and `PASSWORD`.
pub async fn user(app: &TestApp, name: &str) -> Browser {
    let mut browser = Browser::new(app);
    browser
        .register(name, &format!("{name}@example.com"), PASSWORD)
        .await;
    browser
}

/// Creates a room through the form and returns its id.
pub async fn create_room(browser: &mut Browser, name: &str) -> i64 {
    let page = browser.submit("/rooms", "/rooms", &[("name", name)]).await;
    page.assert_status(303);
    room_id_from(page.location())
}

/// The id in a room path such as `/rooms/7`.
pub fn room_id_from(location: &str) -> i64 {
    location
        .strip_prefix("/rooms/")
        .and_then(|rest| rest.split(['?', '#', '/']).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a room location: {location}"))
}

/// Posts a message through the no-JavaScript form of a room page.
pub async fn post_message(browser: &mut Browser, room_id: i64, body: &str) -> Page {
    let room = format!("/rooms/{room_id}");
    browser
        .submit(&room, &format!("{room}/messages"), &[("body", body)])
        .await
}

/// The room's history through the JSON API, oldest first.
pub async fn history(browser: &mut Browser, room_id: i64, query: &str) -> Vec<serde_json::Value> {
    let page = browser
        .get(&format!("/api/rooms/{room_id}/messages{query}"))
        .await;
    page.assert_status(200);
    page.json()["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array: {}", page.body))
        .clone()
}

/// Asserts a 303 to the login page that comes back to `next`, which the app
/// percent-encodes entirely (`/rooms` becomes `%2Frooms`).
#[track_caller]
pub fn assert_login_redirect(page: &Page, next: &str) {
    page.assert_see_other(&format!("/login?next={}", encode_component(next)));
}

/// Percent-encodes every byte that is not an ASCII letter or digit.
pub fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Asserts that the browser is logged in as `username`: the API knows it
/// and the room list opens.
pub async fn assert_logged_in(browser: &mut Browser, username: &str) {
    let me = browser.get("/api/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], username, "{}", me.body);
    browser.get("/rooms").await.assert_status(200);
}

/// Asserts that the browser is not logged in: pages send it to the login
/// page and the API answers 401.
pub async fn assert_logged_out(browser: &mut Browser) {
    assert_login_redirect(&browser.get("/rooms").await, "/rooms");
    let me = browser.get("/api/me").await;
    assert_eq!(me.status, 401, "{}", me.body);
}

/// Counts panics anywhere in this test process (the app's worker threads
/// included), so a fault test can assert that an outage made none.
pub mod panics {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Once;

    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static INSTALL: Once = Once::new();

    /// Starts counting (once per process); returns the count so far.
    pub fn watch() -> usize {
        INSTALL.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                COUNT.fetch_add(1, Ordering::SeqCst);
                previous(info);
            }));
        });
        COUNT.load(Ordering::SeqCst)
    }

    /// Panics seen since `watch` returned `since`.
    pub fn since(since: usize) -> usize {
        COUNT.load(Ordering::SeqCst) - since
    }
}
