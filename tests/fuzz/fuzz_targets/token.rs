//! Our JWT check (`chat::auth::jwt::Tokens::verify`) with fixed test keys:
//! arbitrary text as a token, and tokens correctly signed with our key over
//! an arbitrary header and claims, so that every claim check is reached.

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat::auth::jwt::{Kind, Refusal, Tokens, MAX_TOKEN_BYTES};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use sha2::Sha256;

const ACCESS_KEY: &[u8] = b"fuzzing access key: 32 bytes or more, never used elsewhere";
const REFRESH_KEY: &[u8] = b"fuzzing refresh key: also 32 bytes or more, and different";
const LEEWAY: i64 = 5;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any text where a token goes (header, cookie or frame).
    Raw { access: bool, token: String },
    /// A token signed with one of our keys.
    Signed {
        access: bool,
        /// Sign with the other kind's key: must never pass.
        wrong_key: bool,
        header: HeaderShape,
        claims: ClaimsShape,
    },
    /// Our own signing, then verification: must round-trip.
    RoundTrip {
        access: bool,
        user_id: i64,
        family: String,
        lifetime: i32,
    },
}

#[derive(Arbitrary, Debug)]
enum HeaderShape {
    Ours,
    Alg(String),
    WithKid(String),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ClaimsShape {
    Fields {
        sub: Field,
        iat: Field,
        nbf: Field,
        exp: Field,
        iss: Field,
        aud: Field,
        jti: Field,
        fam: Field,
        extra: Option<(String, Field)>,
    },
    Raw(Vec<u8>),
}

/// One claim's value: the right one for a valid token, or something else.
#[derive(Arbitrary, Debug)]
enum Field {
    Good,
    Missing,
    Int(i64),
    /// Seconds from now.
    Offset(i32),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    List(Vec<i64>),
}

fuzz_target!(|input: Input| {
    let tokens = Tokens::new(ACCESS_KEY, REFRESH_KEY, Duration::from_secs(LEEWAY as u64));
    let now = now();
    match input {
        Input::Raw { access, token } => {
            let verdict = tokens.verify(kind(access), &token);
            if token.len() > MAX_TOKEN_BYTES {
                assert_eq!(verdict, Err(Refusal::TooLong));
            }
            // Without our key nothing can be accepted.
            assert!(verdict.is_err(), "an unsigned input was accepted");
        }
        Input::Signed {
            access,
            wrong_key,
            header,
            claims,
        } => {
            let key = match access != wrong_key {
                true => ACCESS_KEY,
                false => REFRESH_KEY,
            };
            let token = sign(
                key,
                &header_bytes(header),
                &claims_bytes(claims, access, now),
            );
            let verdict = tokens.verify(kind(access), &token);
            if wrong_key {
                assert!(verdict.is_err(), "a token signed with the other key passed");
            }
            if let Ok(c) = verdict {
                let aud = if access {
                    "chat:access"
                } else {
                    "chat:refresh"
                };
                assert_eq!(c.aud, aud);
                assert_eq!(c.iss, "chat");
                let id = c.user_id().expect("accepted token without a user id");
                assert!(id > 0 && id.to_string() == c.sub);
                assert!(!c.jti.is_empty() && !c.fam.is_empty());
                // Checked against the clock a moment later, so allow a second.
                assert!(c.exp >= now - LEEWAY - 1, "expired token accepted");
                assert!(c.nbf <= now + LEEWAY + 1, "immature token accepted");
                assert!(c.iat <= now + LEEWAY + 1, "token from the future accepted");
            }
        }
        Input::RoundTrip {
            access,
            user_id,
            family,
            lifetime,
        } => {
            let exp = now.saturating_add(i64::from(lifetime));
            let Ok(signed) = tokens.sign(kind(access), user_id, &family, now, exp) else {
                return;
            };
            let verdict = tokens.verify(kind(access), &signed.token);
            let other = tokens.verify(kind(!access), &signed.token);
            assert!(other.is_err(), "a token passed as the other kind");
            let valid = user_id > 0
                && !family.is_empty()
                && signed.token.len() <= MAX_TOKEN_BYTES
                && exp > now + LEEWAY + 1;
            if valid {
                assert_eq!(verdict, Ok(signed.claims), "our own token was refused");
            }
            if user_id <= 0 || family.is_empty() {
                assert!(verdict.is_err());
            }
        }
    }
});

fn kind(access: bool) -> Kind {
    if access {
        Kind::Access
    } else {
        Kind::Refresh
    }
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn header_bytes(shape: HeaderShape) -> Vec<u8> {
    let value = match shape {
        HeaderShape::Ours => json!({"alg": "HS256", "typ": "JWT"}),
        HeaderShape::Alg(alg) => json!({"alg": alg, "typ": "JWT"}),
        HeaderShape::WithKid(kid) => json!({"alg": "HS256", "kid": kid}),
        HeaderShape::Raw(bytes) => return bytes,
    };
    value.to_string().into_bytes()
}

fn claims_bytes(shape: ClaimsShape, access: bool, now: i64) -> Vec<u8> {
    let ClaimsShape::Fields {
        sub,
        iat,
        nbf,
        exp,
        iss,
        aud,
        jti,
        fam,
        extra,
    } = shape
    else {
        let ClaimsShape::Raw(bytes) = shape else {
            unreachable!()
        };
        return bytes;
    };
    let audience = if access {
        "chat:access"
    } else {
        "chat:refresh"
    };
    let mut map = Map::new();
    let fields = [
        ("sub", sub, json!("7")),
        ("iat", iat, json!(now - 1)),
        ("nbf", nbf, json!(now - 1)),
        ("exp", exp, json!(now + 600)),
        ("iss", iss, json!("chat")),
        ("aud", aud, json!(audience)),
        ("jti", jti, json!("fuzz-jti")),
        ("fam", fam, json!("fuzz-family")),
    ];
    for (name, field, good) in fields {
        if let Some(v) = value(field, good, now) {
            map.insert(name.to_owned(), v);
        }
    }
    if let Some((name, field)) = extra {
        if let Some(v) = value(field, Value::Null, now) {
            map.insert(name, v);
        }
    }
    Value::Object(map).to_string().into_bytes()
}

fn value(field: Field, good: Value, now: i64) -> Option<Value> {
    Some(match field {
        Field::Good => good,
        Field::Missing => return None,
        Field::Int(n) => json!(n),
        Field::Offset(s) => json!(now.saturating_add(i64::from(s))),
        Field::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Field::Str(s) => json!(s),
        Field::Bool(b) => json!(b),
        Field::Null => Value::Null,
        Field::List(l) => json!(l),
    })
}

/// A compact JWS over exactly these header and claims bytes.
fn sign(key: &[u8], header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}
