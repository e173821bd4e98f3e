use super::*;

#[test]
fn parses_accepted_forms() {
    assert_eq!(
        Addr::parse("tcp://127.0.0.1:0").unwrap(),
        Addr::Tcp {
            host: "127.0.0.1".into(),
            port: 0
        }
    );
    assert_eq!(
        Addr::parse("tcp://[::1]:80").unwrap(),
        Addr::Tcp {
            host: "::1".into(),
            port: 80
        }
    );
    assert_eq!(
        Addr::parse("tcp://[::1]:80").unwrap().to_string(),
        "tcp://[::1]:80"
    );
    assert_eq!(
        Addr::parse("tcp://localhost:7000").unwrap(),
        Addr::Tcp {
            host: "localhost".into(),
            port: 7000
        }
    );
    assert_eq!(
        Addr::parse("unix:///tmp/x.sock").unwrap(),
        Addr::Unix("/tmp/x.sock".into())
    );
    let pipe = Addr::parse("pipe://netchan-a.b_c").unwrap();
    assert_eq!(pipe, Addr::Pipe("netchan-a.b_c".into()));
    assert_eq!(pipe.to_string(), "pipe://netchan-a.b_c");
}

/// Named pipes are Windows' same-host transport: elsewhere, listening
/// or dialling one fails at once with the fix named (and Unix sockets
/// on Windows likewise, checked under wine by tests/platforms/run.sh).
#[cfg(not(windows))]
#[tokio::test]
async fn a_pipe_address_off_windows_is_refused_with_the_fix_named() {
    let keys = std::sync::Arc::new(keys::Keys::default());
    let addr = Addr::parse("pipe://netchan-x").unwrap();
    let bound = Listener::bind(&addr, &keys, 0o600).await.err().unwrap();
    let dialled = dial(&addr, &keys).await.err().unwrap();
    for e in [bound, dialled] {
        assert_eq!(e.code(), ErrorCode::InvalidAddress);
        assert!(e.detail().contains("use unix:///PATH"), "{e}");
    }
}

/// Both ends of a Unix connection ask for a large send buffer; the
/// kernel grants up to `net.core.wmem_max` (and reports twice the size).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn unix_connections_get_a_large_send_buffer() {
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let want = 2 * unix::UNIX_SEND_BUFFER.min(max);
    let path = std::env::temp_dir().join(format!("netchan-sndbuf-{}.sock", std::process::id()));
    let keys = std::sync::Arc::new(keys::Keys::default());
    let (l, addr) = Listener::bind(&Addr::Unix(path), &keys, 0o600)
        .await
        .unwrap();
    let (dialled, accepted) = tokio::join!(dial(&addr, &keys), l.accept());
    let accepted = accepted.unwrap().finish().await;
    for conn in [dialled.unwrap(), accepted.unwrap()] {
        let Wire::Unix(w) = &conn.writer else {
            panic!("not a Unix connection")
        };
        let got = socket2::SockRef::from(w.as_ref())
            .send_buffer_size()
            .unwrap();
        assert_eq!(got, want, "wmem_max {max}");
    }
}

#[test]
fn bad_addresses_name_the_bad_part_and_the_forms() {
    for (s, part) in [
        ("127.0.0.1:80", "missing scheme"),
        ("udp://1.2.3.4:5", "unknown scheme `udp`"),
        ("tcp://host", "missing `:PORT`"),
        ("tcp://host:99999", "port `99999`"),
        ("tcp://host:abc", "port `abc`"),
        ("tcp://:80", "missing host"),
        ("tcp://::1:80", "brackets"),
        ("tcp://[::1:80", "closing `]`"),
        ("tcp://[zz]:80", "not an IPv6"),
        ("unix://relative.sock", "absolute"),
        ("pipe://", "pipe name"),
        ("pipe://a\\b", "backslashes"),
    ] {
        let e = Addr::parse(s).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidAddress);
        assert!(e.detail().contains(part), "{s}: {e}");
        assert!(e.detail().contains("accepted forms"), "{s}: {e}");
    }
}
