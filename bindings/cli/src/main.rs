//! `netchan`: the command-line tool over the netchan core.
//!
//! Output contract (scripts rely on it): `sub` prints one line per message,
//! `PATH<TAB>PAYLOAD`, the payload as text when it is UTF-8 without control
//! characters and as lowercase hex otherwise; `req` prints the reply the same
//! way. Errors go to stderr as `netchan: CODE: detail` with exit status 1;
//! bad arguments exit with status 2.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use netchan::{Config, Endpoint, Error, ErrorCode, Event, EventRecv};

mod bench;
mod cert;
mod demo;
mod membench;
mod streams;
mod target;

#[derive(Parser)]
#[command(
    name = "netchan",
    version,
    about = "Network channels: publish, subscribe, serve, request, stream, ping, bench"
)]
struct Cli {
    /// Endpoint name (default: random).
    #[arg(long, global = true)]
    name: Option<String>,
    /// Log level for netchan's logs on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Set an endpoint setting, e.g. `-o send_buffer=1MiB -o hello_timeout=500ms`
    /// (repeatable; `netchan settings` lists them).
    #[arg(short = 'o', long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    security: Security,
    #[command(subcommand)]
    cmd: Cmd,
}

/// TLS and plaintext settings (docs/SECURITY.md); each is also a
/// `-o` setting (`tls.cert`, ..., `insecure`).
#[derive(Args, Clone, Default)]
struct Security {
    /// This endpoint's TLS certificate chain (a PEM file), to listen on tls:// (or for mutual TLS).
    #[arg(long, global = true, value_name = "PEM")]
    tls_cert: Option<String>,
    /// The private key of --tls-cert (a PEM file).
    #[arg(long, global = true, value_name = "PEM")]
    tls_key: Option<String>,
    /// CA certificates (a PEM file) that sign the peers' certificates, to dial tls:// (or check clients).
    #[arg(long, global = true, value_name = "PEM")]
    tls_ca: Option<String>,
    /// Peers' certificates (a PEM file) trusted as they are, instead of a CA.
    #[arg(long, global = true, value_name = "PEM")]
    tls_pinned: Option<String>,
    /// Ask tls:// clients for a certificate: none, optional or required (mutual TLS).
    #[arg(long, global = true, value_name = "POLICY")]
    tls_client_auth: Option<String>,
    /// The name the dialled peer's certificate must carry, instead of the address's host.
    #[arg(long, global = true, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Shared keys (a file made by `netchan keygen`): tcp:// links prove a key and are encrypted.
    #[arg(long, global = true, value_name = "FILE")]
    psk_file: Option<String>,
    /// Allow plaintext tcp:// beyond this host (refused by default).
    #[arg(long, global = true)]
    insecure: bool,
    /// Access rules (a file of `allow IDENTITY ACTIONS PATH` lines): what each peer may do; anything else is denied.
    #[arg(long, global = true, value_name = "FILE")]
    acl: Option<String>,
}

