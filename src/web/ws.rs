//! `GET /ws`: the origin rule, then the credential, then the upgrade; the
//! connection itself runs in `chat::socket`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{ApiError, AppError};
use super::State;
use crate::auth::origin::carries_cookie;
use crate::auth::session;
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
    let (response, ws_session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| AppError::BadRequest(format!("WebSocket upgrade expected: {e}")))?;
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
    };
    actix_web::rt::spawn(socket.run(ws_session, stream));
    Ok(response)
}
