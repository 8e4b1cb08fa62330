//! Accounts through the HTML forms and the JSON login, in both modes:
//! registering, logging in, validation and conflicts, failed logins that
//! give nothing away, the return to the page that asked for a login, and
//! logging out (here, and everywhere at once).

mod support;

use serde_json::json;
use support::{
    all_modes, assert_logged_in, assert_logged_out, assert_login_redirect, user, Auth, Browser,
    Mode, TestApp, PASSWORD,
};

all_modes!(
    registering_logs_the_new_user_in,
    invalid_registrations_are_shown_again_without_the_password,
    a_password_over_72_bytes_is_refused,
    a_taken_username_or_email_is_a_conflict_whatever_the_case,
    a_look_alike_username_is_taken,
    a_wrong_password_and_an_unknown_email_fail_alike,
    logging_in_again_after_logout_works,
    the_json_login_logs_the_client_in_and_returns_the_user,
    the_json_login_refuses_bad_credentials_alike,
    logging_in_returns_to_the_page_asked_for,
    logging_in_never_returns_to_another_site,
    the_json_login_needs_a_json_content_type,
    logging_out_ends_the_login_and_saved_cookies_stop_working,
    logging_out_without_a_login_goes_to_login,
    logging_out_with_a_bad_csrf_token_is_forbidden,
    logging_out_everywhere_ends_every_login_of_the_user,
    anonymous_visitors_leave_no_login_state_behind,
);

