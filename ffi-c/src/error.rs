//! Result codes, their static texts, and the thread-local error detail.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use netchan::ErrorCode;

/// The result of every fallible netchan function.
///
/// `NETCHAN_RESULT_OK` (0) is success. The groups 1xx to 9xx are the core's
/// error codes with the same numbers as on the wire and in every binding;
/// 1xxx are codes only the C API has. Numbers are never reused; new codes
/// take the next free number in their group, so a `switch` should have a
/// `default:` branch. `netchan_result_str()` gives a static text, and
/// `netchan_last_error()` the detail of the last failure on this thread.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum netchan_result {
    /// Success.
    Ok = 0,

    // 1xx: the caller passed something unusable.
    /// An argument or option is out of range (zero timeout, zero limit, ...).
    InvalidArgument = 100,
    /// An address is not one of the accepted forms, or names a transport
    /// this system lacks (`unix://` on Windows, `pipe://` elsewhere).
    InvalidAddress = 101,
    /// A path or pattern breaks the path rules.
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
    /// connection, or two endpoints sharing a name); may pass once the older
    /// connection's heartbeats time out.
    NameInUse = 208,
    /// The peer is at one of its connection limits and refused or closed
    /// this connection; not permanent, try again.
    Overloaded = 209,

    // 3xx: requests.
    /// The deadline passed before the operation completed.
    Timeout = 300,
    /// No endpoint serves the request's path.
    NoResponders = 301,
    /// The operation was cancelled.
    Cancelled = 302,
    /// The handler failed; `netchan_last_error()` (or the result callback's
    /// `error` argument) holds the handler's text.
    HandlerError = 303,

    // 4xx: flow control.
    /// A bounded queue or buffer is full and the policy said fail.
    BufferFull = 400,

    // 5xx: state.
    /// The endpoint, subscription, service or reply is closed.
    Closed = 500,
    /// A blocking function was called from a netchan callback, where waiting
    /// would deadlock.
    WouldDeadlock = 501,

    // 6xx: security (docs/SECURITY.md).
    /// Plaintext TCP beyond this host was refused: use `tls://` with TLS
    /// settings, or allow plaintext explicitly (`insecure`).
    PlaintextRefused = 600,
    /// A TLS handshake failed for a reason without a code of its own (the peer
    /// does not speak TLS, or no common protocol).
    TlsFailed = 601,
    /// A peer's certificate is not signed by a trusted CA nor pinned (or the
    /// peer did not trust this endpoint's).
    CertUntrusted = 602,
    /// A peer's certificate does not carry the name or address dialled.
    CertNameMismatch = 603,
    /// A certificate has expired or is not valid yet.
    CertExpired = 604,
    /// The listener requires a client certificate (mutual TLS) and none was
    /// presented.
    ClientCertRequired = 605,
    /// The peer is not allowed in (a Unix peer's user id outside
    /// `unix_allowed_uids`).
    PermissionDenied = 606,
    /// A shared-key handshake failed: the peer does not hold the key (or names
    /// a key id this endpoint lacks), does not use shared keys, or sent what
    /// does not decrypt with the key.
    SharedKeyRefused = 607,
    /// A peer sent more than the endpoint's rate limit allows
    /// (`rate_limit.*` settings): the request was refused, or the link
    /// closed.
    RateLimited = 608,

    // 9xx: bugs.
    /// An internal error (a bug in netchan); please report it.
    Internal = 900,

    // 10xx: C API only, caller errors.
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1000,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 1001,

    // 11xx: C API only, statuses that are not failures.
    /// `netchan_subscription_try_recv()`: no message is queued right now.
    Empty = 1100,

    // 19xx: C API only, bugs.
    /// A Rust panic was caught at the API boundary (a bug in netchan); the
    /// handle involved should be freed.
    Panic = 1900,
}

