//! Pages and the JSON API around rooms, in both modes: redirects for
//! anonymous visitors, creating rooms, posting without JavaScript,
//! escaping, the security headers, body limits, history paging and history
//! across a restart.

mod support;

use awc::http::Method;
use serde_json::json;
use support::{
    all_modes, assert_login_redirect, create_room, history, post_message, user, Auth, Body,
    Browser, Mode, TestApp,
};

/// A body well over the app's limit on forms and JSON (16 KiB), yet small
/// enough for the client to finish sending before the answer.
const OVERSIZED: usize = 64 * 1024;

all_modes!(
    the_root_sends_visitors_to_login_and_users_to_rooms,
    pages_ask_anonymous_visitors_to_log_in_and_come_back,
    creating_a_room_leads_to_it_and_lists_it,
    a_duplicate_room_name_is_a_conflict,
    posted_messages_are_escaped_on_the_room_page,
    pages_forbid_inline_script_and_style,
    an_oversized_body_is_refused_with_413,
    the_api_lists_rooms_and_pages_history_oldest_first,
    the_api_refuses_bad_limits_and_unknown_rooms,
    the_api_answers_anonymous_clients_with_json_401,
    history_survives_a_restart,
);

async fn the_root_sends_visitors_to_login_and_users_to_rooms(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut anonymous = Browser::new(&app);
    anonymous.get("/").await.assert_see_other("/login");

    let mut alice = user(&app, "alice").await;
    alice.get("/").await.assert_see_other("/rooms");
}

async fn pages_ask_anonymous_visitors_to_log_in_and_come_back(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;

    let mut anonymous = Browser::new(&app);
    assert_login_redirect(&anonymous.get("/rooms").await, "/rooms");
    let path = format!("/rooms/{room}");
    assert_login_redirect(&anonymous.get(&path).await, &path);
    anonymous.get("/login").await.assert_status(200);
    anonymous.get("/register").await.assert_status(200);
}

async fn creating_a_room_leads_to_it_and_lists_it(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "Book club").await;

    let page = alice.get(&format!("/rooms/{room}")).await;
    page.assert_status(200);
    assert!(page.body.contains("Book club"), "{}", page.body);
    let list = alice.get("/rooms").await;
    assert!(list.body.contains("Book club"), "{}", list.body);

    let mut bob = user(&app, "bob").await;
    let api = bob.get("/api/rooms").await;
    api.assert_status(200);
    let rooms = api.json()["rooms"].as_array().cloned().unwrap_or_default();
    assert!(
        rooms
            .iter()
            .any(|r| r["id"] == room && r["name"] == "Book club"),
        "{}",
        api.body
    );
}

async fn a_duplicate_room_name_is_a_conflict(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    create_room(&mut alice, "lobby").await;
    let mut bob = user(&app, "bob").await;
    for name in ["lobby", "LOBBY"] {
        let page = bob.submit("/rooms", "/rooms", &[("name", name)]).await;
        assert_eq!(page.status, 409, "{name}: {}", page.body);
        assert!(page.body.contains(name), "input not kept: {}", page.body);
    }
}

async fn posted_messages_are_escaped_on_the_room_page(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let evil = "<script>alert(\"x\")</script> & <b>bold</b>";
    let page = post_message(&mut alice, room, evil).await;
    page.assert_see_other(&format!("/rooms/{room}"));

    let page = alice.get(&format!("/rooms/{room}")).await;
    page.assert_status(200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<b>bold"), "{}", page.body);
    assert!(
        support::html::unescape(&page.body).contains(evil),
        "the message is not shown as text: {}",
        page.body
    );
    let stored = history(&mut alice, room, "").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["body"], evil);
}

