//! Building and starting the whole app from a configuration: what `main`
//! runs and what the integration tests start on a free port.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::ServerHandle;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web as aweb, App, HttpServer};
use anyhow::Context;

use std::time::Duration;

use crate::auth::jwt::Tokens;
use crate::auth::revocation::RevocationView;
use crate::auth::tokens::Lifetimes;
use crate::auth::{csrf::Csrf, origin::OriginPolicy, password::Hasher, session, Auth, TokenAuth};
use crate::chat::events::Listener;
use crate::chat::rate::UserRates;
use crate::chat::{CloseKind, Event, Events, Hub};
use crate::config::{secret, AuthMode, Config, MetricsExposure, Secret};
use crate::metrics::Metrics;
use crate::store::kv::{
    DbSessionStore, DenyStore, RedisLink, SessionBackend, Throttle, TimedRedisStore,
};
use crate::store::{self, Db};
use crate::web::{self, AppState};

/// A started server.
pub struct RunningApp {
    pub addr: SocketAddr,
    /// The metrics listener's address, when METRICS_ADDR sets one.
    pub metrics_addr: Option<SocketAddr>,
    origin: String,
    handle: ServerHandle,
    hub: Arc<Hub>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_server: Option<Server>,
}

/// A started listener and its task.
struct Server {
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// The address a browser can open.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully: every
    /// socket is closed with 1001 so clients reconnect elsewhere, and
    /// in-flight requests get up to the shutdown timeout to finish.
    pub async fn serve_until_signal(mut self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            ended = &mut self.task => {
                ended??;
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested: closing sockets, finishing requests");
        self.stop().await;
        Ok(())
    }

    /// Closes every socket, stops accepting, and waits for the server.
    pub async fn stop(self) {
        self.hub.close_all(CloseKind::ShuttingDown);
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some(server) = self.metrics_server {
            server.handle.stop(true).await;
            let _ = server.task.await;
        }
    }
}

/// Creates the data folder readable by its owner only, since it holds the
/// database and generated secrets. An existing folder is left as it is.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A secret: configured, or generated once into the data folder.
fn secret_or_file(
    config: &Config,
    configured: &Option<Secret>,
    file: &str,
) -> anyhow::Result<Secret> {
    if let Some(s) = configured {
        return Ok(s.clone());
    }
    let path = config.data_dir.join(file);
    let secret = secret::load_or_generate(&path)
        .with_context(|| format!("reading or creating {}", path.display()))?;
    if secret.expose().len() < 64 || secret::is_weak(secret.expose()) {
        anyhow::bail!(
            "{} holds a weak or short secret; delete it to generate a new one",
            path.display()
        );
    }
    Ok(secret)
}

/// What Redis holds, for the startup error when it cannot be reached.
const REDIS_ROLE: &str =
    "it holds the sessions, the token deny-list and the event channel between instances (REDIS_URL)";

async fn session_backend(
    config: &Config,
    db: &Db,
    metrics: &Metrics,
) -> anyhow::Result<SessionBackend> {
    match (&config.redis_url, config.redis_url_for_logs()) {
        (Some(url), Some(shown)) => {
            let store = TimedRedisStore::connect(url, metrics.clone())
                .await
                .with_context(|| format!("cannot reach Redis at {shown}; {REDIS_ROLE}"))?;
            Ok(SessionBackend::Redis(store))
        }
        _ => {
            let store = DbSessionStore::new(db.clone());
            store.spawn_purger();
            Ok(SessionBackend::Embedded(store))
        }
    }
}

/// Opens the stores, binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    create_private_dir(&config.data_dir)
        .with_context(|| format!("creating DATA_DIR {}", config.data_dir.display()))?;
    let secret = secret_or_file(&config, &config.session_secret, "session_secret")?;
    let metrics = Metrics::new();
    let path = config.sqlite_path.clone();
    let db = tokio::task::spawn_blocking(move || Db::open_sqlite(&path))
        .await?
        .with_context(|| format!("opening the database {}", config.sqlite_path.display()))?
        .with_metrics(metrics.clone());
    let redis = match (&config.redis_url, config.redis_url_for_logs()) {
        (Some(url), Some(shown)) => Some(
            RedisLink::connect(url.expose(), metrics.clone())
                .await
                .with_context(|| format!("cannot reach Redis at {shown}; {REDIS_ROLE}"))?,
        ),
        _ => None,
    };
    let sessions = session_backend(&config, &db, &metrics).await?;

