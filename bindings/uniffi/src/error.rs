//! The error type of every fallible call: one variant per core code.

use netchan::ErrorCode;

/// A netchan error: the variant is the symbolic code (the same names and
/// numbers as the core, the C ABI and the other bindings), `detail` says
/// what went wrong. Kotlin: `NetchanException.Timeout`, ...; Swift:
/// `NetchanError.Timeout(detail:)`, ...
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[allow(missing_docs)] // each variant is its core code; see netchan::ErrorCode
pub enum NetchanError {
    #[error("INVALID_ARGUMENT: {detail}")]
    InvalidArgument { detail: String },
    #[error("INVALID_ADDRESS: {detail}")]
    InvalidAddress { detail: String },
    #[error("INVALID_PATH: {detail}")]
    InvalidPath { detail: String },
    #[error("MESSAGE_TOO_LARGE: {detail}")]
    MessageTooLarge { detail: String },
    #[error("CONNECT_REFUSED: {detail}")]
    ConnectRefused { detail: String },
    #[error("ADDRESS_IN_USE: {detail}")]
    AddressInUse { detail: String },
    #[error("PEER_LOST: {detail}")]
    PeerLost { detail: String },
    #[error("UNSUPPORTED_VERSION: {detail}")]
    UnsupportedVersion { detail: String },
    #[error("PROTOCOL_ERROR: {detail}")]
    ProtocolError { detail: String },
    #[error("HANDSHAKE_REJECTED: {detail}")]
    HandshakeRejected { detail: String },
    #[error("UNKNOWN_PEER: {detail}")]
    UnknownPeer { detail: String },
    #[error("IO: {detail}")]
    Io { detail: String },
    #[error("NAME_IN_USE: {detail}")]
    NameInUse { detail: String },
    #[error("OVERLOADED: {detail}")]
    Overloaded { detail: String },
    #[error("TIMEOUT: {detail}")]
    Timeout { detail: String },
    #[error("NO_RESPONDERS: {detail}")]
    NoResponders { detail: String },
    #[error("CANCELLED: {detail}")]
    Cancelled { detail: String },
    #[error("HANDLER_ERROR: {detail}")]
    HandlerError { detail: String },
    #[error("BUFFER_FULL: {detail}")]
    BufferFull { detail: String },
    #[error("CLOSED: {detail}")]
    Closed { detail: String },
    #[error("WOULD_DEADLOCK: {detail}")]
    WouldDeadlock { detail: String },
    #[error("INTERNAL: {detail}")]
    Internal { detail: String },
}

