//! TLS 1.3 on `tls://HOST:PORT` (rustls with the ring provider).
//!
//! [`TlsConfig`](crate::config::TlsConfig) says where the keys and certificates are (PEM files or PEM
//! text, so an application can embed them). The endpoint builds it into
//! its [`Keys`] at start and again on `Endpoint::set_tls` / `reload_keys`:
//! connections made after a reload use the new keys, existing ones keep
//! theirs.
//!
//! A TLS connection reaches the layers above as any other `Conn`: its read
//! half is the TLS stream's, and its write half is an in-memory pipe
//! ([`inproc::pipe_with`]) that a small task drains into the TLS stream, so
//! that any thread may still try a non-blocking write (the send queue's
//! write-through) while rustls's state stays with one task.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::inproc::{self, PipeReader};
use super::{Conn, Wire};
use crate::acl::Identity;
use crate::admission::Origin;
use crate::config::{ClientAuth, Pem, TlsConfig};
use crate::error::{Error, ErrorCode, Result};

/// Certificate and key files are small; anything larger is not one.
const MAX_PEM_BYTES: usize = 1024 * 1024;

fn certs(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let b = pem.bytes(what)?;
    if b.len() > MAX_PEM_BYTES {
        return Err(Error::invalid_argument(format!(
            "{what} ({pem}) is larger than {MAX_PEM_BYTES} bytes"
        )));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&b)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid_argument(format!("{what} ({pem}) is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid_argument(format!(
            "{what} ({pem}) holds no certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

fn key(pem: &Pem) -> Result<PrivateKeyDer<'static>> {
    let b = pem.bytes("tls.key")?;
    PrivateKeyDer::from_pem_slice(&b).map_err(|e| {
        Error::invalid_argument(format!("tls.key ({pem}) holds no usable private key: {e}"))
    })
}

fn roots(pem: &Pem) -> Result<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(pem, "tls.ca")? {
        store
            .add(c)
            .map_err(|e| Error::invalid_argument(format!("tls.ca ({pem}): {e}")))?;
    }
    Ok(Arc::new(store))
}

fn config_error(what: &str, e: impl fmt::Display) -> Error {
    Error::invalid_argument(format!("TLS settings: {what}: {e}"))
}

/// TLS settings built for use: what listeners and dialers take.
pub(crate) struct TlsState {
    pub(super) server: Option<Arc<rustls::ServerConfig>>,
    pub(super) client: Option<Arc<rustls::ClientConfig>>,
    pub(super) server_name: Option<String>,
    /// The endpoint name this endpoint's own certificate is for (its
    /// common name), unless that is a pattern: the default name of an
    /// endpoint with a certificate and no name of its own.
    pub(crate) own_name: Option<String>,
}

impl TlsState {
    /// Reads and checks every file and key now, so that a mistake is an
    /// error here rather than at the first connection.
    pub(crate) fn build(c: &TlsConfig) -> Result<TlsState> {
        // ring: builds with only a C compiler for the target (aws-lc-rs also
        // needs cmake), at the cost of no post-quantum key exchange yet
        // (docs/SECURITY.md, "Cryptography").
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = match (&c.cert, &c.key) {
            (Some(cert), Some(k)) => Some((certs(cert, "tls.cert")?, key(k)?)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid_argument(
                    "TLS settings: tls.cert and tls.key go together (a certificate and its private key)",
                ))
            }
        };
        let roots = c.ca.as_ref().map(roots).transpose()?;
        let pinned = c
            .pinned
            .as_ref()
            .map(|p| certs(p, "tls.pinned"))
            .transpose()?;
        let tls13 = &[&rustls::version::TLS13];
        let own_name = identity
            .as_ref()
            .map(|(chain, _)| self::identity(Some(chain)))
            .and_then(|i| i.names.into_iter().next())
            .filter(|n| !n.is_empty() && !n.contains('*'));

        let server = match &identity {
            Some((chain, k)) => {
                let b = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(tls13)
                    .map_err(|e| config_error("protocol versions", e))?;
                let b = match (c.client_auth, &roots) {
                    (ClientAuth::None, _) => b.with_no_client_auth(),
                    (auth, Some(r)) => {
                        let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                            r.clone(),
                            provider.clone(),
                        );
                        let v = if auth == ClientAuth::Optional {
                            v.allow_unauthenticated()
                        } else {
                            v
                        };
                        b.with_client_cert_verifier(
                            v.build().map_err(|e| config_error("tls.ca", e))?,
                        )
                    }
                    (_, None) => {
                        return Err(Error::invalid_argument(
                            "TLS settings: tls.client_auth needs tls.ca, the CA that signs the clients' certificates",
                        ))
                    }
                };
                let mut s = b
                    .with_single_cert(chain.clone(), k.clone_key())
                    .map_err(|e| config_error("tls.cert and tls.key", e))?;
                s.alpn_protocols = vec![ALPN.to_vec()];
                Some(Arc::new(s))
            }
            None => None,
        };

        let client = if roots.is_some() || pinned.is_some() {
            let b = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(tls13)
                .map_err(|e| config_error("protocol versions", e))?;
            let webpki = roots
                .map(|r| {
                    rustls::client::WebPkiServerVerifier::builder_with_provider(r, provider.clone())
                        .build()
                        .map_err(|e| config_error("tls.ca", e))
                })
                .transpose()?;
            let verifier: Arc<dyn ServerCertVerifier> = match (pinned, webpki) {
                (None, Some(w)) => w,
                (pins, ca) => Arc::new(Pinned {
                    pins: pins.unwrap_or_default(),
                    ca,
                    algs: provider.signature_verification_algorithms,
                }),
            };
            let b = b.dangerous().with_custom_certificate_verifier(verifier);
            let mut cfg = match identity {
                Some((chain, k)) => b
                    .with_client_auth_cert(chain, k)
                    .map_err(|e| config_error("tls.cert and tls.key", e))?,
                None => b.with_no_client_auth(),
            };
            cfg.alpn_protocols = vec![ALPN.to_vec()];
            Some(Arc::new(cfg))
        } else {
            None
        };
        if server.is_none() && client.is_none() {
            return Err(Error::invalid_argument(
                "TLS settings: set tls.cert and tls.key to listen on tls://, and tls.ca or tls.pinned to dial tls://",
            ));
        }
        Ok(TlsState {
            server,
            client,
            server_name: c.server_name.clone(),
            own_name,
        })
    }
}

