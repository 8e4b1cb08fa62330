//! One WebSocket connection's loop: authenticates it when the upgrade
//! carried no credential (token mode), then reads client frames, writes
//! what the hub queues for it, keeps the peer alive with pings, and closes
//! with the fixed code and reason when its credential ends. No store is
//! read per frame: the credential was checked at the upgrade or by
//! `authenticate`, and revocation arrives as an event.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason, ProtocolError};

use super::events::Events;
use super::hub::Outbound;
use super::pending::Pending;
use super::post::{self, message_out, Post, PostError};
use super::protocol::{self, ClientFrame, CloseKind, ServerFrame};
use super::rate::{Bucket, Strikes, UserRates, Verdict};
use crate::store::{self, Db, StoreError};

const PING_EVERY: Duration = Duration::from_secs(15);
/// A peer that takes longer than this to accept one frame is not reading:
/// its socket closes instead of holding up its own loop.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer silent for this long (no frame, no pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Most sockets one user may have open on one instance.
const MAX_SOCKETS_PER_USER: usize = 32;
/// Most rooms one socket may be joined to.
const MAX_ROOMS: usize = 50;

/// A check, run now and then while the socket is open, that the credential
/// is still alive; it also counts the open socket as activity.
pub type KeepAlive = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool>>>>;

/// What checking a token sent in an `authenticate` frame gave.
pub enum AuthAnswer {
    Accepted(Identity),
    Refused(CloseKind),
    Unavailable,
}

/// Checks the token of an `authenticate` frame (token mode only).
pub type Authenticator = Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = AuthAnswer>>>>;

/// Who is on the socket, and until when.
#[derive(Debug, Clone)]
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

/// How the socket starts.
pub enum Start {
    /// The upgrade carried a valid credential.
    Authenticated(Identity),
    /// No credential: an `authenticate` frame must come within the timeout.
    AwaitToken(Duration),
    /// A credential that was present but refused: say why and close.
    Refused(CloseKind),
}

pub struct Socket {
    pub events: Events,
    pub db: Db,
    pub start: Start,
    pub authenticator: Option<Authenticator>,
    pub keepalive: Option<(Duration, KeepAlive)>,
    /// Set by the frame guard when a frame header announced too much.
    pub oversize: Arc<AtomicBool>,
    /// Message buckets per user, shared with every socket and the form.
    pub rates: Arc<UserRates>,
    /// Counts this socket against its address while it has not
    /// authenticated; dropped once it has, or when the task ends.
    pub pending: Option<Pending>,
}

enum Flow {
    Continue,
    Close(CloseKind),
    /// Send `auth_error` with the reason, then close.
    AuthClose(CloseKind),
    /// The client closed; echo its reason.
    Closed(Option<CloseReason>),
    Authenticate(String),
}

type Stream = AggregatedMessageStream;

impl Socket {
    pub async fn run(mut self, mut session: actix_ws::Session, stream: actix_ws::MessageStream) {
        let mut stream = stream
            .max_frame_size(protocol::MAX_FRAME_BYTES)
            .aggregate_continuations()
            .max_continuation_size(protocol::MAX_FRAME_BYTES);
        let start = std::mem::replace(&mut self.start, Start::Refused(CloseKind::NotAuthenticated));
        // One frame bucket for the socket's whole life: waiting for a token
        // does not earn a second burst.
        let mut bucket = self.rates.socket_bucket();
        let identity = match start {
            Start::Authenticated(identity) => Some(identity),
            Start::Refused(kind) => {
                finish(session, Flow::AuthClose(kind)).await;
                return;
            }
            Start::AwaitToken(timeout) => {
                match self
                    .await_token(&mut session, &mut stream, timeout, &mut bucket)
                    .await
                {
                    Ok(identity) => {
                        self.pending = None;
                        Some(identity)
                    }
                    Err(flow) => {
                        finish(session, flow).await;
                        return;
                    }
                }
            }
        };
        if let Some(identity) = identity {
            let outcome = self
                .serve(identity, &mut session, &mut stream, bucket)
                .await;
            finish(session, outcome).await;
        }
    }

