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

use crate::config::AuthMode;
use actix_session::storage::{SessionKey, SessionStore};

use crate::store::kv::SessionBackend;
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
    /// A credential that is malformed, forged or revoked.
    Invalid,
    /// A store needed to decide is unavailable.
    Unavailable(anyhow::Error),
}

/// What signing in produced: cookies to set and, in token mode, the tokens.
pub struct SignedIn {
    pub cookies: Vec<Cookie<'static>>,
    pub tokens: Option<TokenPair>,
}

/// The authentication settings and state every request needs.
pub struct Auth {
    pub mode: AuthMode,
    pub limits: session::Limits,
    pub csrf: csrf::Csrf,
    pub origin: origin::OriginPolicy,
    pub hasher: password::Hasher,
    pub cookie_key: actix_web::cookie::Key,
    /// Present in token mode.
    pub tokens: Option<TokenAuth>,
    /// Users' names and valid-after times, and revoked tokens.
    pub view: Arc<RevocationView>,
    pub db: Db,
    /// The session store (session mode's records).
    pub sessions: SessionBackend,
}

impl Auth {
    /// The current user, or why there is none.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<AuthUser, Failure> {
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
                if user.is_none_or(|u| info.created_ms < u.valid_after) {
                    session.purge();
                    return Err(Failure::Invalid);
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

    /// Starts a session or a token family for a user who proved who they are.
    pub async fn sign_in(
        &self,
        req: &HttpRequest,
        user_id: i64,
        username: &str,
    ) -> Result<SignedIn, StoreError> {
        match &self.tokens {
            Some(tokens) => {
                let pair = tokens.issue(user_id).await?;
                let cookies = vec![tokens.access_cookie(&pair), tokens.refresh_cookie(&pair)];
                Ok(SignedIn {
                    cookies,
                    tokens: Some(pair),
                })
            }
            None => {
                session::begin(&req.get_session(), user_id, username).map_err(StoreError::Other)?;
                Ok(SignedIn {
                    cookies: Vec::new(),
                    tokens: None,
                })
            }
        }
    }

    /// Invalidates every session and token family of the user, this one
    /// included. Returns the valid-after time to publish.
    pub async fn sign_out_everywhere(&self, user_id: i64) -> Result<i64, StoreError> {
        let at = crate::store::now_ms();
        self.db
            .run(move |c| crate::store::users::set_valid_after(c, user_id, at))
            .await?;
        if let Some(tokens) = &self.tokens {
            tokens.revoke_all(user_id).await?;
        }
        self.view.set_valid_after(user_id, at);
        Ok(at)
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
                Ok(Vec::new())
            }
        }
    }
}
