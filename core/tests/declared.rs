//! Declarations take effect before the call returns (issue 16): after
//! `subscribe` or `serve` returns on a plain thread (or `ready()` completes
//! in async code), a message a connected peer publishes reaches the
//! subscription and a request finds the service, every time.

use std::time::Duration;

use netchan::{Config, Endpoint, ErrorCode};

const ROUNDS: usize = 20;

fn pair(listen: &str) -> (Endpoint, Endpoint) {
    let a = Endpoint::new(Config::named("a")).unwrap();
    let addr = a.block_on(a.listen(listen)).unwrap().unwrap();
    let b = Endpoint::new(Config::named("b")).unwrap();
    b.block_on(b.connect(&addr)).unwrap().unwrap();
    (a, b)
}

fn unix_addr(tag: &str) -> String {
    format!(
        "unix://{}/netchan-decl-{tag}-{}-{:x}.sock",
        std::env::temp_dir().display(),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// From a plain thread: subscribe, then the peer publishes at once; serve,
/// then the peer requests at once. Without the wait the message was lost
/// (the peer had no interest yet) and the request got `NO_RESPONDERS`.
#[test]
fn a_subscription_is_known_to_peers_when_subscribe_returns() {
    for listen in ["tcp://127.0.0.1:0".to_owned(), unix_addr("sub")] {
        let (a, b) = pair(&listen);
        for i in 0..ROUNDS {
            let path = format!("r/{i}");
            let sub = b.subscribe(&path).unwrap();
            a.publish_blocking(&path, format!("m{i}")).unwrap();
            let m = sub
                .recv_blocking(Some(Duration::from_secs(5)))
                .unwrap()
                .unwrap_or_else(|| panic!("round {i}: the message was lost"));
            assert_eq!(m.payload().as_ref(), format!("m{i}").as_bytes());
        }
        a.block_on(a.close()).unwrap();
        b.block_on(b.close()).unwrap();
    }
}

#[test]
fn a_service_is_known_to_peers_when_serve_returns() {
    let (a, b) = pair("tcp://127.0.0.1:0");
    for i in 0..ROUNDS {
        let path = format!("s/{i}");
        let _svc = b
            .serve_fn(&path, |r| async move { Ok(r.payload().clone()) })
            .unwrap();
        match a.request_blocking(&path, "q", Duration::from_secs(5)) {
            Ok(r) => assert_eq!(r.as_ref(), b"q"),
            Err(e) => {
                assert_ne!(e.code(), ErrorCode::NoResponders, "round {i}: {e}");
                panic!("round {i}: {e}");
            }
        }
    }
    a.block_on(a.close()).unwrap();
    b.block_on(b.close()).unwrap();
}

/// In async code `subscribe` cannot block; `ready().await` is the same
/// guarantee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_gives_the_same_guarantee_in_async_code() {
    let a = Endpoint::new(Config::named("a")).unwrap();
    let addr = a.listen("tcp://127.0.0.1:0").await.unwrap();
    let b = Endpoint::new(Config::named("b")).unwrap();
    b.connect(&addr).await.unwrap();
    for i in 0..ROUNDS {
        let path = format!("r/{i}");
        let sub = b.subscribe(&path).unwrap();
        sub.ready().await;
        a.publish(&path, format!("m{i}")).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .unwrap_or_else(|_| panic!("round {i}: the message was lost"))
            .unwrap();
        assert_eq!(m.payload().as_ref(), format!("m{i}").as_bytes());
        let svc = b
            .serve_fn(
                &format!("s/{i}"),
                |r| async move { Ok(r.payload().clone()) },
            )
            .unwrap();
        svc.ready().await;
        let r = a
            .request(&format!("s/{i}"), "q", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.as_ref(), b"q");
    }
    a.close().await;
    b.close().await;
}
