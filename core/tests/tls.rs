//! TLS and plaintext refusal on real loopback sockets (issue 17): links
//! over `tls://` carry pub/sub and requests; each kind of bad certificate,
//! handshake or peer is refused with its own code on both sides, counted as
//! a connection error, and a good client connects right after; settings
//! are replaced and reloaded at run time; plaintext beyond this host and
//! Unix peers outside the allowed user ids are refused.

use std::time::Duration;

use netchan::{Bytes, ClientAuth, Config, Endpoint, ErrorCode, Pem, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{carries_traffic, connection_error, within, works};

/// A certificate authority that signs leaf certificates for the tests.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

/// A certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        edit(&mut params);
        let issuer = Issuer::from_params(&self.params, &self.key);
        Leaf {
            cert: params.signed_by(&key, &issuer).unwrap().pem(),
            key: key.serialize_pem(),
        }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }
}

fn text(s: &str) -> Option<Pem> {
    Some(Pem::Text(s.to_owned()))
}

/// TLS settings to listen with `leaf` (and, for mutual TLS, check clients
/// against `clients`).
fn server_tls(leaf: &Leaf, clients: Option<(&Ca, ClientAuth)>) -> TlsConfig {
    let mut t = TlsConfig::default();
    t.cert = text(&leaf.cert);
    t.key = text(&leaf.key);
    if let Some((ca, auth)) = clients {
        t.ca = text(&ca.pem);
        t.client_auth = auth;
    }
    t
}

/// TLS settings to dial peers whose certificates `ca` signed.
fn client_tls(ca: &Ca, me: Option<&Leaf>) -> TlsConfig {
    let mut t = TlsConfig::default();
    t.ca = text(&ca.pem);
    if let Some(l) = me {
        t.cert = text(&l.cert);
        t.key = text(&l.key);
    }
    t
}

fn endpoint(name: &str, tls: Option<TlsConfig>) -> Endpoint {
    let mut cfg = Config::named(name);
    cfg.tls = tls;
    cfg.reconnect.enabled = false;
    cfg.hello_timeout = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_secs(5);
    Endpoint::new(cfg).unwrap()
}

/// A TLS server answering `echo` requests, with its bound address.
async fn server(name: &str, tls: TlsConfig) -> (Endpoint, String) {
    let ep = endpoint(name, Some(tls));
    let addr = ep.listen("tls://127.0.0.1:0").await.unwrap();
    assert!(addr.starts_with("tls://127.0.0.1:"), "{addr}");
    let echo = ep
        .serve_fn("echo", |r| async move { Ok(r.payload().clone()) })
        .unwrap();
    std::mem::forget(echo);
    (ep, addr)
}

