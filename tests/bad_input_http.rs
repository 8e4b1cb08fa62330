//! Bad input over HTTP, one case per test, in both modes with both stores:
//! each gets its exact refusal and leaves no row behind (counted in the
//! app's SQLite file, opened read-only).
//!
//! Cases covered elsewhere, not repeated here:
//! - form body over 64 KiB (message post) and JSON login over 64 KiB:
//!   `rooms::an_oversized_body_is_refused_with_413`;
//! - `limit=0`, `limit=101`, `limit=abc`, `before=xyz`:
//!   `rooms::the_api_lists_rooms_and_pages_history_oldest_first`;
//! - a gzip body read like a plain one:
//!   `hardening::a_gzip_encoded_json_login_is_read_like_a_plain_one`;
//! - username and email that differ only by case:
//!   `accounts::a_taken_username_or_email_is_a_conflict_whatever_the_case`;
//! - a username with a letter of another script (confusable skeleton):
//!   `accounts::a_look_alike_username_is_taken`;
//! - a password over 72 bytes: `accounts::a_password_over_72_bytes_is_refused`;
//! - a new password with NUL: `account::an_invalid_new_password_changes_nothing`;
//! - a JSON login without a JSON content type:
//!   `accounts::the_json_login_needs_a_json_content_type`;
//! - token-mode access tokens in the query string (`access_token`, `token`,
//!   `jwt`, …) on the API, pages and `/ws`:
//!   `tokens::tokens_in_the_query_string_never_authenticate` (here: every
//!   credential name, session cookies included, in both modes).

mod support;

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use awc::http::Method;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::json;
use support::*;

all_modes!(
    an_oversized_registration_form_is_413_and_creates_no_account,
    a_gzip_bomb_registration_is_413_and_creates_no_account,
    a_gzip_bomb_json_login_is_413,
    a_brotli_bomb_room_form_is_413_and_memory_stays_flat,
    a_brotli_bomb_json_login_is_413,
    a_body_in_an_unknown_encoding_is_415,
    a_corrupt_gzip_body_is_400,
    invalid_utf8_in_a_form_value_is_400_and_stores_nothing,
    raw_invalid_utf8_in_a_form_is_400_and_stores_nothing,
    invalid_utf8_in_a_json_login_is_400,
    deeply_nested_json_is_400,
    a_json_login_with_a_repeated_key_is_400_even_when_the_last_is_right,
    a_form_login_with_a_repeated_field_is_400,
    a_registration_with_a_repeated_field_is_400_and_creates_no_account,
    a_message_form_with_a_repeated_body_is_400_and_stores_nothing,
    history_numbers_out_of_range_are_400,
    room_ids_that_do_not_fit_are_404,
    control_characters_in_a_username_are_refused,
    control_characters_in_an_email_are_refused,
    control_characters_in_a_room_name_are_refused,
    control_characters_in_a_message_body_are_refused,
    tabs_and_newlines_in_a_message_body_are_kept,
    a_password_with_nul_is_refused_at_registration,
    a_full_width_username_or_email_collides_with_the_plain_one,
    invisible_and_bidi_characters_in_a_username_are_refused,
    invisible_and_bidi_characters_in_an_email_are_refused,
    a_name_wholly_in_another_script_is_welcome,
    credentials_in_the_query_string_never_authenticate,
);

/// Largest body the app reads (`BODY_LIMIT`).
const LIMIT: usize = 64 * 1024;
/// What every bomb inflates to: far past the limit.
const BOMB_BYTES: usize = 256 << 20;

