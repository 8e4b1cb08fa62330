//! The event channel: room messages and revocations go through it, so that
//! every instance's sockets see them. This build has the in-process
//! implementation, which applies events to the local hub at once; a Redis
//! pub/sub implementation slots in behind the same `publish`.

use std::sync::Arc;

use bytestring::ByteString;

use super::hub::{Hub, SocketId};
use super::protocol::CloseKind;

#[derive(Debug, Clone)]
pub enum Event {
    /// A stored message, serialized once for every recipient. `origin` is
    /// the sending socket, which already has its own copy.
    RoomMessage {
        room_id: i64,
        id: i64,
        text: ByteString,
        origin: Option<SocketId>,
    },
    /// Close a user's sockets: all of them, or one credential's.
    Revoke {
        user_id: i64,
        handle: Option<String>,
        kind: CloseKind,
    },
}

#[derive(Clone)]
pub struct Events {
    hub: Arc<Hub>,
}

impl Events {
    pub fn in_process(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn publish(&self, event: Event) {
        apply(&self.hub, event);
    }
}

fn apply(hub: &Hub, event: Event) {
    match event {
        Event::RoomMessage {
            room_id,
            id,
            text,
            origin,
        } => {
            hub.deliver(room_id, id, &text, origin);
        }
        Event::Revoke {
            user_id,
            handle,
            kind,
        } => {
            let closed = hub.revoke(user_id, handle.as_deref(), kind);
            if closed > 0 {
                tracing::info!(
                    user_id,
                    closed,
                    reason = kind.reason(),
                    "sockets closed by revocation"
                );
            }
        }
    }
}
