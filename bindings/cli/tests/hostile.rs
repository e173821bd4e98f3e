//! One hostile peer against a real endpoint process (`netchan target`):
//! each kind of input a peer can send is driven at full speed by a raw peer
//! that never reads, while a well-behaved client keeps making requests. The
//! target's peak RSS must stay within the per-peer bound its settings give
//! (docs/RELIABILITY.md, "Memory per peer") plus a small constant, and the
//! well-behaved client's every request must succeed (its latency is
//! printed beside the attack's figures).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use netchan::proto::{self, Decl, DeclKind, Declarations, Decoded, Frame, Hello};
use netchan::{Config, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::Listening;

const WATCHDOG: Duration = Duration::from_secs(60);
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The target's limits: small, so that a bound broken by a flood shows.
const SETTINGS: &[(&str, &str)] = &[
    ("max_frame_size", "64KiB"),
    ("send_buffer", "256KiB"),
    ("subscribe.capacity", "1024"),
    ("subscribe.max_bytes", "256KiB"),
    ("service_queue", "64"),
    ("service_queue_bytes", "256KiB"),
    ("handler_concurrency", "16"),
    ("max_declarations_per_peer", "20000"),
    ("max_declaration_bytes_per_peer", "256KiB"),
    // A peer that reads nothing is cut after the heartbeat window (3 x
    // this). Short enough to keep the tests quick, long enough that the
    // polite client's link survives a machine loaded by three copies of
    // this suite (at 300 ms the target dropped it now and then).
    ("heartbeat_interval", "1s"),
];

/// The per-peer bound of docs/RELIABILITY.md for [`SETTINGS`]: the read
/// buffer (1 MiB, plus max_frame_size and 128 KiB); owed frames (two
/// send_buffers, plus one read chunk of replies, 1 MiB); declarations (twice
/// their bytes, plus 24 per declaration); the service queue's bytes; the
/// subscription's (four times max_bytes); the received-path cache (three
/// times 256 KiB).
fn per_peer_bound() -> u64 {
    (MIB + 64 * KIB + 128 * KIB)
        + (2 * 256 * KIB + MIB)
        + (2 * 256 * KIB + 24 * 20_000)
        + 256 * KIB
        + 4 * 256 * KIB
        + 3 * 256 * KIB
}

/// What the process may add beyond the bound: allocator slack, the pages of
/// the runtime's threads as they run, the attacker's connection itself.
const SMALL_CONSTANT: u64 = 8 * MIB;

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

struct Target {
    proc: Listening,
}

impl Target {
    fn start() -> Target {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in SETTINGS {
            args.push("-o".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(["--log", "warn", "target", "--listen", "tcp://127.0.0.1:0"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Target {
            proc: Listening::start(&args),
        }
    }

    fn status(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.proc.child.id())).unwrap();
        let kb: u64 = s
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        kb * 1024
    }

    /// Resets the peak RSS (VmHWM) to the current RSS.
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.proc.child.id()), "5").unwrap();
    }

    async fn stats(&self, client: &Endpoint) -> String {
        let r = client
            .request("target/stats", "", Duration::from_secs(5))
            .await
            .unwrap();
        String::from_utf8(r.to_vec()).unwrap()
    }
}

fn stat(stats: &str, key: &str) -> u64 {
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {stats:?}"))
}

fn frame(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    proto::encode(&mut b, f).unwrap();
    b.to_vec()
}

/// A raw peer past the handshake, with a small receive buffer: it never
/// reads after this.
async fn raw_peer(addr: &str, name: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock
        .connect(addr.trim_start_matches("tcp://").parse().unwrap())
        .await
        .unwrap();
    s.write_all(&frame(&Frame::Hello(Hello {
        magic: proto::MAGIC.into(),
        min_version: netchan::proto::VERSION_MIN,
        max_version: netchan::proto::VERSION_MAX,
        name: name.into(),
        max_frame: 1 << 20,
        heartbeat_ms: 0,
        instance: 0,
        rejoin: false,
        link: 0,
    })))
    .await
    .unwrap();
    s.write_all(&frame(&Frame::SnapshotEnd)).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        match proto::decode(&mut buf, 1 << 24).unwrap() {
            Decoded::Frame(Frame::SnapshotEnd) => return s,
            Decoded::Frame(_) => {}
            Decoded::NeedMore(_) => {
                assert!(within(s.read_buf(&mut buf)).await.unwrap() > 0);
            }
        }
    }
}