/// The application protocol a netchan TLS connection names (ALPN), so a
/// TLS server of another protocol refuses it at the handshake.
const ALPN: &[u8] = b"netchan/2";

/// Trusts a pinned certificate as it is, else asks the CA verifier.
#[derive(Debug)]
struct Pinned {
    pins: Vec<CertificateDer<'static>>,
    ca: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.ca {
            Some(ca) => ca.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The code a user tells a TLS failure by, from what rustls said.
fn code_of(e: &rustls::Error) -> ErrorCode {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => ErrorCode::CertNameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => ErrorCode::CertExpired,
            _ => ErrorCode::CertUntrusted,
        },
        E::NoCertificatesPresented => ErrorCode::ClientCertRequired,
        E::AlertReceived(a) => match a {
            A::CertificateRequired => ErrorCode::ClientCertRequired,
            A::CertificateExpired => ErrorCode::CertExpired,
            A::UnknownCA
            | A::BadCertificate
            | A::CertificateUnknown
            | A::UnsupportedCertificate => ErrorCode::CertUntrusted,
            _ => ErrorCode::TlsFailed,
        },
        _ => ErrorCode::TlsFailed,
    }
}

/// The error for an I/O error that is a TLS failure with `remote` (during
/// the handshake, or after it: in TLS 1.3 a refused client certificate is
/// told after the client's side of the handshake is done), if it is one.
pub(crate) fn tls_error(remote: &str, e: &std::io::Error) -> Option<Error> {
    let t = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let code = code_of(t);
    let hint = match (t, code) {
        (rustls::Error::AlertReceived(_), ErrorCode::CertUntrusted) => {
            "; the peer does not trust this endpoint's certificate"
        }
        (rustls::Error::AlertReceived(_), ErrorCode::ClientCertRequired) => {
            "; the peer requires a client certificate (tls.cert and tls.key)"
        }
        (rustls::Error::InvalidMessage(_), _) => {
            "; is the peer listening on tcp:// rather than tls://?"
        }
        _ => "",
    };
    Some(Error::new(
        code,
        format!("TLS with {remote} failed: {t}{hint}"),
    ))
}

/// An error for a failed TLS handshake with `remote`.
fn handshake_error(remote: &str, e: std::io::Error) -> Error {
    if let Some(t) = tls_error(remote, &e) {
        return t;
    }
    let detail = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "the peer closed the connection (is it listening on tcp:// rather than tls://, or did it refuse this endpoint?)".to_owned()
    } else {
        e.to_string()
    };
    Error::new(
        ErrorCode::TlsFailed,
        format!("TLS handshake with {remote} failed: {detail}"),
    )
}

