//! Token mode end to end: the token cookies, rotation and its reuse rules,
//! every way a token can be refused (each answered with the one generic
//! 401 and never a 500), revocation by logout and by "log out everywhere",
//! pages whose access token expired, and what session mode does with the
//! token endpoints (nothing: 404).
//!
//! Forged tokens are signed with the app's own keys (configured, or read
//! from the data folder where the app generated them), so that each is
//! refused for the one defect it carries, not for its signature.

mod support;

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use support::tokens::{
    b64, now_secs, sign, sign_raw, time_claim, wait_past_second, wait_until_refused,
    with_signature, Forger, Hmacs,
};
use support::{
    assert_logged_in, assert_login_redirect, both_stores, create_room, user, ws_authenticated,
    ws_bearer, Body, Browser, Mode, OriginHeader, Page, Store, TestApp, ACCESS_COOKIE, PASSWORD,
    REFRESH_COOKIE,
};

const WAIT: Duration = Duration::from_secs(5);

both_stores!(
    the_token_cookies_have_their_attributes_and_paths,
    a_token_forged_with_the_right_key_and_claims_is_accepted,
    a_bad_signature_is_refused,
    alg_none_is_refused_in_every_spelling,
    other_algorithms_are_refused,
    keys_named_in_the_header_are_refused,
    expired_and_not_yet_valid_tokens_are_refused,
    a_wrong_issuer_or_audience_is_refused,
    a_token_missing_any_required_claim_is_refused,
    claims_of_the_wrong_type_are_refused,
    a_refresh_token_is_no_access_token_and_the_reverse,
    an_access_token_is_refused_after_logout_even_after_a_restart,
    logging_out_refuses_the_familys_other_access_tokens,
    tokens_issued_before_logging_out_everywhere_are_refused,
    a_refresh_token_reused_after_the_grace_revokes_its_family,
    a_refresh_token_reused_within_the_grace_is_a_concurrent_refresh,
    malformed_tokens_are_refused,
    tokens_in_the_query_string_never_authenticate,
    bearer_requests_need_no_origin_but_cookie_ones_do,
    the_api_logout_needs_a_credential_and_clears_the_cookies,
    a_page_with_an_expired_access_token_refreshes_and_comes_back,
    a_page_without_a_usable_refresh_token_goes_to_login,
    the_token_endpoints_do_not_exist_in_session_mode,
);

/// The app in token mode with the test defaults plus `extra`.
async fn jwt_app(store: Store, extra: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Mode::jwt(store), extra).await
}

/// An access and a refresh token of one family.
#[derive(Debug, Clone)]
struct Pair {
    access: String,
    refresh: String,
}

impl Pair {
    fn from_json(page: &Page) -> Pair {
        page.assert_status(200);
        let body = page.json();
        let text = |key: &str| {
            body[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {body}"))
                .to_owned()
        };
        Pair {
            access: text("accessToken"),
            refresh: text("refreshToken"),
        }
    }
}

/// A client without cookies, as an API client or a script elsewhere.
fn api(app: &TestApp) -> Browser {
    Browser::new(app)
}

/// Logs in through the JSON API: a new family.
async fn login(app: &TestApp, name: &str) -> Pair {
    let page = api(app)
        .post_json(
            "/login",
            json!({"email": format!("{name}@example.com"), "password": PASSWORD}),
        )
        .await;
    Pair::from_json(&page)
}

/// Registers `name` through the form, then logs in through the API.
async fn registered(app: &TestApp, name: &str) -> Pair {
    user(app, name).await;
    login(app, name).await
}

/// `POST /auth/refresh` with the token in the body.
async fn refresh(app: &TestApp, token: &str) -> Page {
    api(app)
        .post_json("/auth/refresh", json!({"refreshToken": token}))
        .await
}

/// Asserts that `/api/me` accepts the token (`what` names it in failures).
async fn assert_accepted(app: &TestApp, token: &str, what: &str) {
    let page = api(app).get_bearer("/api/me", token).await;
    assert_eq!(page.status, 200, "{what}: {}", page.body);
    assert!(page.json()["id"].is_i64(), "{what}: {}", page.body);
}

/// Asserts the generic 401 with an `invalid_token` challenge on `/api/me`.
async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let page = api(app).get_bearer("/api/me", token).await;
    assert_eq!(page.status, 401, "{what}: {}", page.body);
    assert_invalid_token(&page, what);
}

/// Asserts a refused refresh: the generic 401 with `invalid_token`.
async fn assert_refresh_refused(app: &TestApp, token: &str, what: &str) {
    let page = refresh(app, token).await;
    assert_eq!(page.status, 401, "{what}: {}", page.body);
    assert_invalid_token(&page, what);
}

fn assert_invalid_token(page: &Page, what: &str) {
    assert_eq!(
        page.json(),
        json!({"error": "not_authenticated", "message": "Authentication required"}),
        "{what}"
    );
    assert_eq!(
        page.header("www-authenticate"),
        Some("Bearer realm=\"chat\", error=\"invalid_token\""),
        "{what}"
    );
}

/// A forger with the app's keys, starting from the claims of `pair`.
fn forger(app: &TestApp, pair: &Pair) -> Forger {
    Forger::new(app, &pair.access, &pair.refresh)
}

