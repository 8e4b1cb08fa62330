//! Rows as the rest of the app sees them.

use diesel::prelude::*;

use super::schema::{messages, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub valid_after: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub username: String,
    pub username_key: String,
    pub username_skeleton: String,
    pub email: String,
    pub email_key: String,
    pub password_hash: String,
    pub valid_after: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct Room {
    pub id: i64,
    pub name: String,
    #[serde(rename = "createdAt", serialize_with = "crate::util::rfc3339_ms")]
    pub created_at: i64,
}

/// A stored message with its author's name, ready to show or send.
#[derive(Debug, Clone, Queryable)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub author_id: i64,
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: i64,
    pub username: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = messages)]
pub struct NewMessage {
    pub room_id: i64,
    pub author_id: i64,
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: i64,
}
