//! WebSockets in token mode: the three ways to authenticate (cookie and
//! Bearer at the upgrade, or an `authenticate` frame), the authentication
//! timeout, refused and expired tokens, expiry of an open socket and its
//! extension by a fresh token, identity changes, and the closes that logout
//! and "log out everywhere" cause.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::tokens::{time_claim, wait_past_second, wait_until_refused};
use support::{
    both_stores, create_room, user, ws_authenticated, ws_bearer, ws_connect, ws_joined, ws_open,
    Browser, Mode, Store, TestApp, WsConn, PASSWORD,
};

const WAIT: Duration = Duration::from_secs(5);
/// How long a socket is watched to show that nothing arrives.
const QUIET: Duration = Duration::from_millis(500);

both_stores!(
    a_cookie_at_the_upgrade_authenticates_the_socket,
    a_bearer_header_at_the_upgrade_authenticates_the_socket,
    a_first_message_authenticates_a_socket_opened_without_credential,
    a_socket_that_does_not_authenticate_in_time_is_closed,
    frames_before_authentication_are_refused_and_the_socket_waits,
    a_refused_token_closes_the_socket_with_invalid_token,
    an_expired_token_closes_the_socket_with_token_expired,
    an_open_socket_closes_when_its_token_expires,
    a_fresh_token_extends_an_open_socket,
    another_users_token_is_an_identity_change,
    logging_out_closes_the_familys_sockets_at_once,
    logging_out_everywhere_closes_every_socket_of_the_user,
);

async fn jwt_app(store: Store, extra: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Mode::jwt(store), extra).await
}

/// An access and a refresh token from the JSON login.
async fn login(app: &TestApp, name: &str) -> (String, String) {
    let page = Browser::new(app)
        .post_json(
            "/login",
            json!({"email": format!("{name}@example.com"), "password": PASSWORD}),
        )
        .await;
    page.assert_status(200);
    let body = page.json();
    let text = |key: &str| body[key].as_str().expect("a token").to_owned();
    (text("accessToken"), text("refreshToken"))
}

/// Refreshes with the token in the body; the new pair.
async fn refresh(app: &TestApp, token: &str) -> (String, String) {
    let page = Browser::new(app)
        .post_json("/auth/refresh", json!({"refreshToken": token}))
        .await;
    page.assert_status(200);
    let body = page.json();
    let text = |key: &str| body[key].as_str().expect("a token").to_owned();
    (text("accessToken"), text("refreshToken"))
}

