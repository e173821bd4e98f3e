//! Bidirectional streams (issue 16, requirement 6), over real sockets
//! (TCP and Unix) and within one endpoint, bounded by watchdogs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, ServeOptions, Stream, StreamOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const WATCHDOG: Duration = Duration::from_secs(60);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

fn cfg(name: &str) -> Config {
    let mut c = Config::named(name);
    c.heartbeat_interval = Duration::from_millis(200);
    c
}

fn unix_addr(tag: &str) -> String {
    format!(
        "unix://{}/netchan-streams-{tag}-{}-{:x}.sock",
        std::env::temp_dir().display(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Waits until `client` knows a server of streams on `path`.
async fn serving(client: &Endpoint, path: &str) {
    within(async {
        while client.stream_servers(path).unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// An echo server for streams: every message back, then the end.
fn echo(ep: &Endpoint, pattern: &str) -> netchan::StreamService {
    ep.serve_stream_fn(pattern, |req, s: Stream| async move {
        s.send(req.payload().clone()).await?;
        while let Some(m) = s.recv().await? {
            s.send(m).await?;
        }
        Ok(())
    })
    .unwrap()
}

/// A server endpoint and a client connected to it over `listen` (None:
/// the client is the server endpoint itself, for local streams).
async fn pair(
    listen: Option<&str>,
    server_cfg: Config,
    client_cfg: Config,
) -> (Endpoint, Endpoint) {
    let server = Endpoint::new(server_cfg).unwrap();
    let Some(listen) = listen else {
        return (server.clone(), server);
    };
    let addr = server.listen(listen).await.unwrap();
    let client = Endpoint::new(client_cfg).unwrap();
    within(client.connect(&addr)).await.unwrap();
    (server, client)
}

fn transports() -> Vec<Option<String>> {
    vec![
        Some("tcp://127.0.0.1:0".to_owned()),
        Some(unix_addr("t")),
        None,
    ]
}

/// Messages cross both ways byte for byte and in order; each side ends its
/// direction on its own (half-close): the client finishes, still receives
/// the echoes, then the server's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_echoes_both_ways_and_half_closes() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let _svc = echo(&server, "echo/*");
        within(client.wait_for_servers("x", Duration::from_millis(1)))
            .await
            .ok();
        let s = within(client.open_stream("echo/a", "hello")).await.unwrap();
        assert_eq!(s.path(), "echo/a");
        assert_eq!(&within(s.recv()).await.unwrap().unwrap()[..], b"hello");
        let msgs: Vec<Vec<u8>> = (0..500u32)
            .map(|i| {
                let n = (i as usize * 37) % 3000;
                (0..n).map(|j| (i as usize + j) as u8).collect()
            })
            .collect();
        let (tx, rx) = s.split();
        let sender = {
            let msgs = msgs.clone();
            tokio::spawn(async move {
                for m in msgs {
                    tx.send(m).await.unwrap();
                }
                tx.finish();
                // Sending after finishing is refused.
                let e = tx.send("late").await.unwrap_err();
                assert_eq!(e.code(), ErrorCode::InvalidArgument);
            })
        };
        for m in &msgs {
            let got = within(rx.recv()).await.unwrap().expect("an echo");
            assert_eq!(&got[..], &m[..]);
        }
        assert_eq!(within(rx.recv()).await.unwrap(), None, "the server's end");
        assert_eq!(within(rx.recv()).await.unwrap(), None, "and it stays ended");
        within(sender).await.unwrap();
        client.close().await;
        server.close().await;
    }
}

/// No server: `NO_RESPONDERS` at once; a stream service is discoverable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_without_a_server_fails_with_no_responders() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let e = within(client.open_stream("nobody", "x")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoResponders, "{e}");
        // A request service on the path is not a stream service.
        let _req = server
            .serve_fn("reqonly", |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        let _svc = echo(&server, "s/**");
        if listen.is_some() {
            serving(&client, "s/x").await;
            assert_eq!(client.stream_servers("s/**").unwrap(), vec!["srv"]);
        }
        let e = within(client.open_stream("reqonly", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoResponders, "{e}");
        let e = within(client.open_stream("bad//path", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidPath);
        let e = within(client.open_stream_with("s/x", "x", StreamOptions::default().window(0)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        client.close().await;
        server.close().await;
    }
}

/// Per-stream credit: a handler that never reads holds back only its own
/// stream. The opener's sends stop at the server's window (exactly: the
/// last one may go past it by one message), while a second stream on the
/// same link echoes and requests are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_share_a_link_without_blocking_each_other() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let mut o = ServeOptions::default();
        o.window = Some(64 * 1024);
        let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
        let _deaf = server
            .serve_stream_fn_with("deaf", o, move |_req, s| {
                let held = held_tx.clone();
                async move {
                    // Never reads; keeps the stream until the test ends.
                    let _ = held.send(s);
                    Ok(())
                }
            })
            .unwrap();
        let _echo = echo(&server, "echo");
        let _rr = server
            .serve_fn("rr", |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        if listen.is_some() {
            within(client.wait_for_servers("rr", WATCHDOG))
                .await
                .unwrap();
        }

        let deaf = Arc::new(within(client.open_stream("deaf", "")).await.unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let blocked = {
            let (deaf, sent) = (deaf.clone(), sent.clone());
            tokio::spawn(async move {
                loop {
                    deaf.send(vec![7u8; 1000]).await?;
                    sent.fetch_add(1000, Ordering::SeqCst);
                }
                #[allow(unreachable_code)]
                Ok::<(), netchan::Error>(())
            })
        };
        // The sender reaches the window and waits there.
        within(async {
            while sent.load(Ordering::SeqCst) < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at_window = sent.load(Ordering::SeqCst);
        assert!(
            (64 * 1024..64 * 1024 + 1000).contains(&at_window),
            "sent {at_window} bytes into a 64 KiB window"
        );
        assert!(!blocked.is_finished());

        // Meanwhile: another stream and requests on the same link.
        let s = within(client.open_stream("echo", "first")).await.unwrap();
        assert_eq!(&within(s.recv()).await.unwrap().unwrap()[..], b"first");
        for i in 0..200u32 {
            s.send(i.to_be_bytes().to_vec()).await.unwrap();
            let r = within(client.request("rr", "ping", Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(&r[..], b"ping");
            assert_eq!(
                &within(s.recv()).await.unwrap().unwrap()[..],
                i.to_be_bytes()
            );
        }
        assert_eq!(
            sent.load(Ordering::SeqCst),
            at_window,
            "still held at the window"
        );

        // The server reads a little: credit comes back, the sender goes on.
        let srv_side = within(held_rx.recv()).await.unwrap();
        let mut read = 0;
        while read < 48 * 1024 {
            read += within(srv_side.recv()).await.unwrap().unwrap().len();
        }
        within(async {
            while sent.load(Ordering::SeqCst) == at_window {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        // Cancelled by the server: the blocked sender sees it.
        srv_side.cancel();
        let e = within(blocked).await.unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled, "{e}");
        client.close().await;
        server.close().await;
    }
}

/// A gigabyte through one stream with a 64 KiB window, while a second
/// stream and requests on the same link stay responsive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_crosses_one_stream_with_a_64k_window() {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: u64 = 1 << 30;
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("gig")] {
        let mut sc = cfg("srv");
        sc.stream_window = 64 * 1024;
        let (server, client) = pair(Some(&listen), sc, cfg("cli")).await;
        // The sink counts what arrives and answers with the count.
        let _sink = server
            .serve_stream_fn("sink", |_req, s| async move {
                let mut n = 0u64;
                let mut sum = 0u64;
                while let Some(m) = s.recv().await? {
                    n += m.len() as u64;
                    sum = sum.wrapping_add(m[m.len() - 1] as u64);
                }
                s.send(format!("{n} {sum}")).await?;
                Ok(())
            })
            .unwrap();
        let _echo = echo(&server, "echo");
        let _rr = server
            .serve_fn("rr", |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        within(client.wait_for_servers("rr", WATCHDOG))
            .await
            .unwrap();

        let big =
            within(client.open_stream_with("sink", "", StreamOptions::default().window(64 * 1024)))
                .await
                .unwrap();
        let pump = tokio::spawn(async move {
            let mut sum = 0u64;
            let mut sent = 0u64;
            let mut i = 0u64;
            while sent < TOTAL {
                let mut chunk = vec![0u8; CHUNK];
                chunk[CHUNK - 1] = i as u8;
                sum = sum.wrapping_add(i as u8 as u64);
                big.send(chunk).await.unwrap();
                sent += CHUNK as u64;
                i += 1;
            }
            big.finish();
            let answer = big.recv().await.unwrap().unwrap();
            (answer, format!("{TOTAL} {sum}"))
        });
        // Responsiveness while the gigabyte flows.
        let side = within(client.open_stream("echo", "x")).await.unwrap();
        within(side.recv()).await.unwrap();
        let mut rounds = 0;
        while !pump.is_finished() {
            let r = within(client.request("rr", "q", Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(&r[..], b"q");
            side.send("e").await.unwrap();
            assert_eq!(&within(side.recv()).await.unwrap().unwrap()[..], b"e");
            rounds += 1;
        }
        let (answer, want) = within(pump).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&answer), want);
        assert!(rounds > 0);
        client.close().await;
        server.close().await;
    }
}

/// Cancel from either side, mid-stream: the other side sees `CANCELLED`
/// on its next receive (after what was sent before) and send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_stream_from_each_side_is_seen_by_the_other() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
        let _svc = server
            .serve_stream_fn("c/*", move |req, s| {
                let got = got_tx.clone();
                async move {
                    if req.path() == "c/server-cancels" {
                        s.send("before").await?;
                        s.cancel();
                        let _ = got.send(s.send("after").await.map(|_| ()));
                        return Ok(());
                    }
                    // c/client-cancels: read until the cancel arrives.
                    let mut r = Ok(());
                    loop {
                        match s.recv().await {
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                    let _ = got.send(r.clone());
                    let _ = got.send(s.send("x").await.map(|_| ()));
                    r
                }
            })
            .unwrap();
        if listen.is_some() {
            serving(&client, "c/x").await;
        }

        // The client cancels; the server's receive and send see it.
        let s = within(client.open_stream("c/client-cancels", ""))
            .await
            .unwrap();
        s.send("one").await.unwrap();
        s.cancel();
        let e = within(s.recv()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled);
        let e = within(s.send("more")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled);
        let r = within(got.recv()).await.unwrap().unwrap_err();
        assert_eq!(r.code(), ErrorCode::Cancelled, "{r}");
        let r = within(got.recv()).await.unwrap().unwrap_err();
        assert_eq!(r.code(), ErrorCode::Cancelled, "{r}");

        // The server cancels: the client gets what came before, then the
        // cancel, on receive and on send.
        let s = within(client.open_stream("c/server-cancels", ""))
            .await
            .unwrap();
        assert_eq!(&within(s.recv()).await.unwrap().unwrap()[..], b"before");
        let e = within(s.recv()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled, "{e}");
        let e = within(s.send("x")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled, "{e}");
        let r = within(got.recv()).await.unwrap().unwrap_err();
        assert_eq!(r.code(), ErrorCode::Cancelled);

        // A handler's error ends the stream with its code.
        let _failing = server
            .serve_stream_fn("fails", |_req, _s| async move {
                Err(netchan::Error::new(ErrorCode::HandlerError, "no thanks"))
            })
            .unwrap();
        if listen.is_some() {
            serving(&client, "fails").await;
        }
        match within(client.open_stream("fails", "")).await {
            // Refused before or after the acceptance reached the opener.
            Err(e) => assert_eq!(e.code(), ErrorCode::HandlerError, "{e}"),
            Ok(s) => {
                let e = within(s.recv()).await.unwrap_err();
                assert_eq!(e.code(), ErrorCode::HandlerError, "{e}");
                assert!(e.detail().contains("no thanks"), "{e}");
            }
        }
        client.close().await;
        server.close().await;
    }
}

/// The deadline travels with the opening: both sides end with `TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_ends_the_stream_on_both_sides() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
        let _svc = server
            .serve_stream_fn("slow", move |req, s| {
                let got = got_tx.clone();
                async move {
                    let left = req.deadline().map(|d| d - tokio::time::Instant::now());
                    let r = s.recv().await;
                    let _ = got.send((left, r.map(|_| ())));
                    Ok(())
                }
            })
            .unwrap();
        if listen.is_some() {
            serving(&client, "slow").await;
        }
        let s = within(client.open_stream_with(
            "slow",
            "",
            StreamOptions::default().timeout(Duration::from_millis(300)),
        ))
        .await
        .unwrap();
        let e = within(s.recv()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
        let (left, r) = within(got.recv()).await.unwrap();
        let left = left.expect("the server saw the deadline");
        assert!(left <= Duration::from_millis(300), "{left:?}");
        assert_eq!(r.unwrap_err().code(), ErrorCode::Timeout);
        client.close().await;
        server.close().await;
    }
}

/// A TCP proxy whose connections can be cut (both sockets closed).
struct Cutter {
    addr: String,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Cutter {
    async fn new(upstream: String) -> Cutter {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("tcp://{}", l.local_addr().unwrap());
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c2 = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut a, _)) = l.accept().await {
                let up = upstream.trim_start_matches("tcp://").to_owned();
                let t = tokio::spawn(async move {
                    let Ok(mut b) = TcpStream::connect(up).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    let _ = a.shutdown().await;
                });
                c2.lock().unwrap().push(t.abort_handle());
            }
        });
        Cutter { addr, conns, task }
    }

    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// The link dies mid-stream: both sides' streams end with `PEER_LOST`
/// (after what had arrived), a blocked sender included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_peer_lost_when_its_link_dies() {
    let server = Endpoint::new(cfg("srv")).unwrap();
    let addr = server.listen("tcp://127.0.0.1:0").await.unwrap();
    let proxy = Cutter::new(addr).await;
    let mut cc = cfg("cli");
    cc.reconnect.enabled = false;
    let client = Endpoint::new(cc).unwrap();
    within(client.connect(&proxy.addr)).await.unwrap();
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let mut o = ServeOptions::default();
    o.window = Some(4096);
    let _svc = server
        .serve_stream_fn_with("s", o, move |_req, s| {
            let got = got_tx.clone();
            async move {
                s.send("hi").await?;
                // Blocked: never reads, until the link dies.
                let mut w = Vec::new();
                loop {
                    match s.send(vec![0u8; 1024]).await {
                        Ok(()) => {}
                        Err(e) => {
                            w.push(e);
                            break;
                        }
                    }
                }
                let _ = got.send(w.pop().unwrap());
                Ok(())
            }
        })
        .unwrap();
    serving(&client, "s").await;
    let s = within(client.open_stream_with("s", "", StreamOptions::default().window(4096)))
        .await
        .unwrap();
    assert_eq!(&within(s.recv()).await.unwrap().unwrap()[..], b"hi");
    // The client sends into the server's 4 KiB window and blocks too.
    let s = Arc::new(s);
    let blocked = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                s.send(vec![1u8; 1024]).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), netchan::Error>(())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    let e = within(blocked).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
    let e = within(got.recv()).await.unwrap();
    assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
    // What arrived is delivered, then the loss.
    let mut n = 0;
    let e = loop {
        match within(s.recv()).await {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("a lost stream does not end cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), ErrorCode::PeerLost, "{e}");
    assert!(n <= 5, "at most the window arrived: {n}");
    client.close().await;
    server.close().await;
}

/// `max_concurrent` streams in the handler, `queue` waiting, the rest
/// refused with `BUFFER_FULL` and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_service_handles_at_most_max_concurrent() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let mut o = ServeOptions::default().max_concurrent(1).queue(1);
        o.window = Some(1024);
        let running = Arc::new(AtomicU64::new(0));
        let r2 = running.clone();
        let svc = server
            .serve_stream_fn_with("one", o, move |_req, s| {
                let running = r2.clone();
                async move {
                    running.fetch_add(1, Ordering::SeqCst);
                    // Until the opener finishes.
                    while s.recv().await?.is_some() {}
                    s.send("done").await?;
                    Ok(())
                }
            })
            .unwrap();
        if listen.is_some() {
            serving(&client, "one").await;
        }
        let a = within(client.open_stream("one", "")).await.unwrap();
        within(async {
            while running.load(Ordering::SeqCst) < 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        // The second waits in the queue: its opening completes when the
        // handler takes it.
        let second = {
            let client = client.clone();
            tokio::spawn(async move { client.open_stream("one", "").await })
        };
        within(async {
            while svc.queued() == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        // The third is refused at once.
        let e = within(client.open_stream("one", "")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
        assert_eq!(server.stats().total.requests_refused, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            1,
            "the second waits its turn"
        );
        assert!(!second.is_finished(), "opened before a handler took it");
        a.finish();
        assert_eq!(&within(a.recv()).await.unwrap().unwrap()[..], b"done");
        let b = within(second).await.unwrap().unwrap();
        b.finish();
        assert_eq!(&within(b.recv()).await.unwrap().unwrap()[..], b"done");
        assert_eq!(running.load(Ordering::SeqCst), 2);
        client.close().await;
        server.close().await;
    }
}

/// A pulled stream service, and dropping an unfinished stream cancels it
/// at the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_stream_service_and_dropping_a_stream_cancels_it() {
    for listen in transports() {
        let (server, client) = pair(listen.as_deref(), cfg("srv"), cfg("cli")).await;
        let svc = server.serve_stream("pull").unwrap();
        svc.ready().await;
        let opener = {
            let client = client.clone();
            tokio::spawn(async move { client.open_stream("pull", "first").await })
        };
        let (req, s) = within(svc.recv()).await.unwrap();
        assert_eq!(req.path(), "pull");
        assert_eq!(&req.payload()[..], b"first");
        assert_eq!(req.sender(), client.name());
        let c = within(opener).await.unwrap().unwrap();
        c.send("x").await.unwrap();
        assert_eq!(&within(s.recv()).await.unwrap().unwrap()[..], b"x");
        drop(c);
        let e = within(s.recv()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled, "{e}");
        client.close().await;
        server.close().await;
    }
}

/// From plain threads: open, send and receive blocking, with timeouts;
/// from an async context the blocking calls refuse (`WOULD_DEADLOCK`).
#[test]
fn streams_from_plain_threads() {
    let server = Endpoint::new(cfg("srv")).unwrap();
    let addr = server
        .block_on(server.listen("tcp://127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let _svc = echo(&server, "echo");
    let _quiet = server
        .serve_stream_fn("quiet", |_req, s| async move {
            while s.recv().await?.is_some() {}
            Ok(())
        })
        .unwrap();
    let client = Endpoint::new(cfg("cli")).unwrap();
    client.block_on(client.connect(&addr)).unwrap().unwrap();
    let s = client
        .open_stream_blocking("echo", "hi", StreamOptions::default())
        .unwrap();
    let t = Some(Duration::from_secs(10));
    assert_eq!(&s.recv_blocking(t).unwrap().unwrap()[..], b"hi");
    s.send_blocking("again", t).unwrap();
    assert_eq!(&s.recv_blocking(t).unwrap().unwrap()[..], b"again");
    s.finish();
    assert_eq!(s.recv_blocking(t).unwrap(), None);

    let q = client
        .open_stream_blocking("quiet", "", StreamOptions::default().window(1))
        .unwrap();
    let e = q
        .recv_blocking(Some(Duration::from_millis(50)))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = q.recv_blocking(None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::WouldDeadlock);
    });
    // Also when a message is already there (not only when it would wait):
    // the echo of the first payload has (very likely) arrived after 50 ms;
    // either way the call must refuse.
    let s2 = client
        .open_stream_blocking("echo", "here", StreamOptions::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    rt.block_on(async {
        let e = s2.recv_blocking(None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::WouldDeadlock);
    });
    assert_eq!(&s2.recv_blocking(t).unwrap().unwrap()[..], b"here");
    client.block_on(client.close()).unwrap();
    server.block_on(server.close()).unwrap();
}

/// A waker that counts its wakes (a foreign event loop's, in effect).
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The readiness hooks for foreign event loops: `Pending` with the waker
/// armed, woken once a stream is opened, a message arrives and the other
/// side ends its direction; `Ready` then with what `recv` would give.
#[test]
fn poll_recv_wakes_a_foreign_waiter_for_streams_messages_and_the_end() {
    use std::task::{Context, Poll};
    let server = Endpoint::new(cfg("srv")).unwrap();
    let addr = server
        .block_on(server.listen("tcp://127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let svc = server.serve_stream("hook").unwrap();
    let client = Endpoint::new(cfg("cli")).unwrap();
    client.block_on(client.connect(&addr)).unwrap().unwrap();
    let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let woken = |n: usize| {
        let deadline = std::time::Instant::now() + WATCHDOG;
        while counter.0.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "never woken");
            std::thread::sleep(Duration::from_millis(1)); // polling a counter, not synchronising
        }
    };
    assert!(svc.poll_recv(&mut cx).is_pending());
    let opener = {
        let client = client.clone();
        std::thread::spawn(move || {
            client.open_stream_blocking("hook", "first", StreamOptions::default())
        })
    };
    woken(1);
    let Poll::Ready(Some((req, s))) = svc.poll_recv(&mut cx) else {
        panic!("woken without a stream");
    };
    assert_eq!(&req.payload()[..], b"first");
    let c = opener.join().unwrap().unwrap();
    assert!(s.poll_recv(&mut cx).is_pending());
    c.send_blocking("one", None).unwrap();
    woken(2);
    match s.poll_recv(&mut cx) {
        Poll::Ready(Ok(Some(m))) => assert_eq!(&m[..], b"one"),
        other => panic!("{other:?}"),
    }
    assert!(s.poll_recv(&mut cx).is_pending());
    c.finish();
    woken(3);
    assert!(matches!(s.poll_recv(&mut cx), Poll::Ready(Ok(None))));
    drop((s, c, svc));
    client.block_on(client.close()).unwrap();
    server.block_on(server.close()).unwrap();
}
