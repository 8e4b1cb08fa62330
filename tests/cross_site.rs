//! Cross-site request forgery defences on the forms: the signed
//! `csrf_token` and the origin rule for unsafe requests that carry cookies.

mod support;

use awc::http::Method;
use support::{all_modes, user, Body, Mode, OriginHeader, TestApp};

all_modes!(
    a_form_without_csrf_token_is_forbidden,
    a_csrf_token_from_another_session_is_forbidden,
    a_csrf_token_from_before_login_is_not_accepted_after,
    a_foreign_origin_is_forbidden,
    no_origin_but_same_origin_fetch_metadata_is_accepted,
    no_origin_and_no_fetch_metadata_with_a_cookie_is_forbidden,
    cross_site_fetch_metadata_is_forbidden,
    an_anonymous_login_form_needs_its_nonce_cookie,
);

/// Posts a room creation form with `fields` from a logged-in browser.
async fn create_room_with(
    browser: &mut support::Browser,
    headers: &[(&str, &str)],
    fields: Vec<(String, String)>,
) -> support::Page {
    browser
        .request(Method::POST, "/rooms", headers, Body::Form(fields))
        .await
}

fn fields(name: &str, token: Option<&str>) -> Vec<(String, String)> {
    let mut fields = vec![("name".to_owned(), name.to_owned())];
    if let Some(token) = token {
        fields.push(("csrf_token".to_owned(), token.to_owned()));
    }
    fields
}

async fn a_form_without_csrf_token_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let page = create_room_with(&mut alice, &[], fields("lobby", None)).await;
    page.assert_status(403);
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(""))).await;
    page.assert_status(403);
}

async fn a_csrf_token_from_another_session_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let mut bob = user(&app, "bob").await;
    let bobs_token = bob.get("/rooms").await.csrf();
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(&bobs_token))).await;
    page.assert_status(403);
    // Bob's own token works for Bob.
    let page = create_room_with(&mut bob, &[], fields("lobby", Some(&bobs_token))).await;
    page.assert_status(303);
}

async fn a_csrf_token_from_before_login_is_not_accepted_after(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut alice = support::Browser::new(&app);
    let anonymous_token = alice.get("/login").await.csrf();
    alice.login("alice@example.com", support::PASSWORD).await;
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(&anonymous_token))).await;
    page.assert_status(403);
}

async fn a_foreign_origin_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let token = alice.get("/rooms").await.csrf();
    alice.origin_header = OriginHeader::Other("http://evil.example".to_owned());
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(&token))).await;
    page.assert_status(403);
    // Another port on the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", app.addr().port().wrapping_add(1));
    alice.origin_header = OriginHeader::Other(other_port);
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(&token))).await;
    page.assert_status(403);
}

async fn no_origin_but_same_origin_fetch_metadata_is_accepted(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let token = alice.get("/rooms").await.csrf();
    alice.origin_header = OriginHeader::Absent;
    let headers = [("Sec-Fetch-Site", "same-origin")];
    let page = create_room_with(&mut alice, &headers, fields("lobby", Some(&token))).await;
    page.assert_status(303);
}

async fn no_origin_and_no_fetch_metadata_with_a_cookie_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let token = alice.get("/rooms").await.csrf();
    alice.origin_header = OriginHeader::Absent;
    let page = create_room_with(&mut alice, &[], fields("lobby", Some(&token))).await;
    page.assert_status(403);
}

async fn cross_site_fetch_metadata_is_forbidden(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let token = alice.get("/rooms").await.csrf();
    alice.origin_header = OriginHeader::Absent;
    for site in ["cross-site", "same-site", "none"] {
        let headers = [("Sec-Fetch-Site", site)];
        let page = create_room_with(&mut alice, &headers, fields("lobby", Some(&token))).await;
        assert_eq!(page.status, 403, "Sec-Fetch-Site: {site}");
    }
}

async fn an_anonymous_login_form_needs_its_nonce_cookie(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut browser = support::Browser::new(&app);
    let token = browser.get("/login").await.csrf();
    browser.jar.clear();
    let page = browser
        .post_form(
            "/login",
            &[
                ("email", "alice@example.com"),
                ("password", support::PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    page.assert_status(403);
}