async fn the_token_cookies_have_their_attributes_and_paths(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    for (name, path, same_site) in [
        (ACCESS_COOKIE, "/", "lax"),
        (REFRESH_COOKIE, "/auth", "strict"),
    ] {
        let cookie = alice
            .set_cookie_log
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("registering set no {name}"));
        assert!(!cookie.is_removal(), "{}", cookie.raw);
        assert!(cookie.has_flag("HttpOnly"), "{}", cookie.raw);
        assert!(cookie.has_flag("Secure"), "{}", cookie.raw);
        assert_eq!(cookie.attribute("Path"), Some(path), "{}", cookie.raw);
        assert_eq!(
            cookie.attribute("SameSite").map(str::to_ascii_lowercase),
            Some(same_site.to_owned()),
            "{}",
            cookie.raw
        );
        assert!(cookie.attribute("Domain").is_none(), "{}", cookie.raw);
    }
    assert!(alice.jar.get("chat_session").is_none(), "{:?}", alice.jar);
    // The refresh cookie goes to the token endpoints only.
    let to_pages = alice.jar.header_for("/rooms").unwrap_or_default();
    assert!(!to_pages.contains(REFRESH_COOKIE), "{to_pages}");
    assert!(to_pages.contains(ACCESS_COOKIE), "{to_pages}");
    let to_refresh = alice.jar.header_for("/auth/refresh").unwrap_or_default();
    assert!(to_refresh.contains(REFRESH_COOKIE), "{to_refresh}");

    // Refreshing from the cookie rotates both cookies, with the same
    // attributes, and returns the same tokens in the body.
    let old = (alice.access_token(), alice.refresh_token());
    let page = alice.post_json("/auth/refresh", json!({})).await;
    let pair = Pair::from_json(&page);
    for (name, path) in [(ACCESS_COOKIE, "/"), (REFRESH_COOKIE, "/auth")] {
        let cookie = page
            .set_cookie(name)
            .unwrap_or_else(|| panic!("refresh set no {name}"));
        assert_eq!(cookie.attribute("Path"), Some(path), "{}", cookie.raw);
        assert!(cookie.has_flag("HttpOnly"), "{}", cookie.raw);
    }
    assert_eq!(alice.access_token().as_deref(), Some(pair.access.as_str()));
    assert_eq!(
        alice.refresh_token().as_deref(),
        Some(pair.refresh.as_str())
    );
    assert_ne!((alice.access_token(), alice.refresh_token()), old);
    assert_logged_in(&mut alice, "alice").await;

    // Logging out deletes both, each on its own path.
    let page = alice.logout().await;
    for (name, path) in [(ACCESS_COOKIE, "/"), (REFRESH_COOKIE, "/auth")] {
        let cookie = page
            .set_cookie(name)
            .unwrap_or_else(|| panic!("logout did not delete {name}"));
        assert!(cookie.is_removal(), "{}", cookie.raw);
        assert_eq!(cookie.attribute("Path"), Some(path), "{}", cookie.raw);
    }
    assert!(!alice.has_credential(), "{:?}", alice.jar);
}

async fn a_token_forged_with_the_right_key_and_claims_is_accepted(store: Store) {
    // The control for every refusal below: what the forger makes is good
    // unless a test spoils it.
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    assert_accepted(&app, &forge.access(|_| {}), "a faithful copy").await;
    let fresh = forge.access(|c| {
        c.insert("jti".into(), json!("forged-jti"));
        c.insert("fam".into(), json!("forged-family"));
    });
    assert_accepted(&app, &fresh, "a new jti and family").await;
    let header = json!({"typ": "JWT", "alg": "HS256"});
    let reordered = sign(&header, &forge.access_claims, &forge.access_key);
    assert_accepted(&app, &reordered, "header fields in another order").await;
}

async fn a_bad_signature_is_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let alice = registered(&app, "alice").await;
    let bob = registered(&app, "bob").await;
    let forge = forger(&app, &alice);
    let claims = &forge.access_claims;
    let header = Forger::header();

    let other_key = sign(&header, claims, b"an-attacker-key-of-plenty-of-bytes!!");
    assert_refused(&app, &other_key, "signed with another key").await;
    let refresh_key = sign(&header, claims, &forge.refresh_key);
    assert_refused(&app, &refresh_key, "signed with the refresh key").await;

    // Bob's claims under Alice's signature.
    let alice_signature = alice.access.rsplit('.').next().unwrap_or_default();
    let bob_claims = support::tokens::claims(&bob.access);
    let swapped = with_signature(&header, &bob_claims, alice_signature);
    assert_refused(&app, &swapped, "claims swapped under a signature").await;
    // Alice's token claiming to be Bob.
    let mut claims_as_bob = claims.clone();
    claims_as_bob["sub"] = bob_claims["sub"].clone();
    let tampered = with_signature(&header, &claims_as_bob, alice_signature);
    assert_refused(&app, &tampered, "sub changed, signature kept").await;

    let (signing_input, _) = alice.access.rsplit_once('.').unwrap_or_default();
    for (what, signature) in [
        ("no signature", String::new()),
        ("a zero signature", b64(&[0; 32])),
        ("a truncated signature", alice_signature[..20].to_owned()),
        ("the signature of another token", {
            let (_, sig) = bob.access.rsplit_once('.').unwrap_or_default();
            sig.to_owned()
        }),
    ] {
        assert_refused(&app, &format!("{signing_input}.{signature}"), what).await;
    }
}

