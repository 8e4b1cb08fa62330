//! Graceful shutdown of the real binary, in both authentication modes: on
//! SIGTERM every WebSocket is closed with 1001 "Server shutting down", a
//! request that is still being uploaded is finished and answered, and the
//! process exits with code 0 well within the shutdown timeout.
//!
//! The in-flight request is a form post whose body is held back: it is sent
//! with `Expect: 100-continue`, so the server's `100 Continue` proves that it
//! has accepted the connection and read the headers before the signal; the
//! body goes out only once shutdown has visibly begun (the sockets closed).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use awc::http::Method;
use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::cookies::Jar;
use support::ws::{ws_open_at, WsConn};
use support::{html, room_id_from, PASSWORD};

/// The most the process may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The most the process may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one HTTP exchange or socket frame.
const WAIT: Duration = Duration::from_secs(10);
/// What the in-flight request posts.
const IN_FLIGHT_BODY: &str = "posted while the server was stopping";

#[actix_rt::test]
async fn session_mode_shuts_down_gracefully_on_sigterm() {
    support::run(shuts_down_gracefully_on_sigterm("session")).await;
}

#[actix_rt::test]
async fn jwt_mode_shuts_down_gracefully_on_sigterm() {
    support::run(shuts_down_gracefully_on_sigterm("jwt")).await;
}

async fn shuts_down_gracefully_on_sigterm(auth_mode: &str) {
    let mut server = Server::start(auth_mode);
    let mut alice = Client::new(&server.origin);
    alice.register("alice", "alice@example.com", PASSWORD).await;
    let room = alice.create_room("lobby").await;
    let mut first = alice.joined_socket(&server, room).await;
    let mut second = alice.joined_socket(&server, room).await;

    // The slow request: headers in, body held back.
    let room_path = format!("/rooms/{room}");
    let csrf = alice.csrf_of(&room_path).await;
    let form = serde_urlencoded::to_string([("body", IN_FLIGHT_BODY), ("csrf_token", &csrf)])
        .expect("encode the form");
    let upload = SlowUpload::begin(
        &server.addr,
        &alice,
        &format!("{room_path}/messages"),
        form.as_bytes(),
    )
    .await
    .unwrap_or_else(|e| panic!("starting the slow upload: {e}\n{}", server.logs()));

    let signalled = Instant::now();
    server.terminate();
    for ws in [&mut first, &mut second] {
        let closed = ws.expect_close(WAIT).await;
        assert_eq!(
            closed,
            (1001, "Server shutting down".to_owned()),
            "{}",
            server.logs()
        );
    }

    let (status, head) = upload
        .finish()
        .await
        .unwrap_or_else(|e| panic!("finishing the in-flight request: {e}\n{}", server.logs()));
    assert_eq!(
        status,
        303,
        "the in-flight post was not completed: {head}\n{}",
        server.logs()
    );

    let exit = server.wait_for_exit(EXIT_TIMEOUT, signalled).await;
    assert_eq!(
        exit.code(),
        Some(0),
        "exit status {exit}\n{}",
        server.logs()
    );

    // The whole run's log: no panic, and none of what must never be logged.
    let logs = server.logs();
    for secret in [
        "panicked",
        PASSWORD,
        "alice@example.com",
        IN_FLIGHT_BODY,
        "eyJ",
    ] {
        assert!(
            !logs.contains(secret),
            "the log contains {secret:?}:\n{logs}"
        );
    }
    // The answer was not a bluff: the message is in the database.
    assert_eq!(stored_bodies(server.data_dir()), vec![IN_FLIGHT_BODY]);
}

/// The `chat` binary running as a child process on a free loopback port.
struct Server {
    child: Child,
    origin: String,
    /// `127.0.0.1:PORT`.
    addr: String,
    stderr: Arc<Mutex<String>>,
    data: TempDir,
}

impl Server {
    fn start(auth_mode: &str) -> Server {
        let data = tempfile::Builder::new()
            .prefix("chat-shutdown-")
            .tempdir()
            .expect("create a temporary data folder");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        // Nothing from the caller's environment or a config.toml in the
        // working folder may change what is tested.
        for key in chat::config::KEYS {
            command.env_remove(key.name);
        }
        command
            .current_dir(data.path())
            .env("DATA_DIR", data.path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("BCRYPT_COST", "4")
            .env("LOG_LEVEL", "info")
            .env("AUTH_MODE", auth_mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the chat binary");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                collected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });

        let (found, origin) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            // Keep reading to the end so the child never blocks on a full
            // pipe.
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                if let Some(origin) = line.strip_prefix("Chat is running at ") {
                    let _ = found.send(origin.trim().to_owned());
                }
            }
        });

