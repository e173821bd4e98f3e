//! The amplification budget: for every frame kind, the memory an endpoint
//! allocates while a peer sends the worst case of that kind, divided by the
//! bytes the peer sent, stays within the figure docs/RELIABILITY.md writes
//! down ("Amplification budget"). A counting allocator measures the heap
//! (live bytes at their peak), so the figures are exact and do not depend
//! on the machine's load.
//!
//! Each case sends its frames on an established connection (a raw peer
//! that never reads), waits until the endpoint has handled all of them, and
//! compares the heap's peak with its size before. Limits are set high so
//! that nothing is refused: what is measured is what the frames cost, not
//! where a limit cuts them off.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netchan::proto::{self, Decl, DeclKind, Declarations, Decoded, Frame, Hello};
use netchan::{Config, Endpoint, SubscribeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only read by the test.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let now = if new >= l.size() {
            LIVE.fetch_add(new - l.size(), Relaxed) + (new - l.size())
        } else {
            LIVE.fetch_sub(l.size() - new, Relaxed) - (l.size() - new)
        };
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WATCHDOG: Duration = Duration::from_secs(30);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

fn frame(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    proto::encode(&mut b, f).unwrap();
    b.to_vec()
}

/// The endpoint under test: limits out of the way, an unread subscription
/// on `t/**`, a service on `s/**` whose requests are never taken.
async fn target() -> (Endpoint, String, netchan::Subscription, netchan::Service) {
    let mut cfg = Config::named("target");
    cfg.max_declarations_per_peer = 10_000_000;
    cfg.max_declaration_bytes_per_peer = 1 << 30;
    cfg.service_queue = 10_000_000;
    cfg.service_queue_bytes = 1 << 30;
    cfg.send_buffer = 1 << 30;
    cfg.heartbeat_interval = Duration::from_secs(60);
    let ep = Endpoint::new(cfg).unwrap();
    let sub = ep
        .subscribe_with("t/**", {
            let mut o = SubscribeOptions::default();
            o.capacity = 10_000_000;
            o.max_bytes = 1 << 30;
            o
        })
        .unwrap();
    let svc = ep.serve("s/**").unwrap();
    let addr = ep.listen("tcp://127.0.0.1:0").await.unwrap();
    (ep, addr, sub, svc)
}

async fn raw_peer(addr: &str) -> TcpStream {
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
        name: "attacker".into(),
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

/// Sends `frames` from a fresh raw peer, then a sentinel REQUEST; once the
/// target has counted `requests + 1` requests in, it has handled every frame
/// before the sentinel (frames are handled in order). Returns the heap's
/// growth at its peak divided by the bytes of `frames`.
async fn ratio(what: &str, frames: Vec<Vec<u8>>, requests: u64) -> f64 {
    let (ep, addr, sub, svc) = target().await;
    let mut peer = raw_peer(&addr).await;
    let wire: Vec<u8> = frames.concat();
    let n = frames.len();
    drop(frames);
    let sentinel = frame(&Frame::Request {
        id: u64::MAX,
        path: "s/sentinel".into(),
        timeout_ms: 60_000,
        payload: Bytes::new(),
    });
    // Let the connection settle, then start counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    within(peer.write_all(&wire)).await.unwrap();
    within(peer.write_all(&sentinel)).await.unwrap();
    within(async {
        while ep
            .stats()
            .peers
            .iter()
            .map(|p| p.counters.requests_in)
            .sum::<u64>()
            <= requests
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let peak = PEAK.load(Relaxed);
    let r = peak.saturating_sub(before) as f64 / wire.len() as f64;
    eprintln!(
        "{what}: {n} frames, {} bytes sent; heap peak +{} bytes: {r:.2}x",
        wire.len(),
        peak - before
    );
    drop((peer, sub, svc));
    ep.close().await;
    r
}

/// Sends `frames` from a fresh raw peer, the last of which ends the
/// connection; returns the heap's growth at its peak, until the target has
/// dropped the peer, divided by the bytes sent.
async fn ratio_until_closed(what: &str, frames: Vec<Vec<u8>>) -> f64 {
    let (ep, addr, sub, svc) = target().await;
    let mut peer = raw_peer(&addr).await;
    let wire: Vec<u8> = frames.concat();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    within(peer.write_all(&wire)).await.unwrap();
    within(async {
        while !ep.peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let peak = PEAK.load(Relaxed);
    let r = peak.saturating_sub(before) as f64 / wire.len() as f64;
    eprintln!(
        "{what}: {} bytes sent; heap peak +{} bytes: {r:.2}x",
        wire.len(),
        peak - before
    );
    drop((peer, sub, svc));
    ep.close().await;
    r
}

/// The heap a connection costs while it has sent one byte of its HELLO
/// (a pending handshake), per connection, over 100 of them.
async fn pending_connection_cost() -> usize {
    let (ep, addr, sub, svc) = target().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(addr.trim_start_matches("tcp://"))
            .await
            .unwrap();
        s.write_all(&[0]).await.unwrap();
        conns.push(s);
    }
    // Each has been accepted and read once the server's HELLO arrived.
    for s in &mut conns {
        let mut b = [0u8; 1];
        within(s.read_exact(&mut b)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let per = PEAK.load(Relaxed).saturating_sub(before) / 100;
    eprintln!("pending handshake: {per} bytes of heap per connection");
    drop((conns, sub, svc));
    ep.close().await;
    per
}

/// The figures of docs/RELIABILITY.md, "Amplification budget", checked
/// against measurements: (what, measured, budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_kind_stays_within_its_amplification_budget() {
    const BYTES: usize = 512 * 1024;
    let mut results = Vec::new();

    // MESSAGE to an unread subscription, empty payload: each one queued.
    let one = frame(&Frame::Message {
        path: Bytes::from_static(b"t/x"),
        payload: Bytes::new(),
    });
    let k = BYTES / one.len();
    let r = ratio("MESSAGE queued", vec![one; k], 0).await;
    results.push(("MESSAGE queued for a subscription", r, 8.0));

    // MESSAGE with a 1-byte payload to the unread subscription, each one in
    // a chunk with a large message nobody wants (the payload must not keep
    // the chunk alive).
    let frames: Vec<Vec<u8>> = (0..64)
        .flat_map(|_| {
            [
                frame(&Frame::Message {
                    path: Bytes::from_static(b"t/x"),
                    payload: Bytes::from_static(b"!"),
                }),
                frame(&Frame::Message {
                    path: Bytes::from_static(b"nobody"),
                    payload: Bytes::from(vec![0u8; 8000]),
                }),
            ]
        })
        .collect();
    let r = ratio("MESSAGE queued beside junk", frames, 0).await;
    results.push(("MESSAGE queued, beside unwanted bytes", r, 2.0));

    // MESSAGE on new short paths nobody subscribed to: cached routes.
    let frames: Vec<Vec<u8>> = (0..BYTES / 16)
        .map(|i| {
            frame(&Frame::Message {
                path: Bytes::from(format!("{:x}", i + 0x10000).into_bytes()),
                payload: Bytes::new(),
            })
        })
        .collect();
    let r = ratio("MESSAGE new paths", frames, 0).await;
    results.push(("MESSAGE on new paths (route cache)", r, 6.0));

    // REQUEST to a service that never takes them: each one queued.
    let k = (BYTES / 16) as u64;
    let frames: Vec<Vec<u8>> = (1..=k)
        .map(|id| {
            frame(&Frame::Request {
                id,
                path: "s/x".into(),
                timeout_ms: 60_000,
                payload: Bytes::new(),
            })
        })
        .collect();
    let r = ratio("REQUEST queued", frames, k).await;
    results.push(("REQUEST queued for a service", r, 24.0));

    // DECLARE of tiny patterns: each one stored.
    let mut next = 0u64;
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let items: Vec<Decl> = (0..1000)
                .map(|_| {
                    next += 1;
                    Decl {
                        declare: true,
                        kind: DeclKind::Interest,
                        pattern: format!("{next:x}"),
                    }
                })
                .collect();
            frame(&Frame::Declare(Declarations::new(&items)))
        })
        .collect();
    let r = ratio("DECLARE", frames, 0).await;
    results.push(("DECLARE (declarations stored)", r, 6.0));

    // PING, never reading the PONGs: each PONG owed.
    let one = frame(&Frame::Ping(u64::MAX));
    let k = BYTES / one.len();
    let r = ratio("PING", vec![one; k], 0).await;
    results.push(("PING (PONG owed)", r, 3.0));

    // REQUEST with a payload filling most of its chunk: shared, not copied.
    let payload = Bytes::from(vec![1u8; 8000]);
    let k = (BYTES / 8000) as u64;
    let frames: Vec<Vec<u8>> = (1..=k)
        .map(|id| {
            frame(&Frame::Request {
                id,
                path: "s/x".into(),
                timeout_ms: 60_000,
                payload: payload.clone(),
            })
        })
        .collect();
    let r = ratio("REQUEST 8 KB queued", frames, k).await;
    results.push(("REQUEST with an 8 KB payload queued", r, 3.0));

    // PONG, RESULT, CANCEL nobody asked for: nothing is kept.
    for (what, one) in [
        ("PONG unsolicited", frame(&Frame::Pong(u64::MAX))),
        (
            "RESULT for no request",
            frame(&Frame::Result {
                id: 7,
                code: 303,
                message: "x".repeat(900),
                payload: Bytes::new(),
            }),
        ),
        ("CANCEL for no request", frame(&Frame::Cancel(7))),
    ] {
        let k = BYTES / one.len();
        let r = ratio(what, vec![one; k], 0).await;
        // Nothing is kept: what shows is the read buffer (see the docs).
        results.push((what, r, 3.0));
    }

    // Frames that end the connection.
    let close = frame(&Frame::Close {
        code: 0,
        reason: "r".repeat(60_000),
    });
    let r = ratio_until_closed("CLOSE with a 60 KB reason", vec![close]).await;
    results.push(("CLOSE with a 60 KB reason (reason cut at 1 KiB)", r, 2.0));

    let mut failed = Vec::new();
    // A second SNAPSHOT_END closes the connection: a fixed cost, in bytes.
    let second_snapshot_end = vec![frame(&Frame::SnapshotEnd)];
    let r = ratio_until_closed("SNAPSHOT_END, a second", second_snapshot_end).await;
    if r * 10.0 > 1024.0 {
        failed.push(format!(
            "a second SNAPSHOT_END cost {} bytes, over 1 KiB",
            r * 10.0
        ));
    }
    // A pending handshake: a fixed cost per connection, in bytes.
    let per = pending_connection_cost().await;
    if per > 8 * 1024 {
        failed.push(format!("a pending handshake costs {per} bytes, over 8 KiB"));
    }
    for (what, r, budget) in &results {
        if r > budget {
            failed.push(format!("{what}: {r:.2}x over its budget of {budget}x"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