async fn alg_none_is_refused_in_every_spelling(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let claims = &forge.access_claims;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let unsigned = with_signature(&header, claims, "");
        assert_refused(&app, &unsigned, &format!("alg {alg}, no signature")).await;
        let signed = sign(&header, claims, &forge.access_key);
        assert_refused(&app, &signed, &format!("alg {alg}, HS256 signature")).await;
    }
    let without_alg = sign(&json!({"typ": "JWT"}), claims, &forge.access_key);
    assert_refused(&app, &without_alg, "no alg at all").await;
}

async fn other_algorithms_are_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let claims = forge.access_claims.to_string();
    // Correctly signed with the app's own key, by another HMAC.
    for (alg, hmac) in [("HS384", Hmacs::Hs384), ("HS512", Hmacs::Hs512)] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        let token = sign_raw(&header, &claims, &forge.access_key, hmac);
        assert_refused(&app, &token, alg).await;
        // And an HS256 signature under a header that says otherwise.
        let token = sign_raw(&header, &claims, &forge.access_key, Hmacs::Hs256);
        assert_refused(&app, &token, &format!("{alg} header, HS256 signature")).await;
    }
    // Public-key algorithms: with the HMAC key as if it were a public key
    // (key confusion), and with junk.
    for alg in ["RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 "] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let token = sign(&header, &forge.access_claims, &forge.access_key);
        assert_refused(&app, &token, alg).await;
        let junk = with_signature(&header, &forge.access_claims, &b64(&[7; 256]));
        assert_refused(&app, &junk, &format!("{alg} with a junk signature")).await;
    }
}

async fn keys_named_in_the_header_are_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let claims = &forge.access_claims;
    let attacker_key = b"the-attackers-own-key-0123456789abcdef";
    let jwk = json!({"kty": "oct", "k": b64(attacker_key), "alg": "HS256"});
    // The attacker's key in the header, and the token signed with it.
    let header = json!({"alg": "HS256", "typ": "JWT", "jwk": jwk});
    assert_refused(&app, &sign(&header, claims, attacker_key), "jwk, own key").await;
    // Any key or key location in the header is refused, even when the token
    // is signed with the app's real key.
    for (what, extra) in [
        ("jwk", json!({"jwk": jwk})),
        ("jku", json!({"jku": "http://127.0.0.1:9/keys.json"})),
        ("x5u", json!({"x5u": "http://127.0.0.1:9/cert.pem"})),
        ("x5c", json!({"x5c": [b64(b"not a certificate")]})),
        ("kid", json!({"kid": "1"})),
        ("kid path", json!({"kid": "../../../../dev/null"})),
        ("kid sql", json!({"kid": "' OR '1'='1"})),
        ("crit", json!({"crit": ["exp"]})),
    ] {
        let mut header = Forger::header();
        for (k, v) in extra.as_object().expect("an object") {
            header[k] = v.clone();
        }
        let token = sign(&header, claims, &forge.access_key);
        assert_refused(&app, &token, &format!("{what}, real key")).await;
        let token = sign(&header, claims, attacker_key);
        assert_refused(&app, &token, &format!("{what}, attacker key")).await;
    }
}

async fn expired_and_not_yet_valid_tokens_are_refused(store: Store) {
    // The default leeway is 5 s; these are far outside it.
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let now = now_secs();
    let expired = forge.access(|c| {
        c.insert("iat".into(), json!(now - 1000));
        c.insert("nbf".into(), json!(now - 1000));
        c.insert("exp".into(), json!(now - 60));
    });
    assert_refused(&app, &expired, "expired a minute ago").await;
    let long_ago = forge.access(|c| {
        c.insert("iat".into(), json!(0));
        c.insert("nbf".into(), json!(0));
        c.insert("exp".into(), json!(1));
    });
    assert_refused(&app, &long_ago, "expired in 1970").await;
    let not_yet = forge.access(|c| {
        c.insert("nbf".into(), json!(now + 60));
    });
    assert_refused(&app, &not_yet, "nbf a minute ahead").await;
    let far_future = forge.access(|c| {
        c.insert("iat".into(), json!(now + 86_400));
        c.insert("nbf".into(), json!(now + 86_400));
        c.insert("exp".into(), json!(now + 2 * 86_400));
    });
    assert_refused(&app, &far_future, "valid only tomorrow").await;

    // Within the leeway, a moment's clock difference is forgiven.
    let just_expired = forge.access(|c| {
        c.insert("exp".into(), json!(now - 1));
    });
    assert_accepted(&app, &just_expired, "expired a second ago, leeway 5 s").await;
    let almost_valid = forge.access(|c| {
        c.insert("nbf".into(), json!(now + 1));
    });
    assert_accepted(&app, &almost_valid, "nbf a second ahead, leeway 5 s").await;
}

