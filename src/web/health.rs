//! Probes for orchestrators: `/healthz` says the process answers;
//! `/readyz` says the database, the session store and Redis (with the
//! event channel subscribed) answer too, so an
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
    // With Redis: it answers, and this instance hears the event channel
    // (otherwise revocations made elsewhere do not reach it).
    let (redis, events) = match &state.redis {
        Some(link) => (link.ping().await, *state.events.linked().borrow()),
        None => (true, true),
    };
    let ready = database && sessions && redis && events;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database,
        "sessions": sessions,
        "sessionStore": state.sessions.name(),
        "redis": redis,
        "eventChannel": events,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(database, sessions, redis, events, "readiness probe failed");
        HttpResponse::ServiceUnavailable().json(body)
    }
}
