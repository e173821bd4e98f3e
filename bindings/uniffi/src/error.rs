//! The error type of every fallible call: one variant per core code.

use netchan::ErrorCode;

/// Declares [`NetchanError`] with one variant per listed core code (named
/// as the `ErrorCode` variant), with its constructor and accessors, and
/// `VARIANTS`, the list the tests compare with `ErrorCode::ALL`.
macro_rules! netchan_error {
    ($($code:ident),* $(,)?) => {
        /// A netchan error: the variant is the symbolic code (the same names and
        /// numbers as the core, the C ABI and the other bindings), `detail` says
        /// what went wrong. Kotlin: `NetchanException.Timeout`, ...; Swift:
        /// `NetchanError.Timeout(detail:)`, ...
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
        #[allow(missing_docs)] // each variant is its core code; see netchan::ErrorCode
        pub enum NetchanError {
            $(
                #[error("{}: {detail}", ErrorCode::$code.name())]
                $code { detail: String },
            )*
        }

        /// The core code of each variant, in declaration order.
        #[cfg(test)]
        const VARIANTS: &[ErrorCode] = &[$(ErrorCode::$code),*];

        impl NetchanError {
            /// An error with this core code and detail.
            pub fn new(code: ErrorCode, detail: impl Into<String>) -> NetchanError {
                let detail = detail.into();
                match code {
                    $(ErrorCode::$code => NetchanError::$code { detail },)*
                    // A code a newer core adds before this crate learns it
                    // (ErrorCode is non_exhaustive; the tests fail then).
                    _ => NetchanError::Internal {
                        detail: format!("{}: {detail}", code.name()),
                    },
                }
            }

            /// The core code of this error.
            pub fn code(&self) -> ErrorCode {
                match self {
                    $(NetchanError::$code { .. } => ErrorCode::$code,)*
                }
            }

            /// The detail text.
            pub fn detail(&self) -> &str {
                match self {
                    $(NetchanError::$code { detail })|* => detail,
                }
            }
        }
    };
}

// In the core's order (`ErrorCode::ALL`); `the_variants_are_the_core_codes_one_for_one`
// fails on any difference.
netchan_error! {
    InvalidArgument,
    InvalidAddress,
    InvalidPath,
    MessageTooLarge,
    ConnectRefused,
    AddressInUse,
    PeerLost,
    UnsupportedVersion,
    ProtocolError,
    HandshakeRejected,
    UnknownPeer,
    Io,
    NameInUse,
    Overloaded,
    Timeout,
    NoResponders,
    Cancelled,
    HandlerError,
    BufferFull,
    Closed,
    WouldDeadlock,
    PlaintextRefused,
    TlsFailed,
    CertUntrusted,
    CertNameMismatch,
    CertExpired,
    ClientCertRequired,
    PermissionDenied,
    SharedKeyRefused,
    RateLimited,
    Internal,
}

impl NetchanError {
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

    /// One variant per core code, none more, in the core's order: a code
    /// the core adds, drops or reorders fails here (and a variant naming no
    /// core code does not compile).
    #[test]
    fn the_variants_are_the_core_codes_one_for_one() {
        assert_eq!(VARIANTS, ErrorCode::ALL);
    }

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
