//! Queries on `users`.

use diesel::prelude::*;

use super::schema::users;
use super::{Conn, NewUser, StoreError, User};

pub fn create(conn: &mut Conn, new: &NewUser) -> Result<User, StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::insert_into(users::table)
            .values(new)
            .returning(User::as_returning())
            .get_result(conn)
            .map_err(StoreError::from)
    })
}

pub fn by_email_key(conn: &mut Conn, email_key: &str) -> Result<Option<User>, StoreError> {
    users::table
        .filter(users::email_key.eq(email_key))
        .select(User::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from)
}

pub fn by_id(conn: &mut Conn, id: i64) -> Result<Option<User>, StoreError> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from)
}

/// Invalidates every session and token issued before `at` (Unix ms).
pub fn set_valid_after(conn: &mut Conn, id: i64, at: i64) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::update(users::table.find(id))
            .set(users::valid_after.eq(at))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

/// Sets a new password hash and moves the valid-after time, in one write.
pub fn set_password(conn: &mut Conn, id: i64, hash: &str, at: i64) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::update(users::table.find(id))
            .set((users::password_hash.eq(hash), users::valid_after.eq(at)))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

/// The valid-after times of the given users.
pub fn valid_afters(conn: &mut Conn, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
    users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::valid_after))
        .load(conn)
        .map_err(StoreError::from)
}
