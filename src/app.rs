//! Building and starting the whole app from a configuration: what `main`
//! runs and what the integration tests start on a free port.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web as aweb, App, HttpServer};
use anyhow::Context;

use crate::auth::{csrf::Csrf, origin::OriginPolicy, password::Hasher, session, Auth};
use crate::chat::{CloseKind, Events, Hub};
use crate::config::{secret, Config, Secret};
use crate::store::kv::{DbSessionStore, SessionBackend, TimedRedisStore};
use crate::store::Db;
use crate::web::{self, AppState};

/// A started server.
pub struct RunningApp {
    pub addr: SocketAddr,
    origin: String,
    handle: ServerHandle,
    hub: Arc<Hub>,
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

/// The session secret: configured, or generated once into the data folder.
fn session_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(s) = &config.session_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("session_secret");
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

async fn session_backend(config: &Config, db: &Db) -> anyhow::Result<SessionBackend> {
    match (&config.redis_url, config.redis_url_for_logs()) {
        (Some(url), Some(shown)) => {
            let store = TimedRedisStore::connect(url).await.with_context(|| {
                format!("cannot reach Redis at {shown}; it holds the sessions (REDIS_URL)")
            })?;
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
    let secret = session_secret(&config)?;
    let path = config.sqlite_path.clone();
    let db = tokio::task::spawn_blocking(move || Db::open_sqlite(&path))
        .await?
        .with_context(|| format!("opening the database {}", config.sqlite_path.display()))?;
    let sessions = session_backend(&config, &db).await?;

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
    let cookie_key = Key::derive_from(secret.expose().as_bytes());
    let limits = session::Limits {
        idle: config.session_idle,
        max: config.session_max,
    };
    let auth = Auth {
        mode: config.auth_mode,
        limits,
        csrf: Csrf::new(secret.expose().as_bytes()),
        origin: origin.clone(),
        hasher: Hasher::new(config.bcrypt_cost),
        cookie_key: cookie_key.clone(),
    };
    let hub = Arc::new(Hub::default());
    let state = Arc::new(AppState {
        db,
        auth,
        events: Events::in_process(hub.clone()),
        sessions: sessions.clone(),
        csp: web::content_security_policy(&origins),
    });

    tracing::info!(config = %config.describe(), "configuration");
    tracing::info!(store = sessions.name(), "session store");

    let idle = actix_web::cookie::time::Duration::seconds(
        i64::try_from(config.session_idle.as_secs()).unwrap_or(i64::MAX),
    );
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
            .wrap(session_mw)
            .wrap(from_fn(web::store_failures))
            .wrap(from_fn(web::origin_guard))
            .wrap(from_fn(web::SecurityHeaders::handle))
            .wrap(from_fn(web::AccessLog::handle))
    })
    .tcp_nodelay(true)
    .shutdown_timeout(10)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let printed = origin.primary().to_owned();
    tracing::info!(address = %printed, "listening; open this address in a browser");
    Ok(RunningApp {
        addr,
        origin: printed,
        handle,
        hub,
        task,
    })
}
