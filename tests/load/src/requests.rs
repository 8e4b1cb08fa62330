//! Closed-loop load: many keep-alive connections each sending one request
//! after another for a fixed time; and WebSocket upgrades per second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;

use crate::accounts::{Login, Target};
use crate::http::{Conn, Request};
use crate::stats::{self, Summary};
use crate::ws::{self, Via};

#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub ok: u64,
    pub failed: u64,
    pub per_sec: f64,
    pub latency: Summary,
}

/// What each load task hands back: its latencies, successes and failures.
type TaskResult = (Histogram<u64>, u64, u64);

/// Adds up the tasks of one run of `duration`.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<TaskResult>>,
    duration: Duration,
) -> Result<Throughput> {
    let mut hist = stats::histogram();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (h, o, f) = task.await?;
        hist.add(&h)?;
        ok += o;
        failed += f;
    }
    Ok(Throughput {
        ok,
        failed,
        per_sec: ok as f64 / duration.as_secs_f64(),
        latency: Summary::of(&hist),
    })
}

/// Sends `request` over `connections` connections for `duration` after a
/// warm-up, and counts 2xx answers.
pub async fn throughput(
    addr: SocketAddr,
    request: &Request,
    connections: usize,
    duration: Duration,
) -> Result<Throughput> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::open(addr).await?);
    }
    let warmup = (duration / 5).min(Duration::from_millis(500));
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut hist = stats::histogram();
                let (mut ok, mut failed) = (0u64, 0u64);
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let answer = conn.send(&request).await;
                    if sent < start {
                        continue;
                    }
                    match answer {
                        Ok(r) if (200..300).contains(&r.status) => {
                            ok += 1;
                            stats::record(&mut hist, sent.elapsed());
                        }
                        Ok(_) => failed += 1,
                        Err(_) => {
                            failed += 1;
                            match Conn::open(addr).await {
                                Ok(fresh) => conn = fresh,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (hist, ok, failed)
            })
        })
        .collect();
    gather(tasks, duration).await
}

/// Upgrades per second are counted like requests.
pub type Upgrades = Throughput;

/// Opens, authenticates and closes sockets from `concurrency` clients for
/// `duration`; each client uses its own login.
pub async fn upgrades(
    target: &Target,
    logins: &[Login],
    via: Via,
    concurrency: usize,
    duration: Duration,
) -> Result<Upgrades> {
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let target = target.clone();
            let login = logins[i % logins.len()].clone();
            tokio::spawn(async move {
                let mut hist: Histogram<u64> = stats::histogram();
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < end {
                    let started = Instant::now();
                    match ws::connect(&target, &login, via).await {
                        Ok(mut socket) => {
                            stats::record(&mut hist, started.elapsed());
                            ok += 1;
                            let _ = socket.close(None).await;
                        }
                        Err(_) => {
                            failed += 1;
                            // Back off a little rather than spin on a refusal.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                (hist, ok, failed)
            })
        })
        .collect();
    gather(tasks, duration).await
}

/// Requests and the time they took, one at a time: for Redis command
/// counts, where concurrency does not matter.
pub async fn sequential(addr: SocketAddr, request: &Request, count: usize) -> Result<u64> {
    let mut conn = Conn::open(addr).await?;
    let mut ok = 0;
    for _ in 0..count {
        if (200..300).contains(&conn.send(request).await?.status) {
            ok += 1;
        }
    }
    Ok(ok)
}

/// Socket upgrades one at a time, for Redis command counts.
pub async fn sequential_upgrades(
    target: &Target,
    login: &Login,
    via: Via,
    count: usize,
) -> Result<u64> {
    let mut ok = 0;
    for _ in 0..count {
        let mut socket = ws::connect(target, login, via).await?;
        let _ = socket.close(None).await;
        ok += 1;
    }
    Ok(ok)
}
