//! The report: a markdown file of tables and an SVG chart, side by side.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::machine::Machine;
use crate::round::{ModeRound, Summary};
use crate::{Mode, Settings};

/// Issue 4's targets: authenticated/unauthenticated throughput.
const RATIO_TARGET_SESSION: f64 = 0.5;
const RATIO_TARGET_JWT: f64 = 0.6;
/// A ratio within this fraction below the target still counts as met (the
/// targets are "about").
const RATIO_SLACK: f64 = 0.9;
const FANOUT_P99_TARGET_MS: f64 = 2.0;

pub fn write(
    settings: &Settings,
    machine: &Machine,
    started: SystemTime,
    rounds: &[ModeRound],
    summaries: &[Summary],
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&settings.out_dir)
        .with_context(|| format!("creating {}", settings.out_dir.display()))?;
    let markdown = settings.out_dir.join("latest.md");
    let svg = settings.out_dir.join("latest.svg");
    std::fs::write(
        &markdown,
        markdown_text(settings, machine, started, rounds, summaries),
    )?;
    std::fs::write(&svg, svg_text(summaries))?;
    Ok((markdown, svg))
}

fn date(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

fn ratio_target(mode: Mode) -> f64 {
    match mode {
        Mode::Session => RATIO_TARGET_SESSION,
        Mode::Jwt => RATIO_TARGET_JWT,
    }
}

fn markdown_text(
    settings: &Settings,
    machine: &Machine,
    started: SystemTime,
    rounds: &[ModeRound],
    summaries: &[Summary],
) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Load report: session vs jwt\n");
    let _ = writeln!(
        w,
        "![requests per second and fan-out latency per mode](latest.svg)\n"
    );
    let _ = writeln!(w, "- Date: {}", date(started));
    let _ = writeln!(w, "- Command: `{}`", settings.command);
    let _ = writeln!(
        w,
        "- Machine: {}, {} cores, {} memory, Linux {}, {}",
        machine.cpu, machine.cores, machine.memory, machine.kernel, machine.rustc
    );
    let _ = writeln!(w, "- Load average when the run started: {}", machine.load);
    let _ = writeln!(
        w,
        "- Settings: {} round(s) × {{session, jwt}}, alternating order; {} s per request or upgrade run; \
         {} keep-alive connections; {} upgrade clients; fan-out {} sockets over {} users at {} messages/s; \
         capacity ladder {:?} messages/s, {} s per step; {} revocation trials per round; Redis frozen {} s; login storm {} s with {} connections",
        settings.rounds,
        settings.duration.as_secs_f64(),
        settings.connections,
        settings.upgrade_clients,
        settings.fanout_sockets,
        settings.fanout_users,
        settings.fanout_rate,
        settings.ladder,
        settings.step.as_secs_f64(),
        settings.revocation_trials,
        settings.outage.as_secs_f64(),
        settings.storm.as_secs_f64(),
        settings.storm_connections,
    );
    if let Some(note) = &settings.note {
        let _ = writeln!(w, "- Note: {note}");
    }
    let _ = writeln!(
        w,
        "\nEvery figure is the median over the rounds unless it says otherwise.\n"
    );

    let _ = writeln!(w, "## Against the targets of issue 4\n");
    let _ = writeln!(w, "| target | session | jwt |");
    let _ = writeln!(w, "|---|---|---|");
    let mut ratio_row = "| authenticated / unauthenticated req/s ≈ 0.5 (session), ≈ 0.6 (jwt); met at ≥ 90 % of it |".to_owned();
    let mut fanout_row = format!("| fan-out p99 < {FANOUT_P99_TARGET_MS} ms |");
    for s in summaries {
        let target = ratio_target(s.mode);
        let _ = write!(
            ratio_row,
            " {:.2}: {} |",
            s.ratio,
            met(s.ratio >= target * RATIO_SLACK)
        );
        let _ = write!(
            fanout_row,
            " {:.2} ms at {:.0} deliveries/s: {} |",
            s.fanout_p99,
            s.fanout_rate,
            met(s.fanout_p99 < FANOUT_P99_TARGET_MS && s.fanout_delivered >= s.fanout_expected)
        );
    }
    let _ = writeln!(w, "{ratio_row}\n{fanout_row}\n");
    let _ = writeln!(
        w,
        "The issue's figures come from `wrk -t2 -c64` against a minimal actix-web server; \
         this tool's client shares the machine with the server, so a low ratio may be the \
         machine and not the middleware. Where a target is not met, see the conclusions in \
         the README.\n"
    );

    let _ = writeln!(
        w,
        "## Requests: authenticated `GET /api/rooms` beside `GET /healthz`\n"
    );
    let _ = writeln!(w, "| mode | credential | floor req/s | p50 ms | p99 ms | auth req/s | p50 ms | p99 ms | ratio |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in summaries {
        let credential = match s.mode {
            Mode::Session => "session cookie",
            Mode::Jwt => "Bearer token",
        };
        let _ = writeln!(
            w,
            "| {} | {credential} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            s.mode.name(),
            s.floor_per_sec,
            s.floor_p50,
            s.floor_p99,
            s.auth_per_sec,
            s.auth_p50,
            s.auth_p99,
            s.ratio
        );
    }
    let failed: u64 = rounds.iter().map(|r| r.floor.failed + r.auth.failed).sum();
    let _ = writeln!(
        w,
        "\nFailed or non-2xx requests over all rounds: {failed}.\n"
    );

    let _ = writeln!(w, "## WebSocket upgrade and authentication\n");
    let _ = writeln!(
        w,
        "Connect, upgrade, receive `authenticated`, close; {} clients at once.\n",
        settings.upgrade_clients
    );
    let _ = writeln!(w, "| mode | credential | upgrades/s | p50 ms | p99 ms |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|");
    for s in summaries {
        for (via, rate, p50, p99) in &s.upgrades {
            let _ = writeln!(
                w,
                "| {} | {} | {rate:.0} | {p50:.2} | {p99:.2} |",
                s.mode.name(),
                via.label()
            );
        }
    }

    let _ = writeln!(w, "\n## Fan-out\n");
    let _ = writeln!(
        w,
        "{} sockets in one room, each sending in turn at {} messages/s in all; latency from send to each delivery. \
         Capacity: the highest deliveries/s of a ladder step where every delivery arrived within 1 s, p99 stayed under 100 ms and the server closed no socket. The server closes a socket whose send queue fills (a slow reader); with a one-thread client that means the client fell behind.\n",
        settings.fanout_sockets, settings.fanout_rate
    );
    let _ = writeln!(w, "| mode | deliveries/s | p50 ms | p99 ms | delivered / expected (all rounds) | refused `rate_limited` | sockets closed by the server | capacity deliveries/s |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in summaries {
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.2} | {:.2} | {} / {} | {} | {} | {:.0} |",
            s.mode.name(),
            s.fanout_rate,
            s.fanout_p50,
            s.fanout_p99,
            s.fanout_delivered,
            s.fanout_expected,
            s.rate_limited,
            s.fanout_closed,
            s.capacity
        );
    }
    ladder_table(w, settings, rounds);
    if let Some(&top) = settings.ladder.last() {
        let _ = writeln!(
            w,
            "\nThe ladder stops at {top} messages/s. The servers run with `SOCKET_FRAME_RATE` and \
             `USER_MESSAGE_RATE` raised to {} so that the limiter does not refuse the benchmark's senders. \
             A capacity equal to the top step means \"at least\".",
            crate::round::RAISED_RATE
        );
    }

    let _ = writeln!(w, "\n## Bytes the credential adds\n");
    let _ = writeln!(w, "| mode | `Cookie` line per request/upgrade | `Authorization: Bearer` line | `authenticate` frame | login `Set-Cookie` lines | login body tokens |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
    for mode in [Mode::Session, Mode::Jwt] {
        if let Some(r) = rounds.iter().find(|r| r.mode == mode) {
            let b = &r.bytes;
            let opt = |v: Option<usize>| v.map_or("–".to_owned(), |n| n.to_string());
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                mode.name(),
                b.cookie_header,
                opt(b.bearer_header),
                opt(b.authenticate_frame),
                b.login_set_cookie,
                b.login_body_tokens
            );
        }
    }
    let _ = writeln!(w, "\nUpgrades with a cookie also need an `Origin` header (cross-site rule), sent in both modes.");

    let _ = writeln!(w, "\n## Redis commands (from `INFO commandstats`)\n");
    let _ = writeln!(w, "| mode | per auth request | per `/healthz` (control) | per upgrade | per chat message | request commands | message commands |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---|---|");
    for s in summaries {
        let r = &s.redis;
        let _ = writeln!(
            w,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            s.mode.name(),
            r.per_request,
            r.per_floor_request,
            r.per_upgrade,
            r.per_message,
            r.request_commands,
            r.message_commands
        );
    }
    let _ = writeln!(w, "\nCounts are over a batch of {} sequential requests ({} upgrades, and up to 25 messages with every copy awaited); the control row shows the background traffic (health pings, pub/sub) that lands in every batch.", settings.redis_batch, (settings.redis_batch / 10).max(3));

    let _ = writeln!(w, "\n## Revocation latency\n");
    let _ = writeln!(w, "Logout (form post in session mode, `POST /auth/logout` with the Bearer token in jwt mode) timed from its send.\n");
    let _ = writeln!(w, "| mode | trials (failed) | to socket close p50 / p99 ms | to first refused request p50 / p99 ms | close frames |");
    let _ = writeln!(w, "|---|---:|---:|---:|---|");
    for s in summaries {
        let _ = writeln!(
            w,
            "| {} | {} ({}) | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
            s.mode.name(),
            s.revocation_trials,
            s.revocation_failed,
            s.close_p50,
            s.close_p99,
            s.refused_p50,
            s.refused_p99,
            s.close_reasons.join(", ")
        );
    }

    let _ = writeln!(w, "\n## Redis down\n");
    let _ = writeln!(
        w,
        "Redis frozen with SIGSTOP for {} s (connections stay open, nothing answers) under 4 clients polling `GET /api/rooms`, with a few sockets open; one message sent a third of the way in.\n",
        settings.outage.as_secs_f64()
    );
    let _ = writeln!(w, "| mode | round | answers while down | succeeded | longest wait ms | sockets closed | message copies during / after | recovery after thaw ms |");
    let _ = writeln!(w, "|---|---:|---|---:|---:|---:|---:|---:|");
    for r in rounds {
        let o = &r.outage;
        let answers: Vec<String> = o.answers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let recovery = o.recovery.map_or("not within 15 s".to_owned(), |d| {
            format!("{:.0}", d.as_secs_f64() * 1000.0)
        });
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.0} % | {:.0} | {} of {} | {} / {} of {} | {recovery} |",
            r.mode.name(),
            r.round + 1,
            answers.join(", "),
            o.ok_fraction * 100.0,
            o.longest_wait.as_secs_f64() * 1000.0,
            o.sockets_closed,
            o.sockets,
            o.delivered_during,
            o.delivered_after,
            o.sockets
        );
    }

    let _ = writeln!(w, "\n## Login storm\n");
    let _ = writeln!(
        w,
        "Issue 5: {} connections post `/login` with a real user's email and a wrong password for {} s, \
         each from its own loopback source address, moving to a fresh address before the failed-login \
         throttle would refuse it and cycling over several accounts, so that most attempts reach bcrypt \
         (cost {}). Meanwhile one client sends `GET /api/rooms` one after another, and another user's \
         socket, joined to a room, sends a message and waits for its own copy, one after another. The \
         same two probes run alone for {} s first (\"before\"). A probe waiting more than {} s counts \
         as a timeout.\n",
        settings.storm_connections,
        settings.storm.as_secs_f64(),
        crate::round::BCRYPT_COST,
        settings.storm.as_secs_f64(),
        crate::storm::PROBE_TIMEOUT.as_secs_f64(),
    );
    let _ = writeln!(w, "| mode | storm answers (all rounds) | `/api/rooms` p50 / p99 ms before | during | socket echo p50 / p99 ms before | during | probe timeouts before / during | other probe failures before / during |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|");
    for s in summaries {
        let a = &s.storm_answers;
        let _ = writeln!(
            w,
            "| {} | 401 (bcrypt checked): {}, 429 (throttled): {}, 503 (bcrypt pool full): {}, errors: {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} / {} | {} / {} |",
            s.mode.name(),
            a.verified,
            a.throttled,
            a.busy,
            a.errors,
            s.rooms_before.0,
            s.rooms_before.1,
            s.rooms_during.0,
            s.rooms_during.1,
            s.echo_before.0,
            s.echo_before.1,
            s.echo_during.0,
            s.echo_during.1,
            s.probe_timeouts.0,
            s.probe_timeouts.1,
            s.probe_errors.0,
            s.probe_errors.1,
        );
    }

    let _ = writeln!(w, "\n## How it was measured\n");
    let _ = writeln!(w, "- Each mode of each round runs a fresh server (release build, `REDIS_URL` to a fresh `redis-server` on a unix socket, fresh SQLite data folder) on 127.0.0.1.");
    let _ = writeln!(w, "- The load client runs on one thread (a current-thread tokio runtime) with a minimal HTTP/1.1 client over keep-alive connections; the server keeps its default worker count. Both share the machine's cores, so neither has the machine to itself.");
    let _ = writeln!(w, "- `BCRYPT_COST={}`, so that the login storm exercises real bcrypt work while account setup stays quick. `LOG_LEVEL={}`: no access log line per request.", crate::round::BCRYPT_COST, settings.log_level);
    let _ = writeln!(w, "- Latencies are client-side, from send to the full answer (or to the delivery), recorded in HDR histograms at microsecond resolution.");
    let _ = writeln!(
        w,
        "- Conclusions are written by hand in the README after a run on a quiet machine."
    );
    md
}

