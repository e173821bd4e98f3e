//! Resilience with real processes: a killed and restarted listener, a
//! frozen (SIGSTOP) subscriber.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netchan::{Config, Endpoint, Event, EventRecv};

mod common;
use common::{Listening, BIN};

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

fn fast(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_millis(200);
    c.heartbeat_misses = 3;
    c.reconnect.min_delay = Duration::from_millis(20);
    c.reconnect.max_delay = Duration::from_millis(200);
    c
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
async fn killed_listener_restarted_on_the_same_address_is_redialled() {
    let addr = format!(
        "unix://{}/netchan-kill-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    );
    let publisher_args = [
        "pub",
        "ticks",
        "tick",
        "--listen",
        addr.as_str(),
        "--count",
        "1000000",
        "--rate",
        "200",
        "--wait-ms",
        "30000",
    ];
    let first = Listening::start(&publisher_args);
    let ep = Endpoint::new(fast("kill-test-dialer")).unwrap();
    let sub = ep.subscribe("ticks").unwrap();
    let mut events = ep.events();
    ep.connect(&addr).await.unwrap();
    let m = tokio::time::timeout(WATCHDOG, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload()[..], b"tick");

    drop(first); // SIGKILL: no CLOSE frame, the socket file stays behind
    loop {
        if let EventRecv::Event(Event::PeerDown { .. }) =
            tokio::time::timeout(WATCHDOG, events.recv()).await.unwrap()
        {
            break;
        }
    }
    while sub.try_recv().unwrap().is_some() {}
    let _second = Listening::start(&publisher_args); // replaces the stale socket file
                                                     // No user code: the dialer redials, re-declares "ticks", and receives.
    let m = tokio::time::timeout(WATCHDOG, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload()[..], b"tick");
    let reconnects = std::iter::from_fn(|| events.try_recv())
        .filter(|e| matches!(e, EventRecv::Event(Event::Reconnecting { .. })))
        .count();
    assert!(reconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_subscriber_is_bounded_reported_and_others_keep_receiving() {
    let mut cfg = fast("freeze-publisher");
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
    let healthy = Endpoint::new(fast("healthy-sub")).unwrap();
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
    // The policy fired and was reported: drops for the frozen peer, or the
    // heartbeat declared it dead.
    let mut saw = false;
    while !saw {
        match tokio::time::timeout(WATCHDOG, events.recv()).await.unwrap() {
            EventRecv::Event(Event::Dropped { site, .. }) if site == "frozen-sub" => saw = true,
            EventRecv::Event(Event::PeerDown { peer, .. }) if peer == "frozen-sub" => saw = true,
            EventRecv::Closed => panic!("closed"),
            _ => {}
        }
    }
}
