//! The processes a run needs: the server binary (built when not given), a
//! private `redis-server` on a unix socket, and one server per mode. Each
//! is a guard that kills its child on drop, so an error or ctrl-c leaves
//! nothing running.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const REDIS_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the server in release mode with the cargo that runs us, and
/// returns the binary's path.
pub fn build_server() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // This crate lives at tests/load of the workspace.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("chat-load: building the server (cargo build --release --bin chat)");
    let status = Command::new(&cargo)
        .args(["build", "--release", "--bin", "chat"])
        .current_dir(&root)
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("building the server failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("chat"))
}

/// Makes sure `redis-server` is on PATH: installs Debian's package when it
/// is missing and we are root (as tests/run.sh does), otherwise says how.
pub fn ensure_redis() -> Result<()> {
    if which("redis-server") {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !which("apt-get") {
        bail!("redis-server is not on PATH; install it (apt-get install redis-server)");
    }
    eprintln!("chat-load: installing redis-server with apt-get");
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "redis-server"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !status.success() {
            bail!("apt-get {} failed", args.join(" "));
        }
    }
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

/// A `redis-server` listening only on a unix socket in its own folder.
pub struct Redis {
    dir: TempDir,
    child: Child,
    stopped: bool,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("chat-load-redis-")
            .tempdir()?;
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--save", ""])
            .args(["--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let mut redis = Redis {
            dir,
            child,
            stopped: false,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while redis.query(&["PING"]).is_err() {
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server exited at startup ({status})");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer within {STARTUP_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, as in a hung or partitioned Redis. Data is kept.
    pub fn freeze(&mut self) -> Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.stopped = true;
        Ok(())
    }

    pub fn thaw(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT)?;
        self.stopped = false;
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill has no memory preconditions; the pid is our own child,
        // which has not been reaped while this guard lives.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!(
                "signalling redis-server: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Zeroes the command statistics.
    pub fn reset_stats(&self) -> Result<()> {
        self.query(&["CONFIG", "RESETSTAT"]).map(|_| ())
    }

    /// Calls per command since the last reset, from `INFO commandstats`,
    /// without this tool's own `INFO` and `CONFIG` calls.
    pub fn command_calls(&self) -> Result<Vec<(String, u64)>> {
        let text = self.query(&["INFO", "commandstats"])?;
        let mut calls = Vec::new();
        for line in text.lines() {
            // cmdstat_get:calls=12,usec=…
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            let count = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            // Our own INFO and CONFIG RESETSTAT calls are not the app's.
            if name != "info" && !name.starts_with("config") {
                calls.push((name.to_ascii_uppercase(), count));
            }
        }
        Ok(calls)
    }

    /// One command over a fresh connection; the reply as text (bulk and
    /// simple strings only, which is all this tool asks for).
    fn query(&self, args: &[&str]) -> Result<String> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(REDIS_IO_TIMEOUT))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first)?;
        let first = first.trim_end();
        if let Some(simple) = first.strip_prefix('+') {
            return Ok(simple.to_owned());
        }
        let Some(len) = first
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            bail!("unexpected redis reply {first:?}");
        };
        let mut data = vec![0; len + 2];
        reader.read_exact(&mut data)?;
        data.truncate(len);
        Ok(String::from_utf8_lossy(&data).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.signal(libc::SIGCONT);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One chat server child process with its own data folder.
pub struct Server {
    _dir: TempDir,
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts `binary` with `env` (plus DATA_DIR and BIND_ADDR) and waits
    /// for the line where it prints its address.
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("chat-load-data-")
            .tempdir()?;
        let log = dir.path().join("server.log");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATA_DIR", dir.path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address line, then keeps draining so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(url) = line.split("running at ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = Server {
            _dir: dir,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let url = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                bail!(
                    "the server did not print its address; last log lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        };
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        server.addr = host
            .parse()
            .with_context(|| format!("reading the server's address from {url:?}"))?;
        if !server.addr.ip().is_loopback() {
            bail!("the server bound {} which is not loopback", server.addr);
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
