//! Queries on `revoked_tokens`, the embedded deny-list of access-token ids.

use diesel::prelude::*;

use super::schema::revoked_tokens;
use super::{Conn, StoreError};

pub fn add(conn: &mut Conn, jti: &str, expires_at: i64) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::replace_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(jti),
                revoked_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

/// Entries still in force, for an instance building its local view.
pub fn live(conn: &mut Conn, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    revoked_tokens::table
        .filter(revoked_tokens::expires_at.gt(now))
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
        .map_err(StoreError::from)
}

pub fn purge(conn: &mut Conn, now: i64) -> Result<usize, StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now)))
            .execute(conn)
            .map_err(StoreError::from)
    })
}
