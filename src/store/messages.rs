//! Queries on `messages`, always joined with the author's name.

use diesel::prelude::*;

use super::schema::{messages, users};
use super::{Conn, Message, NewMessage, StoreError};

type Columns = (
    messages::id,
    messages::room_id,
    messages::author_id,
    messages::body,
    messages::client_id,
    messages::created_at,
    users::username,
);

const COLUMNS: Columns = (
    messages::id,
    messages::room_id,
    messages::author_id,
    messages::body,
    messages::client_id,
    messages::created_at,
    users::username,
);

/// Stores a message, or, when the author already stored one with the same
/// client id, returns that one. The flag says whether a row was written.
pub fn insert_once(conn: &mut Conn, new: &NewMessage) -> Result<(Message, bool), StoreError> {
    conn.immediate_transaction(|conn| {
        if let Some(client_id) = &new.client_id {
            let existing = messages::table
                .inner_join(users::table)
                .filter(messages::author_id.eq(new.author_id))
                .filter(messages::client_id.eq(client_id))
                .select(COLUMNS)
                .first::<Message>(conn)
                .optional()?;
            if let Some(existing) = existing {
                return Ok((existing, false));
            }
        }
        let id: i64 = diesel::insert_into(messages::table)
            .values(new)
            .returning(messages::id)
            .get_result(conn)?;
        let stored = messages::table
            .inner_join(users::table)
            .filter(messages::id.eq(id))
            .select(COLUMNS)
            .first::<Message>(conn)?;
        Ok((stored, true))
    })
}

/// The newest `limit` messages before `before` (or the newest of all),
/// returned oldest first.
pub fn page(
    conn: &mut Conn,
    room_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let mut query = messages::table
        .inner_join(users::table)
        .filter(messages::room_id.eq(room_id))
        .select(COLUMNS)
        .order(messages::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(messages::id.lt(before));
    }
    let mut rows: Vec<Message> = query.load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// Messages after `after_id`, oldest first, at most `limit`.
pub fn after(
    conn: &mut Conn,
    room_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    messages::table
        .inner_join(users::table)
        .filter(messages::room_id.eq(room_id))
        .filter(messages::id.gt(after_id))
        .select(COLUMNS)
        .order(messages::id.asc())
        .limit(limit)
        .load(conn)
        .map_err(StoreError::from)
}
