//! Queries on `refresh_families` and `refresh_tokens`: starting a family at
//! login, rotating a token at refresh (telling a concurrent refresh from a
//! stolen token), and revoking families.

use diesel::prelude::*;

use super::schema::{refresh_families, refresh_tokens};
use super::{Conn, StoreError};

/// A refresh token row to insert; `token_hash` is the SHA-256 of the token.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefresh {
    pub id: String,
    pub family_id: String,
    pub user_id: i64,
    pub token_hash: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_families)]
pub struct Family {
    pub id: String,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
struct TokenRow {
    family_id: String,
    expires_at: i64,
    spent_at: Option<i64>,
    revoked: bool,
}

/// What a presented refresh token turned out to be.
#[derive(Debug)]
pub enum Rotation<T> {
    /// A new token was stored in the same family; `T` is what the issuer
    /// returned alongside it.
    Rotated(T),
    /// A token spent longer ago than the grace: presumed stolen. The whole
    /// family has been revoked.
    Reused { user_id: i64, family_id: String },
    /// Unknown, revoked, expired, or its family ended.
    Invalid,
}

pub fn start_family(
    conn: &mut Conn,
    family: &Family,
    first: &NewRefresh,
) -> Result<(), StoreError> {
    conn.immediate_transaction(|conn| {
        diesel::insert_into(refresh_families::table)
            .values((
                refresh_families::id.eq(&family.id),
                refresh_families::user_id.eq(family.user_id),
                refresh_families::created_at.eq(family.created_at),
                refresh_families::expires_at.eq(family.expires_at),
            ))
            .execute(conn)?;
        diesel::insert_into(refresh_tokens::table)
            .values(first)
            .execute(conn)?;
        Ok(())
    })
}

/// Spends the token whose hash is `presented` and stores the one `issue`
/// makes for its family. A token already spent within `grace_ms` is a
/// concurrent refresh (two tabs) and also gets a new token; spent earlier,
/// it revokes the family.
pub fn rotate<T>(
    conn: &mut Conn,
    presented: &str,
    now: i64,
    grace_ms: i64,
    issue: impl FnOnce(&Family) -> Result<(NewRefresh, T), StoreError>,
) -> Result<Rotation<T>, StoreError> {
    conn.immediate_transaction(|conn| {
        let token = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(presented))
            .select(TokenRow::as_select())
            .first(conn)
            .optional()?;
        let Some(token) = token else {
            return Ok(Rotation::Invalid);
        };
        let family = refresh_families::table
            .find(&token.family_id)
            .select(Family::as_select())
            .first(conn)?;
        if family.revoked_at.is_some()
            || family.expires_at <= now
            || token.revoked
            || token.expires_at <= now
        {
            return Ok(Rotation::Invalid);
        }
        if let Some(spent) = token.spent_at {
            if now.saturating_sub(spent) > grace_ms {
                revoke_in(conn, &family.id, now)?;
                return Ok(Rotation::Reused {
                    user_id: family.user_id,
                    family_id: family.id,
                });
            }
        }
        let (next, extra) = issue(&family)?;
        if token.spent_at.is_none() {
            diesel::update(refresh_tokens::table.filter(refresh_tokens::token_hash.eq(presented)))
                .set((
                    refresh_tokens::spent_at.eq(now),
                    refresh_tokens::replaced_by.eq(&next.id),
                ))
                .execute(conn)?;
        }
        diesel::insert_into(refresh_tokens::table)
            .values(&next)
            .execute(conn)?;
        Ok(Rotation::Rotated(extra))
    })
}

fn revoke_in(conn: &mut Conn, family_id: &str, now: i64) -> Result<(), StoreError> {
    diesel::update(refresh_families::table.find(family_id))
        .filter(refresh_families::revoked_at.is_null())
        .set(refresh_families::revoked_at.eq(now))
        .execute(conn)?;
    diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .set(refresh_tokens::revoked.eq(true))
        .execute(conn)?;
    super::logins::end_handle(conn, family_id, now)
}

/// Revokes one family; returns its user when it exists.
pub fn revoke(conn: &mut Conn, family_id: &str, now: i64) -> Result<Option<i64>, StoreError> {
    conn.immediate_transaction(|conn| {
        let user = refresh_families::table
            .find(family_id)
            .select(refresh_families::user_id)
            .first(conn)
            .optional()?;
        if user.is_some() {
            revoke_in(conn, family_id, now)?;
        }
        Ok(user)
    })
}

/// Revokes every live family of a user but `keep`; returns their ids.
pub fn revoke_all(
    conn: &mut Conn,
    user_id: i64,
    now: i64,
    keep: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    conn.immediate_transaction(|conn| {
        let mut live = refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::revoked_at.is_null())
            .select(refresh_families::id)
            .into_boxed();
        if let Some(keep) = keep {
            live = live.filter(refresh_families::id.ne(keep));
        }
        let ids: Vec<String> = live.load(conn)?;
        for id in &ids {
            revoke_in(conn, id, now)?;
        }
        Ok(ids)
    })
}

/// Adds a token made by `issue` to a live family of `user_id`, without
/// spending the others (after a password change, for the device that made
/// it). None when the family is not live.
pub fn reissue<T>(
    conn: &mut Conn,
    user_id: i64,
    family_id: &str,
    now: i64,
    issue: impl FnOnce(&Family) -> Result<(NewRefresh, T), StoreError>,
) -> Result<Option<T>, StoreError> {
    conn.immediate_transaction(|conn| {
        let family: Option<Family> = refresh_families::table
            .find(family_id)
            .select(Family::as_select())
            .first(conn)
            .optional()?;
        let Some(family) =
            family.filter(|f| f.user_id == user_id && f.revoked_at.is_none() && f.expires_at > now)
        else {
            return Ok(None);
        };
        let (row, extra) = issue(&family)?;
        diesel::insert_into(refresh_tokens::table)
            .values(&row)
            .execute(conn)?;
        Ok(Some(extra))
    })
}

/// Families revoked since `since`: their access tokens may still be live.
pub fn revoked_since(conn: &mut Conn, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
    refresh_families::table
        .filter(refresh_families::revoked_at.ge(since))
        .select((refresh_families::id, refresh_families::user_id))
        .load(conn)
        .map_err(StoreError::from)
}

/// Whether a family is live (exists, not revoked, not past its maximum age).
pub fn is_live(conn: &mut Conn, family_id: &str, now: i64) -> Result<bool, StoreError> {
    let found: Option<Family> = refresh_families::table
        .find(family_id)
        .select(Family::as_select())
        .first(conn)
        .optional()?;
    Ok(found.is_some_and(|f| f.revoked_at.is_none() && f.expires_at > now))
}

/// Deletes tokens and families that ended more than `keep_ms` ago.
pub fn purge(conn: &mut Conn, now: i64, keep_ms: i64) -> Result<usize, StoreError> {
    let cutoff = now.saturating_sub(keep_ms);
    conn.immediate_transaction(|conn| {
        let tokens =
            diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(cutoff)))
                .execute(conn)?;
        let ended = refresh_families::table
            .filter(refresh_families::expires_at.lt(cutoff))
            .select(refresh_families::id);
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_id.eq_any(ended)))
            .execute(conn)?;
        let families =
            diesel::delete(refresh_families::table.filter(refresh_families::expires_at.lt(cutoff)))
                .execute(conn)?;
        Ok(tokens + families)
    })
}
