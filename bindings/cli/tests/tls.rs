//! `netchan cert` and the TLS flags end to end (issue 17): certificates
//! made by the CLI carry requests over `tls://` and mutual TLS between
//! separate processes; a client without them, or plaintext beyond this
//! host, is refused with its code.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{Listening, BIN};

fn netchan(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh directory under the system's temp dir, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("netchan-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cert(dir: &Dir, name: &str) {
    let out = netchan(&["cert", name, "--dir", &dir.0.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn cert_makes_a_ca_once_and_owner_only_keys() {
    let dir = Dir::new("cert");
    let d = dir.0.display().to_string();
    let out = netchan(&[
        "cert",
        "server",
        "--dir",
        &d,
        "--host",
        "db.internal",
        "--host",
        "10.0.0.5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("made a CA"),
        "{}",
        text(&out.stdout)
    );
    let out = netchan(&["cert", "client", "--dir", &d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("made a CA"), "the CA is reused");
    #[cfg(unix)]
    for key in ["ca-key.pem", "server-key.pem", "client-key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Path::new(&dir.file(key)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // Never overwritten.
    let out = netchan(&["cert", "client", "--dir", &d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exists"),
        "{}",
        text(&out.stderr)
    );
    let out = netchan(&["cert", "../x", "--dir", &d]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_and_req_over_mutual_tls_with_certificates_from_netchan_cert() {
    let dir = Dir::new("mtls");
    cert(&dir, "server");
    cert(&dir, "client");
    let ca = dir.file("ca.pem");
    let server = Listening::start(&[
        "serve",
        "echo/*",
        "--listen",
        "tls://127.0.0.1:0",
        "--echo",
        "--tls-cert",
        &dir.file("server.pem"),
        "--tls-key",
        &dir.file("server-key.pem"),
        "--tls-ca",
        &ca,
        "--tls-client-auth",
        "required",
    ]);
    assert!(server.addr.starts_with("tls://"), "{}", server.addr);
    let out = netchan(&[
        "req",
        "echo/x",
        "over tls",
        "--connect",
        &server.addr,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &dir.file("client.pem"),
        "--tls-key",
        &dir.file("client-key.pem"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over tls\n");
    // Without a client certificate.
    let out = netchan(&["req", "echo/x", "--connect", &server.addr, "--tls-ca", &ca]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("netchan: CLIENT_CERT_REQUIRED"),
        "{}",
        text(&out.stderr)
    );
    // Without the CA: no way to trust the server.
    let out = netchan(&["req", "echo/x", "--connect", &server.addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tls.ca"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plaintext_beyond_this_host_needs_insecure() {
    let out = netchan(&[
        "serve",
        "x",
        "--listen",
        "tcp://0.0.0.0:0",
        "--echo",
        "--count",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("netchan: PLAINTEXT_REFUSED"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
    let server = Listening::start(&[
        "serve",
        "x",
        "--listen",
        "tcp://0.0.0.0:0",
        "--echo",
        "--insecure",
    ]);
    let port = server.addr.rsplit(':').next().unwrap();
    let out = netchan(&[
        "req",
        "x",
        "hi",
        "--connect",
        &format!("tcp://127.0.0.1:{port}"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn keygen_and_psk_file_carry_requests_and_refuse_another_key() {
    let dir = Dir::new("psk");
    std::fs::create_dir_all(&dir.0).unwrap();
    let (keys, other) = (dir.file("keys"), dir.file("other"));
    for (id, file) in [("2026-12", &keys), ("2026-12", &other)] {
        let out = netchan(&["keygen", id, "--out", file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The same id twice in one file is refused.
    let out = netchan(&["keygen", "2026-12", "--out", &keys]);
    assert_eq!(out.status.code(), Some(1));
    // With keys, listening beyond this host needs no --insecure.
    let server = Listening::start(&[
        "serve",
        "echo/*",
        "--listen",
        "tcp://0.0.0.0:0",
        "--echo",
        "--psk-file",
        &keys,
    ]);
    let port = server.addr.rsplit(':').next().unwrap();
    let at = format!("tcp://127.0.0.1:{port}");
    let out = netchan(&[
        "req",
        "echo/x",
        "with a key",
        "--connect",
        &at,
        "--psk-file",
        &keys,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "with a key\n");
    let out = netchan(&["req", "echo/x", "--connect", &at, "--psk-file", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("netchan: SHARED_KEY_REFUSED"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn acl_allows_what_its_rules_name_and_denies_the_rest() {
    let dir = Dir::new("acl");
    std::fs::create_dir_all(&dir.0).unwrap();
    let (keys, rules) = (dir.file("keys"), dir.file("rules"));
    let out = netchan(&["keygen", "team", "--out", &keys, "--names", "cli-*"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = std::fs::read_to_string(&keys).unwrap();
    assert!(line.contains(" names=cli-*"), "{line}");
    // The listener's file binds the key's holders to `cli-*`; the
    // clients' file holds the same key without names.
    let client_keys = dir.file("client-keys");
    std::fs::write(&client_keys, line.replace(" names=cli-*", "")).unwrap();
    std::fs::write(
        &rules,
        "# who may do what\nallow key:team request echo/public\n",
    )
    .unwrap();
    let server = Listening::start(&[
        "serve",
        "echo/*",
        "--listen",
        "tcp://127.0.0.1:0",
        "--echo",
        "--name",
        "srv",
        "--psk-file",
        &keys,
        "--acl",
        &rules,
    ]);
    let req = |path: &str, name: &str| {
        netchan(&[
            "req",
            path,
            "hi",
            "--connect",
            &server.addr,
            "--psk-file",
            &client_keys,
            "--name",
            name,
        ])
    };
    let out = req("echo/public", "cli-1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    let out = req("echo/secret", "cli-1");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("netchan: PERMISSION_DENIED"),
        "{}",
        text(&out.stderr)
    );
    // The key binds its holders to `cli-*`.
    let out = req("echo/public", "intruder");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PERMISSION_DENIED"),
        "{}",
        text(&out.stderr)
    );
    // A broken rules file is an error at start, naming the line.
    std::fs::write(&rules, "allow key:team shout **\n").unwrap();
    let out = netchan(&[
        "serve",
        "x",
        "--listen",
        "tcp://127.0.0.1:0",
        "--echo",
        "--count",
        "0",
        "--psk-file",
        &keys,
        "--acl",
        &rules,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1"),
        "{}",
        text(&out.stderr)
    );
}
