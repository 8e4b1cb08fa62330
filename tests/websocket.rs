//! The WebSocket endpoint, in both modes: who may upgrade, joining and leaving rooms,
//! fan-out, catch-up, idempotent resends, and frame errors that leave the
//! socket open.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    all_modes, create_room, history, post_message, user, ws_authenticated, ws_connect, ws_joined,
    Auth, Browser, Mode, TestApp,
};

const WAIT: Duration = Duration::from_secs(5);
/// How long a socket is watched to show that nothing arrives.
const QUIET: Duration = Duration::from_millis(500);

all_modes!(
    an_upgrade_with_a_login_cookie_is_authenticated_first,
    an_upgrade_without_a_credential_is_not_authenticated,
    an_upgrade_with_a_logged_out_cookie_is_refused,
    an_upgrade_from_another_origin_is_refused_with_403,
    a_message_reaches_the_sockets_in_its_room_only,
    joining_with_after_id_sends_newer_messages_oldest_first,
    a_resent_client_id_is_acknowledged_again_and_stored_once,
    a_message_to_a_room_not_joined_is_an_error_and_the_socket_stays_open,
    joining_an_unknown_room_is_an_error,
    malformed_frames_are_errors_and_the_socket_stays_open,
    bodies_are_1_to_4000_characters_after_trimming,
    leaving_a_room_stops_its_messages,
);

fn message(room: i64, body: &str) -> serde_json::Value {
    json!({"type": "message", "roomId": room, "body": body})
}

async fn an_upgrade_with_a_login_cookie_is_authenticated_first(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let me = alice.get("/api/me").await.json();
    let (_ws, hello) = ws_authenticated(&app, &alice).await;
    assert_eq!(hello["userId"], me["id"], "{hello}");
    assert_eq!(hello["username"], "alice", "{hello}");
    match mode.auth {
        Auth::Session => assert!(hello.get("expiresAt").is_none(), "{hello}"),
        Auth::Jwt => {
            let access = alice.access_token().expect("an access cookie");
            let exp = support::tokens::time_claim(&access, "exp");
            let expires_at = hello["expiresAt"].as_str().expect("expiresAt");
            let parsed = time::OffsetDateTime::parse(
                expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or_else(|e| panic!("expiresAt {expires_at} is not RFC 3339: {e}"));
            assert_eq!(parsed.unix_timestamp(), exp, "{hello}");
        }
    }
}

async fn an_upgrade_without_a_credential_is_not_authenticated(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let anonymous = Browser::new(&app);
    let upgraded = ws_connect(&app, &anonymous, Some(&app.origin())).await;
    match mode.auth {
        Auth::Session => assert_eq!(upgraded.err(), Some(401)),
        Auth::Jwt => {
            // The socket opens and waits for `authenticate`; nothing else
            // is served meanwhile.
            let mut ws = upgraded.unwrap_or_else(|status| panic!("upgrade refused: {status}"));
            ws.send_json(json!({"type": "join", "roomId": room})).await;
            let refused = ws.next_json(WAIT).await;
            assert_eq!(
                refused,
                json!({"type": "error", "code": "not_authenticated", "message": "Not authenticated"})
            );
            ws.expect_silence(QUIET).await;
        }
    }
}

async fn an_upgrade_with_a_logged_out_cookie_is_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let saved = alice.fork();
    alice.logout().await;
    let upgraded = ws_connect(&app, &saved, Some(&app.origin())).await;
    match mode.auth {
        Auth::Session => assert_eq!(upgraded.err(), Some(401)),
        Auth::Jwt => {
            let mut ws = upgraded.unwrap_or_else(|status| panic!("upgrade refused: {status}"));
            ws.expect_auth_error("Invalid token", WAIT).await;
        }
    }
}

async fn an_upgrade_from_another_origin_is_refused_with_403(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let refused = ws_connect(&app, &alice, Some("http://evil.example")).await;
    assert_eq!(refused.err(), Some(403));
    let refused = ws_connect(&app, &alice, None).await;
    assert_eq!(refused.err(), Some(403), "a cookie without an Origin");
}

async fn a_message_reaches_the_sockets_in_its_room_only(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let mut carol = user(&app, "carol").await;
    let bob = user(&app, "bob").await;
    let lobby = create_room(&mut alice, "lobby").await;
    let other = create_room(&mut carol, "elsewhere").await;
    let mut alice_ws = ws_joined(&app, &alice, lobby).await;
    let mut bob_ws = ws_joined(&app, &bob, lobby).await;
    let mut carol_ws = ws_joined(&app, &carol, other).await;
    let alice_id = alice.get("/api/me").await.json()["id"].clone();

    let mut frame = message(lobby, "hello, lobby");
    frame["clientId"] = json!("tab-1/42");
    alice_ws.send_json(frame).await;

    let own = alice_ws.next_of_type("message", WAIT).await;
    assert_eq!(own["clientId"], "tab-1/42", "{own}");
    assert_eq!(own["roomId"], lobby, "{own}");
    assert_eq!(own["body"], "hello, lobby", "{own}");
    assert_eq!(own["username"], "alice", "{own}");
    assert_eq!(own["userId"], alice_id, "{own}");
    assert!(own["id"].is_i64(), "{own}");
    assert!(own["createdAt"].is_string(), "{own}");

    let theirs = bob_ws.next_of_type("message", WAIT).await;
    assert!(
        theirs.get("clientId").is_none_or(|c| c.is_null()),
        "{theirs}"
    );
    assert_eq!(theirs["id"], own["id"]);
    assert_eq!(theirs["body"], "hello, lobby");

    carol_ws.expect_silence(QUIET).await;
}

