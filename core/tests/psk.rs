//! Shared keys on real loopback sockets (issue 17, requirement 2): links
//! that prove a key carry pub/sub and requests; a wrong key, an unknown key
//! id, a peer without keys and a replayed recording of a good handshake are
//! refused before any netchan frame with `SHARED_KEY_REFUSED` (counted as a
//! connection error); keys rotate without downtime; with keys, `tcp://`
//! beyond this host is allowed.

use std::time::Duration;

use netchan::config::generate_key_line;
use netchan::{Bytes, Config, Endpoint, ErrorCode, Event, EventRecv, KeySource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{carries_traffic, connection_error, within, works};

fn keys(lines: &[&str]) -> Option<KeySource> {
    Some(KeySource::Text(lines.join("\n")))
}

fn endpoint(name: &str, psk: Option<KeySource>) -> Endpoint {
    let mut cfg = Config::named(name);
    cfg.shared_keys = psk;
    cfg.reconnect.enabled = false;
    cfg.hello_timeout = Duration::from_millis(500);
    Endpoint::new(cfg).unwrap()
}

/// A server with `psk` answering `echo`, and its bound address.
async fn server(psk: Option<KeySource>) -> (Endpoint, String) {
    let ep = endpoint("srv", psk);
    let addr = ep.listen("tcp://127.0.0.1:0").await.unwrap();
    std::mem::forget(
        ep.serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
            .unwrap(),
    );
    (ep, addr)
}

#[tokio::test]
async fn a_shared_key_link_carries_pub_sub_and_requests() {
    within(async {
        let k = generate_key_line("k1").unwrap();
        let (srv, addr) = server(keys(&[&k])).await;
        let sub = srv.subscribe("data/**").unwrap();
        let client = endpoint("cli", keys(&[&k]));
        works(&client, &addr).await;
        carries_traffic(&client, &sub, 300).await;
        client.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_wrong_key_an_unknown_id_and_a_peer_without_keys_are_refused_on_both_sides() {
    within(async {
        let good = generate_key_line("k1").unwrap();
        let (srv, addr) = server(keys(&[&good])).await;
        let mut ev = srv.events();
        // The same id, another key.
        let wrong = generate_key_line("k1").unwrap();
        let c = endpoint("wrong", keys(&[&wrong]));
        let e = c.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::SharedKeyRefused, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::SharedKeyRefused);
        // An id the server does not have.
        let other = generate_key_line("k9").unwrap();
        let c2 = endpoint("other", keys(&[&other]));
        let e = c2.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::SharedKeyRefused, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::SharedKeyRefused);
        // A peer without keys: refused at its first bytes.
        let plain = endpoint("plain", None);
        assert!(plain.connect(&addr).await.is_err());
        assert_eq!(connection_error(&mut ev).await, ErrorCode::SharedKeyRefused);
        // A peer with keys at a listener without.
        let (open, open_addr) = server(None).await;
        let e = c.connect(&open_addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::SharedKeyRefused, "{e}");
        assert!(srv.peers().is_empty());
        // A good client right after.
        let fine = endpoint("fine", keys(&[&good]));
        works(&fine, &addr).await;
        for ep in [c, c2, plain, fine, open, srv] {
            ep.close().await;
        }
    })
    .await
}

/// Forwards one connection to `to`, keeping what the client sent.
async fn recording_proxy(to: String) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = format!("tcp://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut s = TcpStream::connect(to.trim_start_matches("tcp://"))
            .await
            .unwrap();
        let mut sent = Vec::new();
        let (mut cb, mut sb) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                r = c.read(&mut cb) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => { sent.extend_from_slice(&cb[..n]); if s.write_all(&cb[..n]).await.is_err() { break } }
                },
                r = s.read(&mut sb) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => if c.write_all(&sb[..n]).await.is_err() { break },
                },
            }
        }
        sent
    });
    (at, task)
}

