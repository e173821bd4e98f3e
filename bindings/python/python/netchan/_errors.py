"""netchan's exceptions: one class per error code, each also a built-in.

Every exception raised by netchan is a :class:`netchan.Error` with ``.code``
(the symbolic code shared with the core, the C ABI and the other bindings,
e.g. ``"NO_RESPONDERS"``) and ``.detail`` (what went wrong, in words). Each
class also subclasses the matching built-in exception, so ``except
TimeoutError`` or ``except ConnectionError`` work without importing netchan.
"""

from __future__ import annotations

import builtins
from typing import Dict, Type

__all__ = [
    "Error",
    "InvalidArgumentError",
    "InvalidAddressError",
    "InvalidPathError",
    "MessageTooLargeError",
    "ConnectRefusedError",
    "AddressInUseError",
    "PeerLostError",
    "UnsupportedVersionError",
    "ProtocolError",
    "HandshakeRejectedError",
    "UnknownPeerError",
    "IoError",
    "NameInUseError",
    "OverloadedError",
    "TimeoutError",
    "NoRespondersError",
    "CancelledError",
    "HandlerError",
    "BufferFullError",
    "ClosedError",
    "WouldDeadlockError",
    "PlaintextRefusedError",
    "TlsFailedError",
    "CertUntrustedError",
    "CertNameMismatchError",
    "CertExpiredError",
    "ClientCertRequiredError",
    "PermissionDeniedError",
    "SharedKeyRefusedError",
    "RateLimitedError",
    "InternalError",
]


class Error(Exception):
    """Base class of every netchan exception."""

    #: The symbolic code, e.g. ``"TIMEOUT"``.
    code: str = "INTERNAL"

    def __init__(self, detail: str = "", code: str | None = None) -> None:
        super().__init__(detail)
        #: What went wrong, in words (without the code).
        self.detail: str = detail
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_from_code, (self.code, self.detail))


class InvalidArgumentError(Error, ValueError):
    """An argument or option is out of range (``INVALID_ARGUMENT``)."""

    code = "INVALID_ARGUMENT"


class InvalidAddressError(Error, ValueError):
    """An address is not one of the accepted forms, or names a transport this
    system lacks (``unix://`` on Windows, ``pipe://`` elsewhere) (``INVALID_ADDRESS``)."""

    code = "INVALID_ADDRESS"


class InvalidPathError(Error, ValueError):
    """A path or pattern breaks the path rules (``INVALID_PATH``)."""

    code = "INVALID_PATH"


class MessageTooLargeError(Error, ValueError):
    """A message exceeds a frame limit (``MESSAGE_TOO_LARGE``)."""

    code = "MESSAGE_TOO_LARGE"


class ConnectRefusedError(Error, ConnectionRefusedError):
    """The remote side could not be reached (``CONNECT_REFUSED``)."""

    code = "CONNECT_REFUSED"


class AddressInUseError(Error, OSError):
    """The listen address is taken (``ADDRESS_IN_USE``)."""

    code = "ADDRESS_IN_USE"


class PeerLostError(Error, ConnectionError):
    """The link to the peer was lost mid-operation (``PEER_LOST``)."""

    code = "PEER_LOST"


class UnsupportedVersionError(Error, ConnectionError):
    """The peers share no protocol version (``UNSUPPORTED_VERSION``)."""

    code = "UNSUPPORTED_VERSION"


class ProtocolError(Error, ConnectionError):
    """The peer broke the wire protocol (``PROTOCOL_ERROR``)."""

    code = "PROTOCOL_ERROR"


class HandshakeRejectedError(Error, ConnectionError):
    """The peer refused the handshake (``HANDSHAKE_REJECTED``)."""

    code = "HANDSHAKE_REJECTED"


class UnknownPeerError(Error, LookupError):
    """No connected peer has that name (``UNKNOWN_PEER``)."""

    code = "UNKNOWN_PEER"


class IoError(Error, OSError):
    """An operating-system I/O error (``IO``)."""

    code = "IO"


class NameInUseError(Error, ConnectionError):
    """A peer with the same name is already connected (``NAME_IN_USE``)."""

    code = "NAME_IN_USE"


class OverloadedError(Error, ConnectionError):
    """The peer is at a connection limit; try again (``OVERLOADED``)."""

    code = "OVERLOADED"


class TimeoutError(Error, builtins.TimeoutError):
    """The deadline passed (``TIMEOUT``)."""

    code = "TIMEOUT"


class NoRespondersError(Error, LookupError):
    """Nobody serves the request's path (``NO_RESPONDERS``)."""

    code = "NO_RESPONDERS"


