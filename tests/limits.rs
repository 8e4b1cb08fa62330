//! Limits that keep one client from crowding out the others: frames per
//! socket, sockets per user, accounts per address, and the bounded bcrypt
//! pool that answers 503 instead of queueing without end.

mod support;

use std::time::{Duration, Instant};

use actix_web::http::Method;
use serde_json::json;
use support::*;

all_modes!(
    a_socket_that_floods_frames_is_refused_then_closed,
    a_user_cannot_hold_more_than_32_sockets,
    registrations_are_limited_per_address,
    a_storm_of_logins_gets_503_quickly_while_the_app_stays_responsive,
    a_flood_of_pings_is_limited_like_any_frame,
);

both_stores!(frames_before_authentication_share_the_bucket_and_refused_ones_are_not_read,);

async fn a_socket_that_floods_frames_is_refused_then_closed(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let (mut ws, _) = ws_authenticated(&app, &ann).await;
    for _ in 0..80 {
        ws.send_text("{}").await;
    }
    let mut refused = 0;
    loop {
        match ws.next_incoming(Duration::from_secs(5)).await {
            Some(Incoming::Json(frame)) if frame["code"] == "rate_limited" => refused += 1,
            Some(Incoming::Json(_)) => {}
            Some(Incoming::Closed(code, reason)) => {
                assert_eq!((code, reason.as_str()), (1008, "Rate limited"));
                break;
            }
            other => panic!("expected frames then a close, got {other:?}"),
        }
    }
    assert!(refused > 0, "no rate_limited error frame before the close");
}

async fn a_user_cannot_hold_more_than_32_sockets(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let mut open = Vec::new();
    for _ in 0..32 {
        open.push(ws_authenticated(&app, &ann).await.0);
    }
    let mut extra = ws_connect(&app, &ann, Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("upgrade refused with {status}"));
    let closed = extra.expect_close(Duration::from_secs(5)).await;
    assert_eq!(closed, (1008, "Rate limited".to_owned()));
    // The open ones still work.
    open[0]
        .send_json(json!({"type": "join", "roomId": 999}))
        .await;
    let frame = open[0].next_json(Duration::from_secs(5)).await;
    assert_eq!(frame["code"], "unknown_room");
}

async fn registrations_are_limited_per_address(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let register = |n: usize, address: &'static str| {
        let app = &app;
        async move {
            let mut b = Browser::new(app);
            let csrf = b.get("/register").await.csrf();
            let fields = vec![
                ("username".to_owned(), format!("user{n}")),
                ("email".to_owned(), format!("user{n}@example.com")),
                ("password".to_owned(), PASSWORD.to_owned()),
                ("csrf_token".to_owned(), csrf),
            ];
            b.request(
                Method::POST,
                "/register",
                &[("X-Forwarded-For", address)],
                Body::Form(fields),
            )
            .await
        }
    };
    for n in 0..10 {
        assert_eq!(register(n, "203.0.113.5").await.status, 303, "account {n}");
    }
    let page = register(10, "203.0.113.5").await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.header("retry-after").is_some());
    assert!(page.body.contains("Too many accounts"), "{}", page.body);
    assert_eq!(
        register(11, "198.51.100.7").await.status,
        303,
        "another address is not limited"
    );
}

/// Wrong-password logins from many clients at once: the bounded bcrypt
/// pool turns the excess away with 503, and meanwhile another user's page,
/// API call and live socket all keep answering. The test asserts only that
/// nothing waits past a generous bound; how fast is the benchmark's job.
async fn a_storm_of_logins_gets_503_quickly_while_the_app_stays_responsive(mode: Mode) {
    // A real bcrypt cost, so the storm outlasts the pool.
    let app = TestApp::spawn_with(mode, &[("BCRYPT_COST", "8")]).await;
    user(&app, "ann").await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut bob, "lobby").await;
    let mut socket = ws_joined(&app, &bob, room).await;

    let storm: Vec<_> = (0..150)
        .map(|_| {
            let mut b = Browser::new(&app);
            async move {
                let body =
                    Body::Json(json!({"email": "ann@example.com", "password": "wrong password"}));
                b.request(Method::POST, "/login", &[], body).await
            }
        })
        .collect();
    let probe = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let health = Browser::new(&app).get("/healthz").await.status;
        let rooms = bob.get("/api/rooms").await.status;
        socket
            .send_json(json!({"type": "message", "roomId": room, "body": "still here"}))
            .await;
        let echo = socket.next_of_type("message", Duration::from_secs(5)).await;
        (health, rooms, echo, started.elapsed())
    };
    let (answers, (health, rooms, echo, took)) =
        tokio::join!(futures_util::future::join_all(storm), probe);
    assert_eq!((health, rooms), (200, 200));
    assert_eq!(echo["body"], "still here");
    assert!(took < Duration::from_secs(5), "the app stalled: {took:?}");
    let busy: Vec<_> = answers.iter().filter(|p| p.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "no login was turned away: {:?}",
        answers.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    for page in &busy {
        assert!(
            page.header("retry-after").is_some(),
            "503 without Retry-After"
        );
    }
    assert!(
        answers.iter().all(|p| matches!(p.status, 401 | 429 | 503)),
        "unexpected answers"
    );
}

/// Pings take from the same bucket as text: past the burst they get no
/// pong, and a flood closes the socket with 1008 "Rate limited".
async fn a_flood_of_pings_is_limited_like_any_frame(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let (mut ws, _) = ws_authenticated(&app, &ann).await;
    for _ in 0..200 {
        ws.send(awc::ws::Message::Ping(bytes::Bytes::from_static(b"p")))
            .await;
    }
    let mut pongs = 0;
    loop {
        match ws.next_incoming(Duration::from_secs(5)).await {
            Some(Incoming::Closed(code, reason)) => {
                assert_eq!((code, reason.as_str()), (1008, "Rate limited"));
                break;
            }
            Some(Incoming::Pong) => pongs += 1,
            other => panic!("expected pongs then a close, got {other:?}"),
        }
    }
    assert!(
        (1..=31).contains(&pongs),
        "{pongs} pongs: only the burst is answered"
    );
}

/// In token mode a socket waiting for `authenticate` draws on the same
/// bucket it keeps afterwards; a frame over it is answered `rate_limited`
/// and not read, even when it is an `authenticate`.
async fn frames_before_authentication_share_the_bucket_and_refused_ones_are_not_read(store: Store) {
    let app = TestApp::spawn(Mode::jwt(store)).await;
    let ann = user(&app, "ann").await;
    let token = ann.access_token().expect("an access token");
    let mut ws = ws_open(&app, None, &[], Some(&app.origin()))
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    for _ in 0..30 {
        ws.send_text("{}").await;
    }
    ws.authenticate(&token).await;
    for _ in 0..30 {
        let frame = ws.next_json(Duration::from_secs(5)).await;
        assert_eq!(frame["code"], "not_authenticated", "{frame}");
    }
    let refused = ws.next_json(Duration::from_secs(5)).await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    ws.expect_silence(Duration::from_millis(300)).await;
}
