//! A small cookie jar for one app on one host. It keeps cookies by name and
//! path, sends a cookie only to paths under its `Path` (so the refresh
//! cookie, `Path=/auth`, goes to `/auth/*` only), and honours deletions by
//! `Max-Age` or a past `Expires`. Every cookie is sent whether `Secure` or
//! not, since the tests talk plain HTTP on loopback.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Cookies by (name, path), as the app last set them.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: BTreeMap<(String, String), String>,
}

impl Jar {
    /// Applies one `Set-Cookie` header value received for a request to `/`.
    pub fn apply(&mut self, set_cookie: &str) {
        self.apply_from("/", set_cookie);
    }

    /// Applies one `Set-Cookie` header value received for a request to
    /// `request_path`, which gives the default path of a cookie without a
    /// `Path` attribute.
    pub fn apply_from(&mut self, request_path: &str, set_cookie: &str) {
        let cookie = SetCookie::parse(set_cookie);
        let path = cookie
            .attribute("Path")
            .filter(|p| p.starts_with('/'))
            .map_or_else(|| default_path(request_path), str::to_owned);
        let key = (cookie.name.clone(), path);
        if cookie.is_removal() {
            self.cookies.remove(&key);
        } else {
            self.cookies.insert(key, cookie.value);
        }
    }

    /// The value of a cookie named `name`, whatever its path.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|((n, _), _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path of a cookie named `name`, if there is one.
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.cookies
            .keys()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_str())
    }

    /// Sets a site-wide cookie (`Path=/`), as a tampering browser would.
    pub fn set(&mut self, name: &str, value: &str) {
        self.set_at(name, "/", value);
    }

    /// Sets a cookie for `path`.
    pub fn set_at(&mut self, name: &str, path: &str, value: &str) {
        self.cookies
            .insert((name.to_owned(), path.to_owned()), value.to_owned());
    }

    /// Removes every cookie named `name`, whatever its path.
    pub fn remove(&mut self, name: &str) {
        self.cookies.retain(|(n, _), _| n != name);
    }

    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    pub fn names(&self) -> Vec<String> {
        self.cookies.keys().map(|(n, _)| n.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// The `Cookie` header for a request to `/`.
    pub fn header(&self) -> Option<String> {
        self.header_for("/")
    }

    /// The value of the `Cookie` header for a request to `request_path`
    /// (query ignored), if any cookie applies: cookies with longer paths
    /// first, as browsers send them.
    pub fn header_for(&self, request_path: &str) -> Option<String> {
        let path = request_path.split(['?', '#']).next().unwrap_or("/");
        let mut matching: Vec<(&String, &String, &String)> = self
            .cookies
            .iter()
            .filter(|((_, cookie_path), _)| path_matches(path, cookie_path))
            .map(|((name, cookie_path), value)| (name, cookie_path, value))
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
        let pairs: Vec<String> = matching
            .iter()
            .map(|(name, _, value)| format!("{name}={value}"))
            .collect();
        Some(pairs.join("; "))
    }
}

/// RFC 6265, 5.1.4: whether a cookie with `cookie_path` goes to
/// `request_path`.
pub fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    if request_path == cookie_path {
        return true;
    }
    request_path.starts_with(cookie_path)
        && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/'))
}

/// RFC 6265, 5.1.4: the default path of a cookie set without `Path`.
fn default_path(request_path: &str) -> String {
    let path = request_path.split(['?', '#']).next().unwrap_or("/");
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(last) => path[..last].to_owned(),
    }
}

/// One parsed `Set-Cookie` header value.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attributes in order, names as written, values without surrounding
    /// space; flags like `HttpOnly` have an empty value.
    pub attributes: Vec<(String, String)>,
    pub raw: String,
}

impl SetCookie {
    pub fn parse(raw: &str) -> SetCookie {
        let mut parts = raw.split(';');
        let first = parts.next().unwrap_or_default();
        let (name, value) = first.split_once('=').unwrap_or((first, ""));
        let attributes = parts
            .map(|part| {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        SetCookie {
            name: name.trim().to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            attributes,
            raw: raw.to_owned(),
        }
    }

    /// The value of an attribute, matched without regard to case.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// Whether this header deletes the cookie: `Max-Age` zero or less, or
    /// an `Expires` date in a past year.
    pub fn is_removal(&self) -> bool {
        if let Some(max_age) = self.attribute("Max-Age") {
            return max_age.parse::<i64>().is_ok_and(|age| age <= 0);
        }
        match self.attribute("Expires").and_then(year_of_http_date) {
            Some(year) => year < current_year(),
            None => false,
        }
    }
}

/// The four-digit year in a date like `Thu, 01 Jan 1970 00:00:00 GMT`.
fn year_of_http_date(date: &str) -> Option<i64> {
    date.split([' ', '-'])
        .find(|part| part.len() == 4 && part.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|year| year.parse().ok())
}

fn current_year() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Good enough to tell last year from this one: a mean Gregorian year.
    1970 + (secs / 31_556_952) as i64
}
