//! A client's WebSocket traffic: the input as the raw byte stream that the
//! frame-size guard watches, and (when it is UTF-8) as a text frame decoded
//! into our protocol type and checked as the socket checks it.

#![no_main]

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use chat::chat::frame_guard::FrameGuard;
use chat::chat::protocol::{
    check_client_id, clean_body, ClientFrame, MAX_BODY_CHARS, MAX_CLIENT_ID_BYTES, MAX_FRAME_BYTES,
};
use futures_util::Stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guard(data);
    if let Ok(text) = std::str::from_utf8(data) {
        frame(text);
        // The body check on its own, with strings JSON would have escaped.
        body(text);
    }
});

fn frame(text: &str) {
    match ClientFrame::parse(text) {
        Ok(ClientFrame::Message {
            body: b, client_id, ..
        }) => {
            body(&b);
            let verdict = check_client_id(client_id.as_deref());
            let fits = client_id
                .as_ref()
                .is_none_or(|c| (1..=MAX_CLIENT_ID_BYTES).contains(&c.len()));
            assert_eq!(verdict.is_ok(), fits, "client id check disagrees");
        }
        Ok(ClientFrame::Authenticate { token }) => assert!(text.len() >= token.len()),
        Ok(ClientFrame::Join { .. } | ClientFrame::Leave { .. }) => {}
        Err(err) => {
            // The error text goes back to the client in a frame.
            let _ = err.to_string();
        }
    }
}

fn body(raw: &str) {
    let Ok(clean) = clean_body(raw) else { return };
    assert!(!clean.is_empty());
    assert!(clean.chars().count() <= MAX_BODY_CHARS);
    assert_eq!(clean, clean.trim(), "accepted body is not trimmed");
    assert!(!clean.contains('\r'));
    assert!(!clean
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t'));
    assert_eq!(
        clean_body(&clean).as_deref(),
        Ok(clean.as_str()),
        "not stable"
    );
}

/// Feeds the bytes to the guard in chunks whose sizes come from the first
/// byte, and checks that it passes bytes through unchanged and trips only
/// by setting its flag.
fn guard(data: &[u8]) {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let chunks: Vec<Result<Bytes, PayloadError>> = data
        .chunks(step)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let tripped = Arc::new(AtomicBool::new(false));
    let inner = futures_util::stream::iter(chunks);
    let mut guard = FrameGuard::new(inner, MAX_FRAME_BYTES, tripped.clone());
    let mut cx = Context::from_waker(Waker::noop());
    let mut passed = Vec::new();
    loop {
        match Pin::new(&mut guard).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(chunk))) => passed.extend_from_slice(&chunk),
            Poll::Ready(Some(Err(_))) => {
                assert!(tripped.load(Ordering::Relaxed), "error without the flag");
                assert!(matches!(
                    Pin::new(&mut guard).poll_next(&mut cx),
                    Poll::Ready(None)
                ));
                break;
            }
            Poll::Ready(None) => {
                assert!(!tripped.load(Ordering::Relaxed));
                assert_eq!(passed, data, "bytes changed on the way through");
                break;
            }
            Poll::Pending => panic!("a ready stream came back pending"),
        }
    }
    assert!(data.starts_with(&passed));
}
