//! When the server closes a WebSocket, with which code and reason, in both
//! modes: bad frames (1003, 1009, 1007, 1002), shutdown (1001), and a
//! credential that ends by logout, "log out everywhere" or session expiry
//! (1008). Token expiry and the other token-mode closes are in
//! `token_sockets.rs`.

mod support;

use std::time::Duration;

use support::{
    all_modes, assert_login_redirect, both_stores, create_room, user, ws_authenticated, ws_connect,
    ws_joined, Auth, Browser, Mode, Store, TestApp, PASSWORD,
};

const WAIT: Duration = Duration::from_secs(5);
/// How long a socket is watched to show that nothing arrives.
const QUIET: Duration = Duration::from_millis(500);

all_modes!(
    a_binary_frame_closes_the_socket_with_1003,
    a_frame_over_64_kib_closes_the_socket_with_1009,
    invalid_utf8_closes_the_socket_with_1007,
    an_oversized_control_frame_closes_the_socket_with_1002,
    stopping_the_server_closes_sockets_with_1001,
    logging_out_closes_the_users_socket_with_1008_at_once,
    logging_out_leaves_the_users_other_sessions_open,
    logging_out_everywhere_closes_every_socket_of_the_user,
);

both_stores!(an_expired_session_closes_the_socket_with_1008);

async fn a_binary_frame_closes_the_socket_with_1003(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    ws.send_binary(vec![1, 2, 3]).await;
    let (code, _) = ws.expect_close(WAIT).await;
    assert_eq!(code, 1003);
}

async fn a_frame_over_64_kib_closes_the_socket_with_1009(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut ws = ws_joined(&app, &alice, room).await;
    // Exactly 64 KiB is still a frame the server reads (and refuses the
    // body as too long); one byte more ends the connection.
    let frame = |len: usize| {
        let head = format!(r#"{{"type":"message","roomId":{room},"body":""#);
        format!("{head}{}\"}}", "x".repeat(len - head.len() - 2))
    };
    ws.send_text(&frame(64 * 1024)).await;
    let error = ws.next_json(WAIT).await;
    assert_eq!(error["type"], "error", "{error}");
    ws.send_text(&frame(64 * 1024 + 1)).await;
    let (code, _) = ws.expect_close(WAIT).await;
    assert_eq!(code, 1009);
}

async fn invalid_utf8_closes_the_socket_with_1007(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    ws.send_text_fragments(b"{\"type\":\"join\",", b"\xff\xfe}")
        .await;
    let (code, _) = ws.expect_close(WAIT).await;
    assert_eq!(code, 1007);
}

async fn an_oversized_control_frame_closes_the_socket_with_1002(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    // Control frames carry at most 125 bytes.
    ws.send(awc::ws::Message::Ping(vec![0; 200].into())).await;
    let (code, _) = ws.expect_close(WAIT).await;
    assert_eq!(code, 1002);
}

async fn stopping_the_server_closes_sockets_with_1001(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    let stopping = app.stop();
    let closing = ws.expect_close(WAIT);
    let ((), (code, _)) = futures_util::join!(stopping, closing);
    assert_eq!(code, 1001);
}

async fn logging_out_closes_the_users_socket_with_1008_at_once(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut alice_ws = ws_joined(&app, &alice, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;

    alice.logout().await;
    let closed = alice_ws.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
    bob_ws.expect_silence(QUIET).await;
    bob_ws.assert_alive(room).await;
}

async fn logging_out_leaves_the_users_other_sessions_open(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = Browser::new(&app);
    phone.login("alice@example.com", PASSWORD).await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;

    laptop.logout().await;
    let closed = laptop_ws.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
    phone_ws.expect_silence(QUIET).await;
    phone_ws.assert_alive(room).await;
    phone.get("/rooms").await.assert_status(200);
}

async fn logging_out_everywhere_closes_every_socket_of_the_user(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = Browser::new(&app);
    phone.login("alice@example.com", PASSWORD).await;
    let bob = user(&app, "bob").await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;

    laptop
        .submit("/rooms", "/logout/all", &[])
        .await
        .assert_see_other("/login");
    for ws in [&mut laptop_ws, &mut phone_ws] {
        let closed = ws.expect_close(Duration::from_secs(1)).await;
        assert_eq!(closed, (1008, "Revoked".to_owned()));
    }
    bob_ws.expect_silence(QUIET).await;
    bob_ws.assert_alive(room).await;
    // The phone's cookies no longer open a socket.
    let upgraded = ws_connect(&app, &phone, Some(&app.origin())).await;
    match mode.auth {
        Auth::Session => assert_eq!(upgraded.err(), Some(401)),
        Auth::Jwt => {
            let mut ws = upgraded.unwrap_or_else(|status| panic!("upgrade refused: {status}"));
            ws.expect_auth_error("Invalid token", WAIT).await;
        }
    }
}

async fn an_expired_session_closes_the_socket_with_1008(store: Store) {
    let app = TestApp::spawn_with(store, &[("SESSION_MAX_SECS", "3")]).await;
    let mut alice = user(&app, "alice").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    let closed = ws.expect_close(Duration::from_secs(10)).await;
    assert_eq!(closed, (1008, "Session expired".to_owned()));
    assert_login_redirect(&alice.get("/rooms").await, "/rooms");
}
