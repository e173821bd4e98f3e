//! `netchan bench`: publisher and subscriber (or client and echo server) in
//! two processes, for netchan and for a plain length-prefixed raw socket
//! (the physical floor), measured the same way in the same run.
//!
//! Throughput is timed at the subscriber from the first message to the last;
//! latency is the round trip of one request at a time, measured by the client.

#[path = "bench_stream.rs"]
mod stream;

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
    /// On a plain thread outside the runtime (a C or Python caller's),
    /// through the core's blocking calls (`request_blocking`,
    /// `recv_blocking`): each reply also wakes that thread.
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
    /// Measure one stream's throughput (64 KiB messages) beside the raw
    /// socket instead.
    #[arg(long)]
    streams: bool,
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

/// CPU time (user + system) this process has used so far (zero where
/// `getrusage` does not exist: Windows).
#[cfg(unix)]
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: getrusage writes only into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(not(unix))]
pub(crate) fn cpu_time() -> Duration {
    Duration::ZERO
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
            .args(forwarded())
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
        // Killed, it could not remove its socket file.
        if let Some(p) = self.addr.strip_prefix("unix://") {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The configuration `netchan bench` was started with (`-o`, `--tls-*`,
/// `--psk-file`): its endpoints and its workers' use it, so the bench
/// measures what a deployment configured that way gets.
static BASE: std::sync::OnceLock<Config> = std::sync::OnceLock::new();

/// The configuration of one of the bench's endpoints.
pub(crate) fn base(name: String) -> Config {
    let mut c = BASE.get().cloned().unwrap_or_default();
    c.name = Some(name);
    c
}

/// Whether netchan's TCP rows run over TLS (the bench got a certificate).
fn over_tls() -> bool {
    BASE.get()
        .and_then(|c| c.tls.as_ref())
        .is_some_and(|t| t.cert.is_some())
}

/// The transport's name in the tables: `Tcp`, `Tls`, `Tcp+psk`, `Unix`.
pub(crate) fn label(t: Transport) -> String {
    match t {
        Transport::Tcp if over_tls() => "Tls".into(),
        Transport::Tcp if BASE.get().is_some_and(|c| c.shared_keys.is_some()) => "Tcp+psk".into(),
        t => format!("{t:?}"),
    }
}

/// The settings that differ from the defaults, as `-o KEY=VALUE` for a
/// worker (its name aside).
fn forwarded() -> Vec<String> {
    let (Some(c), d) = (BASE.get(), Config::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in netchan::config::SETTINGS {
        let v = c.get(s.name).unwrap_or_default();
        if s.name != "name" && v != d.get(s.name).unwrap_or_default() {
            out.push("-o".to_owned());
            out.push(format!("{}={v}", s.name));
        }
    }
    out
}

pub(crate) fn addr_for(t: Transport, tag: &str, imp: Impl) -> String {
    match t {
        Transport::Unix => format!(
            "unix://{}/netchan-bench-{}-{tag}.sock",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        _ if imp == Impl::Netchan && over_tls() => "tls://127.0.0.1:0".into(),
        _ => "tcp://127.0.0.1:0".into(),
    }
}

fn payload(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// An endpoint connected to `addr`, made where a program of `caller`s
/// would have it: tasks share this program's runtime; a program of plain
/// threads has no runtime, so its endpoint runs on netchan's own (made and
/// connected from a plain thread, as C, Python and blocking Rust do).
async fn connected(caller: Caller, cfg: Config, addr: &str) -> Result<Endpoint, Error> {
    match caller {
        Caller::Task => {
            let ep = Endpoint::new(cfg)?;
            ep.connect(addr).await?;
            Ok(ep)
        }
        Caller::Thread => {
            let addr = addr.to_owned();
            on_a_plain_thread(move || {
                let ep = Endpoint::new(cfg)?;
                ep.block_on(ep.connect(&addr))??;
                Ok(ep)
            })
        }
    }
}

/// Runs `f` on a new plain thread (no runtime context) and waits for it.
fn on_a_plain_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| err("a setup thread panicked"))?
}

/// Messages per second measured at the subscriber, and the CPU time per
/// message of the publisher (sending all) and of the subscriber.
async fn throughput(
    t: Transport,
    imp: Impl,
    size: usize,
    count: u64,
    publisher: Caller,
) -> Result<(f64, Duration, Duration), Error> {
    let rr = Rr {
        caller: Caller::Thread,
        busy_poll: 0,
    };
    let w = Worker::spawn("sub", imp, &addr_for(t, "tp", imp), count, rr)?;
    let data = payload(size);
    match imp {
        Impl::Netchan => {
            let cfg = base(format!("bench-pub-{}", std::process::id()));
            let ep = connected(publisher, cfg, &w.addr).await?;
            if !ep
                .wait_for_subscribers("bench/data", Duration::from_secs(10))
                .await?
            {
                return Err(err("bench subscriber never declared its interest"));
            }
            let cpu0 = cpu_time();
            match publisher {
                Caller::Task => {
                    let e2 = ep.clone();
                    tokio::spawn(async move {
                        for _ in 0..count {
                            e2.publish("bench/data", data.clone()).await?;
                        }
                        Ok::<_, Error>(())
                    })
                    .await
                    .map_err(|e| err(e.to_string()))??;
                }
                Caller::Thread => {
                    let e2 = ep.clone();
                    std::thread::spawn(move || {
                        for _ in 0..count {
                            e2.publish_blocking("bench/data", data.clone())?;
                        }
                        Ok::<_, Error>(())
                    })
                    .join()
                    .map_err(|_| err("the publishing thread panicked"))??;
                }
            }
            let line = tokio::task::spawn_blocking(move || w.finish())
                .await
                .map_err(|e| err(e.to_string()))??;
            let cpu = cpu_time() - cpu0;
            ep.close().await;
            parse_done(&line, count, cpu)
        }
        Impl::Raw => {
            let addr = w.addr.clone();
            tokio::task::spawn_blocking(move || -> Result<(f64, Duration, Duration), Error> {
                let s = raw_connect(&addr)?;
                let cpu0 = cpu_time();
                let mut bw = BufWriter::with_capacity(64 * 1024, s);
                let len = (data.len() as u32).to_be_bytes();
                for _ in 0..count {
                    bw.write_all(&len)
                        .and_then(|_| bw.write_all(&data))
                        .map_err(|e| err(e.to_string()))?;
                }
                bw.flush().map_err(|e| err(e.to_string()))?;
                let line = w.finish()?;
                parse_done(&line, count, cpu_time() - cpu0)
            })
            .await
            .map_err(|e| err(e.to_string()))?
        }
    }
}

/// The subscriber's `DONE <n> <nanos> <cpu us>`: rate, and CPU per message
/// of the publisher (`cpu` for all of them) and of the subscriber.
fn parse_done(line: &str, count: u64, cpu: Duration) -> Result<(f64, Duration, Duration), Error> {
    let mut it = line.split_whitespace();
    if it.next() != Some("DONE") {
        return Err(err(format!("worker failed: {line:?}")));
    }
    let n: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let nanos: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let sub_cpu: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    if n != count {
        return Err(err(format!("subscriber got {n} of {count} messages")));
    }
    let per = |d: Duration| d / n.max(1) as u32;
    Ok((
        (n.saturating_sub(1)) as f64 / (nanos.max(1) as f64 / 1e9),
        per(cpu),
        per(Duration::from_micros(sub_cpu)),
    ))
}

/// Round trips of one request at a time; the first 1000 are not kept.
/// Also returns the CPU time this process used for all of them.
async fn round_trips(
    ep: Endpoint,
    data: Bytes,
    samples: usize,
) -> Result<(Vec<Duration>, Duration), Error> {
    let mut rtts = Vec::with_capacity(samples);
    let cpu0 = cpu_time();
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
    Ok((rtts, cpu_time() - cpu0))
}

/// [`round_trips`] from a plain thread, through `request_blocking`.
fn round_trips_blocking(
    ep: &Endpoint,
    data: Bytes,
    samples: usize,
) -> Result<(Vec<Duration>, Duration), Error> {
    let mut rtts = Vec::with_capacity(samples);
    let cpu0 = cpu_time();
    for i in 0..(1000 + samples) {
        let t0 = Instant::now();
        let r = ep.request_blocking("bench/echo", data.clone(), Duration::from_secs(5))?;
        let dt = t0.elapsed();
        if r.len() != data.len() {
            return Err(err("echo returned the wrong size"));
        }
        if i >= 1000 {
            rtts.push(dt);
        }
    }
    Ok((rtts, cpu_time() - cpu0))
}

/// What a latency run measured: round-trip times (sorted) and the CPU
/// time both processes used per round trip.
struct Latency {
    rtts: Vec<Duration>,
    cpu_client: Duration,
    cpu_server: Duration,
    /// From dialling to a connection ready for requests (for netchan: the
    /// TCP, TLS or shared-key handshake, HELLO and declarations).
    setup: Duration,
}

/// Round-trip times, sorted, and CPU per round trip.
async fn latency(
    t: Transport,
    imp: Impl,
    size: usize,
    samples: usize,
    rr: Rr,
) -> Result<Latency, Error> {
    let w = Worker::spawn("echo", imp, &addr_for(t, "lat", imp), 0, rr)?;
    let data = payload(size);
    let (mut rtts, cpu);
    let mut setup = Duration::ZERO;
    match imp {
        Impl::Netchan => {
            let mut cfg = base(format!("bench-req-{}", std::process::id()));
            cfg.busy_poll = Duration::from_micros(rr.busy_poll);
            let t0 = Instant::now();
            let ep = connected(rr.caller, cfg, &w.addr).await?;
            setup = t0.elapsed();
            (rtts, cpu) = match rr.caller {
                Caller::Task => tokio::spawn(round_trips(ep.clone(), data, samples))
                    .await
                    .map_err(|e| err(e.to_string()))??,
                Caller::Thread => {
                    let e2 = ep.clone();
                    std::thread::spawn(move || round_trips_blocking(&e2, data, samples))
                        .join()
                        .map_err(|_| err("the client thread panicked"))??
                }
            };
            ep.close().await;
        }
        Impl::Raw => {
            let addr = w.addr.clone();
            (rtts, cpu) =
                tokio::task::spawn_blocking(move || -> Result<(Vec<Duration>, Duration), Error> {
                    let mut s = raw_connect(&addr)?;
                    let mut buf = vec![0u8; size];
                    let mut frame = Vec::with_capacity(4 + size);
                    frame.extend_from_slice(&(size as u32).to_be_bytes());
                    frame.extend_from_slice(&data);
                    let mut v = Vec::with_capacity(samples);
                    let cpu0 = cpu_time();
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
                    Ok((v, cpu_time() - cpu0))
                })
                .await
                .map_err(|e| err(e.to_string()))??;
        }
    }
    // The server reports the CPU time it used, once the client is gone.
    let line = tokio::task::spawn_blocking(move || w.finish())
        .await
        .map_err(|e| err(e.to_string()))??;
    let server = line
        .strip_prefix("CPU ")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(Duration::from_micros)
        .ok_or_else(|| err(format!("echo worker did not report its CPU time: {line:?}")))?;
    rtts.sort();
    let n = (1000 + samples) as u32;
    Ok(Latency {
        rtts,
        cpu_client: cpu / n,
        cpu_server: server / n,
        setup,
    })
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
        #[cfg(unix)]
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
        #[cfg(unix)]
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
pub(crate) async fn worker(a: WorkerArgs, cfg: Config) -> Result<(), Error> {
    let _ = BASE.set(cfg);
    if a.role == "ssink" {
        return stream::sink(a).await;
    }
    match (a.imp, a.role.as_str()) {
        (Impl::Netchan, role) => {
            let mut cfg = base(format!("bench-{role}-{}", std::process::id()));
            cfg.busy_poll = Duration::from_micros(a.busy_poll);
            if role == "sub" {
                let ep = Endpoint::new(cfg)?;
                let sub = ep.subscribe("bench/data")?;
                let bound = ep.listen(&a.addr).await?;
                println!("READY {bound}");
                let mut batch = Vec::with_capacity(1024);
                let mut n = 0u64;
                let mut first = None;
                let cpu0 = cpu_time();
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
                println!("DONE {n} {nanos} {}", (cpu_time() - cpu0).as_micros());
                ep.close().await;
            } else {
                // The echo service's endpoint is made where its caller
                // lives (see `connected`).
                let (ep, bound) = match a.caller {
                    Caller::Task => {
                        let ep = Endpoint::new(cfg)?;
                        let bound = ep.listen(&a.addr).await?;
                        (ep, bound)
                    }
                    Caller::Thread => {
                        let addr = a.addr.clone();
                        on_a_plain_thread(move || {
                            let ep = Endpoint::new(cfg)?;
                            let bound = ep.block_on(ep.listen(&addr))??;
                            Ok((ep, bound))
                        })?
                    }
                };
                let svc = ep.serve("bench/echo")?;
                let mut events = ep.events();
                println!("READY {bound}");
                let cpu0 = cpu_time();
                let echo = match a.caller {
                    Caller::Task => tokio::spawn(async move {
                        while let Some((req, reply)) = svc.recv().await {
                            reply.send(req.payload().clone());
                        }
                    }),
                    // A plain thread: a runtime's blocking-pool thread counts
                    // as async context, where blocking calls refuse.
                    Caller::Thread => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        std::thread::spawn(move || {
                            while let Ok(Some((req, reply))) = svc.recv_blocking(None) {
                                reply.send(req.payload().clone());
                            }
                            let _ = tx.send(());
                        });
                        tokio::spawn(async move {
                            let _ = rx.await;
                        })
                    }
                };
                // Until the client is gone; then the CPU time used.
                loop {
                    match events.recv().await {
                        netchan::EventRecv::Event(netchan::Event::PeerDown { .. })
                        | netchan::EventRecv::Closed => break,
                        _ => {}
                    }
                }
                println!("CPU {}", (cpu_time() - cpu0).as_micros());
                ep.close().await;
                let _ = echo.await;
            }
            Ok(())
        }
        (Impl::Raw, role) => {
            let role = role.to_owned();
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                let (bound, accept) = raw_listen(&a.addr)?;
                println!("READY {bound}");
                std::io::stdout().flush().ok();
                let s = accept().map_err(|e| err(e.to_string()))?;
                let cpu0 = cpu_time();
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
                    println!("DONE {n} {nanos} {}", (cpu_time() - cpu0).as_micros());
                } else {
                    println!("CPU {}", (cpu_time() - cpu0).as_micros());
                }
                Ok(())
            })
            .await
            .map_err(|e| err(e.to_string()))?
        }
    }
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

pub(crate) async fn run(a: BenchArgs, cfg: Config) -> Result<(), Error> {
    let _ = BASE.set(cfg);
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
    if a.streams {
        return stream::table(&a, transports).await;
    }
    if !a.latency_only {
        throughput_table(&a, transports).await?;
    }
    latency_table(&a, transports).await
}

async fn throughput_table(a: &BenchArgs, transports: &[Transport]) -> Result<(), Error> {
    println!(
        "## Pub/sub throughput (publisher and subscriber in separate processes; netchan publishes {}; median of {} run(s))\n",
        match a.caller {
            Caller::Task => "from a runtime task",
            Caller::Thread => "from a plain thread (publish_blocking)",
        },
        a.runs
    );
    println!("CPU: user + system time per message, publisher + subscriber (median run).\n");
    println!("| transport | payload | netchan msg/s | netchan MB/s | CPU/msg | raw msg/s | raw MB/s | raw CPU/msg | netchan/raw | spread (min-max netchan msg/s) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let ns = |d: Duration| d.as_nanos();
    for &t in transports {
        for &size in &a.sizes {
            let count = count_for(size, a.quick);
            let mut nc = Vec::new();
            let mut raw = Vec::new();
            for _ in 0..a.runs {
                nc.push(throughput(t, Impl::Netchan, size, count, a.caller).await?);
                raw.push(throughput(t, Impl::Raw, size, count, a.caller).await?);
            }
            nc.sort_by(|x, y| x.0.total_cmp(&y.0));
            raw.sort_by(|x, y| x.0.total_cmp(&y.0));
            let n = nc[nc.len() / 2];
            let r = raw[raw.len() / 2];
            println!(
                "| {} | {} | {} | {:.0} | {}+{} ns | {} | {:.0} | {}+{} ns | {:.2} | {} - {} |",
                label(t),
                fmt_size(size),
                fmt_rate(n.0),
                n.0 * size as f64 / 1e6,
                ns(n.1),
                ns(n.2),
                fmt_rate(r.0),
                r.0 * size as f64 / 1e6,
                ns(r.1),
                ns(r.2),
                n.0 / r.0,
                fmt_rate(nc[0].0),
                fmt_rate(nc[nc.len() - 1].0)
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
        "\n## Request/reply round trip, one at a time ({} samples after 1000 warm-up; median run of {}; netchan's client and service run {}{busy})\n",
        a.samples,
        a.runs,
        match a.caller {
            Caller::Task => "in runtime tasks",
            Caller::Thread => "on plain threads (request_blocking, recv_blocking)",
        }
    );
    println!(
        "CPU: user + system time of client and server per 10,000 round trips (warm-up included).\n"
    );
    println!("| transport | payload | netchan p50 | p99 | p99.9 | CPU client+server | raw p50 | p99 | p99.9 | raw CPU | p50 ratio | p99 ratio | p50 spread | netchan set-up |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &t in transports {
        for &size in &a.latency_sizes {
            let pick = |v: &[Duration], q: f64| {
                v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
            };
            // Per run: p50, p99, p99.9 (us), client and server CPU per 10k
            // (ms), connection set-up (ms).
            let row = |l: &Latency| {
                [
                    pick(&l.rtts, 0.5),
                    pick(&l.rtts, 0.99),
                    pick(&l.rtts, 0.999),
                    l.cpu_client.as_secs_f64() * 1e7,
                    l.cpu_server.as_secs_f64() * 1e7,
                    l.setup.as_secs_f64() * 1e3,
                ]
            };
            let mut runs_n = Vec::new();
            let mut runs_r = Vec::new();
            for _ in 0..a.runs {
                let rr = Rr {
                    caller: a.caller,
                    busy_poll: a.busy_poll,
                };
                runs_n.push(row(&latency(t, Impl::Netchan, size, a.samples, rr).await?));
                runs_r.push(row(&latency(t, Impl::Raw, size, a.samples, rr).await?));
            }
            runs_n.sort_by(|a, b| a[0].total_cmp(&b[0]));
            runs_r.sort_by(|a, b| a[0].total_cmp(&b[0]));
            let n = runs_n[runs_n.len() / 2];
            let r = runs_r[runs_r.len() / 2];
            println!(
                "| {} | {} | {:.1} us | {:.1} us | {:.1} us | {:.0}+{:.0} ms | {:.1} us | {:.1} us | {:.1} us | {:.0}+{:.0} ms | {:.2} | {:.2} | {:.1}-{:.1} us | {:.2} ms |",
                label(t),
                fmt_size(size),
                n[0],
                n[1],
                n[2],
                n[3],
                n[4],
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                n[0] / r[0],
                n[1] / r[1],
                runs_n[0][0],
                runs_n[runs_n.len() - 1][0],
                n[5],
            );
        }
    }
    Ok(())
}
