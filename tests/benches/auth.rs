//! The authentication step alone, in each mode: access-token verification
//! and the revocation view (`jwt`), session lookup in the embedded and the
//! Redis store (`session`), and the CSRF check every form post makes.
//!
//! `cargo bench --bench auth` measures; `cargo test --all-targets` runs each
//! benchmark once as a test. The Redis benchmark starts its own
//! `redis-server` on a unix socket in a temporary folder and fails if there
//! is none: a missing Redis is never a quiet pass.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_session::storage::{SessionKey, SessionStore};
use actix_web::cookie::time::Duration as CookieDuration;
use chat::auth::csrf::Csrf;
use chat::auth::jwt::{Kind, Tokens};
use chat::auth::revocation::{RevocationView, UserEntry};
use chat::config::Secret;
use chat::metrics::Metrics;
use chat::store::kv::{DbSessionStore, TimedRedisStore};
use chat::store::{now_ms, Db};
use criterion::{criterion_group, criterion_main, Criterion};
use tempfile::TempDir;

const ACCESS_KEY: &[u8] = b"benchmark access key, long enough for HS256 and only for this";
const REFRESH_KEY: &[u8] = b"benchmark refresh key, different from the access key above";
const SESSION_SECRET: &[u8] =
    b"benchmark session secret: sixty-four bytes or more, used nowhere else at all";

fn tokens(c: &mut Criterion) {
    let tokens = Tokens::new(ACCESS_KEY, REFRESH_KEY, Duration::from_secs(5));
    let now = now_ms() / 1000;
    let signed = tokens
        .sign(Kind::Access, 7, "family-of-seven", now, now + 900)
        .expect("sign a token");
    // Same header and claims, one signature character changed.
    let mut forged = signed.token.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    assert!(tokens.verify(Kind::Access, &signed.token).is_ok());
    assert!(tokens.verify(Kind::Access, &forged).is_err());

    let mut group = c.benchmark_group("jwt");
    group.bench_function("verify valid access token", |b| {
        b.iter(|| tokens.verify(Kind::Access, std::hint::black_box(&signed.token)))
    });
    group.bench_function("verify token with bad signature", |b| {
        b.iter(|| tokens.verify(Kind::Access, std::hint::black_box(&forged)))
    });

    // The revocation view as a busy instance holds it: many denied tokens
    // and revoked families, many users.
    let view = RevocationView::default();
    let until = now_ms() + 900_000;
    for i in 0..10_000 {
        view.deny_jti(&format!("denied-{i}"), until);
        view.revoke_family(&format!("family-{i}"), until);
        let entry = UserEntry {
            username: format!("user{i}"),
            valid_after: 0,
        };
        view.remember_user(i, entry);
    }
    assert!(view
        .user(7)
        .is_some_and(|u| view.check(&signed.claims, &u).is_ok()));
    group.bench_function("revocation view lookup", |b| {
        b.iter(|| {
            let user = view.user(7).expect("user in the view");
            view.check(std::hint::black_box(&signed.claims), &user)
        })
    });
    group.finish();
}

fn csrf(c: &mut Criterion) {
    let csrf = Csrf::new(SESSION_SECRET);
    let token = csrf.token("session-handle-0123456789");
    assert!(csrf.verify("session-handle-0123456789", &token));
    c.bench_function("csrf/verify valid token", |b| {
        b.iter(|| csrf.verify("session-handle-0123456789", std::hint::black_box(&token)))
    });
}

/// A session record shaped like the ones `auth::session::begin` writes:
/// actix-session keeps each value JSON-encoded.
fn session_state() -> HashMap<String, String> {
    let now = now_ms().to_string();
    HashMap::from([
        ("user_id".to_owned(), "7".to_owned()),
        ("username".to_owned(), "\"ann\"".to_owned()),
        ("handle".to_owned(), "\"Zm9vYmFyYmF6cXV4cXV1eA\"".to_owned()),
        ("created".to_owned(), now.clone()),
        ("seen".to_owned(), now.clone()),
        ("valid_from".to_owned(), now),
    ])
}

/// Saves one session and measures loading it back by its key.
fn bench_lookup(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: &impl SessionStore,
) {
    let ttl = CookieDuration::days(7);
    let key: SessionKey = rt
        .block_on(store.save(session_state(), &ttl))
        .expect("save a session");
    let loaded = rt.block_on(store.load(&key)).expect("load the session");
    let loaded = loaded.expect("the saved session is found");
    assert_eq!(loaded.get("user_id").map(String::as_str), Some("7"));
    assert_eq!(loaded.get("username").map(String::as_str), Some("\"ann\""));
    c.bench_function(name, |b| {
        b.iter(|| rt.block_on(store.load(std::hint::black_box(&key))))
    });
}

fn sessions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let dir = tempfile::Builder::new()
        .prefix("chat-bench-")
        .tempdir()
        .expect("a temporary folder");
    // Counting on, as in the server, so that its cost is part of the figure.
    let metrics = Metrics::new();
    let db = Db::open_sqlite(&dir.path().join("chat.db"))
        .expect("open the database")
        .with_metrics(metrics.clone());
    let embedded = DbSessionStore::new(db);
    bench_lookup(c, "session/lookup embedded (SQLite)", &rt, &embedded);

    let redis = Redis::start();
    let url = Secret::new(redis.url());
    let store = rt
        .block_on(TimedRedisStore::connect(&url, metrics))
        .expect("connect to the benchmark's redis-server");
    bench_lookup(c, "session/lookup redis", &rt, &store);
    drop(store);
    drop(redis);
}

/// A `redis-server` of our own on a unix socket, killed on drop.
struct Redis {
    dir: TempDir,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("chat-bench-redis-")
            .tempdir()
            .expect("a temporary folder for redis");
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the Redis benchmark needs redis-server on PATH (apt-get install redis-server): {e}")
            });
        let mut redis = Redis { dir, child };
        redis.wait_for(&socket);
        redis
    }

    fn wait_for(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited at startup with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!(
            "redis+unix://{}",
            self.dir.path().join("redis.sock").display()
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

criterion_group!(benches, tokens, csrf, sessions);
criterion_main!(benches);