async fn a_wrong_issuer_or_audience_is_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let iss = forge.access_claims["iss"].clone();
    let aud = forge.access_claims["aud"].clone();
    let refresh_aud = forge.refresh_claims["aud"].clone();
    assert_ne!(
        aud, refresh_aud,
        "access and refresh tokens share an audience"
    );
    for wrong in [
        json!(""),
        json!("someone-else"),
        json!(format!("{}x", iss.as_str().unwrap_or_default())),
        json!(iss.as_str().unwrap_or_default().to_uppercase()),
        json!([iss.clone()]),
        json!(null),
    ] {
        let token = forge.access(|c| {
            c.insert("iss".into(), wrong.clone());
        });
        assert_refused(&app, &token, &format!("iss {wrong}")).await;
    }
    for wrong in [
        json!(""),
        json!("someone-else"),
        refresh_aud.clone(),
        iss.clone(),
        json!([refresh_aud.clone()]),
        json!(null),
    ] {
        let token = forge.access(|c| {
            c.insert("aud".into(), wrong.clone());
        });
        assert_refused(&app, &token, &format!("aud {wrong}")).await;
    }
}

async fn a_token_missing_any_required_claim_is_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    for claim in ["sub", "iat", "nbf", "exp", "iss", "aud", "jti", "fam"] {
        assert!(
            forge.access_claims.get(claim).is_some(),
            "a genuine token has no {claim}: {}",
            forge.access_claims
        );
        let token = forge.access(|c| {
            c.remove(claim);
        });
        assert_refused(&app, &token, &format!("no {claim}")).await;
        let token = forge.access(|c| {
            c.insert(claim.into(), Value::Null);
        });
        assert_refused(&app, &token, &format!("{claim} null")).await;
    }
    for claim in ["jti", "fam", "sub"] {
        let token = forge.access(|c| {
            c.insert(claim.into(), json!(""));
        });
        assert_refused(&app, &token, &format!("{claim} empty")).await;
    }
    let empty = sign(&Forger::header(), &json!({}), &forge.access_key);
    assert_refused(&app, &empty, "no claims at all").await;
}

async fn claims_of_the_wrong_type_are_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    for claim in ["iat", "nbf", "exp"] {
        let value = forge.access_claims[claim].as_i64().expect("an integer");
        for wrong in [
            json!(value.to_string()),
            json!(value as f64 + 0.5),
            json!(value as f64),
            json!(true),
            json!([value]),
        ] {
            let token = forge.access(|c| {
                c.insert(claim.into(), wrong.clone());
            });
            assert_refused(&app, &token, &format!("{claim} = {wrong}")).await;
        }
    }
    let sub = forge.access_claims["sub"]
        .as_str()
        .expect("sub is a string");
    let id: i64 = sub.parse().expect("sub is a user id");
    for wrong in [
        json!(id),
        json!(format!("{id}.0")),
        json!(format!(" {id}")),
        json!("0"),
        json!("-1"),
        json!("999999"),
        json!("alice"),
    ] {
        let token = forge.access(|c| {
            c.insert("sub".into(), wrong.clone());
        });
        assert_refused(&app, &token, &format!("sub = {wrong}")).await;
    }
    for claim in ["jti", "fam"] {
        let token = forge.access(|c| {
            c.insert(claim.into(), json!(12345));
        });
        assert_refused(&app, &token, &format!("{claim} a number")).await;
    }
}

async fn a_refresh_token_is_no_access_token_and_the_reverse(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    assert_refused(&app, &pair.refresh, "a refresh token as access token").await;
    assert_refresh_refused(&app, &pair.access, "an access token as refresh token").await;
    // The refresh token is still good for what it is.
    let rotated = Pair::from_json(&refresh(&app, &pair.refresh).await);
    assert_accepted(&app, &rotated.access, "the rotated access token").await;

    // A refresh token signed with the right key but never issued (the app
    // keeps the hash of every refresh token it issues).
    let forge = forger(&app, &rotated);
    let never_issued = forge.refresh(|c| {
        c.insert("jti".into(), json!("never-issued"));
    });
    assert_refresh_refused(&app, &never_issued, "a forged refresh token").await;
    let with_access_key = sign(&Forger::header(), &forge.refresh_claims, &forge.access_key);
    assert_refresh_refused(&app, &with_access_key, "refresh claims, access key").await;
    let unsigned = with_signature(&json!({"alg": "none"}), &forge.refresh_claims, "");
    assert_refresh_refused(&app, &unsigned, "alg none refresh token").await;
    // None of these spent or revoked the genuine one.
    Pair::from_json(&refresh(&app, &rotated.refresh).await);
}

async fn an_access_token_is_refused_after_logout_even_after_a_restart(store: Store) {
    let mut app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    assert_accepted(&app, &pair.access, "before logout").await;
    let mut client = api(&app);
    let auth = format!("Bearer {}", pair.access);
    let page = client
        .request(
            Method::POST,
            "/auth/logout",
            &[("Authorization", &auth)],
            Body::Json(json!({"refreshToken": pair.refresh})),
        )
        .await;
    page.assert_status(204);
    assert_refused(&app, &pair.access, "the logged-out access token").await;
    assert_refresh_refused(&app, &pair.refresh, "the logged-out refresh token").await;

    // The deny-list and the revoked family outlive the process.
    app.restart().await;
    assert_refused(&app, &pair.access, "after a restart").await;
    assert_refresh_refused(&app, &pair.refresh, "refresh after a restart").await;
    assert_accepted(&app, &login(&app, "alice").await.access, "a new login").await;
}

