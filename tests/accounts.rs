//! Accounts through the HTML forms and the JSON login: registering,
//! logging in, validation and conflicts, failed logins that give nothing
//! away, and the return to the page that asked for a login.

mod support;

use serde_json::json;
use support::{
    assert_login_redirect, both_stores, user, Browser, Store, TestApp, PASSWORD, SESSION_COOKIE,
};

both_stores!(
    registering_logs_the_new_user_in,
    invalid_registrations_are_shown_again_without_the_password,
    a_password_over_72_bytes_is_refused,
    a_taken_username_or_email_is_a_conflict_whatever_the_case,
    a_look_alike_username_is_taken,
    a_wrong_password_and_an_unknown_email_fail_alike,
    logging_in_again_after_logout_works,
    the_json_login_sets_the_cookie_and_returns_the_user,
    the_json_login_refuses_bad_credentials_alike,
    logging_in_returns_to_the_page_asked_for,
    logging_in_never_returns_to_another_site,
    the_json_login_needs_a_json_content_type,
);

async fn registering_logs_the_new_user_in(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn invalid_registrations_are_shown_again_without_the_password(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn a_password_over_72_bytes_is_refused(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn a_taken_username_or_email_is_a_conflict_whatever_the_case(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn a_look_alike_username_is_taken(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn a_wrong_password_and_an_unknown_email_fail_alike(store: Store) {
    let app = TestApp::spawn(store).await;
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
        assert!(page
            .set_cookie(SESSION_COOKIE)
            .is_none_or(|c| c.is_removal()));
        answers.push(page.status);
    }
    assert_eq!(answers, [400, 400], "both are re-rendered with 400");
    assert_login_redirect(&browser.get("/rooms").await, "/rooms");
}

async fn logging_in_again_after_logout_works(store: Store) {
    let app = TestApp::spawn(store).await;
    let mut alice = user(&app, "alice").await;
    alice.logout().await;
    alice.login("ALICE@example.com", PASSWORD).await;
    alice.get("/rooms").await.assert_status(200);
}

async fn the_json_login_sets_the_cookie_and_returns_the_user(store: Store) {
    let app = TestApp::spawn(store).await;
    user(&app, "alice").await.logout().await;
    let mut client = Browser::new(&app);
    let page = client
        .post_json(
            "/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    page.assert_status(200);
    assert_eq!(page.json()["user"]["username"], "alice", "{}", page.body);
    assert!(
        page.set_cookie(SESSION_COOKIE).is_some(),
        "no session cookie"
    );

    let me = client.get("/api/me").await;
    me.assert_status(200);
    let me = me.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert!(me["id"].is_i64(), "{me}");
}

async fn the_json_login_refuses_bad_credentials_alike(store: Store) {
    let app = TestApp::spawn(store).await;
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
    assert!(client.jar.get(SESSION_COOKIE).is_none());
}

async fn logging_in_returns_to_the_page_asked_for(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn logging_in_never_returns_to_another_site(store: Store) {
    let app = TestApp::spawn(store).await;
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

async fn the_json_login_needs_a_json_content_type(store: Store) {
    let app = TestApp::spawn(store).await;
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
    assert!(client.jar.get(SESSION_COOKIE).is_none());
}
