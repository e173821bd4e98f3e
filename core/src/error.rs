//! One error model for every surface.
//!
//! [`ErrorCode`] is the symbolic code shared by the core, the wire protocol
//! (result frames carry its number), the C ABI (`NETCHAN_RESULT_*`, same
//! numbers) and every binding (`e.code` / `err.code`). Numbers are grouped by
//! area and never reused; new codes take the next free number in their group.
//!
//! [`Error`] is what core operations return: a code plus the detail a user
//! needs to act on it.

use std::fmt;
use std::sync::Arc;

/// Defines [`ErrorCode`] from one table: variant, number, symbolic name,
/// short description, and the doc line. Everything else about a code (its
/// name, its number, its text, the list of all codes) is generated from
/// this table, and every surface (C, Python, Node, Kotlin/Swift, the wire
/// protocol's document) is checked against [`ErrorCode::ALL`] by a test.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $name:literal, $text:literal; )*) => {
        /// The symbolic code of an error; the same name and number on every surface.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The symbolic name, e.g. `"NO_RESPONDERS"`.
            pub fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// A short static description.
            pub fn description(self) -> &'static str {
                match self { $( ErrorCode::$variant => $text, )* }
            }
        }
    };
}

error_codes! {
    // 1xx: the caller passed something unusable.
    /// An argument or option is out of range (zero timeout, zero limit, ...).
    InvalidArgument = 100, "INVALID_ARGUMENT", "invalid argument";
    /// An address is not one of the accepted forms (`tcp://HOST:PORT`,
    /// `tls://HOST:PORT`, `unix:///ABS/PATH`, `pipe://NAME`, `inproc://NAME`),
    /// or names a transport this system lacks (`unix://` on Windows,
    /// `pipe://` elsewhere).
    InvalidAddress = 101, "INVALID_ADDRESS", "invalid address";
    /// A path or pattern breaks the path rules (see the `path` module).
    InvalidPath = 102, "INVALID_PATH", "invalid path or pattern";
    /// A message is larger than the frame limit of this endpoint or its peer.
    MessageTooLarge = 103, "MESSAGE_TOO_LARGE", "message too large";

    // 2xx: connections.
    /// The remote side could not be reached (refused, unreachable, timed out).
    ConnectRefused = 200, "CONNECT_REFUSED", "connection refused or unreachable";
    /// The listen address is taken.
    AddressInUse = 201, "ADDRESS_IN_USE", "address in use";
    /// The link to the peer was lost while the operation was in flight.
    PeerLost = 202, "PEER_LOST", "peer lost";
    /// The two sides share no protocol version.
    UnsupportedVersion = 203, "UNSUPPORTED_VERSION", "unsupported protocol version";
    /// The peer broke the wire protocol (or is not a netchan peer).
    ProtocolError = 204, "PROTOCOL_ERROR", "protocol error";
    /// The peer refused the handshake (an invalid name, its own name, ...).
    HandshakeRejected = 205, "HANDSHAKE_REJECTED", "handshake rejected";
    /// No connected peer has that name.
    UnknownPeer = 206, "UNKNOWN_PEER", "unknown peer";
    /// An operating-system I/O error not covered by a more precise code.
    Io = 207, "IO", "I/O error";
    /// A peer with the same name is already connected (a duplicate
    /// connection, or two endpoints sharing a name). Not permanent: the
    /// older connection may be a dead process's that heartbeats will remove.
    NameInUse = 208, "NAME_IN_USE", "a peer with that name is already connected";
    /// The peer is at one of its limits (connections, pending handshakes)
    /// and refused or closed this connection. Not permanent: try again
    /// (`connect` does, within `connect_timeout`; redialling continues).
    Overloaded = 209, "OVERLOADED", "the peer is at a connection limit; try again";

    // 3xx: requests.
    /// The deadline passed before the operation completed.
    Timeout = 300, "TIMEOUT", "timed out";
    /// No endpoint serves the request's path.
    NoResponders = 301, "NO_RESPONDERS", "no responders";
    /// The operation was cancelled.
    Cancelled = 302, "CANCELLED", "cancelled";
    /// The handler failed; the message is the handler's text.
    HandlerError = 303, "HANDLER_ERROR", "handler error";

    // 4xx: flow control.
    /// A bounded queue or buffer is full and the policy said fail.
    BufferFull = 400, "BUFFER_FULL", "buffer full";

    // 5xx: state.
    /// The endpoint (or subscription, service) is closed.
    Closed = 500, "CLOSED", "closed";
    /// A blocking call was made from an async context or a netchan callback,
    /// where waiting would deadlock; use the async form instead.
    WouldDeadlock = 501, "WOULD_DEADLOCK", "blocking call would deadlock";

    // 6xx: security (docs/SECURITY.md).
    /// Plaintext TCP beyond this host was refused: use `tls://` with TLS
    /// settings, or allow plaintext explicitly (`insecure`).
    PlaintextRefused = 600, "PLAINTEXT_REFUSED", "plaintext refused; use tls:// or allow insecure";
    /// A TLS handshake failed for a reason without a code of its own (the
    /// peer does not speak TLS, or no common protocol).
    TlsFailed = 601, "TLS_FAILED", "TLS handshake failed";
    /// A peer's certificate is not signed by a trusted CA nor pinned (or
    /// the peer did not trust this endpoint's).
    CertUntrusted = 602, "CERT_UNTRUSTED", "certificate not trusted";
    /// A peer's certificate does not carry the name or address dialled.
    CertNameMismatch = 603, "CERT_NAME_MISMATCH", "certificate name mismatch";
    /// A certificate has expired or is not valid yet.
    CertExpired = 604, "CERT_EXPIRED", "certificate expired or not yet valid";
    /// The listener requires a client certificate (mutual TLS) and none
    /// was presented.
    ClientCertRequired = 605, "CLIENT_CERT_REQUIRED", "client certificate required";
    /// The peer is not allowed in (a Unix peer's user id outside
    /// `unix_allowed_uids`).
    PermissionDenied = 606, "PERMISSION_DENIED", "permission denied";
    /// A shared-key handshake failed: the peer does not hold the key (or
    /// names a key id this endpoint lacks), does not use shared keys, or
    /// sent what does not decrypt with the key.
    SharedKeyRefused = 607, "SHARED_KEY_REFUSED", "shared key refused";
    /// A peer sent more than this endpoint's rate limit allows
    /// (`Config::rate_limit`): the message was dropped, the request
    /// refused, or the link closed.
    RateLimited = 608, "RATE_LIMITED", "rate limited";

    // 9xx: bugs.
    /// An internal error (a bug in netchan); please report it.
    Internal = 900, "INTERNAL", "internal error";
}

