//! Typed settings: read from a TOML file whose keys are the environment names
//! in lower case, overridden by the environment, then parsed and validated
//! with errors that name the key and say how to fix it.

mod keys;
mod net;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chat::rate::{self, Rate};

pub use keys::KEYS;
pub use net::{Cidr, PublicOrigin};
pub use secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("unknown setting `{0}` in the configuration file; the known settings are listed by `chat --help` and in the README")]
    UnknownKey(String),
    #[error("cannot read configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Session,
    Jwt,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Session => "session",
            AuthMode::Jwt => "jwt",
        })
    }
}

/// Where `/metrics` is served (METRICS_ADDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExposure {
    /// Unset: on the main listener, to a loopback peer that is not a
    /// trusted proxy and forwarded nothing; 404 to everyone else.
    Local,
    /// On a listener of its own at this address, serving nothing else.
    Listen(SocketAddr),
    /// `off`: nowhere.
    Off,
}

impl fmt::Display for MetricsExposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExposure::Local => f.write_str("main listener, loopback only"),
            MetricsExposure::Listen(addr) => write!(f, "{addr}"),
            MetricsExposure::Off => f.write_str("off"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub auth_mode: AuthMode,
    pub bind_addr: SocketAddr,
    pub public_origin: PublicOrigin,
    pub data_dir: PathBuf,
    pub sqlite_path: PathBuf,
    pub redis_url: Option<Secret>,
    pub session_secret: Option<Secret>,
    pub jwt_secret: Option<Secret>,
    pub jwt_refresh_secret: Option<Secret>,
    pub bcrypt_cost: u32,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub access_token: Duration,
    pub refresh_token: Duration,
    pub refresh_family_max: Duration,
    pub jwt_leeway: Duration,
    pub refresh_reuse_grace: Duration,
    pub ws_auth_timeout: Duration,
    /// Frames per socket, and messages per user (all sockets and the form).
    pub socket_frames: Rate,
    pub user_messages: Rate,
    pub trusted_proxies: Vec<Cidr>,
    pub log_level: String,
    /// Token mode, while the Redis event channel is down: refuse tokens
    /// (true) or accept those the local view has not seen revoked (false).
    pub refuse_on_redis_outage: bool,
    pub metrics: MetricsExposure,
}

/// Raw values by setting name, before parsing.
struct Raw(BTreeMap<String, String>);

impl Raw {
    fn get(&self, key: &'static str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, key: &'static str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| invalid(key, format!("`{v}` is not a valid value"))),
        }
    }

    fn rate(&self, key: &'static str, default: Rate) -> Result<Rate, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|form: &str| invalid(key, form)),
        }
    }

    fn secs(&self, key: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse(key, default)?;
        // Ten years: beyond it, times overflow the stores' TTL arithmetic.
        if secs == 0 || secs > 315_360_000 {
            return Err(invalid(
                key,
                "must be a whole number of seconds from 1 to 315360000",
            ));
        }
        Ok(Duration::from_secs(secs))
    }
}

