//! The `netchan` binary end to end: real processes, real sockets on loopback.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netchan::{Endpoint, ErrorCode};

mod common;
use common::{Listening, BIN};

const WATCHDOG: Duration = Duration::from_secs(20);

fn netchan(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog so a hang fails the test instead of blocking the suite.
    let deadline = std::time::Instant::now() + WATCHDOG;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("netchan {args:?} did not finish within {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(5)); // polling a child, not synchronising
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_runs_and_exits_zero() {
    let out = netchan(&["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for want in [
        "received  21.5 on sensors/kitchen/temp",
        "hello, ana!",
        "NO_RESPONDERS",
        "ping demo-server",
        "done:",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
}

/// `netchan bench` in its smallest form: request/reply only, with netchan's
/// side in runtime tasks and on plain threads; each prints a row with a
/// netchan and a raw round trip.
#[test]
fn bench_measures_round_trips_from_tasks_and_threads() {
    for caller in ["task", "thread"] {
        let out = netchan(&[
            "bench",
            "--latency-only",
            "--transport",
            "unix",
            "--latency-sizes",
            "8",
            "--samples",
            "20",
            "--caller",
            caller,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = text(&out.stdout);
        assert!(!s.contains("Pub/sub throughput"), "{s}");
        let cells =
            |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_owned()).collect() };
        let header = s
            .lines()
            .find(|l| l.starts_with("| transport | payload | netchan p50 |"))
            .map(cells)
            .unwrap_or_else(|| panic!("no latency header in:\n{s}"));
        let row = s
            .lines()
            .find(|l| l.starts_with("| Unix | 8 B |"))
            .map(cells)
            .unwrap_or_else(|| panic!("no latency row in:\n{s}"));
        // Columns are found by name, so a new column cannot shift a check
        // onto the wrong cell.
        for name in ["netchan p50", "raw p50"] {
            let i = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no {name} column in {header:?}"));
            let us: f64 = row[i]
                .trim_end_matches(" us")
                .parse()
                .unwrap_or_else(|e| panic!("{name} {:?} in {row:?}: {e}", row[i]));
            assert!(us > 0.0, "{name} in {row:?}");
        }
        for name in ["CPU client+server", "raw CPU"] {
            let i = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no {name} column in {header:?}"));
            assert!(
                row[i].ends_with(" ms") && row[i].contains('+'),
                "{name} {:?} in {row:?}",
                row[i]
            );
        }
    }
}

#[test]
fn serve_and_req_over_tcp_and_unix() {
    let sock = format!(
        "unix://{}/netchan-cli-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    );
    for listen in ["tcp://127.0.0.1:0", sock.as_str()] {
        let server = Listening::start(&["serve", "echo/*", "--listen", listen, "--echo"]);
        let out = netchan(&["req", "echo/x", "hello there", "--connect", &server.addr]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hello there\n");
        // A path nobody serves.
        let out = netchan(&["req", "other", "--connect", &server.addr]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).starts_with("netchan: NO_RESPONDERS"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn req_times_out_and_handler_errors_cross_the_wire() {
    let slow = Listening::start(&[
        "serve",
        "slow",
        "--listen",
        "tcp://127.0.0.1:0",
        "--reply",
        "late",
        "--delay-ms",
        "10000",
    ]);
    let out = netchan(&[
        "req",
        "slow",
        "--connect",
        &slow.addr,
        "--timeout-ms",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("netchan: TIMEOUT"),
        "{}",
        text(&out.stderr)
    );

    let failing = Listening::start(&[
        "serve",
        "f",
        "--listen",
        "tcp://127.0.0.1:0",
        "--fail",
        "no such user",
    ]);
    let out = netchan(&["req", "f", "--connect", &failing.addr]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "netchan: HANDLER_ERROR: no such user\n");
}

/// `serve --max-concurrent 1 --queue 1`: one request in hand, one waiting,
/// the third refused at once with BUFFER_FULL; the waiting one is answered.
#[test]
fn serve_bounds_what_it_handles_and_queues() {
    let server = Listening::start(&[
        "serve",
        "work",
        "--listen",
        "tcp://127.0.0.1:0",
        "--reply",
        "done",
        "--delay-ms",
        "300",
        "--max-concurrent",
        "1",
        "--queue",
        "1",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ep = Endpoint::named("cli-test-bounded").unwrap();
        ep.connect(&server.addr).await.unwrap();
        let ask = || {
            let c = ep.clone();
            tokio::spawn(async move { c.request("work", "", WATCHDOG).await })
        };
        let first = ask();
        // The first is read by the server (the ping behind it answered),
        // then taken by its handler loop: nothing outside the process shows
        // that moment, so the test gives it 100 ms (the handler holds it
        // for 300).
        while ep.stats().total.requests_out == 0 {
            tokio::task::yield_now().await;
        }
        ep.ping(&ep.peers()[0].name).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let second = ask();
        while ep.stats().total.requests_out < 2 {
            tokio::task::yield_now().await;
        }
        ep.ping(&ep.peers()[0].name).await.unwrap();
        let e = ep.request("work", "", WATCHDOG).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
        assert_eq!(&first.await.unwrap().unwrap()[..], b"done");
        assert_eq!(&second.await.unwrap().unwrap()[..], b"done");
        ep.close().await;
    });
}

#[test]
fn sub_prints_text_and_hex_lines_then_exits_after_count() {
    let mut sub = Listening::start(&[
        "sub",
        "data/**",
        "--listen",
        "tcp://127.0.0.1:0",
        "--count",
        "3",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ep = Endpoint::named("cli-test-pub").unwrap();
        ep.connect(&sub.addr).await.unwrap();
        assert!(ep.wait_for_subscribers("data/a", WATCHDOG).await.unwrap());
        ep.publish("data/a", "plain text").await.unwrap();
        ep.publish("data/b/c", vec![0xffu8, 0x00, 0x10])
            .await
            .unwrap();
        ep.publish("data/d", "tab\there").await.unwrap();
        ep.close().await;
    });
    let lines = sub.stdout_lines(3);
    assert_eq!(
        lines,
        vec![
            "data/a\tplain text",
            "data/b/c\tff0010",
            "data/d\t7461620968657265"
        ]
    );
    assert!(sub.child.wait().unwrap().success());
}

#[test]
fn pub_waits_for_the_subscriber_and_reads_stdin_lines() {
    let mut sub = Listening::start(&[
        "sub",
        "lines",
        "--listen",
        "tcp://127.0.0.1:0",
        "--count",
        "3",
    ]);
    let mut publisher = Command::new(BIN)
        .args(["pub", "lines", "--connect", &sub.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = publisher.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    }
    assert!(publisher.wait().unwrap().success());
    assert_eq!(
        sub.stdout_lines(3),
        vec!["lines\tone", "lines\ttwo", "lines\tthree"]
    );
}

#[test]
fn pub_without_subscriber_fails_after_wait() {
    let sink = Listening::start(&["serve", "x", "--listen", "tcp://127.0.0.1:0", "--echo"]);
    let out = netchan(&[
        "pub",
        "nobody/listens",
        "hi",
        "--connect",
        &sink.addr,
        "--wait-ms",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("netchan: TIMEOUT: no subscriber"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ping_prints_a_summary() {
    let server = Listening::start(&["serve", "x", "--listen", "tcp://127.0.0.1:0", "--echo"]);
    let out = netchan(&["ping", &server.addr, "--count", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert_eq!(
        s.lines().filter(|l| l.starts_with("pong from")).count(),
        3,
        "{s}"
    );
    assert!(s.contains("rtt min/p50/p99/max = "), "{s}");
}

#[test]
fn peer_lost_when_the_serving_process_dies() {
    let mut server = Listening::start(&[
        "serve",
        "work",
        "--listen",
        "tcp://127.0.0.1:0",
        "--reply",
        "x",
        "--delay-ms",
        "60000",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ep = Endpoint::named("cli-test-caller").unwrap();
        ep.connect(&server.addr).await.unwrap();
        let c = ep.clone();
        let call =
            tokio::spawn(async move { c.request("work", "", Duration::from_secs(60)).await });
        // Once the request is on the wire (and, by the ping behind it, read
        // by the server), kill the server process.
        while ep.stats().total.requests_out == 0 {
            tokio::task::yield_now().await;
        }
        ep.ping(&ep.peers()[0].name).await.unwrap();
        server.child.kill().unwrap();
        let e = tokio::time::timeout(WATCHDOG, call)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
    });
}

#[test]
fn bad_arguments_give_one_line_errors_never_panics() {
    for (args, code, want) in [
        (
            vec!["req", "x", "--connect", "localhost:1"],
            1,
            "netchan: INVALID_ADDRESS",
        ),
        (
            vec!["req", "a/*", "--connect", "tcp://127.0.0.1:1"],
            1,
            "netchan: INVALID_PATH",
        ),
        (
            vec!["req", "x", "--connect", "tcp://127.0.0.1:1"],
            1,
            "netchan: CONNECT_REFUSED",
        ),
        (
            vec![
                "req",
                "x",
                "--connect",
                "tcp://127.0.0.1:1",
                "--timeout-ms",
                "0",
            ],
            1,
            "netchan: INVALID_ARGUMENT",
        ),
        (
            vec!["sub", "a//b", "--listen", "tcp://127.0.0.1:0"],
            1,
            "netchan: INVALID_PATH",
        ),
        (
            vec!["pub", "x", "--connect", "tcp://127.0.0.1:1", "--rate=0"],
            1,
            "netchan: INVALID_ARGUMENT",
        ),
        (
            vec!["serve", "x", "--listen", "tcp://127.0.0.1:0"],
            1,
            "netchan: INVALID_ARGUMENT",
        ),
        (
            vec![
                "serve",
                "x",
                "--listen",
                "tcp://127.0.0.1:0",
                "--echo",
                "--max-concurrent",
                "0",
            ],
            1,
            "netchan: INVALID_ARGUMENT",
        ),
        (
            vec!["ping", "unix://relative"],
            1,
            "netchan: INVALID_ADDRESS",
        ),
        (vec!["sub", "x"], 2, "required"),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
    ] {
        let out = netchan(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
