//! Limits on password guessing and on creations per address.
//!
//! Failed logins are counted per account and client address, and per
//! address. Past a limit, further attempts are
//! refused before any bcrypt work, until the window ends. The pair limit
//! is low, so one address cannot guess one account's password; the
//! address limit is higher, for an address trying many accounts. The owner
//! logging in from another address is not affected, and a success clears
//! its pair.

use std::time::Duration;

use super::client::limit_key;
use crate::store::kv::Throttle;
use crate::store::StoreError;
use crate::util::sha256_hex;

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_PAIR: u32 = 5;
pub const PER_ADDRESS: u32 = 50;

/// The counters of one login attempt. Emails are hashed into the keys, so
/// the throttle store holds no email addresses.
pub struct Attempt {
    pair: String,
    address: String,
}

impl Attempt {
    pub fn new(email_key: &str, address: &str) -> Self {
        let address = limit_key(address);
        Self {
            pair: format!("login:{}:{address}", &sha256_hex(email_key)[..32]),
            address: format!("login-from:{address}"),
        }
    }

    /// Seconds to wait when this attempt is over a limit.
    pub async fn blocked(&self, throttle: &Throttle) -> Result<Option<u64>, StoreError> {
        let pair = throttle.blocked(&self.pair, PER_PAIR).await?;
        let address = throttle.blocked(&self.address, PER_ADDRESS).await?;
        Ok(pair
            .max(address)
            .map(|ms| u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)))
    }

    pub async fn failed(&self, throttle: &Throttle) -> Result<(), StoreError> {
        throttle.hit(&self.pair, WINDOW).await?;
        throttle.hit(&self.address, WINDOW).await
    }

    pub async fn succeeded(&self, throttle: &Throttle) -> Result<(), StoreError> {
        throttle.clear(&self.pair).await
    }
}

/// Creations per address in a window: accounts and rooms.
pub struct Quota {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

pub const REGISTRATIONS: Quota = Quota {
    name: "register",
    limit: 10,
    window: Duration::from_secs(3600),
};
pub const ROOMS: Quota = Quota {
    name: "rooms",
    limit: 30,
    window: Duration::from_secs(3600),
};

impl Quota {
    fn key(&self, address: &str) -> String {
        format!("{}-from:{}", self.name, limit_key(address))
    }

    /// Seconds to wait when `address` has used up the quota.
    pub async fn exhausted(
        &self,
        throttle: &Throttle,
        address: &str,
    ) -> Result<Option<u64>, StoreError> {
        let left = throttle.blocked(&self.key(address), self.limit).await?;
        Ok(left.map(|ms| u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)))
    }

    pub async fn used(&self, throttle: &Throttle, address: &str) -> Result<(), StoreError> {
        throttle.hit(&self.key(address), self.window).await
    }
}
