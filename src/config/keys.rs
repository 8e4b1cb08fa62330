//! The table of every setting: its name, default and meaning. The loader
//! refuses names that are not here, and `--help` and the README list them.

pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const KEYS: &[Key] = &[
    Key {
        name: "AUTH_MODE",
        default: "session",
        meaning: "`session` (cookie sessions) or `jwt` (access and refresh tokens)",
    },
    Key {
        name: "BIND_ADDR",
        default: "127.0.0.1:8080",
        meaning: "listen address; port 0 picks a free port",
    },
    Key {
        name: "PUBLIC_ORIGIN",
        default: "derived from BIND_ADDR",
        meaning: "origin browsers use; required when not bound to loopback",
    },
    Key {
        name: "DATA_DIR",
        default: "data",
        meaning: "folder for the SQLite file and generated secrets",
    },
    Key {
        name: "DATABASE_URL",
        default: "sqlite://$DATA_DIR/chat.db",
        meaning: "sqlite://path",
    },
    Key {
        name: "REDIS_URL",
        default: "unset",
        meaning: "redis://… or redis+unix://…; unset means embedded stores",
    },
    Key {
        name: "SESSION_SECRET",
        default: "generated",
        meaning: "cookie and CSRF signing key, at least 64 bytes",
    },
    Key {
        name: "JWT_SECRET",
        default: "generated",
        meaning: "access-token HMAC key, at least 32 bytes",
    },
    Key {
        name: "JWT_REFRESH_SECRET",
        default: "generated",
        meaning: "refresh-token HMAC key, at least 32 bytes, not JWT_SECRET",
    },
    Key {
        name: "BCRYPT_COST",
        default: "12",
        meaning: "4 to 16; below 10 logs a warning (tests only)",
    },
    Key {
        name: "SESSION_IDLE_SECS",
        default: "604800",
        meaning: "a session unused this long ends",
    },
    Key {
        name: "SESSION_MAX_SECS",
        default: "2592000",
        meaning: "a session ends this long after login, used or not",
    },
    Key {
        name: "ACCESS_TOKEN_SECS",
        default: "900",
        meaning: "access-token lifetime",
    },
    Key {
        name: "REFRESH_TOKEN_SECS",
        default: "604800",
        meaning: "refresh-token lifetime",
    },
    Key {
        name: "REFRESH_FAMILY_MAX_SECS",
        default: "2592000",
        meaning: "a token family is never renewed past this age",
    },
    Key {
        name: "JWT_LEEWAY_SECS",
        default: "5",
        meaning: "clock leeway for exp and nbf, at most 30",
    },
    Key {
        name: "REFRESH_REUSE_GRACE_SECS",
        default: "10",
        meaning: "a spent refresh token seen again this soon is a concurrent refresh",
    },
    Key {
        name: "WS_AUTH_TIMEOUT_SECS",
        default: "5",
        meaning: "time a socket has to send `authenticate`",
    },
    Key {
        name: "TRUSTED_PROXIES",
        default: "none",
        meaning: "comma-separated addresses or CIDRs whose X-Forwarded-For is believed",
    },
    Key {
        name: "REDIS_OUTAGE_POLICY",
        default: "accept",
        meaning: "jwt mode while the Redis event channel is down: `accept` tokens not revoked in the local view, or `refuse` them (503)",
    },
    Key {
        name: "SOCKET_FRAME_RATE",
        default: "30/10",
        meaning: "frames one socket may send: a burst, then so many per second (`<burst>/<per second>`)",
    },
    Key {
        name: "USER_MESSAGE_RATE",
        default: "40/2",
        meaning: "messages one user may post over all sockets and the form, per instance (`<burst>/<per second>`)",
    },
    Key {
        name: "METRICS_ADDR",
        default: "unset",
        meaning: "where `/metrics` is served: unset, on the main listener to loopback clients that came through no proxy; an address such as 127.0.0.1:9100, on a listener of its own (and nowhere else); `off`, nowhere",
    },
    Key {
        name: "LOG_LEVEL",
        default: "info",
        meaning: "tracing filter, e.g. `info` or `chat=debug,info`",
    },
];

pub fn is_known(name: &str) -> bool {
    KEYS.iter().any(|k| k.name == name)
}
