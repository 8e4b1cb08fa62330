//! The local view of revocations that token checks consult on every request
//! instead of a store: denied access-token ids, revoked families, and each
//! user's name and valid-after time. Events from the event channel keep it
//! current on every instance; startup fills it from the stores.

use std::collections::HashMap;
use std::sync::RwLock;

use super::jwt::{Claims, Refusal};
use crate::store::{self, now_ms, Db, StoreError};

#[derive(Default)]
struct View {
    /// Denied access-token ids, with their expiry (Unix ms).
    jtis: HashMap<String, i64>,
    /// Revoked families, kept until their last access token has expired.
    families: HashMap<String, i64>,
    users: HashMap<i64, UserEntry>,
}

#[derive(Clone, Debug)]
pub struct UserEntry {
    pub username: String,
    pub valid_after: i64,
}

#[derive(Default)]
pub struct RevocationView {
    inner: RwLock<View>,
}

impl RevocationView {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn deny_jti(&self, jti: &str, expires_ms: i64) {
        self.write().jtis.insert(jti.to_owned(), expires_ms);
    }

    pub fn revoke_family(&self, family: &str, keep_until_ms: i64) {
        self.write()
            .families
            .insert(family.to_owned(), keep_until_ms);
    }

    /// Whether a session handle or token family has been revoked.
    pub fn is_revoked(&self, handle: &str) -> bool {
        self.read().families.contains_key(handle)
    }

    /// Records a new valid-after time; an older one never replaces it.
    pub fn set_valid_after(&self, user_id: i64, at: i64) {
        if let Some(entry) = self.write().users.get_mut(&user_id) {
            entry.valid_after = entry.valid_after.max(at);
        }
    }

    pub fn user(&self, user_id: i64) -> Option<UserEntry> {
        self.read().users.get(&user_id).cloned()
    }

    pub fn remember_user(&self, user_id: i64, entry: UserEntry) {
        let mut view = self.write();
        let slot = view.users.entry(user_id).or_insert_with(|| entry.clone());
        slot.valid_after = slot.valid_after.max(entry.valid_after);
    }

    /// Refuses a token whose id is denied, whose family is revoked, or that
    /// was issued before its user's valid-after time.
    pub fn check(&self, claims: &Claims, user: &UserEntry) -> Result<(), Refusal> {
        let view = self.read();
        if view.jtis.contains_key(&claims.jti) {
            return Err(Refusal::Revoked);
        }
        if view.families.contains_key(&claims.fam) {
            return Err(Refusal::FamilyRevoked);
        }
        // `iat` has whole seconds: compare at that precision, so a token
        // issued later in the same second as a "log out everywhere" is kept
        // (its family's revocation refuses the ones issued before it).
        if claims.iat.saturating_mul(1000) < user.valid_after / 1000 * 1000 {
            return Err(Refusal::BeforeValidAfter);
        }
        Ok(())
    }

    /// The user's name and valid-after time, loaded once from the database
    /// and then kept current by events.
    pub async fn user_entry(&self, db: &Db, id: i64) -> Result<Option<UserEntry>, StoreError> {
        if let Some(user) = self.user(id) {
            return Ok(Some(user));
        }
        let Some(user) = db.run(move |c| store::users::by_id(c, id)).await? else {
            return Ok(None);
        };
        let entry = UserEntry {
            username: user.username,
            valid_after: user.valid_after,
        };
        self.remember_user(id, entry.clone());
        Ok(Some(self.user(id).unwrap_or(entry)))
    }

    /// Reloads the valid-after time of every user in the view: after the
    /// event channel was down, a "log out everywhere" may have been missed.
    pub async fn refresh_users(&self, db: &Db) -> Result<(), StoreError> {
        let ids: Vec<i64> = self.read().users.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let times = db.run(move |c| store::users::valid_afters(c, &ids)).await?;
        for (id, at) in times {
            self.set_valid_after(id, at);
        }
        Ok(())
    }

    /// Forgets entries whose tokens have all expired.
    pub fn prune(&self) {
        let now = now_ms();
        let mut view = self.write();
        view.jtis.retain(|_, exp| *exp > now);
        view.families.retain(|_, until| *until > now);
    }

    pub fn denied_count(&self) -> usize {
        self.read().jtis.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, fam: &str, iat: i64) -> Claims {
        Claims {
            sub: "1".into(),
            iat,
            nbf: iat,
            exp: iat + 900,
            iss: "chat".into(),
            aud: "chat:access".into(),
            jti: jti.into(),
            fam: fam.into(),
        }
    }

    #[test]
    fn denied_ids_revoked_families_and_old_tokens_are_refused() {
        let view = RevocationView::default();
        let user = UserEntry {
            username: "a".into(),
            valid_after: 0,
        };
        let now = now_ms() / 1000;
        assert!(view.check(&claims("j", "f", now), &user).is_ok());
        view.deny_jti("j", now_ms() + 60_000);
        assert_eq!(
            view.check(&claims("j", "f", now), &user),
            Err(Refusal::Revoked)
        );
        view.revoke_family("f", now_ms() + 60_000);
        assert_eq!(
            view.check(&claims("k", "f", now), &user),
            Err(Refusal::FamilyRevoked)
        );
        let later = UserEntry {
            username: "a".into(),
            valid_after: (now + 10) * 1000,
        };
        assert_eq!(
            view.check(&claims("k", "g", now), &later),
            Err(Refusal::BeforeValidAfter)
        );
    }

    #[test]
    fn pruning_forgets_only_what_expired() {
        let view = RevocationView::default();
        view.deny_jti("old", now_ms() - 1);
        view.deny_jti("new", now_ms() + 60_000);
        view.prune();
        assert_eq!(view.denied_count(), 1);
    }
}
