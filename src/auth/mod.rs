//! Who is asking. Every route and the WebSocket upgrade get the current user
//! from `authenticate`, whatever the authentication mode; handlers never
//! look at sessions or tokens themselves.

pub mod csrf;
pub mod identity;
pub mod origin;
pub mod password;
pub mod session;

use actix_session::SessionExt;
use actix_web::HttpRequest;

use crate::config::AuthMode;

/// The authenticated user and the credential behind the request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    pub credential: Credential,
    /// When the credential stops being valid, in Unix milliseconds.
    pub expires_at_ms: i64,
}

/// The handle of the credential: what revocation events and the socket
/// index name. It identifies the credential without being one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session { handle: String },
}

impl Credential {
    pub fn handle(&self) -> &str {
        match self {
            Credential::Session { handle } => handle,
        }
    }
}

/// The authentication settings every request needs.
#[derive(Clone)]
pub struct Auth {
    pub mode: AuthMode,
    pub limits: session::Limits,
    pub csrf: csrf::Csrf,
    pub origin: origin::OriginPolicy,
    pub hasher: password::Hasher,
    pub cookie_key: actix_web::cookie::Key,
}

impl Auth {
    /// The current user, if the request carries a live credential.
    pub fn authenticate(&self, req: &HttpRequest) -> Option<AuthUser> {
        match self.mode {
            AuthMode::Session | AuthMode::Jwt => {
                let info = session::current(&req.get_session(), &self.limits)?;
                Some(AuthUser {
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
}
