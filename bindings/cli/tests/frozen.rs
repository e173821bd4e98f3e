//! A frozen (SIGSTOP) subscriber process: the publisher's memory stays
//! bounded, a healthy subscriber gets every message in order, drops are
//! counted and reported, and heartbeats declare the frozen process lost.
//! Alone in its test binary, so the RSS it checks is this test's only.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv};

mod common;
use common::BIN;

const WATCHDOG: Duration = Duration::from_secs(30);

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
    cfg.heartbeat_interval = Duration::from_millis(500);
    cfg.heartbeat_misses = 3;
    cfg.send_buffer = 256 * 1024;
    cfg.send_timeout = Duration::from_millis(100);
    let publisher = Endpoint::new(cfg).unwrap();
    let addr = publisher.listen("tcp://127.0.0.1:0").await.unwrap();

    // A real subscriber process, to be frozen with SIGSTOP.
    let child = Proc(
        Command::new(BIN)
            .args(["sub", "data", "--connect", &addr, "--name", "frozen-sub"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let healthy = Endpoint::named("healthy-sub").unwrap();
    let sub = healthy.subscribe("data").unwrap();
    healthy.connect(&addr).await.unwrap();
    let deadline = std::time::Instant::now() + WATCHDOG;
    while publisher.subscribers("data").unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "subscribers never appeared"
        );
        publisher
            .wait_for_subscribers("data", Duration::from_millis(50))
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
    let n = 30_000u32;
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
        let _ = publisher.publish("data", p).await;
    }
    // The healthy subscriber got every message, in order.
    tokio::time::timeout(WATCHDOG, receiver)
        .await
        .unwrap()
        .unwrap();
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
