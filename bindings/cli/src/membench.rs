//! `netchan bench --memory`: resident memory of an endpoint with 0, 1,000
//! and 10,000 idle connections (clients in separate processes), memory per
//! subscription, and the time from `connect` to the first delivered message.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use netchan::{Config, Endpoint, Error, ErrorCode};

#[derive(Args)]
pub(crate) struct MemWorkerArgs {
    /// server or client.
    role: String,
    /// Address to listen on (server) or connect to (client).
    addr: String,
    /// Connections to open (client).
    #[arg(default_value_t = 0)]
    count: usize,
}

fn err(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::Io, detail)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The child side: an idle server, or a client holding `count` connections.
pub(crate) async fn worker(a: MemWorkerArgs) -> Result<(), Error> {
    let mut cfg = Config::named(format!("mem-{}-{}", a.role, std::process::id()));
    cfg.max_connections = 20_000;
    cfg.max_pending_handshakes = 2_000;
    // Idle links still heartbeat; keep that traffic low for the measurement.
    cfg.heartbeat_interval = Duration::from_secs(30);
    if a.role == "server" {
        let ep = Endpoint::new(cfg)?;
        let inner = ep.clone();
        let _svc = ep.serve_fn("mem/peers", move |_| {
            let n = inner.peers().len();
            async move { Ok(n.to_string().into_bytes().into()) }
        })?;
        println!("READY {}", ep.listen(&a.addr).await?);
        std::future::pending::<()>().await;
        Ok(())
    } else {
        let mut eps = Vec::with_capacity(a.count);
        for i in 0..a.count {
            let mut c = cfg.clone();
            c.name = Some(format!("mem-client-{}-{i}", std::process::id()));
            let ep = Endpoint::new(c)?;
            ep.connect(&a.addr).await?;
            eps.push(ep);
        }
        println!("READY {}", eps.len());
        std::future::pending::<()>().await;
        Ok(())
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String]) -> Result<(Kill, String), Error> {
    let exe = std::env::current_exe().map_err(|e| err(e.to_string()))?;
    // Raise the descriptor limit for the child (10,000 sockets).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(args)
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| err(e.to_string()))?;
    let out = child.stdout.take().ok_or_else(|| err("no stdout"))?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| err(e.to_string()))?;
    let rest = line
        .trim()
        .strip_prefix("READY ")
        .ok_or_else(|| err(format!("worker failed to start: {line:?}")))?
        .to_owned();
    Ok((Kill(child), rest))
}

pub(crate) async fn run() -> Result<(), Error> {
    println!("## Memory and connection setup\n");
    let (server, addr) = spawn(&[
        "mem-worker".into(),
        "server".into(),
        "tcp://127.0.0.1:0".into(),
    ])?;
    let pid = server.0.id();
    let probe = Endpoint::named(&format!("mem-probe-{}", std::process::id()))?;
    probe.connect(&addr).await?;
    let peers = || async {
        let r = probe
            .request("mem/peers", "", Duration::from_secs(10))
            .await?;
        Ok::<usize, Error>(String::from_utf8_lossy(&r).parse().unwrap_or(0))
    };
    let base = rss_kib(pid);
    println!("| idle connections | server RSS | per connection |");
    println!("|---|---|---|");
    println!("| 0 (+1 probe) | {:.1} MiB | - |", base as f64 / 1024.0);
    let mut clients = Vec::new();
    let mut open = 0;
    for target in [1_000usize, 10_000] {
        while open < target {
            let n = (target - open).min(1_000);
            let (c, _) = spawn(&[
                "mem-worker".into(),
                "client".into(),
                addr.clone(),
                n.to_string(),
            ])?;
            clients.push(c);
            open += n;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while peers().await? < target + 1 {
            if Instant::now() > deadline {
                return Err(err(format!(
                    "only {} of {target} connections came up",
                    peers().await?
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rss = rss_kib(pid);
        println!(
            "| {target} | {:.1} MiB | {:.1} KiB |",
            rss as f64 / 1024.0,
            (rss.saturating_sub(base)) as f64 / target as f64
        );
    }
    drop(clients);

    // Memory per subscription, in this process.
    let ep = Endpoint::named(&format!("mem-subs-{}", std::process::id()))?;
    let before = rss_kib(std::process::id());
    let n = 10_000;
    let subs: Vec<_> = (0..n)
        .map(|i| ep.subscribe(&format!("mem/sub/{i}/*")))
        .collect::<Result<_, _>>()?;
    let after = rss_kib(std::process::id());
    println!(
        "\n{n} subscriptions (distinct patterns, empty queues): {:.0} bytes each\n",
        (after.saturating_sub(before) * 1024) as f64 / n as f64
    );
    drop(subs);

    // Time from connect to the first delivered message.
    let server = Endpoint::named(&format!("mem-first-{}", std::process::id()))?;
    let saddr = server.listen("tcp://127.0.0.1:0").await?;
    let sub = server.subscribe("first/*")?;
    let mut times = Vec::new();
    for i in 0..50 {
        let c = Endpoint::named(&format!("mem-first-client-{i}"))?;
        let t0 = Instant::now();
        c.connect(&saddr).await?;
        c.publish("first/x", "hello").await?;
        sub.recv().await.ok_or_else(|| err("subscription closed"))?;
        times.push(t0.elapsed());
        c.close().await;
    }
    times.sort();
    println!(
        "connect -> first delivered message (TCP loopback, 50 fresh clients): median {:.0} us, max {:.0} us",
        times[25].as_secs_f64() * 1e6,
        times[49].as_secs_f64() * 1e6
    );
    Ok(())
}