async fn logging_out_refuses_the_familys_other_access_tokens(store: Store) {
    let app = jwt_app(store, &[]).await;
    let first = registered(&app, "alice").await;
    let second = Pair::from_json(&refresh(&app, &first.refresh).await);
    let other_family = login(&app, "alice").await;
    assert_eq!(
        support::tokens::claims(&first.access)["fam"],
        support::tokens::claims(&second.access)["fam"],
        "a refresh stays in its family"
    );
    assert_accepted(&app, &second.access, "the second access token").await;

    // Logging out with the first access token alone names the family.
    let auth = format!("Bearer {}", first.access);
    let page = api(&app)
        .request(
            Method::POST,
            "/auth/logout",
            &[("Authorization", &auth)],
            Body::Empty,
        )
        .await;
    page.assert_status(204);
    assert_refused(&app, &first.access, "the access token logged out with").await;
    assert_refused(&app, &second.access, "the family's other access token").await;
    assert_refresh_refused(&app, &second.refresh, "the family's refresh token").await;
    // Another login of the same user is another family: untouched.
    assert_accepted(&app, &other_family.access, "another family").await;
    Pair::from_json(&refresh(&app, &other_family.refresh).await);
}

async fn tokens_issued_before_logging_out_everywhere_are_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut laptop = user(&app, "alice").await;
    let phone = login(&app, "alice").await;
    let forge = forger(&app, &phone);
    // A token of a family the app never saw, issued a little earlier: only
    // the valid-after time can refuse it.
    let now = now_secs();
    let earlier = forge.access(|c| {
        c.insert("iat".into(), json!(now - 10));
        c.insert("nbf".into(), json!(now - 10));
        c.insert("jti".into(), json!("forged-earlier"));
        c.insert("fam".into(), json!("forged-family"));
    });
    assert_accepted(&app, &earlier, "before logging out everywhere").await;

    // Start a fresh second, so that what follows most likely shares it with
    // the valid-after time.
    wait_past_second(now_secs()).await;
    laptop
        .submit("/rooms", "/logout/all", &[])
        .await
        .assert_see_other("/login");
    let again = login(&app, "alice").await;

    assert_refused(&app, &earlier, "issued before valid-after").await;
    assert_refused(&app, &phone.access, "the phone's access token").await;
    assert_refresh_refused(&app, &phone.refresh, "the phone's refresh token").await;
    let later = forge.access(|c| {
        c.insert("iat".into(), json!(now_secs() + 2));
        c.insert("jti".into(), json!("forged-later"));
        c.insert("fam".into(), json!("forged-family"));
    });
    assert_accepted(&app, &later, "issued after valid-after").await;

    // Logging in again right afterwards gives tokens that work and refresh.
    assert_accepted(&app, &again.access, "a login right after").await;
    let rotated = refresh(&app, &again.refresh).await;
    assert_eq!(
        rotated.status, 200,
        "a refresh token issued right after logging out everywhere: {}",
        rotated.body
    );
    assert_accepted(&app, &Pair::from_json(&rotated).access, "its rotation").await;
}

async fn a_refresh_token_reused_after_the_grace_revokes_its_family(store: Store) {
    let app = jwt_app(store, &[("REFRESH_REUSE_GRACE_SECS", "1")]).await;
    let mut laptop = user(&app, "alice").await;
    let room = create_room(&mut laptop, "lobby").await;
    let first = login(&app, "alice").await;
    let second = Pair::from_json(&refresh(&app, &first.refresh).await);
    let mut family_ws = ws_bearer(&app, &second.access, None)
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    let hello = family_ws.next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
    let (mut laptop_ws, _) = ws_authenticated(&app, &laptop).await;

    // Well past the 1 s grace, the spent token comes back: stolen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_refresh_refused(&app, &first.refresh, "the spent refresh token").await;
    let closed = family_ws.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed, (1008, "Revoked".to_owned()));
    assert_refresh_refused(&app, &second.refresh, "the rotated refresh token").await;
    assert_refused(&app, &second.access, "the rotated access token").await;
    assert_refused(&app, &first.access, "the first access token").await;

    // Alice's other family (the laptop) is not the thief's.
    laptop_ws.assert_alive(room).await;
    assert_logged_in(&mut laptop, "alice").await;
}

async fn a_refresh_token_reused_within_the_grace_is_a_concurrent_refresh(store: Store) {
    // Two tabs refresh at once with the same token (default grace: 10 s).
    let app = jwt_app(store, &[]).await;
    let first = registered(&app, "alice").await;
    let one = refresh(&app, &first.refresh).await;
    let two = refresh(&app, &first.refresh).await;
    one.assert_status(200);
    two.assert_status(200);
    let (one, two) = (Pair::from_json(&one), Pair::from_json(&two));
    assert_ne!(one.refresh, two.refresh);
    for (what, token) in [
        ("the first access token", &first.access),
        ("the first rotation", &one.access),
        ("the second rotation", &two.access),
    ] {
        assert_accepted(&app, token, what).await;
    }
    let next = Pair::from_json(&refresh(&app, &two.refresh).await);
    assert_accepted(&app, &next.access, "a rotation of the second").await;
    let next = Pair::from_json(&refresh(&app, &one.refresh).await);
    assert_accepted(&app, &next.access, "a rotation of the first").await;
}

