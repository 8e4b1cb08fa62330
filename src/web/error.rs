//! The web layer's one error type, and how it answers: JSON for the API,
//! an HTML page or a redirect for pages. What the user can fix is said
//! plainly; our own failures are logged with their cause and answered with
//! an opaque message.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not authenticated")]
    NotAuthenticated,
    /// Token mode: no token (`invalid` false) or a refused one. Answered
    /// like `NotAuthenticated`, plus a `WWW-Authenticate: Bearer` challenge.
    #[error("token missing or refused")]
    BearerRequired { invalid: bool },
    /// A page whose access token expired: refresh, then come back. A form
    /// post (`repost`) comes back as the same POST, so nothing typed is lost.
    #[error("access token expired")]
    RefreshRequired { next: String, repost: bool },
    /// A page that needs a login: the local path to come back to.
    #[error("login required")]
    LoginRequired(String),
    #[error("forbidden ({0})")]
    Forbidden(&'static str, &'static str),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    TooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A limit that passes with time: a code, a message, and the seconds
    /// to wait.
    #[error("too many requests ({0})")]
    TooMany(&'static str, &'static str, u64),
    /// A `Content-Encoding` on the request body that we do not inflate.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The request body did not arrive within `BODY_DEADLINE`.
    #[error("request body timed out")]
    BodyTimeout,
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotAuthenticated | AppError::BearerRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            AppError::LoginRequired(_) => StatusCode::SEE_OTHER,
            AppError::RefreshRequired { repost: false, .. } => StatusCode::SEE_OTHER,
            AppError::RefreshRequired { repost: true, .. } => StatusCode::TEMPORARY_REDIRECT,
            AppError::Forbidden(..) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::UnsupportedMediaType | AppError::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            AppError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::NotAuthenticated
            | AppError::BearerRequired { .. }
            | AppError::LoginRequired(_)
            | AppError::RefreshRequired { .. } => "not_authenticated",
            AppError::Forbidden(code, _) | AppError::TooMany(code, ..) => code,
            AppError::NotFound => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::TooLarge => "payload_too_large",
            AppError::BodyTimeout => "request_timeout",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::UnsupportedEncoding => "unsupported_encoding",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            AppError::BadRequest(m) | AppError::Conflict(m) => m.clone(),
            AppError::NotAuthenticated
            | AppError::BearerRequired { .. }
            | AppError::LoginRequired(_)
            | AppError::RefreshRequired { .. } => "Authentication required".into(),
            AppError::Forbidden(_, m) | AppError::TooMany(_, m, _) => (*m).into(),
            AppError::NotFound => "Not found".into(),
            AppError::TooLarge => "The request body is too large".into(),
            AppError::BodyTimeout => "The request body did not arrive in time".into(),
            AppError::UnsupportedMediaType => {
                "Send JSON with Content-Type: application/json".into()
            }
            AppError::UnsupportedEncoding => {
                "Send the body plain, or with Content-Encoding gzip, deflate or br".into()
            }
            AppError::Unavailable(_) => {
                "A backing service is unavailable; try again shortly".into()
            }
            AppError::Internal(_) => "Something went wrong on our side".into(),
        }
    }

    /// Seconds a client should wait before trying again, for the errors
    /// that pass by themselves.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Unavailable(_) => Some(2),
            AppError::TooMany(_, _, wait) => Some(*wait),
            _ => None,
        }
    }

    pub fn bad_origin() -> Self {
        AppError::Forbidden("bad_origin", "Cross-site request refused")
    }

    pub fn bad_csrf() -> Self {
        AppError::Forbidden(
            "bad_csrf_token",
            "The form expired or was not ours; reload and try again",
        )
    }

    fn log(&self) {
        match self {
            AppError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            AppError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "backing service unavailable")
            }
            _ => {}
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(column) => {
                AppError::Conflict(format!("{column} is already taken"))
            }
            StoreError::Unavailable(cause) => AppError::Unavailable(cause),
            StoreError::Other(cause) => cause.into(),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        // Too many password checks at once is load, not a fault: 503.
        if err.is::<crate::auth::password::Busy>() {
            return AppError::Unavailable(err);
        }
        AppError::Internal(err)
    }
}

/// An error answered as JSON `{"error","message"}`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub AppError);

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError(err.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            AppError::LoginRequired(_) | AppError::RefreshRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ref other => other.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let body = serde_json::json!({ "error": self.0.code(), "message": self.0.message() });
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]));
        if let Some(retry) = self.0.retry_after() {
            res.insert_header((header::RETRY_AFTER, retry));
        }
        if let AppError::BearerRequired { invalid } = self.0 {
            let challenge = if invalid {
                "Bearer realm=\"chat\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"chat\""
            };
            res.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        res.json(body)
    }
}

/// An error answered as an HTML page, or a redirect to the login page.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AppError);

impl From<StoreError> for PageError {
    fn from(err: StoreError) -> Self {
        PageError(err.into())
    }
}

impl From<anyhow::Error> for PageError {
    fn from(err: anyhow::Error) -> Self {
        PageError(err.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
    user: Option<String>,
    csrf_token: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        match &self.0 {
            AppError::LoginRequired(next) => super::see_other(&super::login_url(next)),
            AppError::RefreshRequired {
                next,
                repost: false,
            } => super::see_other(&super::refresh_url(next)),
            AppError::RefreshRequired { next, repost: true } => {
                super::repost_to(&super::refresh_url(next))
            }
            AppError::NotAuthenticated | AppError::BearerRequired { .. } => {
                super::see_other("/login")
            }
            other => {
                let message = other.message();
                let page = ErrorPage {
                    status: other.status().as_u16(),
                    message: &message,
                    user: None,
                    csrf_token: String::new(),
                };
                let html = page
                    .render()
                    .unwrap_or_else(|_| format!("{} {}", other.status().as_u16(), other.code()));
                let mut res = HttpResponse::build(other.status());
                if let Some(retry) = other.retry_after() {
                    res.insert_header((header::RETRY_AFTER, retry));
                }
                res.content_type(ContentType::html()).body(html)
            }
        }
    }
}
