//! The WebSocket frames, both directions, and the fixed close codes. The
//! README documents the same shapes for client authors.

use actix_ws::CloseCode;
use serde::{Deserialize, Serialize};

/// The largest frame (or reassembled message) a client may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// A message body, counted in Unicode scalar values after trimming.
pub const MAX_BODY_CHARS: usize = 4000;
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Most messages sent on a join with `afterId`.
pub const CATCH_UP_LIMIT: i64 = 500;

#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ClientFrame {
    Authenticate {
        #[allow(dead_code)]
        token: String,
    },
    Join {
        room_id: i64,
        #[serde(default)]
        after_id: Option<i64>,
    },
    Leave {
        room_id: i64,
    },
    Message {
        room_id: i64,
        body: String,
        #[serde(default)]
        client_id: Option<String>,
    },
}

impl ClientFrame {
    /// Decodes a client's text frame; the error's words describe the
    /// client's JSON and are sent back in a `bad_frame` error.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ServerFrame<'a> {
    Authenticated {
        user_id: i64,
        username: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<String>,
    },
    AuthError {
        message: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
    Joined {
        room_id: i64,
    },
    Left {
        room_id: i64,
    },
    Message(&'a MessageOut),
}

/// A stored message as every client sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub room_id: i64,
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub body: String,
    pub created_at: String,
    /// Only on the sender's own copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ServerFrame<'_> {
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with
        // non-string keys, no foreign Serialize impls.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Why the server closes a socket: each has a fixed code and reason that
/// clients act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseKind {
    LoggedOut,
    SessionExpired,
    Revoked,
    TokenExpired,
    AuthTimeout,
    InvalidToken,
    NotAuthenticated,
    IdentityChange,
    RateLimited,
    TooBig,
    InvalidUtf8,
    Binary,
    Protocol,
    ShuttingDown,
    SlowConsumer,
}

impl CloseKind {
    pub fn code(self) -> CloseCode {
        use CloseKind::*;
        match self {
            LoggedOut | SessionExpired | Revoked | TokenExpired | AuthTimeout | InvalidToken
            | NotAuthenticated | IdentityChange | RateLimited => CloseCode::Policy,
            TooBig => CloseCode::Size,
            InvalidUtf8 => CloseCode::Invalid,
            Binary => CloseCode::Unsupported,
            Protocol => CloseCode::Protocol,
            ShuttingDown => CloseCode::Away,
            SlowConsumer => CloseCode::Again,
        }
    }

    pub fn reason(self) -> &'static str {
        use CloseKind::*;
        match self {
            LoggedOut => "Logged out",
            SessionExpired => "Session expired",
            Revoked => "Revoked",
            TokenExpired => "Token expired",
            AuthTimeout => "Authentication timeout",
            InvalidToken => "Invalid token",
            NotAuthenticated => "Not authenticated",
            IdentityChange => "Identity change not allowed",
            RateLimited => "Rate limited",
            TooBig => "Message too big",
            InvalidUtf8 => "Invalid UTF-8",
            Binary => "Binary frames are not supported",
            Protocol => "Protocol error",
            ShuttingDown => "Server shutting down",
            SlowConsumer => "Too slow to keep up",
        }
    }
}

/// Checks a message body: line ends made `\n` (browsers send a textarea's
/// as `\r\n`), trimmed, 1 to 4,000 scalar values, newlines and tabs but no
/// other control characters.
pub fn clean_body(body: &str) -> Result<String, (&'static str, &'static str)> {
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    let body = body.trim();
    if body.is_empty() {
        return Err(("empty_body", "Message is empty"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(("body_too_long", "Message is longer than 4000 characters"));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(("bad_body", "Message contains control characters"));
    }
    Ok(body.to_owned())
}

/// Checks a message's optional client id: when given, 1 to 64 bytes.
pub fn check_client_id(client_id: Option<&str>) -> Result<(), (&'static str, &'static str)> {
    match client_id {
        Some(c) if c.is_empty() || c.len() > MAX_CLIENT_ID_BYTES => {
            Err(("bad_client_id", "clientId must be 1 to 64 bytes"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_use_camel_case_fields() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"join","roomId":3,"afterId":40}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::Join {
                room_id: 3,
                after_id: Some(40)
            }
        ));
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"message","roomId":1,"body":"hi"}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::Message {
                client_id: None,
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"join","roomId":1e99}"#).is_err());
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let m = MessageOut {
            room_id: 1,
            id: 42,
            user_id: 7,
            username: "ann".into(),
            body: "hi".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            client_id: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerFrame::Message(&m).to_text()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["roomId"], 1);
        assert_eq!(v["userId"], 7);
        assert!(v.get("clientId").is_none());
        let v: serde_json::Value = serde_json::from_str(
            &ServerFrame::Authenticated {
                user_id: 1,
                username: "a",
                expires_at: None,
            }
            .to_text(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"authenticated","userId":1,"username":"a"})
        );
    }

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(clean_body("  hi\n there\t ").as_deref(), Ok("hi\n there"));
        assert_eq!(
            clean_body("one\r\ntwo\rthree").as_deref(),
            Ok("one\ntwo\nthree")
        );
        assert!(clean_body("   ").is_err());
        assert!(clean_body(&"é".repeat(4000)).is_ok());
        assert!(clean_body(&"é".repeat(4001)).is_err());
        assert!(clean_body("a\u{7}b").is_err());
    }

    #[test]
    fn client_ids_are_1_to_64_bytes_when_given() {
        assert!(check_client_id(None).is_ok());
        assert!(check_client_id(Some("c")).is_ok());
        assert!(check_client_id(Some(&"é".repeat(32))).is_ok());
        assert!(check_client_id(Some("")).is_err());
        assert!(check_client_id(Some(&"é".repeat(33))).is_err());
    }
}