    let listener = TcpListener::bind(config.bind_addr)
        .with_context(|| format!("binding BIND_ADDR {}", config.bind_addr))?;
    let addr = listener.local_addr()?;
    let origins = config.public_origin.allowed(addr);
    let origin = OriginPolicy::new(origins.clone());

    if config.bcrypt_cost < 10 {
        tracing::warn!(
            cost = config.bcrypt_cost,
            "BCRYPT_COST below 10 is for tests only"
        );
    }
    let view = Arc::new(RevocationView::default());
    let hub = Arc::new(Hub::with_metrics(metrics.clone()));
    load_ended_logins(&db, &view, &config)
        .await
        .context("loading ended logins")?;
    let mut events =
        Events::in_process(hub.clone()).with_listener(view_listener(view.clone(), &config));
    if let Some(link) = redis.clone() {
        events = events.with_redis(link);
    }
    let tokens = match config.auth_mode {
        AuthMode::Session => None,
        AuthMode::Jwt => {
            Some(token_auth(&config, &db, redis.as_ref(), view.clone(), events.linked()).await?)
        }
    };
    spawn_resync(
        events.linked(),
        db.clone(),
        view.clone(),
        &config,
        tokens.is_some(),
    );
    let cookie_key = Key::derive_from(secret.expose().as_bytes());
    let limits = session::Limits {
        idle: config.session_idle,
        max: config.session_max,
    };
    let auth = Auth {
        limits,
        csrf: Csrf::new(secret.expose().as_bytes()),
        origin: origin.clone(),
        hasher: Hasher::new(config.bcrypt_cost).with_metrics(metrics.clone()),
        cookie_key: cookie_key.clone(),
        tokens,
        handle_memory: handle_memory(&config),
        view: view.clone(),
        db: db.clone(),
        sessions: sessions.clone(),
        metrics: metrics.clone(),
    };
    let state = Arc::new(AppState {
        db,
        auth,
        events,
        sessions: sessions.clone(),
        csp: web::content_security_policy(&origins),
        ws_auth_timeout: config.ws_auth_timeout,
        trusted_proxies: config.trusted_proxies.clone(),
        login_horizon: config.session_max.max(config.refresh_family_max),
        throttle: match &redis {
            Some(link) => Throttle::Redis(link.clone()),
            None => Throttle::embedded(),
        },
        redis: redis.clone(),
        message_rates: Arc::new(UserRates::new(config.user_messages, config.socket_frames)),
        pending_sockets: Arc::default(),
        room_list: Arc::default(),
        metrics: metrics.clone(),
        metrics_exposure: config.metrics,
    });

    tracing::info!(config = %config.describe(), "configuration");
    tracing::info!(
        mode = %config.auth_mode,
        sessions = sessions.name(),
        events = if config.redis_url.is_some() { "redis pub/sub" } else { "in process" },
        "stores"
    );

