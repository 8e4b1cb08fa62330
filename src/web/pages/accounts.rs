//! Register, log in (form and JSON), log out.

use actix_web::cookie::Cookie;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, verify_csrf, CsrfBinding};
use crate::auth::{identity, AuthUser, Credential, Failure, SignedIn};
use crate::chat::events::{Cause, Issued};
use crate::chat::{CloseKind, Event};
use crate::store::{self, NewUser, StoreError, User};
use crate::web::audit::{self, client_address};
use crate::web::error::{ApiError, AppError, PageError};
use crate::web::extract::{read_body, refresh_first, PageUser};
use crate::web::forms::{self, LoginForm, LogoutForm, RegisterForm};
use crate::web::limits::{Attempt, REGISTRATIONS};
use crate::web::templates::{FieldErrors, LoginPage, RegisterPage};
use crate::web::{safe_next, see_other, State};

const BAD_LOGIN: &str = "Invalid email or password";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn register_form(req: HttpRequest, state: State) -> Result<HttpResponse, PageError> {
    if state.auth.authenticate(&req).await.is_ok() {
        return Ok(see_other("/rooms"));
    }
    let csrf = CsrfBinding::for_request(&req, None);
    let page = RegisterPage {
        user: None,
        csrf_token: csrf.token(&state),
        username: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
        username_rule: identity::USERNAME_RULE,
    };
    Ok(csrf.attach(render(&page, StatusCode::OK)?))
}

pub async fn register(
    req: HttpRequest,
    state: State,
    form: web::Form<RegisterForm>,
) -> Result<HttpResponse, PageError> {
    verify_csrf(&req, &state, None, form.csrf_token.as_deref())?;
    let mut errors = FieldErrors::default();
    let username = identity::username(&form.username)
        .map_err(|e| errors.username = Some(e))
        .ok();
    let email = identity::email(&form.email)
        .map_err(|e| errors.email = Some(e))
        .ok();
    let _ = identity::password(&form.password).map_err(|e| errors.password = Some(e));
    let (Some(username), Some((email, email_key)), false) = (username, email, errors.any()) else {
        return register_again(&req, &state, &form, errors, StatusCode::BAD_REQUEST);
    };
    let address = client_address(&req, &state);
    if let Some(wait) = REGISTRATIONS.exhausted(&state.throttle, &address).await? {
        errors.form = Some(format!(
            "Too many accounts created from your address. Try again in {} minutes.",
            wait.div_ceil(60)
        ));
        let mut page = register_again(&req, &state, &form, errors, StatusCode::TOO_MANY_REQUESTS)?;
        page.headers_mut().insert(RETRY_AFTER, wait.into());
        return Ok(page);
    }
    let hash = state.auth.hasher.hash(form.password.clone()).await?;
    let now = store::now_ms();
    let new = NewUser {
        username: username.display,
        username_key: username.key,
        username_skeleton: username.skeleton,
        email,
        email_key,
        password_hash: hash,
        valid_after: 0,
        created_at: now,
    };
    let created = state.db.run(move |c| store::users::create(c, &new)).await;
    let user = match created {
        Ok(user) => user,
        Err(StoreError::Conflict(column)) => {
            if column.starts_with("email") {
                errors.email = Some("An account with this email already exists".into());
            } else {
                errors.username = Some("That username is taken".into());
            }
            return register_again(&req, &state, &form, errors, StatusCode::CONFLICT);
        }
        Err(other) => return Err(other.into()),
    };
    REGISTRATIONS.used(&state.throttle, &address).await?;
    let signed = sign_in(&req, &state, &user).await?;
    audit::record(&state, &req, Some(user.id), "register");
    Ok(with_cookies(see_other("/rooms"), signed.cookies))
}

fn register_again(
    req: &HttpRequest,
    state: &State,
    form: &RegisterForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let csrf = CsrfBinding::for_request(req, None);
    let page = RegisterPage {
        user: None,
        csrf_token: csrf.token(state),
        username: form.username.clone(),
        email: form.email.clone(),
        errors,
        username_rule: identity::USERNAME_RULE,
    };
    Ok(csrf.attach(render(&page, status)?))
}

