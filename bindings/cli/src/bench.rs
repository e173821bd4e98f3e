//! `netchan bench`: publisher and subscriber (or client and echo server) in
//! two processes, for netchan and for a plain length-prefixed raw socket
//! (the physical floor), measured the same way in the same run.
//!
//! Throughput is timed at the subscriber from the first message to the last;
//! latency is the round trip of one request at a time, measured by the client.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use netchan::{Config, Endpoint, Error, ErrorCode};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub(crate) enum Transport {
    Tcp,
    Unix,
    Both,
}

/// Where netchan's request/reply client and echo service run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub(crate) enum Caller {
    /// In a task on the runtime, as an async service runs: the reply wakes
    /// the waiting task on the thread that read it.
    Task,
    /// On the thread that called `block_on` (a plain `main`), outside the
    /// runtime's worker threads: each reply also wakes that thread.
    Thread,
}

/// How netchan's request/reply side runs.
#[derive(Clone, Copy, Debug)]
struct Rr {
    caller: Caller,
    /// `Config::busy_poll`, in microseconds.
    busy_poll: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub(crate) enum Impl {
    Netchan,
    Raw,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Which transports to measure.
    #[arg(long, value_enum, default_value = "both")]
    transport: Transport,
    /// Payload sizes for throughput, in bytes.
    #[arg(long, value_delimiter = ',', default_value = "8,1024,65536,1048576")]
    sizes: Vec<usize>,
    /// Payload sizes for request/reply latency, in bytes.
    #[arg(long, value_delimiter = ',', default_value = "8,1024")]
    latency_sizes: Vec<usize>,
    /// Round trips measured per latency row (after 1000 warm-up ones).
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Send about 1/20 of the usual message counts (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Repeat each measurement this many times and report the median and spread.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Where netchan's request/reply client and echo service run.
    #[arg(long, value_enum, default_value = "task")]
    caller: Caller,
    /// `Config::busy_poll` of netchan's request/reply endpoints, in
    /// microseconds (0 to 1000000; it acts with `--caller thread` only).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    busy_poll: u64,
    /// Measure request/reply latency only (no throughput section).
    #[arg(long)]
    latency_only: bool,
    /// Measure memory (idle connections, subscriptions) and connect-to-first-message time instead.
    #[arg(long)]
    memory: bool,
}

#[derive(Args)]
pub(crate) struct WorkerArgs {
    #[arg(long)]
    role: String,
    #[arg(long, value_enum)]
    imp: Impl,
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 0)]
    count: u64,
    #[arg(long, value_enum, default_value = "task")]
    caller: Caller,
    #[arg(long, default_value_t = 0)]
    busy_poll: u64,
}

fn err(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::Io, detail)
}

fn count_for(size: usize, quick: bool) -> u64 {
    let n: u64 = match size {
        0..=64 => 2_000_000,
        65..=4096 => 1_000_000,
        4097..=262_144 => (2_500_000_000 / size as u64).max(1000),
        _ => (2_500_000_000 / size as u64).max(200),
    };
    if quick {
        (n / 20).max(50)
    } else {
        n
    }
}

struct Worker {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    addr: String,
}

