//! The rooms and the socket index of this instance. Each socket has its own
//! bounded queue, filled with a non-blocking send: a slow reader can never
//! stall fan-out, and a socket whose queue is full is closed instead.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytestring::ByteString;
use tokio::sync::{mpsc, Notify};

use super::protocol::CloseKind;
use crate::metrics::Metrics;

pub type SocketId = u64;

/// Frames a socket may hold before it counts as too slow.
const QUEUE_LEN: usize = 256;

/// What the hub hands a socket to write.
#[derive(Debug)]
pub enum Outbound {
    /// A room message, with its id so that a socket catching up on a room
    /// can drop what it has already sent from history.
    Message {
        room_id: i64,
        id: i64,
        text: ByteString,
    },
}

/// Tells a socket to close, and why. Set once; later reasons are ignored.
#[derive(Debug, Default)]
pub struct CloseSignal {
    kind: OnceLock<CloseKind>,
    notify: Notify,
}

impl CloseSignal {
    pub fn is_closing(&self) -> bool {
        self.kind.get().is_some()
    }

    pub fn close(&self, kind: CloseKind) {
        if self.kind.set(kind).is_ok() {
            self.notify.notify_one();
        }
    }

    /// Waits until `close` is called; returns the reason.
    pub async fn closed(&self) -> CloseKind {
        loop {
            if let Some(kind) = self.kind.get() {
                return *kind;
            }
            self.notify.notified().await;
        }
    }
}

struct Entry {
    user_id: i64,
    handle: String,
    tx: mpsc::Sender<Outbound>,
    close: Arc<CloseSignal>,
    rooms: HashSet<i64>,
}

#[derive(Default)]
struct State {
    sockets: HashMap<SocketId, Entry>,
    rooms: HashMap<i64, HashSet<SocketId>>,
    by_user: HashMap<i64, HashSet<SocketId>>,
}

#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    next_id: AtomicU64,
    metrics: Metrics,
}

/// A socket's membership in the hub; leaving scope unregisters it, so a
/// socket task that ends in any way leaves no trace behind.
pub struct Registration {
    pub id: SocketId,
    pub rx: mpsc::Receiver<Outbound>,
    pub close: Arc<CloseSignal>,
    hub: Arc<Hub>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

impl Hub {
    /// A hub that counts its sockets and deliveries in `metrics`.
    pub fn with_metrics(metrics: Metrics) -> Self {
        Hub {
            metrics,
            ..Hub::default()
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, still
        // consistent enough to keep serving; recover rather than cascade.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(self: &Arc<Self>, user_id: i64, handle: &str) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let close = Arc::new(CloseSignal::default());
        let entry = Entry {
            user_id,
            handle: handle.to_owned(),
            tx,
            close: close.clone(),
            rooms: HashSet::new(),
        };
        let mut state = self.lock();
        state.sockets.insert(id, entry);
        state.by_user.entry(user_id).or_default().insert(id);
        drop(state);
        self.metrics.socket_opened();
        Registration {
            id,
            rx,
            close,
            hub: self.clone(),
        }
    }

    fn remove(&self, id: SocketId) {
        let mut state = self.lock();
        let Some(entry) = state.sockets.remove(&id) else {
            return;
        };
        self.metrics.socket_closed();
        for room in &entry.rooms {
            if let Some(members) = state.rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    state.rooms.remove(room);
                }
            }
        }
        if let Some(mine) = state.by_user.get_mut(&entry.user_id) {
            mine.remove(&id);
            if mine.is_empty() {
                state.by_user.remove(&entry.user_id);
            }
        }
    }

    /// Moves a socket to another credential of the same user (a socket that
    /// re-authenticated with a token of another family).
    pub fn rehandle(&self, id: SocketId, handle: &str) {
        if let Some(entry) = self.lock().sockets.get_mut(&id) {
            handle.clone_into(&mut entry.handle);
        }
    }

    /// Adds the socket to a room; returns how many rooms it is now in.
    pub fn join(&self, id: SocketId, room_id: i64) -> usize {
        let mut state = self.lock();
        let Some(entry) = state.sockets.get_mut(&id) else {
            return 0;
        };
        entry.rooms.insert(room_id);
        let count = entry.rooms.len();
        state.rooms.entry(room_id).or_default().insert(id);
        count
    }

    pub fn leave(&self, id: SocketId, room_id: i64) {
        let mut state = self.lock();
        if let Some(entry) = state.sockets.get_mut(&id) {
            entry.rooms.remove(&room_id);
        }
        if let Some(members) = state.rooms.get_mut(&room_id) {
            members.remove(&id);
            if members.is_empty() {
                state.rooms.remove(&room_id);
            }
        }
    }

    pub fn is_member(&self, id: SocketId, room_id: i64) -> bool {
        self.lock()
            .sockets
            .get(&id)
            .is_some_and(|e| e.rooms.contains(&room_id))
    }

