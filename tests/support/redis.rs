//! A throwaway `redis-server` per test, listening only on a unix socket in a
//! fresh temporary folder, and a tiny RESP client to look inside it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a fresh server gets to answer its first `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of one RESP exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `redis-server` child process, killed on drop.
pub struct RedisServer {
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("chat-redis-")
            .tempdir()
            .expect("create a temporary folder for redis");
        let mut server = RedisServer { dir, child: None };
        server.spawn();
        server
    }

    /// The URL the app is configured with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket_path().display())
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Kills the server, as in an outage. Its data is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket_path());
    }

    /// Starts the server again on the same socket, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs one command and renders its reply as text: simple strings and
    /// bulk strings as they are, integers in decimal, nil as `(nil)`, errors
    /// as `ERR…`, arrays one element per line.
    pub fn command(&self, args: &[&str]) -> String {
        self.query(args).to_string()
    }

    /// The keys matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.query(&["KEYS", pattern]) {
            Reply::Array(items) => {
                let mut keys: Vec<String> = items.iter().map(Reply::to_string).collect();
                keys.sort();
                keys
            }
            other => panic!("KEYS answered {other}"),
        }
    }

    /// Runs one command and returns the parsed reply.
    pub fn query(&self, args: &[&str]) -> Reply {
        query(&self.socket_path(), args)
            .unwrap_or_else(|e| panic!("redis command {args:?} failed: {e}"))
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let socket = self.socket_path();
        let child = Command::new("redis-server")
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH; run tests/run.sh, which installs it \
                 (or apt-get install redis-server)"
            ),
            Err(e) => panic!("could not start redis-server: {e}"),
        };
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Reply::Simple(pong)) = query(&self.socket_path(), &["PING"]) {
                if pong == "PONG" {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "redis-server exited with {status} at startup; see {}",
                        self.dir.path().join("redis.log").display()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {STARTUP_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Simple(s) | Reply::Error(s) | Reply::Bulk(Some(s)) => f.write_str(s),
            Reply::Integer(n) => write!(f, "{n}"),
            Reply::Bulk(None) => f.write_str("(nil)"),
            Reply::Array(items) => {
                let lines: Vec<String> = items.iter().map(Reply::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

fn query(socket: &Path, args: &[&str]) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(1);
    let number = || -> std::io::Result<i64> {
        rest.parse()
            .map_err(|_| invalid(format!("bad number in reply line {line:?}")))
    };
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len);
                Reply::Bulk(Some(String::from_utf8_lossy(&data).into_owned()))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(Vec::new()),
            Ok(len) => Reply::Array(
                (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<std::io::Result<_>>()?,
            ),
        },
        _ => return Err(invalid(format!("unknown reply line {line:?}"))),
    })
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(invalid("empty reply line".to_owned()));
    }
    Ok(line.to_owned())
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
