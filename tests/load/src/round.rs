//! One mode's measurements in one round, against a fresh Redis and a
//! fresh server, and the per-mode summary over the rounds.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::accounts::{self, Login, Target};
use crate::fanout::{self, Room, Step};
use crate::http::Request;
use crate::outage::{self, Outage};
use crate::procs::{Redis, Server};
use crate::requests::{self, Throughput, Upgrades};
use crate::revocation::{self, Revocation, Samples};
use crate::stats::median;
use crate::storm::{self, Answers, Storm};
use crate::ws::Via;
use crate::{Mode, Settings};

/// Bytes a credential puts on the wire.
#[derive(Debug, Clone, Default)]
pub struct Bytes {
    /// The `Cookie` header line of a request (or upgrade) in this mode.
    pub cookie_header: usize,
    /// The `Authorization: Bearer` header line (jwt mode).
    pub bearer_header: Option<usize>,
    /// The `authenticate` frame's payload (jwt mode).
    pub authenticate_frame: Option<usize>,
    /// `Set-Cookie` header lines of the login response.
    pub login_set_cookie: usize,
    /// Token values in the login response's JSON body.
    pub login_body_tokens: usize,
}

/// Redis commands per operation, with the commands that make them up.
#[derive(Debug, Clone, Default)]
pub struct RedisCost {
    pub per_request: f64,
    pub per_floor_request: f64,
    pub per_upgrade: f64,
    pub per_message: f64,
    pub request_commands: String,
    pub message_commands: String,
}

pub struct ModeRound {
    pub mode: Mode,
    pub round: usize,
    pub floor: Throughput,
    pub auth: Throughput,
    pub upgrades: Vec<(Via, Upgrades)>,
    pub fanout: Step,
    pub ladder: Vec<Step>,
    pub capacity: f64,
    pub bytes: Bytes,
    pub redis: RedisCost,
    pub revocation: Revocation,
    pub outage: Outage,
    pub storm: Storm,
}

pub fn vias(mode: Mode) -> &'static [Via] {
    match mode {
        Mode::Session => &[Via::Cookie],
        Mode::Jwt => &[Via::Cookie, Via::Bearer, Via::FirstMessage],
    }
}

