//! Checks of the test harness itself, so that a failing behaviour test
//! points at the app and not at the tools: HTML reading, the cookie jar
//! (paths included), token reading and forging, and the throwaway Redis
//! server with its RESP client.

mod support;

use support::cookies::{Jar, SetCookie};
use support::html::{attribute, csrf_from, input_value, unescape};
use support::redis::Reply;
use support::RedisServer;

#[test]
fn finds_the_csrf_token_whatever_the_attribute_order() {
    let page = r#"<form><input type="hidden" value="a&amp;b" name="csrf_token"></form>"#;
    assert_eq!(csrf_from(page), "a&b");
    let page = r#"<input name=csrf_token value='x.y' /><input name="csrf_token" value="z">"#;
    assert_eq!(csrf_from(page), "x.y");
}

#[test]
fn ignores_tags_that_only_start_alike() {
    let page = r#"<inputs name="csrf_token" value="no"><input name="csrf_token" value="yes">"#;
    assert_eq!(input_value(page, "csrf_token").as_deref(), Some("yes"));
}

#[test]
fn reads_bare_and_quoted_attributes() {
    let tag = r#"<script defer src="/static/app.js?v=1&amp;x">"#;
    assert_eq!(attribute(tag, "defer").as_deref(), Some(""));
    assert_eq!(
        attribute(tag, "src").as_deref(),
        Some("/static/app.js?v=1&x")
    );
    assert_eq!(attribute(tag, "type"), None);
}

#[test]
fn unescapes_named_and_numeric_entities() {
    assert_eq!(
        unescape("&lt;b&#62;&#x27;&quot;&unknown; & x"),
        "<b>'\"&unknown; & x"
    );
}

#[test]
fn the_jar_keeps_sets_and_honours_removals() {
    let mut jar = Jar::default();
    jar.apply("chat_session=abc; HttpOnly; Secure; SameSite=Lax; Path=/");
    jar.apply("chat_csrf=n1; Path=/");
    assert_eq!(
        jar.header().as_deref(),
        Some("chat_csrf=n1; chat_session=abc")
    );
    jar.apply("chat_session=; Max-Age=0; Path=/");
    assert_eq!(jar.get("chat_session"), None);
    jar.apply("chat_csrf=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    assert!(jar.is_empty());
    jar.apply("later=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT");
    assert_eq!(jar.get("later"), Some("1"));
}

#[test]
fn the_jar_sends_a_cookie_only_to_paths_under_its_own() {
    let mut jar = Jar::default();
    jar.apply_from("/login", "chat_access=a; HttpOnly; Path=/");
    jar.apply_from(
        "/login",
        "chat_refresh=r; HttpOnly; SameSite=Strict; Path=/auth",
    );
    assert_eq!(jar.header_for("/rooms").as_deref(), Some("chat_access=a"));
    assert_eq!(
        jar.header_for("/authority").as_deref(),
        Some("chat_access=a")
    );
    assert_eq!(jar.header_for("/").as_deref(), Some("chat_access=a"));
    for path in ["/auth", "/auth/refresh", "/auth/refresh?next=%2Frooms"] {
        assert_eq!(
            jar.header_for(path).as_deref(),
            Some("chat_refresh=r; chat_access=a"),
            "{path}"
        );
    }
    assert_eq!(jar.path_of("chat_refresh"), Some("/auth"));

    // A deletion removes the cookie of its own path only.
    jar.apply("chat_refresh=; Path=/; Max-Age=0");
    assert_eq!(jar.get("chat_refresh"), Some("r"));
    jar.apply_from("/logout", "chat_refresh=; Path=/auth; Max-Age=0");
    assert_eq!(jar.get("chat_refresh"), None);
    assert_eq!(
        jar.header_for("/auth/refresh").as_deref(),
        Some("chat_access=a")
    );

    // Without a Path, the default is the request path's folder.
    jar.apply_from("/a/b/c?x=/y", "d=1");
    assert_eq!(jar.path_of("d"), Some("/a/b"));
    jar.apply_from("/top", "e=1");
    assert_eq!(jar.path_of("e"), Some("/"));
    assert!(jar.header_for("/a/b/z").unwrap_or_default().contains("d=1"));
    assert!(!jar.header_for("/a/bc").unwrap_or_default().contains("d=1"));
}

#[test]
fn forged_tokens_read_back_and_verify_like_the_apps() {
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use support::tokens::{b64, decode, sign, sign_raw, Hmacs};

    let key = b"a-key-of-at-least-thirty-two-bytes!!";
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({"sub": "7", "exp": 12});
    let token = sign(&header, &claims, key);
    assert_eq!(decode(&token), (header.clone(), claims.clone()));
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    assert_eq!(signature, b64(&mac.finalize().into_bytes()));
    // The other HMACs make longer signatures over the same input.
    let h = header.to_string();
    let c = claims.to_string();
    let sig_len = |t: String| t.rsplit('.').next().map_or(0, str::len);
    assert_eq!(sig_len(sign_raw(&h, &c, key, Hmacs::Hs256)), 43);
    assert_eq!(sig_len(sign_raw(&h, &c, key, Hmacs::Hs384)), 64);
    assert_eq!(sig_len(sign_raw(&h, &c, key, Hmacs::Hs512)), 86);
}

#[test]
fn set_cookie_attributes_are_read_without_regard_to_case() {
    let cookie = SetCookie::parse("id=v; httponly; samesite=lax; path=/; max-age=60");
    assert!(cookie.has_flag("HttpOnly"));
    assert_eq!(cookie.attribute("SameSite"), Some("lax"));
    assert_eq!(cookie.attribute("Path"), Some("/"));
    assert!(!cookie.is_removal());
    assert!(!cookie.has_flag("Secure"));
}

#[test]
fn a_throwaway_redis_answers_on_its_unix_socket_only() {
    let mut redis = RedisServer::start();
    assert!(redis.url().starts_with("redis+unix:///"));
    assert_eq!(redis.command(&["SET", "session:a", "1"]), "OK");
    assert_eq!(redis.command(&["SET", "other", "2"]), "OK");
    assert_eq!(redis.keys("session:*"), ["session:a"]);
    assert_eq!(redis.query(&["INCR", "other"]), Reply::Integer(3));
    assert_eq!(redis.command(&["GET", "missing"]), "(nil)");
    assert_eq!(redis.command(&["CONFIG", "GET", "port"]), "port\n0");
    assert!(matches!(redis.query(&["NOSUCHCOMMAND"]), Reply::Error(_)));

    redis.restart();
    assert!(
        redis.keys("*").is_empty(),
        "a restarted server starts empty"
    );
}