async fn registering_logs_the_new_user_in(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = Browser::new(&app);
    let page = alice.register("alice", "alice@example.com", PASSWORD).await;
    page.assert_see_other("/rooms");

    let rooms = alice.get("/rooms").await;
    rooms.assert_status(200);
    assert!(rooms.body.contains("alice"), "{}", rooms.body);
    let me = alice.get("/api/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], "alice");
    assert_eq!(me.json()["email"], "alice@example.com");
}

async fn invalid_registrations_are_shown_again_without_the_password(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut browser = Browser::new(&app);
    let secret = "a-very-secret-passphrase";
    let page = browser
        .submit(
            "/register",
            "/register",
            &[
                ("username", "bob"),
                ("email", "not-an-email"),
                ("password", secret),
            ],
        )
        .await;
    page.assert_status(400);
    assert!(
        page.body.contains("Enter an email address"),
        "{}",
        page.body
    );
    assert_eq!(
        support::html::input_value(&page.body, "username").as_deref(),
        Some("bob")
    );
    assert_eq!(
        support::html::input_value(&page.body, "email").as_deref(),
        Some("not-an-email")
    );
    assert!(!page.body.contains(secret), "the password was echoed");

    let page = browser
        .submit(
            "/register",
            "/register",
            &[
                ("username", "x"),
                ("email", "bob@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    page.assert_status(400);
    assert!(page.body.contains("Username must be"), "{}", page.body);
    assert!(page.body.contains("at least 8 bytes"), "{}", page.body);
    assert_login_redirect(&browser.get("/rooms").await, "/rooms");
}

async fn a_password_over_72_bytes_is_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut browser = Browser::new(&app);
    let long = "é".repeat(37);
    let page = browser
        .submit(
            "/register",
            "/register",
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", &long),
            ],
        )
        .await;
    page.assert_status(400);
    assert!(page.body.contains("at most 72 bytes"), "{}", page.body);
    assert!(!page.body.contains(&long));
}

async fn a_taken_username_or_email_is_a_conflict_whatever_the_case(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;

    let mut other = Browser::new(&app);
    for (username, email) in [
        ("alice", "other@example.com"),
        ("ALICE", "other@example.com"),
        ("carol", "alice@example.com"),
        ("carol", "Alice@EXAMPLE.com"),
    ] {
        let page = other
            .submit(
                "/register",
                "/register",
                &[
                    ("username", username),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, 409, "{username} / {email}: {}", page.body);
        assert!(!page.body.contains(PASSWORD), "the password was echoed");
        assert!(page.body.contains(email), "input not kept: {}", page.body);
    }
    assert_login_redirect(&other.get("/rooms").await, "/rooms");
}

async fn a_look_alike_username_is_taken(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "paypal").await;
    let mut other = Browser::new(&app);
    // The second letter is a Cyrillic а.
    let page = other
        .submit(
            "/register",
            "/register",
            &[
                ("username", "p\u{430}ypal"),
                ("email", "x@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    page.assert_status(409);
}

async fn a_wrong_password_and_an_unknown_email_fail_alike(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut browser = Browser::new(&app);
    let mut answers = Vec::new();
    for (email, password) in [
        ("alice@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let page = browser
            .submit(
                "/login",
                "/login",
                &[("email", email), ("password", password)],
            )
            .await;
        assert!(
            page.body.contains("Invalid email or password"),
            "{}",
            page.body
        );
        assert!(!page.body.contains(password), "the password was echoed");
        assert!(!page.sets_credential(mode.auth), "{:?}", page.set_cookies);
        answers.push(page.status);
    }
    assert_eq!(answers, [400, 400], "both are re-rendered with 400");
    assert_login_redirect(&browser.get("/rooms").await, "/rooms");
}

async fn logging_in_again_after_logout_works(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    alice.logout().await;
    alice.login("ALICE@example.com", PASSWORD).await;
    alice.get("/rooms").await.assert_status(200);
}

async fn the_json_login_logs_the_client_in_and_returns_the_user(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut client = Browser::new(&app);
    let page = client
        .post_json(
            "/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    page.assert_status(200);
    let body = page.json();
    assert_eq!(body["user"]["username"], "alice", "{body}");
    assert_eq!(body["user"]["email"], "alice@example.com", "{body}");
    assert!(body["user"]["id"].is_i64(), "{body}");
    assert!(page.sets_credential(mode.auth), "no login cookie: {page:?}");

    let me = client.get("/api/me").await;
    me.assert_status(200);
    let me = me.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["id"], body["user"]["id"]);

    match mode.auth {
        Auth::Session => {
            assert!(body.get("accessToken").is_none(), "{body}");
            assert!(body.get("refreshToken").is_none(), "{body}");
        }
        Auth::Jwt => {
            // The tokens in the body work without any cookie.
            let access = body["accessToken"].as_str().expect("an accessToken");
            let refresh = body["refreshToken"].as_str().expect("a refreshToken");
            assert_ne!(access, refresh);
            let mut api = Browser::new(&app);
            let me = api.get_bearer("/api/me", access).await;
            me.assert_status(200);
            assert_eq!(me.json()["username"], "alice");
            let pair = api
                .post_json("/auth/refresh", json!({"refreshToken": refresh}))
                .await;
            pair.assert_status(200);
            assert!(pair.json()["accessToken"].is_string(), "{}", pair.body);
            assert!(api.jar.is_empty(), "a body refresh sets no cookies");
        }
    }
}

async fn the_json_login_refuses_bad_credentials_alike(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut client = Browser::new(&app);
    let wrong = client
        .post_json(
            "/login",
            json!({"email": "alice@example.com", "password": "wrong password!"}),
        )
        .await;
    let unknown = client
        .post_json(
            "/login",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(wrong.status, unknown.status);
    assert!((400..500).contains(&wrong.status), "{}", wrong.status);
    assert_eq!(wrong.json(), unknown.json());
    assert!(wrong.json()["error"].is_string(), "{}", wrong.body);
    assert!(wrong.json()["message"].is_string(), "{}", wrong.body);
    assert!(wrong.json().get("accessToken").is_none(), "{}", wrong.body);
    assert!(!client.has_credential(), "{:?}", client.jar);
}

async fn logging_in_returns_to_the_page_asked_for(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = support::create_room(&mut alice, "lobby").await;
    alice.logout().await;

    let asked = format!("/rooms/{room}");
    let redirect = alice.get(&asked).await;
    assert_login_redirect(&redirect, &asked);
    let form = alice.get(redirect.location()).await;
    form.assert_status(200);
    assert_eq!(
        support::html::input_value(&form.body, "next").as_deref(),
        Some(asked.as_str())
    );
    let page = alice
        .post_form(
            "/login",
            &[
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("next", &asked),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    page.assert_see_other(&asked);
}

async fn logging_in_never_returns_to_another_site(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let mut browser = Browser::new(&app);
        let form = browser
            .get(&format!("/login?next={}", support::encode_component(next)))
            .await;
        let page = browser
            .post_form(
                "/login",
                &[
                    ("email", "alice@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                    ("csrf_token", &form.csrf()),
                ],
            )
            .await;
        page.assert_see_other("/rooms");
    }
}

async fn the_json_login_needs_a_json_content_type(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut client = Browser::new(&app);
    let body = json!({"email": "alice@example.com", "password": PASSWORD});
    let page = client
        .request(
            awc::http::Method::POST,
            "/login",
            &[],
            support::Body::Raw {
                content_type: "text/plain".to_owned(),
                bytes: body.to_string().into_bytes(),
            },
        )
        .await;
    page.assert_status(415);
    assert!(!client.has_credential(), "{:?}", client.jar);
}

async fn logging_out_ends_the_login_and_saved_cookies_stop_working(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    assert!(alice.has_credential());
    let saved = alice.fork();
    assert_logged_in(&mut alice, "alice").await;

    alice.logout().await.assert_see_other("/login");
    assert!(
        !alice.has_credential(),
        "login cookies kept: {:?}",
        alice.jar
    );
    assert_logged_out(&mut alice).await;

    // A copy of the cookies taken before logout (stolen, or a second tab
    // that missed the deletion) is worth nothing now.
    let mut replay = saved;
    assert_logged_out(&mut replay).await;
    if mode.auth == Auth::Jwt {
        let refreshed = replay.post_json("/auth/refresh", json!({})).await;
        refreshed.assert_generic_401();
    }
}

async fn logging_out_without_a_login_goes_to_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut anonymous = Browser::new(&app);
    let page = anonymous.submit("/login", "/logout", &[]).await;
    page.assert_see_other("/login");
}

async fn logging_out_with_a_bad_csrf_token_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let page = alice
        .post_form("/logout", &[("csrf_token", "not-a-token")])
        .await;
    page.assert_status(403);
    let page = alice
        .post_form("/logout/all", &[("csrf_token", "not-a-token")])
        .await;
    page.assert_status(403);
    assert_logged_in(&mut alice, "alice").await;
}

async fn logging_out_everywhere_ends_every_login_of_the_user(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = Browser::new(&app);
    phone.login("alice@example.com", PASSWORD).await;
    let mut bob = user(&app, "bob").await;
    let saved_laptop = laptop.fork();

    let page = laptop.submit("/rooms", "/logout/all", &[]).await;
    page.assert_see_other("/login");
    assert!(!laptop.has_credential(), "{:?}", laptop.jar);
    assert_logged_out(&mut laptop).await;
    assert_logged_out(&mut phone).await;
    let mut replay = saved_laptop;
    assert_logged_out(&mut replay).await;
    if mode.auth == Auth::Jwt {
        // Nor can the phone get new tokens with its refresh cookie.
        phone
            .post_json("/auth/refresh", json!({}))
            .await
            .assert_generic_401();
    }
    assert_logged_in(&mut bob, "bob").await;

    // Logging in again afterwards works, on every device.
    laptop.login("alice@example.com", PASSWORD).await;
    assert_logged_in(&mut laptop, "alice").await;
    phone.login("alice@example.com", PASSWORD).await;
    assert_logged_in(&mut phone, "alice").await;
}

async fn anonymous_visitors_leave_no_login_state_behind(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut visitor = Browser::new(&app);
    for path in ["/", "/login", "/register", "/rooms", "/api/me"] {
        visitor.get(path).await;
    }
    visitor
        .submit(
            "/login",
            "/login",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await
        .assert_status(400);
    assert!(!visitor.has_credential(), "{:?}", visitor.jar);
    if let Some(redis) = app.redis() {
        // The failed login is counted (the throttle's counters); nothing
        // else, no session nor any other record, exists for the visitor.
        let keys: Vec<String> = redis
            .keys("*")
            .into_iter()
            .filter(|k| !k.starts_with("throttle:login"))
            .collect();
        assert!(keys.is_empty(), "{keys:?}");
    }
}