pub async fn login_form(
    req: HttpRequest,
    state: State,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref()).to_owned();
    if state.auth.authenticate(&req).await.is_ok() {
        return Ok(see_other(&next));
    }
    login_page(&req, &state, String::new(), next, None, StatusCode::OK)
}

fn login_page(
    req: &HttpRequest,
    state: &State,
    email: String,
    next: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let csrf = CsrfBinding::for_request(req, None);
    let page = LoginPage {
        user: None,
        csrf_token: csrf.token(state),
        email,
        next,
        error,
        notice: None,
    };
    Ok(csrf.attach(render(&page, status)?))
}

/// `POST /login`: a form from the login page, or the JSON API login.
pub async fn login(
    req: HttpRequest,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        Ok(login_json(&req, &state, payload).await?)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Ok(login_form_post(&req, &state, payload).await?)
    } else {
        Err(ApiError(AppError::UnsupportedMediaType).into())
    }
}

async fn login_form_post(
    req: &HttpRequest,
    state: &State,
    payload: web::Payload,
) -> Result<HttpResponse, PageError> {
    let body = read_body(payload).await?;
    let form: LoginForm = forms::decode(&body)
        .map_err(|_| AppError::BadRequest("The form could not be read".into()))?;
    verify_csrf(req, state, None, form.csrf_token.as_deref())?;
    let next = safe_next(form.next.as_deref()).to_owned();
    match check_password(req, state, &form.email, &form.password).await? {
        Checked::Valid(user) => {
            let signed = sign_in(req, state, &user).await?;
            Ok(with_cookies(see_other(&next), signed.cookies))
        }
        Checked::Invalid => login_page(
            req,
            state,
            form.email.clone(),
            next,
            Some(BAD_LOGIN.into()),
            StatusCode::BAD_REQUEST,
        ),
        Checked::Throttled(wait) => {
            let mut page = login_page(
                req,
                state,
                form.email.clone(),
                next,
                Some(throttled_message(wait)),
                StatusCode::TOO_MANY_REQUESTS,
            )?;
            page.headers_mut().insert(RETRY_AFTER, wait.into());
            Ok(page)
        }
    }
}

async fn login_json(
    req: &HttpRequest,
    state: &State,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let login = forms::decode_login_json(&body)
        .map_err(|e| AppError::BadRequest(format!("Expected {{\"email\",\"password\"}}: {e}")))?;
    match check_password(req, state, &login.email, &login.password).await? {
        Checked::Valid(user) => {
            let signed = sign_in(req, state, &user).await?;
            let who = serde_json::json!({ "id": user.id, "username": user.username, "email": user.email });
            let body = match &signed.tokens {
                Some(pair) => serde_json::json!({
                    "accessToken": pair.access,
                    "refreshToken": pair.refresh,
                    "user": who,
                }),
                None => serde_json::json!({ "user": who }),
            };
            Ok(with_cookies(HttpResponse::Ok().json(body), signed.cookies))
        }
        Checked::Invalid => Ok(HttpResponse::Unauthorized().json(serde_json::json!({
            "error": "invalid_credentials",
            "message": BAD_LOGIN,
        }))),
        Checked::Throttled(wait) => Ok(HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, wait))
            .json(serde_json::json!({
                "error": "too_many_attempts",
                "message": throttled_message(wait),
            }))),
    }
}

/// How a login attempt ended.
enum Checked {
    Valid(User),
    Invalid,
    /// Too many failures: try again in this many seconds.
    Throttled(u64),
}

/// Checks a login. An unknown email costs the same bcrypt work as a wrong
/// password; an attempt over a limit costs none.
async fn check_password(
    req: &HttpRequest,
    state: &State,
    email: &str,
    password: &str,
) -> Result<Checked, AppError> {
    let key = identity::fold(email.trim());
    let address = client_address(req, state);
    let attempt = Attempt::new(&key, &address);
    if let Some(wait) = attempt.blocked(&state.throttle).await? {
        audit::record(state, req, None, "login_throttled");
        state.metrics.login_throttled();
        return Ok(Checked::Throttled(wait));
    }
    let found = if key.is_empty() || key.len() > 254 || password.len() > 72 {
        None
    } else {
        state
            .db
            .run(move |c| store::users::by_email_key(c, &key))
            .await?
    };
    let hash = found.as_ref().map(|u| u.password_hash.clone());
    let ok = state.auth.hasher.verify(password.to_owned(), hash).await?;
    match (ok, found) {
        (true, Some(user)) => {
            attempt.succeeded(&state.throttle).await?;
            audit::record(state, req, Some(user.id), "login");
            Ok(Checked::Valid(user))
        }
        (_, found) => {
            attempt.failed(&state.throttle).await?;
            // The failure shows in the account's own log when the email
            // names one; the address is all there is to go on otherwise.
            audit::record(state, req, found.map(|u| u.id), "login_failed");
            Ok(Checked::Invalid)
        }
    }
}

