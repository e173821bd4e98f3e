//! Fan-out: one publisher sends N 8-byte messages on one path to K
//! subscribers, each a separate process (`netchan bench-worker`, the same
//! subscriber `netchan bench` uses, timed from its first message to its
//! last). Prints the slowest subscriber's rate and the publisher's loop time.
//!
//! Build and run (after `cargo build --release -p netchan-cli` at the root):
//!   cargo run --release --manifest-path benches/peers/fanout/Cargo.toml -- \
//!       target/release/netchan K N [--freeze | --freeze-extra]
//!
//! `--freeze` stops one of the K subscribers (SIGSTOP) before the
//! publisher starts (issue 16: "a single frozen subscriber among them does
//! not change the others' rate"); `--freeze-extra` stops one more, a
//! (K+1)th. Either sets the publisher's `send_timeout` to 100 ms: under
//! `Block` the publisher waits that long once for the frozen subscriber's
//! credit, then counts a drop for each later message to it, at once, while
//! the others get everything. Printed: the others' rates, the drops
//! counted for the frozen one, and the publisher's peak memory.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: fanout-bench NETCHAN_BINARY SUBSCRIBERS MESSAGES [--freeze | --freeze-extra]");
    std::process::exit(2)
}

fn spawn_sub(bin: &str, n: u64) -> (Child, BufReader<ChildStdout>, String) {
    let mut c = Command::new(bin)
        .args(["bench-worker", "--role", "sub", "--imp", "netchan"])
        .args(["--addr", "tcp://127.0.0.1:0", "--count", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut out = BufReader::new(c.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("worker output");
    let addr = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("worker did not start: {line:?}"))
        .to_owned();
    (c, out, addr)
}

#[tokio::main]
async fn main() -> netchan::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (freeze, extra, a) = match &a[..] {
        [rest @ .., last] if last == "--freeze" => (true, false, rest),
        [rest @ .., last] if last == "--freeze-extra" => (true, true, rest),
        all => (false, false, all),
    };
    let [_, bin, k, n] = a else { usage() };
    let (Ok(k), Ok(n)) = (k.parse::<usize>(), n.parse::<u64>()) else {
        usage()
    };
    if k == 0 || n < 2 || (freeze && !extra && k < 2) {
        usage()
    }
    // The live subscribers; the frozen one is one of the K or one more.
    let k = if freeze && !extra { k - 1 } else { k };
    let mut cfg = netchan::Config::default();
    if freeze {
        cfg.send_timeout = Duration::from_millis(100);
    }
    let ep = netchan::Endpoint::new(cfg)?;
    // Every subscriber process ends with this program, however it ends
    // (the stopped one too: SIGKILL ends a stopped process).
    let mut reaper = Reaper(Vec::new());
    let mut subs = Vec::new();
    for _ in 0..k {
        let (child, out, addr) = spawn_sub(bin, n);
        reaper.0.push(child.id());
        ep.connect(&addr).await?;
        subs.push((child, out));
    }
    let frozen = if freeze {
        let (child, _out, addr) = spawn_sub(bin, n);
        reaper.0.push(child.id());
        ep.connect(&addr).await?;
        Some(child)
    } else {
        None
    };
    let all = k + usize::from(freeze);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep.subscribers("bench/data")?.len() < all {
        assert!(Instant::now() < deadline, "subscribers never declared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(f) = &frozen {
        let stopped = Command::new("kill")
            .args(["-STOP", &f.id().to_string()])
            .status();
        assert!(
            stopped.is_ok_and(|s| s.success()),
            "cannot stop a subscriber"
        );
    }
    let data = netchan::Bytes::from_static(b"8 bytes!");
    let t0 = Instant::now();
    let mut refused = 0u64;
    for _ in 0..n {
        match ep.publish("bench/data", data.clone()).await {
            Ok(()) => {}
            // Reported for the frozen subscriber; the others got it.
            Err(e) if freeze && e.code() == netchan::ErrorCode::BufferFull => refused += 1,
            Err(e) => return Err(e),
        }
    }
    let publish_loop = t0.elapsed();
    let mut slowest = f64::MAX;
    for (mut child, mut out) in subs {
        let mut line = String::new();
        out.read_line(&mut line).expect("worker result");
        let f: Vec<&str> = line.split_whitespace().collect();
        let nanos: f64 = f.get(2).and_then(|s| s.parse().ok()).expect("DONE n nanos");
        slowest = slowest.min((n - 1) as f64 / (nanos / 1e9));
        let _ = child.wait();
    }
    println!(
        "{k} live subscribers x {n} messages: slowest subscriber {:.2} M msg/s, total (K x slowest) {:.2} M msg/s, publish loop {:.2} s",
        slowest / 1e6,
        slowest * k as f64 / 1e6,
        publish_loop.as_secs_f64()
    );
    if let Some(mut f) = frozen {
        let s = ep.stats();
        println!(
            "  1 more subscriber frozen: {refused} publishes reported BUFFER_FULL, {} drops counted (dropped_send_full), publisher peak RSS {} MiB",
            s.total.dropped_send_full,
            peak_rss_kib() / 1024
        );
        let _ = f.kill();
        let _ = f.wait();
    }
    ep.close().await;
    reaper.0.clear();
    Ok(())
}

/// Kills the subscriber processes still listed when dropped.
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// This process's peak resident memory, from /proc (0 if unreadable).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