impl NetchanError {
    /// An error with this core code and detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> NetchanError {
        let detail = detail.into();
        use NetchanError as E;
        match code {
            ErrorCode::InvalidArgument => E::InvalidArgument { detail },
            ErrorCode::InvalidAddress => E::InvalidAddress { detail },
            ErrorCode::InvalidPath => E::InvalidPath { detail },
            ErrorCode::MessageTooLarge => E::MessageTooLarge { detail },
            ErrorCode::ConnectRefused => E::ConnectRefused { detail },
            ErrorCode::AddressInUse => E::AddressInUse { detail },
            ErrorCode::PeerLost => E::PeerLost { detail },
            ErrorCode::UnsupportedVersion => E::UnsupportedVersion { detail },
            ErrorCode::ProtocolError => E::ProtocolError { detail },
            ErrorCode::HandshakeRejected => E::HandshakeRejected { detail },
            ErrorCode::UnknownPeer => E::UnknownPeer { detail },
            ErrorCode::Io => E::Io { detail },
            ErrorCode::NameInUse => E::NameInUse { detail },
            ErrorCode::Overloaded => E::Overloaded { detail },
            ErrorCode::Timeout => E::Timeout { detail },
            ErrorCode::NoResponders => E::NoResponders { detail },
            ErrorCode::Cancelled => E::Cancelled { detail },
            ErrorCode::HandlerError => E::HandlerError { detail },
            ErrorCode::BufferFull => E::BufferFull { detail },
            ErrorCode::Closed => E::Closed { detail },
            ErrorCode::WouldDeadlock => E::WouldDeadlock { detail },
            ErrorCode::Internal => E::Internal { detail },
            // A code a newer core adds before this crate learns it
            // (ErrorCode is non_exhaustive).
            _ => E::Internal {
                detail: format!("{}: {detail}", code.name()),
            },
        }
    }

    /// The core code of this error.
    pub fn code(&self) -> ErrorCode {
        use NetchanError as E;
        match self {
            E::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            E::InvalidAddress { .. } => ErrorCode::InvalidAddress,
            E::InvalidPath { .. } => ErrorCode::InvalidPath,
            E::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            E::ConnectRefused { .. } => ErrorCode::ConnectRefused,
            E::AddressInUse { .. } => ErrorCode::AddressInUse,
            E::PeerLost { .. } => ErrorCode::PeerLost,
            E::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            E::ProtocolError { .. } => ErrorCode::ProtocolError,
            E::HandshakeRejected { .. } => ErrorCode::HandshakeRejected,
            E::UnknownPeer { .. } => ErrorCode::UnknownPeer,
            E::Io { .. } => ErrorCode::Io,
            E::NameInUse { .. } => ErrorCode::NameInUse,
            E::Overloaded { .. } => ErrorCode::Overloaded,
            E::Timeout { .. } => ErrorCode::Timeout,
            E::NoResponders { .. } => ErrorCode::NoResponders,
            E::Cancelled { .. } => ErrorCode::Cancelled,
            E::HandlerError { .. } => ErrorCode::HandlerError,
            E::BufferFull { .. } => ErrorCode::BufferFull,
            E::Closed { .. } => ErrorCode::Closed,
            E::WouldDeadlock { .. } => ErrorCode::WouldDeadlock,
            E::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        use NetchanError as E;
        match self {
            E::InvalidArgument { detail }
            | E::InvalidAddress { detail }
            | E::InvalidPath { detail }
            | E::MessageTooLarge { detail }
            | E::ConnectRefused { detail }
            | E::AddressInUse { detail }
            | E::PeerLost { detail }
            | E::UnsupportedVersion { detail }
            | E::ProtocolError { detail }
            | E::HandshakeRejected { detail }
            | E::UnknownPeer { detail }
            | E::Io { detail }
            | E::NameInUse { detail }
            | E::Overloaded { detail }
            | E::Timeout { detail }
            | E::NoResponders { detail }
            | E::Cancelled { detail }
            | E::HandlerError { detail }
            | E::BufferFull { detail }
            | E::Closed { detail }
            | E::WouldDeadlock { detail }
            | E::Internal { detail } => detail,
        }
    }

    pub(crate) fn closed() -> NetchanError {
        NetchanError::new(ErrorCode::Closed, "the endpoint is closed")
    }

    pub(crate) fn into_core(self) -> netchan::Error {
        netchan::Error::new(self.code(), self.detail().to_string())
    }
}

impl From<netchan::Error> for NetchanError {
    fn from(e: netchan::Error) -> Self {
        NetchanError::new(e.code(), e.detail())
    }
}

/// A foreign handler threw something that is not a `NetchanError`: the
/// request fails with `HANDLER_ERROR` carrying the exception's text.
impl From<uniffi::UnexpectedUniFFICallbackError> for NetchanError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        NetchanError::new(ErrorCode::HandlerError, e.reason)
    }
}

/// One error code as the core defines it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ErrorCodeInfo {
    /// The symbolic name, e.g. `NO_RESPONDERS`.
    pub name: String,
    /// The stable number (wire protocol, C ABI).
    pub number: u16,
    /// A short description.
    pub description: String,
}

/// Every error code of the core, in numeric order; the variants of
/// `NetchanError` are these, one for one (the tests check it).
#[uniffi::export]
pub fn error_codes() -> Vec<ErrorCodeInfo> {
    ErrorCode::ALL
        .iter()
        .map(|c| ErrorCodeInfo {
            name: c.name().to_string(),
            number: c.as_u16(),
            description: c.description().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_its_own_variant() {
        for &c in ErrorCode::ALL {
            let e = NetchanError::new(c, "x");
            assert_eq!(e.code(), c, "{}", c.name());
            assert_eq!(e.detail(), "x");
            assert!(e.to_string().starts_with(c.name()));
        }
    }
}
