//! Password guessing is throttled per account and address, before any
//! bcrypt work, while the owner still logs in from another address; a
//! forged `X-Forwarded-For` from an untrusted peer changes nothing.

mod support;

use actix_web::http::Method;
use serde_json::json;
use support::*;

all_modes!(
    guessing_is_throttled_while_the_owner_logs_in_from_another_address,
    a_forged_forwarded_for_from_an_untrusted_peer_gains_nothing,
    a_successful_login_clears_its_counter,
);

/// A login form post from `address` (as a trusted proxy would say).
async fn form_login(browser: &mut Browser, email: &str, password: &str, address: &str) -> Page {
    let csrf = browser.get("/login").await.csrf();
    let fields = vec![
        ("email".to_owned(), email.to_owned()),
        ("password".to_owned(), password.to_owned()),
        ("csrf_token".to_owned(), csrf),
    ];
    browser
        .request(
            Method::POST,
            "/login",
            &[("X-Forwarded-For", address)],
            Body::Form(fields),
        )
        .await
}

async fn json_login(browser: &mut Browser, email: &str, password: &str, address: &str) -> Page {
    let body = Body::Json(json!({"email": email, "password": password}));
    browser
        .request(
            Method::POST,
            "/login",
            &[("X-Forwarded-For", address)],
            body,
        )
        .await
}

async fn guessing_is_throttled_while_the_owner_logs_in_from_another_address(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    user(&app, "ann").await;
    let mut thief = Browser::new(&app);
    for guess in 0..5 {
        let page = form_login(
            &mut thief,
            "ann@example.com",
            &format!("guess {guess}"),
            "203.0.113.5",
        )
        .await;
        assert_eq!(page.status, 400, "guess {guess}");
    }
    // Past the limit, even the right password is refused, with no bcrypt work.
    let page = form_login(&mut thief, "ann@example.com", PASSWORD, "203.0.113.5").await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().unwrap() > 0));
    assert!(
        page.body.contains("Too many failed attempts"),
        "{}",
        page.body
    );
    let api = json_login(&mut thief, "ann@example.com", PASSWORD, "203.0.113.5").await;
    assert_eq!(api.status, 429);
    let body: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(body["error"], "too_many_attempts");
    assert!(api.header("retry-after").is_some());

    // The owner, from home, is not locked out.
    let mut owner = Browser::new(&app);
    let page = form_login(&mut owner, "ann@example.com", PASSWORD, "198.51.100.7").await;
    assert_eq!(page.status, 303, "{}", page.body);
}

async fn a_forged_forwarded_for_from_an_untrusted_peer_gains_nothing(mode: Mode) {
    // No trusted proxies: the header is the client's word, and ignored.
    let app = TestApp::spawn(mode).await;
    user(&app, "ann").await;
    let mut thief = Browser::new(&app);
    for guess in 0..5 {
        let forged = format!("203.0.113.{guess}");
        let page = form_login(&mut thief, "ann@example.com", "wrong password", &forged).await;
        assert_eq!(page.status, 400);
    }
    let page = form_login(
        &mut thief,
        "ann@example.com",
        "wrong password",
        "192.0.2.99",
    )
    .await;
    assert_eq!(
        page.status, 429,
        "a new forged address must not reset the count"
    );
}

async fn a_successful_login_clears_its_counter(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    user(&app, "ann").await;
    let mut ann = Browser::new(&app);
    for _ in 0..4 {
        let page = form_login(&mut ann, "ann@example.com", "typo typo", "198.51.100.7").await;
        assert_eq!(page.status, 400);
    }
    let page = form_login(&mut ann, "ann@example.com", PASSWORD, "198.51.100.7").await;
    assert_eq!(page.status, 303);
    let mut again = Browser::new(&app);
    for _ in 0..5 {
        let page = form_login(&mut again, "ann@example.com", "typo typo", "198.51.100.7").await;
        assert_eq!(page.status, 400, "the success should have reset the count");
    }
}
