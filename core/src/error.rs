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

/// The symbolic code of an error; the same name and number on every surface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    // 1xx: the caller passed something unusable.
    /// An argument or option is out of range (zero timeout, zero limit, ...).
    InvalidArgument = 100,
    /// An address is not `tcp://HOST:PORT` or `unix:///ABS/PATH`.
    InvalidAddress = 101,
    /// A path or pattern breaks the path rules (see [`crate::path`]).
    InvalidPath = 102,
    /// A message is larger than the frame limit of this endpoint or its peer.
    MessageTooLarge = 103,

    // 2xx: connections.
    /// The remote side could not be reached (refused, unreachable, timed out).
    ConnectRefused = 200,
    /// The listen address is taken.
    AddressInUse = 201,
    /// The link to the peer was lost while the operation was in flight.
    PeerLost = 202,
    /// The two sides share no protocol version.
    UnsupportedVersion = 203,
    /// The peer broke the wire protocol (or is not a netchan peer).
    ProtocolError = 204,
    /// The peer refused the handshake (duplicate name, limits, ...).
    HandshakeRejected = 205,
    /// No connected peer has that name.
    UnknownPeer = 206,
    /// An operating-system I/O error not covered by a more precise code.
    Io = 207,
    /// A peer with the same name is already connected (a duplicate
    /// connection, or two endpoints sharing a name). Not permanent: the
    /// older connection may be a dead process's that heartbeats will remove.
    NameInUse = 208,
    /// The peer is at one of its limits (connections, pending handshakes)
    /// and refused or closed this connection. Not permanent: try again
    /// (`connect` does, within `connect_timeout`; redialling continues).
    Overloaded = 209,

    // 3xx: requests.
    /// The deadline passed before the operation completed.
    Timeout = 300,
    /// No endpoint serves the request's path.
    NoResponders = 301,
    /// The operation was cancelled.
    Cancelled = 302,
    /// The handler failed; the message is the handler's text.
    HandlerError = 303,

    // 4xx: flow control.
    /// A bounded queue or buffer is full and the policy said fail.
    BufferFull = 400,

    // 5xx: state.
    /// The endpoint (or subscription, service) is closed.
    Closed = 500,
    /// A blocking call was made from an async context or a netchan callback,
    /// where waiting would deadlock; use the async form instead.
    WouldDeadlock = 501,

    // 9xx: bugs.
    /// An internal error (a bug in netchan); please report it.
    Internal = 900,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidAddress,
        ErrorCode::InvalidPath,
        ErrorCode::MessageTooLarge,
        ErrorCode::ConnectRefused,
        ErrorCode::AddressInUse,
        ErrorCode::PeerLost,
        ErrorCode::UnsupportedVersion,
        ErrorCode::ProtocolError,
        ErrorCode::HandshakeRejected,
        ErrorCode::UnknownPeer,
        ErrorCode::Io,
        ErrorCode::NameInUse,
        ErrorCode::Overloaded,
        ErrorCode::Timeout,
        ErrorCode::NoResponders,
        ErrorCode::Cancelled,
        ErrorCode::HandlerError,
        ErrorCode::BufferFull,
        ErrorCode::Closed,
        ErrorCode::WouldDeadlock,
        ErrorCode::Internal,
    ];

    /// The stable number (wire protocol, C ABI).
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_u16() == n)
    }

    /// The symbolic name, e.g. `"NO_RESPONDERS"`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::InvalidAddress => "INVALID_ADDRESS",
            ErrorCode::InvalidPath => "INVALID_PATH",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::ConnectRefused => "CONNECT_REFUSED",
            ErrorCode::AddressInUse => "ADDRESS_IN_USE",
            ErrorCode::PeerLost => "PEER_LOST",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::HandshakeRejected => "HANDSHAKE_REJECTED",
            ErrorCode::UnknownPeer => "UNKNOWN_PEER",
            ErrorCode::Io => "IO",
            ErrorCode::NameInUse => "NAME_IN_USE",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NoResponders => "NO_RESPONDERS",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::HandlerError => "HANDLER_ERROR",
            ErrorCode::BufferFull => "BUFFER_FULL",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::WouldDeadlock => "WOULD_DEADLOCK",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The code for a symbolic name.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// A short static description.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::InvalidAddress => "invalid address",
            ErrorCode::InvalidPath => "invalid path or pattern",
            ErrorCode::MessageTooLarge => "message too large",
            ErrorCode::ConnectRefused => "connection refused or unreachable",
            ErrorCode::AddressInUse => "address in use",
            ErrorCode::PeerLost => "peer lost",
            ErrorCode::UnsupportedVersion => "unsupported protocol version",
            ErrorCode::ProtocolError => "protocol error",
            ErrorCode::HandshakeRejected => "handshake rejected",
            ErrorCode::UnknownPeer => "unknown peer",
            ErrorCode::Io => "I/O error",
            ErrorCode::NameInUse => "a peer with that name is already connected",
            ErrorCode::Overloaded => "the peer is at a connection limit; try again",
            ErrorCode::Timeout => "timed out",
            ErrorCode::NoResponders => "no responders",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::HandlerError => "handler error",
            ErrorCode::BufferFull => "buffer full",
            ErrorCode::Closed => "closed",
            ErrorCode::WouldDeadlock => "blocking call would deadlock",
            ErrorCode::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of every fallible netchan operation: a code and a detail.
///
/// Match on [`Error::code`]; the `Display` text is for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Error {
    code: ErrorCode,
    detail: String,
}

impl Error {
    /// An error with a code and a human-readable detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Error {
        Error {
            code,
            detail: detail.into(),
        }
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
    }
}

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

    #[test]
    fn display_shows_code_and_detail() {
        let e = Error::new(ErrorCode::Timeout, "no reply within 5 ms");
        assert_eq!(e.to_string(), "TIMEOUT: no reply within 5 ms");
    }
}