/// A socket opened without any credential, from the app's origin.
async fn unauthenticated(app: &TestApp) -> WsConn {
    ws_open(app, None, &[], Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"))
}

/// Opens a socket with `Authorization: Bearer` and waits for `authenticated`.
async fn bearer_socket(app: &TestApp, token: &str) -> (WsConn, Value) {
    let mut ws = ws_bearer(app, token, None)
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    let hello = ws.next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
    (ws, hello)
}

/// The `expiresAt` of an `authenticated` frame, in Unix seconds.
fn expires_at(hello: &Value) -> i64 {
    let text = hello["expiresAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no expiresAt in {hello}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("expiresAt {text} is not RFC 3339: {e}"))
        .unix_timestamp()
}

fn now_ms() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

async fn a_cookie_at_the_upgrade_authenticates_the_socket(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let me = alice.get("/api/me").await.json();
    let (mut ws, hello) = ws_authenticated(&app, &alice).await;
    assert_eq!(hello["userId"], me["id"], "{hello}");
    assert_eq!(hello["username"], "alice", "{hello}");
    let access = alice.access_token().expect("an access cookie");
    assert_eq!(expires_at(&hello), time_claim(&access, "exp"), "{hello}");
    ws.assert_alive(room).await;
    // The refresh cookie (Path=/auth) is not what authenticated it.
    let mut access_only = alice.fork();
    access_only.jar.remove(support::REFRESH_COOKIE);
    let (mut ws, _) = ws_authenticated(&app, &access_only).await;
    ws.assert_alive(room).await;
}

async fn a_bearer_header_at_the_upgrade_authenticates_the_socket(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (access, _) = login(&app, "alice").await;
    // Without cookies, no Origin is needed.
    let (mut ws, hello) = bearer_socket(&app, &access).await;
    assert_eq!(hello["username"], "alice", "{hello}");
    assert_eq!(expires_at(&hello), time_claim(&access, "exp"));
    ws.assert_alive(room).await;
    // From the app's own origin, too.
    let mut ws = ws_bearer(&app, &access, Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    let hello = ws.next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
}

async fn a_first_message_authenticates_a_socket_opened_without_credential(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let bob = user(&app, "bob").await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;
    let (access, _) = login(&app, "alice").await;

    let mut ws = unauthenticated(&app).await;
    ws.expect_silence(QUIET).await;
    ws.authenticate(&access).await;
    let hello = ws.next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
    assert_eq!(hello["username"], "alice", "{hello}");
    assert_eq!(expires_at(&hello), time_claim(&access, "exp"));
    ws.join(room).await;
    ws.send_json(json!({"type": "message", "roomId": room, "body": "hi", "clientId": "c1"}))
        .await;
    let own = ws.next_of_type("message", WAIT).await;
    assert_eq!(own["clientId"], "c1", "{own}");
    let theirs = bob_ws.next_of_type("message", WAIT).await;
    assert_eq!(theirs["username"], "alice", "{theirs}");
    assert_eq!(theirs["body"], "hi", "{theirs}");
}

async fn a_socket_that_does_not_authenticate_in_time_is_closed(store: Store) {
    let app = jwt_app(store, &[("WS_AUTH_TIMEOUT_SECS", "1")]).await;
    let mut ws = unauthenticated(&app).await;
    let opened = std::time::Instant::now();
    ws.expect_auth_error("Authentication timeout", WAIT).await;
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the timeout",
        opened.elapsed()
    );
    // A frame that is not `authenticate` does not buy time.
    let mut ws = unauthenticated(&app).await;
    ws.send_json(json!({"type": "join", "roomId": 1})).await;
    let refused = ws.next_json(WAIT).await;
    assert_eq!(refused["code"], "not_authenticated", "{refused}");
    ws.expect_auth_error("Authentication timeout", WAIT).await;
}

async fn frames_before_authentication_are_refused_and_the_socket_waits(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (access, _) = login(&app, "alice").await;
    let mut ws = unauthenticated(&app).await;
    let refused =
        json!({"type": "error", "code": "not_authenticated", "message": "Not authenticated"});
    for frame in [
        json!({"type": "join", "roomId": room}).to_string(),
        json!({"type": "message", "roomId": room, "body": "sneaky"}).to_string(),
        json!({"type": "leave", "roomId": room}).to_string(),
        json!({"type": "dance"}).to_string(),
        json!({"type": "authenticate"}).to_string(),
        "not JSON at all".to_owned(),
    ] {
        ws.send_text(&frame).await;
        assert_eq!(ws.next_json(WAIT).await, refused, "{frame}");
    }
    ws.authenticate(&access).await;
    let hello = ws.next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
    ws.assert_alive(room).await;
    let history = alice
        .get(&format!("/api/rooms/{room}/messages"))
        .await
        .json();
    assert_eq!(history["messages"], json!([]), "a message got through");
}

async fn a_refused_token_closes_the_socket_with_invalid_token(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let (access, refresh_token) = login(&app, "alice").await;
    let origin = app.origin();

    // At the upgrade: a Bearer header, or a cookie, that is not a token.
    let mut ws = ws_bearer(&app, "not-a-token", None).await.expect("opens");
    ws.expect_auth_error("Invalid token", WAIT).await;
    let mut forged = Browser::new(&app);
    forged.jar.set(support::ACCESS_COOKIE, "not.a.token");
    let mut ws = ws_connect(&app, &forged, Some(&origin))
        .await
        .expect("opens");
    ws.expect_auth_error("Invalid token", WAIT).await;
    // A refresh token is no access token.
    let mut ws = ws_bearer(&app, &refresh_token, None).await.expect("opens");
    ws.expect_auth_error("Invalid token", WAIT).await;

    // In an `authenticate` frame.
    for token in ["", "not-a-token", refresh_token.as_str()] {
        let mut ws = unauthenticated(&app).await;
        ws.authenticate(token).await;
        ws.expect_auth_error("Invalid token", WAIT).await;
    }

    // A logged-out token, at the upgrade and in a frame.
    let saved = alice.fork();
    alice.logout().await;
    let mut ws = ws_connect(&app, &saved, Some(&origin))
        .await
        .expect("opens");
    ws.expect_auth_error("Invalid token", WAIT).await;
    let mut ws = unauthenticated(&app).await;
    ws.authenticate(&saved.access_token().expect("a saved access token"))
        .await;
    ws.expect_auth_error("Invalid token", WAIT).await;
    // The other login still works.
    bearer_socket(&app, &access).await;
}

async fn an_expired_token_closes_the_socket_with_token_expired(store: Store) {
    let app = jwt_app(
        store,
        &[("ACCESS_TOKEN_SECS", "1"), ("JWT_LEEWAY_SECS", "0")],
    )
    .await;
    let alice = user(&app, "alice").await;
    let access = alice.access_token().expect("an access cookie");
    wait_until_refused(&app, &access).await;

    let mut ws = ws_connect(&app, &alice, Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    ws.expect_auth_error("Token expired", WAIT).await;
    let mut ws = ws_bearer(&app, &access, None).await.expect("opens");
    ws.expect_auth_error("Token expired", WAIT).await;
    let mut ws = unauthenticated(&app).await;
    ws.authenticate(&access).await;
    ws.expect_auth_error("Token expired", WAIT).await;
}

async fn an_open_socket_closes_when_its_token_expires(store: Store) {
    let app = jwt_app(
        store,
        &[("ACCESS_TOKEN_SECS", "2"), ("JWT_LEEWAY_SECS", "0")],
    )
    .await;
    user(&app, "alice").await;
    // A token issued just now, so the socket surely opens before it ends.
    let (access, _) = login(&app, "alice").await;
    let (mut ws, hello) = bearer_socket(&app, &access).await;
    let expiry = expires_at(&hello);
    let closed = ws.expect_close(Duration::from_secs(10)).await;
    let at = now_ms();
    assert_eq!(closed, (1008, "Token expired".to_owned()));
    assert!(
        at >= expiry * 1000 - 500,
        "closed at {at} ms, before the token's expiry at {expiry} s"
    );
}

async fn a_fresh_token_extends_an_open_socket(store: Store) {
    let app = jwt_app(
        store,
        &[("ACCESS_TOKEN_SECS", "4"), ("JWT_LEEWAY_SECS", "0")],
    )
    .await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (access, refresh_token) = login(&app, "alice").await;
    let (mut ws, hello) = bearer_socket(&app, &access).await;
    let first_expiry = expires_at(&hello);

    // A token issued a second or more later expires later.
    wait_past_second(time_claim(&access, "iat") + 1).await;
    let (fresh, _) = refresh(&app, &refresh_token).await;
    assert!(time_claim(&fresh, "exp") > first_expiry);
    ws.authenticate(&fresh).await;
    let again = ws.next_json(WAIT).await;
    assert_eq!(again["type"], "authenticated", "{again}");
    assert_eq!(again["userId"], hello["userId"], "{again}");
    let second_expiry = expires_at(&again);
    assert_eq!(second_expiry, time_claim(&fresh, "exp"), "{again}");
    assert!(second_expiry > first_expiry, "{hello} then {again}");

    // Past the first expiry, the socket still serves.
    while now_ms() < first_expiry * 1000 + 300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ws.assert_alive(room).await;
    // Until the second.
    let closed = ws.expect_close(Duration::from_secs(10)).await;
    assert_eq!(closed, (1008, "Token expired".to_owned()));
    assert!(now_ms() >= second_expiry * 1000 - 500, "closed too early");
}

async fn another_users_token_is_an_identity_change(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    user(&app, "bob").await;
    let (bobs, _) = login(&app, "bob").await;
    let mut ws = ws_joined(&app, &alice, room).await;
    ws.authenticate(&bobs).await;
    ws.expect_auth_error("Identity change not allowed", WAIT)
        .await;
    // Bob's token is fine for Bob.
    bearer_socket(&app, &bobs).await;
}

async fn logging_out_closes_the_familys_sockets_at_once(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut laptop = user(&app, "alice").await;
    let room = create_room(&mut laptop, "lobby").await;
    let (access, refresh_token) = login(&app, "alice").await;
    let (mut by_header, _) = bearer_socket(&app, &access).await;
    let mut by_message = unauthenticated(&app).await;
    by_message.authenticate(&access).await;
    assert_eq!(by_message.next_json(WAIT).await["type"], "authenticated");
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;

    let auth = format!("Bearer {access}");
    let page = Browser::new(&app)
        .request(
            awc::http::Method::POST,
            "/auth/logout",
            &[("Authorization", &auth)],
            support::Body::Json(json!({"refreshToken": refresh_token})),
        )
        .await;
    page.assert_status(204);
    for ws in [&mut by_header, &mut by_message] {
        let closed = ws.expect_close(Duration::from_secs(1)).await;
        assert_eq!(closed, (1008, "Logged out".to_owned()));
    }
    // The laptop's family is another login.
    laptop_ws.expect_silence(QUIET).await;
    laptop_ws.assert_alive(room).await;

    // The page logout closes the laptop's socket the same way.
    laptop.logout().await;
    let closed = laptop_ws.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
}

async fn logging_out_everywhere_closes_every_socket_of_the_user(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut laptop = user(&app, "alice").await;
    let room = create_room(&mut laptop, "lobby").await;
    let bob = user(&app, "bob").await;
    let (access, _) = login(&app, "alice").await;
    let (other_access, _) = login(&app, "alice").await;
    let (mut by_cookie, _) = ws_authenticated(&app, &laptop).await;
    let (mut by_header, _) = bearer_socket(&app, &access).await;
    let mut by_message = unauthenticated(&app).await;
    by_message.authenticate(&other_access).await;
    assert_eq!(by_message.next_json(WAIT).await["type"], "authenticated");
    let mut bob_ws = ws_joined(&app, &bob, room).await;

    laptop
        .submit("/rooms", "/logout/all", &[])
        .await
        .assert_see_other("/login");
    for ws in [&mut by_cookie, &mut by_header, &mut by_message] {
        let closed = ws.expect_close(Duration::from_secs(1)).await;
        assert_eq!(closed, (1008, "Revoked".to_owned()));
    }
    bob_ws.expect_silence(QUIET).await;
    bob_ws.assert_alive(room).await;
    // None of the old tokens opens a socket again.
    for token in [&access, &other_access] {
        let mut ws = ws_bearer(&app, token, None).await.expect("opens");
        ws.expect_auth_error("Invalid token", WAIT).await;
    }
}