/// The attacker's writes: the `i`th 64 KiB (or so) of the flood.
type Chunks = Box<dyn Fn(u64) -> Vec<u8> + Send>;

/// Cycles through prepared chunks.
fn cycle(chunks: Vec<Vec<u8>>) -> Chunks {
    Box::new(move |i| chunks[i as usize % chunks.len()].clone())
}

/// Writes `chunks` in turn, over and over, for up to `time` or until the
/// target closes the connection; returns the bytes written. The socket stays
/// open (and unread) until the target closes it.
async fn flood(mut s: TcpStream, chunks: Chunks, time: Duration) -> u64 {
    let end = Instant::now() + time;
    let mut sent = 0u64;
    for i in 0.. {
        let chunk = chunks(i);
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len() as u64,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    // Keep the connection, unread, until the target drops it (or the test
    // ends): closing it ourselves would free what the target holds for it.
    tokio::spawn(async move {
        let _ = s.writable().await;
        tokio::time::sleep(WATCHDOG).await;
        drop(s);
    });
    sent
}

/// Repeats `one` frame to fill a 64 KiB write.
fn repeated(one: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 * 1024);
    while v.len() + one.len() <= 64 * 1024 {
        v.extend_from_slice(one);
    }
    v
}

/// The attack in `chunks`, against a fresh target, beside a well-behaved
/// client that makes a request every 20 ms. With `expect_cut`, the attack
/// ends when the target has cut the attacker (counted an error and dropped
/// it; the watchdog bounds the wait), else after `time` of flooding. Checks
/// the target's peak RSS against the bound and that every polite request
/// succeeded; returns the target's counters after the attack.
async fn attack(what: &str, chunks: Chunks, time: Duration, expect_cut: bool) -> String {
    let target = Target::start();
    let addr = target.proc.addr.clone();
    let client = Endpoint::new(Config::named("polite")).unwrap();
    within(client.connect(&addr)).await.unwrap();
    client
        .request("svc/warm", "x", Duration::from_secs(5))
        .await
        .unwrap();
    let before = target.status("VmRSS:");
    target.reset_peak();
    let peer = raw_peer(&addr, "attacker").await;
    let started = Instant::now();
    let attacker = tokio::spawn(flood(peer, chunks, time));
    let mut times = Vec::new();
    let deadline = Instant::now() + WATCHDOG;
    let stats = loop {
        let t0 = Instant::now();
        let r = within(client.request("svc/polite", "ok", Duration::from_secs(5)))
            .await
            .unwrap_or_else(|e| panic!("{what}: a polite request failed during the attack: {e}"));
        assert_eq!(&r[..], b"ok");
        times.push(t0.elapsed());
        if attacker.is_finished() {
            let stats = target.stats(&client).await;
            // Cut: counted, and only the polite client is left.
            let cut = stat(&stats, "errors") >= 1 && stat(&stats, "peers") == 1;
            if !expect_cut || cut {
                break stats;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the attacker was never cut: {stats}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sent = within(attacker).await.unwrap();
    let peak = target.status("VmHWM:");
    times.sort();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{what}: attacker sent {:.1} MB; {} after {:?}; target RSS {:.1} MiB, peak +{:.1} MiB \
         (bound {:.1} + {:.0} MiB); {} polite requests all ok, p50 {:?}, max {:?}; {stats}",
        sent as f64 / 1e6,
        if expect_cut {
            "cut by the target"
        } else {
            "stopped"
        },
        started.elapsed(),
        before as f64 / MIB as f64,
        growth as f64 / MIB as f64,
        per_peer_bound() as f64 / MIB as f64,
        SMALL_CONSTANT as f64 / MIB as f64,
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1],
    );
    assert!(
        growth <= per_peer_bound() + SMALL_CONSTANT,
        "{what}: peak RSS grew by {growth} bytes, over the per-peer bound {} + {SMALL_CONSTANT}",
        per_peer_bound()
    );
    stats
}

/// PINGs, never reading the PONGs: what is owed to the peer is bounded
/// (its link is not read while it owes more than `send_buffer`), and a
/// peer that reads nothing for the heartbeat window is cut, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_from_a_peer_that_never_reads() {
    let chunk = repeated(&frame(&Frame::Ping(7)));
    let stats = attack(
        "PING flood",
        cycle(vec![chunk]),
        Duration::from_secs(3),
        true,
    )
    .await;
    assert!(stat(&stats, "errors") >= 1, "{stats}");
}

