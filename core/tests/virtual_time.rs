//! Timing promises in virtual time: heartbeat detection, the HELLO timeout,
//! redial backoff, drop-event coalescing, the stalled-peer policy.
//!
//! Every test runs on a paused tokio clock (`start_paused`), with endpoints
//! connected over `inproc://` pipes: nothing crosses the operating system,
//! so the clock only moves when every task is waiting, and it jumps straight
//! to the next timer. A bound like "detected within one heartbeat interval
//! of the window" is then exact, whatever the machine's load, and a test
//! that waits for seconds of virtual time takes milliseconds.

use std::time::Duration;

use bytes::BytesMut;
use netchan::proto::{self, Decl, DeclKind, Declarations, Decoded, Frame, Hello};
use netchan::transport::{raw_connect, RawConn, RawListener};
use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv, Overflow, SubscribeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// In virtual time: the wait ends as soon as nothing else can happen.
const WATCHDOG: Duration = Duration::from_secs(600);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: nothing more could happen")
}

fn config(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_millis(100);
    c.heartbeat_misses = 3;
    c.reconnect.min_delay = Duration::from_millis(100);
    c.reconnect.max_delay = Duration::from_secs(5);
    c.reconnect.jitter = 0.0;
    c
}

async fn next_event(events: &mut netchan::Events, mut f: impl FnMut(&Event) -> bool) -> Event {
    loop {
        match within(events.recv()).await {
            EventRecv::Event(e) if f(&e) => return e,
            EventRecv::Closed => panic!("events closed"),
            _ => {}
        }
    }
}

fn frame(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    proto::encode(&mut b, f).unwrap();
    b.to_vec()
}

/// Plays the handshake of a peer named `name` on `raw` (with `decls`), up
/// to the other side's SNAPSHOT_END; returns what was read after it.
async fn handshake(raw: &mut RawConn, name: &str, decls: Vec<Decl>) -> BytesMut {
    let mut out = frame(&Frame::Hello(Hello {
        magic: proto::MAGIC.into(),
        min_version: netchan::proto::VERSION_MIN,
        max_version: netchan::proto::VERSION_MAX,
        name: name.into(),
        max_frame: 1 << 20,
        heartbeat_ms: 0,
        instance: 0,
        rejoin: false,
        link: 0,
    }));
    if !decls.is_empty() {
        out.extend(frame(&Frame::Declare(Declarations::new(&decls))));
    }
    out.extend(frame(&Frame::SnapshotEnd));
    raw.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        match proto::decode(&mut buf, 1 << 24).unwrap() {
            Decoded::Frame(Frame::SnapshotEnd) => return buf,
            Decoded::Frame(_) => {}
            Decoded::NeedMore(_) => assert!(within(raw.read_buf(&mut buf)).await.unwrap() > 0),
        }
    }
}

/// A peer that completes the handshake and then says nothing is declared
/// lost no sooner than `heartbeat_interval x heartbeat_misses` after it last
/// spoke and no later than one interval after that (the check runs once
/// per interval); meanwhile it was pinged.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_lost_within_one_interval_of_the_heartbeat_window() {
    let cfg = config("watcher");
    let (interval, misses) = (cfg.heartbeat_interval, cfg.heartbeat_misses);
    let ep = Endpoint::new(cfg).unwrap();
    ep.listen("inproc://vt-silent").await.unwrap();
    let mut events = ep.events();
    let mut raw = raw_connect("inproc://vt-silent").await.unwrap();
    let mut buf = handshake(&mut raw, "silent", vec![]).await;
    let spoke = Instant::now();
    let down = next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let took = spoke.elapsed();
    let Event::PeerDown { code, reason, .. } = down else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::PeerLost);
    assert!(reason.contains("heard nothing"), "{reason}");
    let window = interval * misses;
    assert!(
        took >= window && took <= window + interval,
        "lost after {took:?}; the window is {window:?}, checked every {interval:?}"
    );
    // It pinged the quiet peer before giving up on it (read all it wrote:
    // the link is closed after the loss).
    while within(raw.read_buf(&mut buf)).await.unwrap_or(0) > 0 {}
    let mut pings = 0;
    while let Ok(Decoded::Frame(f)) = proto::decode(&mut buf, 1 << 24) {
        pings += matches!(f, Frame::Ping(_)) as u32;
    }
    assert!(pings >= misses - 1, "{pings} pings");
}

/// Two endpoints with nothing to say keep their link for a long quiet
/// spell: each answers the other's pings.
#[tokio::test(start_paused = true)]
async fn a_quiet_live_peer_is_never_lost() {
    let a = Endpoint::new(config("quiet-a")).unwrap();
    a.listen("inproc://vt-quiet").await.unwrap();
    let b = Endpoint::new(config("quiet-b")).unwrap();
    let mut events = b.events();
    b.connect("inproc://vt-quiet").await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!((a.peers().len(), b.peers().len()), (1, 1));
    while let Some(e) = events.try_recv() {
        assert!(
            !matches!(e, EventRecv::Event(Event::PeerDown { .. })),
            "{e:?}"
        );
    }
}

/// An inbound connection that sends nothing is closed, with a CLOSE saying
/// TIMEOUT, exactly `hello_timeout` after it connected.
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_says_hello_is_closed_at_the_hello_timeout() {
    let mut cfg = config("door");
    cfg.hello_timeout = Duration::from_millis(700);
    let hello_timeout = cfg.hello_timeout;
    let ep = Endpoint::new(cfg).unwrap();
    ep.listen("inproc://vt-hello").await.unwrap();
    let mut raw = raw_connect("inproc://vt-hello").await.unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    within(raw.read_to_end(&mut got)).await.unwrap();
    assert_eq!(t0.elapsed(), hello_timeout);
    let mut b = BytesMut::from(&got[..]);
    let mut last = None;
    while let Ok(Decoded::Frame(f)) = proto::decode(&mut b, 1 << 24) {
        last = Some(f);
    }
    match last {
        Some(Frame::Close { code, .. }) => assert_eq!(code, ErrorCode::Timeout.as_u16()),
        other => panic!("expected a CLOSE, got {other:?}"),
    }
    assert_eq!(ep.stats().total.errors, 1);
}

