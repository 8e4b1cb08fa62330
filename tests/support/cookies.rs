//! A deliberately simple cookie jar: one app, one host, so cookies are kept
//! by name only. Every cookie is sent on every request, `Secure` or not,
//! since the tests talk plain HTTP on loopback.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Cookies by name, as the app last set them.
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: BTreeMap<String, String>,
}

impl Jar {
    /// Applies one `Set-Cookie` header value.
    pub fn apply(&mut self, set_cookie: &str) {
        let cookie = SetCookie::parse(set_cookie);
        if cookie.is_removal() {
            self.cookies.remove(&cookie.name);
        } else {
            self.cookies.insert(cookie.name, cookie.value);
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    pub fn remove(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    pub fn names(&self) -> Vec<String> {
        self.cookies.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// The value of a `Cookie` request header, if there is any cookie.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        Some(pairs.join("; "))
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
