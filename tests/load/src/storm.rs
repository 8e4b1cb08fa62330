//! Login storm (issue 5): many connections posting wrong passwords for
//! real accounts as fast as answers come, while an unrelated client keeps
//! asking for `GET /api/rooms` and another user's socket keeps sending a
//! message and waiting for its own copy. The same two probes run alone
//! first, so "during" has a "before" to be read against.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{self, Login, Target};
use crate::http::{Conn, Request};
use crate::stats::{self, Summary};
use crate::ws::{self, Socket, Via};

/// A probe waiting longer than this counts as timed out: the server did
/// not stay responsive.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server's failed-login limits (src/web/limits.rs): per account and
/// address, and per address, within its window.
const PER_PAIR: usize = 5;
const PER_ADDRESS: usize = 50;
/// Storm source addresses start at 127.0.100.1, well above the ones
/// `accounts` registers users from.
const FIRST_THIRD_OCTET: usize = 100;

/// Answers to the storm's login attempts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answers {
    /// 401: the password was checked with bcrypt and refused.
    pub verified: u64,
    /// 429: refused by the failed-login throttle before any bcrypt work.
    pub throttled: u64,
    /// 503: the bcrypt pool was full.
    pub busy: u64,
    /// Any other status, a broken connection or no answer in time.
    pub errors: u64,
}

impl Answers {
    pub fn total(&self) -> u64 {
        self.verified + self.throttled + self.busy + self.errors
    }

    pub fn add(&mut self, other: &Answers) {
        self.verified += other.verified;
        self.throttled += other.throttled;
        self.busy += other.busy;
        self.errors += other.errors;
    }
}

/// One probe over one phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe {
    /// Latencies of the answers that came within `PROBE_TIMEOUT`.
    pub latency: Summary,
    pub timeouts: u64,
    /// Failures other than a timeout (wrong status, closed socket).
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Storm {
    pub connections: usize,
    pub answers: Answers,
    pub rooms_before: Probe,
    pub rooms_during: Probe,
    pub echo_before: Probe,
    pub echo_during: Probe,
}

/// Runs the baseline, then the storm, each for `duration`. `prober` makes
/// the `/api/rooms` requests, `talker` owns the echoing socket, and the
/// storm guesses passwords for `targets`.
pub async fn run(
    target: &Target,
    prober: &Login,
    talker: &Login,
    targets: &[usize],
    room: i64,
    connections: usize,
    duration: Duration,
) -> Result<Storm> {
    if targets.is_empty() {
        bail!("a login storm needs accounts to aim at");
    }
    let mut socket = ws::connect(target, talker, Via::Cookie).await?;
    ws::join(&mut socket, room).await?;
    let rooms_request = Request::get("/api/rooms", &[prober.api_header()]);
    let mut conn = Conn::open(target.addr).await?;
    let epoch = Instant::now();

    let (rooms_before, echo_before) = tokio::join!(
        rooms_probe(target, &mut conn, &rooms_request, duration),
        echo_probe(&mut socket, room, epoch, duration),
    );
    let (rooms_during, echo_during, answers) = tokio::join!(
        rooms_probe(target, &mut conn, &rooms_request, duration),
        echo_probe(&mut socket, room, epoch, duration),
        storm(target, targets, connections, duration),
    );
    let _ = socket.close(None).await;
    Ok(Storm {
        connections,
        answers: answers?,
        rooms_before,
        rooms_during,
        echo_before,
        echo_during,
    })
}

/// Sequential `GET /api/rooms` until `duration` has passed.
async fn rooms_probe(
    target: &Target,
    conn: &mut Conn,
    request: &Request,
    duration: Duration,
) -> Probe {
    let mut hist = stats::histogram();
    let mut probe = Probe::default();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let sent = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, conn.send(request)).await {
            Ok(Ok(answer)) if (200..300).contains(&answer.status) => {
                stats::record(&mut hist, sent.elapsed());
                continue;
            }
            Ok(Ok(_)) | Ok(Err(_)) => probe.errors += 1,
            Err(_) => probe.timeouts += 1,
        }
        // The connection may hold a late answer or be closed: start over.
        match Conn::open(target.addr).await {
            Ok(fresh) => *conn = fresh,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    probe.latency = Summary::of(&hist);
    probe
}