// ---------------------------------------------------------------------------
// What the database holds.

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Row counts of the tables a bad input could write to.
#[derive(Debug, PartialEq, Eq)]
struct Rows(Vec<(&'static str, i64)>);

fn rows(app: &TestApp) -> Rows {
    let path = app.data_dir().join("chat.db");
    let url = format!("file:{}?mode=ro", path.display());
    let mut conn = SqliteConnection::establish(&url)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", path.display()));
    let tables = [
        "users",
        "rooms",
        "messages",
        "sessions",
        "refresh_tokens",
        "refresh_families",
    ];
    Rows(
        tables
            .into_iter()
            .map(|table| {
                let sql = format!("SELECT COUNT(*) AS n FROM {table}");
                let found: Vec<Count> = diesel::sql_query(sql)
                    .load(&mut conn)
                    .unwrap_or_else(|e| panic!("counting {table}: {e}"));
                (table, found.first().map_or(0, |c| c.n))
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// Sending what no browser sends.

/// POSTs raw bytes with a content type and extra headers.
async fn post_raw(
    browser: &mut Browser,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    bytes: Vec<u8>,
) -> Page {
    browser
        .request(
            Method::POST,
            path,
            headers,
            Body::Raw {
                content_type: content_type.to_owned(),
                bytes,
            },
        )
        .await
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// A form body from already-encoded `name=value` parts, with the page's
/// CSRF token added.
fn form_bytes(csrf: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut body = format!("csrf_token={}", encode_component(csrf)).into_bytes();
    for part in parts {
        body.push(b'&');
        body.extend_from_slice(part);
    }
    body
}

/// The CSRF token of a page's form.
async fn csrf_of(browser: &mut Browser, page: &str) -> String {
    let form = browser.get(page).await;
    form.assert_status(200);
    form.csrf()
}

#[track_caller]
fn assert_api_error(page: &Page, status: u16, code: &str) {
    page.assert_status(status);
    assert_eq!(page.json()["error"], code, "{}", page.body);
}

// ---------------------------------------------------------------------------
// Bombs: small on the wire, hundreds of MiB once inflated. Built once per
// test process.

/// gzip of `BOMB_BYTES` zeros: one fully flushed deflate block of 1 MiB of
/// zeros (it needs nothing before it), repeated, then a final empty block
/// and the true CRC and length.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let zeros = vec![0u8; 1 << 20];
        let mut deflate = flate2::Compress::new(flate2::Compression::best(), false);
        let mut block = Vec::with_capacity(1 << 16);
        deflate
            .compress_vec(&zeros, &mut block, flate2::FlushCompress::Full)
            .unwrap();
        let mut one = flate2::Crc::new();
        one.update(&zeros);
        let mut crc = flate2::Crc::new();
        let copies = BOMB_BYTES >> 20;
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        for _ in 0..copies {
            out.extend_from_slice(&block);
            crc.combine(&one);
        }
        // A final stored block of no bytes.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(crc.amount()).to_le_bytes());
        out
    })
}

/// brotli of `BOMB_BYTES` zeros.
fn brotli_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let zeros = vec![0u8; 1 << 20];
        let mut writer = brotli::CompressorWriter::new(Vec::new(), 1 << 16, 5, 24);
        for _ in 0..(BOMB_BYTES >> 20) {
            writer.write_all(&zeros).unwrap();
        }
        writer.into_inner()
    })
}

/// The peak resident memory of this process so far, in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

// ---------------------------------------------------------------------------
// Bodies over the limit.

async fn an_oversized_registration_form_is_413_and_creates_no_account(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut visitor = Browser::new(&app);
    let csrf = csrf_of(&mut visitor, "/register").await;
    let before = rows(&app);
    let big = format!(
        "username=bob&email=bob%40example.com&password={}",
        "p".repeat(LIMIT)
    );
    let page = post_raw(
        &mut visitor,
        "/register",
        FORM,
        &[],
        form_bytes(&csrf, &[big.as_bytes()]),
    )
    .await;
    page.assert_status(413);
    assert_eq!(rows(&app), before);
}

async fn a_gzip_bomb_registration_is_413_and_creates_no_account(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let bomb = gzip_bomb().to_vec();
    let mut visitor = Browser::new(&app);
    let before = rows(&app);
    let page = post_raw(
        &mut visitor,
        "/register",
        FORM,
        &[("Content-Encoding", "gzip")],
        bomb,
    )
    .await;
    page.assert_status(413);
    assert_eq!(rows(&app), before);
}

async fn a_gzip_bomb_json_login_is_413(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let bomb = gzip_bomb().to_vec();
    let mut client = Browser::new(&app);
    let page = post_raw(
        &mut client,
        "/login",
        JSON,
        &[("Content-Encoding", "gzip")],
        bomb,
    )
    .await;
    assert_api_error(&page, 413, "payload_too_large");
}

async fn a_brotli_bomb_room_form_is_413_and_memory_stays_flat(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let bomb = brotli_bomb().to_vec();
    assert!(bomb.len() < 4096, "not small on the wire: {}", bomb.len());
    let mut alice = user(&app, "alice").await;
    let before = rows(&app);
    let peak = peak_memory();
    let page = post_raw(
        &mut alice,
        "/rooms",
        FORM,
        &[("Content-Encoding", "br")],
        bomb,
    )
    .await;
    page.assert_status(413);
    let grown = peak_memory().saturating_sub(peak);
    // Inflating the whole bomb would take 256 MiB at once; the bounded
    // decoder needs its window (at most 16 MiB) and the 64 KiB body.
    assert!(
        grown < 128 << 20,
        "peak memory grew by {} MiB while refusing the bomb",
        grown >> 20
    );
    assert_eq!(rows(&app), before);
}

async fn a_brotli_bomb_json_login_is_413(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let bomb = brotli_bomb().to_vec();
    let mut client = Browser::new(&app);
    let page = post_raw(
        &mut client,
        "/login",
        JSON,
        &[("Content-Encoding", "br")],
        bomb,
    )
    .await;
    assert_api_error(&page, 413, "payload_too_large");
    assert!(!page.sets_credential(mode.auth));
}

async fn a_body_in_an_unknown_encoding_is_415(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut client = Browser::new(&app);
    let body = json!({"email": "alice@example.com", "password": PASSWORD}).to_string();
    for encoding in ["compress", "gzip, br", "snappy"] {
        let page = post_raw(
            &mut client,
            "/login",
            JSON,
            &[("Content-Encoding", encoding)],
            body.clone().into_bytes(),
        )
        .await;
        assert_api_error(&page, 415, "unsupported_encoding");
        assert!(!page.sets_credential(mode.auth), "{encoding}");
    }
}

async fn a_corrupt_gzip_body_is_400(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut client = Browser::new(&app);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"email":"a@example.com","password":"whatever it is"}"#)
        .unwrap();
    let mut bytes = gz.finish().unwrap();
    // Cut short: the trailer and part of the data are missing.
    bytes.truncate(bytes.len() - 12);
    let page = post_raw(
        &mut client,
        "/login",
        JSON,
        &[("Content-Encoding", "gzip")],
        bytes,
    )
    .await;
    assert_api_error(&page, 400, "bad_request");
}

