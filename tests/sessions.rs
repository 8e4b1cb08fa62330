//! Session mode's own mechanism: the cookie's attributes, its renewal at
//! login, its record deleted at logout, and idle expiry. (What logging in
//! and out does in either mode is in `accounts.rs`; token mode's own
//! mechanism is in `tokens.rs`.)

mod support;

use serde_json::json;
use support::{
    assert_login_redirect, both_stores, user, Browser, Store, TestApp, PASSWORD, SESSION_COOKIE,
};

both_stores!(
    the_session_cookie_is_http_only_secure_lax_and_site_wide,
    a_session_id_planted_before_login_is_replaced,
    logging_out_deletes_the_session_and_the_old_cookie_stops_working,
    anonymous_visitors_leave_no_session_behind,
    an_idle_session_ends,
);

async fn the_session_cookie_is_http_only_secure_lax_and_site_wide(store: Store) {
    let app = TestApp::spawn(store).await;
    user(&app, "alice").await.logout().await;
    let mut browser = Browser::new(&app);
    let page = browser.login("alice@example.com", PASSWORD).await;

    let cookie = page
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("login set no {SESSION_COOKIE} cookie: {page:?}"));
    assert!(!cookie.is_removal(), "{}", cookie.raw);
    assert!(cookie.has_flag("HttpOnly"), "{}", cookie.raw);
    assert!(cookie.has_flag("Secure"), "{}", cookie.raw);
    assert_eq!(
        cookie.attribute("SameSite").map(str::to_ascii_lowercase),
        Some("lax".to_owned()),
        "{}",
        cookie.raw
    );
    assert_eq!(cookie.attribute("Path"), Some("/"), "{}", cookie.raw);
    assert!(cookie.attribute("Domain").is_none(), "{}", cookie.raw);
}

async fn a_session_id_planted_before_login_is_replaced(store: Store) {
    let app = TestApp::spawn(store).await;
    user(&app, "alice").await.logout().await;

    let mut victim = Browser::new(&app);
    victim.jar.set(SESSION_COOKIE, "planted-by-an-attacker");
    victim.get("/login").await.assert_status(200);
    let before = victim.jar.get(SESSION_COOKIE).map(str::to_owned);
    victim.login("alice@example.com", PASSWORD).await;
    let after = victim
        .jar
        .get(SESSION_COOKIE)
        .expect("a session cookie after login")
        .to_owned();
    assert_ne!(Some(after.clone()), before, "the session id did not change");
    assert_ne!(after, "planted-by-an-attacker");

    // Logging in again from the same browser (here with the JSON login,
    // since the form sends a logged-in user on) renews the id again.
    victim
        .post_json(
            "/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await
        .assert_status(200);
    assert_ne!(victim.jar.get(SESSION_COOKIE), Some(after.as_str()));
}

async fn logging_out_deletes_the_session_and_the_old_cookie_stops_working(store: Store) {
    let app = TestApp::spawn(store).await;
    user(&app, "alice").await.logout().await;

    let keys_before = session_keys(&app);
    let mut alice = Browser::new(&app);
    alice.login("alice@example.com", PASSWORD).await;
    let keys_at_login: Vec<String> = session_keys(&app)
        .into_iter()
        .filter(|k| !keys_before.contains(k))
        .collect();
    if store == Store::Redis {
        assert_eq!(
            keys_at_login.len(),
            1,
            "one record per login: {keys_at_login:?}"
        );
    }
    let saved = alice.fork();
    alice.get("/rooms").await.assert_status(200);

    alice.logout().await.assert_see_other("/login");
    assert!(alice.jar.get(SESSION_COOKIE).is_none(), "cookie kept");
    let keys_after = session_keys(&app);
    for key in &keys_at_login {
        assert!(!keys_after.contains(key), "{key} survived logout");
    }

    let mut replay = saved;
    assert_login_redirect(&replay.get("/rooms").await, "/rooms");
    assert_eq!(replay.get("/api/me").await.status, 401);
}

async fn anonymous_visitors_leave_no_session_behind(store: Store) {
    let app = TestApp::spawn(store).await;
    let mut visitor = Browser::new(&app);
    for path in ["/", "/login", "/register", "/rooms"] {
        visitor.get(path).await;
    }
    visitor
        .submit(
            "/login",
            "/login",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await
        .assert_status(400);
    assert!(
        visitor.jar.get(SESSION_COOKIE).is_none(),
        "{:?}",
        visitor.jar
    );
    assert!(session_keys(&app).is_empty(), "{:?}", session_keys(&app));
}

async fn an_idle_session_ends(store: Store) {
    let app = TestApp::spawn_with(store, &[("SESSION_IDLE_SECS", "2")]).await;
    let mut alice = user(&app, "alice").await;
    alice.get("/rooms").await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_login_redirect(&alice.get("/rooms").await, "/rooms");
}

/// The session records in Redis; nothing to count in embedded mode.
/// The session records in Redis (`session:<hash>`).
fn session_keys(app: &TestApp) -> Vec<String> {
    app.redis()
        .map(|redis| redis.keys("session:*"))
        .unwrap_or_default()
}