/// Sends a message and waits for the server's copy of it on the same
/// socket, one after another until `duration` has passed.
async fn echo_probe(socket: &mut Socket, room: i64, epoch: Instant, duration: Duration) -> Probe {
    let mut hist = stats::histogram();
    let mut probe = Probe::default();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let sent = Instant::now();
        let stamp = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match tokio::time::timeout(PROBE_TIMEOUT, echo(socket, room, stamp)).await {
            Ok(Ok(())) => stats::record(&mut hist, sent.elapsed()),
            Ok(Err(_)) => {
                probe.errors += 1;
                // A closed socket cannot be probed further.
                break;
            }
            Err(_) => probe.timeouts += 1,
        }
    }
    probe.latency = Summary::of(&hist);
    probe
}

async fn echo(socket: &mut Socket, room: i64, stamp: u64) -> Result<()> {
    socket.send(ws::message_frame(room, stamp)).await?;
    // Copies of earlier, timed-out messages carry older stamps: skipped.
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) if ws::stamp_of(&text) == Some(stamp) => return Ok(()),
            Message::Close(frame) => bail!("socket closed: {frame:?}"),
            _ => {}
        }
    }
    Err(anyhow!("socket ended"))
}

/// The `n`th storm source address: 127.0.100.1 onwards.
fn storm_address(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        u8::try_from(FIRST_THIRD_OCTET + n / 250).unwrap_or(u8::MAX),
        (n % 250 + 1) as u8,
    ))
}

/// `connections` connections posting wrong passwords for `duration`.
/// Each uses one source address only until the throttle would refuse it,
/// then reconnects from a fresh one, and cycles over the target accounts,
/// so that most attempts reach bcrypt instead of a cheap 429.
async fn storm(
    target: &Target,
    targets: &[usize],
    connections: usize,
    duration: Duration,
) -> Result<Answers> {
    let next_address = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<Vec<Request>> = Arc::new(
        targets
            .iter()
            .map(|&user| {
                let body = serde_json::json!({
                    "email": accounts::email(user),
                    "password": "not the password",
                })
                .to_string();
                Request::new(
                    "POST",
                    "/login",
                    &["Content-Type: application/json".into()],
                    body.as_bytes(),
                )
            })
            .collect(),
    );
    // Attempts one address may make before its counters are full.
    let per_address = (PER_PAIR * targets.len()).min(PER_ADDRESS);
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (next_address, bodies, addr) =
                (Arc::clone(&next_address), Arc::clone(&bodies), target.addr);
            tokio::spawn(async move {
                let mut answers = Answers::default();
                let mut account = i;
                'addresses: while Instant::now() < end {
                    let source = storm_address(next_address.fetch_add(1, Ordering::Relaxed));
                    let Ok(mut conn) = Conn::open_from(addr, Some(source)).await else {
                        answers.errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let mut counted = 0;
                    while counted < per_address && Instant::now() < end {
                        let request = &bodies[account % bodies.len()];
                        account += 1;
                        match conn.send(request).await.map(|r| r.status) {
                            Ok(401) => {
                                answers.verified += 1;
                                counted += 1;
                            }
                            Ok(429) => {
                                answers.throttled += 1;
                                continue 'addresses;
                            }
                            Ok(503) => answers.busy += 1,
                            Ok(_) | Err(_) => {
                                answers.errors += 1;
                                continue 'addresses;
                            }
                        }
                    }
                }
                answers
            })
        })
        .collect();
    let mut answers = Answers::default();
    for task in tasks {
        answers.add(&task.await?);
    }
    Ok(answers)
}
