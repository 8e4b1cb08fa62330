//! The database going away while the app runs, with the embedded store, in
//! both authentication modes.
//!
//! The outage is a second connection to the same SQLite file that holds an
//! exclusive transaction for longer than the app's 5-second busy timeout.
//! The file is in WAL mode, so readers still read; every write waits the
//! busy timeout out and fails. The app must say so (503 on pages and the
//! API, the `unavailable` error frame on a socket), answer within seconds,
//! store nothing, and after the lock is gone accept the same resend exactly
//! once without losing anything it acknowledged before.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use serde_json::{json, Value};

use support::{
    create_room, history, post_message, user, ws_joined, Auth, Browser, Incoming, Mode, Page,
    Store, TestApp, WsConn, PASSWORD,
};

/// Longest wait for a frame when the database works.
const WAIT: Duration = Duration::from_secs(5);
/// The most an answer may take while the database is locked: the app's
/// busy timeout (5 s) plus a generous margin, far from a hang.
const OUTAGE_ANSWER: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn session_mode_survives_a_database_outage() {
    support::run(a_locked_database_is_503_and_resends_are_stored_once(
        Mode::session(Store::Embedded),
    ))
    .await;
}

#[actix_rt::test]
async fn jwt_mode_survives_a_database_outage() {
    support::run(a_locked_database_is_503_and_resends_are_stored_once(
        Mode::jwt(Store::Embedded),
    ))
    .await;
}

