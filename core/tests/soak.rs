//! Soak test with churn (opt-in, minutes): `NETCHAN_SOAK_SECS=120 cargo test
//! -p netchan --release --test soak -- --ignored --nocapture`. The test
//! command runs it for 20 s. Connections,
//! subscriptions, services and requests come and go; afterwards file
//! descriptors and threads are back to baseline and memory has not grown
//! beyond a bound.

use std::time::{Duration, Instant};

use netchan::{Config, Endpoint};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `f`, or a panic naming the step and round after 20 s.
async fn step<T>(round: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("round {round}: {what} did not finish in 20 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run with --ignored (see the file header)"]
async fn churn_returns_to_baseline() {
    let secs: u64 = std::env::var("NETCHAN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = Endpoint::new(Config::named("soak-server")).unwrap();
    let addr = server.listen("tcp://127.0.0.1:0").await.unwrap();
    let _echo = server
        .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    // Warm up once so lazily created things exist before the baseline.
    {
        let c = Endpoint::named("warm").unwrap();
        c.connect(&addr).await.unwrap();
        c.request("echo", "x", Duration::from_secs(5))
            .await
            .unwrap();
        c.close().await;
    }
    tokio::task::yield_now().await;
    let (fd0, th0, rss0) = (fds(), status("Threads:"), status("VmRSS:"));
    eprintln!("baseline taken");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut rounds = 0u64;
    while Instant::now() < end {
        // Every step is bounded: a lost wakeup or message fails the test
        // with the step and round, instead of hanging it.
        let c = Endpoint::named(&format!("churn-{rounds}")).unwrap();
        step(rounds, "connect", c.connect(&addr)).await.unwrap();
        // A path of this round's own: the previous round's client may not
        // be gone from the server yet, and its interest must not be taken
        // for this one's (wait_for_subscribers is true for any subscriber).
        let path = format!("t/{}/x", rounds % 64);
        let sub = c.subscribe(&format!("t/{}/*", rounds % 64)).unwrap();
        assert!(step(
            rounds,
            "wait_for_subscribers",
            server.wait_for_subscribers(&path, Duration::from_secs(5))
        )
        .await
        .unwrap());
        step(rounds, "publish", server.publish(&path, vec![0u8; 1024]))
            .await
            .unwrap();
        step(rounds, "the subscriber's recv", sub.recv())
            .await
            .unwrap();
        for _ in 0..10 {
            step(
                rounds,
                "request",
                c.request("echo", vec![1u8; 256], Duration::from_secs(5)),
            )
            .await
            .unwrap();
        }
        drop(sub);
        step(rounds, "close", c.close()).await;
        rounds += 1;
        if rounds % 1000 == 0 {
            eprintln!("round {rounds}");
        }
    }
    // Let the server notice the last peers leave.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.peers().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (fd1, th1, rss1) = (fds(), status("Threads:"), status("VmRSS:"));
    eprintln!("{rounds} rounds: fds {fd0}->{fd1}, threads {th0}->{th1}, rss {rss0}->{rss1} KiB");
    assert!(server.peers().is_empty());
    assert!(fd1 <= fd0 + 2, "descriptors leaked: {fd0} -> {fd1}");
    assert!(th1 <= th0, "threads leaked: {th0} -> {th1}");
    assert!(rss1 < rss0 + 32 * 1024, "memory grew: {rss0} -> {rss1} KiB");
}
