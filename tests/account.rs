//! The account page, in both modes with both stores: changing the password
//! (every other device is logged out at once, this one stays), the list of
//! logins with their devices and open sockets, ending one of them, "log out
//! everywhere" from the page, and the recent security events, which never
//! carry a password or an email; what was ended stays ended across a
//! restart. Then token mode with Redis and two instances: a login made in
//! the same second as a password change or "log out everywhere" is refused
//! on both, and while Redis is away requests keep working on the local
//! revocation view, and a logout after the recovery still reaches the
//! sockets of every instance.

mod support;

use std::time::Duration;

use awc::http::Method;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::{json, Value};

use support::html;
use support::{
    all_modes, assert_logged_in, assert_login_redirect, create_room, user, ws_authenticated,
    ws_joined, Auth, Body, Browser, Mode, Page, Store, TestApp, WsConn, PASSWORD,
};

/// Longest wait for a frame or a page when nothing is wrong.
const WAIT: Duration = Duration::from_secs(5);
/// How soon a revoked credential's sockets must close.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);
/// How long a socket is watched to show that nothing arrives.
const QUIET: Duration = Duration::from_millis(500);
/// Longest wait for something the app does in the background (the list of
/// logins and the audit rows are written after the answer).
const BACKGROUND: Duration = Duration::from_secs(10);

const EMAIL: &str = "alice@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase 42";

const FIREFOX_ON_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_ON_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

all_modes!(
    the_account_page_needs_a_login,
    changing_the_password_ends_every_other_login_and_keeps_this_one,
    a_wrong_current_password_changes_nothing,
    an_invalid_new_password_changes_nothing,
    logging_out_everywhere_from_the_account_page_ends_every_login,
    the_login_list_names_each_device_and_counts_its_sockets,
    ending_another_login_closes_its_sockets_and_refuses_it,
    the_log_out_button_of_this_device_logs_it_out,
    a_login_of_another_user_cannot_be_ended,
    ending_a_login_needs_a_valid_csrf_token,
    the_security_events_list_logins_and_failures_without_secrets,
    the_listed_address_is_the_peer_unless_it_is_a_trusted_proxy,
    an_ended_login_stays_ended_after_a_restart,
    a_password_change_outlives_a_restart,
);

// ---------------------------------------------------------------------------
// Reading the account page.

/// One entry of the list of logins.
#[derive(Debug)]
struct Listed {
    device: String,
    this_device: bool,
    sockets: usize,
    handle: String,
    /// The entry's markup, for messages.
    markup: String,
}

/// The markup of the list whose `<ul>` has this class, up to its end.
fn list_markup<'a>(page: &'a Page, class: &str) -> &'a str {
    let marker = format!("class=\"{class}\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {class} list on the page:\n{}", page.body));
    let rest = &page.body[start..];
    &rest[..rest.find("</ul>").unwrap_or(rest.len())]
}

/// The logins the account page lists, in its order.
fn listed_logins(page: &Page) -> Vec<Listed> {
    list_markup(page, "login-list")
        .split("<li>")
        .skip(1)
        .map(|item| {
            let device = item
                .split_once("<strong>")
                .and_then(|(_, rest)| rest.split_once("</strong>"))
                .map(|(device, _)| html::unescape(device.trim()))
                .unwrap_or_else(|| panic!("no device in login entry: {item}"));
            let count_end = item
                .find(" open connection")
                .unwrap_or_else(|| panic!("no socket count in login entry: {item}"));
            let sockets = item[..count_end]
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no number before \"open connection\": {item}"));
            let handle = html::input_value(item, "handle")
                .unwrap_or_else(|| panic!("no handle input in login entry: {item}"));
            Listed {
                device,
                this_device: item.contains("(this device)"),
                sockets,
                handle,
                markup: item.to_owned(),
            }
        })
        .collect()
}

/// The security events the account page lists, newest first, as their
/// descriptions (without the address and time).
fn listed_events(page: &Page) -> Vec<String> {
    list_markup(page, "event-list")
        .split("<li>")
        .skip(1)
        .map(|item| {
            let text = item.split("<span").next().unwrap_or(item);
            html::unescape(text.trim())
        })
        .collect()
}

/// The account page, which must open.
async fn account(browser: &mut Browser) -> Page {
    let page = browser.get("/account").await;
    page.assert_status(200);
    page
}

