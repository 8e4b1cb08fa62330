//! Our form bodies and the JSON login, decoded as the server decodes them
//! (`chat::web::forms`, and actix-web's `web::Form` extractor for the
//! handlers that use it), then the checks the handlers run on the fields:
//! usernames, emails, passwords, room names, message bodies and the
//! after-login redirect.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use actix_web::test::TestRequest;
use actix_web::{web, FromRequest};
use chat::auth::identity;
use chat::chat::protocol::clean_body;
use chat::web::forms::{
    self, EndForm, LoginForm, LogoutForm, MessageForm, PasswordForm, RegisterForm, RoomForm,
};
use chat::web::safe_next;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Some(f) = both::<RegisterForm>(body) {
                check_username(&f.username);
                check_email(&f.email);
                check_password(&f.password);
            }
        }
        1 => {
            if let Ok(f) = forms::decode::<LoginForm>(body) {
                check_next(f.next.as_deref());
                let _ = identity::fold(f.email.trim());
            }
        }
        2 => {
            if let Ok(f) = forms::decode_login_json(body) {
                let _ = identity::fold(f.email.trim());
                check_password(&f.password);
            }
        }
        3 => {
            if let Some(f) = both::<RoomForm>(body) {
                check_room(&f.name);
            }
        }
        4 => {
            if let Some(f) = both::<MessageForm>(body) {
                check_body(&f.body);
            }
        }
        5 => {
            if let Some(f) = both::<PasswordForm>(body) {
                check_password(&f.new_password);
            }
        }
        6 => {
            let _ = both::<EndForm>(body);
        }
        _ => {
            let _ = both::<LogoutForm>(body);
        }
    }
});

/// Decodes with our function and with actix-web's extractor, which must
/// agree on whether the body is a valid form.
fn both<T: DeserializeOwned + 'static>(body: &[u8]) -> Option<T> {
    let ours = forms::decode::<T>(body);
    let (req, mut payload) = TestRequest::post()
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_vec())
        .to_http_parts();
    let fut = pin!(web::Form::<T>::from_request(&req, &mut payload));
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(theirs) = fut.poll(&mut cx) else {
        panic!("extracting a form from a complete body was pending");
    };
    // actix-web's default limit is smaller than ours; past it, it refuses.
    if body.len() <= 16 * 1024 {
        assert_eq!(ours.is_ok(), theirs.is_ok(), "decoders disagree");
    }
    ours.ok()
}

fn check_username(raw: &str) {
    let Ok(name) = identity::username(raw) else {
        return;
    };
    assert!((3..=32).contains(&name.display.chars().count()));
    assert_eq!(name.key, identity::fold(&name.display));
    assert_eq!(
        identity::username(&name.display).as_ref(),
        Ok(&name),
        "an accepted username does not re-validate to itself"
    );
}

fn check_email(raw: &str) {
    let Ok((email, key)) = identity::email(raw) else {
        return;
    };
    assert!(!email.is_empty() && email.len() <= 254);
    assert_eq!(email, email.trim());
    assert_eq!(identity::email(&email), Ok((email.clone(), key)));
}

fn check_password(raw: &str) {
    if identity::password(raw).is_ok() {
        assert!((8..=72).contains(&raw.len()) && !raw.contains('\0'));
    }
}

fn check_room(raw: &str) {
    let Ok((name, key)) = identity::room_name(raw) else {
        return;
    };
    assert!((1..=64).contains(&name.chars().count()));
    assert!(!name.chars().any(char::is_control));
    assert_eq!(
        identity::room_name(&name),
        Ok((name.clone(), key)),
        "an accepted room name does not re-validate to itself"
    );
}

fn check_body(raw: &str) {
    if let Ok(clean) = clean_body(raw) {
        assert!(!clean.is_empty() && clean == clean.trim());
        assert!(clean.chars().count() <= chat::chat::protocol::MAX_BODY_CHARS);
    }
}

/// The redirect after login stays on our origin, as a browser resolves it.
fn check_next(next: Option<&str>) {
    let path = safe_next(next);
    assert!(path.starts_with('/'));
    let base = url::Url::parse("http://127.0.0.1:8080/login").expect("a valid base");
    if let Ok(target) = base.join(path) {
        assert_eq!(
            target.host_str(),
            Some("127.0.0.1"),
            "{path:?} leaves the origin"
        );
        assert_eq!(target.port(), Some(8080), "{path:?} leaves the origin");
    }
}