fn throttled_message(wait: u64) -> String {
    let minutes = wait.div_ceil(60);
    format!(
        "Too many failed attempts. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

pub async fn logout(
    req: HttpRequest,
    state: State,
    form: Option<web::Form<LogoutForm>>,
) -> Result<HttpResponse, PageError> {
    let user = match state.auth.authenticate(&req).await {
        Ok(user) => user,
        // Refresh, then log out for real: otherwise the refresh cookie
        // would quietly log the browser back in.
        Err(Failure::Expired) => return Err(refresh_first(&req).into()),
        Err(_) => return Ok(see_other("/login")),
    };
    let token = form.as_ref().and_then(|f| f.csrf_token.as_deref());
    verify_csrf(&req, &state, Some(&user), token)?;
    let cookies = sign_out(&req, &state, &user).await?;
    Ok(with_cookies(see_other("/login"), cookies))
}

/// "Log out everywhere": every session and token family of the user ends,
/// this one included, and every socket of the user closes.
pub async fn logout_all(
    req: HttpRequest,
    state: State,
    user: PageUser,
    form: Option<web::Form<LogoutForm>>,
) -> Result<HttpResponse, PageError> {
    let user = user.0;
    let token = form.as_ref().and_then(|f| f.csrf_token.as_deref());
    verify_csrf(&req, &state, Some(&user), token)?;
    let (at, ended) = state.auth.sign_out_everywhere(user.id).await?;
    publish_ended(&state, user.id, ended, Cause::LogoutEverywhere);
    state.events.publish(Event::ValidAfter {
        user_id: user.id,
        at,
        keep: None,
        issued: Issued::now(Cause::LogoutEverywhere),
    });
    let cookies = state.auth.sign_out(&req, &user).await?;
    audit::record(&state, &req, Some(user.id), "logout_everywhere");
    Ok(with_cookies(see_other("/login"), cookies))
}

/// Ends the request's credential, tells every instance (its sockets close,
/// its tokens are refused), and returns the cookies that delete it.
pub async fn sign_out(
    req: &HttpRequest,
    state: &State,
    user: &AuthUser,
) -> Result<Vec<Cookie<'static>>, AppError> {
    let cookies = state.auth.sign_out(req, user).await?;
    if let Credential::Token {
        jti, expires_ms, ..
    } = &user.credential
    {
        state.events.publish(Event::TokenDenied {
            jti: jti.clone(),
            expires_ms: *expires_ms,
        });
    }
    state.events.publish(Event::Revoke {
        user_id: user.id,
        handle: Some(user.credential.handle().to_owned()),
        kind: CloseKind::LoggedOut,
        issued: Issued::now(Cause::Logout),
    });
    audit::record(state, req, Some(user.id), "logout");
    Ok(cookies)
}

/// Starts a session or token family for `user`, listed with this client.
async fn sign_in(req: &HttpRequest, state: &State, user: &User) -> Result<SignedIn, StoreError> {
    let client = audit::client_of(req, state);
    state
        .auth
        .sign_in(req, user.id, &user.username, &client)
        .await
}

/// Tells every instance that these logins of the user ended.
pub fn publish_ended(state: &State, user_id: i64, handles: Vec<String>, cause: Cause) {
    for handle in handles {
        state.events.publish(Event::Revoke {
            user_id,
            handle: Some(handle),
            kind: CloseKind::Revoked,
            issued: Issued::now(cause),
        });
    }
}

/// Adds cookies to a response.
pub fn with_cookies(mut res: HttpResponse, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    for cookie in cookies {
        let _ = res.add_cookie(&cookie);
    }
    res
}
