//! The audit log: security events as structured log lines (target
//! `audit`) and as rows the user can review on the account page. Never a
//! password, token, cookie, email or message body.

use actix_web::HttpRequest;

use super::{client, State};
use crate::auth::Client;

/// Who is asking, from where, for the audit log and the list of logins.
pub fn client_of(req: &HttpRequest, state: &State) -> Client {
    Client {
        address: client::address(req, &state.trusted_proxies),
        device: client::device(req),
    }
}

/// The client's address, as the audit log and the throttles see it.
pub fn client_address(req: &HttpRequest, state: &State) -> String {
    client::address(req, &state.trusted_proxies)
}

/// Records a security event; the write happens in the background, so a
/// failing audit store never fails the request it describes.
pub fn record(state: &State, req: &HttpRequest, user_id: Option<i64>, kind: &'static str) {
    let address = client::address(req, &state.trusted_proxies);
    tracing::info!(target: "audit", event = kind, user_id, address = %address, "security event");
    let db = state.db.clone();
    actix_web::rt::spawn(async move {
        let now = crate::store::now_ms();
        let written = db
            .run(move |c| crate::store::audit::add(c, user_id, kind, &address, now))
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, event = kind, "could not store an audit event");
        }
    });
}
