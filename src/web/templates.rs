//! The page templates' data. Every page extends `base.html`, which shows the
//! signed-in user and a logout form, so each carries `user` and the CSRF
//! token for that form.

use askama::Template;

use crate::store::{Message, Room};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub user: Option<String>,
    pub csrf_token: String,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Debug, Default)]
pub struct FieldErrors {
    pub form: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

impl FieldErrors {
    pub fn any(&self) -> bool {
        self.form.is_some()
            || self.username.is_some()
            || self.email.is_some()
            || self.password.is_some()
    }
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub user: Option<String>,
    pub csrf_token: String,
    pub username: String,
    pub email: String,
    pub errors: FieldErrors,
    pub username_rule: &'static str,
}

#[derive(Template)]
#[template(path = "rooms.html")]
pub struct RoomsPage {
    pub user: Option<String>,
    pub csrf_token: String,
    pub rooms: Vec<Room>,
    pub name: String,
    pub error: Option<String>,
}

/// A message as the room page shows it.
pub struct MessageView {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub body: String,
    pub created_at: String,
    pub time: String,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        let created_at = crate::util::rfc3339(m.created_at);
        // HH:MM in UTC; the script rewrites it in the reader's time zone.
        let time = created_at.get(11..16).unwrap_or_default().to_owned();
        MessageView {
            id: m.id,
            user_id: m.author_id,
            username: m.username,
            body: m.body,
            created_at,
            time,
        }
    }
}

#[derive(Template)]
#[template(path = "room.html")]
pub struct RoomPage {
    pub user: Option<String>,
    pub csrf_token: String,
    pub user_id: i64,
    pub username: String,
    pub room: Room,
    pub messages: Vec<MessageView>,
    pub last_id: i64,
    /// The id to page back from, when older messages exist.
    pub older_before: Option<i64>,
    /// False on an older page of history: no live client there.
    pub live: bool,
    pub error: Option<String>,
    pub body: String,
}

/// A login as the account page lists it.
pub struct LoginView {
    pub handle: String,
    pub device: String,
    pub address: String,
    pub created: String,
    pub last_seen: String,
    pub sockets: usize,
    pub current: bool,
}

pub struct EventView {
    pub kind: String,
    pub address: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub user: Option<String>,
    pub csrf_token: String,
    pub logins: Vec<LoginView>,
    pub events: Vec<EventView>,
    pub notice: Option<String>,
    pub error: Option<String>,
}