        let mut server = Server {
            child,
            origin: String::new(),
            addr: String::new(),
            stderr,
            data,
        };
        match origin.recv_timeout(STARTUP_TIMEOUT) {
            Ok(origin) => {
                server.addr = origin
                    .strip_prefix("http://")
                    .unwrap_or_else(|| panic!("not an http origin: {origin}"))
                    .to_owned();
                server.origin = origin;
            }
            Err(_) => panic!(
                "the server did not print its address within {STARTUP_TIMEOUT:?}\n{}",
                server.logs()
            ),
        }
        server
    }

    fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// What the server wrote on stderr so far, for failure messages.
    fn logs(&self) -> String {
        let logs = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        format!("--- server stderr ---\n{logs}")
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to end, at most `limit` after `since`.
    async fn wait_for_exit(&mut self, limit: Duration, since: Instant) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            if since.elapsed() > limit {
                panic!(
                    "the server did not exit within {limit:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the process running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A cookie-keeping browser for a server the harness did not start.
struct Client {
    origin: String,
    jar: Jar,
}

impl Client {
    fn new(origin: &str) -> Client {
        Client {
            origin: origin.to_owned(),
            jar: Jar::default(),
        }
    }

    /// Sends one request (with the app's `Origin` on a POST) and returns the
    /// status, the `Location` header and the body.
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, Option<String>, String) {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(WAIT)
            .finish();
        let mut req = client.request(method.clone(), format!("{}{path}", self.origin));
        if method == Method::POST {
            req = req.insert_header(("Origin", self.origin.as_str()));
        }
        if let Some(cookie) = self.jar.header_for(path) {
            req = req.insert_header(("Cookie", cookie));
        }
        let sent = match form {
            Some(fields) => req.send_form(&fields).await,
            None => req.send().await,
        };
        let mut res = sent.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        for value in res.headers().get_all("set-cookie") {
            if let Ok(value) = value.to_str() {
                self.jar.apply_from(path, value);
            }
        }
        let body = res
            .body()
            .limit(1 << 20)
            .await
            .unwrap_or_else(|e| panic!("reading the body of {method} {path} failed: {e}"));
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            res.status().as_u16(),
            location,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// The `csrf_token` of the form on the page at `path`.
    async fn csrf_of(&mut self, path: &str) -> String {
        let (status, _, body) = self.request(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        html::csrf_from(&body)
    }

    /// GETs `path` for its form, posts `fields` and the form's token to it,
    /// and returns the `Location` of the 303 that must answer.
    async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> String {
        let csrf = self.csrf_of(path).await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", &csrf));
        let (status, location, body) = self.request(Method::POST, path, Some(&all)).await;
        assert_eq!(status, 303, "POST {path}: {body}");
        location.unwrap_or_else(|| panic!("a 303 without Location from POST {path}"))
    }

    async fn register(&mut self, username: &str, email: &str, password: &str) {
        let fields = [
            ("username", username),
            ("email", email),
            ("password", password),
        ];
        self.submit("/register", &fields).await;
    }

    async fn create_room(&mut self, name: &str) -> i64 {
        room_id_from(&self.submit("/rooms", &[("name", name)]).await)
    }

    /// A socket with this browser's cookies, authenticated and joined to
    /// `room`.
    async fn joined_socket(&self, server: &Server, room: i64) -> WsConn {
        let url = format!("ws://{}/ws", server.addr);
        let mut ws = ws_open_at(&url, self.jar.header_for("/ws"), &[], Some(&self.origin))
            .await
            .unwrap_or_else(|status| panic!("WebSocket upgrade refused with {status}"));
        let hello = ws.next_json(WAIT).await;
        assert_eq!(hello["type"], "authenticated", "first frame: {hello}");
        ws.join(room).await;
        ws
    }
}

/// A form post over a raw connection whose body is sent only on `finish`.
struct SlowUpload {
    stream: TcpStream,
    body: Vec<u8>,
}

impl SlowUpload {
    /// Sends the request head with `Expect: 100-continue` and waits for the
    /// server's `100 Continue`.
    async fn begin(
        addr: &str,
        client: &Client,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<SlowUpload> {
        let mut stream = TcpStream::connect(addr).await?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\n\
             Host: {addr}\r\n\
             Origin: {origin}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {len}\r\n\
             Expect: 100-continue\r\n\
             Connection: close\r\n",
            origin = client.origin,
            len = body.len(),
        );
        if let Some(cookie) = client.jar.header_for(path) {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        let interim = read_head(&mut stream).await?;
        if !interim.starts_with("HTTP/1.1 100") {
            return Err(std::io::Error::other(format!(
                "expected 100 Continue, got: {interim}"
            )));
        }
        Ok(SlowUpload {
            stream,
            body: body.to_vec(),
        })
    }

    /// Sends the body and reads the final answer's status and head.
    async fn finish(mut self) -> std::io::Result<(u16, String)> {
        self.stream.write_all(&self.body).await?;
        let head = read_head(&mut self.stream).await?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head}")))?;
        Ok((status, head))
    }
}

/// Reads one response head, up to and including the blank line, byte by
/// byte so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let reading = async {
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await?;
            head.push(byte);
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(WAIT, reading).await {
        Ok(read) => read?,
        Err(_) => {
            return Err(std::io::Error::other(format!(
                "no complete answer within {WAIT:?}"
            )))
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[derive(QueryableByName)]
struct BodyRow {
    #[diesel(sql_type = Text)]
    body: String,
}

/// Every message body in the database of a stopped server, oldest first.
fn stored_bodies(data_dir: &Path) -> Vec<String> {
    let path = data_dir.join("chat.db");
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    diesel::sql_query("SELECT body FROM messages ORDER BY id")
        .load::<BodyRow>(&mut conn)
        .expect("read the messages")
        .into_iter()
        .map(|row| row.body)
        .collect()
}
