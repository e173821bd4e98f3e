//! Heartbeats, reconnection with state restore, mesh dedup, buffering while
//! disconnected, slow peers: over real sockets, bounded by watchdogs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv, Overflow, RequestOptions, SlowPeer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WATCHDOG: Duration = Duration::from_secs(20);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

/// Quick redialling. Heartbeats stay slow (1 s x 3): these tests end links
/// with CLOSE or by killing a listener, and a short window could declare a
/// live peer lost on a loaded machine. Heartbeat timing is tested in
/// virtual time (`core/tests/virtual_time.rs`).
fn fast(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_secs(1);
    c.heartbeat_misses = 3;
    c.reconnect.min_delay = Duration::from_millis(20);
    c.reconnect.max_delay = Duration::from_millis(200);
    c
}

fn unix_addr(tag: &str) -> String {
    format!(
        "unix://{}/netchan-res-{tag}-{}-{:x}.sock",
        std::env::temp_dir().display(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Waits for the first event matching `f`.
async fn next_event(events: &mut netchan::Events, mut f: impl FnMut(&Event) -> bool) -> Event {
    loop {
        match within(events.recv()).await {
            EventRecv::Event(e) if f(&e) => return e,
            EventRecv::Closed => panic!("events closed"),
            _ => {}
        }
    }
}

/// A TCP proxy that can stop forwarding without closing anything: a silent
/// network partition (no FIN, no RST).
struct Proxy {
    addr: String,
    open: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("tcp://{}", l.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let gate = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = l.accept().await else {
                    return;
                };
                let up = TcpStream::connect(upstream.trim_start_matches("tcp://"))
                    .await
                    .unwrap();
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pump(dr, uw, gate.clone()));
                tokio::spawn(pump(ur, dw, gate.clone()));
            }
        });
        Proxy { addr, open }
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    open: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) if !open.load(Ordering::SeqCst) => {
                // Partitioned: the far side's FIN or RST is lost too.
                std::future::pending::<()>().await;
                return;
            }
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !open.load(Ordering::SeqCst) {
            // Partitioned: swallow the bytes, like a network dropping packets.
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The same over real TCP through a proxy that goes silent: found by
/// heartbeats (not before the window less one interval; the exact window is
/// checked in virtual time by
/// `a_silent_partition_is_found_within_the_window_and_healed`) and healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_partition_over_tcp_is_detected_and_healed() {
    let mut cfg = fast("part-server");
    cfg.heartbeat_interval = Duration::from_millis(500);
    let server = Endpoint::new(cfg.clone()).unwrap();
    let addr = server.listen("tcp://127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(addr).await;
    cfg.name = Some("part-client".into());
    let window = cfg.heartbeat_interval * cfg.heartbeat_misses;
    let client = Endpoint::new(cfg.clone()).unwrap();
    let sub = client.subscribe("news").unwrap();
    let mut events = client.events();
    client.connect(&proxy.addr).await.unwrap();
    assert!(server.wait_for_subscribers("news", WATCHDOG).await.unwrap());
    server.publish("news", "before").await.unwrap();
    assert_eq!(&within(sub.recv()).await.unwrap().payload()[..], b"before");

    proxy.open.store(false, Ordering::SeqCst);
    let t0 = std::time::Instant::now();
    let down = next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let took = t0.elapsed();
    let Event::PeerDown { reason, code, .. } = down else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::PeerLost);
    assert!(reason.contains("heard nothing"), "{reason}");
    assert!(
        took >= window - cfg.heartbeat_interval,
        "found after {took:?}, before the window"
    );

    proxy.open.store(true, Ordering::SeqCst);
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    // The subscription was restored without user code.
    assert!(server.wait_for_subscribers("news", WATCHDOG).await.unwrap());
    server.publish("news", "after").await.unwrap();
    loop {
        // Messages published into the dead link before detection may arrive
        // or not; "after" must.
        let m = within(sub.recv()).await.unwrap();
        if &m.payload()[..] == b"after" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_listener_gets_the_subscription_back_and_held_messages() {
    let addr = unix_addr("restart");
    let first = Endpoint::new(fast("listener")).unwrap();
    first.listen(&addr).await.unwrap();
    let _first_sub = first.subscribe("up/*").unwrap();

    let dialer = Endpoint::new(fast("dialer")).unwrap();
    let mine = dialer.subscribe("down/*").unwrap();
    let mut events = dialer.events();
    dialer.connect(&addr).await.unwrap();
    assert!(dialer.has_subscribers("up/x").unwrap());

    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    // Published while the listener is away: held for it (its interest is known).
    for i in 0..10u8 {
        dialer.publish("up/x", vec![i]).await.unwrap();
    }
    let second = Endpoint::new(fast("listener")).unwrap();
    let sub2 = second.subscribe("up/*").unwrap();
    second.listen(&addr).await.unwrap();
    next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
    for i in 0..10u8 {
        let m = within(sub2.recv()).await.unwrap();
        assert_eq!(&m.payload()[..], &[i], "held messages arrive in order");
    }
    // And our own subscription was declared to the new listener.
    assert!(second
        .wait_for_subscribers("down/y", WATCHDOG)
        .await
        .unwrap());
    second.publish("down/y", "hi").await.unwrap();
    assert_eq!(&within(mine.recv()).await.unwrap().payload()[..], b"hi");
    assert_eq!(dialer.stats().total.dropped_send_full, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_buffer_overflow_is_counted_and_reported() {
    let addr = unix_addr("overflow");
    let first = Endpoint::new(fast("l")).unwrap();
    first.listen(&addr).await.unwrap();
    let _s = first.subscribe("q").unwrap();
    let mut cfg = fast("d");
    cfg.offline_buffer = 2000;
    cfg.offline_overflow = Overflow::DropOldest;
    let dialer = Endpoint::new(cfg).unwrap();
    let mut events = dialer.events();
    dialer.connect(&addr).await.unwrap();
    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let mut events = dialer.events();
    for i in 0..100u8 {
        dialer.publish("q", vec![i; 100]).await.unwrap();
    }
    let dropped = dialer.stats().total.dropped_send_full;
    assert!(dropped > 0 && dropped < 100, "{dropped}");
    let mut reported = 0;
    while reported < dropped {
        if let EventRecv::Event(Event::Dropped { count, code, site }) = within(events.recv()).await
        {
            assert_eq!(code, ErrorCode::BufferFull);
            assert_eq!(site, "l");
            reported += count;
        }
    }
    assert_eq!(reported, dropped);

    let second = Endpoint::new(fast("l")).unwrap();
    let sub = second.subscribe("q").unwrap();
    second.listen(&addr).await.unwrap();
    let mut got = Vec::new();
    while (got.len() as u64) < 100 - dropped {
        got.push(within(sub.recv()).await.unwrap().payload()[0]);
    }
    // DropOldest kept the newest ones, in order; every message is accounted for.
    let want: Vec<u8> = (dropped as u8..100).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_stops_redialling() {
    let addr = unix_addr("perm");
    let first = Endpoint::new(fast("good")).unwrap();
    first.listen(&addr).await.unwrap();
    let _sub = first.subscribe("perm/x").unwrap();
    let dialer = Endpoint::new(fast("d")).unwrap();
    let mut events = dialer.events();
    dialer.connect(&addr).await.unwrap();
    assert!(dialer
        .wait_for_subscribers("perm/x", Duration::from_secs(10))
        .await
        .unwrap());
    dialer.publish("perm/x", "live").await.unwrap();
    first.close().await;
    next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    // While redialling, messages for the away peer are held.
    dialer.publish("perm/x", "held").await.unwrap();
    // Something that speaks a future protocol version now listens there.
    let path = addr.trim_start_matches("unix://").to_owned();
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    // The socket file goes with the test, also when it fails.
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _unlink = Unlink(path.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut b = bytes::BytesMut::new();
            netchan::proto::encode(
                &mut b,
                &netchan::proto::Frame::Hello(netchan::proto::Hello {
                    magic: "NTCH".into(),
                    min_version: 9,
                    max_version: 9,
                    name: "future".into(),
                    max_frame: 1 << 20,
                    heartbeat_ms: 0,
                    instance: 0,
                    rejoin: false,
                    link: 0,
                }),
            )
            .unwrap();
            let _ = s.write_all(&b).await;
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        }
    });
    let e = next_event(&mut events, |e| {
        matches!(e, Event::ReconnectAbandoned { .. })
    })
    .await;
    let Event::ReconnectAbandoned { code, detail, .. } = e else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(
        detail.contains("unsupported protocol version 9"),
        "{detail}"
    );
    // Given up: the path has no target any more, so a publish neither
    // holds nor fails for the abandoned peer.
    dialer.publish("perm/x", "after").await.unwrap();
    assert!(!dialer.has_subscribers("perm/x").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_dialling_each_other_keep_exactly_one_connection() {
    let a = Endpoint::new(fast("mesh-a")).unwrap();
    let b = Endpoint::new(fast("mesh-b")).unwrap();
    let a_addr = a.listen("tcp://127.0.0.1:0").await.unwrap();
    let b_addr = b.listen("tcp://127.0.0.1:0").await.unwrap();
    let _svc = b
        .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    let (ra, rb) = tokio::join!(a.connect(&b_addr), b.connect(&a_addr));
    ra.unwrap();
    rb.unwrap();
    // Settle: both sides end with one connection, the one dialled by mesh-a.
    let deadline = std::time::Instant::now() + WATCHDOG;
    loop {
        let (pa, pb) = (a.peers(), b.peers());
        if pa.len() == 1 && pb.len() == 1 && !pa[0].inbound && pb[0].inbound {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a: {pa:?} b: {pb:?}");
        let mut ev = a.events();
        let _ = tokio::time::timeout(Duration::from_millis(50), ev.recv()).await;
    }
    let r = a
        .request_with(
            "echo",
            "x",
            RequestOptions::timeout(Duration::from_secs(5)).wait_for_responder(),
        )
        .await
        .unwrap();
    assert_eq!(&r[..], b"x");
    assert_eq!((a.peers().len(), b.peers().len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_can_wait_for_a_responder() {
    let server = Endpoint::new(fast("late-server")).unwrap();
    let addr = server.listen("tcp://127.0.0.1:0").await.unwrap();
    let client = Endpoint::new(fast("early-client")).unwrap();
    client.connect(&addr).await.unwrap();
    let e = client
        .request("later", "", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoResponders);
    let c = client.clone();
    let call = tokio::spawn(async move {
        c.request_with(
            "later",
            "q",
            RequestOptions::timeout(Duration::from_secs(10)).wait_for_responder(),
        )
        .await
    });
    let _svc = server
        .serve_fn("later", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    assert_eq!(&within(call).await.unwrap().unwrap()[..], b"q");
    let e = client
        .request_with(
            "never",
            "",
            RequestOptions::timeout(Duration::from_millis(50)).wait_for_responder(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoResponders);
}

/// A raw peer that completes the handshake, declares an interest in
/// `data`, then never reads again (a frozen process). Keep the returned
/// halves alive for as long as the peer should stay connected.
async fn frozen_peer(
    addr: &str,
    name: &str,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    use netchan::proto::{encode, Decl, DeclKind, Frame, Hello};
    let s = TcpStream::connect(addr.trim_start_matches("tcp://"))
        .await
        .unwrap();
    let mut b = bytes::BytesMut::new();
    let hello = Hello {
        magic: "NTCH".into(),
        min_version: netchan::proto::VERSION_MIN,
        max_version: netchan::proto::VERSION_MAX,
        name: name.into(),
        max_frame: 1 << 20,
        heartbeat_ms: 0,
        instance: 0,
        rejoin: false,
        link: 0,
    };
    encode(&mut b, &Frame::Hello(hello)).unwrap();
    let interest = Decl {
        declare: true,
        kind: DeclKind::Interest,
        pattern: "data".into(),
    };
    encode(&mut b, &Frame::Declare(vec![interest].into())).unwrap();
    encode(&mut b, &Frame::SnapshotEnd).unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(&b).await.unwrap();
    (r, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_disconnect_policy() {
    let mut cfg = fast("pub2");
    cfg.send_buffer = 16 * 1024;
    cfg.send_timeout = Duration::from_millis(50);
    cfg.heartbeat_interval = Duration::from_secs(60);
    cfg.slow_peer = SlowPeer::Disconnect;
    let publisher = Endpoint::new(cfg).unwrap();
    let addr = publisher.listen("tcp://127.0.0.1:0").await.unwrap();
    let _frozen = frozen_peer(&addr, "slowpoke").await;
    assert!(publisher
        .wait_for_subscribers("data", WATCHDOG)
        .await
        .unwrap());
    let mut events = publisher.events();
    let payload = vec![1u8; 4096];
    while publisher.has_subscribers("data").unwrap() {
        let _ = within(publisher.publish("data", payload.clone())).await;
    }
    let e = next_event(&mut events, |e| matches!(e, Event::PeerDown { .. })).await;
    let Event::PeerDown {
        peer, code, reason, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((peer.as_str(), code), ("slowpoke", ErrorCode::BufferFull));
    assert!(reason.contains("slow consumer"), "{reason}");
}

/// `network_changed` over real sockets: every time, the link is redialled at
/// once (one RECONNECTING, attempt 1, no delay) and let in, and the events
/// come in order: PEER_DOWN, RECONNECTING, PEER_UP (the PEER_DOWN is sent
/// under the lock the redial waits on; once it came after, under load),
/// the PEER_DOWN saying "the network changed" (under load it once said the
/// peer had closed the connection, which the peer did because it was told). The peer learns
/// over the old link first, so the redial is not refused NAME_IN_USE as a
/// duplicate of a connection the peer still holds (it was, most times,
/// before the CLOSE was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_changed_over_real_sockets_redials_at_once_and_is_let_in() {
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("netchange")] {
        let server = Endpoint::new(fast("netchange-server")).unwrap();
        let _svc = server
            .serve_fn("nc/echo", |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        let addr = server.listen(&listen).await.unwrap();
        let client = Endpoint::new(fast("netchange-client")).unwrap();
        let mut events = client.events();
        client.connect(&addr).await.unwrap();
        next_event(&mut events, |e| matches!(e, Event::PeerUp { .. })).await;
        for round in 0..10 {
            client.network_changed().await.unwrap();
            let mut reconnecting = Vec::new();
            let mut down = false;
            loop {
                match next_event(&mut events, |_| true).await {
                    Event::Reconnecting { attempt, delay, .. } => {
                        assert!(
                            down,
                            "{listen} round {round}: RECONNECTING before PEER_DOWN"
                        );
                        reconnecting.push((attempt, delay))
                    }
                    Event::PeerUp { .. } => {
                        assert!(down, "{listen} round {round}: PEER_UP before PEER_DOWN");
                        break;
                    }
                    Event::PeerDown { code, reason, .. } => {
                        assert_ne!(
                            code,
                            ErrorCode::NameInUse,
                            "{listen} round {round}: refused: {reason}"
                        );
                        // The old link ends for the reason it was ended,
                        // though the peer, told, closes it at once.
                        assert!(
                            down || reason.contains("network changed"),
                            "{listen} round {round}: {reason}"
                        );
                        down = true;
                    }
                    _ => {}
                }
            }
            assert_eq!(
                reconnecting,
                [(1, Duration::ZERO)],
                "{listen} round {round}: one attempt, at once"
            );
            // PEER_UP comes with the link; the peer's declarations follow.
            assert!(client.wait_for_servers("nc/echo", WATCHDOG).await.unwrap());
            let r = within(client.request("nc/echo", "x", Duration::from_secs(5))).await;
            assert_eq!(&r.unwrap()[..], b"x", "{listen} round {round}");
        }
        client.close().await;
        server.close().await;
    }
}