    /// Before authentication only `authenticate` is accepted.
    async fn await_token(
        &self,
        session: &mut actix_ws::Session,
        stream: &mut Stream,
        timeout: Duration,
        bucket: &mut Bucket,
    ) -> Result<Identity, Flow> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let incoming = tokio::select! {
                _ = &mut deadline => return Err(Flow::AuthClose(CloseKind::AuthTimeout)),
                incoming = stream.recv() => incoming,
            };
            let flow = match incoming {
                None => return Err(Flow::Closed(None)),
                Some(Err(err)) => return Err(Flow::Close(self.protocol_close(&err))),
                Some(Ok(AggregatedMessage::Text(text))) => match bucket.take() {
                    Verdict::Close => return Err(Flow::Close(CloseKind::RateLimited)),
                    // Refused frames are not read, not even an `authenticate`.
                    Verdict::Refuse => match refuse_frame(session).await {
                        Flow::Continue => continue,
                        flow => return Err(flow),
                    },
                    Verdict::Allow => match ClientFrame::parse(&text) {
                        Ok(ClientFrame::Authenticate { token }) => Flow::Authenticate(token),
                        _ => Flow::Continue,
                    },
                },
                Some(Ok(other)) => match self.on_control(other, session, bucket).await {
                    Flow::Continue => continue,
                    flow => return Err(flow),
                },
            };
            match flow {
                Flow::Authenticate(token) => match self.check_token(token).await {
                    Ok(identity) => return Ok(identity),
                    Err(Flow::Continue) => continue,
                    Err(flow) => return Err(flow),
                },
                Flow::Continue => {
                    let frame = ServerFrame::Error {
                        code: "not_authenticated",
                        message: "Not authenticated",
                    };
                    if send(session, frame.to_text()).await.is_err() {
                        return Err(Flow::Closed(None));
                    }
                }
                other => return Err(other),
            }
        }
    }

    /// Runs a token through the authenticator; `Err(Continue)` means the
    /// check could not be made now and the client may try again.
    async fn check_token(&self, token: String) -> Result<Identity, Flow> {
        let Some(check) = &self.authenticator else {
            return Err(Flow::Continue);
        };
        match check(token).await {
            AuthAnswer::Accepted(identity) => Ok(identity),
            AuthAnswer::Refused(kind) => Err(Flow::AuthClose(kind)),
            AuthAnswer::Unavailable => Err(Flow::Continue),
        }
    }

    async fn serve(
        &self,
        mut identity: Identity,
        session: &mut actix_ws::Session,
        stream: &mut Stream,
        bucket: Bucket,
    ) -> Flow {
        // A user with this many sockets open is a script, not a person
        // with tabs: refuse more rather than let one account hold the hub.
        if self.events.hub().user_socket_count(identity.user_id) >= MAX_SOCKETS_PER_USER {
            return Flow::Close(CloseKind::RateLimited);
        }
        let mut reg = self
            .events
            .hub()
            .register(identity.user_id, &identity.handle);
        let mut state = Conn {
            socket_id: reg.id,
            user_id: identity.user_id,
            floors: HashMap::new(),
            bucket,
            user_strikes: Strikes::default(),
        };
        tracing::debug!(socket = reg.id, user_id = identity.user_id, "socket opened");
        if send(session, hello(&identity)).await.is_err() {
            return Flow::Closed(None);
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
        let deadline = tokio::time::sleep_until(until(identity.deadline_ms));
        tokio::pin!(deadline);

        loop {
            let flow = tokio::select! {
                biased;
                kind = reg.close.closed() => Flow::Close(kind),
                _ = &mut deadline => Flow::Close(identity.deadline_kind),
                incoming = stream.recv() => {
                    last_heard = Instant::now();
                    match incoming {
                        None => Flow::Closed(None),
                        Some(Err(err)) => Flow::Close(self.protocol_close(&err)),
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            self.on_text(&text, session, &mut state).await
                        }
                        Some(Ok(other)) => self.on_control(other, session, &mut state.bucket).await,
                    }
                }
                Some(out) = reg.rx.recv() => {
                    let Outbound::Message { room_id, id: msg_id, text } = out;
                    let seen = state.floors.get(&room_id).is_some_and(|floor| msg_id <= *floor);
                    if !seen && send(session, text).await.is_err() {
                        Flow::Closed(None)
                    } else {
                        Flow::Continue
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        tracing::debug!(socket = reg.id, "peer silent, dropping socket");
                        Flow::Closed(None)
                    } else if tokio::time::timeout(SEND_TIMEOUT, session.ping(b"")).await.map_or(true, |r| r.is_err()) {
                        Flow::Closed(None)
                    } else {
                        Flow::Continue
                    }
                }
                _ = keep.tick(), if keepalive.is_some() => {
                    match keepalive {
                        Some(check) if !check().await => Flow::Close(identity.deadline_kind),
                        _ => Flow::Continue,
                    }
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Authenticate(token) => match self.check_token(token).await {
                    Ok(fresh) if fresh.user_id != identity.user_id => {
                        return Flow::AuthClose(CloseKind::IdentityChange);
                    }
                    Ok(fresh) => {
                        self.events.hub().rehandle(reg.id, &fresh.handle);
                        deadline.as_mut().reset(until(fresh.deadline_ms));
                        identity = fresh;
                        if send(session, hello(&identity)).await.is_err() {
                            return Flow::Closed(None);
                        }
                    }
                    Err(Flow::Continue) if self.authenticator.is_none() => {
                        let frame = ServerFrame::Error {
                            code: "already_authenticated",
                            message: "This socket is already authenticated by its session",
                        };
                        if send(session, frame.to_text()).await.is_err() {
                            return Flow::Closed(None);
                        }
                    }
                    Err(Flow::Continue) => {
                        let frame = ServerFrame::Error {
                            code: "unavailable",
                            message: "The token could not be checked right now; try again",
                        };
                        if send(session, frame.to_text()).await.is_err() {
                            return Flow::Closed(None);
                        }
                    }
                    Err(flow) => return flow,
                },
                other => return other,
            }
        }
    }

    /// Frames other than text, in any phase.
    /// A ping takes from the frame bucket like any frame: a refused one
    /// gets no pong, and a flood of them closes the socket as text would.
    async fn on_control(
        &self,
        msg: AggregatedMessage,
        session: &mut actix_ws::Session,
        bucket: &mut Bucket,
    ) -> Flow {
        match msg {
            AggregatedMessage::Text(_) => Flow::Continue,
            AggregatedMessage::Binary(_) => Flow::Close(CloseKind::Binary),
            AggregatedMessage::Ping(bytes) => match bucket.take() {
                Verdict::Close => Flow::Close(CloseKind::RateLimited),
                Verdict::Refuse => Flow::Continue,
                Verdict::Allow => {
                    match tokio::time::timeout(SEND_TIMEOUT, session.pong(&bytes)).await {
                        Ok(Ok(())) => Flow::Continue,
                        _ => Flow::Closed(None),
                    }
                }
            },
            AggregatedMessage::Pong(_) => Flow::Continue,
            AggregatedMessage::Close(reason) => Flow::Closed(reason),
        }
    }

    async fn on_text(&self, text: &str, session: &mut actix_ws::Session, state: &mut Conn) -> Flow {
        match state.bucket.take() {
            Verdict::Allow => {}
            Verdict::Close => return Flow::Close(CloseKind::RateLimited),
            Verdict::Refuse => return refuse_frame(session).await,
        }
        let reply = match ClientFrame::parse(text) {
            Err(err) => Reply::error("bad_frame", &format!("Frame not understood: {err}")),
            Ok(ClientFrame::Authenticate { token }) => return Flow::Authenticate(token),
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
            }) => match self.message(room_id, &body, client_id, state).await {
                Some(reply) => reply,
                None => return Flow::Close(CloseKind::RateLimited),
            },
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
                let own = row.author_id == state.user_id;
                let out = message_out(row, own);
                frames.push(ServerFrame::Message(&out).to_text());
            }
        }
        frames.push(ServerFrame::Joined { room_id }.to_text());
        Reply(frames)
    }

    /// Posts a message; `None` when the user's rate was refused so often in
    /// a row that the socket is to close.
    async fn message(
        &self,
        room_id: i64,
        body: &str,
        client_id: Option<String>,
        state: &mut Conn,
    ) -> Option<Reply> {
        if !self.events.hub().is_member(state.socket_id, room_id) {
            return Some(Reply::error(
                "not_joined",
                "Join the room before sending to it",
            ));
        }
        let post = Post {
            author_id: state.user_id,
            room_id,
            body,
            client_id,
            origin: Some(state.socket_id),
        };
        let outcome = post::post(&self.db, &self.events, &self.rates, post).await;
        let limited = matches!(outcome, Err(PostError::RateLimited(_)));
        if state.user_strikes.judge(!limited) == Verdict::Close {
            return None;
        }
        Some(match outcome {
            Ok(own) => Reply::one(ServerFrame::Message(&own).to_text()),
            Err(PostError::Invalid(code, message)) => Reply::error(code, message),
            // The same code as the socket's own frame limit: to the client
            // both mean "slow down".
            Err(PostError::RateLimited(_)) => Reply::error(
                "rate_limited",
                "Too many messages from your account: slow down",
            ),
            Err(PostError::Store(err)) => unavailable(&err),
        })
    }
}