/// One bar chart: two series, one group of bars per mode.
struct Panel {
    title: &'static str,
    left: f64,
    series: [(&'static str, &'static str); 2],
    values: fn(&Summary) -> [f64; 2],
}

/// Bars: requests/s floor vs authenticated per mode (left), fan-out p50
/// and p99 per mode (right).
fn svg_text(summaries: &[Summary]) -> String {
    const W: f64 = 760.0;
    const H: f64 = 340.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 290.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>");
    let panels = [
        Panel {
            title: "Requests/s: /healthz vs /api/rooms",
            left: 20.0,
            series: [("floor", "#9aa5b1"), ("authenticated", "#2f6fb0")],
            values: |x| [x.floor_per_sec, x.auth_per_sec],
        },
        Panel {
            title: "Fan-out delivery latency, ms",
            left: 400.0,
            series: [("p50", "#7fb77e"), ("p99", "#c0504d")],
            values: |x| [x.fanout_p50, x.fanout_p99],
        },
    ];
    for Panel {
        title,
        left,
        series,
        values: value,
    } in &panels
    {
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"24\" font-size=\"14\" font-weight=\"bold\">{title}</text>"
        );
        let max = summaries
            .iter()
            .flat_map(value)
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{BOTTOM}\" x2=\"{}\" y2=\"{BOTTOM}\" stroke=\"#333\"/>",
            left + 340.0
        );
        for (i, summary) in summaries.iter().enumerate() {
            let group = left + 20.0 + i as f64 * 160.0;
            for (j, v) in value(summary).iter().enumerate() {
                let height = (v / max) * (BOTTOM - TOP - 20.0);
                let x = group + j as f64 * 60.0;
                let y = BOTTOM - height;
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"50\" height=\"{height:.1}\" fill=\"{}\"/>",
                    series[j].1
                );
                let label = if *v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                };
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                    x + 25.0,
                    y - 4.0
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
                group + 55.0,
                BOTTOM + 18.0,
                summary.mode.name()
            );
        }
        for (j, (name, colour)) in series.iter().enumerate() {
            let x = left + j as f64 * 130.0;
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>",
                BOTTOM + 30.0
            );
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\">{name}</text>",
                x + 16.0,
                BOTTOM + 40.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Delivery latency at each step of the capacity ladder, so that the
