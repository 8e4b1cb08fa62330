//! One WebSocket connection's loop: reads client frames, writes what the hub
//! queues for it, keeps the peer alive with pings, and closes with the fixed
//! code and reason when its credential ends. No store is read per frame: the
//! credential was checked at the upgrade, and revocation arrives as an event.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, CloseReason, ProtocolError};

use super::events::Events;
use super::hub::Outbound;
use super::post::{self, message_out, Post, PostError};
use super::protocol::{self, ClientFrame, CloseKind, ServerFrame};
use crate::store::{self, Db, StoreError};

const PING_EVERY: Duration = Duration::from_secs(15);
/// A peer that takes longer than this to accept one frame is not reading:
/// its socket closes instead of holding up its own loop.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer silent for this long (no frame, no pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Most rooms one socket may be joined to.
const MAX_ROOMS: usize = 50;

/// A check, run now and then while the socket is open, that the credential
/// is still alive; it also counts the open socket as activity.
pub type KeepAlive = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool>>>>;

/// Who is on the socket, and until when.
pub struct Identity {
    pub user_id: i64,
    pub username: String,
    pub handle: String,
    /// When the credential ends, in Unix milliseconds, and how to say so.
    pub deadline_ms: i64,
    pub deadline_kind: CloseKind,
    /// `expiresAt` of the `authenticated` frame (token mode only).
    pub expires_at: Option<String>,
}

pub struct Socket {
    pub events: Events,
    pub db: Db,
    pub identity: Identity,
    pub keepalive: Option<(Duration, KeepAlive)>,
    /// Set by the frame guard when a frame header announced too much.
    pub oversize: Arc<AtomicBool>,
}

enum Flow {
    Continue,
    Close(CloseKind),
    /// The client closed; echo its reason.
    Closed(Option<CloseReason>),
}

