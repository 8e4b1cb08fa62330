//! `Browser`: an HTTP client that behaves like one browser profile. It keeps
//! cookies (by path, as browsers do), never follows redirects (tests see
//! the 303s), and sends the app's `Origin` on unsafe requests unless told
//! otherwise. Without cookies and with a Bearer header it is an API client.

use std::time::Duration;

use awc::http::header::HeaderMap;
use awc::http::Method;
use serde_json::Value;

use super::app::{Auth, TestApp};
use super::cookies::{Jar, SetCookie};
use super::html;

/// Longest wait for one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response body a test reads.
const MAX_BODY: usize = 8 << 20;

/// What `Origin` header unsafe requests carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginHeader {
    /// The app's own origin (the default).
    App,
    /// No `Origin` header at all.
    Absent,
    /// Another origin, as a cross-site page would send.
    Other(String),
}

/// A request body.
pub enum Body {
    Empty,
    Form(Vec<(String, String)>),
    Json(Value),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub set_cookies: Vec<SetCookie>,
}

impl Page {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header; panics when there is none.
    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header in {} response", self.status))
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// The `Set-Cookie` header for `name` in this response, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&SetCookie> {
        self.set_cookies.iter().find(|c| c.name == name)
    }

    /// Whether this response sets (not deletes) a cookie that carries a
    /// login in `auth` mode.
    pub fn sets_credential(&self, auth: Auth) -> bool {
        auth.credential_cookies()
            .iter()
            .any(|name| self.set_cookie(name).is_some_and(|c| !c.is_removal()))
    }

    /// Panics with the body unless this is the generic 401 of the API:
    /// `{"error":"not_authenticated","message":"Authentication required"}`.
    #[track_caller]
    pub fn assert_generic_401(&self) -> &Page {
        self.assert_status(401);
        assert_eq!(
            self.json(),
            serde_json::json!({
                "error": "not_authenticated",
                "message": "Authentication required",
            }),
            "not the generic refusal"
        );
        self
    }

    /// The hidden `csrf_token` of the (first) form on the page.
    pub fn csrf(&self) -> String {
        html::csrf_from(&self.body)
    }

    /// Panics with the body unless the status is `expected`.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Page {
        assert_eq!(
            self.status,
            expected,
            "unexpected status; Location: {:?}; body:\n{}",
            self.header("location"),
            self.body
        );
        self
    }

    /// Panics unless this is a 303 to `path`.
    #[track_caller]
    pub fn assert_see_other(&self, path: &str) -> &Page {
        self.assert_status(303);
        assert_eq!(self.location(), path, "303 to the wrong place");
        self
    }
}