/// fan-out figures can be read against the load: where p99 crosses the
/// target, and how far the machine is from saturation there.
fn ladder_table(w: &mut String, settings: &Settings, rounds: &[ModeRound]) {
    let _ = writeln!(
        w,
        "\nLatency along the ladder (median over the rounds that reached the step; {} s per step):\n",
        settings.step.as_secs_f64()
    );
    let _ = writeln!(
        w,
        "| mode | messages/s asked | deliveries/s | p50 ms | p99 ms | rounds kept up |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
    for mode in [Mode::Session, Mode::Jwt] {
        for &rate in &settings.ladder {
            let steps: Vec<_> = rounds
                .iter()
                .filter(|r| r.mode == mode)
                .filter_map(|r| r.ladder.iter().find(|s| s.rate == rate))
                .collect();
            if steps.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&crate::fanout::Step) -> f64| {
                crate::stats::median(steps.iter().map(|s| f(s)))
            };
            let _ = writeln!(
                w,
                "| {} | {rate:.0} | {:.0} | {:.2} | {:.2} | {} of {} |",
                mode.name(),
                med(&|s| s.deliveries_per_sec),
                med(&|s| s.latency.p50_ms),
                med(&|s| s.latency.p99_ms),
                steps.iter().filter(|s| s.kept_up).count(),
                steps.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::date;
    use std::time::{Duration, SystemTime};

    #[test]
    fn dates_are_civil_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(date(t), "2024-02-29 12:34 UTC");
    }
}
