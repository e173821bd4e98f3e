//! Access rules on real loopback sockets (issue 17, requirement 5). Peers
//! prove shared keys `alice` and `bob` (identities `key:alice`, `key:bob`)
//! to a server with rules; each test plays a peer that goes past what it
//! is allowed and checks what is enforced where traffic enters the
//! server, what is counted and raised as an event, and that the allowed
//! traffic still flows.

use std::time::Duration;

use netchan::config::generate_key_line;
use netchan::{
    AclSource, Bytes, Config, Endpoint, ErrorCode, Event, EventRecv, Events, KeySource, Stream,
};

mod common;
use common::within;

struct Keys {
    alice: String,
    bob: String,
}

fn keys() -> Keys {
    Keys {
        alice: generate_key_line("alice").unwrap(),
        bob: generate_key_line("bob").unwrap(),
    }
}

fn endpoint(name: &str, psk: &[&str], acl: Option<&str>) -> Endpoint {
    let mut cfg = Config::named(name);
    cfg.shared_keys = Some(KeySource::Text(psk.join("\n")));
    cfg.acl = acl.map(|a| AclSource::Text(a.to_owned()));
    cfg.reconnect.enabled = false;
    Endpoint::new(cfg).unwrap()
}

/// A server holding both keys with `rules`, and its address.
async fn server(k: &Keys, rules: &str) -> (Endpoint, String) {
    let srv = endpoint("srv", &[&k.alice, &k.bob], Some(rules));
    let addr = srv.listen("tcp://127.0.0.1:0").await.unwrap();
    (srv, addr)
}

/// Waits for the next `Denied` event: (peer, identity, action, path).
async fn denied(ev: &mut Events) -> (String, String, String, String) {
    loop {
        match within(ev.recv()).await {
            EventRecv::Event(Event::Denied {
                peer,
                identity,
                action,
                path,
            }) => return (peer, identity, action, path),
            EventRecv::Event(_) => continue,
            other => panic!("no denial: {other:?}"),
        }
    }
}

fn denials(ep: &Endpoint) -> u64 {
    ep.stats().total.denied
}

/// More than a subscription's default credit window.
const DENIED: u64 = 20_000;

