//! The token endpoints of `jwt` mode: `POST /auth/refresh` (API and room
//! client), `GET /auth/refresh?next=` (pages whose access token expired)
//! and `POST /auth/logout`. In `session` mode they do not exist (404).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::audit;
use super::error::{ApiError, AppError};
use super::extract::read_body;
use super::pages::accounts::with_cookies;
use super::{login_url, repost_to, safe_next, see_other, State};
use crate::auth::tokens::{TokenAuth, REFRESH_COOKIE};
use crate::auth::{Credential, RefreshFailure, TokenPair};
use crate::chat::events::{Cause, Issued};
use crate::chat::{CloseKind, Event};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// Set on the second pass through `GET /auth/refresh`.
    bounced: Option<String>,
}

fn token_auth(state: &State) -> Result<&TokenAuth, AppError> {
    state.auth.tokens.as_ref().ok_or(AppError::NotFound)
}

/// The refresh token from a JSON body, else from the cookie; and whether it
/// came from the cookie (then the answer sets cookies too).
async fn presented_refresh(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<(String, bool)>, AppError> {
    let body = read_body(payload).await?;
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !json {
            return Err(AppError::UnsupportedMediaType);
        }
        serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("Expected {{\"refreshToken\"}}: {e}")))?
    };
    Ok(match parsed.refresh_token {
        Some(token) => Some((token, false)),
        None => req
            .cookie(REFRESH_COOKIE)
            .map(|c| (c.value().to_owned(), true)),
    })
}

/// Rotates the pair; on reuse after the grace, tells every instance to
/// close the family's sockets.
async fn rotate(
    req: &HttpRequest,
    state: &State,
    tokens: &TokenAuth,
    presented: &str,
) -> Result<TokenPair, AppError> {
    match tokens.refresh(presented).await {
        Ok(pair) => Ok(pair),
        Err(RefreshFailure::Invalid(reason)) => {
            tracing::info!(reason = reason.as_str(), "refresh token refused");
            Err(AppError::BearerRequired { invalid: true })
        }
        Err(RefreshFailure::Reused { user_id, family }) => {
            audit::record(state, req, Some(user_id), "refresh_reuse");
            state.events.publish(Event::Revoke {
                user_id,
                handle: Some(family),
                kind: CloseKind::Revoked,
                issued: Issued::now(Cause::FamilyReuse),
            });
            Err(AppError::BearerRequired { invalid: true })
        }
        Err(RefreshFailure::Unavailable(e)) => Err(e.into()),
    }
}

pub async fn refresh(
    req: HttpRequest,
    state: State,
    query: web::Query<NextQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tokens = token_auth(&state)?;
    if let Some(next) = &query.next {
        return resend_after_refresh(&state, tokens, &req, next).await;
    }
    let Some((presented, from_cookie)) = presented_refresh(&req, payload).await? else {
        return Err(AppError::BearerRequired { invalid: false }.into());
    };
    let pair = rotate(&req, &state, tokens, &presented).await?;
    let body = serde_json::json!({ "accessToken": pair.access, "refreshToken": pair.refresh });
    let mut res = HttpResponse::Ok().json(body);
    if from_cookie {
        res = with_cookies(
            res,
            vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)],
        );
    }
    Ok(res)
}

/// For pages: rotate from the refresh cookie and go back, or clear the
/// cookies and go to the login page. The refresh cookie is SameSite=Strict,
/// so another site cannot make a browser do this.
pub async fn refresh_page(
    req: HttpRequest,
    state: State,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, ApiError> {
    let tokens = token_auth(&state)?;
    let next = safe_next(query.next.as_deref()).to_owned();
    let Some(presented) = req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()) else {
        // The refresh cookie is SameSite=Strict: a navigation that began
        // on another site (a link in an email) arrives without it. Go
        // through one page of our own, from which the browser sends it.
        if query.bounced.is_none() {
            return Ok(bounce_page(&next));
        }
        return Ok(with_cookies(
            see_other(&login_url(&next)),
            TokenAuth::clearing_cookies(),
        ));
    };
    match rotate(&req, &state, tokens, &presented).await {
        Ok(pair) => Ok(with_cookies(
            see_other(&next),
            vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)],
        )),
        Err(AppError::Unavailable(e)) => Err(AppError::Unavailable(e).into()),
        Err(_) => Ok(with_cookies(
            see_other(&login_url(&next)),
            TokenAuth::clearing_cookies(),
        )),
    }
}

/// A page that sends the browser on to `/auth/refresh` again, now as a
/// navigation started by our own origin. A meta refresh needs no script,
/// so the Content-Security-Policy allows it.
fn bounce_page(next: &str) -> HttpResponse {
    let encoded = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    let page = BouncePage {
        target: format!("/auth/refresh?next={encoded}&bounced=1"),
    };
    match page.render() {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => see_other(&login_url(next)),
    }
}

#[derive(Template)]
#[template(path = "bounce.html")]
struct BouncePage {
    target: String,
}

/// A page's form post whose access token had expired, sent here as a POST
/// (307): rotate from the refresh cookie and send it back, still a POST with
/// its fields, to where it was going. The form's CSRF token stays valid:
/// it is bound to the family, which rotation keeps.
async fn resend_after_refresh(
    state: &State,
    tokens: &TokenAuth,
    req: &HttpRequest,
    next: &str,
) -> Result<HttpResponse, ApiError> {
    if safe_next(Some(next)) != next {
        return Ok(see_other("/rooms"));
    }
    let Some(presented) = req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(with_cookies(
            see_other("/login"),
            TokenAuth::clearing_cookies(),
        ));
    };
    match rotate(req, state, tokens, &presented).await {
        Ok(pair) => Ok(with_cookies(
            repost_to(next),
            vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)],
        )),
        Err(AppError::Unavailable(e)) => Err(AppError::Unavailable(e).into()),
        Err(_) => Ok(with_cookies(
            see_other("/login"),
            TokenAuth::clearing_cookies(),
        )),
    }
}

/// Revokes the family of the presented refresh token (or of the access
/// token when no refresh token is given) and denies the presented access
/// token until it expires.
pub async fn logout(
    req: HttpRequest,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tokens = token_auth(&state)?;
    let refresh = presented_refresh(&req, payload).await?;
    let access = state.auth.authenticate(&req).await.ok();
    let family = match (&refresh, &access) {
        (Some((token, _)), _) => tokens.family_of_refresh(token),
        (None, Some(user)) => Some((user.id, user.credential.handle().to_owned())),
        (None, None) => None,
    };
    let Some((user_id, family)) = family else {
        return Err(AppError::BearerRequired {
            invalid: refresh.is_some(),
        }
        .into());
    };
    let deny = access.as_ref().and_then(|user| match &user.credential {
        Credential::Token {
            jti, expires_ms, ..
        } if user.id == user_id => Some((jti.clone(), *expires_ms)),
        _ => None,
    });
    tokens
        .revoke(&family, deny.as_ref().map(|(j, e)| (j.as_str(), *e)))
        .await
        .map_err(AppError::from)?;
    if let Some((jti, expires_ms)) = deny {
        state.events.publish(Event::TokenDenied { jti, expires_ms });
    }
    state.events.publish(Event::Revoke {
        user_id,
        handle: Some(family),
        kind: CloseKind::LoggedOut,
        issued: Issued::now(Cause::Logout),
    });
    audit::record(&state, &req, Some(user_id), "logout");
    Ok(with_cookies(
        HttpResponse::NoContent().finish(),
        TokenAuth::clearing_cookies(),
    ))
}