/// After a loss, a dialler redials with delays `min_delay x factor^k`,
/// capped at `max_delay` (jitter 0 here), each attempt one delay after the
/// last; `reconnect_now` skips the delay being waited out.
#[tokio::test(start_paused = true)]
async fn redial_delays_grow_by_the_factor_up_to_the_cap() {
    let server = Endpoint::new(config("gone")).unwrap();
    server.listen("inproc://vt-backoff").await.unwrap();
    let cfg = config("dialler");
    let r = cfg.reconnect.clone();
    let dialler = Endpoint::new(cfg).unwrap();
    let mut events = dialler.events();
    dialler.connect("inproc://vt-backoff").await.unwrap();
    server.close().await;
    let mut want = r.min_delay;
    let mut last_at: Option<(Instant, Duration)> = None;
    for attempt in 1..=9u32 {
        let e = next_event(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
        let now = Instant::now();
        let Event::Reconnecting {
            attempt: a, delay, ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!((a, delay), (attempt, want), "attempt {attempt}");
        if let Some((t, d)) = last_at {
            // The attempt after a delay of d came d after its announcement.
            assert_eq!(now - t, d, "attempt {attempt}");
        }
        last_at = Some((now, delay));
        want = (want.mul_f64(r.factor)).min(r.max_delay);
    }
    // Waiting out a 5 s delay now: reconnect_now makes the attempt at once.
    let before = Instant::now();
    dialler.reconnect_now();
    next_event(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert_eq!(Instant::now(), before, "the attempt did not wait");
}

/// With jitter, each delay is within `factor` of the nominal one, up or down.
#[tokio::test(start_paused = true)]
async fn redial_delays_stay_within_their_jitter() {
    let server = Endpoint::new(config("gone2")).unwrap();
    server.listen("inproc://vt-jitter").await.unwrap();
    let mut cfg = config("dialler2");
    cfg.reconnect.jitter = 0.2;
    let r = cfg.reconnect.clone();
    let dialler = Endpoint::new(cfg).unwrap();
    let mut events = dialler.events();
    dialler.connect("inproc://vt-jitter").await.unwrap();
    server.close().await;
    let mut nominal = r.min_delay;
    for attempt in 1..=8u32 {
        let e = next_event(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
        let Event::Reconnecting { delay, .. } = e else {
            unreachable!()
        };
        let (lo, hi) = (
            nominal.mul_f64(1.0 - r.jitter),
            nominal.mul_f64(1.0 + r.jitter),
        );
        assert!(
            delay >= lo && delay <= hi,
            "attempt {attempt}: {delay:?} not in {lo:?}..{hi:?}"
        );
        nominal = nominal.mul_f64(r.factor).min(r.max_delay);
    }
}

/// Drops are reported once per site per 20 ms window, with the whole count:
/// a burst is one event, a later burst another.
#[tokio::test(start_paused = true)]
async fn drop_events_are_coalesced_per_window() {
    let ep = Endpoint::new(config("dropper")).unwrap();
    let mut opts = SubscribeOptions::default();
    opts.capacity = 1;
    opts.overflow = Overflow::DropNewest;
    let _sub = ep.subscribe_with("d", opts).unwrap();
    let mut events = ep.events();
    let t0 = Instant::now();
    for _ in 0..1000 {
        let _ = ep.publish("d", "x").await;
    }
    let e = next_event(&mut events, |e| matches!(e, Event::Dropped { .. })).await;
    assert_eq!(
        Instant::now() - t0,
        Duration::from_millis(20),
        "one window later"
    );
    assert!(
        matches!(e, Event::Dropped { count: 999, ref site, code } if site == "d" && code == ErrorCode::BufferFull),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events.try_recv().is_none(), "one event for the burst");
    for _ in 0..10 {
        let _ = ep.publish("d", "x").await;
    }
    let e = next_event(&mut events, |e| matches!(e, Event::Dropped { .. })).await;
    assert!(matches!(e, Event::Dropped { count: 10, .. }), "{e:?}");
}

/// A peer that declares an interest and never reads costs the publisher
/// one `send_timeout` wait, after which it is skipped at once; a healthy
/// subscriber on another link loses nothing. (20 MB of 1 KiB messages.)
#[tokio::test(start_paused = true)]
async fn a_stalled_peer_costs_one_send_timeout_and_never_the_others() {
    let mut cfg = config("pub");
    cfg.send_buffer = 64 * 1024;
    cfg.send_timeout = Duration::from_secs(1);
    // The frozen peer answers no pings: heartbeats would cut it first.
    cfg.heartbeat_interval = Duration::from_secs(60);
    let send_timeout = cfg.send_timeout;
    let publisher = Endpoint::new(cfg).unwrap();
    publisher.listen("inproc://vt-stall").await.unwrap();
    let mut frozen = raw_connect("inproc://vt-stall").await.unwrap();
    let interest = Decl {
        declare: true,
        kind: DeclKind::Interest,
        pattern: "data".into(),
    };
    handshake(&mut frozen, "frozen", vec![interest]).await;
    // From here on the frozen peer reads nothing (and its pipe fills).
    let healthy = Endpoint::new(config("healthy")).unwrap();
    let sub = healthy.subscribe("data").unwrap();
    healthy.connect("inproc://vt-stall").await.unwrap();
    while publisher.subscribers("data").unwrap().len() != 2 {
        publisher
            .wait_for_subscribers("data", Duration::from_millis(10))
            .await
            .unwrap();
    }
    let mut events = publisher.events();
    let n = 20_000u32;
    let receiver = tokio::spawn(async move {
        for _ in 0..n {
            within(sub.recv()).await.unwrap();
        }
    });
    let t0 = Instant::now();
    let payload = vec![7u8; 1024];
    let mut failed = 0u64;
    for _ in 0..n {
        if publisher.publish("data", payload.clone()).await.is_err() {
            failed += 1;
        }
    }
    let took = t0.elapsed();
    assert!(
        took >= send_timeout && took < 2 * send_timeout,
        "{took:?}: the frozen peer should cost one send_timeout"
    );
    assert!(failed > 0);
    within(receiver).await.unwrap();
    let st = publisher.stats();
    let drops = |name: &str| {
        st.peers
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.counters.dropped_send_full)
    };
    assert_eq!(drops("healthy"), Some(0), "the healthy peer lost messages");
    assert_eq!(drops("frozen"), Some(failed));
    let mut reported = 0;
    while reported < failed {
        if let Event::Dropped { site, count, .. } =
            next_event(&mut events, |e| matches!(e, Event::Dropped { .. })).await
        {
            assert_eq!(site, "frozen");
            reported += count;
        }
    }
    assert_eq!(reported, failed);
}

/// A proxy between `front` and `back` that can stop forwarding without
/// closing anything: a silent partition.
struct Gate(std::sync::Arc<std::sync::atomic::AtomicBool>);

async fn gated_proxy(front: &str, back: &str) -> Gate {
    let l = RawListener::bind(front).await.unwrap();
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let gate = open.clone();
    let back = back.to_owned();
    tokio::spawn(async move {
        while let Ok(down) = l.accept().await {
            let up = raw_connect(&back).await.unwrap();
            let (dr, dw) = tokio::io::split(down);
            let (ur, uw) = tokio::io::split(up);
            tokio::spawn(pump(dr, uw, gate.clone()));
            tokio::spawn(pump(ur, dw, gate.clone()));
        }
    });
    Gate(open)
}

async fn pump(
    mut r: tokio::io::ReadHalf<RawConn>,
    mut w: tokio::io::WriteHalf<RawConn>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if !open.load(std::sync::atomic::Ordering::SeqCst) {
                    // Partitioned: the far side's end is lost too.
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        if !open.load(std::sync::atomic::Ordering::SeqCst) {
            continue; // swallowed, like packets on a dead network
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A silent partition (no end of stream, no error) is found by heartbeats
/// within one interval of the window, and healed by redialling with the
/// subscription restored.
#[tokio::test(start_paused = true)]
async fn a_silent_partition_is_found_within_the_window_and_healed() {
    let cfg = config("part-server");
    let (interval, misses) = (cfg.heartbeat_interval, cfg.heartbeat_misses);
    let server = Endpoint::new(cfg).unwrap();
    server.listen("inproc://vt-part-back").await.unwrap();
    let gate = gated_proxy("inproc://vt-part-front", "inproc://vt-part-back").await;
    let client = Endpoint::new(config("part-client")).unwrap();
    let sub = client.subscribe("news").unwrap();
    let mut events = client.events();
    client.connect("inproc://vt-part-front").await.unwrap();
    assert!(server.wait_for_subscribers("news", WATCHDOG).await.unwrap());
    server.publish("news", "before").await.unwrap();
    assert_eq!(&within(sub.recv()).await.unwrap().payload()[..], b"before");

    gate.0.store(false, std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    let down = next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let took = t0.elapsed();
    assert!(
        matches!(
            down,
            Event::PeerDown {
                code: ErrorCode::PeerLost,
                ..
            }
        ),
        "{down:?}"
    );
    // The last byte before the partition came at most one interval before
    // it (each side pings a quiet peer every interval).
    let window = interval * misses;
    assert!(
        took >= window - interval && took <= window + interval,
        "found after {took:?}; window {window:?}, interval {interval:?}"
    );

    gate.0.store(true, std::sync::atomic::Ordering::SeqCst);
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    assert!(server.wait_for_subscribers("news", WATCHDOG).await.unwrap());
    server.publish("news", "after").await.unwrap();
    assert_eq!(&within(sub.recv()).await.unwrap().payload()[..], b"after");
}

/// A listener on `addr` named `name` with a subscription on `pattern`.
async fn listener(addr: &str, name: &str, pattern: &str) -> (Endpoint, netchan::Subscription) {
    let ep = Endpoint::new(config(name)).unwrap();
    let sub = ep.subscribe(pattern).unwrap();
    ep.listen(addr).await.unwrap();
    (ep, sub)
}

/// Publishes `n` 100-byte messages numbered from `from`; returns how many failed.
async fn publish_numbered(ep: &Endpoint, path: &str, from: u32, n: u32) -> u32 {
    let mut failed = 0;
    for i in from..from + n {
        let mut p = i.to_le_bytes().to_vec();
        p.resize(100, 0);
        if ep.publish(path, p).await.is_err() {
            failed += 1;
        }
    }
    failed
}

fn number(m: &netchan::Message) -> u32 {
    u32::from_le_bytes(m.payload()[..4].try_into().unwrap())
}

/// With `offline_overflow = DropNewest`, a full offline buffer keeps the
/// oldest held messages and drops (and counts) the newer ones; the peer gets
/// the kept ones, in order, when it is back.
#[tokio::test(start_paused = true)]
async fn offline_drop_newest_keeps_the_oldest() {
    let addr = "inproc://vt-off-newest";
    let (first, _s) = listener(addr, "away", "q").await;
    let mut cfg = config("holder");
    cfg.offline_buffer = 2000; // 17 messages of 100 + 17 bytes
    cfg.offline_overflow = Overflow::DropNewest;
    let d = Endpoint::new(cfg).unwrap();
    let mut events = d.events();
    d.connect(addr).await.unwrap();
    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let failed = publish_numbered(&d, "q", 0, 100).await;
    assert_eq!(
        failed, 83,
        "each dropped message fails its publish with BUFFER_FULL"
    );
    assert_eq!(d.stats().total.dropped_send_full, 83);
    let (_second, sub) = listener(addr, "away", "q").await;
    for i in 0..17 {
        assert_eq!(number(&within(sub.recv()).await.unwrap()), i);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        sub.try_recv().unwrap().is_none(),
        "only the oldest 17 were kept"
    );
}

/// With `offline_overflow = Block`, a publish into a full offline buffer
/// waits up to `send_timeout`, then fails with BUFFER_FULL; one still
/// waiting when the peer comes back is delivered, after the held ones.
#[tokio::test(start_paused = true)]
async fn offline_block_waits_for_room_up_to_the_send_timeout() {
    let addr = "inproc://vt-off-block";
    let (first, _s) = listener(addr, "away", "q").await;
    let mut cfg = config("holder");
    cfg.offline_buffer = 2000;
    cfg.offline_overflow = Overflow::Block;
    cfg.send_timeout = Duration::from_secs(1);
    let d = Endpoint::new(cfg).unwrap();
    let mut events = d.events();
    d.connect(addr).await.unwrap();
    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    assert_eq!(publish_numbered(&d, "q", 0, 17).await, 0);
    let t0 = Instant::now();
    let e = d.publish("q", vec![0u8; 100]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BufferFull);
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "waited send_timeout");
    // This one waits; the peer comes back meanwhile.
    let d2 = d.clone();
    let waiting = tokio::spawn(async move { publish_numbered(&d2, "q", 17, 1).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_second, sub) = listener(addr, "away", "q").await;
    assert_eq!(
        within(waiting).await.unwrap(),
        0,
        "delivered once there was room"
    );
    for i in 0..18 {
        assert_eq!(number(&within(sub.recv()).await.unwrap()), i);
    }
}

/// `SlowPeer::DropNewest` never waits: a peer without room is skipped at
/// once, each skip counted.
#[tokio::test(start_paused = true)]
async fn slow_peer_drop_newest_never_waits() {
    let mut cfg = config("impatient");
    cfg.slow_peer = netchan::SlowPeer::DropNewest;
    cfg.send_buffer = 16 * 1024;
    cfg.heartbeat_interval = Duration::from_secs(60);
    let p = Endpoint::new(cfg).unwrap();
    p.listen("inproc://vt-dropnewest").await.unwrap();
    let mut frozen = raw_connect("inproc://vt-dropnewest").await.unwrap();
    handshake(&mut frozen, "frozen", vec![interest("data")]).await;
    let t0 = Instant::now();
    let mut failed = 0;
    for _ in 0..1000 {
        if p.publish("data", vec![0u8; 1024]).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "never waited");
    assert!(failed > 0);
    assert_eq!(p.stats().peers[0].counters.dropped_send_full, failed);
}

fn interest(pattern: &str) -> Decl {
    Decl {
        declare: true,
        kind: DeclKind::Interest,
        pattern: pattern.into(),
    }
}

/// Under `SlowPeer::Block`, a peer that stays full past `send_timeout` is
/// marked stalled: later publishes skip it at once (no second wait), until
/// it reads again; then it gets messages again.
#[tokio::test(start_paused = true)]
async fn a_stalled_peer_is_skipped_until_it_reads_again() {
    let mut cfg = config("patient");
    cfg.send_buffer = 16 * 1024;
    cfg.send_timeout = Duration::from_secs(1);
    cfg.heartbeat_interval = Duration::from_secs(60);
    let p = Endpoint::new(cfg).unwrap();
    p.listen("inproc://vt-stalled").await.unwrap();
    let mut frozen = raw_connect("inproc://vt-stalled").await.unwrap();
    handshake(&mut frozen, "frozen", vec![interest("data")]).await;
    // Fill its pipe and send buffer: the first publish that finds no room
    // waits send_timeout.
    let t0 = Instant::now();
    while p.publish("data", vec![0u8; 1024]).await.is_ok() {}
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    let t1 = Instant::now();
    for _ in 0..100 {
        assert!(p.publish("data", vec![0u8; 1024]).await.is_err());
    }
    assert_eq!(
        t1.elapsed(),
        Duration::ZERO,
        "stalled: skipped without waiting"
    );
    // It reads again: everything queued drains, and new messages reach it.
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            match proto::decode(&mut buf, 1 << 24).unwrap() {
                Decoded::Frame(
                    Frame::Message { payload, .. } | Frame::ShortMessage { payload, .. },
                ) if &payload[..] == b"again" => return,
                Decoded::Frame(_) => {}
                Decoded::NeedMore(_) => assert!(frozen.read_buf(&mut buf).await.unwrap() > 0),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    p.publish("data", "again").await.unwrap();
    within(reader).await.unwrap();
}

/// A subscription's default bound is 64 MiB of payload: beyond it, its
/// policy applies (here DropNewest, counted).
#[tokio::test(start_paused = true)]
async fn a_subscription_holds_at_most_its_byte_bound() {
    let ep = Endpoint::new(config("bytes")).unwrap();
    let mut opts = SubscribeOptions::default();
    assert_eq!(opts.max_bytes, 64 * 1024 * 1024);
    opts.overflow = Overflow::DropNewest;
    let sub = ep.subscribe_with("big", opts).unwrap();
    let mib = bytes::Bytes::from(vec![0u8; 1024 * 1024]);
    for _ in 0..70 {
        let _ = ep.publish("big", mib.clone()).await;
    }
    let st = ep.stats().subscriptions[0].clone();
    assert_eq!((st.queued, st.dropped), (64, 6));
    assert_eq!(sub.dropped(), 6);
}

/// Counts WARN lines from netchan, for "logged once" promises.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(b).into_owned());
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_warnings() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let sink = log.clone();
    let sub = tracing_subscriber::fmt()
        .with_env_filter("netchan=warn")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (log.clone(), tracing::subscriber::set_default(sub))
}

/// A protocol violation is counted, logged once and reported as one
/// `ConnectionError` event; refusals for load are each counted but logged
/// and reported at most once a second, with how many were refused.
#[tokio::test(start_paused = true)]
async fn violations_are_reported_once_and_load_refusals_once_a_second() {
    let (log, _guard) = capture_warnings();
    let mut cfg = config("strict");
    cfg.max_connections = 1;
    let ep = Endpoint::new(cfg).unwrap();
    ep.listen("inproc://vt-report").await.unwrap();
    let mut events = ep.events();
    let mut raw = raw_connect("inproc://vt-report").await.unwrap();
    handshake(&mut raw, "rude", vec![]).await;
    raw.write_all(&[0, 0, 0, 6, 0x35, 0, 0, 0, 1, 0x90])
        .await
        .unwrap();
    let e = next_event(&mut events, |e| matches!(e, Event::ConnectionError { .. })).await;
    assert!(
        matches!(
            e,
            Event::ConnectionError {
                code: ErrorCode::ProtocolError,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(ep.stats().total.errors, 1);
    let warned = |what: &str| {
        log.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    };
    assert_eq!(
        warned("reserved") + warned("not in protocol v2"),
        1,
        "{:?}",
        log.0.lock().unwrap()
    );
    drop(raw);

    // One connection is allowed: the first stays, 50 more are refused.
    let keep = Endpoint::new(config("keeper")).unwrap();
    keep.connect("inproc://vt-report").await.unwrap();
    let mut events = ep.events();
    for _ in 0..50 {
        let mut c = raw_connect("inproc://vt-report").await.unwrap();
        let mut sink = Vec::new();
        within(c.read_to_end(&mut sink)).await.unwrap();
    }
    assert_eq!(ep.stats().total.errors, 51, "each refusal counted");
    assert_eq!(warned("connection limit"), 1, "logged once");
    let mut refusals = 0;
    while let Some(EventRecv::Event(e)) = events.try_recv() {
        refusals += matches!(
            e,
            Event::ConnectionError {
                code: ErrorCode::Overloaded,
                ..
            }
        ) as u32;
    }
    assert_eq!(refusals, 1, "reported once");
    // A second later the next refusal is reported with the count since.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut c = raw_connect("inproc://vt-report").await.unwrap();
    let mut sink = Vec::new();
    within(c.read_to_end(&mut sink)).await.unwrap();
    let e = next_event(&mut events, |e| matches!(e, Event::ConnectionError { .. })).await;
    let Event::ConnectionError { detail, .. } = e else {
        unreachable!()
    };
    assert!(
        detail.contains("(50 connections refused since the last report)"),
        "{detail}"
    );
    assert_eq!(warned("connection limit"), 2);
}

/// A peer that violates the protocol again and again: every violation is
/// counted and reported as an event, but the identical warning is logged
/// once, then once more at the end of the window with how many there were.
#[tokio::test(start_paused = true)]
async fn identical_warnings_are_collapsed_with_a_count() {
    let (log, _guard) = capture_warnings();
    let ep = Endpoint::new(config("collapsing")).unwrap();
    ep.listen("inproc://vt-collapse").await.unwrap();
    let mut events = ep.events();
    for _ in 0..20 {
        let mut raw = raw_connect("inproc://vt-collapse").await.unwrap();
        handshake(&mut raw, "rude", vec![]).await;
        raw.write_all(&[0, 0, 0, 6, 0x35, 0, 0, 0, 1, 0x90])
            .await
            .unwrap();
        let mut sink = Vec::new();
        within(raw.read_to_end(&mut sink)).await.unwrap();
    }
    let lines = || -> Vec<String> {
        log.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("closing connection"))
            .cloned()
            .collect()
    };
    assert_eq!(lines().len(), 1, "logged once: {:?}", lines());
    assert_eq!(ep.stats().total.errors, 20, "each violation counted");
    let mut reported = 0;
    while let Some(EventRecv::Event(e)) = events.try_recv() {
        reported += matches!(e, Event::ConnectionError { .. }) as u32;
    }
    assert_eq!(reported, 20, "each violation reported as an event");
    // The window ends: one line with the count.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let l = lines();
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[1].contains("(repeated 19 times in 5s)"), "{l:?}");
    // Quiet since: nothing more, and the next one is logged at once.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(lines().len(), 2);
}

/// Only the endpoint that called `connect` redials; the one it dialled
/// does not, after any loss.
#[tokio::test(start_paused = true)]
async fn a_dialled_endpoint_does_not_redial() {
    let a = Endpoint::new(config("dialled")).unwrap();
    a.listen("inproc://vt-noredial").await.unwrap();
    let mut events = a.events();
    let b = Endpoint::new(config("dialler")).unwrap();
    b.connect("inproc://vt-noredial").await.unwrap();
    b.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    while let Some(e) = events.try_recv() {
        assert!(
            !matches!(e, EventRecv::Event(Event::Reconnecting { .. })),
            "{e:?}"
        );
    }
}

/// A redial that reaches the listener while it still holds this endpoint's
/// old connection, silently dead, replaces it at once: the HELLO's
/// `instance` says it is the same endpoint dialling again (before, it was
/// refused NAME_IN_USE until the listener's heartbeats noticed, 3 s here).
#[tokio::test(start_paused = true)]
async fn a_redial_replaces_the_stale_connection_of_the_same_endpoint_at_once() {
    let mut lc = config("holder");
    lc.heartbeat_interval = Duration::from_secs(1); // slow to notice: 3 s
    let l = Endpoint::new(lc).unwrap();
    let _svc = l
        .serve_fn("x", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    l.listen("inproc://vt-takeover-back").await.unwrap();
    let proxy =
        partitionable_proxy("inproc://vt-takeover-front", "inproc://vt-takeover-back").await;
    let d = Endpoint::new(config("returner")).unwrap(); // quick to notice: 300 ms
    let mut events = d.events();
    d.connect("inproc://vt-takeover-front").await.unwrap();
    proxy.partition_existing();
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let t0 = Instant::now();
    match next_event(&mut events, |e| {
        matches!(e, Event::PeerDown { .. } | Event::PeerUp { .. })
    })
    .await
    {
        Event::PeerUp { .. } => {}
        e => panic!("not let in: {e:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(d.wait_for_servers("x", WATCHDOG).await.unwrap());
    assert_eq!(
        &d.request("x", "back", WATCHDOG).await.unwrap()[..],
        b"back"
    );
    assert_eq!((l.peers().len(), d.peers().len()), (1, 1));
}

/// A redial refused with NAME_IN_USE (another endpoint of the same name, a
/// restarted twin, holds the name at the listener) is not given up: the
/// dialler keeps trying with backoff, in one loop, and gets in once the name
/// is free.
#[tokio::test(start_paused = true)]
async fn name_in_use_passes_once_the_name_is_free() {
    let mut lc = config("holder");
    lc.heartbeat_interval = Duration::from_secs(1); // slow to notice: 3 s
    let l = Endpoint::new(lc).unwrap();
    l.listen("inproc://vt-stale-back").await.unwrap();
    let proxy = partitionable_proxy("inproc://vt-stale-front", "inproc://vt-stale-back").await;
    let d = Endpoint::new(config("returner")).unwrap(); // quick to notice: 300 ms
    let mut events = d.events();
    d.connect("inproc://vt-stale-front").await.unwrap();
    proxy.set_accepting(false);
    proxy.partition_existing();
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    // The listener drops the silent link after its window; then a twin of
    // the same name takes the name.
    let twin = Endpoint::new(config("returner")).unwrap();
    loop {
        match twin.connect("inproc://vt-stale-back").await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::NameInUse, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Redials now reach the listener, which refuses them (a CLOSE with
    // NAME_IN_USE ends each new link); the dialler keeps trying.
    proxy.set_accepting(true);
    let mut attempts = Vec::new();
    loop {
        match next_event(&mut events, |e| {
            matches!(
                e,
                Event::PeerDown { .. }
                    | Event::ReconnectAbandoned { .. }
                    | Event::Reconnecting { .. }
            )
        })
        .await
        {
            Event::PeerDown { reason, .. } if reason.contains("NAME_IN_USE") => break,
            Event::Reconnecting { attempt, .. } => attempts.push(attempt),
            Event::PeerDown { .. } => {}
            e => panic!("gave up: {e:?}"),
        }
    }
    // The twin goes; a redial gets in and requests work again.
    twin.close().await;
    let _svc = l
        .serve_fn("x", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    let r = d
        .request_with(
            "x",
            "back",
            netchan::RequestOptions::timeout(Duration::from_secs(30)).wait_for_responder(),
        )
        .await
        .unwrap();
    assert_eq!(&r[..], b"back");
    assert_eq!((l.peers().len(), d.peers().len()), (1, 1));
    // One redial loop, its delays growing: attempts numbered 1, 2, 3, ...
    // (a refused link must not start a second loop from attempt 1), and few
    // of them in the ~4 s this took (100 ms doubling: about 6).
    while let Some(e) = events.try_recv() {
        if let EventRecv::Event(Event::Reconnecting { attempt, .. }) = e {
            attempts.push(attempt);
        }
    }
    let want: Vec<u32> = (1..=attempts.len() as u32).collect();
    assert_eq!(attempts, want, "one redial loop with backoff");
    assert!(
        attempts.len() <= 10,
        "{} attempts in ~4 s: no backoff",
        attempts.len()
    );
}

/// A proxy whose connections can be silently cut, each on its own: the
/// ones open now stop forwarding, new ones forward.
struct Partitionable(
    std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl Partitionable {
    /// Whether new connections get through (else they are closed at once).
    fn set_accepting(&self, on: bool) {
        self.1.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn partition_existing(&self) {
        for g in self.0.lock().unwrap().iter() {
            g.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

async fn partitionable_proxy(front: &str, back: &str) -> Partitionable {
    let l = RawListener::bind(front).await.unwrap();
    let gates = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let list = gates.clone();
    let back = back.to_owned();
    let accepting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let open = accepting.clone();
    tokio::spawn(async move {
        while let Ok(down) = l.accept().await {
            if !open.load(std::sync::atomic::Ordering::SeqCst) {
                drop(down);
                continue;
            }
            let up = raw_connect(&back).await.unwrap();
            let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            list.lock().unwrap().push(gate.clone());
            let (dr, dw) = tokio::io::split(down);
            let (ur, uw) = tokio::io::split(up);
            tokio::spawn(pump(dr, uw, gate.clone()));
            tokio::spawn(pump(ur, dw, gate));
        }
    });
    Partitionable(gates, accepting)
}

/// Messages held for a peer that is away reach it before anything
/// published after it is back, and in order, while publishing goes on
/// throughout the reconnection.
#[tokio::test(start_paused = true)]
async fn held_messages_go_before_anything_published_later() {
    let addr = "inproc://vt-held";
    let (first, _s) = listener(addr, "away", "q").await;
    let d = Endpoint::new(config("holder")).unwrap();
    let mut events = d.events();
    d.connect(addr).await.unwrap();
    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    assert_eq!(publish_numbered(&d, "q", 0, 10).await, 0);
    let d2 = d.clone();
    let publisher = tokio::spawn(async move {
        for i in 10..400 {
            assert_eq!(publish_numbered(&d2, "q", i, 1).await, 0);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_second, sub) = listener(addr, "away", "q").await;
    for i in 0..400 {
        assert_eq!(number(&within(sub.recv()).await.unwrap()), i);
    }
    within(publisher).await.unwrap();
}

/// After a reconnect every declaration is back, in both directions:
/// interests, services and publisher intents.
#[tokio::test(start_paused = true)]
async fn every_declaration_is_restored_in_both_directions_after_a_reconnect() {
    let addr = "inproc://vt-restore";
    async fn declare(
        ep: &Endpoint,
        p: &str,
    ) -> (netchan::Subscription, netchan::Service, netchan::Publisher) {
        let sub = ep.subscribe(&format!("{p}/sub")).unwrap();
        let svc = ep
            .serve_fn(
                &format!("{p}/svc"),
                |r| async move { Ok(r.payload().clone()) },
            )
            .unwrap();
        let pubd = ep.declare_publisher(&format!("{p}/pub")).unwrap();
        (sub, svc, pubd)
    }
    let b1 = Endpoint::new(config("b")).unwrap();
    let _b1d = declare(&b1, "b").await;
    b1.listen(addr).await.unwrap();
    let a = Endpoint::new(config("a")).unwrap();
    let _ad = declare(&a, "a").await;
    let mut events = a.events();
    a.connect(addr).await.unwrap();
    b1.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let b2 = Endpoint::new(config("b")).unwrap();
    let _b2d = declare(&b2, "b").await;
    b2.listen(addr).await.unwrap();
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    assert!(a.wait_for_servers("b/svc", WATCHDOG).await.unwrap());
    assert!(b2.wait_for_servers("a/svc", WATCHDOG).await.unwrap());
    for (ep, other) in [(&a, "b"), (&b2, "a")] {
        assert!(ep
            .subscribers(&format!("{other}/sub"))
            .unwrap()
            .contains(&other.to_owned()));
        assert!(ep
            .servers(&format!("{other}/svc"))
            .unwrap()
            .contains(&other.to_owned()));
        assert!(ep
            .publishers(&format!("{other}/pub"))
            .unwrap()
            .contains(&other.to_owned()));
        let r = ep
            .request(&format!("{other}/svc"), "x", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&r[..], b"x");
    }
}

/// A request goes to one endpoint: a local service if there is one, else
/// the connected peers that serve the path, in turn.
#[tokio::test(start_paused = true)]
async fn requests_go_to_a_local_service_first_else_to_peers_in_turn() {
    let mut servers = Vec::new();
    for name in ["s1", "s2"] {
        let s = Endpoint::new(config(name)).unwrap();
        let me = name.to_owned();
        let svc = s
            .serve_fn("x", move |_| {
                let me = me.clone();
                async move { Ok(me.into()) }
            })
            .unwrap();
        s.listen(&format!("inproc://vt-turn-{name}")).await.unwrap();
        servers.push((s, svc));
    }
    let c = Endpoint::new(config("caller")).unwrap();
    c.connect("inproc://vt-turn-s1").await.unwrap();
    c.connect("inproc://vt-turn-s2").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        let r = c.request("x", "", Duration::from_secs(5)).await.unwrap();
        got.push(String::from_utf8(r.to_vec()).unwrap());
    }
    assert_eq!(got.iter().filter(|s| *s == "s1").count(), 5, "{got:?}");
    assert!(got.windows(2).all(|w| w[0] != w[1]), "in turn: {got:?}");
    let _local = c.serve_fn("x", |_| async { Ok("local".into()) }).unwrap();
    for _ in 0..4 {
        let r = c.request("x", "", Duration::from_secs(5)).await.unwrap();
        assert_eq!(&r[..], b"local");
    }
    assert_eq!(
        servers[0].0.stats().peers[0].counters.requests_in
            + servers[1].0.stats().peers[0].counters.requests_in,
        10
    );
}

/// A handler that drops its reply handle without answering fails the
/// request with HANDLER_ERROR.
#[tokio::test(start_paused = true)]
async fn a_reply_dropped_unanswered_fails_with_handler_error() {
    let s = Endpoint::new(config("dropper-svc")).unwrap();
    let svc = s.serve("x").unwrap();
    s.listen("inproc://vt-dropped-reply").await.unwrap();
    let c = Endpoint::new(config("asker")).unwrap();
    c.connect("inproc://vt-dropped-reply").await.unwrap();
    let c2 = c.clone();
    let call = tokio::spawn(async move { c2.request("x", "", Duration::from_secs(5)).await });
    let (_req, reply) = within(svc.recv()).await.unwrap();
    drop(reply);
    let e = within(call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::HandlerError, "{e}");
}

/// Requests are at most once: one in flight when its link is lost fails
/// with PEER_LOST, and is not sent again after the redial.
#[tokio::test(start_paused = true)]
async fn a_request_in_flight_at_a_loss_fails_and_is_never_resent() {
    let addr = "inproc://vt-once";
    let s1 = Endpoint::new(config("once")).unwrap();
    let svc1 = s1.serve("x").unwrap();
    s1.listen(addr).await.unwrap();
    let c = Endpoint::new(config("caller")).unwrap();
    let mut events = c.events();
    c.connect(addr).await.unwrap();
    let c2 = c.clone();
    let call = tokio::spawn(async move { c2.request("x", "", Duration::from_secs(60)).await });
    let (_req, _reply) = within(svc1.recv()).await.unwrap();
    s1.close().await;
    let e = within(call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
    let s2 = Endpoint::new(config("once")).unwrap();
    let svc2 = s2.serve("x").unwrap();
    s2.listen(addr).await.unwrap();
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        tokio::time::timeout(Duration::ZERO, svc2.recv())
            .await
            .is_err(),
        "the request was sent again"
    );
    assert_eq!(s2.stats().peers[0].counters.requests_in, 0);
}

/// `connect` returns once the peer's whole snapshot has arrived (it comes in
/// several DECLARE frames): every interest is known at once.
#[tokio::test(start_paused = true)]
async fn connect_returns_after_the_whole_snapshot() {
    let s = Endpoint::new(config("many")).unwrap();
    let subs: Vec<_> = (0..1100)
        .map(|i| s.subscribe(&format!("t/{i}")).unwrap())
        .collect();
    s.listen("inproc://vt-snapshot").await.unwrap();
    let c = Endpoint::new(config("late")).unwrap();
    c.connect("inproc://vt-snapshot").await.unwrap();
    // 1100 declarations: three DECLARE frames of at most 512.
    for i in 0..1100 {
        assert!(c.has_subscribers(&format!("t/{i}")).unwrap(), "t/{i}");
    }
    drop(subs);
}

/// `suspend` closes every link (an orderly close) and listener and keeps
/// the rest: declarations, local delivery, messages held for the dialled
/// peer, counters; `resume` listens and dials again at once, and the held
/// messages reach the peer first, then everything restored works both ways.
#[tokio::test(start_paused = true)]
async fn suspend_keeps_state_and_resume_restores_it() {
    let a = Endpoint::new(config("home")).unwrap();
    let a_sub = a.subscribe("to-a").unwrap();
    let _a_svc = a
        .serve_fn("a/svc", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    a.listen("inproc://vt-life-a").await.unwrap();
    let b = Endpoint::new(config("phone")).unwrap();
    let b_local = b.subscribe("local").unwrap();
    let _b_svc = b
        .serve_fn("b/svc", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    b.listen("inproc://vt-life-b").await.unwrap();
    let mut events = b.events();
    let mut a_events = a.events();
    b.connect("inproc://vt-life-a").await.unwrap();
    assert!(b.wait_for_subscribers("to-a", WATCHDOG).await.unwrap());
    assert_eq!(publish_numbered(&b, "to-a", 0, 1).await, 0);
    assert_eq!(number(&within(a_sub.recv()).await.unwrap()), 0);

    b.suspend().await.unwrap();
    b.suspend().await.unwrap(); // a second one does nothing
    let down = next_event(&mut a_events, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(
            down,
            Event::PeerDown {
                code: ErrorCode::Closed,
                ..
            }
        ),
        "{down:?}"
    );
    next_event(&mut events, |e| matches!(e, Event::Suspended)).await;
    assert!(b.peers().is_empty());
    // Its listener is gone too.
    let e = raw_connect("inproc://vt-life-b")
        .await
        .err()
        .expect("listener closed");
    assert_eq!(e.code(), ErrorCode::ConnectRefused);
    // Held for the away peer, in order; local delivery works; no responder.
    assert_eq!(publish_numbered(&b, "to-a", 1, 5).await, 0);
    b.publish("local", "here").await.unwrap();
    assert_eq!(
        &within(b_local.recv()).await.unwrap().payload()[..],
        b"here"
    );
    let e = b
        .request("a/svc", "", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoResponders);
    let msgs_out = b.stats().total.msgs_out;
    assert!(msgs_out >= 1, "counters are kept");
    tokio::time::sleep(Duration::from_secs(30)).await; // no redial while suspended
    assert!(a.peers().is_empty());

    b.resume().await.unwrap();
    next_event(&mut events, |e| matches!(e, Event::Resumed)).await;
    // Held messages first, then what is published now.
    assert_eq!(publish_numbered(&b, "to-a", 6, 1).await, 0);
    for i in 1..=6 {
        assert_eq!(number(&within(a_sub.recv()).await.unwrap()), i);
    }
    assert!(a.wait_for_servers("b/svc", WATCHDOG).await.unwrap());
    assert_eq!(
        &a.request("b/svc", "x", Duration::from_secs(5))
            .await
            .unwrap()[..],
        b"x"
    );
    assert_eq!(
        &b.request("a/svc", "y", Duration::from_secs(5))
            .await
            .unwrap()[..],
        b"y"
    );
    // Listening again.
    let c = Endpoint::new(config("visitor")).unwrap();
    c.connect("inproc://vt-life-b").await.unwrap();
    assert!(b.stats().total.msgs_out >= msgs_out);
}

/// `resume` returns after the first attempt of each address; one that
/// fails then is redialled with backoff until it is back.
#[tokio::test(start_paused = true)]
async fn resume_returns_after_one_attempt_and_keeps_redialling() {
    let a = Endpoint::new(config("sometimes")).unwrap();
    a.listen("inproc://vt-life-retry").await.unwrap();
    let b = Endpoint::new(config("phone2")).unwrap();
    let mut events = b.events();
    b.connect("inproc://vt-life-retry").await.unwrap();
    b.suspend().await.unwrap();
    a.close().await;
    let t0 = Instant::now();
    b.resume().await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO, "one immediate attempt");
    let e = next_event(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
    assert!(
        matches!(
            e,
            Event::Reconnecting {
                delay: Duration::ZERO,
                ..
            }
        ),
        "{e:?}"
    );
    let a2 = Endpoint::new(config("sometimes")).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    a2.listen("inproc://vt-life-retry").await.unwrap();
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    assert_eq!(b.peers().len(), 1);
}

/// `network_changed` drops every link and redials at once, restoring the
/// declarations.
#[tokio::test(start_paused = true)]
async fn network_changed_drops_links_and_redials_now() {
    let a = Endpoint::new(config("tower")).unwrap();
    let _svc = a
        .serve_fn("t/svc", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    a.listen("inproc://vt-netchange").await.unwrap();
    let b = Endpoint::new(config("roamer")).unwrap();
    let _sub = b.subscribe("r/sub").unwrap();
    let mut events = b.events();
    b.connect("inproc://vt-netchange").await.unwrap();
    let t0 = Instant::now();
    b.network_changed().await.unwrap();
    let down = next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(down, Event::PeerDown { code: ErrorCode::PeerLost, ref reason, .. } if reason.contains("network changed")),
        "{down:?}"
    );
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "redialled at once");
    assert!(a.wait_for_subscribers("r/sub", WATCHDOG).await.unwrap());
    assert!(b.wait_for_servers("t/svc", WATCHDOG).await.unwrap());
    assert_eq!(
        &b.request("t/svc", "z", Duration::from_secs(5))
            .await
            .unwrap()[..],
        b"z"
    );
}

/// A peer that completes every handshake and then drops the connection at
/// once: each redial succeeds, yet the delays grow as for refused connects
/// (a link that ends within the heartbeat window counts as a failed
/// attempt), instead of a connect/close cycle every `min_delay`.
#[tokio::test(start_paused = true)]
async fn links_that_end_at_once_back_off_like_refused_connects() {
    let listener = RawListener::bind("inproc://vt-flap").await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok(mut raw) = listener.accept().await else {
                return;
            };
            handshake(&mut raw, "flapper", vec![]).await;
            drop(raw); // the link ends right after its handshake
        }
    });
    let cfg = config("dialler");
    let r = cfg.reconnect.clone();
    let dialler = Endpoint::new(cfg).unwrap();
    let mut events = dialler.events();
    dialler.connect("inproc://vt-flap").await.unwrap();
    let mut delays = Vec::new();
    while delays.len() < 6 {
        if let Event::Reconnecting { delay, .. } =
            next_event(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await
        {
            delays.push(delay);
        }
    }
    let mut want = r.min_delay;
    for (i, d) in delays.iter().enumerate() {
        assert_eq!(*d, want, "redial {} waited {delays:?}", i + 1);
        want = want.mul_f64(r.factor).min(r.max_delay);
    }
    dialler.close().await;
}