/// Small REQUESTs, never reading the RESULTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_flood_from_a_peer_that_never_reads() {
    // Ids never repeat (one in flight twice is a protocol error).
    let chunks: Chunks = Box::new(|i| {
        let mut chunk = Vec::new();
        let mut id = i * 10_000;
        while chunk.len() < 60 * 1024 {
            id += 1;
            chunk.extend(frame(&Frame::Request {
                id,
                path: "svc/a".into(),
                timeout_ms: 60_000,
                payload: bytes::Bytes::from_static(b"x"),
            }));
        }
        chunk
    });
    let stats = attack("small REQUEST flood", chunks, Duration::from_secs(3), true).await;
    assert!(stat(&stats, "errors") >= 1, "{stats}");
}

/// REQUESTs near the frame limit, never reading the RESULTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_request_flood_from_a_peer_that_never_reads() {
    let payload = bytes::Bytes::from(vec![7u8; 60 * 1024]);
    let chunks: Chunks = Box::new(move |i| {
        frame(&Frame::Request {
            id: i + 1,
            path: "svc/big".into(),
            timeout_ms: 60_000,
            payload: payload.clone(),
        })
    });
    attack("large REQUEST flood", chunks, Duration::from_secs(3), true).await;
}

/// DECLAREs of ever new patterns: refused at the limit, before the
/// declarations over it are stored (count, then bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaration_flood_is_refused_at_the_limit() {
    for (what, len) in [("short patterns", 4usize), ("1000-byte patterns", 1000)] {
        let mut n = 0u64;
        let chunks: Vec<Vec<u8>> = (0..40)
            .map(|_| {
                let items: Vec<Decl> = (0..(60 * 1024 / (len + 8)))
                    .map(|_| {
                        n += 1;
                        let mut p = format!("p/{n}/");
                        while p.len() < len {
                            p.push('x');
                        }
                        Decl {
                            declare: true,
                            kind: DeclKind::Interest,
                            pattern: p,
                        }
                    })
                    .collect();
                frame(&Frame::Declare(Declarations::new(&items)))
            })
            .collect();
        // Cut (counted) at the limit: the declarations over it are refused.
        attack(
            &format!("DECLARE flood, {what}"),
            cycle(chunks),
            Duration::from_secs(3),
            true,
        )
        .await;
    }
}

/// Tiny MESSAGEs for the unread subscription, each in a chunk of 64 KiB of
/// messages nobody subscribed to: the queued ones must not keep their whole
/// chunks alive (they are copied out), so the subscription's memory stays
/// within four times its byte bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_messages_in_large_chunks_do_not_pin_the_chunks() {
    let wanted = frame(&Frame::Message {
        path: bytes::Bytes::from_static(b"topic/x"),
        payload: bytes::Bytes::from_static(b"!"),
    });
    let junk = frame(&Frame::Message {
        path: bytes::Bytes::from_static(b"nobody/listens"),
        payload: bytes::Bytes::from(vec![0u8; 1000]),
    });
    let mut chunk = wanted.clone();
    while chunk.len() + junk.len() <= 64 * 1024 {
        chunk.extend_from_slice(&junk);
    }
    let stats = attack(
        "tiny MESSAGEs in 64 KiB chunks",
        cycle(vec![chunk]),
        Duration::from_secs(3),
        false,
    )
    .await;
    assert!(stat(&stats, "sub_queued") > 0, "{stats}");
}

/// MESSAGEs on ever new 1000-byte paths: the cache of received paths is
/// bounded in bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_ever_new_paths_do_not_grow_the_path_cache() {
    let mut n = 0u64;
    let chunks: Vec<Vec<u8>> = (0..200)
        .map(|_| {
            let mut c = Vec::new();
            while c.len() < 60 * 1024 {
                n += 1;
                let mut p = format!("new/{n}/");
                while p.len() < 1000 {
                    p.push('y');
                }
                c.extend(frame(&Frame::Message {
                    path: bytes::Bytes::from(p.into_bytes()),
                    payload: bytes::Bytes::new(),
                }));
            }
            c
        })
        .collect();
    attack(
        "MESSAGEs on new paths",
        cycle(chunks),
        Duration::from_secs(3),
        false,
    )
    .await;
}
