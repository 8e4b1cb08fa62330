//! The log of a whole test session, and the secrets it must not contain.
//!
//! Once per test process, the app's own log format (`chat::telemetry`) is
//! installed at the app's default level, with debug for our crate, writing
//! to `<CHAT_TEST_LOG_DIR>/<binary>-<pid>.log` (default `target/test-logs`).
//! Every secret the harness handles (passwords it sends, tokens and
//! credential cookies it receives, message bodies it sends) is written to
//! `<binary>-<pid>.secrets` beside it, in the forms a leak could take (one
//! `kind<TAB>form name<TAB>form` line each). After
//! `cargo test`, `tests/run.sh` searches every log for every recorded form
//! and fails the run on a hit, naming the kind of secret and the file only.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Message bodies shorter than this are not recorded: they would match
/// ordinary words in the log.
const MIN_BODY_BYTES: usize = 12;
/// Other secrets shorter than this are not recorded, for the same reason
/// (the app refuses passwords this short anyway).
const MIN_SECRET_BYTES: usize = 8;

/// What kind of secret a recorded value is; the audit reports this, never
/// the value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Password,
    AccessToken,
    RefreshToken,
    SessionCookie,
    MessageBody,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Password => "password",
            Kind::AccessToken => "access_token",
            Kind::RefreshToken => "refresh_token",
            Kind::SessionCookie => "session_id",
            Kind::MessageBody => "message_body",
        }
    }
}

struct Capture {
    secrets: Mutex<(File, HashSet<String>)>,
}

static CAPTURE: OnceLock<Option<Capture>> = OnceLock::new();

/// The folder of the session's logs.
pub fn folder() -> PathBuf {
    std::env::var_os("CHAT_TEST_LOG_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-logs"),
        PathBuf::from,
    )
}

/// Installs the process's log subscriber and opens its secrets file, once.
/// Called by every app start; the apps of parallel tests share both.
pub fn install() {
    CAPTURE.get_or_init(|| {
        let dir = folder();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating the log folder {}: {e}", dir.display()));
        let stem = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".to_owned());
        let base = format!("{stem}-{}", std::process::id());
        let log = File::create(dir.join(format!("{base}.log")))
            .unwrap_or_else(|e| panic!("creating the test log in {}: {e}", dir.display()));
        let secrets = File::create(dir.join(format!("{base}.secrets")))
            .unwrap_or_else(|e| panic!("creating the secrets file in {}: {e}", dir.display()));
        // The app's default level is `info`; debug for our own crate shows
        // what its detailed lines would leak too. `RUST_LOG` is ignored so
        // that the audit always sees the same lines.
        let filter = tracing_subscriber::EnvFilter::new("info,chat=debug");
        // Another subscriber already installed (none is, today) would leave
        // the log empty, which the audit refuses.
        let _ = chat::telemetry::subscriber(filter, Mutex::new(log), false).try_init();
        Some(Capture {
            secrets: Mutex::new((secrets, HashSet::new())),
        })
    });
}

/// Records a secret the harness sent or received.
pub fn record(kind: Kind, value: &str) {
    let min = match kind {
        Kind::MessageBody => MIN_BODY_BYTES,
        _ => MIN_SECRET_BYTES,
    };
    if value.len() < min {
        return;
    }
    let Some(Some(capture)) = CAPTURE.get() else {
        return;
    };
    let mut forms = vec![
        ("raw", value.to_owned()),
        // How a `Debug` field would print it (escaped control characters).
        ("escaped", format!("{value:?}").trim_matches('"').to_owned()),
        ("url", percent(value, false)),
        ("form", percent(value, true)),
        ("base64", STANDARD.encode(value)),
        ("base64url", URL_SAFE_NO_PAD.encode(value)),
    ];
    // One line per form: a form with a line break cannot be searched for
    // line by line, and its escaped form covers it.
    forms.retain(|(_, f)| !f.chars().any(char::is_control));
    let Ok(mut guard) = capture.secrets.lock() else {
        return;
    };
    let (file, seen) = &mut *guard;
    for (name, form) in forms {
        let line = format!("{}\t{name}\t{form}\n", kind.label());
        if seen.insert(line.clone()) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Percent-encodes every byte but ASCII letters and digits; `form` writes a
/// space as `+` and keeps `-._*`, as HTML forms do.
fn percent(value: &str, form: bool) -> String {
    value
        .bytes()
        .map(|b| match b {
            b' ' if form => "+".to_owned(),
            b'-' | b'.' | b'_' | b'*' if form => char::from(b).to_string(),
            b if b.is_ascii_alphanumeric() => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Records what a request sends: passwords and message bodies in forms
/// and JSON, tokens in JSON.
pub fn record_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (key, value) in fields {
        match key {
            k if k.contains("password") => record(Kind::Password, value),
            "body" => record(Kind::MessageBody, value),
            "token" | "accessToken" => record(Kind::AccessToken, value),
            "refreshToken" => record(Kind::RefreshToken, value),
            _ => {}
        }
    }
}

/// Records the secrets in a JSON object sent or received.
pub fn record_json(value: &serde_json::Value) {
    if let Some(map) = value.as_object() {
        record_fields(
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s))),
        );
    }
}

/// Records a credential cookie the app set.
pub fn record_cookie(name: &str, value: &str) {
    match name {
        super::SESSION_COOKIE => record(Kind::SessionCookie, value),
        super::ACCESS_COOKIE => record(Kind::AccessToken, value),
        super::REFRESH_COOKIE => record(Kind::RefreshToken, value),
        _ => {}
    }
}

/// Records what a request body sends.
pub fn record_body(body: &super::Body) {
    match body {
        super::Body::Form(fields) => {
            record_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        super::Body::Json(json) => record_json(json),
        super::Body::Empty | super::Body::Raw { .. } => {}
    }
}

/// Records a Bearer token sent in a header.
pub fn record_header(name: &str, value: &str) {
    if name.eq_ignore_ascii_case("authorization") {
        if let Some(token) = value.strip_prefix("Bearer ") {
            record(Kind::AccessToken, token);
        }
    }
}
