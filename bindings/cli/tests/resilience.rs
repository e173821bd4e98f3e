//! Resilience with real processes: a killed and restarted listener (the
//! frozen subscriber is in `frozen.rs`, alone in its process for its RSS check).

use std::time::Duration;

use netchan::{Config, Endpoint, Event, EventRecv};

mod common;
use common::Listening;

const WATCHDOG: Duration = Duration::from_secs(30);

/// Quick redialling; the loss here is a killed process's closed socket, so
/// heartbeats stay slow (a short window could drop a live link under load).
fn fast(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_secs(1);
    c.heartbeat_misses = 3;
    c.reconnect.min_delay = Duration::from_millis(20);
    c.reconnect.max_delay = Duration::from_millis(200);
    c
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
    let mut first = Listening::start(&publisher_args);
    first.unlink = false; // the stale socket file is part of the test
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
