//! HTTP: routes, pages, the JSON API, the WebSocket upgrade, and the
//! middleware around them.

mod account;
mod api;
mod assets;
mod audit;
mod body_guard;
mod client;
mod error;
mod extract;
pub mod forms;
mod health;
mod inflate;
pub(crate) mod limits;
mod metrics;
mod middleware;
mod pages;
mod templates;
mod token_routes;
mod ws;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::auth::Auth;
use crate::chat::Events;
use crate::store::kv::SessionBackend;
use crate::store::Db;

pub use body_guard::guard_bodies;
pub use error::{ApiError, AppError, PageError};
pub use metrics::{count_requests, metrics_only};
pub use middleware::{
    content_security_policy, origin_guard, store_failures, AccessLog, SecurityHeaders,
};

/// Largest form or JSON body we read, after decompression: room for a
/// 4,000-character message of four-byte characters, percent-encoded.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything a handler may need, shared by every worker.
pub struct AppState {
    pub db: Db,
    pub auth: Auth,
    pub events: Events,
    pub sessions: SessionBackend,
    /// The Content-Security-Policy header value, built once at startup.
    pub csp: String,
    /// How long a socket opened without a credential has to authenticate.
    pub ws_auth_timeout: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::config::Cidr>,
    /// How far back an unused login can still be alive (the longest of a
    /// session's and a token family's lives).
    pub login_horizon: std::time::Duration,
    /// Failed-login counters.
    pub throttle: crate::store::kv::Throttle,
    /// Message rates per user, shared by the sockets and the form.
    pub message_rates: Arc<crate::chat::rate::UserRates>,
    /// The rooms, read from the database at most once a second.
    pub room_list: Arc<crate::store::room_list::RoomList>,
    /// Sockets waiting to authenticate, per client address.
    pub pending_sockets: Arc<crate::chat::pending::PendingSockets>,
    /// The shared Redis connection, when configured (for the probes).
    pub redis: Option<crate::store::kv::RedisLink>,
    /// This instance's figures.
    pub metrics: crate::metrics::Metrics,
    /// Whether the main listener serves `/metrics` (to loopback clients).
    pub metrics_exposure: crate::config::MetricsExposure,
}

pub type State = web::Data<Arc<AppState>>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::form_config())
        .app_data(extract::json_config())
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .route("/", web::get().to(pages::home))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::scrape))
        .route("/register", web::get().to(pages::accounts::register_form))
        .route("/register", web::post().to(pages::accounts::register))
        .route("/login", web::get().to(pages::accounts::login_form))
        .route("/login", web::post().to(pages::accounts::login))
        .route("/logout", web::post().to(pages::accounts::logout))
        .route("/logout/all", web::post().to(pages::accounts::logout_all))
        .route("/account", web::get().to(account::show))
        .route(
            "/account/password",
            web::post().to(account::change_password),
        )
        .route("/account/logins/end", web::post().to(account::end_login))
        .route("/rooms", web::get().to(pages::rooms::list))
        .route("/rooms", web::post().to(pages::rooms::create))
        .route("/rooms/{id}", web::get().to(pages::rooms::show))
        .route(
            "/rooms/{id}/messages",
            web::post().to(pages::rooms::post_message),
        )
        .route("/auth/refresh", web::get().to(token_routes::refresh_page))
        .route("/auth/refresh", web::post().to(token_routes::refresh))
        .route("/auth/logout", web::post().to(token_routes::logout))
        .route("/api/me", web::get().to(api::me))
        .route("/api/rooms", web::get().to(api::rooms))
        .route("/api/rooms/{id}/messages", web::get().to(api::messages))
        .route("/ws", web::get().to(ws::upgrade))
        .route("/static/{file}", web::get().to(assets::serve))
        .default_service(web::to(extract::not_found));
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `/login?next=<path>`, or plain `/login` when there is nowhere to return.
pub fn login_url(next: &str) -> String {
    if next == "/" || safe_next(Some(next)) != next {
        return "/login".to_owned();
    }
    let encoded = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    format!("/login?next={encoded}")
}

/// A 307: the browser repeats the same request, method and body, there.
pub fn repost_to(location: &str) -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `/auth/refresh?next=<path>`: rotates the token pair from the refresh
/// cookie and comes back, or goes on to the login page.
pub fn refresh_url(next: &str) -> String {
    let next = safe_next(Some(next));
    let encoded = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    format!("/auth/refresh?next={encoded}")
}

/// A local path to return to after login; anything else (another host, a
/// scheme, `//evil`, backslashes) falls back to the room list.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 512 =>
        {
            p
        }
        _ => "/rooms",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_accepts_local_paths() {
        assert_eq!(safe_next(Some("/rooms/3")), "/rooms/3");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "rooms",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/rooms", "{bad}");
        }
        assert_eq!(safe_next(None), "/rooms");
    }

    #[test]
    fn login_url_encodes_the_return_path() {
        assert_eq!(login_url("/rooms/3"), "/login?next=%2Frooms%2F3");
        assert_eq!(login_url("/rooms"), "/login?next=%2Frooms");
        assert_eq!(login_url("https://evil"), "/login");
    }
}
