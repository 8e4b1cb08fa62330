//! Every refusal the token checks make, with tokens forged by hand so that
//! headers and claims can be anything an attacker would send.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::*;

const ACCESS: &[u8] = b"access-secret-of-at-least-32-bytes!!";
const REFRESH: &[u8] = b"refresh-secret-of-at-least-32-bytes!";

fn tokens() -> Tokens {
    Tokens::new(ACCESS, REFRESH, Duration::from_secs(5))
}

fn now() -> i64 {
    crate::store::now_ms() / 1000
}

fn good_claims() -> Value {
    let now = now();
    json!({
        "sub": "7", "iat": now, "nbf": now, "exp": now + 900,
        "iss": "chat", "aud": "chat:access", "jti": "j1", "fam": "f1"
    })
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs `header.claims` with HMAC-SHA256 under `key`, whatever they say.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

fn refused(token: &str) -> Refusal {
    tokens().verify(Kind::Access, token).unwrap_err()
}

#[test]
fn a_well_formed_token_passes() {
    let t = forge(&hs256(), &good_claims(), ACCESS);
    let claims = tokens().verify(Kind::Access, &t).unwrap();
    assert_eq!(claims.user_id(), Some(7));
    assert_eq!(claims.fam, "f1");
}

#[test]
fn signed_tokens_round_trip_and_keep_their_kind() {
    let t = tokens();
    let access = t.sign(Kind::Access, 3, "fam", now(), now() + 60).unwrap();
    let refresh = t.sign(Kind::Refresh, 3, "fam", now(), now() + 60).unwrap();
    assert_eq!(
        t.verify(Kind::Access, &access.token).unwrap(),
        access.claims
    );
    assert_eq!(
        t.verify(Kind::Refresh, &refresh.token).unwrap(),
        refresh.claims
    );
    assert!(t.verify(Kind::Refresh, &access.token).is_err());
    assert!(t.verify(Kind::Access, &refresh.token).is_err());
}

#[test]
fn a_refresh_token_signed_with_the_access_key_is_still_refused_as_refresh() {
    let mut claims = good_claims();
    claims["aud"] = json!("chat:refresh");
    let t = forge(&hs256(), &claims, ACCESS);
    assert_eq!(
        tokens().verify(Kind::Refresh, &t).unwrap_err(),
        Refusal::Signature
    );
    assert_eq!(refused(&t), Refusal::Audience);
}

#[test]
fn a_bad_signature_is_refused() {
    let t = forge(
        &hs256(),
        &good_claims(),
        b"some-other-key-of-at-least-32-bytes",
    );
    assert_eq!(refused(&t), Refusal::Signature);
}

#[test]
fn alg_none_in_any_spelling_is_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let unsigned = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(good_claims().to_string().as_bytes())
        );
        assert!(
            tokens().verify(Kind::Access, &unsigned).is_err(),
            "{alg} unsigned"
        );
        let signed = forge(&header, &good_claims(), ACCESS);
        assert!(
            tokens().verify(Kind::Access, &signed).is_err(),
            "{alg} signed"
        );
    }
}

#[test]
fn other_algorithms_are_refused() {
    for alg in ["HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA"] {
        let t = forge(&json!({"alg": alg}), &good_claims(), ACCESS);
        assert_eq!(refused(&t), Refusal::Algorithm, "{alg}");
    }
}

#[test]
fn header_supplied_keys_are_refused() {
    let jwk = json!({"kty": "oct", "k": b64(ACCESS)});
    for header in [
        json!({"alg": "HS256", "jwk": jwk}),
        json!({"alg": "HS256", "jku": "http://127.0.0.1/keys"}),
        json!({"alg": "HS256", "x5u": "http://127.0.0.1/cert"}),
        json!({"alg": "HS256", "kid": "../../dev/null"}),
        json!({"alg": "HS256", "crit": ["exp"]}),
    ] {
        let t = forge(&header, &good_claims(), ACCESS);
        assert!(tokens().verify(Kind::Access, &t).is_err(), "{header}");
    }
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let mut c = good_claims();
    c["exp"] = json!(now() - 10);
    assert_eq!(refused(&forge(&hs256(), &c, ACCESS)), Refusal::Expired);
    let mut c = good_claims();
    c["nbf"] = json!(now() + 60);
    assert_eq!(refused(&forge(&hs256(), &c, ACCESS)), Refusal::NotYetValid);
    let mut c = good_claims();
    c["exp"] = json!(now() - 2);
    assert!(
        tokens()
            .verify(Kind::Access, &forge(&hs256(), &c, ACCESS))
            .is_ok(),
        "within leeway"
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let mut c = good_claims();
    c["iss"] = json!("someone-else");
    assert_eq!(refused(&forge(&hs256(), &c, ACCESS)), Refusal::Issuer);
    let mut c = good_claims();
    c["aud"] = json!("another-app");
    assert_eq!(refused(&forge(&hs256(), &c, ACCESS)), Refusal::Audience);
}

#[test]
fn each_required_claim_is_required() {
    for claim in ["sub", "iat", "nbf", "exp", "iss", "aud", "jti", "fam"] {
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove(claim);
        let t = forge(&hs256(), &c, ACCESS);
        assert!(
            tokens().verify(Kind::Access, &t).is_err(),
            "missing {claim}"
        );
    }
}

#[test]
fn time_claims_given_as_strings_or_floats_are_refused() {
    for claim in ["iat", "nbf", "exp"] {
        let n = good_claims()[claim].as_i64().unwrap();
        for bad in [json!(n.to_string()), json!(n as f64 + 0.5), json!(n as f64)] {
            let mut c = good_claims();
            c[claim] = bad.clone();
            let t = forge(&hs256(), &c, ACCESS);
            assert!(
                tokens().verify(Kind::Access, &t).is_err(),
                "{claim} = {bad}"
            );
        }
    }
}

#[test]
fn other_claims_of_the_wrong_type_or_unknown_are_refused() {
    for (claim, bad) in [
        ("sub", json!(7)),
        ("sub", json!("not-a-number")),
        ("jti", json!(1)),
        ("fam", json!(null)),
        ("aud", json!(["chat:access"])),
        ("admin", json!(true)),
    ] {
        let mut c = good_claims();
        c[claim] = bad.clone();
        let t = forge(&hs256(), &c, ACCESS);
        assert!(
            tokens().verify(Kind::Access, &t).is_err(),
            "{claim} = {bad}"
        );
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let good = forge(&hs256(), &good_claims(), ACCESS);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "abc".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}.!!!.{}", parts[0], parts[2]),
        format!("{}.{}.{}", b64(b"{not json"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(b"[1,2,3]"), parts[2]),
        format!("{}.{}.{}", parts[0], b64(b"\xff\xfe"), parts[2]),
    ];
    for t in &cases {
        assert!(tokens().verify(Kind::Access, t).is_err(), "{t}");
    }
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(MAX_TOKEN_BYTES), parts[2]);
    assert_eq!(refused(&huge), Refusal::TooLong);
}

#[test]
fn a_token_issued_in_the_future_or_with_an_odd_subject_is_refused() {
    let mut c = good_claims();
    c["iat"] = json!(now() + 3600);
    assert_eq!(refused(&forge(&hs256(), &c, ACCESS)), Refusal::NotYetValid);
    for sub in ["+7", "07", " 7", "7 "] {
        let mut c = good_claims();
        c["sub"] = json!(sub);
        assert!(
            tokens()
                .verify(Kind::Access, &forge(&hs256(), &c, ACCESS))
                .is_err(),
            "{sub:?}"
        );
    }
}
