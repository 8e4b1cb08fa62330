//! Middleware: the access log, security headers, and the origin rule for
//! unsafe requests that carry cookies.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use tracing::Instrument;

use super::error::{ApiError, AppError, PageError};
use super::State;
use crate::auth::origin::carries_cookie;

/// Builds the Content-Security-Policy: scripts and styles from our own
/// origin only (no inline code anywhere), sockets to our own origins.
pub fn content_security_policy(origins: &[String]) -> String {
    let sockets: Vec<String> = origins
        .iter()
        .map(|o| {
            o.replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        sockets.join(" ")
    )
}

/// Marker type for the access-log middleware, used with `from_fn`.
pub struct AccessLog;

impl AccessLog {
    /// One span per request with an id, the method and the path: never the
    /// query string, which may carry things that must not reach logs.
    pub async fn handle(
        req: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, Error> {
        // Unique enough to find a request in the logs; the thread-local
        // generator avoids a system call per request.
        let id = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let span = tracing::info_span!(
            "request",
            id = %id,
            method = %req.method(),
            path = %req.path(),
        );
        let started = Instant::now();
        async move {
            let result = next.call(req).await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &result {
                Ok(res) => {
                    let status = res.status().as_u16();
                    if status >= 500 {
                        tracing::warn!(status, elapsed_ms, "request done");
                    } else {
                        tracing::info!(status, elapsed_ms, "request done");
                    }
                }
                Err(err) => tracing::warn!(error = %err, elapsed_ms, "request failed"),
            }
            result.map(|mut res| {
                if let Ok(v) = HeaderValue::from_str(&id) {
                    res.headers_mut()
                        .insert(header::HeaderName::from_static("x-request-id"), v);
                }
                res
            })
        }
        .instrument(span)
        .await
    }
}

/// Marker type for the security-headers middleware.
pub struct SecurityHeaders;

impl SecurityHeaders {
    pub async fn handle(
        req: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, Error> {
        let csp = req
            .app_data::<State>()
            .and_then(|s| HeaderValue::from_str(&s.csp).ok());
        let mut res = next.call(req).await?;
        let headers = res.headers_mut();
        if let Some(csp) = csp {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(res)
    }
}

/// actix-session answers any session-store failure with an opaque 500 from
/// inside its middleware. The store is a backing service: its failure is a
/// 503 the client can retry, in the format the route speaks.
pub async fn store_failures(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let json = speaks_json(req.request());
    match next.call(req).await {
        Err(err) if err.as_response_error().status_code().is_server_error() => {
            let cause = AppError::Unavailable(anyhow::anyhow!("session store: {err}"));
            Err(if json {
                ApiError(cause).into()
            } else {
                PageError(cause).into()
            })
        }
        other => other,
    }
}

/// Whether a route answers in JSON: the API, the token endpoints, and any
/// request that sent JSON.
pub(super) fn speaks_json(req: &actix_web::HttpRequest) -> bool {
    req.path().starts_with("/api/")
        || req.path().starts_with("/auth/")
        || req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// The origin rule: an unsafe request that carries a cookie must come from
/// our origin. Runs before the session is loaded, so refusals cost no store
/// read. The WebSocket upgrade (a GET) is checked in its handler.
pub async fn origin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, Error> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && carries_cookie(req.headers()) {
        let allowed = req
            .app_data::<State>()
            .is_some_and(|s| s.auth.origin.is_same_origin(req.headers()));
        if !allowed {
            tracing::info!("cross-site request refused");
            let response = if speaks_json(req.request()) {
                ApiError(AppError::bad_origin()).error_response()
            } else {
                PageError(AppError::bad_origin()).error_response()
            };
            return Ok(req.into_response(response));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
