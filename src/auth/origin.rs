//! The origin rule for requests that carry a cookie credential: unsafe
//! methods and WebSocket upgrades must come from the public origin, shown by
//! `Origin`, or without it by `Sec-Fetch-Site: same-origin`.

use actix_web::http::header::{HeaderMap, COOKIE, ORIGIN};

#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    /// The origin to print and to build absolute URLs from.
    pub fn primary(&self) -> &str {
        self.allowed.first().map(String::as_str).unwrap_or_default()
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    pub fn is_same_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(ORIGIN) {
            Some(origin) => origin
                .to_str()
                .map(|o| self.allowed.iter().any(|a| a.eq_ignore_ascii_case(o)))
                .unwrap_or(false),
            None => headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes() == b"same-origin"),
        }
    }
}

/// True when the request carries any cookie, and so possibly a credential
/// the browser attached on its own.
pub fn carries_cookie(headers: &HeaderMap) -> bool {
    headers.get(COOKIE).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.parse().unwrap(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_match_exactly() {
        let p = OriginPolicy::new(vec!["http://127.0.0.1:8080".into()]);
        assert!(p.is_same_origin(&headers(&[("origin", "http://127.0.0.1:8080")])));
        assert!(!p.is_same_origin(&headers(&[("origin", "http://127.0.0.1:8081")])));
        assert!(!p.is_same_origin(&headers(&[("origin", "null")])));
        assert!(!p.is_same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn without_origin_only_same_origin_fetch_metadata_passes() {
        let p = OriginPolicy::new(vec!["http://127.0.0.1:8080".into()]);
        assert!(p.is_same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!p.is_same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!p.is_same_origin(&headers(&[])));
    }
}