async fn pages_forbid_inline_script_and_style(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut anonymous = Browser::new(&app);
    let mut pages = vec![
        anonymous.get("/login").await,
        anonymous.get("/register").await,
    ];
    pages.push(alice.get("/rooms").await);
    pages.push(alice.get(&format!("/rooms/{room}")).await);
    for page in pages {
        page.assert_status(200);
        let csp = page
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("no CSP: {:?}", page.headers));
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert!(
            csp.contains("default-src") || csp.contains("script-src"),
            "{csp}"
        );
        for tag in support::html::tags(&page.body, "script") {
            assert!(
                support::html::attribute(tag, "src").is_some(),
                "inline script: {tag}"
            );
        }
        assert!(!page.body.contains("<style"), "inline style block");
        assert!(!page.body.contains(" style=\""), "inline style attribute");
        assert!(!page.body.contains(" onclick="), "inline handler");
        assert!(!page.body.contains(" onsubmit="), "inline handler");
    }
}

async fn an_oversized_body_is_refused_with_413(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let token = alice.get(&format!("/rooms/{room}")).await.csrf();
    let big = "x".repeat(OVERSIZED);
    let body = format!("csrf_token={token}&body={big}").into_bytes();
    let page = alice
        .request(
            Method::POST,
            &format!("/rooms/{room}/messages"),
            &[],
            Body::Raw {
                content_type: "application/x-www-form-urlencoded".to_owned(),
                bytes: body,
            },
        )
        .await;
    page.assert_status(413);
    assert!(history(&mut alice, room, "").await.is_empty());

    let mut client = Browser::new(&app);
    let page = client
        .post_json("/login", json!({"email": big, "password": "x"}))
        .await;
    page.assert_status(413);
    assert_eq!(page.json()["error"], "payload_too_large", "{}", page.body);
}

async fn the_api_lists_rooms_and_pages_history_oldest_first(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    for n in 1..=5 {
        post_message(&mut alice, room, &format!("message {n}"))
            .await
            .assert_status(303);
    }
    let all = history(&mut alice, room, "").await;
    let bodies: Vec<&str> = all.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(
        bodies,
        [
            "message 1",
            "message 2",
            "message 3",
            "message 4",
            "message 5"
        ]
    );
    let ids: Vec<i64> = all.iter().filter_map(|m| m["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(all.iter().all(|m| m["username"] == "alice"), "{all:?}");

    let last_two = history(&mut alice, room, "?limit=2").await;
    let bodies: Vec<&str> = last_two.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["message 4", "message 5"]);

    let before = format!("?before={}&limit=2", ids[3]);
    let page = history(&mut alice, room, &before).await;
    let bodies: Vec<&str> = page.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["message 2", "message 3"]);
}

async fn the_api_refuses_bad_limits_and_unknown_rooms(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    for query in ["?limit=0", "?limit=101", "?limit=abc", "?before=xyz"] {
        let page = alice
            .get(&format!("/api/rooms/{room}/messages{query}"))
            .await;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert!(page.json()["error"].is_string(), "{}", page.body);
        assert!(page.json()["message"].is_string(), "{}", page.body);
    }
    history(&mut alice, room, "?limit=100").await;
    let missing = alice.get("/api/rooms/999999/messages").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.json()["error"].is_string(), "{}", missing.body);
    let missing = alice.get("/rooms/999999").await;
    assert_eq!(missing.status, 404);
}

async fn the_api_answers_anonymous_clients_with_json_401(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut anonymous = Browser::new(&app);
    for path in [
        "/api/me".to_owned(),
        "/api/rooms".to_owned(),
        format!("/api/rooms/{room}/messages"),
    ] {
        let page = anonymous.get(&path).await;
        page.assert_generic_401();
        if mode.auth == Auth::Jwt {
            // No token was presented, so no `error` attribute.
            assert_eq!(
                page.header("www-authenticate"),
                Some("Bearer realm=\"chat\""),
                "{path}"
            );
        }
    }
}

async fn history_survives_a_restart(mode: Mode) {
    let mut app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    post_message(&mut alice, room, "still here tomorrow")
        .await
        .assert_status(303);

    app.restart().await;
    alice.retarget(&app);
    let page = alice.get(&format!("/rooms/{room}")).await;
    page.assert_status(200);
    assert!(page.body.contains("still here tomorrow"), "{}", page.body);
    let stored = history(&mut alice, room, "").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["body"], "still here tomorrow");
}
