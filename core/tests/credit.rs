//! Credit per subscription (issue 16): one slow or unread subscription never
//! stalls its link. Over real sockets, bounded by watchdogs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode, Event, EventRecv, SubscribeOptions};

const WATCHDOG: Duration = Duration::from_secs(30);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

fn cfg(name: &str) -> Config {
    let mut c = Config::named(name);
    // A short heartbeat window: a link stalled by the unread subscription
    // would be declared dead many times over during the test.
    c.heartbeat_interval = Duration::from_millis(100);
    c.heartbeat_misses = 3;
    c.send_timeout = Duration::from_millis(50);
    c
}

fn capacity(n: usize) -> SubscribeOptions {
    let mut o = SubscribeOptions::default();
    o.capacity = n;
    o
}

fn unix_addr(tag: &str) -> String {
    format!(
        "unix://{}/netchan-credit-{tag}-{}-{:x}.sock",
        std::env::temp_dir().display(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The reproduction from issue 16: a `Block` subscription nobody reads, on
/// the same link as a second subscription and a service. The publisher
/// floods the unread one; meanwhile the second receives every message,
/// requests keep being answered, no `PeerDown` fires over ten heartbeat
/// windows, and every message of the flood is either queued for the unread
/// subscription or counted as dropped at the publisher (BUFFER_FULL). Read
/// afterwards, the unread subscription yields exactly the messages whose
/// publish returned OK, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_subscription_never_stalls_its_link() {
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("unread")] {
        let sub_side = Endpoint::new(cfg("reader")).unwrap();
        let addr = sub_side.listen(&listen).await.unwrap();
        let unread = sub_side.subscribe_with("slow", capacity(64)).unwrap();
        let fast = sub_side.subscribe("fast").unwrap();
        let _svc = sub_side
            .serve_fn("echo", |req| async move { Ok(req.payload().clone()) })
            .unwrap();

        let publisher = Endpoint::new(cfg("writer")).unwrap();
        publisher.connect(&addr).await.unwrap();
        assert!(within(publisher.wait_for_subscribers("slow", WATCHDOG))
            .await
            .unwrap());
        assert!(within(publisher.wait_for_subscribers("fast", WATCHDOG))
            .await
            .unwrap());
        let mut pub_events = publisher.events();
        let mut sub_events = sub_side.events();

        // The flood on the unread subscription, in its own task.
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let flood = {
            let (p, stop, ok, refused) =
                (publisher.clone(), stop.clone(), ok.clone(), refused.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match p.publish("slow", i.to_be_bytes().to_vec()).await {
                        Ok(()) => {
                            // Only messages whose publish returned OK are
                            // owed: number them so order can be checked.
                            ok.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        };

        // Ten heartbeat windows (3 s) of traffic on the same link.
        let started = tokio::time::Instant::now();
        let mut sent_fast = 0u64;
        let mut got_fast = 0u64;
        let mut requests = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            for _ in 0..100 {
                within(publisher.publish("fast", sent_fast.to_be_bytes().to_vec()))
                    .await
                    .unwrap();
                sent_fast += 1;
            }
            while got_fast < sent_fast {
                let m = within(fast.recv()).await.unwrap();
                assert_eq!(m.payload().as_ref(), got_fast.to_be_bytes(), "in order");
                got_fast += 1;
            }
            let r = within(publisher.request("echo", b"ping".to_vec(), Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(r.as_ref(), b"ping");
            requests += 1;
        }
        assert!(requests > 10, "requests kept being answered: {requests}");
        stop.store(true, Ordering::Relaxed);
        within(flood).await.unwrap();
        assert!(
            refused.load(Ordering::Relaxed) > 0,
            "the flood outran the unread subscription"
        );

        // No PeerDown either side, in all that time.
        for events in [&mut pub_events, &mut sub_events] {
            while let Some(EventRecv::Event(e)) = events.try_recv() {
                assert!(
                    !matches!(e, Event::PeerDown { .. }),
                    "a live peer was declared dead: {e:?}"
                );
            }
        }

        // Conservation: what the publisher was told OK is all queued for
        // the unread subscription (in its queue or waiting on the link),
        // the rest counted as dropped at the publisher.
        let ok = ok.load(Ordering::Relaxed);
        let s = sub_side.stats();
        let slow = s
            .subscriptions
            .iter()
            .find(|s| s.pattern == "slow")
            .unwrap();
        assert_eq!((slow.delivered, slow.dropped), (0, 0));
        assert_eq!(slow.queued as u64, ok, "every OK publish is queued");
        let p = publisher.stats();
        assert!(
            p.total.dropped_send_full >= refused.load(Ordering::Relaxed),
            "every refused publish is counted: {:?}",
            p.total
        );

        // Read now: exactly the OK messages, in order; and the link takes
        // new ones again as credit comes back.
        for i in 0..ok {
            let m = within(unread.recv()).await.unwrap();
            assert_eq!(
                m.payload().as_ref(),
                i.to_be_bytes(),
                "message {i} in order"
            );
        }
        // The publisher gave up on the slot during the flood, so its
        // publishes drop at once until the credit freed by the reads above
        // arrives (moments later).
        let deadline = tokio::time::Instant::now() + WATCHDOG;
        while let Err(e) = publisher.publish("slow", 0u64.to_be_bytes().to_vec()).await {
            assert_eq!(e.code(), ErrorCode::BufferFull);
            assert!(
                tokio::time::Instant::now() < deadline,
                "credit never came back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            within(unread.recv()).await.unwrap().payload().as_ref(),
            0u64.to_be_bytes()
        );
        for i in 0..200u64 {
            within(publisher.publish("slow", i.to_be_bytes().to_vec()))
                .await
                .unwrap();
            let m = within(unread.recv()).await.unwrap();
            assert_eq!(m.payload().as_ref(), i.to_be_bytes());
        }
        publisher.close().await;
        sub_side.close().await;
    }
}

/// The second flood from issue 16, as a Python user met it: a consumer
/// that sleeps 1 ms per message, flooded for ten heartbeat windows. The
/// link stays alive (no `PeerDown` either side, so no redial storm),
/// requests on it keep being answered, the consumer gets every message
/// whose publish returned OK, in order, and every other publish was
/// refused with `BUFFER_FULL` and counted at the publisher: nothing is lost
/// without a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sleeping_per_message_keeps_its_link_and_loses_nothing_uncounted() {
    let sub_side = Endpoint::new(cfg("sleeper")).unwrap();
    let addr = sub_side.listen("tcp://127.0.0.1:0").await.unwrap();
    let sub = sub_side.subscribe_with("sleepy", capacity(256)).unwrap();
    let _svc = sub_side
        .serve_fn("echo", |req| async move { Ok(req.payload().clone()) })
        .unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let consumer = {
        let got = got.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.recv().await {
                let n = got.load(Ordering::Relaxed);
                assert_eq!(m.payload().as_ref(), n.to_be_bytes(), "in order");
                tokio::time::sleep(Duration::from_millis(1)).await;
                got.store(n + 1, Ordering::Relaxed);
            }
        })
    };
    let publisher = Endpoint::new(cfg("flooder")).unwrap();
    publisher.connect(&addr).await.unwrap();
    assert!(within(publisher.wait_for_subscribers("sleepy", WATCHDOG))
        .await
        .unwrap());
    let mut pub_events = publisher.events();
    let mut sub_events = sub_side.events();

    let (mut ok, mut refused, mut requests) = (0u64, 0u64, 0u64);
    let started = tokio::time::Instant::now();
    let mut k = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        match publisher.publish("sleepy", ok.to_be_bytes().to_vec()).await {
            // Only messages whose publish returned OK are owed: numbered.
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
                refused += 1;
            }
        }
        k += 1;
        if k % 200 == 0 {
            let r = within(publisher.request("echo", b"ping".to_vec(), Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(r.as_ref(), b"ping");
            requests += 1;
        }
        tokio::task::yield_now().await;
    }
    assert!(requests > 10, "requests kept being answered: {requests}");
    assert!(refused > 0, "the flood outran the consumer");
    // The consumer drains all that was accepted, and nothing more comes.
    let deadline = tokio::time::Instant::now() + WATCHDOG;
    while got.load(Ordering::Relaxed) < ok {
        assert!(tokio::time::Instant::now() < deadline, "never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.load(Ordering::Relaxed), ok);
    for events in [&mut pub_events, &mut sub_events] {
        while let Some(EventRecv::Event(e)) = events.try_recv() {
            assert!(
                !matches!(
                    e,
                    Event::PeerDown { .. }
                        | Event::Reconnecting { .. }
                        | Event::ConnectionError { .. }
                ),
                "the link was lost or redialled: {e:?}"
            );
        }
    }
    assert_eq!(publisher.stats().total.dropped_send_full, refused);
    assert_eq!(sub_side.stats().total.dropped_queue_full, 0);
    publisher.close().await;
    sub_side.close().await;
    within(consumer).await.unwrap();
}

/// A subscription whose consumer is slower than the publisher gets every
/// message, in order, at the consumer's pace: the publisher waits for
/// credit (within `send_timeout`) instead of overrunning the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_gets_everything_in_order() {
    let mut c = cfg("slowsub");
    c.send_timeout = Duration::from_secs(10);
    let sub_side = Endpoint::new(c).unwrap();
    let addr = sub_side.listen("tcp://127.0.0.1:0").await.unwrap();
    let sub = sub_side.subscribe_with("s/**", capacity(8)).unwrap();
    let mut c = cfg("fastpub");
    c.send_timeout = Duration::from_secs(10);
    let publisher = Endpoint::new(c).unwrap();
    publisher.connect(&addr).await.unwrap();
    assert!(within(publisher.wait_for_subscribers("s/x", WATCHDOG))
        .await
        .unwrap());
    const N: u64 = 3000;
    let p = publisher.clone();
    let producer = tokio::spawn(async move {
        for i in 0..N {
            let path = if i % 3 == 0 { "s/a" } else { "s/b/c" };
            p.publish(path, i.to_be_bytes().to_vec()).await.unwrap();
        }
    });
    for i in 0..N {
        let m = within(sub.recv()).await.unwrap();
        assert_eq!(m.payload().as_ref(), i.to_be_bytes(), "message {i}");
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    within(producer).await.unwrap();
    let s = publisher.stats();
    assert_eq!(s.total.dropped_send_full, 0);
    publisher.close().await;
    sub_side.close().await;
}

/// Large messages past the byte window: the publisher waits for credit and
/// everything arrives, also when it closes at once after publishing
/// (`close` flushes what was queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_past_the_byte_window_all_arrive_before_close() {
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("bytes")] {
        let sub_side = Endpoint::new(Config::named("stayer")).unwrap();
        let addr = sub_side.listen(&listen).await.unwrap();
        let mut o = capacity(65);
        o.max_bytes = 64 << 20;
        let sub = sub_side.subscribe_with("bye", o).unwrap();
        let publisher = Endpoint::new(Config::named("leaver")).unwrap();
        publisher.connect(&addr).await.unwrap();
        assert!(within(publisher.wait_for_subscribers("bye", WATCHDOG))
            .await
            .unwrap());
        let chunk = bytes::Bytes::from(vec![7u8; 256 * 1024]);
        for _ in 0..64 {
            within(publisher.publish("bye", chunk.clone()))
                .await
                .unwrap();
        }
        within(publisher.publish("bye", &b"last"[..]))
            .await
            .unwrap();
        publisher.close().await;
        for i in 0..64 {
            let m = within(sub.recv()).await.unwrap();
            assert_eq!(m.payload().len(), 256 * 1024, "message {i}");
        }
        assert_eq!(
            within(sub.recv()).await.unwrap().payload().as_ref(),
            b"last"
        );
        sub_side.close().await;
    }
}

/// A `Disconnect` subscription that stops reading: its publisher waits its
/// `send_timeout` for credit once, gets `BUFFER_FULL`, and cuts the link
/// (`PeerDown` with `BUFFER_FULL` there; the subscriber gets a CLOSE that
/// says why).
/// The publisher (which dialled) redials, the subscription is declared
/// again, and the messages that reached the subscriber before the cut are
/// read in order before the next one. A
/// `Block` subscription in the same place never loses its link
/// (`an_unread_subscription_never_stalls_its_link`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_subscription_that_stops_reading_has_its_link_cut() {
    let sub_side = Endpoint::new(cfg("cut-reader")).unwrap();
    let addr = sub_side.listen("tcp://127.0.0.1:0").await.unwrap();
    let mut o = capacity(4);
    o.overflow = netchan::Overflow::Disconnect;
    let slow = sub_side.subscribe_with("slow", o).unwrap();
    let mut c = cfg("cut-writer");
    c.send_timeout = Duration::from_millis(200);
    let publisher = Endpoint::new(c).unwrap();
    let mut pub_events = publisher.events();
    let mut sub_events = sub_side.events();
    publisher.connect(&addr).await.unwrap();
    assert!(within(publisher.wait_for_subscribers("slow", WATCHDOG))
        .await
        .unwrap());
    // The queue (4) and the link's park (a window, 4) fill; the next
    // publish waits 200 ms for credit in vain.
    let mut ok = 0u8;
    let e = loop {
        match within(publisher.publish("slow", vec![ok])).await {
            Ok(()) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok <= 8, "published past the window");
    };
    assert_eq!(ok, 8);
    assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
    assert_eq!(publisher.stats().total.dropped_send_full, 1);
    for (side, events) in [
        ("publisher", &mut pub_events),
        ("subscriber", &mut sub_events),
    ] {
        loop {
            match within(events.recv()).await {
                EventRecv::Event(Event::PeerDown { code, reason, .. }) => {
                    // The publisher cut the link; the subscriber was told
                    // why with a CLOSE frame (an orderly close, `CLOSED`).
                    let (want, said) = match side {
                        "publisher" => (ErrorCode::BufferFull, "slow consumer"),
                        _ => (ErrorCode::Closed, "BUFFER_FULL: slow consumer"),
                    };
                    assert_eq!(code, want, "{side}: {reason}");
                    assert!(reason.contains(said), "{side}: {reason}");
                    break;
                }
                EventRecv::Closed => panic!("{side}: events ended"),
                _ => {}
            }
        }
    }
    // Redialled, declared again: the next message goes over the new link,
    // after the eight that arrived before the cut (queued, and parked on
    // the old link), in order: the new link's message waits behind the old
    // link's park (it overtook it once: a fresh-clone run).
    assert!(within(publisher.wait_for_subscribers("slow", WATCHDOG))
        .await
        .unwrap());
    within(publisher.publish("slow", vec![ok])).await.unwrap();
    for i in 0..=ok {
        let m = within(slow.recv()).await.unwrap();
        assert_eq!(&m.payload()[..], &[i]);
    }
}

/// A loop of publishes that fail at once (a peer's unread `Block`
/// subscription, stalled) yields now and then: on a current-thread runtime
/// a timer in another task still fires, and the subscriber's own tasks on
/// the same thread still run. Before, such a loop held the thread forever.
#[test]
fn a_loop_of_failing_publishes_lets_other_tasks_run() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let sub_ep = Endpoint::new(cfg("fast-fail-sub")).unwrap();
            let _unread = sub_ep.subscribe_with("data", capacity(1)).unwrap();
            let addr = unix_addr("fast-fail");
            sub_ep.listen(&addr).await.unwrap();
            let publisher = Endpoint::new(cfg("fast-fail-pub")).unwrap();
            publisher.connect(&addr).await.unwrap();
            assert!(publisher
                .wait_for_subscribers("data", Duration::from_secs(5))
                .await
                .unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let flood = {
                let (p, stop) = (publisher.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut refused = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        if let Err(e) = p.publish("data", &b"x"[..]).await {
                            assert_eq!(e.code(), ErrorCode::BufferFull, "{e}");
                            refused += 1;
                        }
                    }
                    refused
                })
            };
            // Long enough for the subscription to stall and the publishes
            // to fail at once.
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::SeqCst);
            let refused = flood.await.unwrap();
            publisher.close().await;
            sub_ep.close().await;
            refused
        });
        let _ = tx.send(r);
    });
    // The thread hangs forever if the loop never yields: a watchdog here.
    let refused = rx
        .recv_timeout(WATCHDOG)
        .expect("the timer never fired: the publishing loop held the thread");
    assert!(refused > 1000, "the publishes failed at once: {refused}");
}