impl ErrorCode {
    /// The stable number (wire protocol, C ABI).
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_u16() == n)
    }

    /// The code for a symbolic name.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of every fallible netchan operation: a code and a detail,
/// and, when another error caused it (an I/O error, say), that error as its
/// [`source`](std::error::Error::source).
///
/// Match on [`Error::code`]; the `Display` text is for people.
#[derive(Clone)]
pub struct Error {
    code: ErrorCode,
    /// Shared: an error handed out again and again (a publish to a stalled
    /// target) is a reference count, not an allocation.
    detail: Arc<str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error with a code and a human-readable detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Error {
        Error {
            code,
            detail: Arc::from(detail.into()),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    /// The symbolic code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable detail (without the code name).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn invalid_argument(detail: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidArgument, detail)
    }

    pub(crate) fn closed() -> Error {
        Error::new(ErrorCode::Closed, "the endpoint is closed")
    }

    pub(crate) fn io(context: impl fmt::Display, err: &std::io::Error) -> Error {
        Error::new(ErrorCode::Io, format!("{context}: {err}"))
            .with_source(std::io::Error::new(err.kind(), err.to_string()))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("detail", &self.detail)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two errors are equal when their code and detail are (their sources are
/// for people and debuggers).
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.code == other.code && self.detail == other.detail
    }
}

impl Eq for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_by_number_and_name() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(c));
            assert_eq!(ErrorCode::from_name(c.name()), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(999), None);
    }

    #[test]
    fn numbers_are_unique_and_sorted() {
        let nums: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.as_u16()).collect();
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(nums, sorted);
    }

    /// docs/PROTOCOL.md's table of error codes is this table.
    #[test]
    fn the_protocol_document_lists_every_code() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
                .unwrap();
        let section = doc.split("## Error codes").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        let mut in_doc: Vec<(u16, String)> = Vec::new();
        for line in section.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            for pair in cells.windows(2) {
                if let Ok(n) = pair[0].parse::<u16>() {
                    if !pair[1].is_empty() {
                        in_doc.push((n, pair[1].to_owned()));
                    }
                }
            }
        }
        in_doc.sort();
        let table: Vec<(u16, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_u16(), c.name().to_owned()))
            .collect();
        assert_eq!(in_doc, table);
    }

    #[test]
    fn an_io_error_keeps_its_source() {
        use std::error::Error as _;
        let e = Error::io("listening", &std::io::Error::other("boom"));
        assert_eq!(e.code(), ErrorCode::Io);
        assert_eq!(e.source().unwrap().to_string(), "boom");
        assert_eq!(e.clone(), e);
    }

    #[test]
    fn display_shows_code_and_detail() {
        let e = Error::new(ErrorCode::Timeout, "no reply within 5 ms");
        assert_eq!(e.to_string(), "TIMEOUT: no reply within 5 ms");
    }
}