impl netchan_result {
    /// Every code, in numeric order.
    pub const ALL: &'static [netchan_result] = &[
        netchan_result::Ok,
        netchan_result::InvalidArgument,
        netchan_result::InvalidAddress,
        netchan_result::InvalidPath,
        netchan_result::MessageTooLarge,
        netchan_result::ConnectRefused,
        netchan_result::AddressInUse,
        netchan_result::PeerLost,
        netchan_result::UnsupportedVersion,
        netchan_result::ProtocolError,
        netchan_result::HandshakeRejected,
        netchan_result::UnknownPeer,
        netchan_result::Io,
        netchan_result::NameInUse,
        netchan_result::Overloaded,
        netchan_result::Timeout,
        netchan_result::NoResponders,
        netchan_result::Cancelled,
        netchan_result::HandlerError,
        netchan_result::BufferFull,
        netchan_result::Closed,
        netchan_result::WouldDeadlock,
        netchan_result::PlaintextRefused,
        netchan_result::TlsFailed,
        netchan_result::CertUntrusted,
        netchan_result::CertNameMismatch,
        netchan_result::CertExpired,
        netchan_result::ClientCertRequired,
        netchan_result::PermissionDenied,
        netchan_result::SharedKeyRefused,
        netchan_result::RateLimited,
        netchan_result::Internal,
        netchan_result::NullArgument,
        netchan_result::InvalidUtf8,
        netchan_result::Empty,
        netchan_result::Panic,
    ];

    /// The code with this number, if there is one.
    pub fn from_u32(n: u32) -> Option<netchan_result> {
        Self::ALL.iter().copied().find(|r| *r as u32 == n)
    }

    /// The core code with the same number (`None` for OK and C-only codes).
    pub fn core_code(self) -> Option<ErrorCode> {
        u16::try_from(self as u32)
            .ok()
            .and_then(ErrorCode::from_u16)
    }

    /// The symbolic name (`"TIMEOUT"`), NUL-terminated.
    fn name(self) -> &'static CStr {
        match self {
            netchan_result::Ok => c"OK",
            netchan_result::InvalidArgument => c"INVALID_ARGUMENT",
            netchan_result::InvalidAddress => c"INVALID_ADDRESS",
            netchan_result::InvalidPath => c"INVALID_PATH",
            netchan_result::MessageTooLarge => c"MESSAGE_TOO_LARGE",
            netchan_result::ConnectRefused => c"CONNECT_REFUSED",
            netchan_result::AddressInUse => c"ADDRESS_IN_USE",
            netchan_result::PeerLost => c"PEER_LOST",
            netchan_result::UnsupportedVersion => c"UNSUPPORTED_VERSION",
            netchan_result::ProtocolError => c"PROTOCOL_ERROR",
            netchan_result::HandshakeRejected => c"HANDSHAKE_REJECTED",
            netchan_result::UnknownPeer => c"UNKNOWN_PEER",
            netchan_result::Io => c"IO",
            netchan_result::NameInUse => c"NAME_IN_USE",
            netchan_result::Overloaded => c"OVERLOADED",
            netchan_result::Timeout => c"TIMEOUT",
            netchan_result::NoResponders => c"NO_RESPONDERS",
            netchan_result::Cancelled => c"CANCELLED",
            netchan_result::HandlerError => c"HANDLER_ERROR",
            netchan_result::BufferFull => c"BUFFER_FULL",
            netchan_result::Closed => c"CLOSED",
            netchan_result::WouldDeadlock => c"WOULD_DEADLOCK",
            netchan_result::PlaintextRefused => c"PLAINTEXT_REFUSED",
            netchan_result::TlsFailed => c"TLS_FAILED",
            netchan_result::CertUntrusted => c"CERT_UNTRUSTED",
            netchan_result::CertNameMismatch => c"CERT_NAME_MISMATCH",
            netchan_result::CertExpired => c"CERT_EXPIRED",
            netchan_result::ClientCertRequired => c"CLIENT_CERT_REQUIRED",
            netchan_result::PermissionDenied => c"PERMISSION_DENIED",
            netchan_result::SharedKeyRefused => c"SHARED_KEY_REFUSED",
            netchan_result::RateLimited => c"RATE_LIMITED",
            netchan_result::Internal => c"INTERNAL",
            netchan_result::NullArgument => c"NULL_ARGUMENT",
            netchan_result::InvalidUtf8 => c"INVALID_UTF8",
            netchan_result::Empty => c"EMPTY",
            netchan_result::Panic => c"PANIC",
        }
    }

    /// A short static description, NUL-terminated.
    fn text(self) -> &'static CStr {
        match self {
            netchan_result::Ok => c"success",
            netchan_result::InvalidArgument => c"invalid argument",
            netchan_result::InvalidAddress => c"invalid address",
            netchan_result::InvalidPath => c"invalid path or pattern",
            netchan_result::MessageTooLarge => c"message too large",
            netchan_result::ConnectRefused => c"connection refused or unreachable",
            netchan_result::AddressInUse => c"address in use",
            netchan_result::PeerLost => c"peer lost",
            netchan_result::UnsupportedVersion => c"unsupported protocol version",
            netchan_result::ProtocolError => c"protocol error",
            netchan_result::HandshakeRejected => c"handshake rejected",
            netchan_result::UnknownPeer => c"unknown peer",
            netchan_result::Io => c"I/O error",
            netchan_result::NameInUse => c"a peer with that name is already connected",
            netchan_result::Overloaded => c"the peer is at a connection limit; try again",
            netchan_result::Timeout => c"timed out",
            netchan_result::NoResponders => c"no responders",
            netchan_result::Cancelled => c"cancelled",
            netchan_result::HandlerError => c"handler error",
            netchan_result::BufferFull => c"buffer full",
            netchan_result::Closed => c"closed",
            netchan_result::WouldDeadlock => c"blocking call would deadlock",
            netchan_result::PlaintextRefused => c"plaintext refused; use tls:// or allow insecure",
            netchan_result::TlsFailed => c"TLS handshake failed",
            netchan_result::CertUntrusted => c"certificate not trusted",
            netchan_result::CertNameMismatch => c"certificate name mismatch",
            netchan_result::CertExpired => c"certificate expired or not yet valid",
            netchan_result::ClientCertRequired => c"client certificate required",
            netchan_result::PermissionDenied => c"permission denied",
            netchan_result::SharedKeyRefused => c"shared key refused",
            netchan_result::RateLimited => c"rate limited",
            netchan_result::Internal => c"internal error",
            netchan_result::NullArgument => c"a required pointer argument is NULL",
            netchan_result::InvalidUtf8 => c"a string argument is not valid UTF-8",
            netchan_result::Empty => c"nothing queued",
            netchan_result::Panic => c"internal panic caught at the API boundary",
        }
    }
}

