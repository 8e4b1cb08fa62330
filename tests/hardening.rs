//! Cases found by attacking the app: sockets keep their session alive and
//! notice when it is gone, a frame announcing too many bytes is refused
//! from its header, reserved bits are a protocol error, multi-line form
//! posts keep their lines, and compressed logins are read like plain ones.

mod support;

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use support::*;

both_stores!(an_open_socket_keeps_its_idle_session_alive);

mod every_mode {
    use super::*;

    all_modes!(
        a_frame_header_announcing_more_than_64_kib_closes_with_1009_at_once,
        a_frame_with_reserved_bits_closes_with_1002,
        a_multi_line_form_post_keeps_its_lines,
        a_gzip_encoded_json_login_is_read_like_a_plain_one,
    );
}

async fn an_open_socket_keeps_its_idle_session_alive(store: Store) {
    let app = TestApp::spawn_with(
        store,
        &[("SESSION_IDLE_SECS", "4"), ("SESSION_MAX_SECS", "600")],
    )
    .await;
    let mut ann = user(&app, "ann").await;
    let (mut ws, _) = ws_authenticated(&app, &ann).await;
    // Past the idle limit, with only the socket in use.
    ws.expect_silence(Duration::from_secs(6)).await;
    let me = ann.get("/api/me").await;
    assert_eq!(
        me.status, 200,
        "the socket's activity should have kept the session"
    );
}

/// A masked text frame header announcing `len` payload bytes.
fn header(len: u64) -> Vec<u8> {
    let mut out = vec![0x81, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

pub(crate) async fn a_frame_header_announcing_more_than_64_kib_closes_with_1009_at_once(
    mode: Mode,
) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let (mut ws, _) = ws_authenticated(&app, &ann).await;
    ws.send_raw_bytes(&header(1 << 40)).await;
    // A little payload, far less than announced: the server must not wait
    // for the rest before refusing.
    ws.send_raw_bytes(&[0u8; 1024]).await;
    let (code, _) = ws.expect_close(Duration::from_secs(3)).await;
    assert_eq!(code, 1009);
}

pub(crate) async fn a_frame_with_reserved_bits_closes_with_1002(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let ann = user(&app, "ann").await;
    let (mut ws, _) = ws_authenticated(&app, &ann).await;
    // FIN + RSV1 + text, masked, empty payload.
    ws.send_raw_bytes(&[0xC1, 0x80, 1, 2, 3, 4]).await;
    let (code, _) = ws.expect_close(Duration::from_secs(3)).await;
    assert_eq!(code, 1002);
}

pub(crate) async fn a_multi_line_form_post_keeps_its_lines(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut ann = user(&app, "ann").await;
    let room = create_room(&mut ann, "lines").await;
    // Browsers send a textarea's line ends as CRLF.
    let page = post_message(&mut ann, room, "line one\r\nline two").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let messages = history(&mut ann, room, "").await;
    assert_eq!(messages.last().unwrap()["body"], "line one\nline two");
}

pub(crate) async fn a_gzip_encoded_json_login_is_read_like_a_plain_one(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    user(&app, "ann").await;
    let body = json!({"email": "ann@example.com", "password": PASSWORD}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let client = awc::Client::default();
    let mut res = client
        .post(format!("{}/login", app.origin()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Content-Encoding", "gzip"))
        .send_body(compressed)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["user"]["username"], "ann");
}

#[actix_rt::test]
async fn a_socket_closes_with_session_expired_when_its_session_record_is_gone() {
    run(async {
        let app = TestApp::spawn_with(
            Store::Redis,
            &[("SESSION_IDLE_SECS", "4"), ("SESSION_MAX_SECS", "600")],
        )
        .await;
        let ann = user(&app, "ann").await;
        let (mut ws, _) = ws_authenticated(&app, &ann).await;
        let redis = app.redis().expect("a Redis app");
        assert_eq!(redis.keys("session:*").len(), 1);
        redis.command(&["FLUSHALL"]);
        // The socket looks at its session every idle/2 = 2 seconds.
        let (code, reason) = ws.expect_close(Duration::from_secs(5)).await;
        assert_eq!((code, reason.as_str()), (1008, "Session expired"));
    })
    .await;
}

#[actix_rt::test]
async fn losing_redis_answers_503_quickly_and_recovers_when_it_returns() {
    run(async {
        let panics_before = panics::watch();
        let mut app = TestApp::spawn(Store::Redis).await;
        let mut ann = user(&app, "ann").await;
        // Probes come from orchestrators, without cookies.
        let mut probe = Browser::new(&app);
        assert_eq!(probe.get("/readyz").await.status, 200);
        let room = create_room(&mut ann, "kept").await;
        assert_eq!(
            post_message(&mut ann, room, "acknowledged before")
                .await
                .status,
            303
        );
        app.redis_mut().expect("a Redis app").stop();

        let started = std::time::Instant::now();
        let page = ann.get("/rooms").await;
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let api = ann.get("/api/me").await;
        assert_eq!(api.status, 503);
        let body: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        assert_eq!(body["error"], "service_unavailable");
        assert_eq!(probe.get("/readyz").await.status, 503);
        assert_eq!(probe.get("/healthz").await.status, 200);

        app.redis_mut().expect("a Redis app").restart();
        // The client reconnects by itself; the session itself was lost with
        // Redis's memory (no persistence in the test server), so log in again.
        let mut ready = false;
        for _ in 0..50 {
            if probe.get("/readyz").await.status == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "readyz did not recover");
        assert_eq!(
            panics::since(panics_before),
            0,
            "the app panicked during the outage"
        );
        let page = ann.get("/rooms").await;
        assert_eq!(
            page.status, 303,
            "no session after Redis lost its data: to the login page"
        );
        // Messages live in the database: nothing acknowledged is lost.
        ann.login("ann@example.com", PASSWORD).await;
        let messages = history(&mut ann, room, "").await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["body"], "acknowledged before");
    })
    .await;
}
