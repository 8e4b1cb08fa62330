//! The load tool: starts the chat server in session and jwt mode against
//! a Redis it provisions, alternates the modes over a few rounds so that
//! machine drift cancels, measures each, and writes a markdown report and
//! an SVG chart. Everything stays on 127.0.0.1 and unix sockets.

pub mod accounts;
pub mod fanout;
pub mod http;
pub mod machine;
pub mod outage;
pub mod procs;
pub mod report;
pub mod requests;
pub mod revocation;
pub mod round;
pub mod stats;
pub mod storm;
pub mod ws;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

pub use round::{ModeRound, Summary};

/// The two authentication strategies, as `AUTH_MODE` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Session,
    Jwt,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Session => "session",
            Mode::Jwt => "jwt",
        }
    }
}

/// What to measure and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server binary; built with cargo when not given.
    pub server: Option<PathBuf>,
    pub rounds: usize,
    /// Measured time of each request-rate and upgrade-rate run.
    pub duration: Duration,
    pub connections: usize,
    pub upgrade_clients: usize,
    pub fanout_sockets: usize,
    /// Users the fan-out sockets are spread over.
    pub fanout_users: usize,
    /// Messages per second of the fixed-rate fan-out run.
    pub fanout_rate: f64,
    /// Message rates of the capacity ladder.
    pub ladder: Vec<f64>,
    /// Time of each fan-out run and ladder step.
    pub step: Duration,
    /// Requests, upgrades and messages counted for Redis commands.
    pub redis_batch: usize,
    pub revocation_trials: usize,
    pub outage: Duration,
    /// Time of the login storm, and of the baseline before it.
    pub storm: Duration,
    /// Connections posting wrong passwords at once.
    pub storm_connections: usize,
    pub out_dir: PathBuf,
    /// The command line, as the report shows it.
    pub command: String,
    pub note: Option<String>,
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: None,
            rounds: 3,
            duration: Duration::from_secs(3),
            connections: 64,
            upgrade_clients: 8,
            fanout_sockets: 100,
            fanout_users: 20,
            fanout_rate: 1000.0,
            ladder: vec![500.0, 1000.0, 1500.0, 2000.0, 3000.0],
            step: Duration::from_secs(2),
            redis_batch: 200,
            revocation_trials: 20,
            outage: Duration::from_secs(3),
            storm: Duration::from_secs(1),
            storm_connections: 32,
            out_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/report")),
            command: "cargo run --release -p chat-load".to_owned(),
            note: None,
            log_level: "warn".to_owned(),
        }
    }
}

impl Settings {
    /// A run of a few seconds in all, for the test that keeps the tool
    /// working; its figures mean nothing.
    pub fn tiny() -> Settings {
        Settings {
            rounds: 1,
            duration: Duration::from_millis(150),
            connections: 16,
            upgrade_clients: 4,
            fanout_sockets: 20,
            fanout_users: 4,
            fanout_rate: 100.0,
            ladder: vec![100.0],
            step: Duration::from_millis(200),
            redis_batch: 20,
            revocation_trials: 3,
            outage: Duration::from_millis(600),
            storm: Duration::from_millis(300),
            storm_connections: 8,
            ..Settings::default()
        }
    }
}

/// What a whole run produced: every round of every mode, and where the
/// report went.
pub struct Outcome {
    pub rounds: Vec<ModeRound>,
    pub summaries: Vec<Summary>,
    pub markdown: PathBuf,
    pub svg: PathBuf,
}

/// Runs every round and writes the report.
pub async fn run(settings: &Settings) -> Result<Outcome> {
    procs::ensure_redis()?;
    let binary = match &settings.server {
        Some(path) => path.clone(),
        None => procs::build_server()?,
    };
    let machine = machine::Machine::probe();
    let started = std::time::SystemTime::now();
    let mut rounds = Vec::new();
    for round in 0..settings.rounds {
        // Alternating the order too keeps a trend from favouring one mode.
        let order = if round % 2 == 0 {
            [Mode::Session, Mode::Jwt]
        } else {
            [Mode::Jwt, Mode::Session]
        };
        for mode in order {
            eprintln!(
                "chat-load: round {} of {}, {} mode",
                round + 1,
                settings.rounds,
                mode.name()
            );
            rounds.push(round::measure(&binary, mode, settings, round).await?);
        }
    }
    let summaries = [Mode::Session, Mode::Jwt]
        .into_iter()
        .map(|mode| round::summarize(mode, &rounds))
        .collect::<Vec<_>>();
    let (markdown, svg) = report::write(settings, &machine, started, &rounds, &summaries)?;
    Ok(Outcome {
        rounds,
        summaries,
        markdown,
        svg,
    })
}
