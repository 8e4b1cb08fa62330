//! Extractors and their error handlers: the current user for pages and for
//! the API, bodies read within the limit, and actix's own extraction errors
//! turned into our error type.

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;

use super::error::{ApiError, AppError, PageError};
use super::{State, BODY_LIMIT};
use crate::auth::{AuthUser, Failure};

fn state(req: &HttpRequest) -> Result<&State, AppError> {
    req.app_data::<State>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing")))
}

/// The path and query to come back to after logging in.
fn return_path(req: &HttpRequest) -> String {
    match req.uri().query() {
        Some(q) if req.method() == actix_web::http::Method::GET => format!("{}?{q}", req.path()),
        _ => req.path().to_owned(),
    }
}

/// The detour through `/auth/refresh` for a page whose access token has
/// expired; a form post is sent there and back as a POST (307), keeping its
/// fields.
pub fn refresh_first(req: &HttpRequest) -> AppError {
    let repost = !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    );
    AppError::RefreshRequired {
        next: return_path(req),
        repost,
    }
}

/// The signed-in user of a page; without one, a redirect to the login page
/// (or, for an expired access token, through a refresh) that comes back.
pub struct PageUser(pub AuthUser);

impl FromRequest for PageUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state(&req)?;
            match state.auth.authenticate(&req).await {
                Ok(user) => Ok(PageUser(user)),
                Err(Failure::Expired) => Err(refresh_first(&req).into()),
                Err(Failure::Unavailable(e)) => Err(AppError::Unavailable(e).into()),
                Err(Failure::Missing | Failure::Invalid | Failure::Revoked) => {
                    Err(AppError::LoginRequired(return_path(&req)).into())
                }
            }
        })
    }
}

/// The signed-in user of an API call; without one, 401.
pub struct ApiUser(pub AuthUser);

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state(&req)?;
            let token_mode = state.auth.tokens.is_some();
            match state.auth.authenticate(&req).await {
                Ok(user) => Ok(ApiUser(user)),
                Err(Failure::Unavailable(e)) => Err(AppError::Unavailable(e).into()),
                Err(_) if !token_mode => Err(AppError::NotAuthenticated.into()),
                Err(Failure::Missing) => Err(AppError::BearerRequired { invalid: false }.into()),
                Err(_) => Err(AppError::BearerRequired { invalid: true }.into()),
            }
        })
    }
}

/// Reads the whole body. The body guard (`body_guard.rs`) has already
/// read it within the limit, inflated it and dropped `Content-Encoding`;
/// the limit here only holds should this ever run without the guard.
pub async fn read_body(payload: web::Payload) -> Result<web::Bytes, AppError> {
    match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body unreadable");
            Err(AppError::BadRequest(
                "The request body could not be read".into(),
            ))
        }
        Err(_) => Err(AppError::TooLarge),
    }
}

fn is_api(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
        || req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

fn respond(req: &HttpRequest, err: AppError) -> actix_web::Error {
    if is_api(req) {
        ApiError(err).into()
    } else {
        PageError(err).into()
    }
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, req| {
            let app = match err {
                UrlencodedError::Overflow { .. } => AppError::TooLarge,
                UrlencodedError::ContentType => AppError::UnsupportedMediaType,
                other => {
                    tracing::debug!(error = %other, "form unreadable");
                    AppError::BadRequest("The form could not be read".into())
                }
            };
            respond(req, app)
        })
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, req| {
            let app = match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => AppError::TooLarge,
                JsonPayloadError::ContentType => AppError::UnsupportedMediaType,
                // serde's words describe the client's JSON, not our internals.
                JsonPayloadError::Deserialize(e) => {
                    AppError::BadRequest(format!("The JSON body is not valid: {e}"))
                }
                other => {
                    tracing::debug!(error = %other, "JSON body unreadable");
                    AppError::BadRequest("The JSON body could not be read".into())
                }
            };
            respond(req, app)
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, req| {
        tracing::debug!(error = %err, "query string refused");
        respond(
            req,
            AppError::BadRequest("The query string is not valid".into()),
        )
    })
}

pub fn path_config() -> web::PathConfig {
    // `/rooms/abc` names no room: a 404, like any other unknown page.
    web::PathConfig::default().error_handler(|_: PathError, req| respond(req, AppError::NotFound))
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = respond(&req, AppError::NotFound);
    err.error_response()
}