// ---------------------------------------------------------------------------
// Invalid UTF-8, nesting, repeated keys.

async fn invalid_utf8_in_a_form_value_is_400_and_stores_nothing(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let csrf = csrf_of(&mut alice, &format!("/rooms/{room}")).await;
    let before = rows(&app);
    // Percent-encoded bytes that are no UTF-8: a lenient decoder would
    // store U+FFFD in their place.
    let page = post_raw(
        &mut alice,
        &format!("/rooms/{room}/messages"),
        FORM,
        &[],
        form_bytes(&csrf, &[b"body=caf%E9+au+lait+%FF"]),
    )
    .await;
    page.assert_status(400);
    assert!(page.body.contains("not valid UTF-8"), "{}", page.body);
    assert_eq!(rows(&app), before);
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn raw_invalid_utf8_in_a_form_is_400_and_stores_nothing(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut visitor = Browser::new(&app);
    let csrf = csrf_of(&mut visitor, "/register").await;
    let before = rows(&app);
    let page = post_raw(
        &mut visitor,
        "/register",
        FORM,
        &[],
        form_bytes(
            &csrf,
            &[
                b"username=bob\xc3\x28",
                b"email=bob%40example.com",
                b"password=long+enough+pass",
            ],
        ),
    )
    .await;
    page.assert_status(400);
    assert!(page.body.contains("not valid UTF-8"), "{}", page.body);
    assert_eq!(rows(&app), before);
}

async fn invalid_utf8_in_a_json_login_is_400(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut client = Browser::new(&app);
    let mut body = br#"{"email":"alice@example.com","password":""#.to_vec();
    body.extend_from_slice(b"correct horse\xff battery staple\"}");
    let page = post_raw(&mut client, "/login", JSON, &[], body).await;
    assert_api_error(&page, 400, "bad_request");
    assert!(!page.sets_credential(mode.auth));
}

async fn deeply_nested_json_is_400(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut client = Browser::new(&app);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let page = post_raw(&mut client, "/login", JSON, &[], deep.into_bytes()).await;
    assert_api_error(&page, 400, "bad_request");
    let deep = format!(
        r#"{{"email":"a@example.com","password":{}{}}}"#,
        r#"{"a":"#.repeat(5_000),
        "}".repeat(5_000)
    );
    let page = post_raw(&mut client, "/login", JSON, &[], deep.into_bytes()).await;
    assert_api_error(&page, 400, "bad_request");
    if mode.auth == Auth::Jwt {
        let deep = format!(
            r#"{{"refreshToken":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let page = post_raw(&mut client, "/auth/refresh", JSON, &[], deep.into_bytes()).await;
        assert_api_error(&page, 400, "bad_request");
    }
}

async fn a_json_login_with_a_repeated_key_is_400_even_when_the_last_is_right(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let mut client = Browser::new(&app);
    let before = rows(&app);
    for body in [
        format!(
            r#"{{"email":"alice@example.com","password":"wrong password","password":"{PASSWORD}"}}"#
        ),
        format!(
            r#"{{"email":"mallory@example.com","email":"alice@example.com","password":"{PASSWORD}"}}"#
        ),
    ] {
        let page = post_raw(&mut client, "/login", JSON, &[], body.into_bytes()).await;
        assert_api_error(&page, 400, "bad_request");
        assert!(page.body.contains("duplicate field"), "{}", page.body);
        assert!(!page.sets_credential(mode.auth));
    }
    assert_eq!(rows(&app), before);
}

async fn a_form_login_with_a_repeated_field_is_400(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await.logout().await;
    let mut visitor = Browser::new(&app);
    let csrf = csrf_of(&mut visitor, "/login").await;
    let password = format!("password={}", encode_component(PASSWORD));
    let page = post_raw(
        &mut visitor,
        "/login",
        FORM,
        &[],
        form_bytes(
            &csrf,
            &[
                b"email=mallory%40example.com",
                b"email=alice%40example.com",
                password.as_bytes(),
            ],
        ),
    )
    .await;
    page.assert_status(400);
    assert!(page.body.contains("more than once"), "{}", page.body);
    assert!(!page.sets_credential(mode.auth));
    assert_logged_out(&mut visitor).await;
}

async fn a_registration_with_a_repeated_field_is_400_and_creates_no_account(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut visitor = Browser::new(&app);
    let csrf = csrf_of(&mut visitor, "/register").await;
    let before = rows(&app);
    let page = post_raw(
        &mut visitor,
        "/register",
        FORM,
        &[],
        form_bytes(
            &csrf,
            &[
                b"username=bob",
                b"username=admin",
                b"email=bob%40example.com",
                b"password=long+enough+pass",
            ],
        ),
    )
    .await;
    page.assert_status(400);
    assert!(page.body.contains("more than once"), "{}", page.body);
    assert_eq!(rows(&app), before);
}

async fn a_message_form_with_a_repeated_body_is_400_and_stores_nothing(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let csrf = csrf_of(&mut alice, &format!("/rooms/{room}")).await;
    let before = rows(&app);
    let page = post_raw(
        &mut alice,
        &format!("/rooms/{room}/messages"),
        FORM,
        &[],
        form_bytes(&csrf, &[b"body=first+one", b"body=second+one"]),
    )
    .await;
    page.assert_status(400);
    assert_eq!(rows(&app), before);
    assert!(history(&mut alice, room, "").await.is_empty());
}

// ---------------------------------------------------------------------------
// Numbers out of range.

async fn history_numbers_out_of_range_are_400(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    for query in [
        "?limit=99999999999999999999",
        "?limit=-1",
        "?limit=1.5",
        "?before=-1",
        "?before=0",
        "?before=99999999999999999999",
        "?limit=10&limit=20",
        "?before=1&extra=2",
    ] {
        let page = alice
            .get(&format!("/api/rooms/{room}/messages{query}"))
            .await;
        assert_api_error(&page, 400, "bad_request");
        assert!(!page.body.is_empty(), "{query}");
    }
}

async fn room_ids_that_do_not_fit_are_404(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let csrf = csrf_of(&mut alice, &format!("/rooms/{room}")).await;
    let before = rows(&app);
    for id in [
        "18446744073709551616",
        "abc",
        "-1",
        "0",
        "1.5",
        "9223372036854775807",
    ] {
        let page = alice.get(&format!("/api/rooms/{id}/messages")).await;
        assert_api_error(&page, 404, "not_found");
        let page = alice.get(&format!("/rooms/{id}")).await;
        assert_eq!(page.status, 404, "/rooms/{id}: {}", page.body);
        let page = post_raw(
            &mut alice,
            &format!("/rooms/{id}/messages"),
            FORM,
            &[],
            form_bytes(&csrf, &[b"body=nowhere+to+go"]),
        )
        .await;
        assert_eq!(page.status, 404, "POST /rooms/{id}/messages: {}", page.body);
    }
    assert_eq!(rows(&app), before);
}

// ---------------------------------------------------------------------------
// NUL and control characters.

/// Submits the registration form and returns the page.
async fn register_with(app: &TestApp, username: &str, email: &str, password: &str) -> Page {
    let mut visitor = Browser::new(app);
    visitor
        .submit(
            "/register",
            "/register",
            &[
                ("username", username),
                ("email", email),
                ("password", password),
            ],
        )
        .await
}

async fn control_characters_in_a_username_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let before = rows(&app);
    for name in [
        "bob\0by",
        "bob\u{7}by",
        "bob\nby",
        "bob\u{1b}[31m",
        "bob\u{85}by",
    ] {
        let page = register_with(&app, name, "bob@example.com", PASSWORD).await;
        assert_eq!(page.status, 400, "{name:?}: {}", page.body);
        assert!(page.body.contains("Username may only contain"), "{name:?}");
    }
    assert_eq!(rows(&app), before);
}

async fn control_characters_in_an_email_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let before = rows(&app);
    for email in [
        "bob\0@example.com",
        "bob@exa\tmple.com",
        "bob@example.com\u{7f}x",
    ] {
        let page = register_with(&app, "bob", email, PASSWORD).await;
        assert_eq!(page.status, 400, "{email:?}: {}", page.body);
        assert!(page.body.contains("Enter an email address"), "{email:?}");
    }
    assert_eq!(rows(&app), before);
}