async fn a_locked_database_is_503_and_resends_are_stored_once(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let room = create_room(&mut alice, "lobby").await;
    let mut alice_ws = ws_joined(&app, &alice, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;

    // Acknowledged before the outage: one message by socket, one by form.
    let first = send_and_ack(&mut alice_ws, room, "sent before the outage", "before-1").await;
    let seen = bob_ws.next_of_type("message", WAIT).await;
    assert_eq!(seen["id"], first["id"], "{seen}");
    post_message(&mut alice, room, "posted before the outage")
        .await
        .assert_see_other(&format!("/rooms/{room}"));
    for ws in [&mut alice_ws, &mut bob_ws] {
        let seen = ws.next_of_type("message", WAIT).await;
        assert_eq!(seen["body"], "posted before the outage", "{seen}");
    }
    let acknowledged = history(&mut alice, room, "").await;
    assert_eq!(acknowledged.len(), 2, "{acknowledged:?}");

    let lock = WriteLock::hold(&app.data_dir().join("chat.db"));

    // Everything that writes fails at the same time, each within bounds:
    // pages with an error page, the API with JSON, the socket with a frame.
    let mut page_browser = alice.fork();
    let mut room_browser = alice.fork();
    let mut newcomer = Browser::new(&app);
    let mut api_client = Browser::new(&app);
    let mut refresher = alice.fork();
    let socket = async {
        let started = Instant::now();
        alice_ws
            .send_json(message(room, "sent during the outage", "during-1"))
            .await;
        let frame = alice_ws.next_incoming(OUTAGE_ANSWER).await;
        (started.elapsed(), frame)
    };
    let form_post = timed(post_message(
        &mut page_browser,
        room,
        "posted during the outage",
    ));
    let room_form = timed(room_browser.submit("/rooms", "/rooms", &[("name", "kitchen")]));
    let register = timed(newcomer.submit(
        "/register",
        "/register",
        &[
            ("username", "carol"),
            ("email", "carol@example.com"),
            ("password", PASSWORD),
        ],
    ));
    let api_login = timed(api_client.post_json("/login", bob_login()));
    // Token mode: rotating the pair writes too (the refresh cookie).
    let api_refresh = async {
        match mode.auth {
            Auth::Jwt => Some(timed(refresher.post_json("/auth/refresh", json!({}))).await),
            Auth::Session => None,
        }
    };
    let (socket, form_post, room_form, register, api_login, api_refresh) = futures_util::join!(
        socket,
        form_post,
        room_form,
        register,
        api_login,
        api_refresh
    );

    // Readers are not blocked by a writer in WAL mode; checked while the
    // lock is still held.
    let during = history(&mut alice, room, "").await;
    assert_eq!(during, acknowledged, "reads changed during the outage");
    lock.release();

    let (took, frame) = socket;
    assert!(took < OUTAGE_ANSWER, "the socket answered after {took:?}");
    match frame {
        Some(Incoming::Json(frame)) => {
            assert_eq!(frame["type"], "error", "not refused: {frame}");
            assert_eq!(frame["code"], "unavailable", "{frame}");
        }
        other => panic!("expected the unavailable error frame, got {other:?}"),
    }
    for (what, answer) in [
        ("POST /rooms/{id}/messages", &form_post),
        ("POST /rooms", &room_form),
        ("POST /register", &register),
    ] {
        assert_unavailable_page(what, answer);
    }
    assert_unavailable_json("POST /login", &api_login);
    assert!(
        !api_login.1.sets_credential(mode.auth),
        "a login that failed must not hand out a credential"
    );
    if let Some(answer) = &api_refresh {
        assert_unavailable_json("POST /auth/refresh", answer);
        assert!(
            !answer.1.sets_credential(mode.auth),
            "a refresh that failed must not hand out a credential"
        );
    }

    // The same client id, resent twice, is stored and broadcast once; a
    // fresh message after it shows where the broadcasts end.
    let stored = send_and_ack(&mut alice_ws, room, "sent during the outage", "during-1").await;
    let again = send_and_ack(&mut alice_ws, room, "sent during the outage", "during-1").await;
    assert_eq!(again["id"], stored["id"], "a resend was stored twice");
    send_and_ack(&mut alice_ws, room, "sent after the outage", "after-1").await;
    let mut broadcast = Vec::new();
    loop {
        let frame = bob_ws.next_of_type("message", WAIT).await;
        let body = frame["body"].as_str().unwrap_or_default().to_owned();
        broadcast.push(body.clone());
        if body == "sent after the outage" {
            break;
        }
    }
    assert_eq!(
        broadcast,
        ["sent during the outage", "sent after the outage"],
        "what the room saw after the outage"
    );

    // Nothing acknowledged was lost; nothing refused was stored.
    let after = history(&mut alice, room, "").await;
    assert_eq!(
        after[..acknowledged.len()],
        acknowledged[..],
        "messages acknowledged before the outage changed"
    );
    let bodies: Vec<&str> = after.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(
        bodies,
        [
            "sent before the outage",
            "posted before the outage",
            "sent during the outage",
            "sent after the outage",
        ]
    );
    let rooms = alice.get("/api/rooms").await;
    rooms.assert_status(200);
    let listed = rooms.json();
    let names: Vec<&str> = listed["rooms"]
        .as_array()
        .map(|r| r.iter().filter_map(|room| room["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["lobby"], "{}", rooms.body);

    // And the app works again without a restart, for the same clients.
    api_client
        .post_json("/login", bob_login())
        .await
        .assert_status(200);
    room_browser
        .submit("/rooms", "/rooms", &[("name", "kitchen")])
        .await
        .assert_status(303);
    newcomer
        .submit(
            "/register",
            "/register",
            &[
                ("username", "carol"),
                ("email", "carol@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await
        .assert_status(303);
    if mode.auth == Auth::Jwt {
        refresher
            .post_json("/auth/refresh", json!({}))
            .await
            .assert_status(200);
    }
}

fn bob_login() -> Value {
    json!({"email": "bob@example.com", "password": PASSWORD})
}

/// A page's answer to a write during the outage: an HTML 503, in time.
#[track_caller]
fn assert_unavailable_page(what: &str, (took, page): &(Duration, Page)) {
    assert!(took < &OUTAGE_ANSWER, "{what} answered after {took:?}");
    assert_eq!(page.status, 503, "{what}: {}", page.body);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{what}: a page answers with a page, not {:?}",
        page.header("content-type")
    );
}

/// The API's answer to a write during the outage: a JSON 503, in time.
#[track_caller]
fn assert_unavailable_json(what: &str, (took, page): &(Duration, Page)) {
    assert!(took < &OUTAGE_ANSWER, "{what} answered after {took:?}");
    assert_eq!(page.status, 503, "{what}: {}", page.body);
    assert_eq!(page.json()["error"], "service_unavailable", "{what}");
}

fn message(room: i64, body: &str, client_id: &str) -> Value {
    json!({"type": "message", "roomId": room, "body": body, "clientId": client_id})
}

/// Sends a message and returns its acknowledgement, which must be the very
/// next frame on the socket.
async fn send_and_ack(ws: &mut WsConn, room: i64, body: &str, client_id: &str) -> Value {
    ws.send_json(message(room, body, client_id)).await;
    let ack = ws.next_json(WAIT).await;
    assert_eq!(ack["type"], "message", "not acknowledged: {ack}");
    assert_eq!(ack["clientId"], client_id, "{ack}");
    assert_eq!(ack["body"], body, "{ack}");
    ack
}

/// Awaits a request and measures how long it took.
async fn timed(request: impl std::future::Future<Output = Page>) -> (Duration, Page) {
    let started = Instant::now();
    let page = request.await;
    (started.elapsed(), page)
}

/// An exclusive transaction on the database from a connection of our own,
/// held on its own thread until released (or dropped).
struct WriteLock {
    release: Option<mpsc::Sender<()>>,
    holder: Option<JoinHandle<()>>,
}

impl WriteLock {
    /// Returns once the lock is held.
    fn hold(path: &Path) -> WriteLock {
        let url = path.to_string_lossy().into_owned();
        let (locked, is_locked) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut conn =
                SqliteConnection::establish(&url).unwrap_or_else(|e| panic!("opening {url}: {e}"));
            // Wait for a write the app may have in progress, as it would.
            conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN EXCLUSIVE;")
                .expect("take the exclusive lock");
            let _ = locked.send(());
            // Until `release` or the test ends, whichever comes first.
            let _ = released.recv();
            conn.batch_execute("ROLLBACK").expect("release the lock");
        });
        is_locked
            .recv_timeout(Duration::from_secs(10))
            .expect("the exclusive lock was not taken");
        WriteLock {
            release: Some(release),
            holder: Some(holder),
        }
    }

    fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.release.take();
        if let Some(holder) = self.holder.take() {
            if holder.join().is_err() && !std::thread::panicking() {
                panic!("the lock holder failed");
            }
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.end();
    }
}

/// A session-mode logout that cannot delete its record (the store is
/// down) answers 503 and changes nothing: the sockets stay open, since the
/// session they belong to still works.
#[actix_rt::test]
async fn session_mode_logout_that_fails_in_an_outage_keeps_the_sockets_open() {
    support::run(async {
        let app = TestApp::spawn(Mode::session(Store::Embedded)).await;
        let mut alice = user(&app, "alice").await;
        let room = create_room(&mut alice, "lobby").await;
        let mut ws = ws_joined(&app, &alice, room).await;

        let lock = WriteLock::hold(&app.data_dir().join("chat.db"));
        let answer = timed(alice.submit("/rooms", "/logout", &[])).await;
        lock.release();
        assert_unavailable_page("POST /logout", &answer);

        // Not logged out: the session works, and so must its socket.
        let me = alice.get("/api/me").await;
        assert_eq!(me.status, 200, "the failed logout ended the session");
        ws.assert_alive(room).await;
    })
    .await;
}
