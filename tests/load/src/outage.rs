//! Redis down: a steady stream of authenticated requests and a few open
//! sockets while Redis is frozen (SIGSTOP) for a while, then thawed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::accounts::{Login, Target};
use crate::fanout::Room;
use crate::http::{Conn, Request};
use crate::procs::Redis;

/// Longest wait for recovery after the thaw.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);
const POLLERS: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Outage {
    pub down_for: Duration,
    /// Answers to requests sent while Redis was down, by status (or
    /// "timeout"/"error").
    pub answers: BTreeMap<String, u64>,
    pub ok_fraction: f64,
    pub sockets: usize,
    /// Sockets closed by the server during the outage.
    pub sockets_closed: u64,
    /// A message sent on a socket during the outage: deliveries seen
    /// during the outage and by the end (out of the room's sockets).
    pub delivered_during: u64,
    pub delivered_after: u64,
    /// The longest a request sent while Redis was down waited.
    pub longest_wait: Duration,
    /// From the thaw to the first successful request sent after it.
    pub recovery: Option<Duration>,
}

struct Record {
    sent: Instant,
    took: Duration,
    outcome: String,
}

pub async fn run(
    target: &Target,
    redis: &mut Redis,
    logins: &[Login],
    room: i64,
    down_for: Duration,
) -> Result<Outage> {
    let mut sockets = Room::open(target, logins, room, 5.min(logins.len() * 2)).await?;
    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = (0..POLLERS)
        .map(|i| {
            let request = Request::get("/api/rooms", &[logins[i % logins.len()].api_header()]);
            let (records, stop, addr) = (Arc::clone(&records), Arc::clone(&stop), target.addr);
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await.ok();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sent = Instant::now();
                    let outcome = match conn.as_mut() {
                        Some(c) => match c.send(&request).await {
                            Ok(r) => r.status.to_string(),
                            Err(e) if e.to_string().contains("no response") => "timeout".into(),
                            Err(_) => "error".into(),
                        },
                        None => "error".into(),
                    };
                    if outcome == "timeout" || outcome == "error" {
                        conn = Conn::open(addr).await.ok();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Record {
                            sent,
                            took: sent.elapsed(),
                            outcome,
                        });
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen_at = Instant::now();
    redis.freeze()?;
    let result = during(&mut sockets, down_for).await;
    let thawed_at = Instant::now();
    redis.thaw()?;
    let delivered_during = result.unwrap_or(0);
    // Recovery: the first 2xx for a request sent after the thaw.
    let deadline = thawed_at + RECOVERY_LIMIT;
    let mut recovery = None;
    while Instant::now() < deadline && recovery.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let records = records.lock().unwrap_or_else(|p| p.into_inner());
        recovery = records
            .iter()
            .filter(|r| r.sent >= thawed_at && r.outcome.starts_with('2'))
            .map(|r| r.sent.duration_since(thawed_at))
            .min();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for poller in pollers {
        let _ = poller.await;
    }
    let mut answers = BTreeMap::new();
    let records = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
    let mut total = 0u64;
    let mut longest_wait = Duration::ZERO;
    // Every request that was under way at some moment of the outage, not
    // only those sent during it: a request caught waiting on the frozen
    // Redis is the one that shows what an outage does, and with few
    // pollers all of them may be caught that way.
    for r in records
        .iter()
        .filter(|r| r.sent < thawed_at && r.sent + r.took > frozen_at)
    {
        longest_wait = longest_wait.max(r.took);
        *answers.entry(r.outcome.clone()).or_insert(0) += 1;
        total += 1;
    }
    let ok = answers
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v)
        .sum::<u64>();
    let outage = Outage {
        down_for,
        ok_fraction: if total == 0 {
            0.0
        } else {
            ok as f64 / total as f64
        },
        answers,
        longest_wait,
        sockets: sockets.sockets(),
        sockets_closed: sockets.closed(),
        delivered_during,
        delivered_after: sockets.delivered(),
        recovery,
    };
    sockets.close().await;
    Ok(outage)
}

/// Waits a third of the outage, sends one message, and returns how many
/// deliveries of it arrived before the outage ends.
async fn during(sockets: &mut Room, down_for: Duration) -> Result<u64> {
    tokio::time::sleep(down_for / 3).await;
    sockets.reset();
    sockets.send_one().await?;
    tokio::time::sleep(down_for - down_for / 3).await;
    Ok(sockets.delivered())
}