async fn control_characters_in_a_room_name_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let before = rows(&app);
    for name in [
        "lob\0by",
        "lob\u{7}by",
        "lob\nby",
        "lob\u{202e}by",
        "lob\u{200b}by",
    ] {
        let page = alice.submit("/rooms", "/rooms", &[("name", name)]).await;
        assert_eq!(page.status, 400, "{name:?}: {}", page.body);
        assert!(
            page.body.contains("must not contain control or invisible"),
            "{name:?}: {}",
            page.body
        );
    }
    assert_eq!(rows(&app), before);
}

async fn control_characters_in_a_message_body_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let before = rows(&app);
    for body in [
        "null \0 byte here",
        "bell \u{7} rings here",
        "escape \u{1b}[2J here",
    ] {
        let page = post_message(&mut alice, room, body).await;
        assert_eq!(page.status, 400, "{body:?}: {}", page.body);
        assert!(page.body.contains("Message contains control characters"));
    }
    assert_eq!(rows(&app), before);
    assert!(history(&mut alice, room, "").await.is_empty());
}

async fn tabs_and_newlines_in_a_message_body_are_kept(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let room = create_room(&mut alice, "lobby").await;
    let page = post_message(&mut alice, room, "col one\tcol two\nnext line").await;
    page.assert_see_other(&format!("/rooms/{room}"));
    let messages = history(&mut alice, room, "").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "col one\tcol two\nnext line");
}

