//! Fan-out: one publisher sends N 8-byte messages on one path to K
//! subscribers, each a separate process (`netchan bench-worker`, the same
//! subscriber `netchan bench` uses, timed from its first message to its
//! last). Prints the slowest subscriber's rate and the publisher's loop time.
//!
//! Build and run (after `cargo build --release -p netchan-cli` at the root):
//!   cargo run --release --manifest-path benches/peers/fanout/Cargo.toml -- \
//!       target/release/netchan K N

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: fanout-bench NETCHAN_BINARY SUBSCRIBERS MESSAGES");
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
    let [_, bin, k, n] = &a[..] else { usage() };
    let (Ok(k), Ok(n)) = (k.parse::<usize>(), n.parse::<u64>()) else {
        usage()
    };
    if k == 0 || n < 2 {
        usage()
    }
    let ep = netchan::Endpoint::new(netchan::Config::default())?;
    let mut subs = Vec::new();
    for _ in 0..k {
        let (child, out, addr) = spawn_sub(bin, n);
        ep.connect(&addr).await?;
        subs.push((child, out));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep.subscribers("bench/data")?.len() < k {
        assert!(Instant::now() < deadline, "subscribers never declared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let data = netchan::Bytes::from_static(b"8 bytes!");
    let t0 = Instant::now();
    for _ in 0..n {
        ep.publish("bench/data", data.clone()).await?;
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
        "{k} subscribers x {n} messages: slowest subscriber {:.2} M msg/s, publish loop {:.2} s",
        slowest / 1e6,
        publish_loop.as_secs_f64()
    );
    ep.close().await;
    Ok(())
}