impl Worker {
    fn spawn(role: &str, imp: Impl, addr: &str, count: u64, rr: Rr) -> Result<Worker, Error> {
        let exe = std::env::current_exe().map_err(|e| err(format!("current_exe: {e}")))?;
        let mut child = Command::new(exe)
            .args(["bench-worker", "--role", role, "--imp"])
            .arg(match imp {
                Impl::Netchan => "netchan",
                Impl::Raw => "raw",
            })
            .args(["--addr", addr, "--count", &count.to_string(), "--caller"])
            .arg(match rr.caller {
                Caller::Task => "task",
                Caller::Thread => "thread",
            })
            .args(["--busy-poll", &rr.busy_poll.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("spawning the bench worker: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| err("worker has no stdout"))?;
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line)
            .map_err(|e| err(format!("reading worker: {e}")))?;
        let addr = line
            .strip_prefix("READY ")
            .ok_or_else(|| err(format!("worker did not start: {line:?}")))?
            .trim()
            .to_owned();
        Ok(Worker { child, out, addr })
    }

    fn finish(mut self) -> Result<String, Error> {
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .map_err(|e| err(format!("reading worker: {e}")))?;
        let _ = self.child.wait();
        Ok(line)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_for(t: Transport, tag: &str) -> String {
    match t {
        Transport::Unix => format!(
            "unix://{}/netchan-bench-{}-{tag}.sock",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        _ => "tcp://127.0.0.1:0".into(),
    }
}

fn payload(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Messages per second measured at the subscriber.
async fn throughput(t: Transport, imp: Impl, size: usize, count: u64) -> Result<f64, Error> {
    let rr = Rr {
        caller: Caller::Thread,
        busy_poll: 0,
    };
    let w = Worker::spawn("sub", imp, &addr_for(t, "tp"), count, rr)?;
    let data = payload(size);
    match imp {
        Impl::Netchan => {
            let ep = Endpoint::new(Config::named(format!("bench-pub-{}", std::process::id())))?;
            ep.connect(&w.addr).await?;
            if !ep
                .wait_for_subscribers("bench/data", Duration::from_secs(10))
                .await?
            {
                return Err(err("bench subscriber never declared its interest"));
            }
            for _ in 0..count {
                ep.publish("bench/data", data.clone()).await?;
            }
            let line = tokio::task::spawn_blocking(move || w.finish())
                .await
                .map_err(|e| err(e.to_string()))??;
            ep.close().await;
            parse_done(&line, count)
        }
        Impl::Raw => {
            let addr = w.addr.clone();
            tokio::task::spawn_blocking(move || -> Result<f64, Error> {
                let s = raw_connect(&addr)?;
                let mut bw = BufWriter::with_capacity(64 * 1024, s);
                let len = (data.len() as u32).to_be_bytes();
                for _ in 0..count {
                    bw.write_all(&len)
                        .and_then(|_| bw.write_all(&data))
                        .map_err(|e| err(e.to_string()))?;
                }
                bw.flush().map_err(|e| err(e.to_string()))?;
                let line = w.finish()?;
                parse_done(&line, count)
            })
            .await
            .map_err(|e| err(e.to_string()))?
        }
    }
}

fn parse_done(line: &str, count: u64) -> Result<f64, Error> {
    let mut it = line.split_whitespace();
    if it.next() != Some("DONE") {
        return Err(err(format!("worker failed: {line:?}")));
    }
    let n: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let nanos: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    if n != count {
        return Err(err(format!("subscriber got {n} of {count} messages")));
    }
    Ok((n.saturating_sub(1)) as f64 / (nanos.max(1) as f64 / 1e9))
}

/// Round trips of one request at a time; the first 1000 are not kept.
async fn round_trips(ep: Endpoint, data: Bytes, samples: usize) -> Result<Vec<Duration>, Error> {
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..(1000 + samples) {
        let t0 = Instant::now();
        let r = ep
            .request("bench/echo", data.clone(), Duration::from_secs(5))
            .await?;
        let dt = t0.elapsed();
        if r.len() != data.len() {
            return Err(err("echo returned the wrong size"));
        }
        if i >= 1000 {
            rtts.push(dt);
        }
    }
    Ok(rtts)
}

/// Round-trip times, sorted.
async fn latency(
    t: Transport,
    imp: Impl,
    size: usize,
    samples: usize,
    rr: Rr,
) -> Result<Vec<Duration>, Error> {
    let w = Worker::spawn("echo", imp, &addr_for(t, "lat"), 0, rr)?;
    let data = payload(size);
    let mut rtts;
    match imp {
        Impl::Netchan => {
            let mut cfg = Config::named(format!("bench-req-{}", std::process::id()));
            cfg.busy_poll = Duration::from_micros(rr.busy_poll);
            let ep = Endpoint::new(cfg)?;
            ep.connect(&w.addr).await?;
            let run = round_trips(ep.clone(), data, samples);
            rtts = match rr.caller {
                Caller::Task => tokio::spawn(run).await.map_err(|e| err(e.to_string()))??,
                Caller::Thread => run.await?,
            };
            ep.close().await;
        }
        Impl::Raw => {
            let addr = w.addr.clone();
            rtts = tokio::task::spawn_blocking(move || -> Result<Vec<Duration>, Error> {
                let mut s = raw_connect(&addr)?;
                let mut buf = vec![0u8; size];
                let mut frame = Vec::with_capacity(4 + size);
                frame.extend_from_slice(&(size as u32).to_be_bytes());
                frame.extend_from_slice(&data);
                let mut v = Vec::with_capacity(samples);
                for i in 0..(1000 + samples) {
                    let t0 = Instant::now();
                    s.write_all(&frame).map_err(|e| err(e.to_string()))?;
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).map_err(|e| err(e.to_string()))?;
                    s.read_exact(&mut buf).map_err(|e| err(e.to_string()))?;
                    if i >= 1000 {
                        v.push(t0.elapsed());
                    }
                }
                Ok(v)
            })
            .await
            .map_err(|e| err(e.to_string()))??;
        }
    }
    drop(w);
    rtts.sort();
    Ok(rtts)
}

trait RawStream: Read + Write + Send {}
impl<T: Read + Write + Send> RawStream for T {}

fn raw_connect(addr: &str) -> Result<Box<dyn RawStream>, Error> {
    match netchan::Addr::parse(addr)? {
        netchan::Addr::Tcp { host, port } => {
            let s = std::net::TcpStream::connect((host.as_str(), port))
                .map_err(|e| err(e.to_string()))?;
            s.set_nodelay(true).map_err(|e| err(e.to_string()))?;
            Ok(Box::new(s))
        }
        netchan::Addr::Unix(p) => Ok(Box::new(
            std::os::unix::net::UnixStream::connect(p).map_err(|e| err(e.to_string()))?,
        )),
        _ => Err(err("unsupported address")),
    }
}

type Acceptor = Box<dyn Fn() -> std::io::Result<Box<dyn RawStream>>>;

fn raw_listen(addr: &str) -> Result<(String, Acceptor), Error> {
    match netchan::Addr::parse(addr)? {
        netchan::Addr::Tcp { host, port } => {
            let l = std::net::TcpListener::bind((host.as_str(), port))
                .map_err(|e| err(e.to_string()))?;
            let a = l.local_addr().map_err(|e| err(e.to_string()))?;
            Ok((
                format!("tcp://{a}"),
                Box::new(move || {
                    let (s, _) = l.accept()?;
                    s.set_nodelay(true)?;
                    Ok(Box::new(s) as Box<dyn RawStream>)
                }),
            ))
        }
        netchan::Addr::Unix(p) => {
            let _ = std::fs::remove_file(&p);
            let l = std::os::unix::net::UnixListener::bind(&p).map_err(|e| err(e.to_string()))?;
            Ok((
                addr.to_owned(),
                Box::new(move || {
                    let (s, _) = l.accept()?;
                    Ok(Box::new(s) as Box<dyn RawStream>)
                }),
            ))
        }
        _ => Err(err("unsupported address")),
    }
}

/// The child side of a measurement.
pub(crate) async fn worker(a: WorkerArgs) -> Result<(), Error> {
    match (a.imp, a.role.as_str()) {
        (Impl::Netchan, role) => {
            let mut cfg = Config::named(format!("bench-{role}-{}", std::process::id()));
            cfg.busy_poll = Duration::from_micros(a.busy_poll);
            let ep = Endpoint::new(cfg)?;
            if role == "sub" {
                let sub = ep.subscribe("bench/data")?;
                let bound = ep.listen(&a.addr).await?;
                println!("READY {bound}");
                let mut batch = Vec::with_capacity(1024);
                let mut n = 0u64;
                let mut first = None;
                while n < a.count {
                    batch.clear();
                    let got = sub.recv_many(&mut batch, 1024).await;
                    if got == 0 {
                        break;
                    }
                    first.get_or_insert_with(Instant::now);
                    n += got as u64;
                }
                let nanos = first.map(|f| f.elapsed().as_nanos()).unwrap_or(0);
                println!("DONE {n} {nanos}");
            } else {
                let svc = ep.serve("bench/echo")?;
                let bound = ep.listen(&a.addr).await?;
                println!("READY {bound}");
                let echo = async move {
                    while let Some((req, reply)) = svc.recv().await {
                        reply.send(req.payload().clone());
                    }
                };
                match a.caller {
                    Caller::Task => tokio::spawn(echo).await.map_err(|e| err(e.to_string()))?,
                    Caller::Thread => echo.await,
                }
            }
            ep.close().await;
            Ok(())
        }
        (Impl::Raw, role) => {
            let role = role.to_owned();
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                let (bound, accept) = raw_listen(&a.addr)?;
                println!("READY {bound}");
                std::io::stdout().flush().ok();
                let s = accept().map_err(|e| err(e.to_string()))?;
                let mut r = BufReader::with_capacity(64 * 1024, s);
                let mut buf = Vec::new();
                let mut out = Vec::new();
                let mut n = 0u64;
                let mut first = None;
                loop {
                    let mut len = [0u8; 4];
                    if r.read_exact(&mut len).is_err() {
                        break;
                    }
                    first.get_or_insert_with(Instant::now);
                    buf.resize(u32::from_be_bytes(len) as usize, 0);
                    r.read_exact(&mut buf).map_err(|e| err(e.to_string()))?;
                    n += 1;
                    if role == "echo" {
                        out.clear();
                        out.extend_from_slice(&len);
                        out.extend_from_slice(&buf);
                        r.get_mut()
                            .write_all(&out)
                            .map_err(|e| err(e.to_string()))?;
                    } else if n == a.count {
                        break;
                    }
                }
                if role == "sub" {
                    let nanos = first.map(|f| f.elapsed().as_nanos()).unwrap_or(0);
                    println!("DONE {n} {nanos}");
                }
                Ok(())
            })
            .await
            .map_err(|e| err(e.to_string()))?
        }
    }
}

fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_size(s: usize) -> String {
    match s {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

pub(crate) async fn run(a: BenchArgs) -> Result<(), Error> {
    if a.memory {
        return crate::membench::run().await;
    }
    if a.runs == 0 || a.samples == 0 || a.sizes.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "--runs, --samples and --sizes must be non-zero",
        ));
    }
    let transports: &[Transport] = match a.transport {
        Transport::Both => &[Transport::Tcp, Transport::Unix],
        Transport::Tcp => &[Transport::Tcp],
        Transport::Unix => &[Transport::Unix],
    };
    if !a.latency_only {
        throughput_table(&a, transports).await?;
    }
    latency_table(&a, transports).await
}

async fn throughput_table(a: &BenchArgs, transports: &[Transport]) -> Result<(), Error> {
    println!("## Pub/sub throughput (publisher and subscriber in separate processes; median of {} run(s))\n", a.runs);
    println!("| transport | payload | netchan msg/s | netchan MB/s | raw msg/s | raw MB/s | netchan/raw | spread (min-max netchan msg/s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for &t in transports {
        for &size in &a.sizes {
            let count = count_for(size, a.quick);
            let mut nc = Vec::new();
            let mut raw = Vec::new();
            for _ in 0..a.runs {
                nc.push(throughput(t, Impl::Netchan, size, count).await?);
                raw.push(throughput(t, Impl::Raw, size, count).await?);
            }
            let (n, nmin, nmax) = median(&mut nc);
            let (r, _, _) = median(&mut raw);
            println!(
                "| {t:?} | {} | {} | {:.0} | {} | {:.0} | {:.2} | {} - {} |",
                fmt_size(size),
                fmt_rate(n),
                n * size as f64 / 1e6,
                fmt_rate(r),
                r * size as f64 / 1e6,
                n / r,
                fmt_rate(nmin),
                fmt_rate(nmax)
            );
        }
    }
    Ok(())
}

async fn latency_table(a: &BenchArgs, transports: &[Transport]) -> Result<(), Error> {
    let busy = if a.busy_poll > 0 {
        format!(", busy-polling up to {} us", a.busy_poll)
    } else {
        String::new()
    };
    println!(
        "\n## Request/reply round trip, one at a time ({} samples after 1000 warm-up; median run; netchan's client and service run {}{busy})\n",
        a.samples,
        match a.caller {
            Caller::Task => "in runtime tasks",
            Caller::Thread => "on the threads that called block_on",
        }
    );
    println!("| transport | payload | netchan p50 | p99 | p99.9 | raw p50 | p99 | p99.9 | p50 ratio | p99 ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &t in transports {
        for &size in &a.latency_sizes {
            let pick = |v: &[Duration], q: f64| {
                v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
            };
            let mut runs_n = Vec::new();
            let mut runs_r = Vec::new();
            for _ in 0..a.runs {
                let rr = Rr {
                    caller: a.caller,
                    busy_poll: a.busy_poll,
                };
                let n = latency(t, Impl::Netchan, size, a.samples, rr).await?;
                let r = latency(t, Impl::Raw, size, a.samples, rr).await?;
                runs_n.push([pick(&n, 0.5), pick(&n, 0.99), pick(&n, 0.999)]);
                runs_r.push([pick(&r, 0.5), pick(&r, 0.99), pick(&r, 0.999)]);
            }
            runs_n.sort_by(|a, b| a[0].total_cmp(&b[0]));
            runs_r.sort_by(|a, b| a[0].total_cmp(&b[0]));
            let n = runs_n[runs_n.len() / 2];
            let r = runs_r[runs_r.len() / 2];
            println!(
                "| {t:?} | {} | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.2} | {:.2} |",
                fmt_size(size),
                n[0],
                n[1],
                n[2],
                r[0],
                r[1],
                r[2],
                n[0] / r[0],
                n[1] / r[1]
            );
        }
    }
    Ok(())
}
