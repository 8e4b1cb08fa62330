//! The `chat` command: serve (the default), migrate, gen-secret.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat",
    version,
    about = "A server-rendered chat with cookie-session or JWT authentication",
    after_help = settings_help()
)]
struct Cli {
    /// TOML file of settings (keys are the names below in lower case);
    /// default: config.toml when it exists. The environment overrides it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): migrate the database, then listen on
    /// BIND_ADDR and print the address to open.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a fresh 64-byte random secret, base64url-encoded, for
    /// SESSION_SECRET, JWT_SECRET or JWT_REFRESH_SECRET.
    GenSecret,
}

fn settings_help() -> String {
    let mut out = String::from("Settings (environment names; defaults in brackets):\n");
    for key in chat::config::KEYS {
        out.push_str(&format!(
            "  {:<26} {} [{}]\n",
            key.name, key.meaning, key.default
        ));
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::GenSecret) = cli.command {
        println!("{}", chat::config::secret::generate());
        return ExitCode::SUCCESS;
    }
    let config = match chat::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    chat::telemetry::init(&config.log_level);
    let result = match cli.command {
        Some(Command::Migrate) => migrate(&config),
        _ => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: &chat::Config) -> anyhow::Result<()> {
    let db = chat::store::Db::open_sqlite(&config.sqlite_path)?;
    // Opening already ran what was pending; a second pass reports zero.
    let pending = db.migrate_blocking()?;
    println!(
        "database {} is up to date ({pending} pending)",
        config.sqlite_path.display()
    );
    Ok(())
}

fn serve(config: chat::Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = chat::start(config).await?;
        println!("Chat is running at {}", app.origin());
        app.serve_until_signal().await
    })
}
