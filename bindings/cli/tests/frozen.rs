//! A frozen (SIGSTOP) subscriber process among 8 subscribers: the
//! publisher's memory stays bounded, the 7 healthy subscribers (6 other
//! processes and one endpoint here) get every message (the one here checks
//! the order), drops are counted and reported, and heartbeats declare the
//! frozen process lost. That the others' rate is unchanged is measured,
//! not timed here: `benches/peers/fanout` (`--freeze`), docs/BENCHMARKS.md.
//! Alone in its test binary, so the RSS it checks is this test's only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv};

mod common;
use common::BIN;

const WATCHDOG: Duration = Duration::from_secs(30);

/// Healthy subscriber processes beside the frozen one and the endpoint
/// here: 8 subscribers in all.
const HEALTHY_PROCS: usize = 6;

/// A process the test may freeze: killed (after SIGCONT) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_subscriber_is_bounded_reported_and_others_keep_receiving() {
    let mut cfg = Config::named("freeze-publisher");
    // The publisher waits `send_timeout` once for the frozen process, then
    // drops for it at once. A healthy process that falls behind by as much
    // (8 subscribers on 2 cores) would have drops too, counted but not its
    // `--count`: a second is far more than any lag seen here, and less than
    // the heartbeat window, so the drops come before the loss.
    cfg.heartbeat_interval = Duration::from_secs(1);
    cfg.heartbeat_misses = 3;
    cfg.send_buffer = 256 * 1024;
    cfg.send_timeout = Duration::from_secs(1);
    let publisher = Endpoint::new(cfg).unwrap();
    let addr = publisher.listen("tcp://127.0.0.1:0").await.unwrap();

    // A real subscriber process, to be frozen with SIGSTOP.
    let child = Proc(
        Command::new(BIN)
            .args([
                "sub",
                "bench/data",
                "--connect",
                &addr,
                "--name",
                "frozen-sub",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let n = 30_000u32;
    // Counting subscribers (`netchan bench-worker`, the one the benches
    // use): each prints `DONE` and exits once it has every message, and
    // only then. This publisher dials them.
    let mut procs = Vec::new();
    for _ in 0..HEALTHY_PROCS {
        let mut c = Command::new(BIN)
            .args(["bench-worker", "--role", "sub", "--imp", "netchan"])
            .args(["--addr", "tcp://127.0.0.1:0", "--count", &n.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let p = Proc(c);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let at = line.trim().strip_prefix("READY ").unwrap().to_owned();
        publisher.connect(&at).await.unwrap();
        procs.push((p, out));
    }
    let healthy = Endpoint::named("healthy-sub").unwrap();
    let sub = healthy.subscribe("bench/data").unwrap();
    healthy.connect(&addr).await.unwrap();
    let deadline = std::time::Instant::now() + WATCHDOG;
    while publisher.subscribers("bench/data").unwrap().len() < 2 + HEALTHY_PROCS {
        assert!(
            std::time::Instant::now() < deadline,
            "subscribers never appeared"
        );
        publisher
            .wait_for_subscribers("bench/data", Duration::from_millis(50))
            .await
            .unwrap();
    }
    let mut events = publisher.events();
    assert!(Command::new("kill")
        .args(["-STOP", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());

    let before = rss_bytes();
    let receiver = tokio::spawn(async move {
        for i in 0..n {
            let m = tokio::time::timeout(WATCHDOG, sub.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&m.payload()[..4], &i.to_le_bytes());
        }
    });
    let payload_tail = vec![0u8; 1020];
    for i in 0..n {
        let mut p = i.to_le_bytes().to_vec();
        p.extend_from_slice(&payload_tail);
        // Errors here are the frozen peer's BUFFER_FULL (counted below).
        let _ = publisher.publish("bench/data", p).await;
    }
    // The healthy subscriber got every message, in order, and each healthy
    // process all of them.
    tokio::time::timeout(WATCHDOG, receiver)
        .await
        .unwrap()
        .unwrap();
    for (i, (p, out)) in procs.iter_mut().enumerate() {
        let status = loop {
            if let Some(s) = p.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline + WATCHDOG,
                "healthy subscriber {i} never got its {n} messages"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "healthy subscriber {i}: {status}");
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("DONE "),
            "healthy subscriber {i}: {line:?}"
        );
    }
    // 30 MB went out; the frozen peer held at most its bounded buffer.
    let grew = rss_bytes().saturating_sub(before);
    assert!(
        grew < 64 * 1024 * 1024,
        "publisher memory grew by {grew} bytes"
    );
    // The frozen process answers no pings: it is declared lost, by the
    // heartbeat. Every drop counted for it was reported, to the last one.
    let mut reported = 0u64;
    loop {
        match tokio::time::timeout(WATCHDOG, events.recv()).await.unwrap() {
            EventRecv::Event(Event::Dropped { site, count, .. }) if site == "frozen-sub" => {
                reported += count
            }
            EventRecv::Event(Event::PeerDown {
                peer, code, reason, ..
            }) if peer == "frozen-sub" => {
                assert_eq!(code, ErrorCode::PeerLost, "{reason}");
                assert!(reason.contains("heard nothing"), "{reason}");
                break;
            }
            EventRecv::Closed => panic!("closed"),
            _ => {}
        }
    }
    // Every drop is reported, in coalesced events, and none twice.
    let total = publisher.stats().total.dropped_send_full;
    while reported < total {
        if let EventRecv::Event(Event::Dropped { site, count, .. }) =
            tokio::time::timeout(WATCHDOG, events.recv()).await.unwrap()
        {
            if site == "frozen-sub" {
                reported += count;
            }
        }
    }
    assert_eq!(reported, total);
}
