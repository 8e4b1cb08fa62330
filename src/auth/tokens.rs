//! Token mode: access tokens checked on every request against the local
//! revocation view (no store round trip), refresh tokens rotated in
//! families stored in the database, cookies for browsers and Bearer headers
//! for API clients.

use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;

use super::jwt::{Claims, Kind, Refusal, Tokens};
use super::revocation::{RevocationView, UserEntry};
use super::{AuthUser, Credential, Failure};
use crate::store::kv::DenyStore;
use crate::store::refresh::{self, Family, NewRefresh, Rotation};
use crate::store::{now_ms, Db, StoreError};
use crate::util::{random_token, sha256_hex};

pub const ACCESS_COOKIE: &str = "chat_access";
pub const REFRESH_COOKIE: &str = "chat_refresh";
/// The refresh cookie goes only to the token endpoints.
pub const REFRESH_PATH: &str = "/auth";

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub family_max: Duration,
    pub reuse_grace: Duration,
    pub leeway: Duration,
}

pub struct TokenAuth {
    pub tokens: Tokens,
    pub view: Arc<RevocationView>,
    pub db: Db,
    pub deny: DenyStore,
    pub life: Lifetimes,
    /// Whether this instance hears revocations from the others.
    pub linked: tokio::sync::watch::Receiver<bool>,
    /// REDIS_OUTAGE_POLICY=refuse: no token passes while not linked.
    pub refuse_unlinked: bool,
}

/// A new access and refresh token of one family.
#[derive(Debug)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub access_expires_ms: i64,
    pub refresh_expires_ms: i64,
    pub family: String,
    pub user_id: i64,
}

/// Why a refresh did not happen.
#[derive(Debug)]
pub enum RefreshFailure {
    Invalid(Refusal),
    /// A spent token came back after the grace: the family was revoked.
    Reused {
        user_id: i64,
        family: String,
    },
    Unavailable(StoreError),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Where a request's access token came from.
pub fn presented_access(req: &HttpRequest) -> Option<String> {
    // Two Authorization headers are ambiguous (proxies disagree on which
    // one counts): refuse rather than pick one.
    if req.headers().get_all(AUTHORIZATION).count() > 1 {
        return Some(String::new());
    }
    if let Some(value) = req.headers().get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        // Any Authorization header is taken as the credential: a malformed
        // one is refused rather than silently replaced by the cookie.
        return Some(match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => String::new(),
        });
    }
    req.cookie(ACCESS_COOKIE).map(|c| c.value().to_owned())
}

impl TokenAuth {
    /// The user of a valid, unrevoked access token.
    pub async fn check_access(&self, token: &str) -> Result<AuthUser, Failure> {
        if self.refuse_unlinked && !*self.linked.borrow() {
            tracing::warn!(
                "token refused: the Redis event channel is down (REDIS_OUTAGE_POLICY=refuse)"
            );
            return Err(Failure::Unavailable(anyhow::anyhow!(
                "revocation channel down"
            )));
        }
        let claims = self.tokens.verify(Kind::Access, token).map_err(|r| {
            tracing::info!(reason = r.as_str(), "access token refused");
            if r == Refusal::Expired {
                Failure::Expired
            } else {
                Failure::Invalid
            }
        })?;
        let user = self.user_for(&claims).await?;
        if let Err(r) = self.view.check(&claims, &user) {
            tracing::info!(reason = r.as_str(), "access token refused");
            return Err(Failure::Revoked);
        }
        Ok(AuthUser {
            id: claims.user_id().unwrap_or_default(),
            username: user.username,
            expires_at_ms: claims.exp.saturating_mul(1000),
            credential: Credential::Token {
                family: claims.fam,
                jti: claims.jti,
                expires_ms: claims.exp.saturating_mul(1000),
            },
        })
    }

    pub async fn authenticate(&self, req: &HttpRequest) -> Result<AuthUser, Failure> {
        let token = presented_access(req).ok_or(Failure::Missing)?;
        self.check_access(&token).await
    }