impl Socket {
    pub async fn run(self, mut session: actix_ws::Session, stream: actix_ws::MessageStream) {
        let mut stream = stream
            .max_frame_size(protocol::MAX_FRAME_BYTES)
            .aggregate_continuations()
            .max_continuation_size(protocol::MAX_FRAME_BYTES);
        let id = &self.identity;
        let mut reg = self.events.hub().register(id.user_id, &id.handle);
        let mut state = Conn {
            socket_id: reg.id,
            floors: HashMap::new(),
        };
        tracing::debug!(socket = reg.id, user_id = id.user_id, "socket opened");

        let hello = ServerFrame::Authenticated {
            user_id: id.user_id,
            username: &id.username,
            expires_at: id.expires_at.clone(),
        };
        if send(&mut session, hello.to_text()).await.is_err() {
            return;
        }

        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let (keep_every, keepalive) = match &self.keepalive {
            Some((every, check)) => (*every, Some(check)),
            None => (Duration::from_secs(3600), None),
        };
        let mut keep = tokio::time::interval(keep_every);
        keep.tick().await;
        let mut last_heard = Instant::now();
        let deadline = tokio::time::sleep_until(until(id.deadline_ms));
        tokio::pin!(deadline);

        let outcome = loop {
            tokio::select! {
                biased;
                kind = reg.close.closed() => break Flow::Close(kind),
                _ = &mut deadline => break Flow::Close(id.deadline_kind),
                incoming = stream.recv() => {
                    let Some(incoming) = incoming else { break Flow::Closed(None) };
                    last_heard = Instant::now();
                    match incoming {
                        Ok(msg) => match self.on_frame(msg, &mut session, &mut state).await {
                            Flow::Continue => {}
                            other => break other,
                        },
                        Err(_) if self.oversize.load(Ordering::Relaxed) => break Flow::Close(CloseKind::TooBig),
                        Err(err) => break Flow::Close(protocol_close(&err)),
                    }
                }
                Some(out) = reg.rx.recv() => {
                    let Outbound::Message { room_id, id: msg_id, text } = out;
                    if state.floors.get(&room_id).is_some_and(|floor| msg_id <= *floor) {
                        continue;
                    }
                    if send(&mut session, text).await.is_err() {
                        break Flow::Closed(None);
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        tracing::debug!(socket = reg.id, "peer silent, dropping socket");
                        break Flow::Closed(None);
                    }
                    if tokio::time::timeout(SEND_TIMEOUT, session.ping(b"")).await.map_or(true, |r| r.is_err()) {
                        break Flow::Closed(None);
                    }
                }
                _ = keep.tick(), if keepalive.is_some() => {
                    if let Some(check) = keepalive {
                        if !check().await {
                            break Flow::Close(id.deadline_kind);
                        }
                    }
                }
            }
        };
        let reason = match outcome {
            Flow::Close(kind) => Some(CloseReason {
                code: kind.code(),
                description: Some(kind.reason().to_owned()),
            }),
            Flow::Closed(reason) => reason,
            Flow::Continue => None,
        };
        tracing::debug!(socket = reg.id, reason = ?reason, "socket closing");
        let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(reason)).await;
    }

    async fn on_frame(
        &self,
        msg: AggregatedMessage,
        session: &mut actix_ws::Session,
        state: &mut Conn,
    ) -> Flow {
        match msg {
            AggregatedMessage::Text(text) => self.on_text(&text, session, state).await,
            AggregatedMessage::Binary(_) => Flow::Close(CloseKind::Binary),
            AggregatedMessage::Ping(bytes) => {
                match tokio::time::timeout(SEND_TIMEOUT, session.pong(&bytes)).await {
                    Ok(Ok(())) => Flow::Continue,
                    _ => Flow::Closed(None),
                }
            }
            AggregatedMessage::Pong(_) => Flow::Continue,
            AggregatedMessage::Close(reason) => Flow::Closed(reason),
        }
    }

    async fn on_text(&self, text: &str, session: &mut actix_ws::Session, state: &mut Conn) -> Flow {
        let reply = match serde_json::from_str::<ClientFrame>(text) {
            Err(err) => Reply::error("bad_frame", &format!("Frame not understood: {err}")),
            Ok(ClientFrame::Authenticate { .. }) => Reply::error(
                "already_authenticated",
                "This socket is already authenticated by its session",
            ),
            Ok(ClientFrame::Join { room_id, after_id }) => {
                self.join(room_id, after_id, state).await
            }
            Ok(ClientFrame::Leave { room_id }) => {
                self.events.hub().leave(state.socket_id, room_id);
                state.floors.remove(&room_id);
                Reply::one(ServerFrame::Left { room_id }.to_text())
            }
            Ok(ClientFrame::Message {
                room_id,
                body,
                client_id,
            }) => self.message(room_id, &body, client_id, state).await,
        };
        for frame in reply.0 {
            if send(session, frame).await.is_err() {
                return Flow::Closed(None);
            }
        }
        Flow::Continue
    }

    async fn join(&self, room_id: i64, after_id: Option<i64>, state: &mut Conn) -> Reply {
        let room = self.db.run(move |c| store::rooms::find(c, room_id)).await;
        match room {
            Ok(Some(_)) => {}
            Ok(None) => return Reply::error("unknown_room", "No such room"),
            Err(err) => return unavailable(&err),
        }
        let hub = self.events.hub();
        if hub.join(state.socket_id, room_id) > MAX_ROOMS {
            hub.leave(state.socket_id, room_id);
            return Reply::error("too_many_rooms", "Leave a room before joining another");
        }
        let mut frames = Vec::new();
        if let Some(after) = after_id {
            let limit = protocol::CATCH_UP_LIMIT;
            let rows = self
                .db
                .run(move |c| store::messages::after(c, room_id, after, limit))
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(err) => {
                    hub.leave(state.socket_id, room_id);
                    return unavailable(&err);
                }
            };
            if let Some(last) = rows.last() {
                state.floors.insert(room_id, last.id);
            }
            for row in rows {
                let own = row.author_id == self.identity.user_id;
                let out = message_out(row, own);
                frames.push(ServerFrame::Message(&out).to_text());
            }
        }
        frames.push(ServerFrame::Joined { room_id }.to_text());
        Reply(frames)
    }

    async fn message(
        &self,
        room_id: i64,
        body: &str,
        client_id: Option<String>,
        state: &mut Conn,
    ) -> Reply {
        if !self.events.hub().is_member(state.socket_id, room_id) {
            return Reply::error("not_joined", "Join the room before sending to it");
        }
        let post = Post {
            author_id: self.identity.user_id,
            room_id,
            body,
            client_id,
            origin: Some(state.socket_id),
        };
        match post::post(&self.db, &self.events, post).await {
            Ok(own) => Reply::one(ServerFrame::Message(&own).to_text()),
            Err(PostError::Invalid(code, message)) => Reply::error(code, message),
            Err(PostError::Store(err)) => unavailable(&err),
        }
    }
}

struct Conn {
    socket_id: u64,
    /// Per room, the last message id sent from history on join: live copies
    /// at or below it were already sent.
    floors: HashMap<i64, i64>,
}

/// Frames to send back to this socket, in order.
struct Reply(Vec<String>);

impl Reply {
    fn one(frame: String) -> Self {
        Reply(vec![frame])
    }

    fn error(code: &str, message: &str) -> Self {
        Reply::one(ServerFrame::Error { code, message }.to_text())
    }
}

/// Sends one text frame, giving up after `SEND_TIMEOUT`.
async fn send(
    session: &mut actix_ws::Session,
    text: impl Into<bytestring::ByteString>,
) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn unavailable(err: &StoreError) -> Reply {
    tracing::error!(error = %err, "socket request failed in the database");
    Reply::error(
        "unavailable",
        "The server could not do that right now; try again",
    )
}

fn protocol_close(err: &ProtocolError) -> CloseKind {
    match err {
        ProtocolError::Overflow => CloseKind::TooBig,
        // Reserved bits come as InvalidData too, but are a protocol error.
        ProtocolError::Io(io) if io.to_string().contains("reserved bits") => CloseKind::Protocol,
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            CloseKind::InvalidUtf8
        }
        ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
            CloseKind::TooBig
        }
        _ => CloseKind::Protocol,
    }
}

/// A tokio instant for a Unix-milliseconds deadline.
fn until(deadline_ms: i64) -> tokio::time::Instant {
    let left = deadline_ms.saturating_sub(store::now_ms()).max(0);
    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0))
        .min(Duration::from_secs(86_400 * 365));
    tokio::time::Instant::now() + left
}