impl From<ErrorCode> for netchan_result {
    fn from(c: ErrorCode) -> netchan_result {
        netchan_result::from_u32(u32::from(c.as_u16())).unwrap_or(netchan_result::Internal)
    }
}

/// An error on its way out of the boundary: a code and the detail that
/// `netchan_last_error()` will show.
#[derive(Debug, Clone)]
pub(crate) struct FfiError {
    pub code: netchan_result,
    pub detail: String,
}

impl FfiError {
    pub fn new(code: netchan_result, detail: impl Into<String>) -> FfiError {
        FfiError {
            code,
            detail: detail.into(),
        }
    }

    pub fn null(arg: &str) -> FfiError {
        FfiError::new(
            netchan_result::NullArgument,
            format!("argument `{arg}` is NULL"),
        )
    }
}

impl From<netchan::Error> for FfiError {
    fn from(e: netchan::Error) -> FfiError {
        let code = netchan_result::from(e.code());
        let detail = if code == netchan_result::Internal && e.code() != ErrorCode::Internal {
            // A core code this library does not know yet: keep its name.
            format!("{}: {}", e.code().name(), e.detail())
        } else {
            e.detail().to_owned()
        };
        FfiError { code, detail }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `detail` as this thread's last error.
pub(crate) fn set_last_error(detail: &str) {
    let c = CString::new(detail.replace('\0', "\\0")).unwrap_or_default();
    // The thread may be exiting (TLS destroyed): then there is nobody to read it.
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = Some(c));
}

/// Frees the calling thread's last-error text (used by `netchan_runtime_shutdown`).
pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = None);
}

/// The static symbolic name of a result code, e.g. `"TIMEOUT"` for
/// `NETCHAN_RESULT_TIMEOUT`; `"UNKNOWN"` for a number that is no code.
///
/// The returned string is static: never free it. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_result_name(code: u32) -> *const c_char {
    crate::boundary::ffi_boundary_or(c"UNKNOWN".as_ptr(), || {
        netchan_result::from_u32(code)
            .map(|r| r.name())
            .unwrap_or(c"UNKNOWN")
            .as_ptr()
    })
}

/// A static, human-readable description of a result code, e.g. `"timed out"`
/// for `NETCHAN_RESULT_TIMEOUT`; `"unknown result code"` for a number that is
/// no code.
///
/// The returned string is static: never free it. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_result_str(code: u32) -> *const c_char {
    crate::boundary::ffi_boundary_or(c"unknown result code".as_ptr(), || {
        netchan_result::from_u32(code)
            .map(|r| r.text())
            .unwrap_or(c"unknown result code")
            .as_ptr()
    })
}

/// The detail of the most recent failure on the calling thread (like
/// `errno`: successful calls do not clear it), e.g. `"no reply to greet/ana
/// within 1s"`; an empty string if nothing failed yet.
///
/// The returned string is owned by the library and stays valid until the
/// next failing netchan call on this thread (or `netchan_runtime_shutdown()`); copy
/// it to keep it. Never NULL. Thread-safe (each thread has its own).
#[unsafe(no_mangle)]
pub extern "C" fn netchan_last_error() -> *const c_char {
    crate::boundary::ffi_boundary_or(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|l| l.borrow().as_ref().map(|c| c.as_ptr()))
            .ok()
            .flatten()
            .unwrap_or(c"".as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_the_same_number_here() {
        for &c in ErrorCode::ALL {
            let r = netchan_result::from(c);
            assert_eq!(r as u32, u32::from(c.as_u16()), "{c:?}");
            assert_eq!(r.core_code(), Some(c));
            assert_eq!(r.name().to_str().unwrap(), c.name());
        }
    }

    #[test]
    fn numbers_are_unique_sorted_and_round_trip() {
        let nums: Vec<u32> = netchan_result::ALL.iter().map(|r| *r as u32).collect();
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(nums, sorted);
        for &r in netchan_result::ALL {
            assert_eq!(netchan_result::from_u32(r as u32), Some(r));
        }
        assert_eq!(netchan_result::Ok as u32, 0);
        // C-only codes never collide with a core code.
        for r in [
            netchan_result::NullArgument,
            netchan_result::InvalidUtf8,
            netchan_result::Empty,
            netchan_result::Panic,
        ] {
            assert!(r as u32 >= 1000 && r.core_code().is_none());
        }
    }
}
