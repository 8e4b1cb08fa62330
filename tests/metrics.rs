//! `/metrics`: the figures move as a visit happens (requests by route
//! pattern, authentication results, store calls, sockets, deliveries,
//! revocations and their latency, bcrypt), they hold no personal data,
//! and the endpoint answers only where it is configured to.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use support::*;

all_modes!(the_figures_follow_a_visit);

mod exposure_and_limits {
    use super::*;

    #[actix_rt::test]
    async fn by_default_only_a_direct_loopback_client_is_served() {
        run(super::by_default_only_a_direct_loopback_client_is_served()).await;
    }

    #[actix_rt::test]
    async fn a_trusted_proxy_on_loopback_is_not_served() {
        run(super::a_trusted_proxy_on_loopback_is_not_served()).await;
    }

    #[actix_rt::test]
    async fn an_own_listener_serves_the_figures_and_the_main_one_stops() {
        run(super::an_own_listener_serves_the_figures_and_the_main_one_stops()).await;
    }

    #[actix_rt::test]
    async fn off_serves_them_nowhere() {
        run(super::off_serves_them_nowhere()).await;
    }

    #[actix_rt::test]
    async fn a_throttled_login_is_counted_and_costs_no_bcrypt() {
        run(super::a_throttled_login_is_counted_and_costs_no_bcrypt()).await;
    }
}

mod redis_instances {
    use super::*;

    #[actix_rt::test]
    async fn session_a_revocation_is_timed_on_the_instance_that_closes_the_socket() {
        run(super::a_revocation_is_timed_on_the_instance_that_closes_the_socket(Auth::Session))
            .await;
    }

    #[actix_rt::test]
    async fn jwt_a_revocation_is_timed_on_the_instance_that_closes_the_socket() {
        run(super::a_revocation_is_timed_on_the_instance_that_closes_the_socket(Auth::Jwt)).await;
    }
}

