//! TLS settings: where this endpoint's certificate and key are, whom it
//! trusts, and whether it asks peers for certificates. Built into rustls's
//! configuration by the transport (`transport::tls`).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// PEM data: a file to read, or the text itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A PEM file, read when the endpoint starts and on `reload_keys`.
    File(PathBuf),
    /// PEM text (`-----BEGIN ...`), for keys and certificates embedded in
    /// a program.
    Text(String),
}

impl Pem {
    /// A value as a setting takes it: PEM text if it starts with
    /// `-----BEGIN`, a file path otherwise.
    pub fn parse(v: &str) -> Pem {
        if v.trim_start().starts_with("-----BEGIN") {
            Pem::Text(v.to_owned())
        } else {
            Pem::File(PathBuf::from(v))
        }
    }

    pub(crate) fn bytes(&self, what: &str) -> Result<Vec<u8>> {
        match self {
            Pem::Text(t) => Ok(t.as_bytes().to_vec()),
            Pem::File(p) => std::fs::read(p).map_err(|e| {
                Error::invalid_argument(format!("cannot read {what} from {}: {e}", p.display()))
            }),
        }
    }
}

/// Never prints key material.
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            Pem::Text(t) => write!(f, "Text(<{} bytes of PEM>)", t.len()),
        }
    }
}

impl fmt::Display for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "{}", p.display()),
            Pem::Text(t) => write!(f, "<{} bytes of PEM>", t.len()),
        }
    }
}

/// Whether a TLS listener asks dialling peers for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificate is asked for (the default).
    #[default]
    None,
    /// Asked for; a peer without one is let in, a peer with one that
    /// `ca` did not sign is refused.
    Optional,
    /// Mutual TLS: a peer without a certificate signed by `ca` is refused
    /// (`CLIENT_CERT_REQUIRED`, `CERT_UNTRUSTED`).
    Required,
}

/// TLS settings for `tls://` addresses; see docs/SECURITY.md.
///
/// To listen: `cert` and `key`. To dial: `ca` (the CA that signed the
/// listener's certificate) or `pinned` (the listener's certificate itself).
/// For mutual TLS the listener sets `client_auth` to `Required` and `ca`,
/// and the dialler sets its own `cert` and `key`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// This endpoint's certificate chain, leaf first.
    pub cert: Option<Pem>,
    /// The private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<Pem>,
    /// CA certificates trusted to sign peers' certificates.
    pub ca: Option<Pem>,
    /// Peers' certificates trusted as they are, whoever signed them
    /// (pinning); checked before `ca`.
    pub pinned: Option<Pem>,
    /// Whether a listener asks for client certificates.
    pub client_auth: ClientAuth,
    /// The name a dialled peer's certificate must carry, instead of the
    /// address's host.
    pub server_name: Option<String>,
}
