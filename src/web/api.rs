//! The JSON API: who am I, the rooms, and a room's history by page.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::{ApiError, AppError};
use super::extract::ApiUser;
use super::State;
use crate::chat::post::message_out;
use crate::store;

pub async fn me(state: State, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let id = user.0.id;
    let found = state.db.run(move |c| store::users::by_id(c, id)).await?;
    let user = found.ok_or(ApiError(AppError::NotAuthenticated))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": user.id, "username": user.username, "email": user.email,
    })))
}

pub async fn rooms(state: State, _user: ApiUser) -> Result<HttpResponse, ApiError> {
    let rooms = state.room_list.get(&state.db).await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(rooms.json.clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn messages(
    state: State,
    _user: ApiUser,
    path: web::Path<i64>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let room_id = path.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::BadRequest("limit must be between 1 and 100".into()).into());
    }
    // Message ids start at 1: a smaller cursor is a client's mistake, not
    // a request for nothing.
    let before = query.before;
    if before.is_some_and(|b| b < 1) {
        return Err(AppError::BadRequest("before must be a message id".into()).into());
    }
    let found = state
        .db
        .run(move |c| store::rooms::find(c, room_id))
        .await?;
    if found.is_none() {
        return Err(AppError::NotFound.into());
    }
    let rows = state
        .db
        .run(move |c| store::messages::page(c, room_id, before, limit))
        .await?;
    let messages: Vec<_> = rows.into_iter().map(|r| message_out(r, false)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "messages": messages })))
}
