//! Who is asking. Every route and the WebSocket upgrade get the current user
//! from `Auth::authenticate`, whatever the mode; handlers never look at
//! sessions or tokens themselves, and sign in and out through `Auth` too.

pub mod csrf;
pub mod identity;
pub mod jwt;
pub mod origin;
pub mod password;
pub mod revocation;
pub mod session;
pub mod tokens;

use actix_session::SessionExt;
use actix_web::cookie::Cookie;
use actix_web::HttpRequest;

use std::sync::Arc;
use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};

use crate::metrics::Metrics;
use crate::store::kv::SessionBackend;
use crate::store::logins::{self, Login};
use crate::store::{Db, StoreError};
use revocation::RevocationView;
pub use tokens::{RefreshFailure, TokenAuth, TokenPair};

/// The authenticated user and the credential behind the request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    pub credential: Credential,
    /// When the credential stops being valid, in Unix milliseconds.
    pub expires_at_ms: i64,
}

/// The credential behind a request. Its handle (session handle or token
/// family) is what revocation events and the socket index name; it
/// identifies the credential without being one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session {
        handle: String,
    },
    Token {
        family: String,
        jti: String,
        expires_ms: i64,
    },
}

impl Credential {
    pub fn handle(&self) -> &str {
        match self {
            Credential::Session { handle } => handle,
            Credential::Token { family, .. } => family,
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug)]
pub enum Failure {
    /// No credential at all.
    Missing,
    /// An access token that has expired: refreshing may help.
    Expired,
    /// A credential that is malformed, forged, or of an unknown user.
    Invalid,
    /// A genuine credential that has been revoked (logout, password
    /// change, "log out everywhere", …). Callers treat it as `Invalid`;
    /// it is apart for the figures.
    Revoked,
    /// A store needed to decide is unavailable.
    Unavailable(anyhow::Error),
}

impl Failure {
    /// The result label of the authentication figures.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Expired => "expired",
            Failure::Invalid => "invalid",
            Failure::Revoked => "revoked",
            Failure::Unavailable(_) => "unavailable",
        }
    }
}

/// Who is signing in from where, for the list of logins.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: String,
    pub device: String,
}

/// How a password change went.
pub enum PasswordChange {
    Changed {
        at: i64,
        /// The login that stays: this device's.
        keep: String,
        /// The logins that ended: to publish, so every instance refuses them.
        ended: Vec<String>,
        cookies: Vec<Cookie<'static>>,
    },
    WrongPassword,
    Invalid(String),
}

/// What signing in produced: cookies to set and, in token mode, the tokens.
pub struct SignedIn {
    pub cookies: Vec<Cookie<'static>>,
    pub tokens: Option<TokenPair>,
}

/// The authentication settings and state every request needs.
pub struct Auth {
    pub limits: session::Limits,
    pub csrf: csrf::Csrf,
    pub origin: origin::OriginPolicy,
    pub hasher: password::Hasher,
    pub cookie_key: actix_web::cookie::Key,
    /// Present in token mode.
    pub tokens: Option<TokenAuth>,
    /// How long an ended session handle or token family must be refused:
    /// until no credential of it can still be valid.
    pub handle_memory: Duration,
    /// Users' names and valid-after times, and revoked tokens.
    pub view: Arc<RevocationView>,
    pub db: Db,
    /// The session store (session mode's records).
    pub sessions: SessionBackend,
    /// Where authentication checks are counted.
    pub metrics: Metrics,
}

