//! Sockets that have not authenticated yet, counted per client address.
//!
//! In token mode an upgrade without a credential opens a socket that may
//! wait up to `WS_AUTH_TIMEOUT_SECS` for its `authenticate` frame. Each
//! costs a task and a connection while proving nothing, so one address may
//! hold only a few at once. The count is per instance, in memory: these
//! sockets live on this instance alone. A socket stops counting when its
//! `Pending` guard is dropped, which happens once it authenticates and, on
//! every other way out, when its task ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Sockets one address may have waiting to authenticate. Far above what a
/// browser opens (one per tab, and each authenticates at once), and a
/// little room for many clients behind one address.
pub const PER_ADDRESS: usize = 16;

#[derive(Default)]
pub struct PendingSockets {
    by_address: Mutex<HashMap<String, usize>>,
}

/// One socket counted against its address until dropped.
pub struct Pending {
    registry: Arc<PendingSockets>,
    address: String,
}

impl PendingSockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Plain counters: still usable after a panic elsewhere.
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more socket for `address`, or `None` when it already
    /// has `PER_ADDRESS` waiting.
    pub fn admit(self: &Arc<Self>, address: &str) -> Option<Pending> {
        let mut counts = self.lock();
        let count = counts.entry(address.to_owned()).or_insert(0);
        if *count >= PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Pending {
            registry: Arc::clone(self),
            address: address.to_owned(),
        })
    }

    /// Sockets waiting for `address`.
    pub fn count(&self, address: &str) -> usize {
        self.lock().get(address).copied().unwrap_or(0)
    }

    /// Addresses with a socket waiting; entries go when their count does.
    pub fn addresses(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut counts = self.registry.lock();
        if let Some(count) = counts.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_fixed_number_and_dropping_frees_one() {
        let registry = Arc::new(PendingSockets::default());
        let mut held: Vec<_> = (0..PER_ADDRESS)
            .map(|_| registry.admit("203.0.113.5").unwrap())
            .collect();
        assert!(registry.admit("203.0.113.5").is_none());
        assert!(registry.admit("198.51.100.7").is_some(), "another address");
        held.pop();
        assert_eq!(registry.count("203.0.113.5"), PER_ADDRESS - 1);
        assert!(registry.admit("203.0.113.5").is_some());
        held.clear();
        assert_eq!(registry.addresses(), 0, "no entry outlives its sockets");
    }
}
