//! Limits on what one user or one address can push through an instance:
//! messages per user, shared by all of the user's sockets and the form, and
//! sockets waiting to authenticate per address (token mode).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::http::Method;
use serde_json::{json, Value};
use support::*;

all_modes!(
    a_users_sockets_share_one_message_limit,
    a_socket_that_keeps_posting_over_the_users_limit_is_closed,
    the_form_post_shares_the_limit_and_answers_429,
    authenticated_sockets_never_count_as_waiting,
    the_limits_follow_their_settings,
);

both_stores!(
    sockets_waiting_to_authenticate_are_limited_per_address,
    another_address_behind_a_trusted_proxy_is_not_affected,
    a_forged_forwarded_for_from_an_untrusted_peer_gains_no_sockets,
    one_ipv6_64_shares_the_waiting_socket_limit,
);

const WAIT: Duration = Duration::from_secs(10);
/// How long a socket is watched to show that nothing more arrives.
const QUIET: Duration = Duration::from_millis(500);
/// Messages each of two sockets sends: under one socket's burst of 30
/// frames (with its join), over the user's burst of 40 together.
const PER_SOCKET: usize = 25;
/// Sockets one address may have waiting to authenticate.
const PENDING_LIMIT: usize = 16;

/// Sends `count` messages tagged `tag` on `ws` without waiting for answers.
async fn send_burst(ws: &mut WsConn, room: i64, tag: &str, count: usize) {
    for i in 0..count {
        let id = format!("{tag}{i}");
        ws.send_json(json!({"type": "message", "roomId": room, "body": id, "clientId": id}))
            .await;
    }
}

/// Reads the answers to `count` sent messages: the bodies accepted (own
/// copies carry their `clientId`) and the error frames. Other users'
/// broadcasts in between are skipped.
async fn answers(ws: &mut WsConn, count: usize) -> (Vec<String>, Vec<Value>) {
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    while accepted.len() + refused.len() < count {
        let frame = ws.next_json(WAIT).await;
        match frame["type"].as_str() {
            Some("message") if frame["clientId"].is_string() => {
                accepted.push(frame["body"].as_str().unwrap().to_owned());
            }
            Some("message") => {}
            Some("error") => refused.push(frame),
            _ => panic!("unexpected frame: {frame}"),
        }
    }
    (accepted, refused)
}

/// The bodies of a room's stored messages.
async fn stored(browser: &mut Browser, room: i64) -> BTreeSet<String> {
    history(browser, room, "?limit=100")
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

/// The room form's post, with a CSRF token read once before: no page load
/// between posts, so that they come as fast as a script would send them.
async fn form_post(browser: &mut Browser, room: i64, body: &str, csrf: &str) -> Page {
    let fields = vec![
        ("body".to_owned(), body.to_owned()),
        ("csrf_token".to_owned(), csrf.to_owned()),
    ];
    let path = format!("/rooms/{room}/messages");
    browser
        .request(Method::POST, &path, &[], Body::Form(fields))
        .await
}

async fn a_users_sockets_share_one_message_limit(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut ann = user(&app, "ann").await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut ann, "flood").await;
    let mut watcher = ws_joined(&app, &bob, room).await;
    let mut first = ws_joined(&app, &ann, room).await;
    let mut second = ws_joined(&app, &ann, room).await;

    send_burst(&mut first, room, "a", PER_SOCKET).await;
    send_burst(&mut second, room, "b", PER_SOCKET).await;
    let (mut accepted, mut refused) = answers(&mut first, PER_SOCKET).await;
    let (more_accepted, more_refused) = answers(&mut second, PER_SOCKET).await;
    accepted.extend(more_accepted);
    refused.extend(more_refused);

    assert!(
        !refused.is_empty(),
        "50 messages at once passed the user's limit"
    );
    for frame in &refused {
        assert_eq!(frame["code"], "rate_limited", "{frame}");
    }
    let accepted: BTreeSet<String> = accepted.into_iter().collect();
    assert_eq!(accepted.len() + refused.len(), 2 * PER_SOCKET);

    // The other member got exactly the accepted ones, and the store holds
    // exactly those.
    let mut delivered = BTreeSet::new();
    while delivered.len() < accepted.len() {
        let frame = watcher.next_of_type("message", WAIT).await;
        delivered.insert(frame["body"].as_str().unwrap().to_owned());
    }
    watcher.expect_silence(QUIET).await;
    assert_eq!(delivered, accepted);
    assert_eq!(stored(&mut bob, room).await, accepted);

    // Both sockets are still open; another user is not limited.
    first.assert_alive(room).await;
    second.assert_alive(room).await;
    watcher
        .send_json(json!({"type": "message", "roomId": room, "body": "bob here", "clientId": "b1"}))
        .await;
    let own = watcher.next_of_type("message", WAIT).await;
    assert_eq!(own["clientId"], "b1", "{own}");

    // After a pause (two messages a second come back), ann posts again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    first
        .send_json(json!({"type": "message", "roomId": room, "body": "later", "clientId": "later"}))
        .await;
    let (accepted, refused) = answers(&mut first, 1).await;
    assert_eq!((accepted, refused), (vec!["later".to_owned()], vec![]));
}