impl Config {
    /// Reads the file (the given path, or `config.toml` when it exists), then
    /// lets the process environment override it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = BTreeMap::new();
        let default_path = Path::new("config.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        if let Some(file) = file {
            raw = read_file(file)?;
        }
        for key in KEYS {
            if let Ok(value) = std::env::var(key.name) {
                raw.insert(key.name.to_owned(), value);
            }
        }
        Self::from_raw(Raw(raw))
    }

    /// Builds a configuration from explicit name/value pairs only, ignoring
    /// the environment: what tests and embedders use.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut raw = BTreeMap::new();
        for (k, v) in pairs {
            let k = k.into();
            if !keys::is_known(&k) {
                return Err(ConfigError::UnknownKey(k));
            }
            raw.insert(k, v.into());
        }
        Self::from_raw(Raw(raw))
    }

    fn from_raw(raw: Raw) -> Result<Self, ConfigError> {
        let auth_mode = match raw.get("AUTH_MODE").unwrap_or("session") {
            "session" => AuthMode::Session,
            "jwt" => AuthMode::Jwt,
            other => {
                return Err(invalid(
                    "AUTH_MODE",
                    format!("`{other}` is not a mode; use `session` or `jwt`"),
                ))
            }
        };
        let bind_addr: SocketAddr = raw
            .parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))
            .map_err(|_| {
                invalid(
                    "BIND_ADDR",
                    "must be an IP address and port, e.g. 127.0.0.1:8080 or [::1]:8080",
                )
            })?;
        let public_origin = match raw.get("PUBLIC_ORIGIN") {
            Some(v) => PublicOrigin::parse(v).map_err(|m| invalid("PUBLIC_ORIGIN", m))?,
            None if bind_addr.ip().is_loopback() => PublicOrigin::Derived,
            None => {
                return Err(invalid(
                    "PUBLIC_ORIGIN",
                    format!(
                        "required when BIND_ADDR ({bind_addr}) is not a loopback address; \
                         set it to the origin browsers use, e.g. https://chat.example.org"
                    ),
                ))
            }
        };
        let data_dir = PathBuf::from(raw.get("DATA_DIR").unwrap_or("data"));
        let sqlite_path = match raw.get("DATABASE_URL") {
            None => data_dir.join("chat.db"),
            Some(url) => parse_database_url(url)?,
        };
        let redis_url = match raw.get("REDIS_URL") {
            None => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("redis+unix://") => {
                Some(Secret::new(url))
            }
            Some(_) => {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with redis:// or redis+unix://",
                ))
            }
        };
        let shared = redis_url.is_some();
        let session_secret = secret(&raw, "SESSION_SECRET", 64, shared)?;
        let tokens_shared = shared && auth_mode == AuthMode::Jwt;
        let jwt_secret = secret(&raw, "JWT_SECRET", 32, tokens_shared)?;
        let jwt_refresh_secret = secret(&raw, "JWT_REFRESH_SECRET", 32, tokens_shared)?;
        if let (Some(a), Some(b)) = (&jwt_secret, &jwt_refresh_secret) {
            if a.expose() == b.expose() {
                return Err(invalid(
                    "JWT_REFRESH_SECRET",
                    "must differ from JWT_SECRET; generate another with `chat gen-secret`",
                ));
            }
        }
        let bcrypt_cost: u32 = raw.parse("BCRYPT_COST", 12)?;
        if !(4..=16).contains(&bcrypt_cost) {
            return Err(invalid("BCRYPT_COST", "must be between 4 and 16"));
        }
        let session_idle = raw.secs("SESSION_IDLE_SECS", 7 * 86_400)?;
        let session_max = raw.secs("SESSION_MAX_SECS", 30 * 86_400)?;
        let jwt_leeway = Duration::from_secs(raw.parse("JWT_LEEWAY_SECS", 5u64)?);
        if jwt_leeway > Duration::from_secs(30) {
            return Err(invalid("JWT_LEEWAY_SECS", "must be at most 30"));
        }
        let trusted_proxies = match raw.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Cidr::parse(s).map_err(|m| invalid("TRUSTED_PROXIES", m)))
                .collect::<Result<_, _>>()?,
        };
        let metrics = match raw.get("METRICS_ADDR").map(str::trim) {
            None => MetricsExposure::Local,
            Some("off") => MetricsExposure::Off,
            Some(addr) => MetricsExposure::Listen(addr.parse().map_err(|_| {
                invalid(
                    "METRICS_ADDR",
                    format!("`{addr}` is not an address and port (e.g. 127.0.0.1:9100) or `off`"),
                )
            })?),
        };
        Ok(Config {
            metrics,
            auth_mode,
            bind_addr,
            public_origin,
            data_dir,
            sqlite_path,
            redis_url,
            session_secret,
            jwt_secret,
            jwt_refresh_secret,
            bcrypt_cost,
            session_idle,
            session_max,
            access_token: raw.secs("ACCESS_TOKEN_SECS", 900)?,
            refresh_token: raw.secs("REFRESH_TOKEN_SECS", 7 * 86_400)?,
            refresh_family_max: raw.secs("REFRESH_FAMILY_MAX_SECS", 30 * 86_400)?,
            jwt_leeway,
            refresh_reuse_grace: reuse_grace(&raw)?,
            ws_auth_timeout: raw.secs("WS_AUTH_TIMEOUT_SECS", 5)?,
            socket_frames: raw.rate("SOCKET_FRAME_RATE", rate::SOCKET_FRAMES)?,
            user_messages: raw.rate("USER_MESSAGE_RATE", rate::USER_MESSAGES)?,
            trusted_proxies,
            log_level: log_level(raw.get("LOG_LEVEL").unwrap_or("info"))?,
            refuse_on_redis_outage: match raw.get("REDIS_OUTAGE_POLICY").unwrap_or("accept") {
                "accept" => false,
                "refuse" => true,
                other => {
                    return Err(invalid(
                        "REDIS_OUTAGE_POLICY",
                        format!("`{other}` is not a policy; use `accept` or `refuse`"),
                    ))
                }
            },
        })
    }

    /// The Redis URL with any user name and password removed, for logs and
    /// error messages.
    pub fn redis_url_for_logs(&self) -> Option<String> {
        self.redis_url
            .as_ref()
            .map(|u| net::strip_credentials(u.expose()))
    }

    /// One line per setting, secrets redacted, for the startup log.
    pub fn describe(&self) -> String {
        let secret_state = |s: &Option<Secret>| {
            if s.is_some() {
                "configured"
            } else {
                "generated"
            }
        };
        format!(
            "auth_mode={} bind_addr={} public_origin={} data_dir={} database=sqlite://{} \
             redis_url={} session_secret={} jwt_secrets={} bcrypt_cost={} session_idle_secs={} \
             session_max_secs={} access_token_secs={} refresh_token_secs={} \
             refresh_family_max_secs={} jwt_leeway_secs={} refresh_reuse_grace_secs={} \
             ws_auth_timeout_secs={} socket_frame_rate={} user_message_rate={} \
             trusted_proxies={} log_level={} metrics={}",
            self.auth_mode,
            self.bind_addr,
            self.public_origin,
            self.data_dir.display(),
            self.sqlite_path.display(),
            self.redis_url_for_logs()
                .unwrap_or_else(|| "unset (embedded stores)".into()),
            secret_state(&self.session_secret),
            secret_state(&self.jwt_secret),
            self.bcrypt_cost,
            self.session_idle.as_secs(),
            self.session_max.as_secs(),
            self.access_token.as_secs(),
            self.refresh_token.as_secs(),
            self.refresh_family_max.as_secs(),
            self.jwt_leeway.as_secs(),
            self.refresh_reuse_grace.as_secs(),
            self.ws_auth_timeout.as_secs(),
            self.socket_frames,
            self.user_messages,
            self.trusted_proxies.len(),
            self.log_level,
            self.metrics,
        )
    }
}

