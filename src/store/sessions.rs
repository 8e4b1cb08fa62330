//! Queries on `sessions`, the embedded session store's table.

use diesel::prelude::*;

use super::schema::sessions;
use super::{Conn, StoreError};

/// The state of a live session, or nothing when it is absent or expired.
pub fn load(conn: &mut Conn, key_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
    sessions::table
        .find(key_hash)
        .filter(sessions::expires_at.gt(now))
        .select(sessions::state)
        .first(conn)
        .optional()
        .map_err(StoreError::from)
}

pub fn upsert(
    conn: &mut Conn,
    key_hash: &str,
    state: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::replace_into(sessions::table)
            .values((
                sessions::key_hash.eq(key_hash),
                sessions::state.eq(state),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

pub fn touch(conn: &mut Conn, key_hash: &str, expires_at: i64) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::update(sessions::table.find(key_hash))
            .set(sessions::expires_at.eq(expires_at))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

pub fn delete(conn: &mut Conn, key_hash: &str) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::delete(sessions::table.find(key_hash))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

/// Removes expired rows; returns how many.
pub fn purge_expired(conn: &mut Conn, now: i64) -> Result<usize, StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::delete(sessions::table.filter(sessions::expires_at.le(now)))
            .execute(conn)
            .map_err(StoreError::from)
    })
}
