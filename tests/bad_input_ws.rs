//! Bad input on the WebSocket, one case per test, in both modes with both
//! stores: a frame the server cannot read gets an `error` frame and the
//! socket stays open; a frame that breaks the protocol gets its documented
//! close code. Nothing is stored either way (the room's history stays
//! empty).
//!
//! Cases covered elsewhere, not repeated here:
//! - a binary frame (1003): `socket_closes::a_binary_frame_closes_the_socket_with_1003`;
//! - a frame over 64 KiB (1009):
//!   `socket_closes::a_frame_over_64_kib_closes_the_socket_with_1009`, and a
//!   header announcing more (1009 at once):
//!   `hardening::a_frame_header_announcing_more_than_64_kib_closes_with_1009_at_once`;
//! - invalid UTF-8 split over fragments (1007):
//!   `socket_closes::invalid_utf8_closes_the_socket_with_1007`;
//! - a control frame over 125 bytes (1002):
//!   `socket_closes::an_oversized_control_frame_closes_the_socket_with_1002`;
//! - reserved bits set (1002): `hardening::a_frame_with_reserved_bits_closes_with_1002`;
//! - text that is not JSON, a JSON array, an unknown `type`, a room name
//!   for `roomId`, a message without a body (error frames):
//!   `websocket::malformed_frames_are_errors_and_the_socket_stays_open`;
//! - tokens in the `/ws` query string: `bad_input_http::credentials_in_the_query_string_never_authenticate`.

mod support;

use std::time::Duration;

use support::*;

all_modes!(
    json_that_is_not_an_object_is_an_error_frame,
    a_frame_with_a_repeated_key_is_an_error_frame_and_stores_nothing,
    a_lone_surrogate_in_a_body_is_an_error_frame_and_stores_nothing,
    a_room_id_that_does_not_fit_is_an_error_frame_and_stores_nothing,
    invalid_utf8_in_one_text_frame_closes_with_1007,
    a_fragmented_binary_message_closes_with_1003,
    a_fragmented_control_frame_closes_with_1002,
    a_continuation_without_a_start_closes_with_1002,
    a_new_message_inside_a_fragmented_one_closes_with_1002,
    an_unknown_opcode_closes_with_1002,
    an_unmasked_frame_closes_with_1002,
    a_close_frame_with_an_invalid_code_is_answered_with_1002,
    a_close_frame_with_a_one_byte_payload_is_answered_with_1002,
);

const WAIT: Duration = Duration::from_secs(5);

/// A user with a room and a socket joined to it.
async fn joined(mode: Mode) -> (TestApp, Browser, i64, WsConn) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let ws = ws_joined(&app, &alice, room).await;
    (app, alice, room, ws)
}

/// One masked frame, written byte for byte: `first` is the FIN, RSV and
/// opcode byte.
fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first, 0x80 | u8::try_from(payload.len()).unwrap()];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Sends `text` and expects an `error` frame with `code`.
async fn expect_error(ws: &mut WsConn, text: &str, code: &str) {
    ws.send_text(text).await;
    let frame = ws.next_json(WAIT).await;
    assert_eq!(frame["type"], "error", "{text} -> {frame}");
    assert_eq!(frame["code"], code, "{text} -> {frame}");
}

/// Expects the socket to close with `code`, then the room to be empty and
/// the user's other requests to keep working.
async fn expect_close_and_nothing_stored(
    ws: &mut WsConn,
    code: u16,
    alice: &mut Browser,
    room: i64,
) {
    let (closed, reason) = ws.expect_close(WAIT).await;
    assert_eq!(closed, code, "reason: {reason}");
    assert!(history(alice, room, "").await.is_empty());
}