class CancelledError(Error):
    """The operation was cancelled (``CANCELLED``). Not asyncio's CancelledError."""

    code = "CANCELLED"


class HandlerError(Error, RuntimeError):
    """The server's handler failed; ``detail`` is its message (``HANDLER_ERROR``)."""

    code = "HANDLER_ERROR"


class BufferFullError(Error, BlockingIOError):
    """A queue or send buffer is full (``BUFFER_FULL``)."""

    code = "BUFFER_FULL"


class ClosedError(Error, RuntimeError):
    """The endpoint, subscription or service is closed (``CLOSED``)."""

    code = "CLOSED"


class WouldDeadlockError(Error, RuntimeError):
    """A blocking call where waiting would deadlock (``WOULD_DEADLOCK``)."""

    code = "WOULD_DEADLOCK"


class PlaintextRefusedError(Error, ConnectionError):
    """Plaintext beyond this host was refused; use tls:// or allow ``insecure`` (``PLAINTEXT_REFUSED``)."""

    code = "PLAINTEXT_REFUSED"


class TlsFailedError(Error, ConnectionError):
    """A TLS handshake failed (``TLS_FAILED``)."""

    code = "TLS_FAILED"


class CertUntrustedError(Error, ConnectionError):
    """A certificate is not trusted (``CERT_UNTRUSTED``)."""

    code = "CERT_UNTRUSTED"


class CertNameMismatchError(Error, ConnectionError):
    """A certificate does not carry the name dialled (``CERT_NAME_MISMATCH``)."""

    code = "CERT_NAME_MISMATCH"


class CertExpiredError(Error, ConnectionError):
    """A certificate has expired or is not valid yet (``CERT_EXPIRED``)."""

    code = "CERT_EXPIRED"


class ClientCertRequiredError(Error, ConnectionError):
    """The listener requires a client certificate (``CLIENT_CERT_REQUIRED``)."""

    code = "CLIENT_CERT_REQUIRED"


class PermissionDeniedError(Error, PermissionError):
    """The peer is not allowed in (``PERMISSION_DENIED``)."""

    code = "PERMISSION_DENIED"


class SharedKeyRefusedError(Error, ConnectionError):
    """A shared-key handshake failed (``SHARED_KEY_REFUSED``)."""

    code = "SHARED_KEY_REFUSED"


class RateLimitedError(Error, ConnectionError):
    """The peer's rate limit refused this (``RATE_LIMITED``)."""

    code = "RATE_LIMITED"


class InternalError(Error, RuntimeError):
    """A bug in netchan (``INTERNAL``); please report it."""

    code = "INTERNAL"


_BY_CODE: Dict[str, Type[Error]] = {
    c.code: c
    for c in (
        InvalidArgumentError,
        InvalidAddressError,
        InvalidPathError,
        MessageTooLargeError,
        ConnectRefusedError,
        AddressInUseError,
        PeerLostError,
        UnsupportedVersionError,
        ProtocolError,
        HandshakeRejectedError,
        UnknownPeerError,
        IoError,
        NameInUseError,
        OverloadedError,
        TimeoutError,
        NoRespondersError,
        CancelledError,
        HandlerError,
        BufferFullError,
        ClosedError,
        WouldDeadlockError,
        PlaintextRefusedError,
        TlsFailedError,
        CertUntrustedError,
        CertNameMismatchError,
        CertExpiredError,
        ClientCertRequiredError,
        PermissionDeniedError,
        SharedKeyRefusedError,
        RateLimitedError,
        InternalError,
    )
}


class _MsgpackTypeError(InvalidArgumentError, TypeError):
    """A value msgpack cannot encode (``INVALID_ARGUMENT``; also a TypeError)."""


class _MsgpackOverflowError(InvalidArgumentError, OverflowError):
    """An int out of msgpack's 64-bit range (``INVALID_ARGUMENT``; also an OverflowError)."""


def _msgpack_error(builtin: str, detail: str) -> Error:
    """The exception for a msgpack encode/decode error (raised by the native module)."""
    cls = {"type": _MsgpackTypeError, "overflow": _MsgpackOverflowError}.get(builtin, InvalidArgumentError)
    return cls(detail)


def error_class(code: str) -> Type[Error]:
    """The exception class for a symbolic code (:class:`Error` if unknown)."""
    return _BY_CODE.get(code, Error)


def _from_code(code: str, detail: str) -> Error:
    cls = _BY_CODE.get(code)
    if cls is None:
        return Error(detail, code)
    return cls(detail)
