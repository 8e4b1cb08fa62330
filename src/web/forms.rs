//! The bodies of our forms and of the JSON login, and the one function that
//! decodes each. Kept apart from the handlers so the fuzz targets under
//! `tests/fuzz` decode exactly what the server decodes.
//!
//! Handlers that take `web::Form<T>` get the same decoding from actix-web,
//! which runs `serde_urlencoded::from_bytes` on the UTF-8 body, as
//! [`decode`] does.

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Decodes an `application/x-www-form-urlencoded` body into a form.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_urlencoded::de::Error> {
    serde_urlencoded::from_bytes(body)
}

/// Decodes the body of the JSON login; the error is serde's description of
/// the client's JSON, fit to show to the client.
pub fn decode_login_json(body: &[u8]) -> Result<LoginJson, serde_json::Error> {
    serde_json::from_slice(body)
}

/// `POST /register`.
#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    pub csrf_token: Option<String>,
}

/// `POST /login` from the login page.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    /// Where to go after logging in; only local paths are followed.
    pub next: Option<String>,
    pub csrf_token: Option<String>,
}

/// `POST /login` with a JSON body: the API login.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginJson {
    pub email: String,
    pub password: String,
}

/// `POST /logout` and `POST /logout/all`.
#[derive(Deserialize)]
pub struct LogoutForm {
    pub csrf_token: Option<String>,
}

/// `POST /rooms`.
#[derive(Deserialize)]
pub struct RoomForm {
    #[serde(default)]
    pub name: String,
    pub csrf_token: Option<String>,
}

/// `POST /rooms/{id}/messages`.
#[derive(Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    pub body: String,
    pub csrf_token: Option<String>,
}

/// `POST /account/password`.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub new_password: String,
    pub csrf_token: Option<String>,
}

/// `POST /account/logins/end`.
#[derive(Deserialize)]
pub struct EndForm {
    #[serde(default)]
    pub handle: String,
    pub csrf_token: Option<String>,
}