async fn malformed_tokens_are_refused(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let forge = forger(&app, &pair);
    let header = b64(Forger::header().to_string().as_bytes());
    let claims = b64(forge.access_claims.to_string().as_bytes());
    let sig = |input: &str| {
        b64(&support::tokens::mac(
            Hmacs::Hs256,
            &forge.access_key,
            input.as_bytes(),
        ))
    };
    let signed = |h: &str, c: &str| format!("{h}.{c}.{}", sig(&format!("{h}.{c}")));
    let not_json = b64(b"this is not JSON");
    let huge_claims = {
        let mut c = forge.access_claims.clone();
        c["jti"] = json!("x".repeat(10 * 1024));
        b64(c.to_string().as_bytes())
    };
    let cases = [
        ("one part", "abc".to_owned()),
        ("two parts", format!("{header}.{claims}")),
        ("four parts", format!("{}.extra", pair.access)),
        ("only dots", "..".to_owned()),
        ("empty parts", format!("..{}", sig(".."))),
        (
            "bad base64",
            format!("{header}.!!!$$$.{}", sig(&format!("{header}.!!!$$$"))),
        ),
        ("header not JSON", signed(&not_json, &claims)),
        ("claims not JSON", signed(&header, &not_json)),
        ("claims a JSON string", signed(&header, &b64(b"\"alice\""))),
        ("claims a JSON array", signed(&header, &b64(b"[1,2,3]"))),
        ("header a JSON array", signed(&b64(b"[\"HS256\"]"), &claims)),
        ("10 KB of claims, signed", signed(&header, &huge_claims)),
        (
            "10 KB of junk",
            format!(
                "{}.{}.{}",
                "a".repeat(5000),
                "b".repeat(5000),
                "c".repeat(200)
            ),
        ),
        ("doubled", format!("{}{}", pair.access, pair.access)),
    ];
    for (what, token) in &cases {
        assert_refused(&app, token, what).await;
    }
    // Authorization headers that carry no token at all are refused too,
    // never passed over for some other credential.
    for header in [
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6cHc=",
        "Token abc",
        "bearer",
    ] {
        let page = api(&app)
            .request(
                Method::GET,
                "/api/me",
                &[("Authorization", header)],
                Body::Empty,
            )
            .await;
        assert_eq!(page.status, 401, "{header}: {}", page.body);
        page.assert_generic_401();
    }
    // The scheme's case does not matter.
    let page = api(&app)
        .request(
            Method::GET,
            "/api/me",
            &[("Authorization", &format!("bEaReR {}", pair.access))],
            Body::Empty,
        )
        .await;
    page.assert_status(200);
    assert_accepted(&app, &pair.access, "the genuine token, still").await;
}

async fn tokens_in_the_query_string_never_authenticate(store: Store) {
    let app = jwt_app(store, &[]).await;
    let pair = registered(&app, "alice").await;
    let mut client = api(&app);
    for name in [
        "access_token",
        "token",
        "jwt",
        "accessToken",
        "authorization",
    ] {
        let page = client.get(&format!("/api/me?{name}={}", pair.access)).await;
        page.assert_generic_401();
        assert_eq!(
            page.header("www-authenticate"),
            Some("Bearer realm=\"chat\""),
            "{name}: nothing was presented"
        );
        let page = client.get(&format!("/rooms?{name}={}", pair.access)).await;
        assert_eq!(page.status, 303, "{name}");
        assert!(
            page.location().starts_with("/login"),
            "{name}: {}",
            page.location()
        );
    }
    // Nor on the socket: it opens unauthenticated and waits.
    let url = format!("{}?access_token={}", app.ws_url(), pair.access);
    let mut ws = support::ws::ws_open_at(&url, None, &[], None)
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    ws.send_json(json!({"type": "join", "roomId": 1})).await;
    let frame = ws.next_json(WAIT).await;
    assert_eq!(frame["code"], "not_authenticated", "{frame}");
}

async fn bearer_requests_need_no_origin_but_cookie_ones_do(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let pair = login(&app, "alice").await;

    // No cookies: neither Origin nor fetch metadata is needed.
    let mut client = api(&app);
    client.origin_header = OriginHeader::Absent;
    let page = client
        .post_json("/auth/refresh", json!({"refreshToken": pair.refresh}))
        .await;
    let rotated = Pair::from_json(&page);
    let auth = format!("Bearer {}", rotated.access);
    let page = client
        .request(
            Method::POST,
            "/auth/logout",
            &[("Authorization", &auth)],
            Body::Json(json!({"refreshToken": rotated.refresh})),
        )
        .await;
    page.assert_status(204);

    // With the refresh cookie, another site may not refresh nor log out.
    for origin in [
        OriginHeader::Other("http://evil.example".to_owned()),
        OriginHeader::Absent,
    ] {
        alice.origin_header = origin.clone();
        let page = alice.post_json("/auth/refresh", json!({})).await;
        assert_eq!(page.status, 403, "{origin:?}: {}", page.body);
        let page = alice.post_json("/auth/logout", json!({})).await;
        assert_eq!(page.status, 403, "{origin:?}: {}", page.body);
    }
    alice.origin_header = OriginHeader::App;
    assert_logged_in(&mut alice, "alice").await;
    // The JSON endpoints want JSON.
    let page = alice
        .request(
            Method::POST,
            "/auth/refresh",
            &[],
            Body::Raw {
                content_type: "text/plain".to_owned(),
                bytes: b"{}".to_vec(),
            },
        )
        .await;
    page.assert_status(415);
}

