//! `netchan cert NAME` and `netchan keygen ID`: certificates for a small
//! deployment's `tls://` links, and shared keys for its `tcp://` links.
//!
//! `netchan cert NAME`: The first run in a directory makes a CA there (`ca.pem`,
//! `ca-key.pem`); each run makes `NAME.pem` and `NAME-key.pem`, signed by
//! it, valid for the hosts given. Give every endpoint its own certificate
//! and `ca.pem`; keep `ca-key.pem` off the machines that run them
//! (docs/SECURITY.md, "Deploying with TLS").

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use netchan::{Error, ErrorCode};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[derive(Args)]
pub(crate) struct CertArgs {
    /// The certificate's name: its files' (NAME.pem, NAME-key.pem) and, unless --endpoint says otherwise, its subject's common name.
    name: String,
    /// The endpoint name (or pattern, `*` for any run of characters) the
    /// certificate lets its holder take: its common name (default: NAME).
    #[arg(long, value_name = "PATTERN")]
    endpoint: Option<String>,
    /// Directory for the files; the CA in it is made on the first run and reused.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A host name or IP address the certificate is valid for (repeatable;
    /// default: localhost, 127.0.0.1 and ::1).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Days the certificate is valid from now.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

fn fail(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::InvalidArgument, what.to_string())
}

/// Writes a file that must not exist yet; `secret` ones are owner-only.
fn create(path: &Path, text: &str, secret: bool) -> Result<(), Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = secret;
    let mut f = o.open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            " (remove it first to make a new one)"
        } else {
            ""
        };
        fail(format!("cannot create {}: {e}{hint}", path.display()))
    })?;
    f.write_all(text.as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

fn valid_for(p: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that are slightly behind.
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
}

/// The directory's CA, made if it has none.
fn ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, bool), Error> {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if cert.exists() || key.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| fail(format!("cannot read {}: {e}", p.display())))
        };
        let k =
            KeyPair::from_pem(&read(&key)?).map_err(|e| fail(format!("{}: {e}", key.display())))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&cert)?, k)
            .map_err(|e| fail(format!("{}: {e}", cert.display())))?;
        return Ok((issuer, false));
    }
    let k = KeyPair::generate().map_err(fail)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, format!("netchan CA {}", dir.display()));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut p, 10 * 365);
    let c = p.self_signed(&k).map_err(fail)?;
    create(&key, &k.serialize_pem(), true)?;
    create(&cert, &c.pem(), false)?;
    Ok((Issuer::new(p, k), true))
}

/// `netchan keygen ID --out FILE`: appends a new shared key to FILE (made
/// owner-only if new). A dialler uses the file's first key, a listener
/// accepts any: to rotate, append the new key everywhere, then move it
/// first (docs/SECURITY.md, "Rotating keys").
pub(crate) fn keygen(id: &str, out: &Path, names: Option<&str>) -> Result<(), Error> {
    let mut line = netchan::config::generate_key_line(id)?;
    if let Some(n) = names {
        if n.is_empty()
            || n.split(',')
                .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(fail(format!(
                "--names {n:?}: give endpoint name patterns separated by commas, without spaces"
            )));
        }
        line = format!("{line} names={n}");
    }
    if let Ok(existing) = std::fs::read_to_string(out) {
        let taken = existing
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(id));
        if taken {
            return Err(fail(format!(
                "{} already has a key named {id}",
                out.display()
            )));
        }
    }
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(out)
        .map_err(|e| fail(format!("cannot open {}: {e}", out.display())))?;
    writeln!(f, "{line}").map_err(|e| fail(format!("cannot write {}: {e}", out.display())))?;
    println!("added key {id} to {} (--psk-file)", out.display());
    Ok(())
}

pub(crate) fn run(a: &CertArgs) -> Result<(), Error> {
    if a.name.is_empty() || a.name.contains(['/', '\\']) || a.name.starts_with('.') {
        return Err(fail(format!(
            "`{}` cannot name certificate files; use letters, digits, `-` and `_`",
            a.name
        )));
    }
    if a.days == 0 {
        return Err(fail("--days must be at least 1"));
    }
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", a.dir.display())))?;
    let (cert, key) = (
        a.dir.join(format!("{}.pem", a.name)),
        a.dir.join(format!("{}-key.pem", a.name)),
    );
    // Checked before a CA is made, so a mistake leaves nothing behind.
    for p in [&cert, &key] {
        if p.exists() {
            return Err(fail(format!(
                "{} exists (remove it first to make a new one)",
                p.display()
            )));
        }
    }
    let hosts = if a.hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        a.hosts.clone()
    };
    let mut p = CertificateParams::new(hosts.clone())
        .map_err(|e| fail(format!("--host {}: {e}", hosts.join(", "))))?;
    p.distinguished_name.push(
        DnType::CommonName,
        a.endpoint.clone().unwrap_or_else(|| a.name.clone()),
    );
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Each endpoint both listens and dials: one certificate for both.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    valid_for(&mut p, a.days);
    let (issuer, made) = ca(&a.dir)?;
    let k = KeyPair::generate().map_err(fail)?;
    let c = p.signed_by(&k, &issuer).map_err(fail)?;
    create(&key, &k.serialize_pem(), true)?;
    create(&cert, &c.pem(), false)?;
    if made {
        println!(
            "made a CA: {} (give it to every endpoint: --tls-ca) and {} (keep it private)",
            a.dir.join("ca.pem").display(),
            a.dir.join("ca-key.pem").display()
        );
    }
    println!(
        "made {} and {} for {} (--tls-cert, --tls-key), for endpoints named {}, valid {} days",
        cert.display(),
        key.display(),
        hosts.join(", "),
        a.endpoint.as_deref().unwrap_or(&a.name),
        a.days
    );
    Ok(())
}
