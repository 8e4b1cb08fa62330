//! Queries on `audit_events`.

use diesel::prelude::*;

use super::schema::audit_events;
use super::{Conn, StoreError};

#[derive(Debug, Clone, Queryable)]
pub struct AuditEvent {
    pub id: i64,
    pub user_id: Option<i64>,
    pub kind: String,
    pub address: String,
    pub created_at: i64,
}

pub fn add(
    conn: &mut Conn,
    user_id: Option<i64>,
    kind: &str,
    address: &str,
    at: i64,
) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::insert_into(audit_events::table)
            .values((
                audit_events::user_id.eq(user_id),
                audit_events::kind.eq(kind),
                audit_events::address.eq(address),
                audit_events::created_at.eq(at),
            ))
            .execute(conn)
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

pub fn recent(conn: &mut Conn, user_id: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
    audit_events::table
        .filter(audit_events::user_id.eq(user_id))
        .order(audit_events::id.desc())
        .limit(limit)
        .load(conn)
        .map_err(StoreError::from)
}