fn secret() -> Result<String> {
    let mut raw = [0u8; 48];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// bcrypt cost of every measured server's accounts.
pub const BCRYPT_COST: u32 = 10;

/// Frame and message limits for the measured servers (`<burst>/<per second>`).
pub const RAISED_RATE: &str = "100000/100000";

pub async fn measure(
    binary: &Path,
    mode: Mode,
    settings: &Settings,
    round: usize,
) -> Result<ModeRound> {
    let mut redis = Redis::start()?;
    let env = vec![
        ("AUTH_MODE", mode.name().to_owned()),
        ("REDIS_URL", redis.url()),
        ("SESSION_SECRET", secret()?),
        ("JWT_SECRET", secret()?),
        ("JWT_REFRESH_SECRET", secret()?),
        // Verification costs what the stored hash says, so the login storm
        // only means something against a realistic cost; 10 still keeps
        // account setup quick.
        ("BCRYPT_COST", BCRYPT_COST.to_string()),
        ("LOG_LEVEL", settings.log_level.clone()),
        // The fan-out sends far more per user and per socket than a person
        // types; the limits stay on, but high enough that what is measured
        // is delivery, not the limiter. Refusals would still be counted.
        ("SOCKET_FRAME_RATE", RAISED_RATE.to_owned()),
        ("USER_MESSAGE_RATE", RAISED_RATE.to_owned()),
    ];
    let server = Server::start(binary, &env)?;
    let target = Target {
        addr: server.addr,
        mode,
    };
    let result = measure_on(&target, &mut redis, settings, round).await;
    if result.is_err() {
        // The data folder goes with the server; keep its log for the reader.
        let kept = std::env::temp_dir().join(format!("chat-load-{}-failed.log", mode.name()));
        let _ = std::fs::copy(&server.log, &kept);
        return result.with_context(|| {
            format!(
                "{} mode; server log kept at {}",
                mode.name(),
                kept.display()
            )
        });
    }
    result
}

async fn measure_on(
    target: &Target,
    redis: &mut Redis,
    settings: &Settings,
    round: usize,
) -> Result<ModeRound> {
    let users = settings.fanout_users.max(settings.upgrade_clients).max(3);
    let mut logins: Vec<Login> = Vec::with_capacity(users);
    for user in 0..users {
        accounts::register(target, user).await?;
        logins.push(accounts::login(target, user).await?);
    }
    let room = accounts::create_room(target, &logins[0], "bench").await?;
    let bytes = bytes_of(target.mode, &logins[0]);

    let floor_request = Request::get("/healthz", &[]);
    let auth_request = Request::get("/api/rooms", &[logins[0].api_header()]);
    let floor = requests::throughput(
        target.addr,
        &floor_request,
        settings.connections,
        settings.duration,
    )
    .await?;
    let auth = requests::throughput(
        target.addr,
        &auth_request,
        settings.connections,
        settings.duration,
    )
    .await?;

    let mut upgrades = Vec::new();
    for &via in vias(target.mode) {
        let rate = requests::upgrades(
            target,
            &logins,
            via,
            settings.upgrade_clients,
            settings.duration,
        )
        .await?;
        upgrades.push((via, rate));
    }

    let redis_cost = redis_cost(target, redis, &logins, room, settings.redis_batch).await?;

    let fanout_logins = &logins[..settings.fanout_users.min(logins.len())];
    let mut room_sockets = Room::open(target, fanout_logins, room, settings.fanout_sockets).await?;
    let fanout = room_sockets
        .step(settings.fanout_rate, settings.step, Duration::from_secs(2))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ladder, capacity) =
        fanout::ladder(&mut room_sockets, &settings.ladder, settings.step).await?;
    room_sockets.close().await;

    let mut samples = Samples::new();
    revocation::trials(target, users, settings.revocation_trials, &mut samples).await?;

    let outage = outage::run(target, redis, &logins[..2], room, settings.outage).await?;

    // Last, so that the failures it piles up touch no other measurement.
    // Users 0 and 1 probe; the others are the storm's targets.
    let storm_targets: Vec<usize> = (2..users).collect();
    let storm = storm::run(
        target,
        &logins[0],
        &logins[1],
        &storm_targets,
        room,
        settings.storm_connections,
        settings.storm,
    )
    .await?;

    Ok(ModeRound {
        mode: target.mode,
        round,
        floor,
        auth,
        upgrades,
        fanout,
        ladder,
        capacity,
        bytes,
        redis: redis_cost,
        revocation: samples.summary(),
        outage,
        storm,
    })
}

fn bytes_of(mode: Mode, login: &Login) -> Bytes {
    let line = |header: String| header.len() + 2;
    Bytes {
        cookie_header: line(login.cookie_header()),
        bearer_header: login.bearer_header().map(line),
        authenticate_frame: (mode == Mode::Jwt).then(|| {
            let token = login.access.as_deref().unwrap_or_default();
            serde_json::json!({ "type": "authenticate", "token": token })
                .to_string()
                .len()
        }),
        login_set_cookie: login.set_cookie_bytes,
        login_body_tokens: login.body_token_bytes,
    }
}

/// Total calls and the busiest commands, per operation.
fn per_op(calls: &[(String, u64)], ops: u64) -> (f64, String) {
    let ops = ops.max(1) as f64;
    let total: u64 = calls.iter().map(|(_, n)| n).sum();
    let mut sorted: Vec<_> = calls.iter().filter(|(_, n)| *n > 0).collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.1));
    let parts: Vec<String> = sorted
        .iter()
        .take(4)
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / ops))
        .collect();
    (total as f64 / ops, parts.join(", "))
}