#[tokio::test]
async fn pub_sub_and_requests_cross_a_tls_link() {
    within(async {
        let ca = Ca::new("test CA");
        let (srv, addr) = server(
            "srv",
            server_tls(&ca.leaf(&["srv", "localhost", "127.0.0.1"]), None),
        )
        .await;
        let sub = srv.subscribe("data/**").unwrap();
        let client = endpoint("cli", Some(client_tls(&ca, None)));
        let peer = client.connect(&addr).await.unwrap();
        assert_eq!(peer.name, "srv");
        assert!(peer.addr.starts_with("tls://"), "{}", peer.addr);
        carries_traffic(&client, &sub, 200).await;
        // "localhost" is on the certificate too.
        let port = addr.rsplit(':').next().unwrap();
        let other = endpoint("cli2", Some(client_tls(&ca, None)));
        works(&other, &format!("tls://localhost:{port}")).await;
        client.close().await;
        other.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_admits_one_with() {
    within(async {
        let ca = Ca::new("test CA");
        let tls = server_tls(
            &ca.leaf(&["srv", "127.0.0.1"]),
            Some((&ca, ClientAuth::Required)),
        );
        let (srv, addr) = server("srv", tls).await;
        let mut ev = srv.events();
        let anonymous = endpoint("anon", Some(client_tls(&ca, None)));
        let e = anonymous.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::ClientCertRequired, "{e}");
        assert_eq!(
            connection_error(&mut ev).await,
            ErrorCode::ClientCertRequired
        );
        // A certificate from another CA is not one this server trusts.
        let stranger = Ca::new("other CA");
        let forged = endpoint(
            "forged",
            Some(client_tls(&ca, Some(&stranger.leaf(&["forged"])))),
        );
        let e = forged.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertUntrusted, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::CertUntrusted);
        let good = endpoint("good", Some(client_tls(&ca, Some(&ca.leaf(&["good"])))));
        works(&good, &addr).await;
        for ep in [anonymous, forged, good, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn optional_client_auth_admits_a_client_without_a_certificate() {
    within(async {
        let ca = Ca::new("test CA");
        let tls = server_tls(
            &ca.leaf(&["srv", "127.0.0.1"]),
            Some((&ca, ClientAuth::Optional)),
        );
        let (srv, addr) = server("srv", tls).await;
        let anonymous = endpoint("anon", Some(client_tls(&ca, None)));
        works(&anonymous, &addr).await;
        anonymous.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_on_both_sides() {
    within(async {
        let ca = Ca::new("test CA");
        let (srv, addr) = server("srv", server_tls(&ca.leaf(&["srv", "127.0.0.1"]), None)).await;
        let mut ev = srv.events();
        let other = Ca::new("other CA");
        let client = endpoint("cli", Some(client_tls(&other, None)));
        let e = client.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertUntrusted, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::CertUntrusted);
        assert_eq!(srv.peers().len(), 0);
        let good = endpoint("good", Some(client_tls(&ca, None)));
        works(&good, &addr).await;
        for ep in [client, good, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_that_name_is_expected() {
    within(async {
        let ca = Ca::new("test CA");
        let (srv, addr) = server("srv", server_tls(&ca.leaf(&["srv", "db.internal"]), None)).await;
        let client = endpoint("cli", Some(client_tls(&ca, None)));
        let e = client.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertNameMismatch, "{e}");
        let mut tls = client_tls(&ca, None);
        tls.server_name = Some("db.internal".into());
        let named = endpoint("named", Some(tls));
        works(&named, &addr).await;
        for ep in [client, named, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_cert_expired() {
    within(async {
        let ca = Ca::new("test CA");
        let old = ca.leaf_with(&["srv", "127.0.0.1"], |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        });
        let (srv, addr) = server("srv", server_tls(&old, None)).await;
        let mut ev = srv.events();
        let client = endpoint("cli", Some(client_tls(&ca, None)));
        let e = client.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertExpired, "{e}");
        // The server learns only that the client refused its certificate.
        let code = connection_error(&mut ev).await;
        assert!(
            matches!(code, ErrorCode::CertExpired | ErrorCode::CertUntrusted),
            "{code:?}"
        );
        client.close().await;
        srv.close().await;
    })
    .await
}

#[tokio::test]
async fn a_pinned_certificate_is_trusted_without_a_ca() {
    within(async {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["srv".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let leaf = Leaf {
            cert: cert.clone(),
            key: key.serialize_pem(),
        };
        let (srv, addr) = server("srv", server_tls(&leaf, None)).await;
        let mut pinned = TlsConfig::default();
        pinned.pinned = text(&cert);
        let client = endpoint("cli", Some(pinned));
        works(&client, &addr).await;
        // Another self-signed certificate is not the pinned one.
        let other = Ca::new("x");
        let mut wrong = TlsConfig::default();
        wrong.pinned = text(&other.pem);
        let stranger = endpoint("stranger", Some(wrong));
        let e = stranger.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertUntrusted, "{e}");
        for ep in [client, stranger, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn plaintext_and_tls_on_the_wrong_port_are_refused_quickly_with_a_hint() {
    within(async {
        let ca = Ca::new("test CA");
        let (srv, tls_addr) =
            server("srv", server_tls(&ca.leaf(&["srv", "127.0.0.1"]), None)).await;
        let mut ev = srv.events();
        // A plaintext netchan client at the TLS port.
        let port = tls_addr.rsplit(':').next().unwrap();
        let plain = endpoint("plain", None);
        let e = plain
            .connect(&format!("tcp://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert_ne!(e.code(), ErrorCode::Timeout, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::TlsFailed);
        // A TLS client at a plaintext port.
        let plain_srv = endpoint("plain-srv", None);
        let plain_addr = plain_srv.listen("tcp://127.0.0.1:0").await.unwrap();
        let port = plain_addr.rsplit(':').next().unwrap();
        let client = endpoint("cli", Some(client_tls(&ca, None)));
        let e = client
            .connect(&format!("tls://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TlsFailed, "{e}");
        assert!(e.detail().contains("tcp://"), "{e}");
        // The TLS server still serves.
        works(&client, &tls_addr).await;
        for ep in [plain, plain_srv, client, srv] {
            ep.close().await;
        }
    })
    .await
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_do_not_hold_up_a_good_client() {
    within(async {
        let ca = Ca::new("test CA");
        let (srv, addr) = server("srv", server_tls(&ca.leaf(&["srv", "127.0.0.1"]), None)).await;
        let mut ev = srv.events();
        let sock = addr.trim_start_matches("tls://").to_owned();
        // Stalled: connected, never a byte.
        let stalled: Vec<_> = futures_connect(&sock, 5).await;
        // Garbage and a truncated ClientHello.
        let mut garbage = tokio::net::TcpStream::connect(&sock).await.unwrap();
        garbage.write_all(&[0x42; 600]).await.unwrap();
        let mut truncated = tokio::net::TcpStream::connect(&sock).await.unwrap();
        truncated
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
            .await
            .unwrap();
        // A good client connects while they wait.
        let good = endpoint("good", Some(client_tls(&ca, None)));
        works(&good, &addr).await;
        // The garbage is refused at once: the server closes it.
        let mut buf = [0u8; 256];
        loop {
            match within(garbage.read(&mut buf)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue, // a TLS alert
            }
        }
        // Every bad one is counted: garbage at once, the others at the
        // hello timeout.
        for _ in 0..7 {
            assert_eq!(connection_error(&mut ev).await, ErrorCode::TlsFailed);
        }
        drop((stalled, truncated));
        good.close().await;
        srv.close().await;
    })
    .await
}

async fn futures_connect(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    v
}

#[tokio::test]
async fn tls_settings_are_replaced_and_reloaded_at_run_time() {
    within(async {
        let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
        let dir = std::env::temp_dir().join(format!("netchan-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let write = |l: &Leaf| {
            std::fs::write(&cert, &l.cert).unwrap();
            std::fs::write(&key, &l.key).unwrap();
        };
        write(&old_ca.leaf(&["srv", "127.0.0.1"]));
        let mut tls = TlsConfig::default();
        tls.cert = Some(Pem::File(cert.clone()));
        tls.key = Some(Pem::File(key.clone()));
        let (srv, addr) = server("srv", tls).await;
        let client = endpoint("cli", Some(client_tls(&new_ca, None)));
        let e = client.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::CertUntrusted, "{e}");
        // The files are renewed: a reload reads them again.
        write(&new_ca.leaf(&["srv", "127.0.0.1"]));
        srv.reload_keys().unwrap();
        works(&client, &addr).await;
        // A broken file leaves the settings in use as they were.
        std::fs::write(&key, "not a key").unwrap();
        let e = srv.reload_keys().unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.detail().contains("key.pem"), "{e}");
        let again = endpoint("again", Some(client_tls(&new_ca, None)));
        works(&again, &addr).await;
        // Replaced outright: the old CA's clients are back, the new ones out.
        srv.set_tls(Some(server_tls(&old_ca.leaf(&["srv", "127.0.0.1"]), None)))
            .unwrap();
        let third = endpoint("third", Some(client_tls(&new_ca, None)));
        assert_eq!(
            third.connect(&addr).await.unwrap_err().code(),
            ErrorCode::CertUntrusted
        );
        let fourth = endpoint("fourth", Some(client_tls(&old_ca, None)));
        works(&fourth, &addr).await;
        // The link made before the change still works.
        let r = client
            .request("echo", Bytes::from_static(b"still"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&r[..], b"still");
        for ep in [client, again, third, fourth, srv] {
            ep.close().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

#[tokio::test]
async fn bad_tls_settings_are_errors_that_name_what_to_fix() {
    let mut cfg = Config::named("x");
    let mut t = TlsConfig::default();
    t.cert = Some(Pem::File("/nonexistent/cert.pem".into()));
    t.key = Some(Pem::File("/nonexistent/key.pem".into()));
    cfg.tls = Some(t);
    let e = Endpoint::new(cfg).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.detail().contains("/nonexistent/cert.pem"), "{e}");

    let mut t = TlsConfig::default();
    t.cert = text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    t.key = text("x");
    let mut cfg = Config::named("x");
    cfg.tls = Some(t);
    assert_eq!(
        Endpoint::new(cfg).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );

    let ca = Ca::new("test CA");
    let mut t = server_tls(&ca.leaf(&["srv", "127.0.0.1"]), None);
    t.client_auth = ClientAuth::Required; // without a CA to check clients by
    let mut cfg = Config::named("x");
    cfg.tls = Some(t);
    let e = Endpoint::new(cfg).unwrap_err();
    assert!(e.detail().contains("tls.ca"), "{e}");

    // No TLS settings: tls:// is refused with what to set.
    let ep = endpoint("plain", None);
    let e = ep.listen("tls://127.0.0.1:0").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.detail().contains("tls.cert"), "{e}");
    let e = ep.connect("tls://127.0.0.1:1").await.unwrap_err();
    assert!(e.detail().contains("tls.ca"), "{e}");
    // A client-only configuration cannot listen.
    let client = endpoint("client", Some(client_tls(&ca, None)));
    let e = client.listen("tls://127.0.0.1:0").await.unwrap_err();
    assert!(e.detail().contains("tls.cert"), "{e}");
    ep.close().await;
    client.close().await;
}

#[tokio::test]
async fn plaintext_beyond_this_host_is_refused_unless_insecure() {
    let ep = endpoint("x", None);
    for addr in ["tcp://0.0.0.0:0", "tcp://[::]:0"] {
        let e = ep.listen(addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PlaintextRefused, "{addr}");
        assert!(e.detail().contains("insecure"), "{e}");
    }
    let e = ep.connect("tcp://192.0.2.1:7000").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PlaintextRefused);
    ep.close().await;
    let mut cfg = Config::named("y");
    cfg.insecure = true;
    let open = Endpoint::new(cfg).unwrap();
    let bound = open.listen("tcp://0.0.0.0:0").await.unwrap();
    let port = bound.rsplit(':').next().unwrap();
    let c = endpoint("c", None);
    c.connect(&format!("tcp://127.0.0.1:{port}")).await.unwrap();
    c.close().await;
    open.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn unix_sockets_are_owner_only_and_other_user_ids_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    within(async {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("netchan-uid-{}.sock", std::process::id()));
        let addr = format!("unix://{}", path.display());
        let me = own_uid();
        let mut cfg = Config::named("srv");
        cfg.unix_allowed_uids = vec![me.wrapping_add(1)];
        let srv = Endpoint::new(cfg).unwrap();
        srv.listen(&addr).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut ev = srv.events();
        let client = endpoint("cli", None);
        let e = client.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::PermissionDenied);
        srv.close().await;
        // Allowed, with a wider mode.
        let mut cfg = Config::named("srv2");
        cfg.unix_allowed_uids = vec![me];
        cfg.unix_mode = 0o660;
        let srv = Endpoint::new(cfg).unwrap();
        srv.listen(&addr).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        client.connect(&addr).await.unwrap();
        client.close().await;
        srv.close().await;
    })
    .await
}

/// This process's user id, from /proc (no libc in the tests).
#[cfg(unix)]
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[tokio::test]
async fn a_peer_cannot_claim_a_name_its_certificate_was_not_issued() {
    within(async {
        let ca = Ca::new("test CA");
        let tls = server_tls(
            &ca.leaf(&["srv", "127.0.0.1"]),
            Some((&ca, ClientAuth::Required)),
        );
        let (srv, addr) = server("srv", tls).await;
        let mut ev = srv.events();
        // Mallory holds alice's certificate and calls herself mallory.
        let alice_cert = ca.leaf(&["alice"]);
        let mallory = endpoint("mallory", Some(client_tls(&ca, Some(&alice_cert))));
        let e = mallory.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        assert_eq!(connection_error(&mut ev).await, ErrorCode::PermissionDenied);
        assert!(srv.peers().is_empty());
        // Alice is who her certificate says; both sides show what the
        // other proved.
        let alice = endpoint("alice", Some(client_tls(&ca, Some(&alice_cert))));
        let info = alice.connect(&addr).await.unwrap();
        assert_eq!(info.identity, "cert:srv");
        assert_eq!(srv.peers()[0].identity, "cert:alice");
        // A certificate whose common name is `sensor-*` lets its holder
        // take any name of that form, and no other.
        let fleet = ca.leaf_with(&["fleet.example"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, "sensor-*");
        });
        let s7 = endpoint("sensor-7", Some(client_tls(&ca, Some(&fleet))));
        assert_eq!(s7.connect(&addr).await.unwrap().name, "srv");
        let peer = srv
            .peers()
            .into_iter()
            .find(|p| p.name == "sensor-7")
            .unwrap();
        assert_eq!(peer.identity, "cert:sensor-*");
        let pump = endpoint("pump-1", Some(client_tls(&ca, Some(&fleet))));
        let e = pump.connect(&addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        // A server whose certificate does not name it is refused by the
        // dialler.
        let (imposter, imp_addr) = server(
            "imposter",
            server_tls(&ca.leaf(&["srv", "127.0.0.1"]), None),
        )
        .await;
        let c = endpoint("c", Some(client_tls(&ca, None)));
        let e = c.connect(&imp_addr).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        assert!(e.detail().contains("imposter"), "{e}");
        for ep in [mallory, alice, s7, pump, imposter, c, srv] {
            ep.close().await;
        }
    })
    .await
}