async fn a_password_with_nul_is_refused_at_registration(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let before = rows(&app);
    let page = register_with(&app, "bob", "bob@example.com", "eight\0bytes and more").await;
    page.assert_status(400);
    assert!(page.body.contains("NUL"), "{}", page.body);
    assert_eq!(rows(&app), before);
}

// ---------------------------------------------------------------------------
// Identities.

async fn a_full_width_username_or_email_collides_with_the_plain_one(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    register_with(&app, "fi3x", "first@example.com", PASSWORD)
        .await
        .assert_see_other("/rooms");
    let before = rows(&app);
    for (username, email) in [
        // Full-width letters: the same as the plain ones under NFKC.
        ("ａｌｉｃｅ", "other@example.com"),
        ("carol", "ａｌｉｃｅ@example.com"),
        // A ligature and a full-width digit.
        ("\u{fb01}３x", "third@example.com"),
    ] {
        let page = register_with(&app, username, email, PASSWORD).await;
        assert_eq!(page.status, 409, "{username} / {email}: {}", page.body);
    }
    assert_eq!(rows(&app), before);
}

async fn invisible_and_bidi_characters_in_a_username_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let before = rows(&app);
    for name in [
        "ali\u{200b}ce",
        "ali\u{200d}ce",
        "ali\u{202e}ce",
        "ali\u{2066}ce",
        "\u{feff}alice",
        "ali\u{ad}ce",
    ] {
        let page = register_with(&app, name, "new@example.com", PASSWORD).await;
        assert_eq!(page.status, 400, "{name:?}: {}", page.body);
    }
    assert_eq!(rows(&app), before);
}