    let idle = actix_web::cookie::time::Duration::seconds(
        i64::try_from(config.session_idle.as_secs()).unwrap_or(i64::MAX),
    );
    let session_mode = config.auth_mode == AuthMode::Session;
    let data = aweb::Data::new(state);
    let server = HttpServer::new(move || {
        let session_mw = SessionMiddleware::builder(sessions.clone(), cookie_key.clone())
            .cookie_name(session::COOKIE_NAME.to_owned())
            .cookie_secure(true)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_path("/".to_owned())
            // Signed, not encrypted: the id is random and secret already,
            // and the socket loop reads it back to keep its session alive.
            .cookie_content_security(CookieContentSecurity::Signed)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(idle)
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
            )
            .build();
        App::new()
            .app_data(data.clone())
            .configure(web::routes)
            .wrap(Condition::new(session_mode, session_mw))
            .wrap(from_fn(web::store_failures))
            .wrap(from_fn(web::guard_bodies))
            .wrap(from_fn(web::origin_guard))
            .wrap(from_fn(web::SecurityHeaders::handle))
            .wrap(from_fn(web::count_requests))
            .wrap(from_fn(web::AccessLog::handle))
    })
    .tcp_nodelay(true)
    .shutdown_timeout(10)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let metrics_server = match config.metrics {
        MetricsExposure::Listen(at) => Some(metrics_listener(at, metrics)?),
        _ => None,
    };
    let metrics_addr = metrics_server.as_ref().map(|(a, _)| *a);
    match metrics_addr {
        Some(at) if !at.ip().is_loopback() => tracing::warn!(
            address = %at,
            "metrics served at http://{at}/metrics to anyone who can reach that address; \
             keep it on a private network or behind a firewall"
        ),
        Some(at) => tracing::info!(address = %at, "metrics served at http://{at}/metrics"),
        None if config.metrics == MetricsExposure::Off => {
            tracing::info!("metrics not served (METRICS_ADDR=off)")
        }
        None => tracing::info!(
            "metrics served at /metrics on the main listener, to loopback clients only \
             (METRICS_ADDR unset)"
        ),
    }
    let printed = origin.primary().to_owned();
    tracing::info!(address = %printed, "listening; open this address in a browser");
    Ok(RunningApp {
        addr,
        metrics_addr,
        origin: printed,
        handle,
        hub,
        task,
        metrics_server: metrics_server.map(|(_, s)| s),
    })
}

/// The listener of METRICS_ADDR: `/metrics` and nothing else, on one
/// worker, since a scraper calls it a few times a minute.
fn metrics_listener(at: SocketAddr, metrics: Metrics) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(at).with_context(|| format!("binding METRICS_ADDR {at}"))?;
    let bound = listener.local_addr()?;
    let data = aweb::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(web::metrics_only)
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok((bound, Server { handle, task }))
}

/// Token mode's state: keys, lifetimes, the deny-list store, and the local
/// revocation view filled from the stores.
async fn token_auth(
    config: &Config,
    db: &Db,
    redis: Option<&RedisLink>,
    view: Arc<RevocationView>,
    linked: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<TokenAuth> {
    let access = secret_or_file(config, &config.jwt_secret, "jwt_secret")?;
    let refresh = secret_or_file(config, &config.jwt_refresh_secret, "jwt_refresh_secret")?;
    if access.expose() == refresh.expose() {
        anyhow::bail!("JWT_SECRET and JWT_REFRESH_SECRET must differ");
    }
    let deny = match redis {
        Some(link) => DenyStore::Redis(link.clone()),
        None => DenyStore::Embedded(db.clone()),
    };
    let tokens = TokenAuth {
        tokens: Tokens::new(
            access.expose().as_bytes(),
            refresh.expose().as_bytes(),
            config.jwt_leeway,
        ),
        view,
        db: db.clone(),
        deny,
        life: Lifetimes {
            access: config.access_token,
            refresh: config.refresh_token,
            family_max: config.refresh_family_max,
            reuse_grace: config.refresh_reuse_grace,
            leeway: config.jwt_leeway,
        },
        linked,
        refuse_unlinked: config.refuse_on_redis_outage,
    };
    if config.redis_url.is_some() {
        tracing::info!(
            policy = if config.refuse_on_redis_outage { "refuse" } else { "accept" },
            "while the Redis event channel is down, tokens not revoked in this instance's view are \
             {} (REDIS_OUTAGE_POLICY)",
            if config.refuse_on_redis_outage { "refused with 503" } else { "accepted" }
        );
    }
    tokens.load_view().await.context("loading revoked tokens")?;
    spawn_token_upkeep(db.clone(), config.refresh_reuse_grace);
    Ok(tokens)
}

/// How long a revoked handle must be refused: until no credential of it
/// can be valid any more. The one source for `Auth`, the event listener
/// and the reloads.
fn handle_memory(config: &Config) -> Duration {
    match config.auth_mode {
        AuthMode::Session => config.session_max,
        AuthMode::Jwt => config.access_token + config.jwt_leeway + Duration::from_secs(1),
    }
}

/// Fills the view with the logins ended recently (on any instance), and
/// keeps forgetting what no longer matters.
async fn load_ended_logins(
    db: &Db,
    view: &Arc<RevocationView>,
    config: &Config,
) -> anyhow::Result<()> {
    let memory = i64::try_from(handle_memory(config).as_millis()).unwrap_or(i64::MAX);
    let since = crate::store::now_ms().saturating_sub(memory);
    let ended = db
        .run(move |c| store::logins::ended_since(c, since))
        .await?;
    let until = crate::store::now_ms().saturating_add(memory);
    for handle in ended {
        view.revoke_family(&handle, until);
    }
    let view = view.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            view.prune();
        }
    });
    Ok(())
}