#[tokio::test]
async fn a_replayed_recording_of_a_good_handshake_is_refused() {
    within(async {
        let k = generate_key_line("k1").unwrap();
        let (srv, addr) = server(keys(&[&k])).await;
        let sub = srv.subscribe("secret/**").unwrap();
        // A good client's whole session, through a proxy that records it.
        let (via, recorder) = recording_proxy(addr.clone()).await;
        let client = endpoint("cli", keys(&[&k]));
        client.connect(&via).await.unwrap();
        client
            .publish("secret/x", Bytes::from_static(b"once"))
            .await
            .unwrap();
        assert_eq!(sub.recv().await.unwrap().payload(), &b"once"[..]);
        client.close().await;
        let recording = recorder.await.unwrap();
        assert!(recording.len() > 100);
        // Replayed later on a new connection: the first flight passes (it is
        // a genuine one), but nothing after it decrypts under the server's
        // fresh ephemeral key, so nothing is delivered and it is refused.
        let mut ev = srv.events();
        let mut replay = TcpStream::connect(addr.trim_start_matches("tcp://"))
            .await
            .unwrap();
        replay.write_all(&recording).await.unwrap();
        assert_eq!(connection_error(&mut ev).await, ErrorCode::SharedKeyRefused);
        let mut sink = [0u8; 1024];
        while let Ok(n) = within(replay.read(&mut sink)).await {
            if n == 0 {
                break; // closed by the server
            }
        }
        assert!(
            matches!(sub.try_recv(), Ok(None)),
            "a replayed message was delivered"
        );
        assert!(srv.peers().is_empty());
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn keys_rotate_without_downtime() {
    within(async {
        let (old, new) = (
            generate_key_line("2026-06").unwrap(),
            generate_key_line("2026-12").unwrap(),
        );
        // Step 1: the listener accepts both; diallers still use the old one.
        let (srv, addr) = server(keys(&[&old, &new])).await;
        let before = endpoint("before", keys(&[&old]));
        works(&before, &addr).await;
        // Step 2: diallers move to the new key, the old one still listed.
        let after = endpoint("after", keys(&[&new, &old]));
        works(&after, &addr).await;
        // Step 3: the listener drops the old key at run time: new links
        // with it are refused; links made before keep working.
        srv.set_shared_keys(keys(&[&new])).unwrap();
        let late = endpoint("late", keys(&[&old]));
        assert_eq!(
            late.connect(&addr).await.unwrap_err().code(),
            ErrorCode::SharedKeyRefused
        );
        let r = before
            .request("echo", Bytes::from_static(b"still"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&r[..], b"still");
        let again = endpoint("again", keys(&[&new]));
        works(&again, &addr).await;
        // A bad key file leaves the keys in use as they were.
        let e = srv
            .set_shared_keys(Some(KeySource::Text("netchan-psk x 12".into())))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        let last = endpoint("last", keys(&[&new]));
        works(&last, &addr).await;
        for ep in [before, after, late, again, last, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn key_files_are_read_again_by_reload_keys() {
    within(async {
        let dir = std::env::temp_dir().join(format!("netchan-psk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        let (a, b) = (
            generate_key_line("a").unwrap(),
            generate_key_line("b").unwrap(),
        );
        std::fs::write(&file, &a).unwrap();
        let (srv, addr) = server(Some(KeySource::File(file.clone()))).await;
        let client = endpoint("cli", keys(&[&b]));
        assert_eq!(
            client.connect(&addr).await.unwrap_err().code(),
            ErrorCode::SharedKeyRefused
        );
        std::fs::write(&file, format!("{a}\n{b}\n")).unwrap();
        srv.reload_keys().unwrap();
        works(&client, &addr).await;
        client.close().await;
        srv.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

#[tokio::test]
async fn with_shared_keys_tcp_beyond_this_host_is_allowed() {
    let k = generate_key_line("k").unwrap();
    let ep = endpoint("wide", keys(&[&k]));
    let bound = ep.listen("tcp://0.0.0.0:0").await.unwrap();
    let port = bound.rsplit(':').next().unwrap();
    let c = endpoint("c", keys(&[&k]));
    c.connect(&format!("tcp://127.0.0.1:{port}")).await.unwrap();
    c.close().await;
    ep.close().await;
}

#[tokio::test]
async fn a_key_bound_to_names_admits_only_those_names() {
    within(async {
        let k = generate_key_line("fleet").unwrap();
        // The listener's key file binds the key to `sensor-*`; the
        // diallers' files hold the same key without names.
        let (srv, addr) = server(keys(&[&format!("{k} names=sensor-*")])).await;
        let mut ev = srv.events();
        let pump = endpoint("pump-1", keys(&[&k]));
        let e = pump.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::PermissionDenied);
        let s1 = endpoint("sensor-1", keys(&[&k]));
        let info = s1.connect(&addr).await.unwrap();
        assert_eq!(info.identity, "key:fleet");
        assert_eq!(srv.peers()[0].identity, "key:fleet");
        let r = s1
            .request("echo", "hi", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&r[..], b"hi");
        for ep in [pump, s1, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn failed_attempts_are_counted_per_remote_address() {
    within(async {
        let (srv, addr) = server(keys(&[&generate_key_line("k1").unwrap()])).await;
        let mut ev = srv.events();
        let wrong = keys(&[&generate_key_line("k1").unwrap()]);
        // Three refusals from 127.0.0.1, each from another port.
        for n in 1..=3u64 {
            let c = endpoint(&format!("wrong-{n}"), wrong.clone());
            assert_eq!(
                c.connect(&addr).await.unwrap_err().code(),
                ErrorCode::SharedKeyRefused
            );
            loop {
                if let EventRecv::Event(Event::ConnectionError { attempts, addr, .. }) =
                    within(ev.recv()).await
                {
                    assert_eq!(attempts, n, "{addr}");
                    break;
                }
            }
            c.close().await;
        }
        assert_eq!(
            srv.failed_attempts(),
            vec![("tcp://127.0.0.1".to_owned(), 3)]
        );
        srv.close().await;
    })
    .await
}
