//! Fan-out: sockets joined to one room, messages posted at a fixed rate
//! by those same sockets in turn (so no one socket or user trips the
//! message rate limits), and the time from send to each delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{Login, Target};
use crate::stats::{self, Summary};
use crate::ws::{self, Socket, Via};

/// What the receivers have seen since the last reset.
struct Seen {
    hist: Histogram<u64>,
    delivered: u64,
    rate_limited: u64,
    closed: u64,
}

pub struct Room {
    /// `None` once sending on it failed: the server closed it.
    sinks: Vec<Option<SplitSink<Socket, Message>>>,
    seen: Arc<Mutex<Seen>>,
    epoch: Instant,
    room: i64,
    next: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Step {
    /// Messages per second asked for.
    pub rate: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    /// Deliveries per second over the sending time.
    pub deliveries_per_sec: f64,
    pub latency: Summary,
    pub rate_limited: u64,
    /// Sockets the server closed during the step.
    pub closed: u64,
    /// Every delivery arrived within the grace time and p99 stayed low.
    pub kept_up: bool,
}

/// The most p99 may grow to while a rate still counts as kept up.
const KEPT_UP_P99_MS: f64 = 100.0;

impl Room {
    /// Opens `sockets` sockets spread over `logins` and joins them all.
    pub async fn open(
        target: &Target,
        logins: &[Login],
        room: i64,
        sockets: usize,
    ) -> Result<Room> {
        let seen = Arc::new(Mutex::new(Seen {
            hist: stats::histogram(),
            delivered: 0,
            rate_limited: 0,
            closed: 0,
        }));
        let epoch = Instant::now();
        let mut sinks = Vec::with_capacity(sockets);
        for i in 0..sockets {
            let mut socket = ws::connect(target, &logins[i % logins.len()], Via::Cookie).await?;
            ws::join(&mut socket, room).await?;
            let (sink, mut stream) = socket.split();
            sinks.push(Some(sink));
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let now = epoch.elapsed();
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(stamp) = ws::stamp_of(&text) {
                        let sent = Duration::from_nanos(stamp);
                        stats::record(&mut seen.hist, now.saturating_sub(sent));
                        seen.delivered += 1;
                    } else if ws::is_rate_limited(&text) {
                        seen.rate_limited += 1;
                    }
                }
                seen.lock().unwrap_or_else(|p| p.into_inner()).closed += 1;
            });
        }
        Ok(Room {
            sinks,
            seen,
            epoch,
            room,
            next: 0,
        })
    }

    pub fn sockets(&self) -> usize {
        self.sinks.len()
    }

    pub fn reset(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.hist.reset();
        seen.delivered = 0;
        seen.rate_limited = 0;
    }

    /// Sends one message from the next open socket in turn. A socket the
    /// server closed (for example a slow reader whose queue filled) is
    /// skipped from then on; the deliveries it misses show in the step.
    pub async fn send_one(&mut self) -> Result<()> {
        for _ in 0..self.sinks.len() {
            let i = self.next % self.sinks.len();
            self.next += 1;
            let Some(sink) = self.sinks[i].as_mut() else {
                continue;
            };
            let stamp = u64::try_from(self.epoch.elapsed().as_nanos())?;
            if sink.send(ws::message_frame(self.room, stamp)).await.is_ok() {
                return Ok(());
            }
            self.sinks[i] = None;
        }
        Err(anyhow!("the server closed every socket of the room"))
    }

    /// Sends at `rate` messages per second for `duration`, then waits up
    /// to `grace` for the deliveries.
    pub async fn step(&mut self, rate: f64, duration: Duration, grace: Duration) -> Result<Step> {
        self.reset();
        let closed_before = self.closed();
        let open = self.sinks.iter().flatten().count();
        let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
        let period = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            // Catch up after a late wake-up instead of drifting slower.
            let due = start + period.mul_f64(sent as f64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            self.send_one().await?;
            sent += 1;
        }
        let sending = start.elapsed();
        let expected = sent * open as u64;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.delivered() >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let closed = self.closed() - closed_before;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let latency = Summary::of(&seen.hist);
        let span = sending.as_secs_f64().max(duration.as_secs_f64());
        Ok(Step {
            rate,
            sent,
            expected,
            delivered: seen.delivered,
            deliveries_per_sec: seen.delivered as f64 / span,
            latency,
            rate_limited: seen.rate_limited,
            closed,
            kept_up: seen.delivered >= expected && closed == 0 && latency.p99_ms < KEPT_UP_P99_MS,
        })
    }

    pub fn delivered(&self) -> u64 {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .delivered
    }

    /// Sockets whose stream ended (closed by the server) so far.
    pub fn closed(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    pub async fn close(mut self) {
        for sink in self.sinks.iter_mut().flatten() {
            let _ = sink.close().await;
        }
    }
}

/// A capacity ladder: each rate in turn until one is not kept up. The
/// capacity is the highest deliveries per second of a rate kept up.
pub async fn ladder(
    room: &mut Room,
    rates: &[f64],
    duration: Duration,
) -> Result<(Vec<Step>, f64)> {
    let mut steps = Vec::new();
    let mut capacity: f64 = 0.0;
    for &rate in rates {
        let step = room.step(rate, duration, Duration::from_secs(1)).await?;
        steps.push(step);
        // Lets the per-socket token buckets refill between steps.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !step.kept_up {
            break;
        }
        capacity = capacity.max(step.deliveries_per_sec);
    }
    Ok((steps, capacity))
}
