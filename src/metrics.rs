//! Live figures in the Prometheus text format: requests, authentication
//! checks, store operations, sockets, deliveries, revocations, bcrypt.
//!
//! One registry per app instance, held by the app state and handed to the
//! parts that count, rather than a process-wide recorder: tests run many
//! instances in one process and each must read its own figures. A default
//! `Metrics` records nothing, so parts built without one (unit tests, the
//! command-line tools) need no special case.
//!
//! Every label value is one of a fixed set: route patterns, never paths
//! with ids; reasons and operation names, never user input.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What a scraper is told the body is.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds, in seconds, for request and revocation latencies: from
/// well under a millisecond (the common case on loopback) to seconds.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// bcrypt takes about a millisecond at cost 4 and a quarter second at 12.
const BCRYPT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn bcrypt_histogram() -> Histogram {
    Histogram::new(BCRYPT_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    mode: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// The handle every counting part holds: cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Inner>>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    auth_checks: Family<AuthLabels, Counter>,
    store_ops: Family<StoreLabels, Counter>,
    open_sockets: Gauge,
    delivered: Counter,
    stored: Counter,
    revocations: Family<KindLabels, Counter>,
    revocation_close: Histogram,
    bcrypt: Family<OpLabels, Histogram, fn() -> Histogram>,
    bcrypt_rejected: Counter,
    login_throttled: Counter,
    /// Route patterns seen so far, shared so that a request's labels cost
    /// a reference count instead of a string copy. Bounded by the route
    /// table.
    routes: RwLock<HashMap<Box<str>, Arc<str>>>,
}

impl Metrics {
    /// A recording handle with its own registry.
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let auth_checks = Family::<AuthLabels, Counter>::default();
        let store_ops = Family::<StoreLabels, Counter>::default();
        let open_sockets = Gauge::default();
        let delivered = Counter::default();
        let stored = Counter::default();
        let revocations = Family::<KindLabels, Counter>::default();
        let revocation_close = latency_histogram();
        let bcrypt = Family::<OpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            bcrypt_histogram,
        );
        let bcrypt_rejected = Counter::default();
        let login_throttled = Counter::default();

        let mut registry = Registry::with_prefix("chat");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern (or `unmatched`), method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern",
            request_seconds.clone(),
        );
        registry.register(
            "auth_checks",
            "Authentication checks of requests, socket upgrades and `authenticate` frames, \
             by auth mode and result (`ok` or why not)",
            auth_checks.clone(),
        );
        registry.register(
            "store_operations",
            "Store calls by store, operation and outcome; `query` counts every call through \
             the database's blocking pool, those behind the other operations included",
            store_ops.clone(),
        );
        registry.register(
            "ws_open_sockets",
            "Authenticated WebSocket connections open on this instance",
            open_sockets.clone(),
        );
        registry.register(
            "messages_delivered",
            "Room message frames queued to sockets by the fan-out (a sender's own copy excluded)",
            delivered.clone(),
        );
        registry.register(
            "messages_stored",
            "Room messages stored by this instance",
            stored.clone(),
        );
        registry.register(
            "revocations",
            "Revocation events issued by this instance, by cause; each closes the sockets of \
             one login or of a user",
            revocations.clone(),
        );
        registry.register(
            "revocation_close_seconds",
            "Time from a revocation being issued (on any instance) to this instance telling \
             the affected sockets to close",
            revocation_close.clone(),
        );
        registry.register(
            "bcrypt_seconds",
            "Time of one bcrypt hash or verification on the blocking pool",
            bcrypt.clone(),
        );
        registry.register(
            "bcrypt_rejected",
            "Password checks refused at once because too many were under way (503)",
            bcrypt_rejected.clone(),
        );
        registry.register(
            "login_throttled",
            "Login attempts refused by the failed-login throttle (429)",
            login_throttled.clone(),
        );
        Metrics(Some(Arc::new(Inner {
            registry,
            requests,
            request_seconds,
            auth_checks,
            store_ops,
            open_sockets,
            delivered,
            stored,
            revocations,
            revocation_close,
            bcrypt,
            bcrypt_rejected,
            login_throttled,
            routes: RwLock::default(),
        })))
    }

    /// The exposition text; empty for a handle that records nothing.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Some(inner) = &self.0 {
            if let Err(e) =
                prometheus_client::encoding::prometheus_text::encode(&mut text, &inner.registry)
            {
                tracing::warn!(error = %e, "could not encode the metrics");
            }
        }
        text
    }

    /// One answered request. `route` is the matched pattern, or `None`.
    pub fn request(&self, route: Option<&str>, method: &'static str, status: u16, took: Duration) {
        let Some(inner) = &self.0 else { return };
        let route = inner.route(route.unwrap_or(UNMATCHED));
        inner
            .request_seconds
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        inner
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    pub fn auth_check(&self, mode: &'static str, result: &'static str) {
        if let Some(inner) = &self.0 {
            inner
                .auth_checks
                .get_or_create(&AuthLabels { mode, result })
                .inc();
        }
    }

    pub fn store_op(&self, store: &'static str, op: &'static str, outcome: &'static str) {
        if let Some(inner) = &self.0 {
            inner
                .store_ops
                .get_or_create(&StoreLabels { store, op, outcome })
                .inc();
        }
    }

    pub fn socket_opened(&self) {
        if let Some(inner) = &self.0 {
            inner.open_sockets.inc();
        }
    }

    pub fn socket_closed(&self) {
        if let Some(inner) = &self.0 {
            inner.open_sockets.dec();
        }
    }

    pub fn delivered(&self, frames: usize) {
        if let Some(inner) = &self.0 {
            inner.delivered.inc_by(frames as u64);
        }
    }

    pub fn message_stored(&self) {
        if let Some(inner) = &self.0 {
            inner.stored.inc();
        }
    }

    pub fn revocation_issued(&self, kind: &'static str) {
        if let Some(inner) = &self.0 {
            inner.revocations.get_or_create(&KindLabels { kind }).inc();
        }
    }

    pub fn revocation_closed(&self, took: Duration) {
        if let Some(inner) = &self.0 {
            inner.revocation_close.observe(took.as_secs_f64());
        }
    }

    pub fn bcrypt(&self, op: &'static str, took: Duration) {
        if let Some(inner) = &self.0 {
            inner
                .bcrypt
                .get_or_create(&OpLabels { op })
                .observe(took.as_secs_f64());
        }
    }

    pub fn bcrypt_rejected(&self) {
        if let Some(inner) = &self.0 {
            inner.bcrypt_rejected.inc();
        }
    }

    pub fn login_throttled(&self) {
        if let Some(inner) = &self.0 {
            inner.login_throttled.inc();
        }
    }
}

