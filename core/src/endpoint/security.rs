//! The endpoint's security settings at run time: plaintext refused beyond
//! this host, and TLS settings and shared keys replaced or reloaded
//! without a restart (docs/SECURITY.md).

use std::net::IpAddr;

use super::Endpoint;
use crate::acl::AclSource;
use crate::config::{KeySource, TlsConfig};
use crate::error::{Error, ErrorCode, Result};
use crate::shared::Shared;
use crate::transport::Addr;

/// Whether `host` names this machine only.
fn is_loopback(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Refuses plaintext TCP beyond this host unless shared keys encrypt it or
/// `insecure` allows it. `doing` is "listening on" or "dialling".
pub(super) fn check_plaintext(shared: &Shared, addr: &Addr, doing: &str) -> Result<()> {
    refuse_plaintext(
        shared.cfg.insecure || shared.keys.psk().is_some(),
        addr,
        doing,
    )
}

fn refuse_plaintext(allowed: bool, addr: &Addr, doing: &str) -> Result<()> {
    match addr {
        Addr::Tcp { host, port } if !allowed && !is_loopback(host) => {
            let tls = Addr::Tls {
                host: host.clone(),
                port: *port,
            };
            Err(Error::new(
                ErrorCode::PlaintextRefused,
                format!(
                    "{doing} {addr} would carry plaintext beyond this host; use {tls} with TLS settings (Config.tls; netchan --tls-*), or shared keys (Config.shared_keys; netchan --psk-file), or allow plaintext explicitly (Config.insecure; netchan --insecure); see docs/SECURITY.md"
                ),
            ))
        }
        _ => Ok(()),
    }
}

impl Endpoint {
    /// Replaces the TLS settings (`None` removes them): connections made
    /// from now on use the new ones; existing ones keep theirs. The keys
    /// and certificates are read and checked first; on an error the
    /// settings in use stay (`tls_settings_are_replaced_and_reloaded_at_run_time`).
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file or setting at fault.
    pub fn set_tls(&self, tls: Option<TlsConfig>) -> Result<()> {
        self.parts.shared.keys.replace_tls(tls)
    }

    /// Replaces the shared keys (`None` removes them): `tcp://` links made
    /// from now on prove the new ones; existing links keep working. The
    /// keys are read and checked first; on an error the keys in use stay.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file or line at fault.
    pub fn set_shared_keys(&self, keys: Option<KeySource>) -> Result<()> {
        self.parts.shared.keys.replace_psk(keys)
    }

    /// Reads the TLS settings' files, the shared key file and the access
    /// rules file again (a renewed certificate, a rotated key, new
    /// rules): keys for connections made from now on, rules at once. On
    /// an error everything in use stays.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file at fault.
    pub fn reload_keys(&self) -> Result<()> {
        let router = &self.parts.router;
        // Checked before anything changes.
        if let Some(s) = router.lock().acl_source.clone() {
            s.load()?;
        }
        self.parts.shared.keys.reload()?;
        router.reload_acl()
    }

    /// Failed connection attempts per remote address (without its port),
    /// most first: refused handshakes, protocol violations, links cut for
    /// a limit. The same count is in each `ConnectionError` event
    /// (`attempts`). At most 4096 addresses are tracked; past that the
    /// one with the fewest failures makes room
    /// (`failed_attempts_are_counted_per_remote_address`).
    pub fn failed_attempts(&self) -> Vec<(String, u64)> {
        self.parts.shared.attempts.snapshot()
    }

    /// Replaces the access rules (`None`: every peer may do everything;
    /// docs/SECURITY.md, "Access rules"). They take effect at once, on
    /// existing links too: routes are recomputed, and each peer is sent
    /// the declarations of this endpoint it now may, or may no longer,
    /// see. The rules are read and checked first; on an error the rules
    /// in use stay (`rules_change_at_run_time_on_existing_links`).
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file or line at fault.
    pub fn set_acl(&self, rules: Option<AclSource>) -> Result<()> {
        self.parts.router.set_acl(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_this_host_and_nothing_else() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "localhost",
            "LocalHost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "192.168.1.2",
            "example.com",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn plaintext_beyond_this_host_is_refused_unless_allowed() {
        let wide = Addr::parse("tcp://0.0.0.0:7000").unwrap();
        let e = refuse_plaintext(false, &wide, "listening on").unwrap_err();
        assert_eq!(e.code(), ErrorCode::PlaintextRefused);
        assert!(e.detail().contains("tls://0.0.0.0:7000"), "{e}");
        assert!(e.detail().contains("insecure"), "{e}");
        for ok in [
            "tcp://127.0.0.1:7000",
            "tls://10.0.0.1:7000",
            "unix:///tmp/x",
            "inproc://x",
        ] {
            refuse_plaintext(false, &Addr::parse(ok).unwrap(), "dialling").unwrap();
        }
        refuse_plaintext(true, &wide, "listening on").unwrap();
    }
}
