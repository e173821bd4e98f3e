//! Helpers shared by the security tests (`tls.rs`, `psk.rs`): a watchdog,
//! waiting for a refusal's event, and checking that a link carries traffic.

// Not every test file uses every helper.
#![allow(dead_code)]

use std::time::Duration;

use netchan::{Bytes, Endpoint, ErrorCode, Event, EventRecv, Events, Subscription};

pub const WATCHDOG: Duration = Duration::from_secs(20);

pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WATCHDOG, f)
        .await
        .expect("watchdog: test took too long")
}

/// Waits for the next `ConnectionError` event and returns its code.
pub async fn connection_error(ev: &mut Events) -> ErrorCode {
    loop {
        match within(ev.recv()).await {
            EventRecv::Event(Event::ConnectionError { code, .. }) => return code,
            EventRecv::Event(_) => continue,
            other => panic!("no connection error: {other:?}"),
        }
    }
}

/// `client` connects to `addr` and gets an answer from its `echo` service.
pub async fn works(client: &Endpoint, addr: &str) {
    client.connect(addr).await.unwrap();
    let r = within(client.request("echo", Bytes::from_static(b"hi"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&r[..], b"hi");
}

/// Over a connected link: `n` small messages and a 3 MiB one reach `sub`
/// (subscribed to `data/**`) whole and in order, and a 3 MiB request comes
/// back from `echo`: the write pump keeps order and large frames cross.
pub async fn carries_traffic(client: &Endpoint, sub: &Subscription, n: u32) {
    let big = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
    for i in 0..n {
        client
            .publish("data/x", Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    client.publish("data/big", big.clone()).await.unwrap();
    for i in 0..n {
        assert_eq!(sub.recv().await.unwrap().payload(), &i.to_be_bytes()[..]);
    }
    assert_eq!(sub.recv().await.unwrap().payload(), &big);
    let r = client
        .request("echo", big.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r, big);
}
