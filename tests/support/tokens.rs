//! Token mode from the outside: reading the claims of the app's tokens,
//! forging tokens with any header and claims (signed with the app's own
//! keys, or any other), and waiting for a token to expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

use super::app::TestApp;
use super::browser::Browser;

/// base64url without padding, as JWTs use it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The decoded header and claims of a token; panics when it is not a JWT.
pub fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = |what: &str| -> Value {
        let text = parts
            .next()
            .unwrap_or_else(|| panic!("no {what} in token {token}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .unwrap_or_else(|e| panic!("the {what} of {token} is not base64url: {e}"));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("the {what} of {token} is not JSON: {e}"))
    };
    let header = part("header");
    let claims = part("claims");
    (header, claims)
}

/// The claims of a token.
pub fn claims(token: &str) -> Value {
    decode(token).1
}

/// A numeric claim (`exp`, `iat`, …) of a token.
pub fn time_claim(token: &str, name: &str) -> i64 {
    claims(token)[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is not an integer in {}", claims(token)))
}

/// Now, in whole Unix seconds.
pub fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The HMAC algorithms a forged token can be signed with.
#[derive(Debug, Clone, Copy)]
pub enum Hmacs {
    Hs256,
    Hs384,
    Hs512,
}

/// The MAC of `input` under `key`.
pub fn mac(alg: Hmacs, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Hmacs::Hs256 => run::<Hmac<Sha256>>(key, input),
        Hmacs::Hs384 => run::<Hmac<Sha384>>(key, input),
        Hmacs::Hs512 => run::<Hmac<Sha512>>(key, input),
    }
}

/// `header.claims.signature` from raw JSON texts (which need not be JSON),
/// signed with `alg` under `key`.
pub fn sign_raw(header: &str, claims: &str, key: &[u8], alg: Hmacs) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = mac(alg, key, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A token with this header and these claims, HMAC-SHA256-signed under
/// `key`, whatever the header says.
pub fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    sign_raw(&header.to_string(), &claims.to_string(), key, Hmacs::Hs256)
}

/// A token with this header and claims and a given signature part.
pub fn with_signature(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs tokens as the app would, or not quite: the app's own keys and a
/// genuine token's claims to start from.
pub struct Forger {
    pub access_key: Vec<u8>,
    pub refresh_key: Vec<u8>,
    /// The claims of a genuine access token, to vary.
    pub access_claims: Value,
    /// The claims of a genuine refresh token, to vary.
    pub refresh_claims: Value,
}

impl Forger {
    /// A forger with the app's keys and the claims of a genuine pair.
    pub fn new(app: &TestApp, access: &str, refresh: &str) -> Forger {
        let (access_key, refresh_key) = app.jwt_secrets();
        Forger {
            access_key: access_key.into_bytes(),
            refresh_key: refresh_key.into_bytes(),
            access_claims: claims(access),
            refresh_claims: claims(refresh),
        }
    }

    /// The standard header, `{"alg":"HS256","typ":"JWT"}`.
    pub fn header() -> Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT"})
    }

    /// An access token with the genuine claims changed by `change`, signed
    /// with the access key.
    pub fn access(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.access_claims.clone();
        change(claims.as_object_mut().expect("claims are an object"));
        sign(&Forger::header(), &claims, &self.access_key)
    }

    /// A refresh token with the genuine claims changed by `change`, signed
    /// with the refresh key.
    pub fn refresh(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.refresh_claims.clone();
        change(claims.as_object_mut().expect("claims are an object"));
        sign(&Forger::header(), &claims, &self.refresh_key)
    }
}

/// Waits (polling, up to 15 s) until the app refuses `access` on `/api/me`,
/// as it does once the token has expired.
pub async fn wait_until_refused(app: &TestApp, access: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut client = Browser::new(app);
    loop {
        let page = client.get_bearer("/api/me", access).await;
        if page.status == 401 {
            return;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token was still accepted after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the wall clock is past second `secs` (Unix time).
pub async fn wait_past_second(secs: i64) {
    while now_secs() <= secs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