async fn a_socket_that_keeps_posting_over_the_users_limit_is_closed(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut ann = user(&app, "ann").await;
    let room = create_room(&mut ann, "abuse").await;
    let mut first = ws_joined(&app, &ann, room).await;
    let mut second = ws_joined(&app, &ann, room).await;
    let mut third = ws_joined(&app, &ann, room).await;
    // Two sockets use up the user's burst...
    send_burst(&mut first, room, "a", PER_SOCKET).await;
    let (mut accepted, _) = answers(&mut first, PER_SOCKET).await;
    send_burst(&mut second, room, "b", PER_SOCKET).await;
    let (more, refused) = answers(&mut second, PER_SOCKET).await;
    accepted.extend(more);
    assert!(!refused.is_empty(), "the user's burst was not used up");
    // ...and a third keeps going, each frame under its own limit of 30.
    send_burst(&mut third, room, "c", 28).await;
    let mut errors = 0;
    let closed = loop {
        match third.next_incoming(WAIT).await {
            Some(Incoming::Json(frame)) if frame["type"] == "error" => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                errors += 1;
            }
            Some(Incoming::Json(frame)) if frame["clientId"].is_string() => {
                accepted.push(frame["body"].as_str().unwrap().to_owned());
            }
            Some(Incoming::Json(_)) => {}
            Some(Incoming::Closed(code, reason)) => break (code, reason),
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    assert_eq!(closed, (1008, "Rate limited".to_owned()));
    assert!(errors >= 19, "closed after only {errors} refusals");
    // The user's other sockets stay open, and only what was accepted is
    // stored.
    first.assert_alive(room).await;
    second.assert_alive(room).await;
    let accepted: BTreeSet<String> = accepted.into_iter().collect();
    assert_eq!(stored(&mut ann, room).await, accepted);
}

async fn the_form_post_shares_the_limit_and_answers_429(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut ann = user(&app, "ann").await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut ann, "forms").await;
    let mut socket = ws_joined(&app, &ann, room).await;
    let csrf = ann.get(&format!("/rooms/{room}")).await.csrf();
    // Form posts until the user's limit answers.
    let mut posted = BTreeSet::new();
    let refusal = loop {
        let body = format!("form {}", posted.len());
        let page = form_post(&mut ann, room, &body, &csrf).await;
        match page.status {
            303 => {
                posted.insert(body);
            }
            429 => break page,
            other => panic!("form post answered {other}: {}", page.body),
        }
        assert!(posted.len() < 100, "100 form posts were never limited");
    };
    let wait: u64 = refusal
        .header("retry-after")
        .expect("429 without Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert!(
        refusal.body.contains("You are sending messages too fast"),
        "{}",
        refusal.body
    );
    let refused_body = format!("form {}", posted.len());
    assert!(
        refusal.body.contains(&refused_body),
        "the refused text is kept in the form"
    );

    // The same user's socket is under the same limit.
    send_burst(&mut socket, room, "s", 5).await;
    let (from_socket, refused) = answers(&mut socket, 5).await;
    assert!(!refused.is_empty(), "the socket escaped the user's limit");
    assert!(refused.iter().all(|f| f["code"] == "rate_limited"));

    // Nothing refused was stored.
    let mut expected = posted.clone();
    expected.extend(from_socket);
    assert_eq!(stored(&mut bob, room).await, expected);

    // Another user posts as usual.
    post_message(&mut bob, room, "bob's turn")
        .await
        .assert_status(303);

    // After the wait it asked for, ann posts again.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    form_post(&mut ann, room, "after the wait", &csrf)
        .await
        .assert_status(303);
    assert!(stored(&mut bob, room).await.contains("after the wait"));
}

