//! A WebSocket client for the app's `/ws` endpoint that carries a
//! `Browser`'s cookies or a Bearer token (or neither), speaks JSON frames
//! and reports close codes.

use std::time::Duration;

use actix_codec::Framed;
use actix_http::ws::Item;
use awc::error::WsClientError;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use super::app::TestApp;
use super::browser::Browser;

/// Largest frame the client accepts: far above the server's own limit, so
/// the server's limit is what the tests see.
const CLIENT_MAX_FRAME: usize = 4 << 20;
/// Longest wait for the upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code reported when the connection ended without a close frame.
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// Opens `/ws` with the browser's cookies (those whose path covers `/ws`)
/// and, when given, an `Origin`. An upgrade refused by the server is its
/// HTTP status.
pub async fn ws_connect(
    app: &TestApp,
    browser: &Browser,
    origin: Option<&str>,
) -> Result<WsConn, u16> {
    ws_open(app, browser.jar.header_for("/ws"), &[], origin).await
}

/// Opens `/ws` without cookies, with `Authorization: Bearer <token>` and,
/// when given, an `Origin`.
pub async fn ws_bearer(app: &TestApp, token: &str, origin: Option<&str>) -> Result<WsConn, u16> {
    let auth = format!("Bearer {token}");
    ws_open(app, None, &[("Authorization", &auth)], origin).await
}

/// Opens `/ws` with a `Cookie` header (if any), extra headers and an
/// `Origin` (if any).
pub async fn ws_open(
    app: &TestApp,
    cookie: Option<String>,
    headers: &[(&str, &str)],
    origin: Option<&str>,
) -> Result<WsConn, u16> {
    ws_open_at(&app.ws_url(), cookie, headers, origin).await
}

/// Like `ws_open`, at any WebSocket URL (such as `/ws` with a query).
pub async fn ws_open_at(
    url: &str,
    cookie: Option<String>,
    headers: &[(&str, &str)],
    origin: Option<&str>,
) -> Result<WsConn, u16> {
    let client = awc::Client::builder().timeout(CONNECT_TIMEOUT).finish();
    let mut req = client.ws(url).max_frame_size(CLIENT_MAX_FRAME);
    if let Some(origin) = origin {
        req = req.origin(origin);
    }
    if let Some(cookie) = cookie {
        req = req.header("Cookie", cookie);
    }
    for (name, value) in headers {
        super::logs::record_header(name, value);
        req = req.header(*name, *value);
    }
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, req.connect())
        .await
        .expect("the WebSocket upgrade timed out");
    match connected {
        Ok((_, framed)) => Ok(WsConn { framed }),
        Err(WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
        Err(e) => panic!("WebSocket upgrade failed: {e}"),
    }
}

/// Opens `/ws` from the app's own origin and waits for `authenticated`.
pub async fn ws_authenticated(app: &TestApp, browser: &Browser) -> (WsConn, Value) {
    let mut ws = ws_connect(app, browser, Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("WebSocket upgrade refused with {status}"));
    let hello = ws.next_json(Duration::from_secs(5)).await;
    assert_eq!(hello["type"], "authenticated", "first frame: {hello}");
    (ws, hello)
}

/// Opens an authenticated socket for `browser` and joins `room`.
pub async fn ws_joined(app: &TestApp, browser: &Browser, room: i64) -> WsConn {
    let (mut ws, _) = ws_authenticated(app, browser).await;
    ws.join(room).await;
    ws
}

/// One open socket.
pub struct WsConn {
    framed: Framed<BoxedSocket, Codec>,
}

/// What arrived on the socket.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Binary(Vec<u8>),
    Closed(u16, String),
    /// An answer to a ping this client sent.
    Pong,
}

