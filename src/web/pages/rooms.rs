//! The room list, room creation, a room's page and posting without
//! JavaScript.

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, verify_csrf, CsrfBinding};
use crate::auth::{identity, AuthUser};
use crate::chat::post::{self, Post, PostError};
use crate::store::{self, Room, StoreError};
use crate::web::audit::client_address;
use crate::web::error::{AppError, PageError};
use crate::web::extract::PageUser;
use crate::web::forms::{MessageForm, RoomForm};
use crate::web::limits::ROOMS;
use crate::web::templates::{MessageView, RoomPage, RoomsPage};
use crate::web::{see_other, State};

/// Messages shown on a room page.
const PAGE_SIZE: i64 = 50;

#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<i64>,
}

pub async fn list(
    req: HttpRequest,
    state: State,
    user: PageUser,
) -> Result<HttpResponse, PageError> {
    rooms_page(&req, &state, &user.0, String::new(), None, StatusCode::OK).await
}

async fn rooms_page(
    req: &HttpRequest,
    state: &State,
    user: &AuthUser,
    name: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let rooms = state.room_list.get(&state.db).await?.list.clone();
    let page = RoomsPage {
        user: Some(user.username.clone()),
        csrf_token: CsrfBinding::for_request(req, Some(user)).token(state),
        rooms,
        name,
        error,
    };
    render(&page, status)
}

pub async fn create(
    req: HttpRequest,
    state: State,
    user: PageUser,
    form: web::Form<RoomForm>,
) -> Result<HttpResponse, PageError> {
    let user = user.0;
    verify_csrf(&req, &state, Some(&user), form.csrf_token.as_deref())?;
    let (name, key) = match identity::room_name(&form.name) {
        Ok(pair) => pair,
        Err(e) => {
            return rooms_page(
                &req,
                &state,
                &user,
                form.name.clone(),
                Some(e),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let address = client_address(&req, &state);
    if let Some(wait) = ROOMS.exhausted(&state.throttle, &address).await? {
        let msg = Some(format!(
            "Too many rooms created from your address. Try again in {} minutes.",
            wait.div_ceil(60)
        ));
        let mut page = rooms_page(
            &req,
            &state,
            &user,
            form.name.clone(),
            msg,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await?;
        page.headers_mut().insert(RETRY_AFTER, wait.into());
        return Ok(page);
    }
    let user_id = user.id;
    let created = state
        .db
        .run(move |c| store::rooms::create(c, &name, &key, user_id, store::now_ms()))
        .await;
    match created {
        Ok(room) => {
            tracing::info!(room_id = room.id, user_id, "room created");
            state.room_list.changed();
            ROOMS.used(&state.throttle, &address).await?;
            Ok(see_other(&format!("/rooms/{}", room.id)))
        }
        Err(StoreError::Conflict(_)) => {
            let msg = Some("A room with this name already exists".to_owned());
            rooms_page(
                &req,
                &state,
                &user,
                form.name.clone(),
                msg,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

async fn find_room(state: &State, id: i64) -> Result<Room, PageError> {
    state
        .db
        .run(move |c| store::rooms::find(c, id))
        .await?
        .ok_or(PageError(AppError::NotFound))
}

pub async fn show(
    req: HttpRequest,
    state: State,
    user: PageUser,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    room_page(
        &req,
        &state,
        &user.0,
        path.into_inner(),
        query.before,
        None,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn room_page(
    req: &HttpRequest,
    state: &State,
    user: &AuthUser,
    room_id: i64,
    before: Option<i64>,
    error: Option<(String, String)>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let room = find_room(state, room_id).await?;
    // One more than shown tells whether older messages exist.
    let mut rows = state
        .db
        .run(move |c| store::messages::page(c, room_id, before, PAGE_SIZE + 1))
        .await?;
    let has_older = rows.len() > PAGE_SIZE as usize;
    if has_older {
        rows.remove(0);
    }
    let messages: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    let (error, body) = match error {
        Some((message, body)) => (Some(message), body),
        None => (None, String::new()),
    };
    let page = RoomPage {
        user: Some(user.username.clone()),
        csrf_token: CsrfBinding::for_request(req, Some(user)).token(state),
        user_id: user.id,
        username: user.username.clone(),
        last_id: messages.last().map_or(0, |m| m.id),
        older_before: has_older.then(|| messages.first().map_or(0, |m| m.id)),
        live: before.is_none(),
        room,
        messages,
        error,
        body,
    };
    render(&page, status)
}

pub async fn post_message(
    req: HttpRequest,
    state: State,
    user: PageUser,
    path: web::Path<i64>,
    form: web::Form<MessageForm>,
) -> Result<HttpResponse, PageError> {
    let user = user.0;
    let room_id = path.into_inner();
    verify_csrf(&req, &state, Some(&user), form.csrf_token.as_deref())?;
    find_room(&state, room_id).await?;
    let post = Post {
        author_id: user.id,
        room_id,
        body: &form.body,
        client_id: None,
        origin: None,
    };
    match post::post(&state.db, &state.events, &state.message_rates, post).await {
        Ok(_) => Ok(see_other(&format!("/rooms/{room_id}"))),
        Err(PostError::RateLimited(wait)) => {
            // Whole seconds, rounded up: waiting that long always suffices.
            let wait = u64::try_from(wait.as_millis())
                .unwrap_or(u64::MAX)
                .div_ceil(1000)
                .max(1);
            let message = format!(
                "You are sending messages too fast. Wait {wait} second{} and send again.",
                if wait == 1 { "" } else { "s" }
            );
            let mut page = room_page(
                &req,
                &state,
                &user,
                room_id,
                None,
                Some((message, form.body.clone())),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await?;
            page.headers_mut().insert(RETRY_AFTER, wait.into());
            Ok(page)
        }
        Err(PostError::Invalid(_, message)) => {
            let error = Some((message.to_owned(), form.body.clone()));
            room_page(
                &req,
                &state,
                &user,
                room_id,
                None,
                error,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(PostError::Store(err)) => Err(err.into()),
    }
}