async fn redis_cost(
    target: &Target,
    redis: &Redis,
    logins: &[Login],
    room: i64,
    batch: usize,
) -> Result<RedisCost> {
    let auth_request = Request::get("/api/rooms", &[logins[0].api_header()]);
    redis.reset_stats()?;
    let ok = requests::sequential(target.addr, &auth_request, batch).await?;
    let (per_request, request_commands) = per_op(&redis.command_calls()?, ok);

    redis.reset_stats()?;
    let ok = requests::sequential(target.addr, &Request::get("/healthz", &[]), batch).await?;
    let (per_floor_request, _) = per_op(&redis.command_calls()?, ok);

    let upgrades = (batch / 10).max(3);
    redis.reset_stats()?;
    let ok = requests::sequential_upgrades(target, &logins[1], Via::Cookie, upgrades).await?;
    let (per_upgrade, _) = per_op(&redis.command_calls()?, ok);

    // One socket, a burst within its rate limit, every copy waited for.
    let messages = (batch / 10).clamp(3, 25);
    let mut one = Room::open(target, &logins[1..2], room, 1).await?;
    redis.reset_stats()?;
    let step = one
        .step(
            messages as f64 * 5.0,
            Duration::from_millis(200),
            Duration::from_secs(3),
        )
        .await?;
    let (per_message, message_commands) = per_op(&redis.command_calls()?, step.delivered);
    one.close().await;
    Ok(RedisCost {
        per_request,
        per_floor_request,
        per_upgrade,
        per_message,
        request_commands,
        message_commands,
    })
}

/// One mode over all rounds: medians of the per-round figures, counts
/// summed.
pub struct Summary {
    pub mode: Mode,
    pub rounds: usize,
    pub floor_per_sec: f64,
    pub auth_per_sec: f64,
    pub ratio: f64,
    pub floor_p50: f64,
    pub floor_p99: f64,
    pub auth_p50: f64,
    pub auth_p99: f64,
    pub upgrades: Vec<(Via, f64, f64, f64)>,
    pub fanout_rate: f64,
    pub fanout_p50: f64,
    pub fanout_p99: f64,
    pub fanout_delivered: u64,
    pub fanout_expected: u64,
    pub rate_limited: u64,
    /// Fan-out sockets the server closed (slow readers), all rounds.
    pub fanout_closed: u64,
    pub capacity: f64,
    pub redis: RedisCost,
    pub revocation_trials: u64,
    pub revocation_failed: u64,
    pub close_p50: f64,
    pub close_p99: f64,
    pub refused_p50: f64,
    pub refused_p99: f64,
    pub close_reasons: Vec<String>,
    /// Login storm answers, all rounds.
    pub storm_answers: Answers,
    /// `/api/rooms` and socket echo p50/p99 before and during the storm.
    pub rooms_before: (f64, f64),
    pub rooms_during: (f64, f64),
    pub echo_before: (f64, f64),
    pub echo_during: (f64, f64),
    /// Probes that waited longer than `storm::PROBE_TIMEOUT`, before and
    /// during, all rounds.
    pub probe_timeouts: (u64, u64),
    /// Probes that failed otherwise, before and during, all rounds.
    pub probe_errors: (u64, u64),
}

