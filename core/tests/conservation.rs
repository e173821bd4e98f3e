//! No silent loss (issue 16): after floods, freezes and killed connections,
//! every message a publisher published is accounted for, exactly:
//!
//! published = delivered + queued + dropped by the subscription
//!           + lost with a link (counted by the subscriber after each
//!             reconnection, from the publisher's TALLY, and by the
//!             publisher for messages published into a closing link)
//!           + dropped at the publisher (no credit or room in time,
//!             offline buffer full).
//!
//! Over real TCP through a proxy the test can freeze (it stops reading:
//! both sides' heartbeats give up on the link) and cut (every connection
//! through it closes at once, with what it held), in both directions of
//! dialling: when the publisher dials it holds messages while the
//! subscriber is away; when the subscriber dials, the publisher does not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv, SubscribeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const WATCHDOG: Duration = Duration::from_secs(60);

/// A TCP proxy that can freeze (stop reading both ways, as a stopped
/// process would; nothing is closed) and cut every connection through it.
struct Proxy {
    addr: String,
    frozen: Arc<AtomicBool>,
    thaw: Arc<Notify>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("tcp://{}", l.local_addr().unwrap());
        let frozen = Arc::new(AtomicBool::new(false));
        let thaw = Arc::new(Notify::new());
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (f, t, c) = (frozen.clone(), thaw.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = l.accept().await else {
                    return;
                };
                let Ok(up) = TcpStream::connect(upstream.trim_start_matches("tcp://")).await else {
                    continue; // the far side dropped it: so does the dialler
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let mut c = c.lock().unwrap();
                c.push(tokio::spawn(pump(dr, uw, f.clone(), t.clone())));
                c.push(tokio::spawn(pump(ur, dw, f.clone(), t.clone())));
            }
        });
        Proxy {
            addr,
            frozen,
            thaw,
            conns,
            accept,
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, SeqCst);
        self.thaw.notify_waiters();
    }

    /// Closes every connection through the proxy, discarding what it held.
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    thaw: Arc<Notify>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while frozen.load(SeqCst) {
            let n = thaw.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if !frozen.load(SeqCst) {
                break;
            }
            n.await;
        }
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Heartbeats of 100 ms x 3: a frozen link is found in about 0.4 s.
fn cfg(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_millis(100);
    c.heartbeat_misses = 3;
    c.send_timeout = Duration::from_millis(20);
    c.reconnect.min_delay = Duration::from_millis(10);
    c.reconnect.max_delay = Duration::from_millis(100);
    c
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Account {
    out: u64,
    delivered: u64,
    queued: u64,
    dropped_by_sub: u64,
    lost_at_sub: u64,
    lost_at_pub: u64,
    dropped_at_pub: u64,
}

#[derive(Clone, Copy, Debug)]
enum Dialler {
    Publisher,
    Subscriber,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_messages_are_counted_after_freezes_kills_and_floods() {
    tokio::time::timeout(WATCHDOG, async {
        for dialler in [Dialler::Publisher, Dialler::Subscriber] {
            run(dialler).await;
        }
    })
    .await
    .expect("watchdog: the test took too long");
}

async fn run(dialler: Dialler) {
    let publisher = Endpoint::new(cfg("cons-pub")).unwrap();
    let subscriber = Endpoint::new(cfg("cons-sub")).unwrap();
    let mut opts = SubscribeOptions::default();
    opts.capacity = 256;
    let sub = subscriber.subscribe_with("data", opts).unwrap();
    let proxy = match dialler {
        Dialler::Publisher => {
            let at = subscriber.listen("tcp://127.0.0.1:0").await.unwrap();
            let proxy = Proxy::start(at).await;
            publisher.connect(&proxy.addr).await.unwrap();
            proxy
        }
        Dialler::Subscriber => {
            let at = publisher.listen("tcp://127.0.0.1:0").await.unwrap();
            let proxy = Proxy::start(at).await;
            subscriber.connect(&proxy.addr).await.unwrap();
            proxy
        }
    };
    assert!(publisher
        .wait_for_subscribers("data", Duration::from_secs(10))
        .await
        .unwrap());
    let mut events = subscriber.events();

    // A consumer slower than the flood, so credit runs out and the
    // publisher's queue and the kernels' buffers stay full.
    let consumer = tokio::spawn(async move {
        let mut last = None::<u64>;
        let mut n = 0u64;
        let mut recent = std::collections::VecDeque::new();
        while let Some(m) = sub.recv().await {
            let seq = u64::from_be_bytes(m.payload()[..8].try_into().unwrap());
            recent.push_back(seq);
            if recent.len() > 400 {
                recent.pop_front();
            }
            if last.is_some_and(|l| seq <= l) {
                let v: Vec<_> = recent.iter().collect();
                let mut runs = String::new();
                let mut start = *v[0];
                for w in v.windows(2) {
                    if *w[1] != *w[0] + 1 {
                        runs += &format!("{start}..={} ", w[0]);
                        start = *w[1];
                    }
                }
                runs += &format!("{start}..={}", v[v.len() - 1]);
                panic!("out of order: {seq} after {last:?}; recent runs {runs}");
            }
            last = Some(seq);
            n += 1;
            if n % 64 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let flood = {
        let (p, stop, attempts) = (publisher.clone(), stop.clone(), attempts.clone());
        tokio::spawn(async move {
            let mut payload = vec![0u8; 512];
            let mut refused = 0u64;
            while !stop.load(SeqCst) {
                let seq = attempts.load(SeqCst);
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                let r = p.publish("data", payload.clone()).await;
                attempts.store(seq + 1, SeqCst);
                match r {
                    Ok(()) => {}
                    Err(e) if e.code() == ErrorCode::BufferFull => refused += 1,
                    Err(e) => panic!("publish: {e}"),
                }
            }
            refused
        })
    };

    let phase = |ms| tokio::time::sleep(Duration::from_millis(ms));
    phase(300).await;
    // A freeze long enough for both heartbeats to give up, then the old
    // connection closes with what it held, and the dialler comes back.
    proxy.freeze();
    phase(800).await;
    proxy.cut();
    proxy.thaw();
    phase(500).await;
    // A kill in full flow.
    proxy.cut();
    phase(500).await;
    proxy.cut();
    phase(500).await;
    stop.store(true, SeqCst);
    let refused = flood.await.unwrap();
    let published = attempts.load(SeqCst);

    // Wait until everything is accounted for (the last link's TALLYs come
    // with the next connection; held messages drain). Two sums:
    // - every message the publisher sent (queued for the subscriber on
    //   some link) was delivered, is queued, was dropped by the
    //   subscription or was counted lost with its link by the subscriber;
    // - every publish went out, was dropped at the publisher or lost with a
    //   closing link there; when the subscriber dials, a publish while it
    //   is away has no target at all (nobody subscribed, as far as the
    //   publisher can know) and is not in this sum.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let account = || {
        let s = subscriber.stats();
        let p = publisher.stats();
        let subs = &s.subscriptions[0];
        Account {
            out: p.total.msgs_out,
            delivered: subs.delivered,
            queued: subs.queued as u64,
            dropped_by_sub: subs.dropped,
            lost_at_sub: s.total.lost_with_link,
            lost_at_pub: p.total.lost_with_link,
            dropped_at_pub: p.total.dropped_send_full,
        }
    };
    let a = loop {
        let a = account();
        let received = a.delivered + a.queued + a.dropped_by_sub + a.lost_at_sub;
        let sent = a.out + a.lost_at_pub + a.dropped_at_pub;
        let publishes_ok = match dialler {
            Dialler::Publisher => sent == published,
            Dialler::Subscriber => sent <= published,
        };
        if received == a.out && publishes_ok {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dialler:?}: published {published}, went out {sent}, received {received}: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Refusals are among the publisher's drops.
    assert!(a.dropped_at_pub >= refused, "{a:?} refused {refused}");
    // The losses were reported, not only counted.
    let mut reported = 0;
    let by = tokio::time::Instant::now() + Duration::from_secs(5);
    while reported < a.lost_at_sub && tokio::time::Instant::now() < by {
        if let Ok(EventRecv::Event(Event::Dropped {
            code: ErrorCode::PeerLost,
            count,
            ..
        })) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            reported += count;
        }
    }
    assert_eq!(reported, a.lost_at_sub, "every loss reported");
    eprintln!("{dialler:?}: published {published} (refused {refused}): {a:?}");
    publisher.close().await;
    subscriber.close().await;
    consumer.await.unwrap();
    drop(proxy);
}
