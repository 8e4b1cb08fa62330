//! `GET /ws`: the origin rule, then the credential, then the limit on
//! sockets waiting to authenticate, then the upgrade; the
//! connection itself runs in `chat::socket`.
//!
//! Session mode refuses an upgrade without a live session with 401. Token
//! mode opens the socket either way, since a browser script cannot read a
//! 401 on an upgrade but can read a close reason: without a credential the
//! socket must send `authenticate` in time; with a refused one it gets
//! `auth_error` and a 1008 close saying why.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::Stream;

use super::error::{ApiError, AppError};
use super::{AppState, State};
use crate::auth::origin::carries_cookie;
use crate::auth::{session, AuthUser, Failure};
use crate::chat::frame_guard::FrameGuard;
use crate::chat::pending::Pending;
use crate::chat::protocol::MAX_FRAME_BYTES;
use crate::chat::socket::{AuthAnswer, Authenticator, Identity, KeepAlive, Socket, Start};
use crate::chat::CloseKind;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    // An upgrade carrying cookies from a foreign origin is a page elsewhere
    // trying to ride on them. Without cookies there is nothing to ride on:
    // a client elsewhere must bring its own token (Bearer or a first
    // `authenticate` frame), as the cross-site rules allow.
    if carries_cookie(req.headers()) && !state.auth.origin.is_same_origin(req.headers()) {
        tracing::info!("socket upgrade refused: foreign origin");
        return Err(AppError::bad_origin().into());
    }
    let token_mode = state.auth.tokens.is_some();
    let start = match state.auth.authenticate(&req).await {
        Ok(user) => Start::Authenticated(identity(&user, token_mode)),
        Err(Failure::Unavailable(e)) => return Err(AppError::Unavailable(e).into()),
        Err(_) if !token_mode => return Err(AppError::NotAuthenticated.into()),
        Err(Failure::Missing) => Start::AwaitToken(state.ws_auth_timeout),
        Err(Failure::Expired) => Start::Refused(CloseKind::TokenExpired),
        Err(Failure::Invalid | Failure::Revoked) => Start::Refused(CloseKind::InvalidToken),
    };
    // Sockets still to authenticate are counted per address and refused
    // past the limit here, before the upgrade, where a plain 429 is
    // possible; no other socket counts.
    let pending = match start {
        Start::AwaitToken(_) => Some(admit_pending(&req, &state)?),
        _ => None,
    };
    let keepalive = if token_mode {
        None
    } else {
        session_keepalive(&req, &state)
    };
    let authenticator = token_mode.then(|| authenticator(Arc::clone(&state)));
    // Oversized frames are refused from their header, before buffering.
    let oversize = Arc::new(AtomicBool::new(false));
    let guard = FrameGuard::new(body.into_inner(), MAX_FRAME_BYTES, oversize.clone());
    let boxed: Pin<Box<dyn Stream<Item = Result<web::Bytes, PayloadError>>>> = Box::pin(guard);
    let mut raw = Payload::Stream { payload: boxed };
    let body = web::Payload::from_request(&req, &mut raw)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("wrapping the socket's payload: {e}")))?;
    let (response, ws_session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| AppError::BadRequest("WebSocket upgrade expected".into()))?;
    let socket = Socket {
        events: state.events.clone(),
        db: state.db.clone(),
        start,
        authenticator,
        keepalive,
        oversize,
        rates: Arc::clone(&state.message_rates),
        pending,
    };
    actix_web::rt::spawn(socket.run(ws_session, stream));
    Ok(response)
}

/// Counts a socket that has yet to authenticate against its address.
fn admit_pending(req: &HttpRequest, state: &State) -> Result<Pending, AppError> {
    let address = super::audit::client_address(req, state);
    let counted = super::client::limit_key(&address);
    state.pending_sockets.admit(&counted).ok_or_else(|| {
        tracing::info!(address = %address, "socket upgrade refused: too many waiting to authenticate");
        // A waiting socket is gone within the authentication timeout.
        let wait = state.ws_auth_timeout.as_secs().max(1);
        AppError::TooMany(
            "too_many_sockets",
            "Too many sockets from your address are waiting to authenticate",
            wait,
        )
    })
}

fn identity(user: &AuthUser, token_mode: bool) -> Identity {
    Identity {
        user_id: user.id,
        username: user.username.clone(),
        handle: user.credential.handle().to_owned(),
        deadline_ms: user.expires_at_ms,
        deadline_kind: if token_mode {
            CloseKind::TokenExpired
        } else {
            CloseKind::SessionExpired
        },
        expires_at: token_mode.then(|| crate::util::rfc3339(user.expires_at_ms)),
    }
}

/// Token mode: checks the token of an `authenticate` frame.
fn authenticator(state: Arc<AppState>) -> Authenticator {
    Box::new(move |token: String| {
        let state = state.clone();
        Box::pin(async move {
            match state.auth.check_token(&token).await {
                Ok(user) => AuthAnswer::Accepted(identity(&user, true)),
                Err(Failure::Expired) => AuthAnswer::Refused(CloseKind::TokenExpired),
                Err(Failure::Unavailable(_)) => AuthAnswer::Unavailable,
                Err(_) => AuthAnswer::Refused(CloseKind::InvalidToken),
            }
        })
    })
}

/// Session mode: while the socket is open, its session stays active.
fn session_keepalive(req: &HttpRequest, state: &State) -> Option<(Duration, KeepAlive)> {
    let key = session::key_from_request(req, &state.auth.cookie_key)?;
    let store = state.sessions.clone();
    let limits = state.auth.limits;
    let check: KeepAlive = Box::new(move || {
        let store = store.clone();
        let key = key.clone();
        Box::pin(async move { session::keep_alive(&store, &key, &limits).await })
    });
    let every = session::TOUCH_EVERY
        .min(limits.idle / 2)
        .max(Duration::from_secs(1));
    Some((every, check))
}
