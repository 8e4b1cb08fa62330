//! The load tool (tests/load) in its tiny configuration against this
//! build's server: it must keep working, and every section of its report
//! must come from real measurements. No speed is asserted.

use std::time::Duration;

use chat_load::{Mode, Settings};

/// The tiny run takes seconds; this only keeps a hang from lasting forever.
const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn a_tiny_run_measures_both_modes_and_writes_the_report() {
    let out = tempfile::Builder::new()
        .prefix("chat-load-report-")
        .tempdir()
        .expect("create a folder for the report");
    let settings = Settings {
        server: Some(env!("CARGO_BIN_EXE_chat").into()),
        out_dir: out.path().to_owned(),
        command: "cargo test --test load_tool".to_owned(),
        ..Settings::tiny()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime");
    let outcome = runtime
        .block_on(async { tokio::time::timeout(LIMIT, chat_load::run(&settings)).await })
        .expect("the tiny run ends in time")
        .expect("the tiny run succeeds");

    assert_eq!(outcome.markdown, out.path().join("latest.md"));
    let markdown = std::fs::read_to_string(&outcome.markdown).expect("the report exists");
    for heading in [
        "## Against the targets of issue 4",
        "## Requests",
        "## WebSocket upgrade",
        "## Fan-out",
        "## Bytes the credential adds",
        "## Redis commands",
        "## Revocation latency",
        "## Redis down",
        "## Login storm",
        "Latency along the ladder",
    ] {
        assert!(markdown.contains(heading), "report lacks {heading:?}");
    }
    assert!(
        markdown.contains("cargo test --test load_tool"),
        "report names its command"
    );

    let svg = std::fs::read_to_string(&outcome.svg).expect("the chart exists");
    assert_well_formed_svg(&svg);

    assert_eq!(outcome.rounds.len(), 2, "one round of each mode");
    for mode in [Mode::Session, Mode::Jwt] {
        let round = outcome
            .rounds
            .iter()
            .find(|r| r.mode == mode)
            .unwrap_or_else(|| panic!("no {mode:?} round"));
        let name = mode.name();
        assert!(
            round.auth.ok > 0,
            "{name}: authenticated requests succeeded"
        );
        assert!(round.floor.ok > 0, "{name}: floor requests succeeded");
        assert!(round.auth.latency.p99_ms > 0.0, "{name}: request latencies");
        let vias = if mode == Mode::Jwt { 3 } else { 1 };
        assert_eq!(
            round.upgrades.len(),
            vias,
            "{name}: every way to authenticate a socket"
        );
        for (via, upgrades) in &round.upgrades {
            assert!(upgrades.ok > 0, "{name}: sockets authenticated by {via:?}");
        }
        assert!(round.fanout.delivered > 0, "{name}: fan-out deliveries");
        assert!(round.fanout.latency.count > 0, "{name}: fan-out latencies");
        assert!(
            round.redis.per_request > 0.0 || mode == Mode::Jwt,
            "{name}: a session lookup is a Redis command"
        );
        assert!(
            round.redis.per_message > 0.0,
            "{name}: messages go through Redis"
        );
        assert!(
            round.revocation.trials > round.revocation.failed,
            "{name}: revocation trials completed"
        );
        assert!(
            round.revocation.socket_closed.count > 0,
            "{name}: sockets closed by logout"
        );
        assert!(
            round.revocation.request_refused.count > 0,
            "{name}: old credentials refused"
        );
        assert!(
            !round.outage.answers.is_empty(),
            "{name}: requests while Redis was down"
        );
        assert!(
            round.storm.answers.total() > 0,
            "{name}: the login storm got answers"
        );
        assert!(
            round.storm.rooms_during.latency.count > 0,
            "{name}: /api/rooms answered during the storm"
        );
        assert!(
            round.storm.echo_during.latency.count > 0,
            "{name}: the socket got its echo during the storm"
        );
        assert!(
            round.bytes.cookie_header > "Cookie: ".len(),
            "{name}: credential bytes"
        );
    }
}

/// Starts with `<svg`, ends with `</svg>`, and every element opened is
/// closed in order: enough to show the hand-written chart is XML.
fn assert_well_formed_svg(svg: &str) {
    let svg = svg.trim();
    assert!(svg.starts_with("<svg"), "chart starts with <svg");
    assert!(svg.ends_with("</svg>"), "chart ends with </svg>");
    let mut open: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').expect("every tag is closed") + at;
        let tag = &rest[at + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name.trim()), "tags nest");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("a tag name");
            open.push(name.to_owned());
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
}