impl Security {
    /// The settings these flags stand for.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = [
            ("tls.cert", &self.tls_cert),
            ("tls.key", &self.tls_key),
            ("tls.ca", &self.tls_ca),
            ("tls.pinned", &self.tls_pinned),
            ("tls.client_auth", &self.tls_client_auth),
            ("tls.server_name", &self.tls_server_name),
            ("psk", &self.psk_file),
            ("acl", &self.acl),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect();
        if self.insecure {
            v.push(("insecure", "true".into()));
        }
        v
    }
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct Where {
    /// Connect to an endpoint at ADDR (tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH, or pipe://NAME on Windows).
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// Listen on ADDR and wait for peers; the bound address is printed on stderr.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run two endpoints on this machine and show pub/sub, request/reply and ping.
    Demo {
        /// Address for the demo server (default: a free TCP port on 127.0.0.1).
        #[arg(long, default_value = "tcp://127.0.0.1:0")]
        addr: String,
    },
    /// Print messages matching PATTERN, one `PATH<TAB>PAYLOAD` line each.
    Sub {
        /// Pattern: `/`-separated, `*` matches one segment, `**` any number.
        pattern: String,
        #[command(flatten)]
        at: Where,
        /// Exit after N messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Publish DATA (or each line of stdin) on PATH.
    Pub {
        /// Concrete path (no wildcards).
        path: String,
        /// Payload; without it, each stdin line is one message (unless --size).
        data: Option<String>,
        #[command(flatten)]
        at: Where,
        /// Publish the message N times.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Payload of BYTES generated bytes instead of DATA.
        #[arg(long, value_name = "BYTES")]
        size: Option<usize>,
        /// At most this many messages per second.
        #[arg(long, value_name = "PER_SEC")]
        rate: Option<f64>,
        /// Wait up to MS for a matching subscriber before publishing.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        wait_ms: u64,
    },
    /// Answer requests on PATH (a pattern) with --echo or --reply TEXT.
    Serve {
        /// Pattern to serve.
        path: String,
        #[command(flatten)]
        at: Where,
        /// Reply with the request payload.
        #[arg(long, conflicts_with = "reply")]
        echo: bool,
        /// Reply with TEXT.
        #[arg(long, value_name = "TEXT")]
        reply: Option<String>,
        /// Fail every request with this error text (code HANDLER_ERROR).
        #[arg(long, value_name = "TEXT", conflicts_with_all = ["echo", "reply"])]
        fail: Option<String>,
        /// Wait MS before answering (for trying timeouts).
        #[arg(long, value_name = "MS", default_value_t = 0)]
        delay_ms: u64,
        /// Exit after answering N requests.
        #[arg(long)]
        count: Option<u64>,
        /// Answer at most N requests at once (default: the endpoint's
        /// `handler_concurrency`, 256).
        #[arg(long, value_name = "N")]
        max_concurrent: Option<usize>,
        /// At most N requests waiting; past that a request is refused with
        /// BUFFER_FULL (default: the endpoint's `service_queue`, 1024).
        #[arg(long, value_name = "N")]
        queue: Option<usize>,
    },
    /// Open a stream on PATH: stdin goes to it, what comes back to stdout.
    Stream(streams::StreamArgs),
    /// Serve streams on PATTERN with --echo or --exec CMD.
    ServeStream(streams::ServeStreamArgs),
    /// Send a request and print the reply.
    Req {
        /// Concrete path.
        path: String,
        /// Payload (default: empty).
        data: Option<String>,
        /// Endpoint to send it to.
        #[arg(long, value_name = "ADDR")]
        connect: String,
        /// Give up after MS.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// List the settings `-o KEY=VALUE` takes, with their values (defaults
    /// unless set with `-o`).
    Settings,
    /// Make a CA (once per directory) and a certificate it signs, for tls://.
    Cert(cert::CertArgs),
    /// Make a shared key named ID and append it to FILE (made owner-only), for --psk-file.
    Keygen {
        /// The key's id (1 to 64 printable characters, e.g. the month it starts: 2026-12).
        id: String,
        /// The key file to append the key to.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Endpoint names the key's holders may take, comma-separated, `*`
        /// for any run of characters (default: any name).
        #[arg(long, value_name = "PATTERNS")]
        names: Option<String>,
    },
    /// Measure round-trip times to the endpoint at ADDR.
    Ping {
        /// Address to connect to.
        addr: String,
        /// Number of pings.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Measure throughput and latency between two processes, beside a raw socket.
    Bench(bench::BenchArgs),
    #[command(hide = true)]
    BenchWorker(bench::WorkerArgs),
    #[command(hide = true)]
    MemWorker(membench::MemWorkerArgs),
    #[command(hide = true)]
    Target(target::TargetArgs),
}

/// Formats a payload for a line of output.
pub(crate) fn show(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => payload.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Publishes at most `1 / interval` messages per second.
struct Pace {
    interval: Option<Duration>,
    start: Instant,
    sent: u64,
}

impl Pace {
    async fn publish(&mut self, ep: &Endpoint, path: &str, payload: Bytes) -> Result<(), Error> {
        if let Some(i) = self.interval {
            tokio::time::sleep_until((self.start + i.mul_f64(self.sent as f64)).into()).await;
        }
        self.sent += 1;
        ep.publish(path, payload).await
    }
}

/// The configuration from `--name` and every `-o KEY=VALUE`.
fn config(cli: &Cli) -> Result<Config, Error> {
    let mut cfg = Config::default();
    cfg.name = cli.name.clone();
    for kv in &cli.set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("-o {kv}: expected KEY=VALUE"),
            ));
        };
        cfg.set(k.trim(), v.trim())?;
    }
    for (k, v) in cli.security.settings() {
        cfg.set(k, &v)?;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn endpoint(cfg: &Config) -> Result<Endpoint, Error> {
    Endpoint::new(cfg.clone())
}

async fn attach(ep: &Endpoint, at: &Where) -> Result<(), Error> {
    if let Some(addr) = &at.listen {
        let bound = ep.listen(addr).await?;
        eprintln!("listening on {bound}");
    }
    if let Some(addr) = &at.connect {
        ep.connect(addr).await?;
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Error> {
    let cfg = config(&cli)?;
    match cli.cmd {
        Cmd::Settings => {
            for s in netchan::config::SETTINGS {
                let value = cfg.get(s.name).unwrap_or_default();
                println!("{:<36} {:<12} {}", s.name, value, s.doc);
            }
            Ok(())
        }
        Cmd::Demo { addr } => demo::run(&addr).await,
        Cmd::Cert(args) => cert::run(&args),
        Cmd::Keygen { id, out, names } => cert::keygen(&id, &out, names.as_deref()),
        Cmd::Sub { pattern, at, count } => {
            let ep = endpoint(&cfg)?;
            report_losses(&ep);
            let sub = ep.subscribe(&pattern)?;
            attach(&ep, &at).await?;
            let mut out = std::io::stdout().lock();
            let mut n = 0u64;
            while count.is_none_or(|c| n < c) {
                let Some(m) = sub.recv().await else { break };
                // A closed stdout (`| head`) ends the command quietly.
                if writeln!(out, "{}\t{}", m.path(), show(m.payload()))
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    break;
                }
                n += 1;
            }
            ep.close().await;
            Ok(())
        }
        Cmd::Pub {
            path,
            data,
            at,
            count,
            size,
            rate,
            wait_ms,
        } => {
            netchan::path::validate_path(&path)?;
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "--rate must be a positive number",
                ));
            }
            let ep = endpoint(&cfg)?;
            attach(&ep, &at).await?;
            if !ep
                .wait_for_subscribers(&path, Duration::from_millis(wait_ms))
                .await?
            {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!("no subscriber for {path} appeared within {wait_ms} ms"),
                ));
            }
            let mut pace = Pace {
                interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
                start: Instant::now(),
                sent: 0,
            };
            match (data, size) {
                (Some(d), _) => {
                    let p = Bytes::from(d.into_bytes());
                    for _ in 0..count {
                        pace.publish(&ep, &path, p.clone()).await?;
                    }
                }
                (None, Some(n)) => {
                    let p: Bytes = (0..n)
                        .map(|i| b'a' + (i % 26) as u8)
                        .collect::<Vec<u8>>()
                        .into();
                    for _ in 0..count {
                        pace.publish(&ep, &path, p.clone()).await?;
                    }
                }
                (None, None) => {
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
                    std::thread::spawn(move || {
                        for line in std::io::stdin().lock().lines() {
                            let Ok(line) = line else { break };
                            if tx.blocking_send(line).is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(line) = rx.recv().await {
                        pace.publish(&ep, &path, Bytes::from(line.into_bytes()))
                            .await?;
                    }
                }
            }
            ep.close().await;
            Ok(())
        }
        Cmd::Serve {
            path,
            at,
            echo,
            reply,
            fail,
            delay_ms,
            count,
            max_concurrent,
            queue,
        } => {
            if !echo && reply.is_none() && fail.is_none() {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "serve needs --echo, --reply TEXT or --fail TEXT",
                ));
            }
            let ep = endpoint(&cfg)?;
            let mut opts = netchan::ServeOptions::default();
            opts.max_concurrent = max_concurrent;
            opts.queue = queue;
            // A zero bound is refused here (INVALID_ARGUMENT).
            let svc = ep.serve_with(&path, opts)?;
            let concurrent = max_concurrent.unwrap_or(cfg.handler_concurrency);
            attach(&ep, &at).await?;
            // At most `concurrent` requests in hand at once; more wait in the
            // service's queue, where callers take turns.
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent));
            let mut n = 0u64;
            while count.is_none_or(|c| n < c) {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let Some((req, rep)) = svc.recv().await else {
                    break;
                };
                n += 1;
                let (reply, fail) = (reply.clone(), fail.clone());
                let work = async move {
                    if delay_ms > 0 {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                            _ = req.cancelled() => return,
                        }
                    }
                    if let Some(text) = fail {
                        rep.fail(Error::new(ErrorCode::HandlerError, text));
                    } else if let Some(text) = reply {
                        rep.send(text.into_bytes());
                    } else {
                        rep.send(req.payload().clone());
                    }
                    drop(slot);
                };
                if count.is_some() {
                    work.await;
                } else {
                    tokio::spawn(work);
                }
            }
            ep.close().await;
            Ok(())
        }
        Cmd::Req {
            path,
            data,
            connect,
            timeout_ms,
        } => {
            netchan::path::validate_path(&path)?;
            if timeout_ms == 0 {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "--timeout-ms must be greater than zero",
                ));
            }
            let ep = endpoint(&cfg)?;
            ep.connect(&connect).await?;
            let r = ep
                .request(
                    &path,
                    data.unwrap_or_default().into_bytes(),
                    Duration::from_millis(timeout_ms),
                )
                .await;
            ep.close().await;
            println!("{}", show(&r?));
            Ok(())
        }
        Cmd::Ping { addr, count } => {
            if count == 0 {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "--count must be at least 1",
                ));
            }
            let ep = endpoint(&cfg)?;
            let peer = ep.connect(&addr).await?;
            let mut rtts = Vec::with_capacity(count);
            for i in 0..count {
                let rtt = ep.ping(&peer.name).await?;
                println!(
                    "pong from {} seq={i} rtt={:.1} us",
                    peer.name,
                    rtt.as_secs_f64() * 1e6
                );
                rtts.push(rtt);
            }
            ep.close().await;
            rtts.sort();
            let q =
                |p: f64| rtts[((rtts.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
            println!(
                "rtt min/p50/p99/max = {:.1}/{:.1}/{:.1}/{:.1} us",
                q(0.0),
                q(0.5),
                q(0.99),
                q(1.0)
            );
            Ok(())
        }
        Cmd::Stream(args) => {
            let ep = endpoint(&cfg)?;
            let r = streams::open(&ep, args).await;
            ep.close().await;
            r
        }
        Cmd::ServeStream(args) => {
            let ep = endpoint(&cfg)?;
            streams::serve(&ep, cfg.handler_concurrency, args).await
        }
        Cmd::Bench(args) => bench::run(args, cfg).await,
        Cmd::BenchWorker(args) => bench::worker(args, cfg).await,
        Cmd::MemWorker(args) => membench::worker(args).await,
        Cmd::Target(args) => target::run(&cfg, args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("netchan={}", cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("netchan=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netchan: IO: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netchan: {e}");
            ExitCode::from(1)
        }
    }
}

/// Says on stderr what a subscriber did not get: messages its queue
/// dropped, and messages lost with a link (counted when the publisher and
/// this endpoint meet again), one line per `Dropped` event:
/// `netchan: N message(s) dropped at SITE (CODE)`.
fn report_losses(ep: &Endpoint) {
    let mut events = ep.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                EventRecv::Closed => break,
                EventRecv::Event(Event::Dropped { site, code, count }) => {
                    let how = if code == ErrorCode::PeerLost {
                        "lost with the link to"
                    } else {
                        "dropped at"
                    };
                    eprintln!("netchan: {count} message(s) {how} {site} ({code})");
                }
                _ => {}
            }
        }
    });
}