async fn the_api_logout_needs_a_credential_and_clears_the_cookies(store: Store) {
    let app = jwt_app(store, &[]).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut ws = support::ws_joined(&app, &alice, room).await;

    let page = api(&app).post_json("/auth/logout", json!({})).await;
    page.assert_generic_401();
    let page = api(&app)
        .post_json("/auth/logout", json!({"refreshToken": "not-a-token"}))
        .await;
    page.assert_generic_401();

    // The browser's own cookies: the refresh cookie (Path=/auth) and the
    // access cookie both reach /auth/logout.
    let saved = alice.fork();
    let page = alice.post_json("/auth/logout", json!({})).await;
    page.assert_status(204);
    assert!(!alice.has_credential(), "{:?}", alice.jar);
    let closed = ws.expect_close(Duration::from_secs(1)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
    let mut replay = saved;
    support::assert_logged_out(&mut replay).await;
    let page = replay.post_json("/auth/refresh", json!({})).await;
    page.assert_generic_401();
}

async fn a_page_with_an_expired_access_token_refreshes_and_comes_back(store: Store) {
    // Tokens live 1 to 2 s here: each step that needs one is taken right
    // after the token was issued.
    let app = jwt_app(
        store,
        &[("ACCESS_TOKEN_SECS", "1"), ("JWT_LEEWAY_SECS", "0")],
    )
    .await;
    let mut alice = user(&app, "alice").await;
    let path = "/rooms";
    let old = alice.access_token().expect("an access cookie");
    wait_until_refused(&app, &old).await;

    let page = alice.get(path).await;
    page.assert_see_other("/auth/refresh?next=%2Frooms");
    let back = alice.get(page.location()).await;
    back.assert_see_other(path);
    let new = alice.access_token().expect("a new access cookie");
    assert_ne!(new, old);
    assert!(time_claim(&new, "exp") > time_claim(&old, "exp"));
    let page = alice.get(path).await;
    page.assert_status(200);
    assert!(page.body.contains("alice"), "{}", page.body);

    // The API does not redirect: it answers 401, and the client refreshes.
    wait_until_refused(&app, &new).await;
    let page = alice.get("/api/me").await;
    page.assert_generic_401();
    Pair::from_json(&alice.post_json("/auth/refresh", json!({})).await);
    alice.get("/api/me").await.assert_status(200);
}

async fn a_page_without_a_usable_refresh_token_goes_to_login(store: Store) {
    let app = jwt_app(
        store,
        &[
            ("ACCESS_TOKEN_SECS", "1"),
            ("JWT_LEEWAY_SECS", "0"),
            ("REFRESH_REUSE_GRACE_SECS", "1"),
        ],
    )
    .await;
    let mut alice = user(&app, "alice").await;
    let access = alice.access_token().expect("an access cookie");
    wait_until_refused(&app, &access).await;

    // Without the refresh cookie.
    let mut no_refresh = alice.fork();
    no_refresh.jar.remove(REFRESH_COOKIE);
    let page = no_refresh.get("/rooms").await;
    page.assert_see_other("/auth/refresh?next=%2Frooms");
    // A navigation from another site arrives without the SameSite=Strict
    // refresh cookie: one page of ours sends the browser on again, and
    // only then, still without it, to the login page.
    let page = no_refresh.get(page.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let again = "/auth/refresh?next=%2Frooms&#38;bounced=1";
    assert!(
        page.body.contains(&format!("content=\"0;url={again}\"")),
        "{}",
        page.body
    );
    assert!(
        no_refresh.has_credential(),
        "cookies cleared before the second pass"
    );
    let page = no_refresh
        .get("/auth/refresh?next=%2Frooms&bounced=1")
        .await;
    assert_login_redirect(&page, "/rooms");
    assert!(!no_refresh.has_credential(), "{:?}", no_refresh.jar);

    // With a refresh cookie that was already spent, long ago: the family is
    // revoked and this browser goes to the login page too.
    let mut spent = alice.fork();
    let page = alice.get("/rooms").await;
    let page = alice.get(page.location()).await;
    page.assert_see_other("/rooms");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let page = spent.get("/auth/refresh?next=%2Frooms").await;
    assert_login_redirect(&page, "/rooms");
    assert!(!spent.has_credential(), "{:?}", spent.jar);
    // The family is revoked: the browser that rotated it is out too.
    let page = alice.get("/api/me").await;
    assert_eq!(page.status, 401, "{}", page.body);

    // A `next` that leads elsewhere is not followed.
    let mut fresh = Browser::new(&app);
    fresh.login("alice@example.com", PASSWORD).await;
    wait_until_refused(&app, &fresh.access_token().expect("access")).await;
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let page = fresh
            .get(&format!(
                "/auth/refresh?next={}",
                support::encode_component(next)
            ))
            .await;
        page.assert_see_other("/rooms");
    }
}

async fn the_token_endpoints_do_not_exist_in_session_mode(store: Store) {
    let app = TestApp::spawn(Mode::session(store)).await;
    let mut alice = user(&app, "alice").await;
    let page = alice.post_json("/auth/refresh", json!({})).await;
    page.assert_status(404);
    let page = alice
        .post_json("/auth/refresh", json!({"refreshToken": "x"}))
        .await;
    page.assert_status(404);
    let page = alice.get("/auth/refresh?next=%2Frooms").await;
    page.assert_status(404);
    let page = alice.post_json("/auth/logout", json!({})).await;
    page.assert_status(404);
    assert_logged_in(&mut alice, "alice").await;
    // A Bearer header means nothing in session mode.
    let page = api(&app).get_bearer("/api/me", "anything").await;
    page.assert_generic_401();
}

/// A form posted from a page shown before its access token expired: the
/// server sends it through `/auth/refresh` and back as the same POST (307),
/// so logging out logs out and a message typed without JavaScript is kept.
mod expired_access_on_form_posts {
    use super::*;

    /// Follows redirects as a browser does (at most 6): a 303 with a GET,
    /// a 307 with the same POST and fields. Returns the last answer.
    async fn follow(browser: &mut Browser, mut page: Page, fields: &[(&str, &str)]) -> Page {
        for _ in 0..6 {
            let next = match page.status {
                303 | 307 => page.location().to_owned(),
                _ => break,
            };
            page = if page.status == 307 {
                browser.post_form(&next, fields).await
            } else {
                browser.get(&next).await
            };
        }
        page
    }

    #[actix_rt::test]
    async fn logging_out_with_an_expired_access_token_logs_out() {
        support::run(async {
            let app = jwt_app(
                Store::Embedded,
                &[("ACCESS_TOKEN_SECS", "2"), ("JWT_LEEWAY_SECS", "0")],
            )
            .await;
            let mut alice = user(&app, "alice").await;
            let csrf = alice.get("/rooms").await.csrf();
            wait_until_refused(&app, &alice.access_token().expect("access")).await;
            // The "Log out" button of a page shown before the token expired.
            let fields = [("csrf_token", csrf.as_str())];
            let page = alice.post_form("/logout", &fields).await;
            let page = follow(&mut alice, page, &fields).await;
            assert_eq!(page.status, 200, "ended on: {} {}", page.status, page.body);
            assert!(!alice.has_credential(), "cookies kept: {:?}", alice.jar);
            let page = alice.get("/rooms").await;
            assert_eq!(page.status, 303, "still logged in after logging out");
            assert!(page.location().starts_with("/login"), "{}", page.location());
        })
        .await;
    }

    #[actix_rt::test]
    async fn logging_out_everywhere_with_an_expired_access_token_logs_out() {
        support::run(async {
            let app = jwt_app(
                Store::Embedded,
                &[("ACCESS_TOKEN_SECS", "2"), ("JWT_LEEWAY_SECS", "0")],
            )
            .await;
            let mut laptop = user(&app, "alice").await;
            let csrf = laptop.get("/rooms").await.csrf();
            wait_until_refused(&app, &laptop.access_token().expect("access")).await;
            let phone = login(&app, "alice").await;
            let fields = [("csrf_token", csrf.as_str())];
            let page = laptop.post_form("/logout/all", &fields).await;
            let page = follow(&mut laptop, page, &fields).await;
            assert_refresh_refused(&app, &phone.refresh, "the phone's refresh token").await;
            assert_eq!(page.status, 200, "ended on an error: {}", page.body);
        })
        .await;
    }

    #[actix_rt::test]
    async fn posting_with_an_expired_access_token_ends_on_the_room_page() {
        support::run(async {
            let app = jwt_app(
                Store::Embedded,
                &[("ACCESS_TOKEN_SECS", "2"), ("JWT_LEEWAY_SECS", "0")],
            )
            .await;
            let mut alice = user(&app, "alice").await;
            let room = create_room(&mut alice, "lobby").await;
            let room_path = format!("/rooms/{room}");
            let csrf = alice.get(&room_path).await.csrf();
            wait_until_refused(&app, &alice.access_token().expect("access")).await;
            let fields = [
                ("body", "typed before the token expired"),
                ("csrf_token", csrf.as_str()),
            ];
            let page = alice
                .post_form(&format!("{room_path}/messages"), &fields)
                .await;
            let page = follow(&mut alice, page, &fields).await;
            assert_eq!(page.status, 200, "ended on an error: {}", page.body);
            assert!(
                page.body.contains("lobby"),
                "not the room page: {}",
                page.body
            );
            assert!(
                page.body.contains("typed before the token expired"),
                "the message was lost"
            );
        })
        .await;
    }
}