impl Inner {
    /// The shared copy of a route pattern, made once per pattern.
    fn route(&self, pattern: &str) -> Arc<str> {
        if let Some(known) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(pattern)
        {
            return known.clone();
        }
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pattern.into())
            .or_insert_with(|| pattern.into())
            .clone()
    }
}

/// The outcome label of a store call.
pub fn outcome<T>(result: &Result<T, crate::store::StoreError>) -> &'static str {
    use crate::store::StoreError;
    match result {
        Ok(_) => "ok",
        Err(StoreError::Conflict(_)) => "conflict",
        Err(StoreError::Unavailable(_)) => "unavailable",
        Err(StoreError::Other(_)) => "error",
    }
}

/// A method as a label: the common ones by name, anything else `other`,
/// so that a client cannot grow the label set.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_fixed_labels_in_the_text_format() {
        let m = Metrics::new();
        m.request(Some("/rooms/{id}"), "GET", 200, Duration::from_millis(2));
        m.request(Some("/rooms/{id}"), "GET", 200, Duration::from_millis(3));
        m.request(None, "other", 404, Duration::from_millis(1));
        m.auth_check("jwt", "expired");
        m.socket_opened();
        let text = m.render();
        assert!(
            text.contains(
                "chat_http_requests_total{route=\"/rooms/{id}\",method=\"GET\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("route=\"unmatched\""), "{text}");
        assert!(
            text.contains("chat_auth_checks_total{mode=\"jwt\",result=\"expired\"} 1"),
            "{text}"
        );
        assert!(text.contains("chat_ws_open_sockets 1"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn a_default_handle_records_nothing() {
        let m = Metrics::default();
        m.auth_check("session", "ok");
        assert_eq!(m.render(), "");
    }
}
