//! Posting a message, the one path for the socket and the no-JavaScript
//! form: check the body and the user's message rate, store it once per
//! client id, then publish it.

use bytestring::ByteString;

use std::time::Duration;

use super::events::{Event, Events};
use super::hub::SocketId;
use super::protocol::{self, MessageOut, ServerFrame};
use super::rate::UserRates;
use crate::store::{self, Db, StoreError};

#[derive(Debug)]
pub enum PostError {
    /// The body or client id was refused: an error code and a message.
    Invalid(&'static str, &'static str),
    /// The user posts too fast: nothing was stored or sent; the next
    /// message may come after this long.
    RateLimited(Duration),
    Store(StoreError),
}

pub struct Post<'a> {
    pub author_id: i64,
    pub room_id: i64,
    pub body: &'a str,
    pub client_id: Option<String>,
    /// The sending socket, which gets its own copy instead of the broadcast.
    pub origin: Option<SocketId>,
}

/// Stores and publishes; returns the sender's copy (with its client id).
/// A client id already used by the author returns the stored message again
/// and publishes nothing. Every attempt with a valid body counts against
/// the author's message rate, resends included: a resend costs a lookup.
pub async fn post(
    db: &Db,
    events: &Events,
    rates: &UserRates,
    post: Post<'_>,
) -> Result<MessageOut, PostError> {
    let body = protocol::clean_body(post.body)
        .map_err(|(code, message)| PostError::Invalid(code, message))?;
    protocol::check_client_id(post.client_id.as_deref())
        .map_err(|(code, message)| PostError::Invalid(code, message))?;
    rates.take(post.author_id).map_err(PostError::RateLimited)?;
    let new = store::NewMessage {
        room_id: post.room_id,
        author_id: post.author_id,
        body,
        client_id: post.client_id,
        created_at: store::now_ms(),
    };
    let (row, inserted) = db
        .run(move |c| store::messages::insert_once(c, &new))
        .await
        .map_err(PostError::Store)?;
    let mut out = message_out(row, true);
    if inserted {
        events.hub().metrics().message_stored();
        let client_id = out.client_id.take();
        let everyone = ByteString::from(ServerFrame::Message(&out).to_text());
        events.publish(Event::RoomMessage {
            room_id: out.room_id,
            id: out.id,
            text: everyone,
            origin: post.origin,
        });
        out.client_id = client_id;
    }
    Ok(out)
}

/// A stored row as a frame payload; the client id only for its author's
/// own copy.
pub fn message_out(row: store::Message, with_client_id: bool) -> MessageOut {
    MessageOut {
        room_id: row.room_id,
        id: row.id,
        user_id: row.author_id,
        username: row.username,
        body: row.body,
        created_at: crate::util::rfc3339(row.created_at),
        client_id: if with_client_id { row.client_id } else { None },
    }
}