/// A response read whole.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// GETs `path` on `addr` with no cookies and the given headers.
async fn fetch(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut req = client.get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
    let body = res
        .body()
        .limit(4 << 20)
        .await
        .unwrap_or_else(|e| panic!("reading {path} failed: {e}"));
    Answer {
        status: res.status().as_u16(),
        content_type: res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The figures of an app, parsed from the text format: each series
/// (name and labels, as written) to its value.
struct Figures {
    text: String,
    series: HashMap<String, f64>,
}

impl Figures {
    async fn of(app: &TestApp) -> Figures {
        Figures::at(app.addr()).await
    }

    async fn at(addr: SocketAddr) -> Figures {
        let answer = fetch(addr, "/metrics", &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        Figures::parse(answer.body)
    }

    fn parse(text: String) -> Figures {
        let mut series = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a sample value: {line}"));
            series.insert(name.to_owned(), value);
        }
        Figures { text, series }
    }

    /// A series' value; a series not yet written is zero.
    fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// How much a series grew since `before`.
    fn delta(&self, before: &Figures, series: &str) -> f64 {
        self.get(series) - before.get(series)
    }
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!("chat_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
}

fn auth_checks(auth: Auth, result: &str) -> String {
    let mode = match auth {
        Auth::Session => "session",
        Auth::Jwt => "jwt",
    };
    format!("chat_auth_checks_total{{mode=\"{mode}\",result=\"{result}\"}}")
}

fn store_ops(store: &str, op: &str) -> String {
    format!("chat_store_operations_total{{store=\"{store}\",op=\"{op}\",outcome=\"ok\"}}")
}

const OPEN_SOCKETS: &str = "chat_ws_open_sockets";
const DELIVERED: &str = "chat_messages_delivered_total";
const STORED: &str = "chat_messages_stored_total";
const LOGOUTS: &str = "chat_revocations_total{kind=\"logout\"}";
const CLOSE_TIMINGS: &str = "chat_revocation_close_seconds_count";

/// Waits until a gauge reads `want` (socket tasks end shortly after their
/// close), and returns the figures that showed it.
async fn until_gauge(app: &TestApp, name: &str, want: f64) -> Figures {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let figures = Figures::of(app).await;
        if figures.get(name) == want {
            return figures;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {} instead of {want}",
            figures.get(name)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_figures_follow_a_visit(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let start = Figures::of(&app).await;
    assert_eq!(start.get(OPEN_SOCKETS), 0.0, "{}", start.text);

    let mut ann = user(&app, "ann").await;
    let bob = user(&app, "bob").await;
    let registered = Figures::of(&app).await;
    assert_eq!(
        registered.delta(&start, "chat_bcrypt_seconds_count{op=\"hash\"}"),
        2.0,
        "{}",
        registered.text
    );
    let room = create_room(&mut ann, "lobby").await;

    // Authenticated API calls: counted under the route pattern, not the
    // path with its id, and as successful checks.
    let before = Figures::of(&app).await;
    ann.get("/api/me").await.assert_status(200);
    history(&mut ann, room, "").await;
    let after = Figures::of(&app).await;
    assert_eq!(after.delta(&before, &requests("/api/me", "GET", 200)), 1.0);
    assert_eq!(
        after.delta(&before, &requests("/api/rooms/{id}/messages", "GET", 200)),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(after.delta(&before, &auth_checks(app.auth(), "ok")), 2.0);
    assert_eq!(after.delta(&before, &requests("/metrics", "GET", 200)), 1.0);

    // A request without a credential: one failed check, one 401.
    let before = after;
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.get("/api/me").await.status, 401);
    stranger
        .get(&format!("/no/such/{room}"))
        .await
        .assert_status(404);
    let after = Figures::of(&app).await;
    assert_eq!(
        after.delta(&before, &auth_checks(app.auth(), "missing")),
        1.0
    );
    assert_eq!(after.delta(&before, &auth_checks(app.auth(), "ok")), 0.0);
    assert_eq!(after.delta(&before, &requests("/api/me", "GET", 401)), 1.0);
    assert_eq!(
        after.delta(&before, &requests("unmatched", "GET", 404)),
        1.0
    );

    // A wrong password costs one verification.
    let before = after;
    let mut guesser = Browser::new(&app);
    let page = guesser
        .submit(
            "/login",
            "/login",
            &[
                ("email", "ann@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    let after = Figures::of(&app).await;
    assert_eq!(
        after.delta(&before, "chat_bcrypt_seconds_count{op=\"verify\"}"),
        1.0
    );

    // A message posted through the form reaches both joined sockets.
    let mut ann_ws = ws_joined(&app, &ann, room).await;
    let mut bob_ws = ws_joined(&app, &bob, room).await;
    let before = until_gauge(&app, OPEN_SOCKETS, 2.0).await;
    post_message(&mut ann, room, "a secret plan")
        .await
        .assert_status(303);
    for ws in [&mut ann_ws, &mut bob_ws] {
        let seen = ws.next_of_type("message", Duration::from_secs(5)).await;
        assert_eq!(seen["body"], "a secret plan");
    }
    let after = Figures::of(&app).await;
    assert_eq!(after.delta(&before, DELIVERED), 2.0, "{}", after.text);
    assert_eq!(after.delta(&before, STORED), 1.0);
    assert_eq!(
        after.delta(&before, &requests("/rooms/{id}/messages", "POST", 303)),
        1.0,
        "{}",
        after.text
    );

    // Logging out closes Ann's socket: one revocation, timed once.
    let before = after;
    let stolen = ann.fork();
    let secrets: Vec<String> = ann
        .auth
        .credential_cookies()
        .iter()
        .filter_map(|name| ann.jar.get(name).map(str::to_owned))
        .collect();
    ann.logout().await;
    let (code, reason) = ann_ws.expect_close(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (1008, "Logged out"));
    let after = until_gauge(&app, OPEN_SOCKETS, 1.0).await;
    assert_eq!(after.delta(&before, LOGOUTS), 1.0, "{}", after.text);
    assert_eq!(after.delta(&before, CLOSE_TIMINGS), 1.0, "{}", after.text);
    bob_ws.assert_alive(room).await;

    // The credential kept from before the logout is refused: its session
    // record is gone (session mode), or its token family is revoked.
    let before = after;
    let mut stolen = stolen;
    assert_eq!(stolen.get("/api/me").await.status, 401);
    let after = Figures::of(&app).await;
    let refused = match app.auth() {
        Auth::Session => "missing",
        Auth::Jwt => "revoked",
    };
    assert_eq!(
        after.delta(&before, &auth_checks(app.auth(), refused)),
        1.0,
        "{}",
        after.text
    );

    // The stores behind the visit were counted.
    let store = match app.store() {
        Store::Embedded => "db",
        Store::Redis => "redis",
    };
    assert!(after.get(&store_ops("db", "query")) > 0.0, "{}", after.text);
    match app.auth() {
        Auth::Session => {
            assert!(
                after.get(&store_ops(store, "session_load")) > 0.0,
                "{}",
                after.text
            );
            assert!(
                after.get(&store_ops(store, "session_delete")) > 0.0,
                "{}",
                after.text
            );
        }
        Auth::Jwt => {
            assert!(
                after.get(&store_ops(store, "deny_add")) > 0.0,
                "{}",
                after.text
            );
        }
    }
    if app.store() == Store::Redis {
        assert!(
            after.get(&store_ops("redis", "publish")) > 0.0,
            "{}",
            after.text
        );
    }

    // Labels are patterns and fixed words: no ids, names, emails, tokens
    // or message bodies.
    let text = &after.text;
    assert!(text.contains("route=\"/rooms/{id}\""), "{text}");
    assert!(!text.contains(&format!("/rooms/{room}")), "{text}");
    assert!(!text.contains(&format!("/no/such/{room}")), "{text}");
    for private in ["ann", "bob", "example.com", "secret plan", "lobby"] {
        assert!(!text.contains(private), "{private} in the figures:\n{text}");
    }
    assert!(!secrets.is_empty());
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a credential in the figures"
        );
    }
    if std::env::var_os("SHOW_FIGURES").is_some() {
        eprintln!("{text}");
    }
    drop(bob);
}

async fn by_default_only_a_direct_loopback_client_is_served() {
    let app = TestApp::spawn(Store::Embedded).await;
    let direct = fetch(app.addr(), "/metrics", &[]).await;
    assert_eq!(direct.status, 200);
    for host in ["localhost", "127.0.0.1:1", "[::1]:8080"] {
        let named = fetch(app.addr(), "/metrics", &[("Host", host)]).await;
        assert_eq!(named.status, 200, "Host: {host}");
    }
    assert_eq!(
        direct.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        direct.body.contains("# TYPE chat_ws_open_sockets gauge"),
        "{}",
        direct.body
    );

    // The 404 is the one any unknown page gets: nothing to tell it apart.
    let unknown = fetch(app.addr(), "/no-such-page", &[]).await;
    assert_eq!(unknown.status, 404);
    for forwarded in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Forwarded-For", "127.0.0.1"),
        // A site that pointed its own name at 127.0.0.1 (DNS rebinding):
        // the browser connects from this host but names the other site.
        ("Host", "rebind.example"),
        ("Host", "rebind.example:8080"),
    ] {
        let answer = fetch(app.addr(), "/metrics", &[forwarded]).await;
        assert_eq!(answer.status, 404, "{forwarded:?}");
        assert_eq!(answer.body, unknown.body, "{forwarded:?}");
        assert!(!answer.body.contains("chat_"), "{forwarded:?}");
    }
}

async fn a_trusted_proxy_on_loopback_is_not_served() {
    let app = TestApp::spawn_with(Store::Embedded, &[("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    assert_eq!(fetch(app.addr(), "/metrics", &[]).await.status, 404);
    let forwarded = fetch(app.addr(), "/metrics", &[("X-Forwarded-For", "127.0.0.1")]).await;
    assert_eq!(forwarded.status, 404);
}

async fn an_own_listener_serves_the_figures_and_the_main_one_stops() {
    let app = TestApp::spawn_with(Store::Embedded, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let own = app.metrics_addr().expect("a metrics listener");
    assert_ne!(own, app.addr());
    assert_eq!(fetch(app.addr(), "/metrics", &[]).await.status, 404);

    // Requests on the main listener are counted, and read on the other.
    Browser::new(&app).get("/login").await.assert_status(200);
    let figures = Figures::at(own).await;
    assert_eq!(
        figures.get(&requests("/login", "GET", 200)),
        1.0,
        "{}",
        figures.text
    );
    assert_eq!(
        figures.get(&requests("/metrics", "GET", 404)),
        1.0,
        "{}",
        figures.text
    );

    // It serves nothing else.
    for path in ["/", "/login", "/api/me", "/healthz"] {
        assert_eq!(fetch(own, path, &[]).await.status, 404, "{path}");
    }
    // On loopback, it too refuses a request naming another site.
    let rebound = fetch(own, "/metrics", &[("Host", "rebind.example")]).await;
    assert_eq!(rebound.status, 404);
}

async fn off_serves_them_nowhere() {
    let app = TestApp::spawn_with(Store::Embedded, &[("METRICS_ADDR", "off")]).await;
    assert_eq!(app.metrics_addr(), None);
    assert_eq!(fetch(app.addr(), "/metrics", &[]).await.status, 404);
}

async fn a_throttled_login_is_counted_and_costs_no_bcrypt() {
    let app = TestApp::spawn(Store::Embedded).await;
    user(&app, "ann").await;
    let before = Figures::of(&app).await;
    let mut guesser = Browser::new(&app);
    let wrong = serde_json::json!({"email": "ann@example.com", "password": "guess"});
    for _ in 0..5 {
        let page = guesser.post_json("/login", wrong.clone()).await;
        assert_ne!(page.status, 429, "{}", page.body);
    }
    guesser.post_json("/login", wrong).await.assert_status(429);
    let after = Figures::of(&app).await;
    assert_eq!(after.delta(&before, "chat_login_throttled_total"), 1.0);
    assert_eq!(
        after.delta(&before, "chat_bcrypt_seconds_count{op=\"verify\"}"),
        5.0,
        "{}",
        after.text
    );
    assert_eq!(after.get("chat_bcrypt_rejected_total"), 0.0);
}

/// The revocation is counted where it is issued, and timed where the
/// socket closes: on the other instance, through the Redis channel.
async fn a_revocation_is_timed_on_the_instance_that_closes_the_socket(auth: Auth) {
    let a = TestApp::spawn(Mode {
        auth,
        store: Store::Redis,
    })
    .await;
    let b = a.second_instance().await;
    let mut ann = user(&a, "ann").await;
    let mut on_b = ann.clone();
    on_b.retarget(&b);
    let (mut ws, _) = ws_authenticated(&b, &on_b).await;
    let before_a = Figures::of(&a).await;
    let before_b = until_gauge(&b, OPEN_SOCKETS, 1.0).await;

    ann.logout().await;
    let closed = ws.expect_close(Duration::from_secs(5)).await;
    assert_eq!(closed, (1008, "Logged out".to_owned()));
    let after_a = Figures::of(&a).await;
    let after_b = until_gauge(&b, OPEN_SOCKETS, 0.0).await;
    assert_eq!(after_a.delta(&before_a, LOGOUTS), 1.0, "{}", after_a.text);
    assert_eq!(after_b.delta(&before_b, LOGOUTS), 0.0, "{}", after_b.text);
    assert_eq!(after_a.delta(&before_a, CLOSE_TIMINGS), 0.0);
    assert_eq!(
        after_b.delta(&before_b, CLOSE_TIMINGS),
        1.0,
        "{}",
        after_b.text
    );
    drop(b);
}