/// Polls the account page until `done` holds, for what the app writes in
/// the background; panics with the last page after `BACKGROUND`.
async fn account_until(browser: &mut Browser, what: &str, done: impl Fn(&Page) -> bool) -> Page {
    let deadline = tokio::time::Instant::now() + BACKGROUND;
    loop {
        let page = account(browser).await;
        if done(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the account page never showed {what} within {BACKGROUND:?}:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the account page lists `count` logins.
async fn logins_until(browser: &mut Browser, count: usize) -> Vec<Listed> {
    let page = account_until(browser, &format!("{count} logins"), |page| {
        listed_logins(page).len() == count
    })
    .await;
    listed_logins(&page)
}

/// Waits until the account page lists an event described as `kind`.
async fn event_until(browser: &mut Browser, kind: &str) -> Page {
    account_until(browser, &format!("the event {kind:?}"), |page| {
        listed_events(page).iter().any(|e| e == kind)
    })
    .await
}

// ---------------------------------------------------------------------------
// Acting as a user.

/// Sends the change-password form of the account page.
async fn change_password(browser: &mut Browser, current: &str, new: &str) -> Page {
    browser
        .submit(
            "/account",
            "/account/password",
            &[("current_password", current), ("new_password", new)],
        )
        .await
}

/// Sends an "End" button of the account page for `handle`.
async fn end_login(browser: &mut Browser, handle: &str) -> Page {
    browser
        .submit("/account", "/account/logins/end", &[("handle", handle)])
        .await
}

/// A new browser that logs in as `email` through the form, sending
/// `User-Agent: agent` as a real browser would on every request.
async fn log_in_with_agent(app: &TestApp, email: &str, agent: &str) -> Browser {
    log_in_with_headers(app, email, &[("User-Agent", agent)]).await
}

/// A new browser that logs in as `email` through the form, sending these
/// headers with the form and its post.
async fn log_in_with_headers(app: &TestApp, email: &str, headers: &[(&str, &str)]) -> Browser {
    let mut browser = Browser::new(app);
    let form = browser
        .request(Method::GET, "/login", headers, Body::Empty)
        .await;
    form.assert_status(200);
    let fields = vec![
        ("email".to_owned(), email.to_owned()),
        ("password".to_owned(), PASSWORD.to_owned()),
        ("csrf_token".to_owned(), form.csrf()),
    ];
    let page = browser
        .request(Method::POST, "/login", headers, Body::Form(fields))
        .await;
    page.assert_status(303);
    browser
}

/// A new browser logged in as Alice with `PASSWORD`.
async fn second_device(app: &TestApp) -> Browser {
    let mut phone = Browser::new(app);
    phone.login(EMAIL, PASSWORD).await;
    phone
}

/// Tries the login form from a fresh browser; the status it answers.
async fn login_status(app: &TestApp, password: &str) -> u16 {
    let mut browser = Browser::new(app);
    let page = browser
        .submit(
            "/login",
            "/login",
            &[("email", EMAIL), ("password", password)],
        )
        .await;
    if page.status == 303 {
        assert_logged_in(&mut browser, "alice").await;
    } else {
        assert!(
            page.body.contains("Invalid email or password"),
            "{}",
            page.body
        );
    }
    page.status
}

/// Sends a chat message on the socket and waits for its acknowledgement:
/// the sender's own copy, with its `clientId`.
async fn send_and_ack(ws: &mut WsConn, room: i64, body: &str, client_id: &str) -> Value {
    ws.send_json(json!({"type": "message", "roomId": room, "body": body, "clientId": client_id}))
        .await;
    let ack = ws.next_of_type("message", WAIT).await;
    assert_eq!(ack["body"], body, "{ack}");
    assert_eq!(ack["clientId"], client_id, "not the sender's copy: {ack}");
    ack
}

/// A browser's tokens, saved before they are revoked (token mode).
struct Saved {
    access: Option<String>,
    refresh: Option<String>,
}

impl Saved {
    fn of(browser: &Browser) -> Saved {
        Saved {
            access: browser.access_token(),
            refresh: browser.refresh_token(),
        }
    }
}

/// Asserts that the browser's login is over: a page sends it to the login
/// page (in token mode possibly by way of a refresh that fails), the API
/// refuses it, and in token mode neither its saved access token nor its
/// saved refresh token is taken any more.
async fn assert_refused(app: &TestApp, browser: &mut Browser, saved: &Saved) {
    let page = browser.get("/rooms").await;
    if browser.auth == Auth::Jwt && page.status == 303 && page.location().starts_with("/auth/") {
        // The detour through the refresh endpoint must end on the login page.
        let location = page.location().to_owned();
        let refreshed = browser.get(&location).await;
        assert_login_redirect(&refreshed, "/rooms");
    } else {
        assert_login_redirect(&page, "/rooms");
    }
    let me = browser.get("/api/me").await;
    assert_eq!(me.status, 401, "the API still takes the login: {}", me.body);
    if browser.auth == Auth::Jwt {
        let mut api = Browser::new(app);
        let access = saved.access.as_deref().expect("an access token was saved");
        api.get_bearer("/api/me", access).await.assert_generic_401();
        let refresh = saved.refresh.as_deref().expect("a refresh token was saved");
        let rotated = api
            .post_json("/auth/refresh", json!({"refreshToken": refresh}))
            .await;
        assert_eq!(
            rotated.status, 401,
            "the revoked refresh token still rotates: {}",
            rotated.body
        );
    }
}

// ---------------------------------------------------------------------------
// The tests.

async fn the_account_page_needs_a_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut anonymous = Browser::new(&app);
    assert_login_redirect(&anonymous.get("/account").await, "/account");
    // A form post without a login changes nothing and goes to the login
    // page too (or is refused); it never succeeds.
    let page = anonymous
        .submit(
            "/login",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(
        page.status == 303 || page.status == 403,
        "an anonymous password change answered {}: {}",
        page.status,
        page.body
    );
    if page.status == 303 {
        assert!(page.location().starts_with("/login"), "{}", page.location());
    }

    let mut alice = user(&app, "alice").await;
    // The list of logins is written in the background: wait for this one.
    let page = account_until(&mut alice, "this login", |page| {
        listed_logins(page).len() == 1
    })
    .await;
    assert!(page.body.contains("alice"), "{}", page.body);
    for action in ["/account/password", "/account/logins/end", "/logout/all"] {
        let form = html::tags(&page.body, "form")
            .into_iter()
            .find(|tag| html::attribute(tag, "action").as_deref() == Some(action))
            .unwrap_or_else(|| panic!("no form posting to {action}:\n{}", page.body));
        assert_eq!(
            html::attribute(form, "method").map(|m| m.to_ascii_lowercase()),
            Some("post".to_owned()),
            "{form}"
        );
    }
}

async fn changing_the_password_ends_every_other_login_and_keeps_this_one(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let bob = user(&app, "bob").await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;
    let phone_saved = Saved::of(&phone);

    let page = change_password(&mut laptop, PASSWORD, NEW_PASSWORD).await;
    page.assert_see_other("/account?changed=1");
    assert!(!page.body.contains(NEW_PASSWORD), "the password was echoed");

    // The phone's socket closes at once, and its login is over.
    let closed = phone_ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(closed, (1008, "Revoked".to_owned()), "the phone's socket");
    assert_refused(&app, &mut phone, &phone_saved).await;

    // The laptop stays logged in: pages, API, and its open socket.
    let notice = laptop.get("/account?changed=1").await;
    notice.assert_status(200);
    assert!(notice.body.contains("Password changed"), "{}", notice.body);
    assert_logged_in(&mut laptop, "alice").await;
    laptop_ws.expect_silence(QUIET).await;
    let ack = send_and_ack(&mut laptop_ws, room, "still here", "after-change").await;
    let seen = bob_ws.next_of_type("message", WAIT).await;
    assert_eq!(seen["id"], ack["id"], "{seen}");
    // Its list of logins holds it alone, with its socket.
    let listed = logins_until(&mut laptop, 1).await;
    assert!(listed[0].this_device, "{listed:?}");
    assert_eq!(listed[0].sockets, 1, "{}", listed[0].markup);
    // And it can still change what it needs to: a form post works.
    create_room(&mut laptop, "after the change").await;

    // The new password logs in from a third browser; the old one no longer.
    assert_eq!(login_status(&app, PASSWORD).await, 400, "the old password");
    assert_eq!(login_status(&app, NEW_PASSWORD).await, 303, "the new one");
    let mut api = Browser::new(&app);
    let old = api
        .post_json("/login", json!({"email": EMAIL, "password": PASSWORD}))
        .await;
    assert_eq!(old.status, 401, "the JSON login took the old password");

    event_until(&mut laptop, "Password changed").await;
}

async fn a_wrong_current_password_changes_nothing(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;

    let wrong = "not the current password";
    let page = change_password(&mut laptop, wrong, NEW_PASSWORD).await;
    page.assert_status(400);
    assert!(
        page.body.to_lowercase().contains("current password"),
        "no word about the current password: {}",
        page.body
    );
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    for secret in [wrong, NEW_PASSWORD] {
        assert!(!page.body.contains(secret), "{secret:?} was echoed");
    }

    // Without a CSRF token, even the right password changes nothing.
    let page = laptop
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    page.assert_status(403);

    phone_ws.expect_silence(QUIET).await;
    phone_ws.assert_alive(room).await;
    laptop_ws.assert_alive(room).await;
    assert_logged_in(&mut phone, "alice").await;
    assert_logged_in(&mut laptop, "alice").await;
    assert_eq!(logins_until(&mut laptop, 2).await.len(), 2);
    assert_eq!(login_status(&app, PASSWORD).await, 303, "the old password");
    assert_eq!(
        login_status(&app, NEW_PASSWORD).await,
        400,
        "the refused one"
    );
}

async fn an_invalid_new_password_changes_nothing(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;

    let too_long = "é".repeat(37);
    for (new, says) in [
        ("short", "at least 8 bytes"),
        ("", "at least 8 bytes"),
        (too_long.as_str(), "at most 72 bytes"),
        ("eight\0bytes and more", "NUL"),
    ] {
        let page = change_password(&mut laptop, PASSWORD, new).await;
        assert_eq!(page.status, 400, "new password {new:?}: {}", page.body);
        assert!(page.body.contains(says), "{new:?}: {}", page.body);
        assert!(!page.body.contains(PASSWORD), "the current one was echoed");
        if new.len() > 2 {
            assert!(!page.body.contains(new), "{new:?} was echoed");
        }
    }

    phone_ws.expect_silence(QUIET).await;
    phone_ws.assert_alive(room).await;
    assert_logged_in(&mut phone, "alice").await;
    assert_logged_in(&mut laptop, "alice").await;
    assert_eq!(login_status(&app, PASSWORD).await, 303, "the old password");
}

async fn logging_out_everywhere_from_the_account_page_ends_every_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;
    let (laptop_saved, phone_saved) = (Saved::of(&laptop), Saved::of(&phone));
    let mut saved_laptop = laptop.fork();
    assert_eq!(logins_until(&mut laptop, 2).await.len(), 2);

    // The button of the account page, with the page's own token.
    let page = laptop.submit("/account", "/logout/all", &[]).await;
    page.assert_see_other("/login");
    assert!(!laptop.has_credential(), "{:?}", laptop.jar);
    for (name, ws) in [("laptop", &mut laptop_ws), ("phone", &mut phone_ws)] {
        let closed = ws.expect_close(CLOSE_WITHIN).await;
        assert_eq!(closed, (1008, "Revoked".to_owned()), "the {name}'s socket");
    }
    bob_ws.expect_silence(QUIET).await;
    bob_ws.assert_alive(room).await;

    assert_login_redirect(&laptop.get("/account").await, "/account");
    assert_refused(&app, &mut saved_laptop, &laptop_saved).await;
    assert_refused(&app, &mut phone, &phone_saved).await;
    assert_logged_in(&mut bob, "bob").await;

    // Logging in again lists this login alone, and the event.
    laptop.login(EMAIL, PASSWORD).await;
    let listed = logins_until(&mut laptop, 1).await;
    assert!(listed[0].this_device, "{listed:?}");
    event_until(&mut laptop, "Logged out everywhere").await;
}

async fn the_login_list_names_each_device_and_counts_its_sockets(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut firefox = log_in_with_agent(&app, EMAIL, FIREFOX_ON_LINUX).await;
    let chrome = log_in_with_agent(&app, EMAIL, CHROME_ON_WINDOWS).await;
    let mut bob = user(&app, "bob").await;

    let listed = logins_until(&mut firefox, 2).await;
    let mut devices: Vec<&str> = listed.iter().map(|l| l.device.as_str()).collect();
    devices.sort_unstable();
    assert_eq!(
        devices,
        ["Chrome on Windows", "Firefox on Linux"],
        "{listed:?}"
    );
    let this: Vec<&Listed> = listed.iter().filter(|l| l.this_device).collect();
    assert_eq!(this.len(), 1, "exactly one is this device: {listed:?}");
    assert_eq!(this[0].device, "Firefox on Linux", "{listed:?}");
    assert_ne!(listed[0].handle, listed[1].handle, "{listed:?}");
    for login in &listed {
        assert_eq!(login.sockets, 0, "{}", login.markup);
        assert!(
            login.markup.contains("0 open connections"),
            "{}",
            login.markup
        );
        assert!(
            login.markup.contains("127.0.0.1"),
            "no address: {}",
            login.markup
        );
        assert!(!login.handle.is_empty(), "{}", login.markup);
    }
    // Bob sees his own login only, never Alice's.
    let bobs = logins_until(&mut bob, 1).await;
    assert!(bobs[0].this_device, "{bobs:?}");
    assert!(listed.iter().all(|l| l.handle != bobs[0].handle));

    // Open sockets are counted per login: one on Chrome, two on Firefox.
    let (_chrome_ws, _) = ws_authenticated(&app, &chrome).await;
    let (_firefox_ws, _) = ws_authenticated(&app, &firefox).await;
    let (_firefox_ws2, _) = ws_authenticated(&app, &firefox).await;
    let page = account(&mut firefox).await;
    let listed = listed_logins(&page);
    let by_device = |device: &str| {
        listed
            .iter()
            .find(|l| l.device == device)
            .unwrap_or_else(|| panic!("no {device} in {listed:?}"))
    };
    let chrome_entry = by_device("Chrome on Windows");
    assert_eq!(chrome_entry.sockets, 1, "{}", chrome_entry.markup);
    assert!(
        chrome_entry.markup.contains("1 open connection,")
            || chrome_entry.markup.contains("1 open connection<"),
        "not in the singular: {}",
        chrome_entry.markup
    );
    let firefox_entry = by_device("Firefox on Linux");
    assert_eq!(firefox_entry.sockets, 2, "{}", firefox_entry.markup);
    assert!(
        firefox_entry.markup.contains("2 open connections"),
        "{}",
        firefox_entry.markup
    );
}

async fn ending_another_login_closes_its_sockets_and_refuses_it(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut firefox = log_in_with_agent(&app, EMAIL, FIREFOX_ON_LINUX).await;
    let mut chrome = log_in_with_agent(&app, EMAIL, CHROME_ON_WINDOWS).await;
    let room = create_room(&mut firefox, "lobby").await;
    let mut firefox_ws = ws_joined(&app, &firefox, room).await;
    let mut chrome_ws = ws_joined(&app, &chrome, room).await;
    let chrome_saved = Saved::of(&chrome);

    let listed = logins_until(&mut firefox, 2).await;
    let other = listed
        .iter()
        .find(|l| !l.this_device)
        .unwrap_or_else(|| panic!("no other device: {listed:?}"));
    assert_eq!(other.device, "Chrome on Windows", "{listed:?}");
    let page = end_login(&mut firefox, &other.handle).await;
    page.assert_see_other("/account");

    let closed = chrome_ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(
        closed,
        (1008, "Revoked".to_owned()),
        "the ended login's socket"
    );
    assert_refused(&app, &mut chrome, &chrome_saved).await;

    // This device is untouched, and the ended login is off its list.
    firefox_ws.expect_silence(QUIET).await;
    send_and_ack(&mut firefox_ws, room, "still here", "after-end").await;
    assert_logged_in(&mut firefox, "alice").await;
    let listed = listed_logins(&account(&mut firefox).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].this_device, "{listed:?}");
    assert_eq!(listed[0].device, "Firefox on Linux", "{listed:?}");

    // Ending it again finds nothing to end.
    end_login(&mut firefox, &other.handle)
        .await
        .assert_status(404);
    event_until(&mut firefox, "A login was ended from this page").await;

    // The ended device can log in again, as a new login.
    chrome.login(EMAIL, PASSWORD).await;
    assert_logged_in(&mut chrome, "alice").await;
    let listed = logins_until(&mut firefox, 2).await;
    assert!(
        listed.iter().all(|l| l.handle != other.handle),
        "{listed:?}"
    );
}

async fn the_log_out_button_of_this_device_logs_it_out(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut laptop_ws = ws_joined(&app, &laptop, room).await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;
    let mut saved_laptop = laptop.fork();
    let laptop_saved = Saved::of(&laptop);

    let listed = logins_until(&mut laptop, 2).await;
    let this = listed
        .iter()
        .find(|l| l.this_device)
        .unwrap_or_else(|| panic!("no entry for this device: {listed:?}"));
    assert!(this.markup.contains("Log out"), "{}", this.markup);
    let page = end_login(&mut laptop, &this.handle).await;
    page.assert_see_other("/login");
    assert!(!laptop.has_credential(), "cookies kept: {:?}", laptop.jar);

    let (code, reason) = laptop_ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(
        reason == "Revoked" || reason == "Logged out",
        "a reason that does not send the client to the login page: {reason:?}"
    );
    assert_refused(&app, &mut saved_laptop, &laptop_saved).await;

    // The phone stays.
    phone_ws.expect_silence(QUIET).await;
    phone_ws.assert_alive(room).await;
    assert_logged_in(&mut phone, "alice").await;
    let listed = logins_until(&mut phone, 1).await;
    assert!(listed[0].this_device, "{listed:?}");
}

async fn a_login_of_another_user_cannot_be_ended(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;
    let bobs = logins_until(&mut bob, 1).await;
    let alices = logins_until(&mut alice, 1).await;

    for handle in [bobs[0].handle.as_str(), "no-such-login", ""] {
        let page = end_login(&mut alice, handle).await;
        assert_eq!(page.status, 404, "ending {handle:?}: {}", page.body);
    }

    bob_ws.expect_silence(QUIET).await;
    bob_ws.assert_alive(room).await;
    assert_logged_in(&mut bob, "bob").await;
    assert_logged_in(&mut alice, "alice").await;
    let after = logins_until(&mut bob, 1).await;
    assert_eq!(after[0].handle, bobs[0].handle);
    let after = logins_until(&mut alice, 1).await;
    assert_eq!(after[0].handle, alices[0].handle);
}

async fn ending_a_login_needs_a_valid_csrf_token(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let mut bob = user(&app, "bob").await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut phone_ws = ws_joined(&app, &phone, room).await;
    let listed = logins_until(&mut laptop, 2).await;
    let other = listed
        .iter()
        .find(|l| !l.this_device)
        .unwrap_or_else(|| panic!("no other device: {listed:?}"))
        .handle
        .clone();

    let missing = laptop
        .post_form("/account/logins/end", &[("handle", &other)])
        .await;
    missing.assert_status(403);
    let forged = laptop
        .post_form(
            "/account/logins/end",
            &[("handle", &other), ("csrf_token", "not-a-token")],
        )
        .await;
    forged.assert_status(403);
    // Another user's token is not this user's.
    let bobs_token = account(&mut bob).await.csrf();
    let borrowed = laptop
        .post_form(
            "/account/logins/end",
            &[("handle", &other), ("csrf_token", &bobs_token)],
        )
        .await;
    borrowed.assert_status(403);

    phone_ws.expect_silence(QUIET).await;
    phone_ws.assert_alive(room).await;
    assert_logged_in(&mut phone, "alice").await;
    assert_eq!(listed_logins(&account(&mut laptop).await).len(), 2);
}

async fn the_security_events_list_logins_and_failures_without_secrets(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    event_until(&mut alice, "Account created").await;

    // A failure with an unknown email belongs to nobody's account.
    let mut stranger = Browser::new(&app);
    let unknown = "nobody@example.com";
    let page = stranger
        .submit(
            "/login",
            "/login",
            &[("email", unknown), ("password", PASSWORD)],
        )
        .await;
    page.assert_status(400);
    // A wrong password for Alice's email is hers to see.
    let wrong = "guessing hunter2 again";
    let page = stranger
        .submit("/login", "/login", &[("email", EMAIL), ("password", wrong)])
        .await;
    page.assert_status(400);
    event_until(&mut alice, "Failed login attempt").await;
    // Then a successful login, from another browser.
    second_device(&app).await;
    let page = event_until(&mut alice, "Logged in").await;

    let events = listed_events(&page);
    assert_eq!(
        events,
        ["Logged in", "Failed login attempt", "Account created"],
        "newest first, the unknown email's failure not among them"
    );
    let rows = list_markup(&page, "event-list");
    assert!(rows.contains("127.0.0.1"), "no address: {rows}");
    for secret in [PASSWORD, wrong, EMAIL, unknown] {
        assert!(!page.body.contains(secret), "{secret:?} is on the page");
    }

    // Nor is any of it stored with the events or the list of logins.
    for (table, text) in stored_texts(&app) {
        for secret in [PASSWORD, wrong, EMAIL, unknown, "@"] {
            assert!(
                !text.contains(secret),
                "{table} holds {secret:?} in the row {text:?}"
            );
        }
    }
}

async fn the_listed_address_is_the_peer_unless_it_is_a_trusted_proxy(mode: Mode) {
    let forwarded = [
        ("User-Agent", FIREFOX_ON_LINUX),
        ("X-Forwarded-For", "198.51.100.7"),
    ];
    // Without trusted proxies, anyone's X-Forwarded-For is ignored.
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut spoofing = log_in_with_headers(&app, EMAIL, &forwarded).await;
    let listed = logins_until(&mut spoofing, 1).await;
    assert!(
        listed[0].markup.contains("127.0.0.1"),
        "{}",
        listed[0].markup
    );
    assert!(
        !listed[0].markup.contains("198.51.100.7"),
        "{}",
        listed[0].markup
    );
    let page = event_until(&mut spoofing, "Logged in").await;
    assert!(!page.body.contains("198.51.100.7"), "{}", page.body);
    app.stop().await;

    // Behind a trusted proxy, the client is the address it forwards.
    let app = TestApp::spawn_with(mode, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    user(&app, "alice").await.logout().await;
    let mut proxied = log_in_with_headers(&app, EMAIL, &forwarded).await;
    let listed = logins_until(&mut proxied, 1).await;
    assert!(
        listed[0].markup.contains("198.51.100.7"),
        "{}",
        listed[0].markup
    );
    assert_eq!(listed[0].device, "Firefox on Linux");
    let page = event_until(&mut proxied, "Logged in").await;
    let rows = list_markup(&page, "event-list");
    assert!(rows.contains("198.51.100.7"), "{rows}");
}

async fn an_ended_login_stays_ended_after_a_restart(mode: Mode) {
    let mut app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let mut phone = second_device(&app).await;
    let mut saved_phone = phone.fork();
    let phone_saved = Saved::of(&phone);
    let listed = logins_until(&mut laptop, 2).await;
    let other = listed
        .iter()
        .find(|l| !l.this_device)
        .unwrap_or_else(|| panic!("no other device: {listed:?}"))
        .handle
        .clone();
    end_login(&mut laptop, &other)
        .await
        .assert_see_other("/account");
    assert_refused(&app, &mut phone, &phone_saved).await;

    app.restart().await;
    for browser in [&mut laptop, &mut saved_phone] {
        browser.retarget(&app);
    }
    // The phone's session record (or its access token) outlived the
    // restart; the ended login must not come back with it.
    assert_refused(&app, &mut saved_phone, &phone_saved).await;
    assert_logged_in(&mut laptop, "alice").await;
    let listed = logins_until(&mut laptop, 1).await;
    assert!(listed[0].this_device, "{listed:?}");
}

async fn a_password_change_outlives_a_restart(mode: Mode) {
    let mut app = TestApp::spawn(mode).await;
    let mut laptop = user(&app, "alice").await;
    let phone = second_device(&app).await;
    let mut saved_phone = phone.fork();
    let phone_saved = Saved::of(&phone);
    change_password(&mut laptop, PASSWORD, NEW_PASSWORD)
        .await
        .assert_see_other("/account?changed=1");

    app.restart().await;
    for browser in [&mut laptop, &mut saved_phone] {
        browser.retarget(&app);
    }
    // The device that changed the password stays logged in, sockets too.
    assert_logged_in(&mut laptop, "alice").await;
    let room = create_room(&mut laptop, "lobby").await;
    let mut ws = ws_joined(&app, &laptop, room).await;
    send_and_ack(&mut ws, room, "after the restart", "restart-1").await;
    assert_refused(&app, &mut saved_phone, &phone_saved).await;
    assert_eq!(login_status(&app, PASSWORD).await, 400, "the old password");
    assert_eq!(login_status(&app, NEW_PASSWORD).await, 303, "the new one");
}

/// A row's text columns joined, as read straight from the database file.
#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

/// Every text the app stored in the audit events and the list of logins.
fn stored_texts(app: &TestApp) -> Vec<(&'static str, String)> {
    let path = app.data_dir().join("chat.db");
    let mut conn = SqliteConnection::establish(&path.display().to_string())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut texts = Vec::new();
    for (table, sql) in [
        (
            "audit_events",
            "SELECT kind || ' ' || address AS text FROM audit_events",
        ),
        (
            "logins",
            "SELECT handle || ' ' || user_agent || ' ' || address AS text FROM logins",
        ),
    ] {
        let rows: Vec<TextRow> = diesel::sql_query(sql)
            .load(&mut conn)
            .unwrap_or_else(|e| panic!("reading {table}: {e}"));
        assert!(!rows.is_empty(), "nothing stored in {table}");
        texts.extend(rows.into_iter().map(|r| (table, r.text)));
    }
    texts
}

// ---------------------------------------------------------------------------
// Token mode while Redis is away.

#[actix_rt::test]
async fn jwt_redis_requests_keep_working_while_redis_is_away_and_logouts_cross_after() {
    support::run(redis_outage_in_token_mode()).await;
}

/// The subscribers of every Redis pub/sub channel, added up.
fn subscribers(app: &TestApp) -> usize {
    let redis = app.redis().expect("a Redis app");
    let channels = redis.command(&["PUBSUB", "CHANNELS"]);
    channels
        .lines()
        .filter(|c| !c.is_empty())
        .map(|channel| {
            let answer = redis.command(&["PUBSUB", "NUMSUB", channel]);
            answer
                .lines()
                .nth(1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Waits, bounded, until `count` instances listen on the event channel.
async fn wait_for_subscribers(app: &TestApp, count: usize) {
    let deadline = tokio::time::Instant::now() + BACKGROUND;
    loop {
        let now = subscribers(app);
        if now >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} of {count} instances subscribed to Redis after {BACKGROUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, bounded, until the instance says it is ready.
async fn wait_until_ready(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + BACKGROUND;
    let mut probe = Browser::new(app);
    loop {
        let page = probe.get("/readyz").await;
        if page.status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready {BACKGROUND:?} after Redis came back: {} {}",
            page.status,
            page.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request answered within a few seconds, whatever it answers.
async fn timed(request: impl std::future::Future<Output = Page>, what: &str) -> Page {
    let started = tokio::time::Instant::now();
    let page = request.await;
    assert!(
        started.elapsed() < WAIT,
        "{what} took {:?} while Redis was away",
        started.elapsed()
    );
    page
}

async fn redis_outage_in_token_mode() {
    let mut app = TestApp::spawn(Mode::jwt(Store::Redis)).await;
    let second = app.second_instance().await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let access = alice.access_token().expect("an access token");
    let mut alice_there = alice.fork();
    alice_there.retarget(&second);
    // A phone that logged out before the outage: both instances know.
    let mut phone = second_device(&app).await;
    let phone_access = phone.access_token().expect("an access token");
    phone.logout().await;
    wait_for_subscribers(&app, 2).await;
    let mut here_ws = ws_joined(&app, &alice, room).await;
    let mut there_ws = ws_joined(&second, &alice, room).await;

    app.redis_mut().expect("a Redis app").stop();

    for (instance, name) in [(&app, "first"), (&second, "second")] {
        let mut api = Browser::new(instance);
        let me = timed(api.get_bearer("/api/me", &access), "the API").await;
        me.assert_status(200);
        assert_eq!(me.json()["username"], "alice", "{name} instance");
        let refused = timed(api.get_bearer("/api/me", &phone_access), "the API").await;
        refused.assert_generic_401();
        // A new socket opens with the token too.
        let mut ws = support::ws_bearer(instance, &access, None)
            .await
            .unwrap_or_else(|status| panic!("{name} instance refused the upgrade: {status}"));
        let hello = ws.next_json(WAIT).await;
        assert_eq!(hello["type"], "authenticated", "{name} instance: {hello}");
    }
    for (browser, name) in [(&mut alice, "first"), (&mut alice_there, "second")] {
        for path in [
            "/rooms".to_owned(),
            format!("/rooms/{room}"),
            "/account".to_owned(),
        ] {
            let page = timed(browser.get(&path), &path).await;
            assert_eq!(
                page.status, 200,
                "{path} on the {name} instance: {}",
                page.body
            );
        }
    }
    here_ws.assert_alive(room).await;
    there_ws.assert_alive(room).await;

    app.redis_mut().expect("a Redis app").restart();
    wait_for_subscribers(&app, 2).await;
    wait_until_ready(&app).await;
    wait_until_ready(&second).await;

    // Logging out on the first instance closes the sockets on both: the
    // second learns it through the event channel, which is back.
    let page = alice.submit("/rooms", "/logout", &[]).await;
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/login")),
        "logging out once Redis is back and both instances say they are ready: {}",
        page.body
    );
    let closed = here_ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(
        closed,
        (1008, "Logged out".to_owned()),
        "the first instance"
    );
    let closed = there_ws.expect_close(CLOSE_WITHIN).await;
    assert_eq!(
        closed,
        (1008, "Logged out".to_owned()),
        "the second instance"
    );
    let mut api = Browser::new(&second);
    api.get_bearer("/api/me", &access)
        .await
        .assert_generic_401();
    assert_login_redirect(&alice_there.get("/rooms").await, "/rooms");
}

// ---------------------------------------------------------------------------
// Token mode with two instances: a login made in the same second as a
// password change or "log out everywhere" (which the valid-after time, at
// whole seconds for tokens, cannot tell apart) is refused on every instance.

#[actix_rt::test]
async fn jwt_redis_a_password_change_refuses_a_login_of_the_same_second_everywhere() {
    support::run(a_login_of_the_same_second_is_refused_everywhere(false)).await;
}

#[actix_rt::test]
async fn jwt_redis_logging_out_everywhere_refuses_a_login_of_the_same_second_everywhere() {
    support::run(a_login_of_the_same_second_is_refused_everywhere(true)).await;
}

/// Waits, bounded, until `instance` refuses `access` on the API: the event
/// that tells it has to cross Redis first.
async fn refused_within(instance: &TestApp, access: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut api = Browser::new(instance);
    loop {
        let page = api.get_bearer("/api/me", access).await;
        if page.status == 401 {
            return true;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_login_of_the_same_second_is_refused_everywhere(everywhere: bool) {
    use support::tokens::{now_secs, time_claim, wait_past_second};

    let app = TestApp::spawn(Mode::jwt(Store::Redis)).await;
    let second = app.second_instance().await;
    let mut laptop = user(&app, "alice").await;
    let csrf = account(&mut laptop).await.csrf();
    wait_for_subscribers(&app, 2).await;

    // Start a fresh second, so that the phone's login and the change that
    // follows it at once most likely share it.
    wait_past_second(now_secs()).await;
    let phone = second_device(&app).await;
    let access = phone.access_token().expect("an access token");
    let page = if everywhere {
        laptop
            .post_form("/logout/all", &[("csrf_token", &csrf)])
            .await
    } else {
        laptop
            .post_form(
                "/account/password",
                &[
                    ("current_password", PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("csrf_token", &csrf),
                ],
            )
            .await
    };
    let same_second = now_secs() == time_claim(&access, "iat");
    page.assert_status(303);
    eprintln!("the phone's login shared the change's second: {same_second}");

    // The first instance refuses the phone at once, the second as soon as
    // the event has crossed.
    let mut api = Browser::new(&app);
    api.get_bearer("/api/me", &access)
        .await
        .assert_generic_401();
    assert!(
        refused_within(&second, &access, Duration::from_secs(2)).await,
        "the second instance still takes the phone's access token 2 s after \
         the change (same second: {same_second})"
    );
    let mut ws = support::ws_bearer(&second, &access, None)
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"));
    ws.expect_auth_error("Invalid token", WAIT).await;
}