    /// Queues a room message on every member socket but `skip`; returns how
    /// many queued it. A socket whose queue is full is told to close.
    pub fn deliver(
        &self,
        room_id: i64,
        id: i64,
        text: &ByteString,
        skip: Option<SocketId>,
    ) -> usize {
        let state = self.lock();
        let Some(members) = state.rooms.get(&room_id) else {
            return 0;
        };
        let mut delivered = 0;
        for socket in members {
            if Some(*socket) == skip {
                continue;
            }
            let Some(entry) = state.sockets.get(socket) else {
                continue;
            };
            if entry.close.is_closing() {
                continue;
            }
            let out = Outbound::Message {
                room_id,
                id,
                text: text.clone(),
            };
            match entry.tx.try_send(out) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        socket,
                        user_id = entry.user_id,
                        "socket queue full, closing it"
                    );
                    entry.close.close(CloseKind::SlowConsumer);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.metrics.delivered(delivered);
        delivered
    }

    /// Closes the user's sockets, or only those of one credential.
    pub fn revoke(&self, user_id: i64, handle: Option<&str>, kind: CloseKind) -> usize {
        self.close_where(user_id, kind, |h| handle.is_none_or(|wanted| wanted == h))
    }

    /// Closes the user's sockets except those of the `keep` credential.
    pub fn revoke_except(&self, user_id: i64, keep: Option<&str>, kind: CloseKind) -> usize {
        self.close_where(user_id, kind, |h| keep != Some(h))
    }

    /// Closes the user's sockets whose credential handle `pick` chooses.
    fn close_where(&self, user_id: i64, kind: CloseKind, pick: impl Fn(&str) -> bool) -> usize {
        let state = self.lock();
        let Some(ids) = state.by_user.get(&user_id) else {
            return 0;
        };
        let mut closed = 0;
        for entry in ids.iter().filter_map(|id| state.sockets.get(id)) {
            if pick(&entry.handle) {
                entry.close.close(kind);
                closed += 1;
            }
        }
        closed
    }

    /// Open sockets per credential handle of a user.
    pub fn sockets_by_handle(&self, user_id: i64) -> std::collections::HashMap<String, usize> {
        let state = self.lock();
        let mut counts = std::collections::HashMap::new();
        for id in state.by_user.get(&user_id).into_iter().flatten() {
            if let Some(entry) = state.sockets.get(id) {
                *counts.entry(entry.handle.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Closes every socket, for shutdown.
    pub fn close_all(&self, kind: CloseKind) {
        for entry in self.lock().sockets.values() {
            entry.close.close(kind);
        }
    }

    pub fn user_socket_count(&self, user_id: i64) -> usize {
        self.lock().by_user.get(&user_id).map_or(0, |s| s.len())
    }

    pub fn socket_count(&self) -> usize {
        self.lock().sockets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_room_members_except_the_sender() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.register(1, "ha");
        let mut b = hub.register(2, "hb");
        let mut c = hub.register(3, "hc");
        hub.join(a.id, 10);
        hub.join(b.id, 10);
        hub.join(c.id, 11);
        let n = hub.deliver(10, 1, &ByteString::from("x"), Some(a.id));
        assert_eq!(n, 1);
        assert!(b.rx.try_recv().is_ok());
        assert!(a.rx.try_recv().is_err());
        assert!(c.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_socket_instead_of_blocking() {
        let hub = Arc::new(Hub::default());
        let slow = hub.register(1, "h");
        hub.join(slow.id, 1);
        for i in 0..QUEUE_LEN as i64 {
            assert_eq!(hub.deliver(1, i, &ByteString::from("x"), None), 1);
        }
        assert_eq!(hub.deliver(1, 999, &ByteString::from("x"), None), 0);
        assert_eq!(slow.close.closed().await, CloseKind::SlowConsumer);
    }

    #[tokio::test]
    async fn revocation_targets_one_credential_or_all_of_a_user() {
        let hub = Arc::new(Hub::default());
        let one = hub.register(1, "first");
        let two = hub.register(1, "second");
        let other = hub.register(2, "first");
        assert_eq!(hub.revoke(1, Some("first"), CloseKind::LoggedOut), 1);
        assert_eq!(one.close.closed().await, CloseKind::LoggedOut);
        assert!(two.close.kind.get().is_none());
        assert!(other.close.kind.get().is_none());
        assert_eq!(hub.revoke(1, None, CloseKind::Revoked), 2);
        assert_eq!(two.close.closed().await, CloseKind::Revoked);
    }

    #[test]
    fn dropping_a_registration_removes_every_trace() {
        let hub = Arc::new(Hub::default());
        let r = hub.register(1, "h");
        hub.join(r.id, 5);
        drop(r);
        assert_eq!(hub.socket_count(), 0);
        let state = hub.lock();
        assert!(state.rooms.is_empty() && state.by_user.is_empty());
    }
}