const RULES: &str = "\
allow key:alice all **
allow key:bob publish a/**
allow key:bob subscribe a/**
allow key:bob request greet/public
allow key:bob stream s/open
";

#[tokio::test]
async fn peers_show_the_identity_they_proved() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let mut ev = srv.events();
        let bob = endpoint("bob", &[&k.bob], None);
        let info = bob.connect(&addr).await.unwrap();
        assert_eq!(info.identity, "key:bob", "the server proved bob's key");
        loop {
            if let EventRecv::Event(Event::PeerUp { peer, identity, .. }) = within(ev.recv()).await
            {
                assert_eq!((peer.as_str(), identity.as_str()), ("bob", "key:bob"));
                break;
            }
        }
        let peers = srv.peers();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].identity, "key:bob");
        assert_eq!(srv.stats().peers[0].identity, "key:bob");
        bob.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_denied_publish_is_dropped_and_counted_and_allowed_ones_arrive() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let mut ev = srv.events();
        // A wide subscription: bob sees it (it overlaps a/**) and sends
        // everything under it, allowed or not.
        let sub = srv.subscribe("**").unwrap();
        let bob = endpoint("bob", &[&k.bob], None);
        bob.connect(&addr).await.unwrap();
        assert!(
            within(bob.wait_for_subscribers("b/x", Duration::from_secs(10)))
                .await
                .unwrap()
        );
        // Many more denied messages than the subscription's credit window:
        // the credit each spent comes back, so the allowed ones behind
        // them are not held up.
        bob.publish("a/1", Bytes::from_static(b"m")).await.unwrap();
        for _ in 0..DENIED {
            bob.publish("b/x", Bytes::from_static(b"m")).await.unwrap();
        }
        bob.publish("a/2", Bytes::from_static(b"m")).await.unwrap();
        // In order on one link: b/x was dropped if a/2 comes right after a/1.
        assert_eq!(sub.recv().await.unwrap().path(), "a/1");
        assert_eq!(sub.recv().await.unwrap().path(), "a/2");
        let (peer, identity, action, path) = denied(&mut ev).await;
        assert_eq!(
            (
                peer.as_str(),
                identity.as_str(),
                action.as_str(),
                path.as_str()
            ),
            ("bob", "key:bob", "publish", "b/x")
        );
        assert_eq!(denials(&srv), DENIED, "every denied message is counted");
        bob.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_wide_subscription_gets_only_the_allowed_paths_and_a_denied_one_nothing() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let mut ev = srv.events();
        let bob = endpoint("bob", &[&k.bob], None);
        bob.connect(&addr).await.unwrap();
        let wide = bob.subscribe("**").unwrap();
        let private = bob.subscribe("private/**").unwrap();
        // The denied subscription is refused as it arrives: counted, told.
        let (_, _, action, path) = denied(&mut ev).await;
        assert_eq!(
            (action.as_str(), path.as_str()),
            ("subscribe", "private/**")
        );
        assert!(
            within(srv.wait_for_subscribers("a/1", Duration::from_secs(10)))
                .await
                .unwrap()
        );
        assert!(
            !srv.has_subscribers("private/x").unwrap(),
            "nothing is ever sent for it"
        );
        assert!(!srv.has_subscribers("b/1").unwrap());
        for p in ["a/1", "b/1", "private/x", "a/2"] {
            srv.publish(p, Bytes::from_static(b"m")).await.unwrap();
        }
        assert_eq!(wide.recv().await.unwrap().path(), "a/1");
        assert_eq!(wide.recv().await.unwrap().path(), "a/2");
        assert!(private.try_recv().unwrap().is_none());
        assert_eq!(
            srv.stats().total.msgs_out,
            2,
            "only the allowed paths left the server"
        );
        assert_eq!(denials(&srv), 1);
        bob.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn denied_requests_streams_and_services_get_permission_denied_or_are_ignored() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let mut ev = srv.events();
        let _greet = srv
            .serve_fn("greet/*", |r| async move {
                Ok(Bytes::from(r.path().to_owned()))
            })
            .unwrap();
        let _streams = srv
            .serve_stream_fn("s/*", |_req, s: Stream| async move {
                s.send(Bytes::from_static(b"hello")).await?;
                Ok(())
            })
            .unwrap();
        let bob = endpoint("bob", &[&k.bob], None);
        bob.connect(&addr).await.unwrap();
        assert!(
            within(bob.wait_for_servers("greet/public", Duration::from_secs(10)))
                .await
                .unwrap()
        );
        let t = Duration::from_secs(5);
        let ok = bob.request("greet/public", "", t).await.unwrap();
        assert_eq!(&ok[..], b"greet/public");
        let e = bob.request("greet/secret", "", t).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        let (_, _, action, path) = denied(&mut ev).await;
        assert_eq!(
            (action.as_str(), path.as_str()),
            ("request", "greet/secret")
        );

        let s = bob.open_stream("s/open", "").await.unwrap();
        assert_eq!(s.recv().await.unwrap().as_deref(), Some(&b"hello"[..]));
        let e = bob.open_stream("s/closed", "").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        let (_, _, action, _) = denied(&mut ev).await;
        assert_eq!(action, "stream");

        // Bob may not serve: his service is ignored (and told).
        let _svc = bob
            .serve_fn(
                "admin/*",
                |_| async move { Ok(Bytes::from_static(b"pwned")) },
            )
            .unwrap();
        let (_, _, action, path) = denied(&mut ev).await;
        assert_eq!((action.as_str(), path.as_str()), ("serve", "admin/*"));
        assert!(!srv.has_servers("admin/x").unwrap());
        assert!(
            srv.servers("admin/*").unwrap().is_empty(),
            "discovery hides it"
        );
        let e = srv.request("admin/x", "", t).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoResponders, "{e}");
        assert_eq!(denials(&srv), 3);
        bob.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn discovery_never_shows_a_peer_what_it_may_not_see() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let _admin = srv
            .serve_fn("admin/*", |_| async move { Ok(Bytes::new()) })
            .unwrap();
        let _greet = srv
            .serve_fn("greet/*", |_| async move { Ok(Bytes::new()) })
            .unwrap();
        let _pub = srv.declare_publisher("secret/**").unwrap();
        let _sub = srv.subscribe("private/**").unwrap();
        let alice = endpoint("alice", &[&k.alice], None);
        let bob = endpoint("bob", &[&k.bob], None);
        alice.connect(&addr).await.unwrap();
        bob.connect(&addr).await.unwrap();
        let t = Duration::from_secs(10);
        // Alice may do everything: she sees all four.
        assert!(within(alice.wait_for_servers("admin/x", t)).await.unwrap());
        assert_eq!(alice.servers("**").unwrap(), vec!["srv"]);
        assert_eq!(alice.publishers("**").unwrap(), vec!["srv"]);
        assert_eq!(alice.subscribers("**").unwrap(), vec!["srv"]);
        // Bob sees the service he may use, and nothing else.
        assert!(within(bob.wait_for_servers("greet/public", t))
            .await
            .unwrap());
        assert_eq!(bob.servers("greet/*").unwrap(), vec!["srv"]);
        assert!(bob.servers("admin/*").unwrap().is_empty());
        assert!(bob.publishers("**").unwrap().is_empty());
        assert!(bob.subscribers("**").unwrap().is_empty());
        for ep in [alice, bob, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn rules_change_at_run_time_on_existing_links() {
    within(async {
        let k = keys();
        let (srv, addr) = server(&k, RULES).await;
        let sub = srv.subscribe("b/**").unwrap();
        let bob = endpoint("bob", &[&k.bob], None);
        bob.connect(&addr).await.unwrap();
        let t = Duration::from_secs(10);
        assert!(
            !bob.has_subscribers("b/x").unwrap(),
            "hidden from bob for now"
        );
        // Bob may now publish on b/**: the server's subscription is shown
        // to him on the link he has, and what he sends arrives.
        srv.set_acl(Some(AclSource::Text(format!(
            "{RULES}allow key:bob publish b/**\n"
        ))))
        .unwrap();
        assert!(within(bob.wait_for_subscribers("b/x", t)).await.unwrap());
        bob.publish("b/x", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(sub.recv().await.unwrap().payload(), &b"1"[..]);
        // Bad rules are an error naming the line; the rules in use stay.
        let e = srv
            .set_acl(Some(AclSource::Text("allow key:bob shout **".into())))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.detail().contains("line 1"), "{e}");
        bob.publish("b/x", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(sub.recv().await.unwrap().payload(), &b"2"[..]);
        // Back to the old rules: withdrawn from bob.
        srv.set_acl(Some(AclSource::Text(RULES.into()))).unwrap();
        // The withdrawal went out before the pong: once it is back, bob
        // has applied it.
        within(bob.ping("srv")).await.unwrap();
        assert!(!bob.has_subscribers("b/x").unwrap());
        // No rules at all: everything allowed again.
        srv.set_acl(None).unwrap();
        assert!(within(bob.wait_for_subscribers("b/x", t)).await.unwrap());
        bob.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_rules_file_is_read_at_start_and_again_by_reload_keys() {
    within(async {
        let k = keys();
        let dir = std::env::temp_dir().join(format!("netchan-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rules");
        std::fs::write(&file, "allow key:bob subscribe a/**\n").unwrap();
        let mut cfg = Config::named("srv");
        cfg.shared_keys = Some(KeySource::Text(format!("{}\n{}", k.alice, k.bob)));
        cfg.acl = Some(AclSource::parse(file.to_str().unwrap()));
        let srv = Endpoint::new(cfg).unwrap();
        let addr = srv.listen("tcp://127.0.0.1:0").await.unwrap();
        let _sub = srv.subscribe("c/**").unwrap();
        let bob = endpoint("bob", &[&k.bob], None);
        bob.connect(&addr).await.unwrap();
        assert!(!bob.has_subscribers("c/x").unwrap());
        std::fs::write(&file, "allow key:bob publish c/**\n").unwrap();
        srv.reload_keys().unwrap();
        assert!(
            within(bob.wait_for_subscribers("c/x", Duration::from_secs(10)))
                .await
                .unwrap()
        );
        // A broken file: an error, and the rules in use stay.
        std::fs::write(&file, "allow\n").unwrap();
        assert_eq!(
            srv.reload_keys().unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert!(bob.has_subscribers("c/x").unwrap());
        // A missing file at start is an error naming it.
        let mut bad = Config::named("x");
        bad.acl = Some(AclSource::parse("/nonexistent/netchan-rules"));
        let e = Endpoint::new(bad).err().unwrap();
        assert!(e.detail().contains("/nonexistent/netchan-rules"), "{e}");
        bob.close().await;
        srv.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}
