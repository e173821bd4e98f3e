//! Rate limits per peer on real loopback sockets (issue 17, requirement
//! 6): a peer flooding past its limit has the excess dropped and counted
//! (every message is either delivered or counted), while another peer's
//! messages all arrive; a request over the limit gets `RATE_LIMITED`; with
//! the disconnect policy the flooding link is closed with `RATE_LIMITED`.

use std::time::Duration;

use netchan::{Bytes, Config, Endpoint, ErrorCode, Event, EventRecv, RateLimit, RatePolicy};

mod common;
use common::within;

fn endpoint(name: &str, limit: Option<(u32, RatePolicy)>) -> Endpoint {
    let mut cfg = Config::named(name);
    cfg.reconnect.enabled = false;
    if let Some((msgs, policy)) = limit {
        let mut l = RateLimit::default();
        l.msgs_per_sec = msgs;
        l.policy = policy;
        cfg.rate_limit = l;
    }
    Endpoint::new(cfg).unwrap()
}

const FLOOD: u64 = 20_000;

#[tokio::test]
async fn a_flooding_peer_is_cut_to_its_rate_and_the_others_are_unaffected() {
    within(async {
        let srv = endpoint("srv", Some((1000, RatePolicy::Drop)));
        let addr = srv.listen("tcp://127.0.0.1:0").await.unwrap();
        let flood_sub = srv.subscribe("flood/**").unwrap();
        let calm_sub = srv.subscribe("calm/**").unwrap();
        let mut ev = srv.events();
        let flooder = endpoint("flooder", None);
        let calm = endpoint("calm", None);
        flooder.connect(&addr).await.unwrap();
        calm.connect(&addr).await.unwrap();
        let t = Duration::from_secs(10);
        assert!(flooder.wait_for_subscribers("flood/x", t).await.unwrap());
        assert!(calm.wait_for_subscribers("calm/x", t).await.unwrap());
        let flooding = async {
            for i in 0..FLOOD {
                flooder
                    .publish("flood/x", Bytes::from(i.to_be_bytes().to_vec()))
                    .await
                    .unwrap();
            }
        };
        let calming = async {
            for i in 0u64..100 {
                calm.publish("calm/x", Bytes::from(i.to_be_bytes().to_vec()))
                    .await
                    .unwrap();
            }
        };
        tokio::join!(flooding, calming);
        // The calm peer's 100 all arrive, in order: its own bucket is full.
        for i in 0u64..100 {
            assert_eq!(
                calm_sub.recv().await.unwrap().payload(),
                &i.to_be_bytes()[..]
            );
        }
        // Every flooded message is delivered or counted as rate limited.
        let (mut delivered, mut limited) = (0u64, 0u64);
        while delivered + limited < FLOOD {
            tokio::select! {
                m = flood_sub.recv() => { m.unwrap(); delivered += 1; }
                e = ev.recv() => match e {
                    EventRecv::Event(Event::Dropped { site, code, count }) => {
                        assert_eq!((site.as_str(), code), ("flooder", ErrorCode::RateLimited));
                        limited += count;
                    }
                    EventRecv::Event(_) => {}
                    other => panic!("{other:?}"),
                },
            }
        }
        assert_eq!(delivered + limited, FLOOD);
        assert!(delivered >= 1000, "one second's worth passes: {delivered}");
        assert!(limited > 0, "the flood was cut");
        let stats = srv.stats();
        let per = |name: &str| {
            stats
                .peers
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .counters
        };
        assert_eq!(per("flooder").rate_limited, limited);
        assert_eq!(per("calm").rate_limited, 0);
        assert_eq!(stats.total.rate_limited, limited);
        assert_eq!(srv.peers().len(), 2, "the drop policy keeps the link");
        for ep in [flooder, calm, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn a_request_over_the_limit_gets_rate_limited() {
    within(async {
        let srv = endpoint("srv", Some((1, RatePolicy::Drop)));
        let addr = srv.listen("tcp://127.0.0.1:0").await.unwrap();
        let _echo = srv
            .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        let cli = endpoint("cli", None);
        cli.connect(&addr).await.unwrap();
        let t = Duration::from_secs(5);
        // One a second: the first passes, the next (a second too soon) not.
        assert_eq!(&cli.request("echo", "1", t).await.unwrap()[..], b"1");
        let e = cli.request("echo", "2", t).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimited, "{e}");
        assert_eq!(srv.stats().total.rate_limited, 1);
        cli.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn the_disconnect_policy_closes_a_flooding_link_with_rate_limited() {
    within(async {
        let srv = endpoint("srv", Some((100, RatePolicy::Disconnect)));
        let addr = srv.listen("tcp://127.0.0.1:0").await.unwrap();
        let _sub = srv.subscribe("flood/**").unwrap();
        let flooder = endpoint("flooder", None);
        let mut ev = flooder.events();
        flooder.connect(&addr).await.unwrap();
        assert!(flooder
            .wait_for_subscribers("flood/x", Duration::from_secs(10))
            .await
            .unwrap());
        let (code, reason) = loop {
            // Publishing ends when the link is gone (nothing to send to).
            let _ = flooder.publish("flood/x", Bytes::from_static(b"x")).await;
            if let Some(EventRecv::Event(Event::PeerDown { code, reason, .. })) = ev.try_recv() {
                break (code, reason);
            }
            tokio::task::yield_now().await;
        };
        // The server's CLOSE said why (an orderly close on this side).
        assert_eq!(code, ErrorCode::Closed, "{reason}");
        assert!(reason.contains("RATE_LIMITED"), "{reason}");
        assert!(srv.stats().total.rate_limited >= 1);
        flooder.close().await;
        srv.close().await;
    })
    .await
}
