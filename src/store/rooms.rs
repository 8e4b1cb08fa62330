//! Queries on `rooms`.

use diesel::prelude::*;

use super::schema::rooms;
use super::{Conn, Room, StoreError};

const COLUMNS: (rooms::id, rooms::name, rooms::created_at) =
    (rooms::id, rooms::name, rooms::created_at);

pub fn list(conn: &mut Conn) -> Result<Vec<Room>, StoreError> {
    rooms::table
        .select(COLUMNS)
        .order(rooms::name_key.asc())
        .limit(1000)
        .load(conn)
        .map_err(StoreError::from)
}

pub fn find(conn: &mut Conn, id: i64) -> Result<Option<Room>, StoreError> {
    rooms::table
        .find(id)
        .select(COLUMNS)
        .first(conn)
        .optional()
        .map_err(StoreError::from)
}

pub fn create(
    conn: &mut Conn,
    name: &str,
    name_key: &str,
    created_by: i64,
    now: i64,
) -> Result<Room, StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::insert_into(rooms::table)
            .values((
                rooms::name.eq(name),
                rooms::name_key.eq(name_key),
                rooms::created_by.eq(created_by),
                rooms::created_at.eq(now),
            ))
            .returning(COLUMNS)
            .get_result(conn)
            .map_err(StoreError::from)
    })
}
