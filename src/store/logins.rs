//! Queries on `logins`: where each user is logged in.

use diesel::prelude::*;

use super::schema::logins;
use super::{Conn, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = logins)]
pub struct Login {
    pub handle: String,
    pub user_id: i64,
    pub user_agent: String,
    pub address: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub ended_at: Option<i64>,
}

pub fn record(conn: &mut Conn, login: &Login) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::replace_into(logins::table)
            .values(login)
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

pub fn seen(conn: &mut Conn, handle: &str, at: i64) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::update(logins::table.find(handle))
            .set(logins::last_seen.eq(at))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

/// Marks logins ended: one, or (with `handle` none) all of a user's but
/// `keep`. Returns the handles that were live.
pub fn end(
    conn: &mut Conn,
    user_id: i64,
    handle: Option<&str>,
    keep: Option<&str>,
    at: i64,
) -> Result<Vec<String>, StoreError> {
    conn.immediate_transaction(|conn| {
        let mut live = logins::table
            .filter(logins::user_id.eq(user_id))
            .filter(logins::ended_at.is_null())
            .select(logins::handle)
            .into_boxed();
        if let Some(handle) = handle {
            live = live.filter(logins::handle.eq(handle));
        }
        if let Some(keep) = keep {
            live = live.filter(logins::handle.ne(keep));
        }
        let handles: Vec<String> = live.load(conn)?;
        diesel::update(logins::table.filter(logins::handle.eq_any(&handles)))
            .set(logins::ended_at.eq(at))
            .execute(conn)?;
        Ok(handles)
    })
}

/// Marks one login ended, whoever's it is (a logout, a revoked family).
pub fn end_handle(conn: &mut Conn, handle: &str, at: i64) -> Result<(), StoreError> {
    diesel::update(logins::table.find(handle))
        .filter(logins::ended_at.is_null())
        .set(logins::ended_at.eq(at))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from)
}

/// A user's live logins, most recently seen first.
pub fn live(conn: &mut Conn, user_id: i64, since: i64) -> Result<Vec<Login>, StoreError> {
    logins::table
        .filter(logins::user_id.eq(user_id))
        .filter(logins::ended_at.is_null())
        .filter(logins::last_seen.ge(since))
        .order(logins::last_seen.desc())
        .limit(100)
        .select(Login::as_select())
        .load(conn)
        .map_err(StoreError::from)
}

/// Logins ended since `since`: an instance starting up refuses them.
pub fn ended_since(conn: &mut Conn, since: i64) -> Result<Vec<String>, StoreError> {
    logins::table
        .filter(logins::ended_at.ge(since))
        .select(logins::handle)
        .load(conn)
        .map_err(StoreError::from)
}