async fn authenticated_sockets_never_count_as_waiting(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let mut open = Vec::new();
    for _ in 0..PENDING_LIMIT + 4 {
        open.push(ws_authenticated(&app, &ann).await.0);
    }
    let room = {
        let mut ann = ann.fork();
        create_room(&mut ann, "still fine").await
    };
    open.last_mut().unwrap().assert_alive(room).await;
}

/// Opens a socket without a credential, from the app's origin, with extra
/// headers; an upgrade refused is its status.
async fn waiting(app: &TestApp, headers: &[(&str, &str)]) -> Result<WsConn, u16> {
    ws_open(app, None, headers, Some(&app.origin())).await
}

/// Opens `PENDING_LIMIT` sockets without a credential.
async fn fill(app: &TestApp, headers: &[(&str, &str)]) -> Vec<WsConn> {
    let mut open = Vec::new();
    for n in 0..PENDING_LIMIT {
        let ws = waiting(app, headers)
            .await
            .unwrap_or_else(|status| panic!("waiting socket {n} refused with {status}"));
        open.push(ws);
    }
    open
}

/// Token mode with time enough to authenticate for the whole test.
async fn jwt_app(store: Store, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![("WS_AUTH_TIMEOUT_SECS", "60")];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(Mode::jwt(store), &settings).await
}

/// Retries an upgrade without credential until one is accepted.
async fn accepted_soon(app: &TestApp, headers: &[(&str, &str)]) -> WsConn {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match waiting(app, headers).await {
            Ok(ws) => return ws,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("upgrade refused with {status}"),
        }
    }
}

async fn sockets_waiting_to_authenticate_are_limited_per_address(store: Store) {
    let app = jwt_app(store, &[]).await;
    let ann = user(&app, "ann").await;
    let mut open = fill(&app, &[]).await;
    assert_eq!(waiting(&app, &[]).await.err(), Some(429));

    // The refusal comes before the upgrade, as a JSON API error.
    let page = Browser::new(&app).get("/ws").await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert_eq!(page.json()["error"], "too_many_sockets", "{}", page.body);
    assert!(page.header("retry-after").is_some());

    // A socket with a credential at the upgrade is not held up.
    ws_authenticated(&app, &ann).await;

    // One closes: a new one may wait in its place.
    drop(open.pop());
    open.push(accepted_soon(&app, &[]).await);
    assert_eq!(waiting(&app, &[]).await.err(), Some(429));

    // One authenticates: it no longer counts.
    let token = ann.access_token().expect("an access token");
    open[0].authenticate(&token).await;
    let hello = open[0].next_json(WAIT).await;
    assert_eq!(hello["type"], "authenticated", "{hello}");
    let mut fresh = waiting(&app, &[])
        .await
        .unwrap_or_else(|status| panic!("upgrade refused with {status} after one authenticated"));
    fresh.authenticate(&token).await;
    assert_eq!(fresh.next_json(WAIT).await["type"], "authenticated");
}