fn secret(
    raw: &Raw,
    key: &'static str,
    min: usize,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    let how = "generate one with `chat gen-secret`";
    match raw.get(key) {
        None if required => Err(invalid(
            key,
            format!("must be set when REDIS_URL is configured, so that every instance signs alike; {how}"),
        )),
        None => Ok(None),
        Some(v) if v.len() < min => Err(invalid(
            key,
            format!("is {} bytes, needs at least {min}; {how}", v.len()),
        )),
        Some(v) if secret::is_weak(v) => Err(invalid(key, format!("is a weak value; {how}"))),
        Some(v) => Ok(Some(Secret::new(v))),
    }
}

/// A long grace would quietly switch off the detection of stolen refresh
/// tokens, so it is bounded.
fn reuse_grace(raw: &Raw) -> Result<Duration, ConfigError> {
    let secs: u64 = raw.parse("REFRESH_REUSE_GRACE_SECS", 10)?;
    if secs > 60 {
        return Err(invalid("REFRESH_REUSE_GRACE_SECS", "must be at most 60"));
    }
    Ok(Duration::from_secs(secs))
}

fn log_level(value: &str) -> Result<String, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| {
            invalid(
                "LOG_LEVEL",
                format!("`{value}` is not a log filter ({e}); try `info`"),
            )
        })
}

fn parse_database_url(url: &str) -> Result<PathBuf, ConfigError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(invalid("DATABASE_URL", "sqlite:// needs a file path"));
        }
        return Ok(PathBuf::from(path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(invalid(
            "DATABASE_URL",
            "PostgreSQL is not supported by this build yet; use sqlite://path",
        ));
    }
    Err(invalid("DATABASE_URL", "must start with sqlite://"))
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        let name = key.to_ascii_uppercase();
        if !keys::is_known(&name) {
            return Err(ConfigError::UnknownKey(key));
        }
        if key != key.to_ascii_lowercase() {
            return Err(file_error(format!(
                "keys are lower case in the file: write `{}`, not `{key}`",
                key.to_ascii_lowercase()
            )));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(file_error(format!(
                    "`{key}` has an unsupported value {other}"
                )))
            }
        };
        raw.insert(name, value);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests;
