use super::*;

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
}

fn err(pairs: &[(&str, &str)]) -> String {
    cfg(pairs).unwrap_err().to_string()
}

#[test]
fn defaults_give_the_embedded_session_setup() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.auth_mode, AuthMode::Session);
    assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.sqlite_path, PathBuf::from("data/chat.db"));
    assert!(c.redis_url.is_none());
    assert_eq!(c.session_idle, Duration::from_secs(604_800));
}

#[test]
fn an_unknown_mode_names_both_modes() {
    let e = err(&[("AUTH_MODE", "cookies")]);
    assert!(
        e.contains("AUTH_MODE") && e.contains("session") && e.contains("jwt"),
        "{e}"
    );
}

#[test]
fn jwt_mode_with_redis_needs_both_token_secrets_and_they_must_differ() {
    let s = secret::generate();
    let base = [
        ("AUTH_MODE", "jwt"),
        ("REDIS_URL", "redis://127.0.0.1/"),
        ("SESSION_SECRET", s.as_str()),
    ];
    assert!(err(&base).contains("JWT_SECRET"));
    let a = secret::generate();
    let mut pairs = base.to_vec();
    pairs.push(("JWT_SECRET", &a));
    pairs.push(("JWT_REFRESH_SECRET", &a));
    assert!(err(&pairs).contains("must differ"));
    let b = secret::generate();
    pairs.pop();
    pairs.push(("JWT_REFRESH_SECRET", &b));
    assert_eq!(cfg(&pairs).unwrap().auth_mode, AuthMode::Jwt);
}

#[test]
fn unknown_keys_are_refused() {
    assert!(matches!(
        cfg(&[("BIND_ADRESS", "x")]),
        Err(ConfigError::UnknownKey(_))
    ));
}

#[test]
fn a_public_bind_needs_a_public_origin() {
    assert!(err(&[("BIND_ADDR", "0.0.0.0:80")]).contains("PUBLIC_ORIGIN"));
    let c = cfg(&[
        ("BIND_ADDR", "0.0.0.0:80"),
        ("PUBLIC_ORIGIN", "https://Chat.Example.org/"),
    ])
    .unwrap();
    assert_eq!(
        c.public_origin,
        PublicOrigin::Fixed("https://chat.example.org".into())
    );
    assert!(err(&[("PUBLIC_ORIGIN", "https://x.org/path")]).contains("PUBLIC_ORIGIN"));
}

#[test]
fn secrets_are_checked_for_length_and_weakness() {
    let e = err(&[("SESSION_SECRET", "short")]);
    assert!(
        e.contains("SESSION_SECRET") && e.contains("gen-secret"),
        "{e}"
    );
    assert!(err(&[("SESSION_SECRET", &"changeme".repeat(9))]).contains("weak"));
    let good = secret::generate();
    assert!(cfg(&[("SESSION_SECRET", &good)]).is_ok());
}

#[test]
fn redis_requires_configured_secrets() {
    let e = err(&[("REDIS_URL", "redis://127.0.0.1/")]);
    assert!(e.contains("SESSION_SECRET"), "{e}");
}

#[test]
fn bcrypt_cost_and_leeway_are_bounded() {
    assert!(err(&[("BCRYPT_COST", "3")]).contains("BCRYPT_COST"));
    assert!(err(&[("BCRYPT_COST", "twelve")]).contains("BCRYPT_COST"));
    assert!(err(&[("JWT_LEEWAY_SECS", "31")]).contains("JWT_LEEWAY_SECS"));
}

#[test]
fn postgres_is_refused_with_a_clear_message() {
    assert!(err(&[("DATABASE_URL", "postgres://db/chat")]).contains("not supported"));
}

#[test]
fn the_file_uses_lower_case_names_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "bind_addr = \"127.0.0.1:9000\"\nbcrypt_cost = 10\n").unwrap();
    let raw = read_file(&path).unwrap();
    assert_eq!(raw.get("BCRYPT_COST").map(String::as_str), Some("10"));
    std::fs::write(&path, "bind_adress = \"x\"\n").unwrap();
    assert!(matches!(read_file(&path), Err(ConfigError::UnknownKey(_))));
}

