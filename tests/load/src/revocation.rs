//! Revocation latency: a fresh login with an open socket and a client
//! polling with the same credential; then logout, timed from its send to
//! the socket's close and to the first refused poll.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{self, Target};
use crate::http::{Conn, Request};
use crate::stats::{self, Summary};
use crate::ws::{self, Via};

/// Longest a trial waits for either effect before it counts as failed.
const TRIAL_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct Revocation {
    pub trials: u64,
    pub failed: u64,
    pub socket_closed: Summary,
    pub request_refused: Summary,
    /// Close reasons seen, e.g. "1008 Logged out".
    pub close_reasons: Vec<String>,
}

pub struct Samples {
    pub closed: Histogram<u64>,
    pub refused: Histogram<u64>,
    pub failed: u64,
    pub reasons: Vec<String>,
}

impl Samples {
    pub fn new() -> Samples {
        Samples {
            closed: stats::histogram(),
            refused: stats::histogram(),
            failed: 0,
            reasons: Vec::new(),
        }
    }

    pub fn summary(&self) -> Revocation {
        Revocation {
            trials: self.closed.len().min(self.refused.len()) + self.failed,
            failed: self.failed,
            socket_closed: Summary::of(&self.closed),
            request_refused: Summary::of(&self.refused),
            close_reasons: self.reasons.clone(),
        }
    }
}

impl Default for Samples {
    fn default() -> Self {
        Samples::new()
    }
}

pub async fn trials(
    target: &Target,
    users: usize,
    count: usize,
    samples: &mut Samples,
) -> Result<()> {
    for trial in 0..count {
        if let Err(e) = trial_once(target, trial % users, samples).await {
            samples.failed += 1;
            eprintln!("chat-load: revocation trial failed: {e:#}");
        }
    }
    Ok(())
}

async fn trial_once(target: &Target, user: usize, samples: &mut Samples) -> Result<()> {
    let login = accounts::login(target, user).await?;
    let mut socket = ws::connect(target, &login, Via::Cookie).await?;
    let mut logout_conn = Conn::open(target.addr).await?;
    let logout = accounts::logout_request(target, &mut logout_conn, &login).await?;
    let mut poll_conn = Conn::open(target.addr).await?;
    let poll = Request::get("/api/rooms", &[login.api_header()]);
    if poll_conn.send(&poll).await?.status != 200 {
        bail!("the fresh login was not accepted");
    }
    let t0 = Instant::now();
    let logout_done = async {
        let answer = logout_conn.send(&logout).await?;
        if !matches!(answer.status, 204 | 303) {
            bail!("logout answered {}", answer.status);
        }
        Ok(())
    };
    let closed = async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                let reason = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_else(|| "no close frame".to_owned());
                return Some((t0.elapsed(), reason));
            }
            if message.is_err() {
                return Some((t0.elapsed(), "connection error".to_owned()));
            }
        }
        Some((t0.elapsed(), "ended without close".to_owned()))
    };
    let refused = async {
        loop {
            match poll_conn.send(&poll).await {
                Ok(r) if r.status == 401 => return Some(t0.elapsed()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    let limit = async {
        tokio::time::sleep(TRIAL_LIMIT).await;
    };
    let both = async { tokio::join!(logout_done, closed, refused) };
    tokio::select! {
        (done, closed, refused) = both => {
            done?;
            let (Some((closed, reason)), Some(refused)) = (closed, refused) else {
                bail!("the old credential was never refused");
            };
            stats::record(&mut samples.closed, closed);
            stats::record(&mut samples.refused, refused);
            if !samples.reasons.contains(&reason) {
                samples.reasons.push(reason);
            }
            Ok(())
        }
        _ = limit => bail!("no close or refusal within {TRIAL_LIMIT:?}"),
    }
}
