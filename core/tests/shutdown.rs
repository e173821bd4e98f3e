//! After `runtime::shutdown`: an endpoint made on netchan's own runtime
//! fails every call at once with CLOSED (never hangs, panics or pretends to
//! succeed), its drop does nothing, and a new endpoint starts a fresh
//! runtime. Alone in its test binary: it stops the process-wide runtime.

use std::time::Duration;

use netchan::{Endpoint, ErrorCode};

#[test]
fn endpoints_of_a_stopped_runtime_fail_fast_and_new_ones_work() {
    // On netchan's own runtime: no tokio runtime in this thread.
    let old = Endpoint::named("before-shutdown").unwrap();
    let sub = old.subscribe("t").unwrap();
    let svc = old.serve("s").unwrap();
    old.block_on(old.listen("tcp://127.0.0.1:0"))
        .unwrap()
        .unwrap();
    assert!(netchan::runtime::shutdown(Duration::from_secs(5)));

    let closed = |what: &str, r: netchan::Result<()>| {
        let e = r.expect_err(what);
        assert_eq!(e.code(), ErrorCode::Closed, "{what}: {e}");
        assert!(e.detail().contains("shutdown"), "{what}: {e}");
    };
    closed("block_on", old.block_on(async {}).map(|_| ()));
    closed("try_publish", old.try_publish("t", "x"));
    closed("subscribe", old.subscribe("u").map(|_| ()));
    closed("serve", old.serve("v").map(|_| ()));
    closed(
        "recv_blocking",
        sub.recv_blocking(Some(Duration::from_secs(5))).map(|_| ()),
    );
    closed(
        "service recv_blocking",
        svc.recv_blocking(Some(Duration::from_secs(5))).map(|_| ()),
    );
    // Awaited from another runtime, the async calls fail too.
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        closed("publish", old.publish("t", "x").await);
        closed("listen", old.listen("tcp://127.0.0.1:0").await.map(|_| ()));
        closed(
            "request",
            old.request("s", "", Duration::from_secs(5))
                .await
                .map(|_| ()),
        );
    });
    drop(other);
    drop((sub, svc, old));

    // A new endpoint starts a fresh runtime and works.
    let a = Endpoint::named("after-a").unwrap();
    let b = Endpoint::named("after-b").unwrap();
    let _echo = a
        .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    let addr = a.block_on(a.listen("tcp://127.0.0.1:0")).unwrap().unwrap();
    b.block_on(b.connect(&addr)).unwrap().unwrap();
    let r = b
        .block_on(b.request("echo", "hi", Duration::from_secs(5)))
        .unwrap()
        .unwrap();
    assert_eq!(&r[..], b"hi");
    netchan::runtime::shutdown(Duration::from_secs(5));
}
