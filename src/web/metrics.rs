//! The figures over HTTP: the middleware that counts every request, and
//! `/metrics`, on the main listener (loopback clients only, by default) or
//! on a listener of its own.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest, HttpResponse};

use super::extract::not_found;
use super::State;
use crate::config::{Cidr, MetricsExposure};
use crate::metrics::{method_label, Metrics, CONTENT_TYPE};

/// Counts and times every request by its route pattern, method and
/// status. It sits outside the other middleware, so refusals made there
/// (a foreign origin, a store outage) are counted too.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(metrics) = req.app_data::<State>().map(|s| s.metrics.clone()) else {
        return next.call(req).await;
    };
    // The pattern is known before routing runs, and stays known when an
    // inner layer answers with an error instead of a response.
    let route = req.match_pattern();
    let method = method_label(req.method());
    let started = Instant::now();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    metrics.request(route.as_deref(), method, status.as_u16(), started.elapsed());
    result
}

/// `GET /metrics` on the main listener. Served, when METRICS_ADDR is
/// unset, only to a client on this host that no proxy forwarded; 404
/// otherwise, so that the endpoint is not advertised.
pub async fn scrape(req: HttpRequest, state: State) -> HttpResponse {
    let allowed = state.metrics_exposure == MetricsExposure::Local
        && is_direct_local(&req, &state.trusted_proxies);
    if !allowed {
        return not_found(req).await;
    }
    exposition(&state.metrics)
}

/// Whether the peer is on this host and forwarded nothing. A proxy on
/// this host that adds a forwarding header is thereby kept out; one that
/// adds none cannot be told apart (the README says to set METRICS_ADDR).
fn is_direct_local(req: &HttpRequest, trusted_proxies: &[Cidr]) -> bool {
    let Some(peer) = req.peer_addr() else {
        return false;
    };
    let ip: IpAddr = peer.ip().to_canonical();
    let headers = req.headers();
    ip.is_loopback()
        && !trusted_proxies.iter().any(|c| c.contains(ip))
        && !headers.contains_key(header::FORWARDED)
        && !headers.contains_key("x-forwarded-for")
        && !headers.contains_key("x-real-ip")
        && names_this_host(req)
}

/// Whether the request names this host: `localhost` or a loopback address,
/// with any port, or no host at all (HTTP/1.0). A page on another site
/// can point its own name at 127.0.0.1 (DNS rebinding) and so make a
/// browser on this host fetch `/metrics` for it; that request still names
/// the other site, and is refused here.
fn names_this_host(req: &HttpRequest) -> bool {
    let named = req.uri().host().map(str::to_owned).or_else(|| {
        let value = req.headers().get(header::HOST)?;
        Some(value.to_str().unwrap_or("?").to_owned())
    });
    let Some(named) = named else {
        return true;
    };
    is_loopback_name(&named)
}

/// `localhost`, `127.0.0.1:8080`, `[::1]:8080`, `::1`: a name for this host.
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or("", |(inside, _)| inside)
    } else if host.matches(':').count() == 1 {
        host.split_once(':').map_or(host, |(name, _)| name)
    } else {
        host
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn exposition(metrics: &Metrics) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(metrics.render())
}

/// The routes of the metrics-only listener (METRICS_ADDR set): `/metrics`
/// and nothing else.
pub fn metrics_only(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape_own_listener))
        .default_service(web::to(HttpResponse::NotFound));
}

/// On a listener of its own, anyone who can reach the address may read;
/// choosing the address is the access control. Only a listener on loopback
/// also asks that the request name this host, against DNS rebinding as
/// on the main listener.
async fn scrape_own_listener(req: HttpRequest, metrics: web::Data<Metrics>) -> HttpResponse {
    let on_loopback = req.app_config().local_addr().ip().is_loopback();
    if on_loopback && !names_this_host(&req) {
        return HttpResponse::NotFound().finish();
    }
    exposition(&metrics)
}

#[cfg(test)]
mod tests {
    use super::is_loopback_name;

    #[test]
    fn only_names_of_this_host_pass() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:9100",
            "127.9.9.9:1",
            "[::1]:8080",
            "::1",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "",
            "127.0.0.1.nip.example",
            "[::1",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }
}