/// Events published while this instance was not subscribed are lost to
/// it: each time the channel comes back, reload what the stores know
/// (revoked families, denied tokens, ended logins, valid-after times).
fn spawn_resync(
    mut linked: tokio::sync::watch::Receiver<bool>,
    db: Db,
    view: Arc<RevocationView>,
    config: &Config,
    token_mode: bool,
) {
    let memory = i64::try_from(handle_memory(config).as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut was = *linked.borrow_and_update();
        while linked.changed().await.is_ok() {
            let now = *linked.borrow_and_update();
            if now && !was {
                let since = crate::store::now_ms().saturating_sub(memory);
                let reloaded = db
                    .run(move |c| {
                        let ended = store::logins::ended_since(c, since)?;
                        let families = if token_mode {
                            store::refresh::revoked_since(c, since)?
                                .into_iter()
                                .map(|(f, _)| f)
                                .collect()
                        } else {
                            Vec::new()
                        };
                        Ok((ended, families))
                    })
                    .await;
                match reloaded {
                    Ok((ended, families)) => {
                        let until = crate::store::now_ms().saturating_add(memory);
                        for handle in ended.iter().chain(families.iter()) {
                            view.revoke_family(handle, until);
                        }
                        if let Err(e) = view.refresh_users(&db).await {
                            tracing::warn!(error = %e, "could not reload valid-after times");
                        }
                        tracing::info!("event channel back: revocations reloaded from the stores");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not reload revocations"),
                }
            }
            was = now;
        }
    });
}

/// Keeps the revocation view in step with events from every instance.
fn view_listener(view: Arc<RevocationView>, config: &Config) -> Listener {
    let memory = handle_memory(config);
    Arc::new(move |event: &Event| {
        let until = crate::store::now_ms()
            .saturating_add(i64::try_from(memory.as_millis()).unwrap_or(i64::MAX));
        match event {
            Event::TokenDenied { jti, expires_ms } => view.deny_jti(jti, *expires_ms),
            Event::Revoke {
                handle: Some(handle),
                ..
            } => view.revoke_family(handle, until),
            Event::ValidAfter { user_id, at, .. } => view.set_valid_after(*user_id, *at),
            _ => {}
        }
    })
}

/// Purges expired refresh tokens and deny-list rows every ten minutes.
/// (The revocation view forgets on its own schedule, in `load_ended_logins`.)
fn spawn_token_upkeep(db: Db, grace: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let keep = i64::try_from(grace.as_millis()).unwrap_or(0);
            let purged = db
                .run(move |c| {
                    let now = crate::store::now_ms();
                    Ok(store::refresh::purge(c, now, keep)? + store::revoked::purge(c, now)?)
                })
                .await;
            match purged {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "expired token rows removed"),
                Err(e) => tracing::warn!(error = %e, "could not purge expired token rows"),
            }
        }
    });
}