/// One browser profile against one app.
#[derive(Clone)]
pub struct Browser {
    origin: String,
    /// The app's authentication mode, for mode-aware helpers.
    pub auth: Auth,
    pub jar: Jar,
    pub origin_header: OriginHeader,
    /// Every `Set-Cookie` header received, oldest first.
    pub set_cookie_log: Vec<SetCookie>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            origin: app.origin(),
            auth: app.auth(),
            jar: Jar::default(),
            origin_header: OriginHeader::App,
            set_cookie_log: Vec::new(),
        }
    }

    /// A second profile with a copy of this one's cookies, as if the cookie
    /// had been stolen or saved before logout.
    pub fn fork(&self) -> Browser {
        self.clone()
    }

    /// Points the browser at the app again after a restart (new port).
    pub fn retarget(&mut self, app: &TestApp) {
        self.origin = app.origin();
    }

    /// The app origin this browser talks to.
    pub fn app_origin(&self) -> &str {
        &self.origin
    }

    /// Whether the jar holds any cookie that carries a login in this mode.
    pub fn has_credential(&self) -> bool {
        self.auth
            .credential_cookies()
            .iter()
            .any(|name| self.jar.get(name).is_some())
    }

    /// The access token in the `chat_access` cookie (token mode).
    pub fn access_token(&self) -> Option<String> {
        self.jar.get(super::ACCESS_COOKIE).map(str::to_owned)
    }

    /// The refresh token in the `chat_refresh` cookie (token mode).
    pub fn refresh_token(&self) -> Option<String> {
        self.jar.get(super::REFRESH_COOKIE).map(str::to_owned)
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request(Method::GET, path, &[], Body::Empty).await
    }

    /// A GET with `Authorization: Bearer <token>` (and the jar's cookies,
    /// if it has any).
    pub async fn get_bearer(&mut self, path: &str, token: &str) -> Page {
        let auth = format!("Bearer {token}");
        self.request(Method::GET, path, &[("Authorization", &auth)], Body::Empty)
            .await
    }

    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let fields = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.request(Method::POST, path, &[], Body::Form(fields))
            .await
    }

    pub async fn post_json(&mut self, path: &str, json: Value) -> Page {
        self.request(Method::POST, path, &[], Body::Json(json))
            .await
    }

    /// Sends one request with extra headers, stores the cookies it sets and
    /// reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Page {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(REQUEST_TIMEOUT)
            .finish();
        let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut req = client.request(method.clone(), format!("{}{path}", self.origin));
        if unsafe_method {
            match &self.origin_header {
                OriginHeader::App => req = req.insert_header(("Origin", self.origin.as_str())),
                OriginHeader::Absent => {}
                OriginHeader::Other(o) => req = req.insert_header(("Origin", o.as_str())),
            }
        }
        if let Some(cookie) = self.jar.header_for(path) {
            req = req.insert_header(("Cookie", cookie));
        }
        for (name, value) in headers {
            super::logs::record_header(name, value);
            req = req.insert_header((*name, *value));
        }
        super::logs::record_body(&body);
        let sent = match body {
            Body::Empty => req.send().await,
            Body::Form(fields) => req.send_form(&fields).await,
            Body::Json(json) => req.send_json(&json).await,
            Body::Raw {
                content_type,
                bytes,
            } => {
                req.insert_header(("Content-Type", content_type))
                    .send_body(bytes)
                    .await
            }
        };
        let mut res = sent.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let bytes = res
            .body()
            .limit(MAX_BODY)
            .await
            .unwrap_or_else(|e| panic!("reading the body of {method} {path} failed: {e}"));
        let set_cookies: Vec<SetCookie> = res
            .headers()
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .map(SetCookie::parse)
            .collect();
        for cookie in &set_cookies {
            if !cookie.is_removal() {
                super::logs::record_cookie(&cookie.name, &cookie.value);
            }
            self.jar.apply_from(path, &cookie.raw);
            self.set_cookie_log.push(cookie.clone());
        }
        if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
            super::logs::record_json(&json);
        }
        Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            set_cookies,
        }
    }

    /// GETs `form_path`, then POSTs `fields` to `post_path` with the page's
    /// `csrf_token` added.
    pub async fn submit(
        &mut self,
        form_path: &str,
        post_path: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let form = self.get(form_path).await;
        form.assert_status(200);
        let token = form.csrf();
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(post_path, &all).await
    }

    /// Registers through the form and asserts the 303 that logs in.
    pub async fn register(&mut self, username: &str, email: &str, password: &str) -> Page {
        let page = self
            .submit(
                "/register",
                "/register",
                &[
                    ("username", username),
                    ("email", email),
                    ("password", password),
                ],
            )
            .await;
        page.assert_status(303);
        page
    }

    /// Logs in through the form and asserts the 303.
    pub async fn login(&mut self, email: &str, password: &str) -> Page {
        let page = self
            .submit(
                "/login",
                "/login",
                &[("email", email), ("password", password)],
            )
            .await;
        page.assert_status(303);
        page
    }

    /// Logs out through the form on the rooms page and asserts the 303.
    pub async fn logout(&mut self) -> Page {
        let page = self.submit("/rooms", "/logout", &[]).await;
        page.assert_status(303);
        page
    }
}
