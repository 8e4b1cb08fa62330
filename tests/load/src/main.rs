//! `cargo run --release -p chat-load`: measures both modes and writes
//! tests/load/report/latest.md and latest.svg.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_load::Settings;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "chat-load",
    about = "Measures the chat server in session and jwt mode and writes a report"
)]
struct Cli {
    /// The server binary to run; default: build it with `cargo build --release --bin chat`.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Rounds of {session, jwt}.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds of each request-rate and upgrade-rate run.
    #[arg(long)]
    duration: Option<f64>,
    /// A run of a few seconds whose figures mean nothing: checks the tool works.
    #[arg(long)]
    tiny: bool,
    /// Folder for latest.md and latest.svg; default: tests/load/report.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A line for the report, e.g. what else ran on the machine.
    #[arg(long)]
    note: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = if cli.tiny {
        Settings::tiny()
    } else {
        Settings::default()
    };
    if let Some(server) = cli.server {
        settings.server = Some(server);
    }
    if let Some(rounds) = cli.rounds {
        settings.rounds = rounds.max(1);
    }
    if let Some(secs) = cli.duration {
        settings.duration = Duration::from_secs_f64(secs.max(0.05));
    }
    if let Some(out) = cli.out {
        settings.out_dir = out;
    }
    settings.note = cli.note;
    // Quoted as a shell would need them, so the report's command can be
    // pasted back.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.contains(|c: char| c.is_whitespace() || "'\"$;&|()<>".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect();
    settings.command = if args.is_empty() {
        "cargo run --release -p chat-load".to_owned()
    } else {
        format!("cargo run --release -p chat-load -- {}", args.join(" "))
    };
    // One thread for the client, so the server gets the rest of the machine.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = chat_load::run(&settings) => Some(outcome),
            // Dropping the run drops its guards, which stop every child.
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(outcome)) => {
            println!(
                "report: {}\nchart:  {}",
                outcome.markdown.display(),
                outcome.svg.display()
            );
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            eprintln!("chat-load: {e:#}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("chat-load: interrupted; servers and Redis stopped");
            ExitCode::from(130)
        }
    }
}
