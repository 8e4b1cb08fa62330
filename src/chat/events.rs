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
        #[serde(default)]
        issued: Option<Issued>,
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
        #[serde(default)]
        issued: Option<Issued>,
    },
}

/// Why and when a revocation was issued: for the revocation figures, which
/// count causes where they are issued and time the closing of sockets on
/// every instance. Absent from events of instances that predate it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Issued {
    pub cause: Cause,
    /// Unix microseconds, by the issuing instance's clock.
    pub at_us: i64,
}

impl Issued {
    pub fn now(cause: Cause) -> Option<Issued> {
        Some(Issued {
            cause,
            at_us: now_us(),
        })
    }

    /// From issue to now; none when the clocks disagree backwards.
    fn age(&self) -> Option<Duration> {
        u64::try_from(now_us().saturating_sub(self.at_us))
            .ok()
            .map(Duration::from_micros)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Logout,
    LogoutEverywhere,
    PasswordChange,
    /// Ended from the account page's list of logins.
    LoginEnded,
    /// A spent refresh token came back: the family is taken as stolen.
    FamilyReuse,
    /// A cause this instance does not know (sent by a newer one).
    #[serde(other)]
    Other,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Logout => "logout",
            Cause::LogoutEverywhere => "logout_everywhere",
            Cause::PasswordChange => "password_change",
            Cause::LoginEnded => "login_ended",
            Cause::FamilyReuse => "family_reuse",
            Cause::Other => "other",
        }
    }
}

fn now_us() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
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
        if let Event::Revoke {
            issued: Some(issued),
            ..
        }
        | Event::ValidAfter {
            issued: Some(issued),
            ..
        } = &event
        {
            self.hub.metrics().revocation_issued(issued.cause.as_str());
        }
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
                issued,
            } => {
                let closed = self.hub.revoke(user_id, handle.as_deref(), kind);
                self.closed_by(issued, closed);
                if closed > 0 {
                    tracing::info!(
                        user_id,
                        closed,
                        reason = kind.reason(),
                        "sockets closed by revocation"
                    );
                }
            }
            Event::ValidAfter {
                user_id,
                keep,
                issued,
                ..
            } => {
                let closed = self
                    .hub
                    .revoke_except(user_id, keep.as_deref(), CloseKind::Revoked);
                self.closed_by(issued, closed);
            }
            Event::TokenDenied { .. } => {}
        }
    }

    /// Times a revocation that closed sockets here, from its issue.
    fn closed_by(&self, issued: Option<Issued>, closed: usize) {
        if let Some(age) = issued.filter(|_| closed > 0).and_then(|i| i.age()) {
            self.hub.metrics().revocation_closed(age);
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
                .run("publish", Duration::from_secs(2), |mut conn| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_from_older_or_newer_instances_still_apply() {
        let kind = serde_json::to_value(CloseKind::LoggedOut).unwrap();
        let older: Event = serde_json::from_value(serde_json::json!(
            {"t": "revoke", "user_id": 1, "handle": null, "kind": kind}
        ))
        .unwrap();
        assert!(matches!(older, Event::Revoke { issued: None, .. }));

        let newer: Event = serde_json::from_value(serde_json::json!({
            "t": "valid_after", "user_id": 1, "at": 5,
            "issued": {"cause": "a_cause_from_the_future", "at_us": 7},
        }))
        .unwrap();
        match newer {
            Event::ValidAfter {
                issued: Some(issued),
                ..
            } => {
                assert_eq!(issued.cause, Cause::Other);
                assert_eq!(issued.at_us, 7);
            }
            other => panic!("{other:?}"),
        }
    }
}
