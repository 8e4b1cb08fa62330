//! The account page: change the password, see where you are logged in and
//! end any of those logins, log out everywhere, and review recent security
//! events.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::audit;
use super::error::{AppError, PageError};
use super::extract::PageUser;
use super::forms::{EndForm, PasswordForm};
use super::pages::accounts::{publish_ended, with_cookies};
use super::pages::{render, verify_csrf, CsrfBinding};
use super::templates::{AccountPage, EventView, LoginView};
use super::{see_other, State};
use crate::auth::{AuthUser, PasswordChange};
use crate::chat::events::{Cause, Issued};
use crate::chat::{CloseKind, Event};
use crate::store::{self, now_ms};
use crate::util::rfc3339;

#[derive(Deserialize)]
pub struct Notice {
    changed: Option<String>,
}

pub async fn show(
    req: HttpRequest,
    state: State,
    user: PageUser,
    query: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let notice = query
        .changed
        .is_some()
        .then(|| "Password changed. Every other device has been logged out.".to_owned());
    account_page(&req, &state, &user.0, notice, None, StatusCode::OK).await
}

async fn account_page(
    req: &HttpRequest,
    state: &State,
    user: &AuthUser,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let id = user.id;
    // Logins unused for longer than a session or token family can live are
    // over, even if nobody ended them.
    let horizon =
        now_ms().saturating_sub(i64::try_from(state.login_horizon.as_millis()).unwrap_or(0));
    let (logins, events) = state
        .db
        .run(move |c| {
            Ok((
                store::logins::live(c, id, horizon)?,
                store::audit::recent(c, id, 20)?,
            ))
        })
        .await?;
    let sockets = state.events.hub().sockets_by_handle(id);
    let current = user.credential.handle();
    let logins = logins
        .into_iter()
        .map(|l| LoginView {
            current: l.handle == current,
            sockets: sockets.get(&l.handle).copied().unwrap_or(0),
            handle: l.handle,
            device: l.user_agent,
            address: l.address,
            last_seen: rfc3339(l.last_seen),
            created: rfc3339(l.created_at),
        })
        .collect();
    let events = events
        .into_iter()
        .map(|e| EventView {
            kind: describe(&e.kind),
            address: e.address,
            at: rfc3339(e.created_at),
        })
        .collect();
    let page = AccountPage {
        user: Some(user.username.clone()),
        csrf_token: CsrfBinding::for_request(req, Some(user)).token(state),
        logins,
        events,
        notice,
        error,
    };
    render(&page, status)
}

fn describe(kind: &str) -> String {
    match kind {
        "register" => "Account created",
        "login" => "Logged in",
        "login_failed" => "Failed login attempt",
        "login_throttled" => "Login attempts refused after too many failures",
        "logout" => "Logged out",
        "logout_everywhere" => "Logged out everywhere",
        "password_changed" => "Password changed",
        "login_ended" => "A login was ended from this page",
        "refresh_reuse" => "A stolen refresh token was detected; that login was ended",
        other => other,
    }
    .to_owned()
}

pub async fn change_password(
    req: HttpRequest,
    state: State,
    user: PageUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let user = user.0;
    verify_csrf(&req, &state, Some(&user), form.csrf_token.as_deref())?;
    let change = state
        .auth
        .change_password(&req, &user, &form.current_password, &form.new_password)
        .await?;
    match change {
        PasswordChange::Changed {
            at,
            keep,
            ended,
            cookies,
        } => {
            publish_ended(&state, user.id, ended, Cause::PasswordChange);
            state.events.publish(Event::ValidAfter {
                user_id: user.id,
                at,
                keep: Some(keep),
                issued: Issued::now(Cause::PasswordChange),
            });
            audit::record(&state, &req, Some(user.id), "password_changed");
            Ok(with_cookies(see_other("/account?changed=1"), cookies))
        }
        PasswordChange::WrongPassword => {
            let error = Some("The current password is not right".to_owned());
            account_page(&req, &state, &user, None, error, StatusCode::BAD_REQUEST).await
        }
        PasswordChange::Invalid(message) => {
            account_page(
                &req,
                &state,
                &user,
                None,
                Some(message),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

pub async fn end_login(
    req: HttpRequest,
    state: State,
    user: PageUser,
    form: web::Form<EndForm>,
) -> Result<HttpResponse, PageError> {
    let user = user.0;
    verify_csrf(&req, &state, Some(&user), form.csrf_token.as_deref())?;
    if !state.auth.end_login(user.id, &form.handle).await? {
        return Err(AppError::NotFound.into());
    }
    state.events.publish(Event::Revoke {
        user_id: user.id,
        handle: Some(form.handle.clone()),
        kind: CloseKind::Revoked,
        issued: Issued::now(Cause::LoginEnded),
    });
    audit::record(&state, &req, Some(user.id), "login_ended");
    if form.handle == user.credential.handle() {
        let cookies = state.auth.sign_out(&req, &user).await?;
        return Ok(with_cookies(see_other("/login"), cookies));
    }
    Ok(see_other("/account"))
}