#[test]
fn trusted_proxies_parse_ranges() {
    let c = cfg(&[("TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
    assert!(c.trusted_proxies[0].contains("10.2.3.4".parse().unwrap()));
    assert!(!c.trusted_proxies[0].contains("11.0.0.1".parse().unwrap()));
    assert!(c.trusted_proxies[1].contains("::1".parse().unwrap()));
    assert!(err(&[("TRUSTED_PROXIES", "10.0.0.0/40")]).contains("TRUSTED_PROXIES"));
}

#[test]
fn redis_credentials_never_reach_the_description() {
    let secret = secret::generate();
    let c = cfg(&[
        ("REDIS_URL", "redis://user:hunter2@127.0.0.1:6379/0"),
        ("SESSION_SECRET", &secret),
    ])
    .unwrap();
    let d = c.describe();
    assert!(!d.contains("hunter2") && !d.contains(&secret), "{d}");
}

#[test]
fn redis_passwords_in_the_query_string_are_dropped_too() {
    let secret = secret::generate();
    let c = cfg(&[
        ("REDIS_URL", "redis+unix:///tmp/r.sock?db=0&pass=hunter2"),
        ("SESSION_SECRET", &secret),
    ])
    .unwrap();
    let shown = c.redis_url_for_logs().unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn session_limits_are_bounded() {
    assert!(err(&[("SESSION_IDLE_SECS", "99999999999999999")]).contains("SESSION_IDLE_SECS"));
    assert!(err(&[("SESSION_MAX_SECS", "0")]).contains("SESSION_MAX_SECS"));
}

#[test]
fn a_bad_log_filter_or_bind_address_says_how_to_fix_it() {
    assert!(err(&[("LOG_LEVEL", "foo[[")]).contains("LOG_LEVEL"));
    assert!(err(&[("BIND_ADDR", "localhost:8080")]).contains("127.0.0.1"));
}

#[test]
fn metrics_addr_is_loopback_only_by_default_an_address_or_off() {
    assert_eq!(cfg(&[]).unwrap().metrics, MetricsExposure::Local);
    assert_eq!(
        cfg(&[("METRICS_ADDR", "127.0.0.1:9100")]).unwrap().metrics,
        MetricsExposure::Listen("127.0.0.1:9100".parse().unwrap())
    );
    assert_eq!(
        cfg(&[("METRICS_ADDR", "off")]).unwrap().metrics,
        MetricsExposure::Off
    );
    let e = err(&[("METRICS_ADDR", "somewhere")]);
    assert!(e.contains("METRICS_ADDR") && e.contains("off"), "{e}");
}

#[test]
fn message_and_frame_rates_are_settings_with_a_readable_form() {
    let c = cfg(&[
        ("USER_MESSAGE_RATE", "5/0.5"),
        ("SOCKET_FRAME_RATE", "100/50"),
    ])
    .unwrap();
    assert_eq!(
        (c.user_messages.burst, c.user_messages.per_second),
        (5.0, 0.5)
    );
    assert_eq!(
        (c.socket_frames.burst, c.socket_frames.per_second),
        (100.0, 50.0)
    );
    let d = cfg(&[]).unwrap();
    assert_eq!(
        (d.user_messages.burst, d.user_messages.per_second),
        (40.0, 2.0)
    );
    assert_eq!(
        (d.socket_frames.burst, d.socket_frames.per_second),
        (30.0, 10.0)
    );
    let e = err(&[("USER_MESSAGE_RATE", "lots")]);
    assert!(
        e.contains("USER_MESSAGE_RATE") && e.contains("30/10"),
        "{e}"
    );
    let e = err(&[("SOCKET_FRAME_RATE", "0/10")]);
    assert!(e.contains("SOCKET_FRAME_RATE"), "{e}");
}
