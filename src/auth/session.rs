//! Typed access to the cookie session: its keys live here and nowhere else.
//!
//! The store keeps a record for the idle limit and extends it only when the
//! record changes, so a request costs one read and no write. To keep active
//! users signed in, the coarse "last seen" time is rewritten at most every
//! few minutes (that rewrite extends the record); the absolute limit is
//! enforced from the creation time, however active the session is.

use std::time::Duration;

use actix_session::Session;
use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::HttpRequest;

use crate::store::now_ms;
use crate::util::random_token;

pub const COOKIE_NAME: &str = "chat_session";

/// How often at most the last-seen time is rewritten.
pub const TOUCH_EVERY: Duration = Duration::from_secs(300);

const USER_ID: &str = "uid";
const USERNAME: &str = "name";
const HANDLE: &str = "handle";
const CREATED: &str = "created";
const SEEN: &str = "seen";
/// When the session's credential was last confirmed (login or password
/// change): compared with the user's valid-after time.
const VALID_FROM: &str = "valid_from";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub max: Duration,
}

/// What a live session says about its user.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user_id: i64,
    pub username: String,
    /// A random id naming this session in the socket index and in CSRF
    /// tokens. Unlike the session key, it proves nothing on its own.
    pub handle: String,
    pub created_ms: i64,
    pub valid_from_ms: i64,
    /// Whether this read rewrote the last-seen time.
    pub touched: bool,
}

impl SessionInfo {
    /// When the session ends at the latest, in Unix milliseconds.
    pub fn hard_deadline_ms(&self, limits: &Limits) -> i64 {
        self.created_ms
            .saturating_add(i64::try_from(limits.max.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Starts a session for a user who just proved who they are. The session key
/// is renewed, so a key planted before login is worth nothing after it.
pub fn begin(session: &Session, user_id: i64, username: &str) -> anyhow::Result<SessionInfo> {
    session.renew();
    session.clear();
    let now = now_ms();
    let info = SessionInfo {
        user_id,
        username: username.to_owned(),
        handle: random_token(16),
        created_ms: now,
        valid_from_ms: now,
        touched: true,
    };
    session.insert(USER_ID, user_id)?;
    session.insert(USERNAME, &info.username)?;
    session.insert(HANDLE, &info.handle)?;
    session.insert(CREATED, now)?;
    session.insert(SEEN, now)?;
    session.insert(VALID_FROM, now)?;
    Ok(info)
}

/// Reads the session; an expired one is purged and reads as none.
pub fn current(session: &Session, limits: &Limits) -> Option<SessionInfo> {
    let user_id: i64 = session.get(USER_ID).ok()??;
    let username: String = session.get(USERNAME).ok()??;
    let handle: String = session.get(HANDLE).ok()??;
    let created_ms: i64 = session.get(CREATED).ok()??;
    let seen_ms: i64 = session.get(SEEN).ok()??;
    let valid_from_ms: i64 = session.get(VALID_FROM).ok().flatten().unwrap_or(created_ms);
    let now = now_ms();
    let mut info = SessionInfo {
        user_id,
        username,
        handle,
        created_ms,
        valid_from_ms,
        touched: false,
    };
    let idle_ms = i64::try_from(limits.idle.as_millis()).unwrap_or(i64::MAX);
    if now >= info.hard_deadline_ms(limits) || now.saturating_sub(seen_ms) >= idle_ms {
        session.purge();
        return None;
    }
    let touch_ms = i64::try_from(TOUCH_EVERY.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(seen_ms) >= touch_ms.min(idle_ms / 2) {
        // Marks the session changed, which makes the store extend its TTL.
        let _ = session.insert(SEEN, now);
        info.touched = true;
    }
    Some(info)
}

/// Confirms the session after a password change, keeping its id and
/// handle (and so its open sockets): it stays valid past the new
/// valid-after time, while every other session of the user ends.
pub fn confirm(session: &Session, at: i64) -> anyhow::Result<()> {
    session.insert(VALID_FROM, at)?;
    Ok(())
}

/// Ends the session: the middleware deletes the record and the cookie.
pub fn end(session: &Session) {
    session.purge();
}

/// The session key from the signed cookie, for the socket loop, which has to
/// extend the record's life while the socket stays open.
pub fn key_from_request(req: &HttpRequest, key: &Key) -> Option<String> {
    let raw = req.cookie(COOKIE_NAME)?;
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new(COOKIE_NAME, raw.value().to_owned()));
    jar.signed(key)
        .get(COOKIE_NAME)
        .map(|c| c.value().to_owned())
}

/// Marks the session behind an open socket as active, as a request would:
/// rewrites its last-seen time, which extends the record. False when the
/// session is gone or past a limit, so the socket must close.
pub async fn keep_alive(
    store: &crate::store::kv::SessionBackend,
    key: &str,
    limits: &Limits,
) -> bool {
    use actix_session::storage::{SessionKey, SessionStore};

    let Ok(key) = SessionKey::try_from(key.to_owned()) else {
        return false;
    };
    let mut state = match store.load(&key).await {
        Ok(Some(state)) => state,
        Ok(None) => return false,
        // A store hiccup is not the user's doing: keep the socket and try
        // again at the next tick.
        Err(err) => {
            tracing::warn!(error = %err, "could not refresh a socket's session");
            return true;
        }
    };
    let created: Option<i64> = state.get(CREATED).and_then(|v| v.parse().ok());
    let max_ms = i64::try_from(limits.max.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    if created.is_none_or(|c| now >= c.saturating_add(max_ms)) {
        return false;
    }
    state.insert(SEEN.to_owned(), now.to_string());
    let ttl = actix_web::cookie::time::Duration::seconds(
        i64::try_from(limits.idle.as_secs()).unwrap_or(i64::MAX),
    );
    if let Err(err) = store.update(key, state, &ttl).await {
        tracing::warn!(error = %err, "could not refresh a socket's session");
    }
    true
}