impl WsConn {
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        if let Ok(json) = serde_json::from_str::<Value>(text) {
            super::logs::record_json(&json);
        }
        self.send(Message::Text(text.to_owned().into())).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send(Message::Binary(bytes.into())).await;
    }

    /// Sends one text message as two fragments of raw bytes, which need not
    /// be valid UTF-8.
    pub async fn send_text_fragments(&mut self, first: &[u8], last: &[u8]) {
        let first = bytes::Bytes::copy_from_slice(first);
        let last = bytes::Bytes::copy_from_slice(last);
        self.send(Message::Continuation(Item::FirstText(first)))
            .await;
        self.send(Message::Continuation(Item::Last(last))).await;
    }

    /// Writes raw bytes on the connection, bypassing the client's codec: for
    /// frames no well-behaved client would send.
    pub async fn send_raw_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let io = self.framed.io_mut();
        tokio::time::timeout(Duration::from_secs(5), io.write_all(bytes))
            .await
            .expect("writing raw bytes timed out")
            .expect("writing raw bytes failed");
    }

    /// Sends any frame, control frames included.
    pub async fn send(&mut self, message: Message) {
        tokio::time::timeout(Duration::from_secs(5), self.framed.send(message))
            .await
            .expect("sending a WebSocket frame timed out")
            .expect("sending a WebSocket frame failed");
    }

    /// The next data frame or close, answering pings on the way; `None`
    /// when nothing came within `wait`.
    pub async fn next_incoming(&mut self, wait: Duration) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Incoming::Closed(ABNORMAL_CLOSURE, String::new())),
                Ok(Some(Err(e))) => {
                    return Some(Incoming::Closed(ABNORMAL_CLOSURE, format!("{e}")));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(bytes) => {
                    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!(
                            "server sent a text frame that is not JSON ({e}): {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    super::logs::record_json(&value);
                    return Some(Incoming::Json(value));
                }
                Frame::Binary(bytes) => return Some(Incoming::Binary(bytes.to_vec())),
                Frame::Close(reason) => {
                    let (code, text) = reason.map_or((1005, String::new()), |r| {
                        (u16::from(r.code), r.description.unwrap_or_default())
                    });
                    return Some(Incoming::Closed(code, text));
                }
                Frame::Ping(payload) => {
                    let _ = self.framed.send(Message::Pong(payload)).await;
                }
                Frame::Pong(_) => return Some(Incoming::Pong),
                Frame::Continuation(_) => {}
            }
        }
    }

    /// The next JSON frame; panics on a timeout, a close or a binary frame.
    pub async fn next_json(&mut self, wait: Duration) -> Value {
        match self.next_incoming(wait).await {
            Some(Incoming::Json(value)) => value,
            None => panic!("no WebSocket frame within {wait:?}"),
            Some(other) => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next JSON frame of the given `type`, skipping others.
    pub async fn next_of_type(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let value = self.next_json(left).await;
            if value["type"] == kind {
                return value;
            }
        }
    }

    /// Asserts that no data frame or close arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(incoming) = self.next_incoming(wait).await {
            panic!("expected nothing on the socket, got {incoming:?}");
        }
    }

    /// Reads until the server closes, skipping data frames, and returns the
    /// close code and reason. A connection dropped without a close frame is
    /// code 1006. Panics when the socket stays open for `wait`.
    pub async fn expect_close(&mut self, wait: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_incoming(left).await {
                None => panic!("the socket was not closed within {wait:?}"),
                Some(Incoming::Closed(code, reason)) => return (code, reason),
                Some(_) => {}
            }
        }
    }

    /// Joins a room and waits for `joined`.
    pub async fn join(&mut self, room_id: i64) {
        self.send_json(serde_json::json!({"type": "join", "roomId": room_id}))
            .await;
        let joined = self.next_of_type("joined", Duration::from_secs(5)).await;
        assert_eq!(joined["roomId"], room_id, "joined the wrong room: {joined}");
    }

    /// Checks the socket still answers: a join of `room_id` is acknowledged.
    pub async fn assert_alive(&mut self, room_id: i64) {
        self.join(room_id).await;
    }

    /// Sends `authenticate` with `token`.
    pub async fn authenticate(&mut self, token: &str) {
        self.send_json(serde_json::json!({"type": "authenticate", "token": token}))
            .await;
    }

    /// Expects `auth_error` saying `reason`, then a 1008 close with the same
    /// reason.
    pub async fn expect_auth_error(&mut self, reason: &str, wait: Duration) {
        let frame = match self.next_incoming(wait).await {
            Some(Incoming::Json(frame)) => frame,
            other => panic!("expected auth_error ({reason}), got {other:?}"),
        };
        assert_eq!(frame["type"], "auth_error", "{frame}");
        assert_eq!(frame["message"], reason, "{frame}");
        let closed = self.expect_close(wait).await;
        assert_eq!(closed, (1008, reason.to_owned()));
    }
}