async fn joining_with_after_id_sends_newer_messages_oldest_first(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    for n in 1..=3 {
        post_message(&mut alice, room, &format!("m{n}"))
            .await
            .assert_status(303);
    }
    let stored = history(&mut alice, room, "").await;
    let first_id = stored[0]["id"].as_i64().expect("message ids are integers");

    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    ws.send_json(json!({"type": "join", "roomId": room, "afterId": first_id}))
        .await;
    let mut caught_up = Vec::new();
    let mut was_joined = false;
    while caught_up.len() < 2 || !was_joined {
        let frame = ws.next_json(WAIT).await;
        match frame["type"].as_str() {
            Some("joined") => was_joined = true,
            Some("message") => caught_up.push(frame["body"].as_str().unwrap_or("").to_owned()),
            _ => panic!("unexpected frame while joining: {frame}"),
        }
    }
    assert_eq!(caught_up, ["m2", "m3"]);
    ws.expect_silence(QUIET).await;
}

async fn a_resent_client_id_is_acknowledged_again_and_stored_once(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut ws = ws_joined(&app, &alice, room).await;
    let mut frame = message(room, "only once");
    frame["clientId"] = json!("retry-me");

    ws.send_json(frame.clone()).await;
    let first = ws.next_of_type("message", WAIT).await;
    ws.send_json(frame).await;
    let second = ws.next_of_type("message", WAIT).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["clientId"], "retry-me");
    assert_eq!(history(&mut alice, room, "").await.len(), 1);
}

async fn a_message_to_a_room_not_joined_is_an_error_and_the_socket_stays_open(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    ws.send_json(message(room, "am I in?")).await;
    let error = ws.next_json(WAIT).await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{error}"
    );
    ws.assert_alive(room).await;
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn joining_an_unknown_room_is_an_error(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    ws.send_json(json!({"type": "join", "roomId": 987_654}))
        .await;
    let error = ws.next_json(WAIT).await;
    assert_eq!(error["type"], "error", "{error}");
    ws.assert_alive(room).await;
}

async fn malformed_frames_are_errors_and_the_socket_stays_open(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let (mut ws, _) = ws_authenticated(&app, &alice).await;
    let bad = [
        "this is not JSON".to_owned(),
        "[1, 2, 3]".to_owned(),
        json!({"type": "dance"}).to_string(),
        json!({"type": "join", "roomId": "lobby"}).to_string(),
        json!({"type": "message", "roomId": room}).to_string(),
    ];
    for text in bad {
        ws.send_text(&text).await;
        let error = ws.next_json(WAIT).await;
        assert_eq!(error["type"], "error", "{text} -> {error}");
    }
    ws.assert_alive(room).await;
}

async fn bodies_are_1_to_4000_characters_after_trimming(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut ws = ws_joined(&app, &alice, room).await;
    let too_long_id = "i".repeat(65);
    let mut long_client_id = message(room, "fine");
    long_client_id["clientId"] = json!(too_long_id);
    for frame in [
        message(room, &"é".repeat(4001)),
        message(room, ""),
        message(room, " \n\t "),
        long_client_id,
    ] {
        ws.send_json(frame).await;
        let error = ws.next_json(WAIT).await;
        assert_eq!(error["type"], "error", "{error}");
    }
    let longest = "é".repeat(4000);
    ws.send_json(message(room, &format!("  {longest}\n"))).await;
    let stored = ws.next_of_type("message", WAIT).await;
    assert_eq!(stored["body"], longest.as_str());
    ws.send_json(message(room, "line one\n\tline two")).await;
    let stored = ws.next_of_type("message", WAIT).await;
    assert_eq!(stored["body"], "line one\n\tline two");
    assert_eq!(history(&mut alice, room, "").await.len(), 2);
}

async fn leaving_a_room_stops_its_messages(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut alice_ws = ws_joined(&app, &alice, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;

    bob_ws
        .send_json(json!({"type": "leave", "roomId": room}))
        .await;
    let left = bob_ws.next_json(WAIT).await;
    assert_eq!(left["type"], "left", "{left}");
    alice_ws.send_json(message(room, "bye bob")).await;
    alice_ws.next_of_type("message", WAIT).await;
    bob_ws.expect_silence(QUIET).await;
    bob_ws.send_json(message(room, "can I still post?")).await;
    let error = bob_ws.next_json(WAIT).await;
    assert_eq!(error["type"], "error", "{error}");
}
