//! After `fork()`: the child cannot use the parent's endpoints (every call
//! fails at once with CLOSED, never hangs), can make and use its own, and
//! the parent's endpoints keep working. Alone in its test binary: it forks.
#![cfg(unix)]

use std::time::{Duration, Instant};

use netchan::{Endpoint, ErrorCode};

/// Runs `child` in a forked child process and returns its exit status; the
/// child is killed if it does not end within `limit`.
fn in_child(limit: Duration, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork in a test binary whose only other threads are the test
    // harness's; the child runs `child` and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let end = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
        }
        if Instant::now() > end {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child did not finish within {limit:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_forked_child_fails_fast_on_inherited_endpoints_and_uses_its_own() {
    // Endpoints on netchan's own runtime (no tokio runtime in this thread).
    let server = Endpoint::named("parent-server").unwrap();
    let addr = server
        .block_on(server.listen("tcp://127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let _echo = server
        .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    let client = Endpoint::named("parent-client").unwrap();
    client.block_on(client.connect(&addr)).unwrap().unwrap();
    let ask = |ep: &Endpoint, what: &str| {
        ep.block_on(ep.request("echo", what.to_owned(), Duration::from_secs(5)))
            .and_then(|r| r)
    };
    assert_eq!(&ask(&client, "before").unwrap()[..], b"before");
    // The child takes these out and drops them; the parent keeps them.
    let mut held = Some((client, server));

    let status = in_child(Duration::from_secs(20), || {
        let (client, server) = held.take().unwrap();
        // The parent's endpoints: CLOSED at once, for every kind of call.
        let t0 = Instant::now();
        let e = ask(&client, "child").unwrap_err();
        if e.code() != ErrorCode::Closed || !e.detail().contains("fork") {
            return 2;
        }
        if client.subscribe("x").unwrap_err().code() != ErrorCode::Closed {
            return 3;
        }
        if client.block_on(async {}).unwrap_err().code() != ErrorCode::Closed {
            return 4;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            return 5;
        }
        // Its own endpoint works, with the parent's server.
        let mine = match Endpoint::named("child") {
            Ok(e) => e,
            Err(_) => return 6,
        };
        if mine.block_on(mine.connect(&addr)).and_then(|r| r).is_err() {
            return 7;
        }
        match ask(&mine, "from the child") {
            Ok(r) if &r[..] == b"from the child" => {}
            _ => return 8,
        }
        // Dropping the inherited endpoints touches nothing of the parent's.
        drop(client);
        drop(server);
        0
    });
    assert_eq!(status, 0, "the child failed at step {status}");
    // The parent's endpoints are unharmed.
    let (client, _server) = held.take().unwrap();
    assert_eq!(&ask(&client, "after").unwrap()[..], b"after");
}
