//! Probes for orchestrators: `/healthz` says the process answers;
//! `/readyz` says the database and the session store answer too, so an
//! instance that lost them is taken out of rotation instead of serving 503s.

use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};
use actix_web::HttpResponse;
use serde_json::json;

use super::State;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: State) -> HttpResponse {
    let database = tokio::time::timeout(PROBE_TIMEOUT, state.db.run(crate::store::ping))
        .await
        .is_ok_and(|r| r.is_ok());
    // Loading a key that cannot exist proves the store answers.
    let sessions = match SessionKey::try_from(crate::util::random_token(32)) {
        Ok(key) => tokio::time::timeout(PROBE_TIMEOUT, state.sessions.load(&key))
            .await
            .is_ok_and(|r| r.is_ok()),
        Err(_) => false,
    };
    let body = json!({
        "status": if database && sessions { "ready" } else { "unavailable" },
        "database": database,
        "sessions": sessions,
        "sessionStore": state.sessions.name(),
    });
    if database && sessions {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(database, sessions, "readiness probe failed");
        HttpResponse::ServiceUnavailable().json(body)
    }
}