    /// The token's user, from the view (loaded once from the database).
    async fn user_for(&self, claims: &Claims) -> Result<UserEntry, Failure> {
        let id = claims.user_id().ok_or(Failure::Invalid)?;
        match self.view.user_entry(&self.db, id).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => {
                tracing::info!(reason = Refusal::UnknownUser.as_str(), "token refused");
                Err(Failure::Invalid)
            }
            Err(e) => Err(Failure::Unavailable(e.into())),
        }
    }

    /// Revokes every family of a user but `keep`; returns their ids.
    pub async fn revoke_all(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let keep = keep.map(str::to_owned);
        let families = self
            .db
            .run(move |c| refresh::revoke_all(c, user_id, now, keep.as_deref()))
            .await?;
        let until = self.family_memory_until();
        for family in &families {
            self.view.revoke_family(family, until);
        }
        Ok(families)
    }

    /// A fresh pair in a live family, issued now: after a password change
    /// moved the valid-after time, the device that changed it keeps its
    /// login (and its sockets, which name the family).
    pub async fn reissue(&self, user_id: i64, family: &str) -> Result<TokenPair, StoreError> {
        let (tokens, life) = (self.tokens.clone(), self.life);
        let now = now_ms();
        let fam = family.to_owned();
        let pair = self
            .db
            .run(move |c| {
                refresh::reissue(c, user_id, &fam, now, |family| {
                    let (pair, row) = sign_pair(&tokens, &life, user_id, family, now)
                        .map_err(StoreError::Other)?;
                    Ok((row, pair))
                })
            })
            .await?;
        pair.ok_or_else(|| StoreError::Other(anyhow::anyhow!("the family ended meanwhile")))
    }

    /// Starts a family for a user who just proved who they are.
    pub async fn issue(&self, user_id: i64) -> Result<TokenPair, StoreError> {
        let now = now_ms();
        let family = Family {
            id: random_token(16),
            user_id,
            created_at: now,
            expires_at: now.saturating_add(ms(self.life.family_max)),
            revoked_at: None,
        };
        let (pair, row) = sign_pair(&self.tokens, &self.life, user_id, &family, now)
            .map_err(StoreError::Other)?;
        self.db
            .run(move |c| refresh::start_family(c, &family, &row))
            .await?;
        Ok(pair)
    }

    /// Spends a refresh token for a new pair in the same family.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, RefreshFailure> {
        let claims = self
            .tokens
            .verify(Kind::Refresh, presented)
            .map_err(RefreshFailure::Invalid)?;
        let user = self.user_for(&claims).await.map_err(|f| match f {
            Failure::Unavailable(e) => RefreshFailure::Unavailable(StoreError::Unavailable(e)),
            _ => RefreshFailure::Invalid(Refusal::UnknownUser),
        })?;
        // Whole seconds, as in `RevocationView::check`: a token issued later
        // in the same second as a "log out everywhere" is kept (its `iat`
        // cannot say more; the revoked families refuse the older ones).
        if claims.iat.saturating_mul(1000) < user.valid_after / 1000 * 1000 {
            return Err(RefreshFailure::Invalid(Refusal::BeforeValidAfter));
        }
        let hash = sha256_hex(presented);
        let now = now_ms();
        let grace = ms(self.life.reuse_grace);
        let user_id = claims.user_id().unwrap_or_default();
        let (tokens, life) = (self.tokens.clone(), self.life);
        let rotation = self
            .db
            .run(move |c| {
                refresh::rotate(c, &hash, now, grace, |family| {
                    if family.user_id != user_id {
                        return Err(StoreError::Other(anyhow::anyhow!(
                            "refresh token of another user"
                        )));
                    }
                    let (pair, row) = sign_pair(&tokens, &life, user_id, family, now)
                        .map_err(StoreError::Other)?;
                    Ok((row, pair))
                })
            })
            .await
            .map_err(RefreshFailure::Unavailable)?;
        match rotation {
            Rotation::Rotated(pair) => {
                let (db, family) = (self.db.clone(), pair.family.clone());
                actix_web::rt::spawn(async move {
                    let _ = db
                        .run(move |c| crate::store::logins::seen(c, &family, now))
                        .await;
                });
                Ok(pair)
            }
            Rotation::Reused { user_id, family_id } => {
                tracing::warn!(
                    user_id,
                    "refresh token reused after the grace: family revoked"
                );
                Err(RefreshFailure::Reused {
                    user_id,
                    family: family_id,
                })
            }
            Rotation::Invalid => Err(RefreshFailure::Invalid(Refusal::FamilyRevoked)),
        }
    }

    /// The family named by a refresh token, if the token is ours and valid
    /// (valid and unexpired; its family may already be revoked).
    pub fn family_of_refresh(&self, token: &str) -> Option<(i64, String)> {
        let claims = self.tokens.verify(Kind::Refresh, token).ok()?;
        Some((claims.user_id()?, claims.fam))
    }

    /// Revokes a family and denies one of its access tokens until expiry.
    pub async fn revoke(&self, family: &str, deny: Option<(&str, i64)>) -> Result<(), StoreError> {
        let fam = family.to_owned();
        let now = now_ms();
        self.db.run(move |c| refresh::revoke(c, &fam, now)).await?;
        self.view.revoke_family(family, self.family_memory_until());
        if let Some((jti, expires_ms)) = deny {
            self.view.deny_jti(jti, expires_ms);
            // The family's revocation in the database already refuses the
            // token everywhere (instances load revoked families at start,
            // and hear the event); the deny-list entry only adds to it, so
            // a Redis outage must not fail the logout.
            if let Err(e) = self.deny.add(jti, expires_ms).await {
                tracing::warn!(error = %e, "could not add a token to the deny-list");
            }
        }
        Ok(())
    }

    /// How long a revoked family must be remembered: until the last access
    /// token it could have issued has expired.
    pub fn family_memory_until(&self) -> i64 {
        now_ms()
            .saturating_add(ms(self.life.access))
            .saturating_add(ms(self.life.leeway))
            .saturating_add(1000)
    }

    /// Fills the view at startup from the stores.
    pub async fn load_view(&self) -> Result<(), StoreError> {
        for (jti, exp) in self.deny.live().await? {
            self.view.deny_jti(&jti, exp);
        }
        let since = now_ms().saturating_sub(ms(self.life.access) + ms(self.life.leeway) + 1000);
        let families = self
            .db
            .run(move |c| refresh::revoked_since(c, since))
            .await?;
        let until = self.family_memory_until();
        for (family, _) in families {
            self.view.revoke_family(&family, until);
        }
        Ok(())
    }

    pub fn access_cookie(&self, pair: &TokenPair) -> Cookie<'static> {
        cookie(
            ACCESS_COOKIE,
            pair.access.clone(),
            "/",
            SameSite::Lax,
            self.life.refresh,
        )
    }

    pub fn refresh_cookie(&self, pair: &TokenPair) -> Cookie<'static> {
        cookie(
            REFRESH_COOKIE,
            pair.refresh.clone(),
            REFRESH_PATH,
            SameSite::Strict,
            self.life.refresh,
        )
    }

    /// Cookies that delete both token cookies.
    pub fn clearing_cookies() -> Vec<Cookie<'static>> {
        let mut access = cookie(
            ACCESS_COOKIE,
            String::new(),
            "/",
            SameSite::Lax,
            Duration::ZERO,
        );
        access.make_removal();
        let mut refresh = cookie(
            REFRESH_COOKIE,
            String::new(),
            REFRESH_PATH,
            SameSite::Strict,
            Duration::ZERO,
        );
        refresh.make_removal();
        vec![access, refresh]
    }
}