async fn invisible_and_bidi_characters_in_an_email_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "alice").await;
    let before = rows(&app);
    for email in [
        "ali\u{200b}ce@example.com",
        "alice@exam\u{200d}ple.com",
        "alice@example.com\u{202e}",
        "\u{2066}alice@example.com",
        "ali\u{ad}ce@example.com",
    ] {
        let page = register_with(&app, "mallory", email, PASSWORD).await;
        assert_eq!(page.status, 400, "{email:?}: {}", page.body);
        assert!(page.body.contains("Enter an email address"), "{email:?}");
    }
    assert_eq!(rows(&app), before);
}

async fn a_name_wholly_in_another_script_is_welcome(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    for (name, email) in [
        ("мария", "maria@example.com"),
        ("ελένη", "eleni@example.com"),
        ("さくら", "sakura@example.com"),
    ] {
        let page = register_with(&app, name, email, PASSWORD).await;
        page.assert_see_other("/rooms");
    }
}

// ---------------------------------------------------------------------------
// Credentials in the query string.

async fn credentials_in_the_query_string_never_authenticate(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = user(&app, "alice").await;
    let credentials: Vec<(&str, String)> = mode
        .auth
        .credential_cookies()
        .iter()
        .map(|name| (*name, alice.jar.get(name).unwrap().to_owned()))
        .collect();
    let names = [
        "token",
        "access_token",
        "accessToken",
        "refresh_token",
        "session",
        "session_id",
        "chat_session",
        "chat_access",
        "chat_refresh",
    ];
    let mut stranger = Browser::new(&app);
    for (_, value) in &credentials {
        let value = encode_component(value);
        for name in names {
            let page = stranger.get(&format!("/api/me?{name}={value}")).await;
            assert_eq!(page.status, 401, "{name}: {}", page.body);
            assert_eq!(page.json()["error"], "not_authenticated");
            let page = stranger.get(&format!("/rooms?{name}={value}")).await;
            assert_eq!(page.status, 303, "{name}");
            assert!(page.location().starts_with("/login"), "{name}");

            let url = format!("{}?{name}={value}", app.ws_url());
            let opened = support::ws::ws_open_at(&url, None, &[], Some(&app.origin())).await;
            match (mode.auth, opened) {
                (Auth::Session, Err(status)) => assert_eq!(status, 401, "{name}"),
                (Auth::Session, Ok(_)) => panic!("{name}: the socket opened"),
                (Auth::Jwt, Err(status)) => panic!("{name}: upgrade refused with {status}"),
                (Auth::Jwt, Ok(mut ws)) => {
                    // Unauthenticated: it waits for `authenticate`.
                    ws.send_json(json!({"type": "join", "roomId": 1})).await;
                    let frame = ws.next_json(Duration::from_secs(5)).await;
                    assert_eq!(frame["type"], "error", "{name}: {frame}");
                    assert_eq!(frame["code"], "not_authenticated", "{name}: {frame}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Requests written byte by byte, for what an HTTP client library will not
// send: a body that stops short, and one header repeated.

/// Writes `head` (and `body`) on a fresh connection and returns the status
/// line of the answer, waiting at most `wait`.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(wait, async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within {wait:?}");
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

#[actix_rt::test]
async fn a_body_that_stops_short_is_408_within_the_deadline() {
    run(async {
        let app = TestApp::spawn(Store::Embedded).await;
        let head = format!(
            "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n",
            app.addr()
        );
        let started = std::time::Instant::now();
        let status = raw_exchange(&app, &head, b"{\"email\"", Duration::from_secs(20)).await;
        assert_eq!(status, "HTTP/1.1 408 Request Timeout");
        assert!(
            started.elapsed() >= Duration::from_secs(9),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[actix_rt::test]
async fn two_content_encoding_lines_are_stacked_encodings_and_415() {
    run(async {
        let app = TestApp::spawn(Store::Embedded).await;
        user(&app, "alice").await;
        let json = json!({"email": "alice@example.com", "password": PASSWORD}).to_string();
        let gzip = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        };
        let body = gzip(&gzip(json.as_bytes()));
        let head = format!(
            "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Encoding: gzip\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            app.addr(),
            body.len()
        );
        let status = raw_exchange(&app, &head, &body, Duration::from_secs(10)).await;
        assert_eq!(status, "HTTP/1.1 415 Unsupported Media Type");
    })
    .await;
}