pub fn summarize(mode: Mode, rounds: &[ModeRound]) -> Summary {
    let mine: Vec<&ModeRound> = rounds.iter().filter(|r| r.mode == mode).collect();
    let med = |f: &dyn Fn(&ModeRound) -> f64| median(mine.iter().map(|r| f(r)));
    let upgrades = vias(mode)
        .iter()
        .map(|&via| {
            let of = |f: &dyn Fn(&Upgrades) -> f64| {
                median(mine.iter().flat_map(|r| {
                    r.upgrades
                        .iter()
                        .filter(|(v, _)| *v == via)
                        .map(|(_, u)| f(u))
                }))
            };
            (
                via,
                of(&|u| u.per_sec),
                of(&|u| u.latency.p50_ms),
                of(&|u| u.latency.p99_ms),
            )
        })
        .collect();
    let mut reasons: Vec<String> = Vec::new();
    for r in &mine {
        for reason in &r.revocation.close_reasons {
            if !reasons.contains(reason) {
                reasons.push(reason.clone());
            }
        }
    }
    let redis = RedisCost {
        per_request: med(&|r| r.redis.per_request),
        per_floor_request: med(&|r| r.redis.per_floor_request),
        per_upgrade: med(&|r| r.redis.per_upgrade),
        per_message: med(&|r| r.redis.per_message),
        request_commands: mine
            .last()
            .map(|r| r.redis.request_commands.clone())
            .unwrap_or_default(),
        message_commands: mine
            .last()
            .map(|r| r.redis.message_commands.clone())
            .unwrap_or_default(),
    };
    Summary {
        mode,
        rounds: mine.len(),
        floor_per_sec: med(&|r| r.floor.per_sec),
        auth_per_sec: med(&|r| r.auth.per_sec),
        ratio: med(&|r| r.auth.per_sec / r.floor.per_sec.max(1.0)),
        floor_p50: med(&|r| r.floor.latency.p50_ms),
        floor_p99: med(&|r| r.floor.latency.p99_ms),
        auth_p50: med(&|r| r.auth.latency.p50_ms),
        auth_p99: med(&|r| r.auth.latency.p99_ms),
        upgrades,
        fanout_rate: med(&|r| r.fanout.deliveries_per_sec),
        fanout_p50: med(&|r| r.fanout.latency.p50_ms),
        fanout_p99: med(&|r| r.fanout.latency.p99_ms),
        fanout_delivered: mine.iter().map(|r| r.fanout.delivered).sum(),
        fanout_expected: mine.iter().map(|r| r.fanout.expected).sum(),
        rate_limited: mine
            .iter()
            .map(|r| r.fanout.rate_limited + r.ladder.iter().map(|s| s.rate_limited).sum::<u64>())
            .sum(),
        fanout_closed: mine
            .iter()
            .map(|r| r.fanout.closed + r.ladder.iter().map(|s| s.closed).sum::<u64>())
            .sum(),
        capacity: med(&|r| r.capacity),
        redis,
        revocation_trials: mine.iter().map(|r| r.revocation.trials).sum(),
        revocation_failed: mine.iter().map(|r| r.revocation.failed).sum(),
        close_p50: med(&|r| r.revocation.socket_closed.p50_ms),
        close_p99: med(&|r| r.revocation.socket_closed.p99_ms),
        refused_p50: med(&|r| r.revocation.request_refused.p50_ms),
        refused_p99: med(&|r| r.revocation.request_refused.p99_ms),
        close_reasons: reasons,
        storm_answers: mine.iter().fold(Answers::default(), |mut sum, r| {
            sum.add(&r.storm.answers);
            sum
        }),
        rooms_before: (
            med(&|r| r.storm.rooms_before.latency.p50_ms),
            med(&|r| r.storm.rooms_before.latency.p99_ms),
        ),
        rooms_during: (
            med(&|r| r.storm.rooms_during.latency.p50_ms),
            med(&|r| r.storm.rooms_during.latency.p99_ms),
        ),
        echo_before: (
            med(&|r| r.storm.echo_before.latency.p50_ms),
            med(&|r| r.storm.echo_before.latency.p99_ms),
        ),
        echo_during: (
            med(&|r| r.storm.echo_during.latency.p50_ms),
            med(&|r| r.storm.echo_during.latency.p99_ms),
        ),
        probe_timeouts: (
            mine.iter()
                .map(|r| r.storm.rooms_before.timeouts + r.storm.echo_before.timeouts)
                .sum(),
            mine.iter()
                .map(|r| r.storm.rooms_during.timeouts + r.storm.echo_during.timeouts)
                .sum(),
        ),
        probe_errors: (
            mine.iter()
                .map(|r| r.storm.rooms_before.errors + r.storm.echo_before.errors)
                .sum(),
            mine.iter()
                .map(|r| r.storm.rooms_during.errors + r.storm.echo_during.errors)
                .sum(),
        ),
    }
}