/// Signs a new access and refresh token for `family`, neither outliving it.
fn sign_pair(
    tokens: &Tokens,
    life: &Lifetimes,
    user_id: i64,
    family: &Family,
    now: i64,
) -> anyhow::Result<(TokenPair, NewRefresh)> {
    let now_s = now / 1000;
    let family_end_s = family.expires_at / 1000;
    let access_exp = (now_s + life.access.as_secs() as i64).min(family_end_s);
    let refresh_exp = (now_s + life.refresh.as_secs() as i64).min(family_end_s);
    let access = tokens.sign(Kind::Access, user_id, &family.id, now_s, access_exp)?;
    let refresh = tokens.sign(Kind::Refresh, user_id, &family.id, now_s, refresh_exp)?;
    let row = NewRefresh {
        id: refresh.claims.jti.clone(),
        family_id: family.id.clone(),
        user_id,
        token_hash: sha256_hex(&refresh.token),
        expires_at: refresh_exp * 1000,
    };
    let pair = TokenPair {
        access: access.token,
        refresh: refresh.token,
        access_expires_ms: access_exp * 1000,
        refresh_expires_ms: refresh_exp * 1000,
        family: family.id.clone(),
        user_id,
    };
    Ok((pair, row))
}

fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
    max_age: Duration,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(true)
        .same_site(same_site)
        .max_age(CookieDuration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}
