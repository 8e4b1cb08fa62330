//! `GET /ws`: the origin rule, then the credential, then the upgrade; the
//! connection itself runs in `chat::socket`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::Stream;

use super::error::{ApiError, AppError};
use super::State;
use crate::auth::origin::carries_cookie;
use crate::auth::session;
use crate::chat::frame_guard::FrameGuard;
use crate::chat::protocol::MAX_FRAME_BYTES;
use crate::chat::socket::{Identity, KeepAlive, Socket};
use crate::chat::CloseKind;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: State,
) -> Result<HttpResponse, ApiError> {
    // Browsers always send Origin on a socket upgrade; a foreign one is a
    // page elsewhere trying to ride on our cookies.
    let has_origin = req.headers().contains_key(actix_web::http::header::ORIGIN);
    if (has_origin || carries_cookie(req.headers()))
        && !state.auth.origin.is_same_origin(req.headers())
    {
        tracing::info!("socket upgrade refused: foreign origin");
        return Err(AppError::bad_origin().into());
    }
    let user = state
        .auth
        .authenticate(&req)
        .ok_or(ApiError(AppError::NotAuthenticated))?;
    let keepalive = session::key_from_request(&req, &state.auth.cookie_key).map(|key| {
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
        (every, check)
    });
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
        identity: Identity {
            user_id: user.id,
            username: user.username.clone(),
            handle: user.credential.handle().to_owned(),
            deadline_ms: user.expires_at_ms,
            deadline_kind: CloseKind::SessionExpired,
            expires_at: None,
        },
        keepalive,
        oversize,
    };
    actix_web::rt::spawn(socket.run(ws_session, stream));
    Ok(response)
}
