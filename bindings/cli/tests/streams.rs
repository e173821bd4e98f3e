//! `netchan stream` and `netchan serve-stream` end to end: real processes,
//! real sockets on loopback.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netchan::{Endpoint, ErrorCode};

mod common;
use common::{Listening, BIN};

const WATCHDOG: Duration = Duration::from_secs(30);

/// A child process killed when dropped (a failing test ends it too).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `netchan ARGS` with `input` on stdin; (status code, stdout, stderr).
fn run(args: &[&str], input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut child = Proc(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "netchan {args:?} did not finish within {WATCHDOG:?}"
        );
        std::thread::sleep(Duration::from_millis(5)); // polling a child, not synchronising
    };
    let _ = feeder.join();
    (
        status.code(),
        reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

fn unix_addr(tag: &str) -> String {
    format!(
        "unix://{}/netchan-cli-stream-{tag}-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    )
}

/// stdin crosses a stream to `serve-stream --echo` and back byte for
/// byte, over TCP and Unix sockets; a 4 MiB input (many messages, past
/// the window) arrives whole.
#[test]
fn stream_pipes_stdin_through_an_echo_server_byte_exact() {
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("echo")] {
        let server = Listening::start(&["serve-stream", "echo/*", "--listen", &listen, "--echo"]);
        let input: Vec<u8> = (0..4 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (code, out, err) = run(
            &[
                "-o",
                "stream_window=64KiB",
                "stream",
                "echo/x",
                "--connect",
                &server.addr,
            ],
            &input,
        );
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out.len(), input.len(), "{err}");
        assert!(out == input, "the bytes came back changed");
        // The first payload is echoed first.
        let (code, out, err) = run(
            &[
                "stream",
                "echo/y",
                "--connect",
                &server.addr,
                "--data",
                "first ",
            ],
            b"second",
        );
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(String::from_utf8_lossy(&out), "first second");
    }
}

/// `--exec CMD`: the stream is the command's stdin and stdout; a command
/// that fails ends the stream with HANDLER_ERROR, which the opener reports.
#[test]
fn serve_stream_exec_runs_a_command_per_stream() {
    let server = Listening::start(&[
        "serve-stream",
        "up",
        "--listen",
        "tcp://127.0.0.1:0",
        "--exec",
        "tr a-z A-Z",
    ]);
    let (code, out, err) = run(
        &["stream", "up", "--connect", &server.addr],
        b"hello\nworld\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "HELLO\nWORLD\n");

    let failing = Listening::start(&[
        "serve-stream",
        "fail",
        "--listen",
        "tcp://127.0.0.1:0",
        "--exec",
        "echo partial; exit 3",
    ]);
    let (code, out, err) = run(&["stream", "fail", "--connect", &failing.addr], b"");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "partial\n");
    assert!(err.starts_with("netchan: HANDLER_ERROR"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");

    // Nobody serves the path; a bad argument.
    let (code, _, err) = run(&["stream", "nobody", "--connect", &server.addr], b"");
    assert_eq!(code, Some(1));
    assert!(err.starts_with("netchan: NO_RESPONDERS"), "{err}");
    let (code, _, err) = run(&["serve-stream", "x", "--listen", "tcp://127.0.0.1:0"], b"");
    assert_eq!(code, Some(1));
    assert!(err.contains("--echo or --exec"), "{err}");
}

/// Either process killed mid-stream: the other side's stream ends with
/// PEER_LOST at once.
#[test]
fn killing_either_process_mid_stream_ends_it_with_peer_lost() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The serving process dies.
    let mut server = Listening::start(&[
        "serve-stream",
        "slow",
        "--listen",
        "tcp://127.0.0.1:0",
        "--exec",
        "sleep 60",
    ]);
    rt.block_on(async {
        let ep = Endpoint::named("cli-stream-opener").unwrap();
        ep.connect(&server.addr).await.unwrap();
        let s = ep.open_stream("slow", "").await.unwrap();
        s.send("x").await.unwrap();
        server.child.kill().unwrap();
        let e = tokio::time::timeout(WATCHDOG, s.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
        ep.close().await;
    });

    // The opening process dies.
    rt.block_on(async {
        let ep = Endpoint::named("cli-stream-server").unwrap();
        let addr = ep.listen("tcp://127.0.0.1:0").await.unwrap();
        let svc = ep.serve_stream("held").unwrap();
        let mut opener = Proc(
            Command::new(BIN)
                .args(["stream", "held", "--connect", &addr])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let (_req, s) = tokio::time::timeout(WATCHDOG, svc.recv())
            .await
            .unwrap()
            .unwrap();
        opener.0.stdin.as_mut().unwrap().write_all(b"data").unwrap();
        let m = tokio::time::timeout(WATCHDOG, s.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.as_deref(), Some(&b"data"[..]));
        opener.0.kill().unwrap();
        let e = tokio::time::timeout(WATCHDOG, s.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
        ep.close().await;
    });
}