impl Auth {
    /// The current user, or why there is none.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<AuthUser, Failure> {
        let result = self.identify(req).await;
        self.count(&result);
        result
    }

    /// Token mode: the user of a token sent in an `authenticate` frame.
    pub async fn check_token(&self, token: &str) -> Result<AuthUser, Failure> {
        let result = match &self.tokens {
            Some(tokens) => tokens.check_access(token).await,
            None => Err(Failure::Invalid),
        };
        self.count(&result);
        result
    }

    fn count(&self, result: &Result<AuthUser, Failure>) {
        let mode = if self.tokens.is_some() {
            "jwt"
        } else {
            "session"
        };
        let reason = match result {
            Ok(_) => "ok",
            Err(failure) => failure.reason(),
        };
        self.metrics.auth_check(mode, reason);
    }

    async fn identify(&self, req: &HttpRequest) -> Result<AuthUser, Failure> {
        match &self.tokens {
            Some(tokens) => tokens.authenticate(req).await,
            None => {
                let session = req.get_session();
                let info = session::current(&session, &self.limits).ok_or(Failure::Missing)?;
                // "Log out everywhere" ends every session begun before the
                // user's valid-after time (kept in the view, not re-read).
                let user = self
                    .view
                    .user_entry(&self.db, info.user_id)
                    .await
                    .map_err(|e| Failure::Unavailable(e.into()))?;
                // "Log out everywhere", a password change and ending a login
                // from the account page end sessions: by the user's
                // valid-after time, or by the session's handle.
                let Some(user) = user else {
                    session.purge();
                    return Err(Failure::Invalid);
                };
                if info.valid_from_ms < user.valid_after || self.view.is_revoked(&info.handle) {
                    session.purge();
                    return Err(Failure::Revoked);
                }
                if info.touched {
                    self.spawn_seen(&info.handle);
                }
                Ok(AuthUser {
                    id: info.user_id,
                    username: info.username.clone(),
                    expires_at_ms: info.hard_deadline_ms(&self.limits),
                    credential: Credential::Session {
                        handle: info.handle,
                    },
                })
            }
        }
    }

    /// Records, in the background, that a login was just used.
    pub fn spawn_seen(&self, handle: &str) {
        let db = self.db.clone();
        let handle = handle.to_owned();
        actix_web::rt::spawn(async move {
            let now = crate::store::now_ms();
            if let Err(e) = db.run(move |c| logins::seen(c, &handle, now)).await {
                tracing::debug!(error = %e, "could not record a login's last use");
            }
        });
    }

    /// Starts a session or a token family for a user who proved who they
    /// are, and lists it among the user's logins.
    pub async fn sign_in(
        &self,
        req: &HttpRequest,
        user_id: i64,
        username: &str,
        client: &Client,
    ) -> Result<SignedIn, StoreError> {
        let (signed, handle) = match &self.tokens {
            Some(tokens) => {
                let pair = tokens.issue(user_id).await?;
                let cookies = vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)];
                let handle = pair.family.clone();
                (
                    SignedIn {
                        cookies,
                        tokens: Some(pair),
                    },
                    handle,
                )
            }
            None => {
                let info = session::begin(&req.get_session(), user_id, username)
                    .map_err(StoreError::Other)?;
                (
                    SignedIn {
                        cookies: Vec::new(),
                        tokens: None,
                    },
                    info.handle,
                )
            }
        };
        let now = crate::store::now_ms();
        let login = Login {
            handle,
            user_id,
            user_agent: client.device.clone(),
            address: client.address.clone(),
            created_at: now,
            last_seen: now,
            ended_at: None,
        };
        // In the background: the list of logins is for the user's review,
        // and must not double the wait of a login while the database is
        // slow (the credential itself is what has to be stored).
        let db = self.db.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = db.run(move |c| logins::record(c, &login)).await {
                tracing::warn!(error = %e, "could not list a new login");
            }
        });
        Ok(signed)
    }

    /// Ends one of the user's logins (from the account page). Returns false
    /// when it is not a live login of theirs. The caller publishes the
    /// revocation, which closes its sockets.
    pub async fn end_login(&self, user_id: i64, handle: &str) -> Result<bool, StoreError> {
        let now = crate::store::now_ms();
        let h = handle.to_owned();
        let ended = self
            .db
            .run(move |c| logins::end(c, user_id, Some(&h), None, now))
            .await?;
        if ended.is_empty() {
            return Ok(false);
        }
        if let Some(tokens) = &self.tokens {
            tokens.revoke(handle, None).await?;
        }
        self.view.revoke_family(handle, self.handle_memory_until());
        Ok(true)
    }

    /// Until when an ended handle must be refused (see `handle_memory`).
    pub fn handle_memory_until(&self) -> i64 {
        let memory = i64::try_from(self.handle_memory.as_millis()).unwrap_or(i64::MAX);
        crate::store::now_ms().saturating_add(memory)
    }

    /// Changes the password, checking the current one first. Every other
    /// login of the user ends (through the valid-after time); this one
    /// stays, confirmed past it. Returns the valid-after time to publish
    /// and the cookies to set (token mode: a fresh pair of this family).
    pub async fn change_password(
        &self,
        req: &HttpRequest,
        user: &AuthUser,
        current: &str,
        new: &str,
    ) -> Result<PasswordChange, StoreError> {
        let id = user.id;
        let found = self
            .db
            .run(move |c| crate::store::users::by_id(c, id))
            .await?;
        let Some(found) = found else {
            return Ok(PasswordChange::WrongPassword);
        };
        let ok = self
            .hasher
            .verify(current.to_owned(), Some(found.password_hash))
            .await
            .map_err(StoreError::Other)?;
        if !ok || current.len() > 72 {
            return Ok(PasswordChange::WrongPassword);
        }
        if let Err(message) = identity::password(new) {
            return Ok(PasswordChange::Invalid(message));
        }
        let hash = self
            .hasher
            .hash(new.to_owned())
            .await
            .map_err(StoreError::Other)?;
        let at = crate::store::now_ms();
        self.db
            .run(move |c| crate::store::users::set_password(c, id, &hash, at))
            .await?;
        let keep = user.credential.handle().to_owned();
        let k = keep.clone();
        let ended = self
            .db
            .run(move |c| logins::end(c, id, None, Some(&k), at))
            .await?;
        let mut ended = ended;
        let cookies = match &self.tokens {
            Some(tokens) => {
                ended.extend(tokens.revoke_all(id, Some(&keep)).await?);
                let pair = tokens.reissue(id, &keep).await?;
                vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)]
            }
            None => {
                session::confirm(&req.get_session(), at).map_err(StoreError::Other)?;
                Vec::new()
            }
        };
        ended.sort();
        ended.dedup();
        let until = self.handle_memory_until();
        for handle in &ended {
            self.view.revoke_family(handle, until);
        }
        self.view.set_valid_after(id, at);
        Ok(PasswordChange::Changed {
            at,
            keep,
            ended,
            cookies,
        })
    }

    /// Invalidates every session and token family of the user, this one
    /// included. Returns the valid-after time and the ended handles, all
    /// of which the caller publishes: the time alone has second precision
    /// for tokens, so a login made in the same second needs its handle.
    pub async fn sign_out_everywhere(
        &self,
        user_id: i64,
    ) -> Result<(i64, Vec<String>), StoreError> {
        let at = crate::store::now_ms();
        let mut handles = self
            .db
            .run(move |c| {
                crate::store::users::set_valid_after(c, user_id, at)?;
                logins::end(c, user_id, None, None, at)
            })
            .await?;
        if let Some(tokens) = &self.tokens {
            handles.extend(tokens.revoke_all(user_id, None).await?);
        }
        handles.sort();
        handles.dedup();
        let until = self.handle_memory_until();
        for handle in &handles {
            self.view.revoke_family(handle, until);
        }
        self.view.set_valid_after(user_id, at);
        Ok((at, handles))
    }

    /// Ends the request's credential: deletes the session, or revokes the
    /// token family and denies the access token. Returns cookies to set
    /// (deletions). The caller publishes the revocation event.
    pub async fn sign_out(
        &self,
        req: &HttpRequest,
        user: &AuthUser,
    ) -> Result<Vec<Cookie<'static>>, StoreError> {
        match (&self.tokens, &user.credential) {
            (
                Some(tokens),
                Credential::Token {
                    family,
                    jti,
                    expires_ms,
                },
            ) => {
                tokens.revoke(family, Some((jti, *expires_ms))).await?;
                Ok(TokenAuth::clearing_cookies())
            }
            _ => {
                // Delete the record now rather than leave it to the session
                // middleware after the handler: the caller closes the
                // sockets next, and must not if the record outlives them.
                if let Some(key) = session::key_from_request(req, &self.cookie_key) {
                    if let Ok(key) = SessionKey::try_from(key) {
                        self.sessions
                            .delete(&key)
                            .await
                            .map_err(StoreError::Unavailable)?;
                    }
                }
                session::end(&req.get_session());
                let handle = user.credential.handle().to_owned();
                let now = crate::store::now_ms();
                // The session is gone already; the list of logins catching
                // up is not worth failing the logout for.
                if let Err(e) = self
                    .db
                    .run(move |c| logins::end_handle(c, &handle, now))
                    .await
                {
                    tracing::warn!(error = %e, "could not mark a login ended");
                }
                Ok(Vec::new())
            }
        }
    }
}