async fn json_that_is_not_an_object_is_an_error_frame(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    for text in ["[]", "1", "\"x\"", "null", "{}", "true", "  "] {
        expect_error(&mut ws, text, "bad_frame").await;
    }
    ws.assert_alive(room).await;
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn a_frame_with_a_repeated_key_is_an_error_frame_and_stores_nothing(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    for text in [
        format!(r#"{{"type":"message","roomId":{room},"body":"first body","body":"second body"}}"#),
        format!(r#"{{"type":"message","roomId":{room},"roomId":{room},"body":"a body"}}"#),
        format!(r#"{{"type":"join","type":"message","roomId":{room},"body":"a body"}}"#),
        format!(
            r#"{{"type":"message","roomId":{room},"body":"a body","clientId":"a","clientId":"b"}}"#
        ),
    ] {
        expect_error(&mut ws, &text, "bad_frame").await;
    }
    ws.assert_alive(room).await;
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn a_lone_surrogate_in_a_body_is_an_error_frame_and_stores_nothing(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    for body in [r"\ud800", r"before \udfff after", r"\ud800\u0041"] {
        let text = format!(r#"{{"type":"message","roomId":{room},"body":"{body}"}}"#);
        expect_error(&mut ws, &text, "bad_frame").await;
    }
    // A well-formed pair is one character, and welcome.
    let text = format!(r#"{{"type":"message","roomId":{room},"body":"pair \ud83d\ude00 ok"}}"#);
    ws.send_text(&text).await;
    let frame = ws.next_of_type("message", WAIT).await;
    assert_eq!(frame["body"], "pair \u{1f600} ok");
    let stored = history(&mut alice, room, "").await;
    assert_eq!(stored.len(), 1, "only the good pair: {stored:?}");
}

async fn a_room_id_that_does_not_fit_is_an_error_frame_and_stores_nothing(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    for (id, code) in [
        ("18446744073709551616", "bad_frame"),
        ("9223372036854775808", "bad_frame"),
        ("1.5", "bad_frame"),
        ("1e3", "bad_frame"),
        ("\"1\"", "bad_frame"),
        ("null", "bad_frame"),
        ("-1", "unknown_room"),
        ("0", "unknown_room"),
    ] {
        let join = format!(r#"{{"type":"join","roomId":{id}}}"#);
        expect_error(&mut ws, &join, code).await;
        let message = format!(r#"{{"type":"message","roomId":{id},"body":"lost message"}}"#);
        let code = if code == "bad_frame" {
            code
        } else {
            "not_joined"
        };
        expect_error(&mut ws, &message, code).await;
    }
    ws.assert_alive(room).await;
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn invalid_utf8_in_one_text_frame_closes_with_1007(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    let mut payload = format!(r#"{{"type":"message","roomId":{room},"body":""#).into_bytes();
    payload.extend_from_slice(b"caf\xe9\"}");
    ws.send_raw_bytes(&raw_frame(0x81, &payload)).await;
    expect_close_and_nothing_stored(&mut ws, 1007, &mut alice, room).await;
}

async fn a_fragmented_binary_message_closes_with_1003(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    // Binary, not final; then the final continuation.
    ws.send_raw_bytes(&raw_frame(0x02, b"abc")).await;
    ws.send_raw_bytes(&raw_frame(0x80, b"def")).await;
    expect_close_and_nothing_stored(&mut ws, 1003, &mut alice, room).await;
}

async fn a_fragmented_control_frame_closes_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    // A ping without FIN: control frames must not be fragmented.
    ws.send_raw_bytes(&raw_frame(0x09, b"ping")).await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}

async fn a_continuation_without_a_start_closes_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    let payload = format!(r#"{{"type":"message","roomId":{room},"body":"orphan part"}}"#);
    ws.send_raw_bytes(&raw_frame(0x80, payload.as_bytes()))
        .await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}

async fn a_new_message_inside_a_fragmented_one_closes_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    let whole = format!(r#"{{"type":"message","roomId":{room},"body":"cut in two"}}"#);
    // The start of a text message, then a whole new text frame.
    ws.send_raw_bytes(&raw_frame(0x01, b"{\"type\":")).await;
    ws.send_raw_bytes(&raw_frame(0x81, whole.as_bytes())).await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}

async fn an_unknown_opcode_closes_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    ws.send_raw_bytes(&raw_frame(0x83, b"reserved")).await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}

async fn an_unmasked_frame_closes_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    let payload = format!(r#"{{"type":"message","roomId":{room},"body":"no mask"}}"#);
    let mut frame = vec![0x81, u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(payload.as_bytes());
    ws.send_raw_bytes(&frame).await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}

async fn a_close_frame_with_an_invalid_code_is_answered_with_1002(mode: Mode) {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let (_app, mut alice, room, mut ws) = joined(mode).await;
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        ws.send_raw_bytes(&raw_frame(0x88, &payload)).await;
        let (closed, reason) = ws.expect_close(WAIT).await;
        assert_eq!(
            closed, 1002,
            "client sent close code {code}; reason: {reason}"
        );
        assert!(history(&mut alice, room, "").await.is_empty());
    }
}

async fn a_close_frame_with_a_one_byte_payload_is_answered_with_1002(mode: Mode) {
    let (_app, mut alice, room, mut ws) = joined(mode).await;
    ws.send_raw_bytes(&raw_frame(0x88, &[0x03])).await;
    expect_close_and_nothing_stored(&mut ws, 1002, &mut alice, room).await;
}
