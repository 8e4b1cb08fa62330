//! The event channel: room messages and revocations go through it, so that
//! every instance's sockets and revocation views see them. Events apply to
//! this instance at once; with Redis configured they are also published on
//! one pub/sub channel, and each instance applies what the others publish.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::hub::{Hub, SocketId};
use super::protocol::CloseKind;
use crate::store::kv::RedisLink;

const CHANNEL: &str = "chat:events";
/// Events waiting to be published to Redis; past this, they are dropped
/// (with a warning) rather than held in memory while Redis is away.
const OUTBOX: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// A stored message, serialized once for every recipient. `origin` is
    /// the sending socket on this instance, which has its own copy.
    RoomMessage {
        room_id: i64,
        id: i64,
        text: ByteString,
        origin: Option<SocketId>,
    },
    /// Close a user's sockets: all of them, or one credential's, and (for
    /// token families) refuse the family's access tokens from now on.
    Revoke {
        user_id: i64,
        handle: Option<String>,
        kind: CloseKind,
    },
    /// An access token's id is denied until it expires (Unix ms).
    TokenDenied { jti: String, expires_ms: i64 },
    /// Sessions and tokens issued before `at` (Unix ms) are invalid, and the
    /// user's sockets close, but those of `keep` (the device that changed
    /// the password).
    ValidAfter {
        user_id: i64,
        at: i64,
        #[serde(default)]
        keep: Option<String>,
    },
}

/// Something besides the hub that follows events (the revocation view).
pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Serialize, Deserialize)]
struct Wire {
    instance: String,
    event: Event,
}

#[derive(Clone)]
pub struct Events {
    hub: Arc<Hub>,
    listeners: Arc<Vec<Listener>>,
    outbox: Option<mpsc::Sender<String>>,
    instance: Arc<str>,
    /// Whether the Redis channel is subscribed (always true without Redis).
    linked: Arc<watch::Sender<bool>>,
}

impl Events {
    pub fn in_process(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            listeners: Arc::new(Vec::new()),
            outbox: None,
            instance: crate::util::random_token(9).into(),
            linked: Arc::new(watch::Sender::new(true)),
        }
    }

    /// Adds a listener; call before the channel is shared.
    pub fn with_listener(mut self, listener: Listener) -> Self {
        Arc::make_mut(&mut self.listeners).push(listener);
        self
    }

    /// Publishes through Redis as well, and applies what other instances
    /// publish. Reconnects by itself when Redis goes away.
    pub fn with_redis(mut self, link: RedisLink) -> Self {
        let (tx, rx) = mpsc::channel(OUTBOX);
        // Not linked until the subscriber has subscribed.
        self.linked.send_replace(false);
        tokio::spawn(publisher(link.clone(), rx));
        tokio::spawn(subscriber(link.client().clone(), self.clone()));
        self.outbox = Some(tx);
        self
    }

    /// Follows whether this instance hears the other instances' events.
    pub fn linked(&self) -> watch::Receiver<bool> {
        self.linked.subscribe()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn publish(&self, event: Event) {
        if let Some(outbox) = &self.outbox {
            let wire = Wire {
                instance: self.instance.to_string(),
                event: event.clone(),
            };
            match serde_json::to_string(&wire) {
                Ok(payload) => {
                    if outbox.try_send(payload).is_err() {
                        tracing::warn!("event outbox full: an event reached only this instance");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not serialize an event"),
            }
        }
        self.apply(event);
    }

    fn apply(&self, event: Event) {
        for listener in self.listeners.iter() {
            listener(&event);
        }
        match event {
            Event::RoomMessage {
                room_id,
                id,
                text,
                origin,
            } => {
                self.hub.deliver(room_id, id, &text, origin);
            }
            Event::Revoke {
                user_id,
                handle,
                kind,
            } => {
                let closed = self.hub.revoke(user_id, handle.as_deref(), kind);
                if closed > 0 {
                    tracing::info!(
                        user_id,
                        closed,
                        reason = kind.reason(),
                        "sockets closed by revocation"
                    );
                }
            }
            Event::ValidAfter { user_id, keep, .. } => {
                self.hub
                    .revoke_except(user_id, keep.as_deref(), CloseKind::Revoked);
            }
            Event::TokenDenied { .. } => {}
        }
    }
}

/// Publishes events in order. While Redis is away each event is retried
/// until it goes through (the outbox bounds what waits), so a logout made
/// during an outage still reaches the other instances once Redis returns.
async fn publisher(link: RedisLink, mut rx: mpsc::Receiver<String>) {
    while let Some(payload) = rx.recv().await {
        let mut delay = Duration::from_millis(200);
        let mut warned = false;
        loop {
            let sent = link
                .run(Duration::from_secs(2), |mut conn| {
                    let payload = payload.clone();
                    async move {
                        redis::cmd("PUBLISH")
                            .arg(CHANNEL)
                            .arg(payload)
                            .query_async::<i64>(&mut conn)
                            .await
                    }
                })
                .await;
            if sent.is_ok() {
                break;
            }
            if !warned {
                tracing::warn!("cannot publish to Redis; events wait until it returns");
                warned = true;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

async fn subscriber(client: redis::Client, events: Events) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    tracing::info!("subscribed to the Redis event channel");
                    events.linked.send_replace(true);
                    backoff = Duration::from_millis(200);
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Wire>(&payload) {
                            Ok(wire) if *wire.instance == *events.instance => {}
                            Ok(wire) => events.apply(from_elsewhere(wire.event)),
                            Err(e) => tracing::warn!(error = %e, "unreadable event on the channel"),
                        }
                    }
                    events.linked.send_replace(false);
                    tracing::warn!(
                        "lost the Redis event channel; revocations made on other instances \
                         do not reach this one until it reconnects"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "could not subscribe to the event channel"),
            },
            Err(e) => tracing::warn!(error = %e, "could not connect for the event channel"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A socket id means nothing on another instance.
fn from_elsewhere(event: Event) -> Event {
    match event {
        Event::RoomMessage {
            room_id, id, text, ..
        } => Event::RoomMessage {
            room_id,
            id,
            text,
            origin: None,
        },
        other => other,
    }
}