/// Bytes read from the socket at once under rustls. rustls reads at most
/// 4 KiB per call (a 16 KiB record takes four or five), each straight from
/// the socket a system call; from this buffer, one call fetches many
/// records and rustls's reads are copies in memory.
const TLS_READ_AHEAD: usize = 256 * 1024;

/// The TCP stream with [`TLS_READ_AHEAD`] bytes of read buffer (writes
/// pass straight through).
fn read_ahead(s: TcpStream) -> tokio::io::BufReader<TcpStream> {
    tokio::io::BufReader::with_capacity(TLS_READ_AHEAD, s)
}

/// Plaintext bytes the write pipe of an encrypted connection (TLS, shared
/// keys) holds before its writers wait. Its task takes all of it at once
/// and encrypts it in one pass; a pipe smaller than one large message (64
/// KiB and its header) made every such message two hand-offs between the
/// link's writer and that task, and cost a quarter of the rate at 64 KiB
/// (docs/BENCHMARKS.md, "TLS and shared keys"). Frames already in it wait
/// for it like frames in the socket's own buffer, which one write may fill
/// well past this on a plaintext link: a control frame queues behind no
/// more than it would there.
pub(super) const ENCRYPTED_PIPE: usize = 256 * 1024;

/// The identity a verified peer certificate proves: `cert:` and its
/// common name (or its first DNS name), and the endpoint names it lets its
/// holder take: the common name and every DNS name, each a pattern where
/// `*` matches any run of characters. No certificate: anonymous.
pub(crate) fn identity(chain: Option<&[CertificateDer<'_>]>) -> Identity {
    let Some(end) = chain.and_then(|c| c.first()) else {
        return Identity::anonymous();
    };
    // rustls has verified the chain; a certificate it accepted but this
    // parser cannot read names nothing, and so may take no name.
    let mut names = Vec::new();
    if let Ok((_, c)) = x509_parser::parse_x509_certificate(end) {
        names.extend(
            c.subject()
                .iter_common_name()
                .filter_map(|a| a.as_str().ok())
                .map(str::to_owned),
        );
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push((*d).to_owned());
                }
            }
        }
    }
    let id = format!("cert:{}", names.first().map_or("", String::as_str));
    if names.is_empty() {
        // Matches no endpoint name (names are at least one byte).
        names.push(String::new());
    }
    Identity { id, names }
}

/// A TLS stream as a `Conn` (see the module's doc).
fn conn<S>(s: S, remote: String, origin: Origin, identity: Identity) -> Conn
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(s);
    let (pw, pr) = inproc::pipe_with(ENCRYPTED_PIPE);
    tokio::spawn(pump(pr, w));
    Conn {
        reader: Box::pin(r),
        writer: Wire::Piped(pw),
        remote,
        origin,
        identity: Some(identity),
    }
}

/// Drains the write pipe into the TLS stream. An error ends it, and the
/// dropped pipe fails the link's next write; the pipe's end sends the TLS
/// close_notify and FIN.
async fn pump<W: AsyncWrite + Unpin>(mut from: PipeReader, mut to: W) {
    while let Some(chunk) = from.take_all().await {
        if to.write_all(&chunk).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// The name the dialled peer's certificate must carry.
fn server_name(host: &str, over: Option<String>) -> Result<ServerName<'static>> {
    let name = over.unwrap_or_else(|| host.to_owned());
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.clone()).map_err(|_| {
        Error::invalid_argument(format!(
            "`{name}` is not a host name a certificate can be checked against"
        ))
    })
}

/// Handshakes as the client over a connected TCP stream.
pub(crate) async fn connect(
    (cfg, over): (Arc<rustls::ClientConfig>, Option<String>),
    host: &str,
    s: TcpStream,
    remote: String,
    origin: Origin,
) -> Result<Conn> {
    let name = server_name(host, over)?;
    let s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, read_ahead(s))
        .await
        .map_err(|e| handshake_error(&remote, e))?;
    let who = identity(s.get_ref().1.peer_certificates());
    Ok(conn(s, remote, origin, who))
}

/// Handshakes as the server over an accepted TCP stream.
pub(crate) async fn accept(
    cfg: Arc<rustls::ServerConfig>,
    s: TcpStream,
    remote: String,
    origin: Origin,
) -> Result<Conn> {
    let s = tokio_rustls::TlsAcceptor::from(cfg)
        .accept(read_ahead(s))
        .await
        .map_err(|e| handshake_error(&remote, e))?;
    let who = identity(s.get_ref().1.peer_certificates());
    Ok(conn(s, remote, origin, who))
}