fn hello(identity: &Identity) -> String {
    ServerFrame::Authenticated {
        user_id: identity.user_id,
        username: &identity.username,
        expires_at: identity.expires_at.clone(),
    }
    .to_text()
}

/// Ends the connection the way `flow` says.
async fn finish(mut session: actix_ws::Session, flow: Flow) {
    let reason = match flow {
        Flow::AuthClose(kind) => {
            let frame = ServerFrame::AuthError {
                message: kind.reason(),
            };
            let _ = send(&mut session, frame.to_text()).await;
            Some(close_reason(kind))
        }
        Flow::Close(kind) => Some(close_reason(kind)),
        Flow::Closed(reason) => reason,
        Flow::Continue | Flow::Authenticate(_) => None,
    };
    tracing::debug!(reason = ?reason, "socket closing");
    let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(reason)).await;
}

fn close_reason(kind: CloseKind) -> CloseReason {
    CloseReason {
        code: kind.code(),
        description: Some(kind.reason().to_owned()),
    }
}

struct Conn {
    socket_id: u64,
    /// Fixed for the socket's life: re-authentication as another user is
    /// refused.
    user_id: i64,
    /// Per room, the last message id sent from history on join: live copies
    /// at or below it were already sent.
    floors: HashMap<i64, i64>,
    bucket: Bucket,
    /// Messages refused in a row by the user's shared rate.
    user_strikes: Strikes,
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

fn unavailable(err: &StoreError) -> Reply {
    tracing::error!(error = %err, "socket request failed in the database");
    Reply::error(
        "unavailable",
        "The server could not do that right now; try again",
    )
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

impl Socket {
    /// The close a protocol error calls for.
    fn protocol_close(&self, err: &ProtocolError) -> CloseKind {
        if self.oversize.load(Ordering::Relaxed) {
            return CloseKind::TooBig;
        }
        match err {
            ProtocolError::Overflow => CloseKind::TooBig,
            // Reserved bits come as InvalidData too, but are a protocol error.
            ProtocolError::Io(io) if io.to_string().contains("reserved bits") => {
                CloseKind::Protocol
            }
            ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                CloseKind::InvalidUtf8
            }
            ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
                CloseKind::TooBig
            }
            _ => CloseKind::Protocol,
        }
    }
}

/// A tokio instant for a Unix-milliseconds deadline.
fn until(deadline_ms: i64) -> tokio::time::Instant {
    let left = deadline_ms.saturating_sub(store::now_ms()).max(0);
    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0))
        .min(Duration::from_secs(86_400 * 365));
    tokio::time::Instant::now() + left
}

/// Tells the client a frame was refused for going over the frame rate.
async fn refuse_frame(session: &mut actix_ws::Session) -> Flow {
    let frame = ServerFrame::Error {
        code: "rate_limited",
        message: "Too many frames: slow down",
    };
    match send(session, frame.to_text()).await {
        Ok(()) => Flow::Continue,
        Err(()) => Flow::Closed(None),
    }
}