async fn another_address_behind_a_trusted_proxy_is_not_affected(store: Store) {
    let app = jwt_app(store, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let crowd = [("X-Forwarded-For", "203.0.113.5")];
    let _open = fill(&app, &crowd).await;
    assert_eq!(waiting(&app, &crowd).await.err(), Some(429));
    let other = [("X-Forwarded-For", "198.51.100.7")];
    assert!(
        waiting(&app, &other).await.is_ok(),
        "another address refused"
    );
}

async fn a_forged_forwarded_for_from_an_untrusted_peer_gains_no_sockets(store: Store) {
    // No trusted proxies: the header is the client's word, and ignored.
    let app = jwt_app(store, &[]).await;
    let mut open = Vec::new();
    for n in 0..PENDING_LIMIT {
        let forged = format!("203.0.113.{n}");
        let ws = waiting(&app, &[("X-Forwarded-For", &forged)])
            .await
            .unwrap_or_else(|status| panic!("waiting socket {n} refused with {status}"));
        open.push(ws);
    }
    let refused = waiting(&app, &[("X-Forwarded-For", "192.0.2.99")]).await;
    assert_eq!(
        refused.err(),
        Some(429),
        "a new forged address must not open more"
    );
}

/// `USER_MESSAGE_RATE` and `SOCKET_FRAME_RATE` replace the built-in
/// numbers: a user allowed 3 messages at once gets the 4th refused, and a
/// socket allowed 2 frames refuses the 3rd.
async fn the_limits_follow_their_settings(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("USER_MESSAGE_RATE", "3/0.01"),
            ("SOCKET_FRAME_RATE", "6/0.01"),
        ],
    )
    .await;
    let mut ann = user(&app, "ann").await;
    let room = create_room(&mut ann, "lobby").await;
    let mut ws = ws_joined(&app, &ann, room).await;
    send_burst(&mut ws, room, "m", 4).await;
    let (accepted, refused) = answers(&mut ws, 4).await;
    assert_eq!(accepted, ["m0", "m1", "m2"]);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["code"], "rate_limited");
    // The join and four messages used five of six frames; the seventh
    // frame is over the socket's own limit whatever it is.
    ws.send_json(json!({"type": "leave", "roomId": room})).await;
    ws.send_json(json!({"type": "leave", "roomId": room})).await;
    let mut codes = Vec::new();
    for _ in 0..2 {
        let frame = ws.next_json(WAIT).await;
        codes.push(frame["code"].as_str().unwrap_or("").to_owned());
    }
    assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
}

/// Addresses in one IPv6 /64 share one allowance of waiting sockets: a
/// client handed the whole /64 gains nothing by changing address.
async fn one_ipv6_64_shares_the_waiting_socket_limit(store: Store) {
    let app = TestApp::spawn_with(Mode::jwt(store), &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut open = Vec::new();
    for n in 0..PENDING_LIMIT {
        let from = format!("2001:db8:5:6::{:x}", n + 1);
        let ws = ws_open(
            &app,
            None,
            &[("X-Forwarded-For", &from)],
            Some(&app.origin()),
        )
        .await
        .unwrap_or_else(|status| panic!("socket {n} refused: {status}"));
        open.push(ws);
    }
    let same_64 = ws_open(
        &app,
        None,
        &[("X-Forwarded-For", "2001:db8:5:6:ffff::99")],
        Some(&app.origin()),
    )
    .await;
    assert_eq!(same_64.err(), Some(429));
    let next_64 = ws_open(
        &app,
        None,
        &[("X-Forwarded-For", "2001:db8:5:7::1")],
        Some(&app.origin()),
    )
    .await;
    assert!(next_64.is_ok(), "another /64 is not affected");
}
