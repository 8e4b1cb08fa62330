//! WebSocket connections to `/ws` carrying a cookie, a Bearer header or
//! nothing (then authenticating by first message).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::accounts::{Login, Target};

pub type Socket = WebSocketStream<TcpStream>;

/// Longest wait for the upgrade and the `authenticated` frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How the socket proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
    FirstMessage,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Cookie => "cookie",
            Via::Bearer => "Bearer header",
            Via::FirstMessage => "first message",
        }
    }
}

/// The header this way of authenticating adds to the upgrade, if any.
pub fn credential_header(login: &Login, via: Via) -> Option<(&'static str, String)> {
    match via {
        Via::Cookie => Some(("Cookie", login.cookie.clone())),
        Via::Bearer => login
            .access
            .as_ref()
            .map(|t| ("Authorization", format!("Bearer {t}"))),
        Via::FirstMessage => None,
    }
}

/// Opens `/ws`, authenticates, and returns once `authenticated` arrived.
pub async fn connect(target: &Target, login: &Login, via: Via) -> Result<Socket> {
    tokio::time::timeout(AUTH_TIMEOUT, open(target, login, via))
        .await
        .map_err(|_| anyhow!("socket not authenticated within {AUTH_TIMEOUT:?}"))?
}

async fn open(target: &Target, login: &Login, via: Via) -> Result<Socket> {
    let mut request = format!("ws://{}/ws", target.addr).into_client_request()?;
    let headers = request.headers_mut();
    if let Some((name, value)) = credential_header(login, via) {
        headers.insert(name, HeaderValue::from_str(&value)?);
    }
    if via == Via::Cookie {
        headers.insert("Origin", HeaderValue::from_str(&target.origin())?);
    }
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await?;
    if via == Via::FirstMessage {
        let token = login
            .access
            .as_deref()
            .ok_or_else(|| anyhow!("no token to authenticate with"))?;
        let frame = serde_json::json!({ "type": "authenticate", "token": token });
        socket.send(Message::text(frame.to_string())).await?;
    }
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.contains("\"type\":\"authenticated\"") {
                    return Ok(socket);
                }
                if text.contains("\"type\":\"auth_error\"") {
                    bail!("socket refused: {text}");
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("socket closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("socket ended before authenticating"),
        }
    }
}

/// Joins a room and waits for `joined`.
pub async fn join(socket: &mut Socket, room: i64) -> Result<()> {
    let frame = serde_json::json!({ "type": "join", "roomId": room });
    socket.send(Message::text(frame.to_string())).await?;
    let wait = async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message? {
                if text.contains("\"type\":\"joined\"") {
                    return Ok(());
                }
            }
        }
        bail!("socket ended before joining")
    };
    tokio::time::timeout(AUTH_TIMEOUT, wait)
        .await
        .map_err(|_| anyhow!("not joined within {AUTH_TIMEOUT:?}"))?
}

/// A chat message frame whose body carries `stamp`.
pub fn message_frame(room: i64, stamp: u64) -> Message {
    Message::text(format!(
        "{{\"type\":\"message\",\"roomId\":{room},\"body\":\"t{stamp}\"}}"
    ))
}

/// The stamp of a delivered message frame, read without a JSON parser
/// (fan-out receives many thousands a second on one client core).
pub fn stamp_of(text: &str) -> Option<u64> {
    if !text.contains("\"type\":\"message\"") {
        return None;
    }
    let at = text.find("\"body\":\"t")? + "\"body\":\"t".len();
    let digits: &str = &text[at..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

/// Whether the frame is a refusal by the message rate limits.
pub fn is_rate_limited(text: &str) -> bool {
    text.contains("\"rate_limited\"")
}
