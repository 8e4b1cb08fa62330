//! CSRF tokens: a random nonce and an HMAC over it and a binding, the
//! session handle once logged in or a nonce cookie before. Nothing is stored
//! on the server: the signature alone proves the token was ours.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie that binds forms shown to anonymous visitors.
pub const NONCE_COOKIE: &str = "chat_csrf";

const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;

#[derive(Clone)]
pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    /// Derives the CSRF key from the session secret, so the two never share
    /// a key even though one secret is configured.
    pub fn new(session_secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(session_secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"chat csrf key v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, binding: &str, nonce: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&(binding.len() as u64).to_be_bytes());
        mac.update(binding.as_bytes());
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    pub fn token(&self, binding: &str) -> String {
        let mut raw = [0u8; NONCE_LEN + MAC_LEN];
        rand::rngs::OsRng.fill_bytes(&mut raw[..NONCE_LEN]);
        let mac = self.mac(binding, &raw[..NONCE_LEN]);
        raw[NONCE_LEN..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn verify(&self, binding: &str, token: &str) -> bool {
        if binding.is_empty() || token.len() > 128 {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        if raw.len() != NONCE_LEN + MAC_LEN {
            return false;
        }
        let expected = self.mac(binding, &raw[..NONCE_LEN]);
        expected.ct_eq(&raw[NONCE_LEN..]).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_binding_and_key() {
        let csrf = Csrf::new(b"one key");
        let token = csrf.token("session-a");
        assert!(csrf.verify("session-a", &token));
        assert!(!csrf.verify("session-b", &token));
        assert!(!Csrf::new(b"another key").verify("session-a", &token));
        assert_ne!(token, csrf.token("session-a"), "tokens are randomized");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let csrf = Csrf::new(b"k");
        for bad in ["", "abc", "!!!!", &"A".repeat(64), &"A".repeat(500)] {
            assert!(!csrf.verify("s", bad), "{bad}");
        }
        assert!(!csrf.verify("", &csrf.token("")));
    }
}
