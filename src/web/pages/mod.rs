//! HTML pages: rendering, CSRF tokens for forms, and the home redirect.

pub mod accounts;
pub mod rooms;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::error::{AppError, PageError};
use super::{see_other, State};
use crate::auth::csrf::NONCE_COOKIE;
use crate::auth::AuthUser;

pub async fn home(req: HttpRequest, state: State) -> HttpResponse {
    match state.auth.authenticate(&req).await {
        Ok(_) => see_other("/rooms"),
        Err(_) => see_other("/login"),
    }
}

/// Renders a page with the given status.
pub fn render(page: &impl Template, status: StatusCode) -> Result<HttpResponse, PageError> {
    let html = page
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("rendering a template: {e}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// What a form's CSRF token is bound to: the session handle when signed in,
/// otherwise the visitor's nonce cookie (created here if missing).
pub struct CsrfBinding {
    binding: String,
    new_cookie: Option<Cookie<'static>>,
}

impl CsrfBinding {
    pub fn for_request(req: &HttpRequest, user: Option<&AuthUser>) -> Self {
        if let Some(user) = user {
            return Self {
                binding: user.credential.handle().to_owned(),
                new_cookie: None,
            };
        }
        if let Some(nonce) = req.cookie(NONCE_COOKIE).map(|c| c.value().to_owned()) {
            if (16..=64).contains(&nonce.len()) {
                return Self {
                    binding: nonce,
                    new_cookie: None,
                };
            }
        }
        let nonce = crate::util::random_token(16);
        let cookie = Cookie::build(NONCE_COOKIE, nonce.clone())
            .path("/")
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax)
            .finish();
        Self {
            binding: nonce,
            new_cookie: Some(cookie),
        }
    }

    pub fn token(&self, state: &State) -> String {
        state.auth.csrf.token(&self.binding)
    }

    /// Adds the nonce cookie to a response when one was created.
    pub fn attach(self, mut res: HttpResponse) -> HttpResponse {
        if let Some(cookie) = self.new_cookie {
            let _ = res.add_cookie(&cookie);
        }
        res
    }
}

/// Checks a submitted form's token against the request's binding.
pub fn verify_csrf(
    req: &HttpRequest,
    state: &State,
    user: Option<&AuthUser>,
    token: Option<&str>,
) -> Result<(), PageError> {
    let binding = match user {
        Some(u) => Some(u.credential.handle().to_owned()),
        None => req.cookie(NONCE_COOKIE).map(|c| c.value().to_owned()),
    };
    match (binding, token) {
        (Some(b), Some(t)) if state.auth.csrf.verify(&b, t) => Ok(()),
        _ => {
            tracing::info!("form refused: missing or invalid CSRF token");
            Err(AppError::bad_csrf().into())
        }
    }
}
