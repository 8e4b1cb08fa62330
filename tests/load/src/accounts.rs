//! Setting up what the measurements need through the app's own routes:
//! register (form with its CSRF nonce), log in (JSON API), create a room,
//! and log out the way each mode's clients do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::http::{Conn, Request, Response};
use crate::Mode;

pub const PASSWORD: &str = "load test password 1";
/// The app allows a few registrations per address per hour; users are
/// spread over this many loopback source addresses.
const USERS_PER_ADDRESS: usize = 8;

/// The server under test.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub mode: Mode,
}

impl Target {
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn origin_header(&self) -> String {
        format!("Origin: {}", self.origin())
    }
}

/// One login of one user: what a client holds afterwards.
#[derive(Clone)]
pub struct Login {
    pub user: usize,
    /// `name=value` of the cookie that carries the login on `/` paths.
    pub cookie: String,
    pub access: Option<String>,
    pub refresh: Option<String>,
    /// Bytes of the `Set-Cookie` header lines of the login response.
    pub set_cookie_bytes: usize,
    /// Bytes of the token values in the login response's JSON body.
    pub body_token_bytes: usize,
}

impl Login {
    pub fn cookie_header(&self) -> String {
        format!("Cookie: {}", self.cookie)
    }

    pub fn bearer_header(&self) -> Option<String> {
        self.access
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}"))
    }

    /// The header an API client of this mode sends: the cookie in session
    /// mode, the Bearer token in jwt mode.
    pub fn api_header(&self) -> String {
        self.bearer_header().unwrap_or_else(|| self.cookie_header())
    }
}

pub fn email(user: usize) -> String {
    format!("load{user}@example.test")
}

fn source_address(user: usize) -> IpAddr {
    let n = user / USERS_PER_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// Registers user number `user` through the form, as a browser would.
pub async fn register(target: &Target, user: usize) -> Result<()> {
    let mut conn = Conn::open_from(target.addr, Some(source_address(user))).await?;
    let page = conn.send(&Request::get("/register", &[])).await?;
    let nonce = set_cookie_pair(&page, "chat_csrf").ok_or_else(|| anyhow!("no CSRF nonce"))?;
    let csrf = csrf_field(&page)?;
    let body = format!(
        "username=load{user}&email=load{user}%40example.test&password={}&csrf_token={}",
        PASSWORD.replace(' ', "+"),
        csrf
    );
    let request = Request::new(
        "POST",
        "/register",
        &[
            format!("Cookie: {nonce}"),
            target.origin_header(),
            "Content-Type: application/x-www-form-urlencoded".into(),
        ],
        body.as_bytes(),
    );
    let answer = conn.send(&request).await?;
    if answer.status != 303 {
        bail!("registering user {user}: status {}", answer.status);
    }
    Ok(())
}

/// Logs in through the JSON API.
pub async fn login(target: &Target, user: usize) -> Result<Login> {
    let mut conn = Conn::open(target.addr).await?;
    let body = serde_json::json!({ "email": email(user), "password": PASSWORD }).to_string();
    let request = Request::new(
        "POST",
        "/login",
        &["Content-Type: application/json".into()],
        body.as_bytes(),
    );
    let answer = conn.send(&request).await?;
    if answer.status != 200 {
        bail!("login of user {user}: status {}", answer.status);
    }
    let set_cookie_bytes = answer
        .headers_named("set-cookie")
        .map(|v| "Set-Cookie: ".len() + v.len() + 2)
        .sum();
    let json: Value = serde_json::from_slice(&answer.body).context("login answer")?;
    let token = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let (access, refresh) = (token("accessToken"), token("refreshToken"));
    let body_token_bytes =
        access.as_ref().map_or(0, String::len) + refresh.as_ref().map_or(0, String::len);
    let name = match target.mode {
        Mode::Session => "chat_session",
        Mode::Jwt => "chat_access",
    };
    let cookie =
        set_cookie_pair(&answer, name).ok_or_else(|| anyhow!("login set no {name} cookie"))?;
    Ok(Login {
        user,
        cookie,
        access,
        refresh,
        set_cookie_bytes,
        body_token_bytes,
    })
}

/// The CSRF token bound to this login, from a page's hidden field.
pub async fn csrf_token(conn: &mut Conn, login: &Login) -> Result<String> {
    let page = conn
        .send(&Request::get("/rooms", &[login.cookie_header()]))
        .await?;
    if page.status != 200 {
        bail!("GET /rooms: status {}", page.status);
    }
    csrf_field(&page)
}

/// Creates a room and returns its id.
pub async fn create_room(target: &Target, login: &Login, name: &str) -> Result<i64> {
    let mut conn = Conn::open(target.addr).await?;
    let csrf = csrf_token(&mut conn, login).await?;
    let body = format!("name={name}&csrf_token={csrf}");
    let request = Request::new(
        "POST",
        "/rooms",
        &[
            login.cookie_header(),
            target.origin_header(),
            "Content-Type: application/x-www-form-urlencoded".into(),
        ],
        body.as_bytes(),
    );
    let answer = conn.send(&request).await?;
    let location = answer.header("location").unwrap_or_default();
    location
        .trim_start_matches("/rooms/")
        .parse()
        .with_context(|| {
            format!(
                "creating a room: status {}, location {location:?}",
                answer.status
            )
        })
}

/// The logout request of this mode's clients, built ahead of time so that
/// timing starts at the send: the form post with its CSRF token in session
/// mode, `POST /auth/logout` with the Bearer token in jwt mode.
pub async fn logout_request(target: &Target, conn: &mut Conn, login: &Login) -> Result<Request> {
    Ok(
        match (&target.mode, &login.refresh, login.bearer_header()) {
            (Mode::Jwt, Some(refresh), Some(bearer)) => {
                let body = serde_json::json!({ "refreshToken": refresh }).to_string();
                Request::new(
                    "POST",
                    "/auth/logout",
                    &[bearer, "Content-Type: application/json".into()],
                    body.as_bytes(),
                )
            }
            _ => {
                let csrf = csrf_token(conn, login).await?;
                Request::new(
                    "POST",
                    "/logout",
                    &[
                        login.cookie_header(),
                        target.origin_header(),
                        "Content-Type: application/x-www-form-urlencoded".into(),
                    ],
                    format!("csrf_token={csrf}").as_bytes(),
                )
            }
        },
    )
}

/// `name=value` of a cookie the response sets.
fn set_cookie_pair(response: &Response, name: &str) -> Option<String> {
    response.headers_named("set-cookie").find_map(|value| {
        let pair = value.split(';').next()?.trim();
        let (key, _) = pair.split_once('=')?;
        (key == name).then(|| pair.to_owned())
    })
}

fn csrf_field(page: &Response) -> Result<String> {
    let text = page.text();
    let at = text
        .find("name=\"csrf_token\" value=\"")
        .ok_or_else(|| anyhow!("no csrf_token field on the page (status {})", page.status))?;
    let rest = &text[at + "name=\"csrf_token\" value=\"".len()..];
    let end = rest
        .find('"')
        .ok_or_else(|| anyhow!("unterminated csrf_token"))?;
    Ok(rest[..end].to_owned())
}
