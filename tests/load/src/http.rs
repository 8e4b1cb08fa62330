//! A deliberately small HTTP/1.1 client over one keep-alive TCP stream:
//! requests are bytes built once, responses are read just far enough to
//! find the status, the headers and the body's end (Content-Length or
//! chunked). Cheap enough that one client core outpaces the server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest wait for one response before the request counts as timed out.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A request ready to send: the whole request as bytes.
#[derive(Clone)]
pub struct Request(pub Vec<u8>);

impl Request {
    /// `headers` are full lines without the line ending, e.g.
    /// `Cookie: a=b`.
    pub fn new(method: &str, path: &str, headers: &[String], body: &[u8]) -> Request {
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        Request(bytes)
    }

    pub fn get(path: &str, headers: &[String]) -> Request {
        Request::new("GET", path, headers, b"")
    }
}

pub struct Response {
    pub status: u16,
    /// Header lines as sent, without line endings.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter_map(move |line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by earlier responses.
    start: usize,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        Conn::open_from(addr, None).await
    }

    /// Opens a connection from a given loopback source address, so that
    /// per-address quotas (registrations) see several clients.
    pub async fn open_from(addr: SocketAddr, source: Option<std::net::IpAddr>) -> Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
        })
    }

    /// Sends a request and reads its response, within `TIMEOUT`.
    pub async fn send(&mut self, request: &Request) -> Result<Response> {
        tokio::time::timeout(TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| anyhow!("no response within {TIMEOUT:?}"))?
    }

    async fn exchange(&mut self, request: &Request) -> Result<Response> {
        self.stream.write_all(&request.0).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<()> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.start..], b"\r\n\r\n") {
                break self.start + i;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .context("response head is not UTF-8")?
            .to_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let headers: Vec<String> = lines.map(str::to_owned).collect();
        self.start = head_end + 4;
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked().await?;
        } else {
            let len: usize = response
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while self.buf.len() - self.start < len {
                self.fill().await?;
            }
            response.body = self.buf[self.start..self.start + len].to_vec();
            self.start += len;
        }
        Ok(response)
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[self.start..], b"\r\n") {
                    break self.start + i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[self.start..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            self.start = line_end + 2;
            while self.buf.len() - self.start < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[self.start..self.start + size]);
            self.start += size + 2;
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
