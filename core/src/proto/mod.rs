//! Wire protocol v2, free of sockets (sans-IO).
//!
//! Every frame is
//!
//! ```text
//! u32 BE  len      bytes that follow this field (5 + hlen + payload length)
//! u8      kind     see [`Kind`]
//! u32 BE  hlen     length of the msgpack header
//! [hlen]  header   msgpack, layout per kind
//! [..]    payload  raw bytes, never re-encoded
//! ```
//!
//! `docs/PROTOCOL.md` is the normative description, with test vectors that
//! the tests at the bottom of this file check.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

mod credit;
mod declare;
mod header;
mod hello;
mod kind;
mod message;
mod stream;
pub use credit::CreditItem;
pub use declare::{Decl, DeclKind, DeclRef, Declarations};
use header::Reader;
use hello::parse_hello;
pub use kind::Kind;
pub use message::{
    encode_message_head, encode_short_message_head, message_frame_len, message_path_range,
    short_message_frame_len, MAX_ALIASES, MAX_ALIAS_BYTES,
};
pub use stream::{encode_stream_data_head, STREAM_DATA_HEAD_MAX};

use crate::error::{Error, ErrorCode, Result};

/// Magic string carried in every HELLO.
pub const MAGIC: &str = "NTCH";
/// Lowest protocol version this build speaks.
pub const VERSION_MIN: u64 = 2;
/// Highest protocol version this build speaks.
pub const VERSION_MAX: u64 = 2;
/// Bytes before the header: `len` (4), `kind` (1), `hlen` (4).
pub const FRAME_PREFIX: usize = 9;
/// Frame size limit before the handshake completes (a HELLO is small).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;
/// The smallest `max_frame` an endpoint may advertise.
pub const MIN_MAX_FRAME: usize = 4096;
/// Longest endpoint name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The HELLO header (a msgpack map; unknown keys are ignored).
///
/// Versions are compared at any integer width: a peer announcing version
/// 2^64-1 is told `UNSUPPORTED_VERSION`, not that its HELLO failed to decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: String,
    /// Lowest version the sender speaks.
    pub min_version: u64,
    /// Highest version the sender speaks.
    pub max_version: u64,
    /// The sender's endpoint name.
    pub name: String,
    /// Largest frame (prefix included) the sender accepts.
    pub max_frame: u32,
    /// The sender's heartbeat interval in milliseconds (0: none).
    pub heartbeat_ms: u32,
    /// Optional: a random number the sender chose when it was made (0: not
    /// given, and not sent).
    #[serde(skip_serializing_if = "is_zero")]
    pub instance: u64,
    /// Optional: the sender dials again a peer it was connected to and has
    /// no link to any more (false: not sent). With the same `instance` as a
    /// connection the receiver still holds, that one is stale.
    #[serde(skip_serializing_if = "is_false")]
    pub rejoin: bool,
    /// Optional: a random number the sender chose for this connection (0:
    /// not given, and not sent). Both sides name the connection by the two
    /// numbers XORed, in a later TALLY.
    #[serde(skip_serializing_if = "is_zero")]
    pub link: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A decoded frame. Payloads share the receive buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Handshake.
    Hello(Hello),
    /// Orderly close.
    Close {
        /// An [`ErrorCode`] number, or 0 for a normal close.
        code: u16,
        /// Why.
        reason: String,
    },
    /// Ping with a nonce.
    Ping(u64),
    /// Pong echoing the nonce.
    Pong(u64),
    /// Declarations, decoded lazily: see [`Declarations`].
    Declare(Declarations),
    /// End of snapshot.
    SnapshotEnd,
    /// A published message; `path` is valid UTF-8.
    Message {
        /// The path (UTF-8, checked).
        path: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// A request.
    Request {
        /// Request id, unique per sender and connection.
        id: u64,
        /// The path.
        path: String,
        /// Time the caller still waits, in milliseconds.
        timeout_ms: u64,
        /// The payload.
        payload: Bytes,
    },
    /// A result: `code == 0` is success.
    Result {
        /// The request id.
        id: u64,
        /// 0 or an [`ErrorCode`] number.
        code: u16,
        /// Error text (empty on success).
        message: String,
        /// The reply payload (empty on error).
        payload: Bytes,
    },
    /// Cancel a request.
    Cancel(u64),
    /// From now on, on this connection, `alias` names `path` (v2).
    Alias {
        /// The alias, below [`MAX_ALIASES`].
        alias: u64,
        /// The path (UTF-8; the receiver validates it).
        path: String,
    },
    /// A published message on the path `alias` names, in the compact
    /// layout (v2).
    ShortMessage {
        /// The alias.
        alias: u16,
        /// The payload.
        payload: Bytes,
    },
    /// Opens stream `id` (v2; see [`crate::stream`] for ids).
    StreamOpen {
        /// The stream's id (even: the sender opens it).
        id: u64,
        /// The path.
        path: String,
        /// The stream's deadline, in milliseconds from now (0: none).
        timeout_ms: u64,
        /// Payload bytes the opener lets the server send before more
        /// credit.
        window: u64,
        /// The first payload.
        payload: Bytes,
    },
    /// The server took the stream (v2).
    StreamAccept {
        /// The stream's id.
        id: u64,
        /// Payload bytes the server lets the opener send before more credit.
        window: u64,
    },
    /// Data on a stream (v2).
    StreamData {
        /// The stream's id.
        id: u64,
        /// The data.
        payload: Bytes,
    },
    /// More credit for the receiver's sending direction (v2).
    StreamCredit {
        /// The stream's id.
        id: u64,
        /// Payload bytes granted.
        bytes: u64,
    },
    /// Code 0: the sender sends no more on the stream; else the sender
    /// ends the whole stream with this error (v2).
    StreamEnd {
        /// The stream's id.
        id: u64,
        /// 0 or an [`ErrorCode`] number.
        code: u16,
        /// Error text (empty for code 0).
        message: String,
    },
    /// Credit slots opened, granted or closed (v2).
    Credit(Vec<CreditItem>),
    /// The credit slots the sender started counting, by subscription id (v2).
    CreditAck(Vec<u64>),
    /// The sender queued `messages` MESSAGE frames for the receiver on the
    /// earlier connection `link`, which has ended (v2).
    Tally {
        /// That connection's id: the two HELLOs' `link` numbers XORed.
        link: u64,
        /// MESSAGE frames the sender queued on it.
        messages: u64,
    },
}

#[derive(Serialize)]
struct CloseHdr<'a> {
    code: u16,
    reason: std::borrow::Cow<'a, str>,
}
#[derive(Serialize)]
struct NonceHdr {
    nonce: u64,
}
#[derive(Serialize)]
struct TallyHdr {
    link: u64,
    messages: u64,
}
#[derive(Serialize)]
struct RequestHdr<'a> {
    id: u64,
    path: std::borrow::Cow<'a, str>,
    timeout_ms: u64,
}
#[derive(Serialize)]
struct ResultHdr<'a> {
    id: u64,
    code: u16,
    message: std::borrow::Cow<'a, str>,
}
#[cfg(test)]
#[derive(Serialize)]
struct MessageHdr<'a> {
    path: &'a str,
}

fn proto_err(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::ProtocolError, detail)
}

/// Writes the frame prefix and msgpack header of a frame whose payload of
/// `payload_len` bytes the caller appends next (or sends as its own chunk).
pub fn encode_head<H: Serialize>(
    buf: &mut BytesMut,
    kind: Kind,
    header: &H,
    payload_len: usize,
) -> Result<()> {
    let start = buf.len();
    buf.put_slice(&[0; FRAME_PREFIX]);
    if kind == Kind::Hello {
        rmp_serde::encode::write_named(&mut (&mut *buf).writer(), header)
    } else {
        rmp_serde::encode::write(&mut (&mut *buf).writer(), header)
    }
    .map_err(|e| Error::new(ErrorCode::Internal, format!("encoding a header: {e}")))?;
    let hlen = buf.len() - start - FRAME_PREFIX;
    finish_prefix(buf, start, kind, hlen, payload_len)
}

fn finish_prefix(
    buf: &mut BytesMut,
    start: usize,
    kind: Kind,
    hlen: usize,
    payload_len: usize,
) -> Result<()> {
    let len = 5 + hlen + payload_len;
    let Ok(len32) = u32::try_from(len) else {
        buf.truncate(start);
        return Err(Error::new(
            ErrorCode::MessageTooLarge,
            format!("a frame of {len} bytes does not fit the 32-bit length field"),
        ));
    };
    let p = &mut buf[start..start + FRAME_PREFIX];
    p[0..4].copy_from_slice(&len32.to_be_bytes());
    p[4] = kind as u8;
    p[5..9].copy_from_slice(&(hlen as u32).to_be_bytes());
    Ok(())
}

/// Encodes a whole frame with its payload into `buf`.
pub fn encode(buf: &mut BytesMut, frame: &Frame) -> Result<()> {
    match frame {
        Frame::Hello(h) => encode_head(buf, Kind::Hello, h, 0),
        Frame::Close { code, reason } => encode_head(
            buf,
            Kind::Close,
            &CloseHdr {
                code: *code,
                reason: reason.as_str().into(),
            },
            0,
        ),
        Frame::Ping(n) => encode_head(buf, Kind::Ping, &NonceHdr { nonce: *n }, 0),
        Frame::Pong(n) => encode_head(buf, Kind::Pong, &NonceHdr { nonce: *n }, 0),
        Frame::Declare(list) => {
            let start = buf.len();
            buf.put_slice(&[0; FRAME_PREFIX]);
            buf.put_slice(list.header());
            finish_prefix(buf, start, Kind::Declare, list.header().len(), 0)
        }
        Frame::SnapshotEnd => encode_head(buf, Kind::SnapshotEnd, &[0u8; 0], 0),
        Frame::Message { path, payload } => {
            let path = std::str::from_utf8(path)
                .map_err(|_| Error::invalid_argument("message path is not UTF-8"))?;
            encode_message_head(buf, path, payload.len())?;
            buf.put_slice(payload);
            Ok(())
        }
        Frame::Request {
            id,
            path,
            timeout_ms,
            payload,
        } => {
            encode_head(
                buf,
                Kind::Request,
                &RequestHdr {
                    id: *id,
                    path: path.as_str().into(),
                    timeout_ms: *timeout_ms,
                },
                payload.len(),
            )?;
            buf.put_slice(payload);
            Ok(())
        }
        Frame::Result {
            id,
            code,
            message,
            payload,
        } => {
            encode_head(
                buf,
                Kind::Result,
                &ResultHdr {
                    id: *id,
                    code: *code,
                    message: message.as_str().into(),
                },
                payload.len(),
            )?;
            buf.put_slice(payload);
            Ok(())
        }
        Frame::Cancel(id) => encode_head(buf, Kind::Cancel, &NonceHdr { nonce: *id }, 0),
        Frame::Alias { alias, path } => encode_head(buf, Kind::Alias, &(alias, path.as_str()), 0),
        Frame::ShortMessage { alias, payload } => {
            encode_short_message_head(buf, *alias, payload.len())?;
            buf.put_slice(payload);
            Ok(())
        }
        f @ (Frame::StreamOpen { .. }
        | Frame::StreamAccept { .. }
        | Frame::StreamData { .. }
        | Frame::StreamCredit { .. }
        | Frame::StreamEnd { .. }) => stream::encode(buf, f),
        Frame::Tally { link, messages } => encode_head(
            buf,
            Kind::Tally,
            &TallyHdr {
                link: *link,
                messages: *messages,
            },
            0,
        ),
        Frame::Credit(items) => {
            let mut h = Vec::with_capacity(8 + items.len() * 8);
            credit::encode_items(&mut h, items);
            encode_raw(buf, Kind::Credit, &h)
        }
        Frame::CreditAck(subs) => {
            let mut h = Vec::with_capacity(4 + subs.len() * 3);
            credit::encode_ack(&mut h, subs);
            encode_raw(buf, Kind::CreditAck, &h)
        }
    }
}

/// Writes a frame whose header is already encoded and which has no payload.
fn encode_raw(buf: &mut BytesMut, kind: Kind, header: &[u8]) -> Result<()> {
    let start = buf.len();
    buf.put_slice(&[0; FRAME_PREFIX]);
    buf.put_slice(header);
    finish_prefix(buf, start, kind, header.len(), 0)
}

/// The result of [`decode`] when no whole frame is buffered yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A frame; its bytes were removed from the buffer.
    Frame(Frame),
    /// Not enough bytes yet; the whole frame is this many bytes (prefix
    /// included) when known, else the bytes needed to read its length.
    NeedMore(usize),
}

/// The checked prefix of a buffered frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The frame kind.
    pub kind: Kind,
    /// Header length.
    pub hlen: usize,
    /// Whole frame size, prefix included.
    pub total: usize,
}

/// What [`peek`] found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// A whole frame is buffered.
    Complete(Head),
    /// The frame needs this many bytes in all (or 4 to read its length).
    NeedMore(usize),
}

/// Checks the frame prefix at the front of `buf` against `max_frame`
/// before anything is allocated for it; says whether it is complete.
pub fn peek(buf: &[u8], max_frame: usize) -> Result<Peeked> {
    if buf.len() < 4 {
        return Ok(Peeked::NeedMore(4));
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let total = len + 4;
    if total > max_frame {
        return Err(proto_err(format!(
            "frame of {total} bytes exceeds the limit of {max_frame} bytes"
        )));
    }
    // The shortest frame is a SHORT_MESSAGE without payload: its kind and
    // alias (3 bytes); every other kind has `hlen` too (5 at least).
    if len < 3 {
        return Err(proto_err(format!(
            "frame length {len} is shorter than its kind and header length"
        )));
    }
    if buf.len() < 5 {
        return Ok(Peeked::NeedMore(total));
    }
    // Checked early, so garbage is refused on its first bytes.
    let kind = Kind::from_u8(buf[4]).map_err(proto_err)?;
    if kind == Kind::ShortMessage {
        if buf.len() < total {
            return Ok(Peeked::NeedMore(total));
        }
        return Ok(Peeked::Complete(Head {
            kind,
            hlen: 2,
            total,
        }));
    }
    if len < 5 {
        return Err(proto_err(format!(
            "frame length {len} is shorter than its kind and header length"
        )));
    }
    if buf.len() < 9 {
        return Ok(Peeked::NeedMore(total));
    }
    let hlen = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
    if hlen > len - 5 {
        return Err(proto_err(format!(
            "header length {hlen} exceeds the frame's {} remaining bytes",
            len - 5
        )));
    }
    if buf.len() < total {
        return Ok(Peeked::NeedMore(total));
    }
    Ok(Peeked::Complete(Head { kind, hlen, total }))
}

/// Decodes one frame from the front of `buf`, checking its declared length
/// against `max_frame` before anything is allocated for it.
pub fn decode(buf: &mut BytesMut, max_frame: usize) -> Result<Decoded> {
    match peek(buf, max_frame)? {
        Peeked::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Peeked::Complete(head) => {
            let frame = buf.split_to(head.total).freeze();
            parse_frame(&frame, 0, head).map(Decoded::Frame)
        }
    }
}

/// Decodes the complete frame at `at` in `chunk`, described by `head` (from
/// [`peek`]); the payload shares `chunk`. The header must have exactly the
/// shape its kind gives it (see [`header`](self) and docs/PROTOCOL.md).
pub fn parse_frame(chunk: &Bytes, at: usize, head: Head) -> Result<Frame> {
    let hstart = at + head.kind.header_start();
    let header = &chunk[hstart..hstart + head.hlen];
    let payload = chunk.slice(hstart + head.hlen..at + head.total);
    let kind = head.kind;
    if !kind.has_payload() && !payload.is_empty() {
        return Err(proto_err(format!(
            "{} frame carries {} payload bytes; it must carry none",
            kind.name(),
            payload.len()
        )));
    }
    let mut r = Reader::new(kind, header);
    let frame = match kind {
        Kind::Message => {
            let path = match message_path_range(&chunk[at..at + head.total], head) {
                Some(range) => chunk.slice(at + range.start..at + range.end),
                None => {
                    r.tuple(1, "[path]")?;
                    chunk.slice_ref(r.str_bytes("path")?)
                }
            };
            if std::str::from_utf8(&path).is_err() {
                return Err(r.err("path is not valid UTF-8"));
            }
            // The fast path read the whole header; the slow one must have too.
            if message_path_range(&chunk[at..at + head.total], head).is_none() {
                r.end()?;
            }
            return Ok(Frame::Message { path, payload });
        }
        Kind::Hello => Frame::Hello(parse_hello(&mut r)?),
        Kind::Close => {
            r.tuple(2, "[code, reason]")?;
            let code = wire_code(r.uint("code")?);
            let reason = truncate(r.str("reason")?, MAX_REASON_LEN).to_owned();
            Frame::Close { code, reason }
        }
        Kind::Ping | Kind::Pong | Kind::Cancel => {
            let field = if kind == Kind::Cancel { "id" } else { "nonce" };
            r.tuple(
                1,
                if kind == Kind::Cancel {
                    "[id]"
                } else {
                    "[nonce]"
                },
            )?;
            let n = r.uint(field)?;
            match kind {
                Kind::Ping => Frame::Ping(n),
                Kind::Pong => Frame::Pong(n),
                _ => Frame::Cancel(n),
            }
        }
        Kind::Declare => {
            let count = Declarations::check(&mut r)?;
            Frame::Declare(Declarations::checked(
                chunk.slice(hstart..hstart + head.hlen),
                count,
            ))
        }
        Kind::Tally => {
            r.tuple(2, "[link, messages]")?;
            Frame::Tally {
                link: r.uint("link")?,
                messages: r.uint("messages")?,
            }
        }
        Kind::StreamOpen
        | Kind::StreamAccept
        | Kind::StreamData
        | Kind::StreamCredit
        | Kind::StreamEnd => stream::parse(kind, &mut r, payload)?,
        Kind::Alias => {
            r.tuple(2, "[alias, path]")?;
            let alias = r.uint("alias")?;
            if alias >= MAX_ALIASES {
                return Err(r.err(format!("alias must be below {MAX_ALIASES}, got {alias}")));
            }
            Frame::Alias {
                alias,
                path: r.str("path")?.to_owned(),
            }
        }
        Kind::ShortMessage => {
            // The header is the alias itself, 2 bytes big-endian.
            return Ok(Frame::ShortMessage {
                alias: u16::from_be_bytes([header[0], header[1]]),
                payload,
            });
        }
        Kind::Credit => Frame::Credit(credit::parse_items(&mut r)?),
        Kind::CreditAck => Frame::CreditAck(credit::parse_ack(&mut r)?),
        Kind::SnapshotEnd => {
            r.tuple(0, "[]")?;
            Frame::SnapshotEnd
        }
        Kind::Request => {
            r.tuple(3, "[id, path, timeout_ms]")?;
            Frame::Request {
                id: r.uint("id")?,
                path: r.str("path")?.to_owned(),
                timeout_ms: r.uint("timeout_ms")?,
                payload,
            }
        }
        Kind::Result => {
            r.tuple(3, "[id, code, message]")?;
            Frame::Result {
                id: r.uint("id")?,
                code: wire_code(r.uint("code")?),
                message: r.str("message")?.to_owned(),
                payload,
            }
        }
    };
    r.end()?;
    Ok(frame)
}

/// An error code from the wire as a `u16`; a number too large for one is
/// no code this build knows, and is read as such (`u16::MAX`, never a code).
fn wire_code(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The longest CLOSE reason kept; a longer one is cut at a character
/// boundary (it is only shown to people, and a peer must not be able to
/// make every log line and event carry megabytes).
pub const MAX_REASON_LEN: usize = 1024;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a completed handshake agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The protocol version both sides use.
    pub version: u64,
    /// The peer's HELLO.
    pub peer: Hello,
}

/// Formats a version range for error messages: `1` or `1..3`.
fn range(min: u64, max: u64) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min}..{max}")
    }
}

/// Checks the peer's HELLO against ours; both sides run this on the other's
/// HELLO, so a mismatch fails on both with the same message.
pub fn negotiate(local: &Hello, frame: Frame) -> Result<Agreed> {
    let peer = match frame {
        Frame::Hello(h) => h,
        Frame::Close { code, reason } => {
            let code = ErrorCode::from_u16(code).unwrap_or(ErrorCode::HandshakeRejected);
            return Err(Error::new(
                code,
                format!("peer closed the handshake: {reason}"),
            ));
        }
        other => {
            return Err(proto_err(format!(
                "expected HELLO as the first frame, got {}",
                frame_kind(&other).name()
            )))
        }
    };
    if peer.magic != MAGIC {
        return Err(proto_err("bad magic in HELLO: not a netchan peer"));
    }
    let lo = local.min_version.max(peer.min_version);
    let hi = local.max_version.min(peer.max_version);
    if lo > hi || peer.min_version > peer.max_version {
        return Err(Error::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "unsupported protocol version {} (supported {}..{})",
                range(peer.min_version, peer.max_version),
                local.min_version,
                local.max_version
            ),
        ));
    }
    if peer.name.is_empty()
        || peer.name.len() > MAX_NAME_LEN
        || peer.name.chars().any(char::is_control)
    {
        return Err(Error::new(
            ErrorCode::HandshakeRejected,
            format!("invalid peer name {:?}", peer.name),
        ));
    }
    if (peer.max_frame as usize) < MIN_MAX_FRAME {
        return Err(Error::new(
            ErrorCode::HandshakeRejected,
            format!(
                "peer's max_frame {} is below the minimum of {MIN_MAX_FRAME}",
                peer.max_frame
            ),
        ));
    }
    if peer.name == local.name {
        return Err(Error::new(
            ErrorCode::HandshakeRejected,
            format!(
                "peer has this endpoint's own name {:?} (connected to itself, or a duplicate name)",
                peer.name
            ),
        ));
    }
    Ok(Agreed { version: hi, peer })
}

impl Frame {
    /// The payload of a frame that carries one (MESSAGE and
    /// SHORT_MESSAGE excepted: the read loop handles those itself).
    pub fn payload_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Frame::Request { payload, .. }
            | Frame::Result { payload, .. }
            | Frame::StreamOpen { payload, .. }
            | Frame::StreamData { payload, .. } => Some(payload),
            _ => None,
        }
    }
}

/// The kind of a frame, for logs.
pub fn frame_kind(f: &Frame) -> Kind {
    match f {
        Frame::Hello(_) => Kind::Hello,
        Frame::Close { .. } => Kind::Close,
        Frame::Ping(_) => Kind::Ping,
        Frame::Pong(_) => Kind::Pong,
        Frame::Declare(_) => Kind::Declare,
        Frame::SnapshotEnd => Kind::SnapshotEnd,
        Frame::Message { .. } => Kind::Message,
        Frame::Request { .. } => Kind::Request,
        Frame::Result { .. } => Kind::Result,
        Frame::Cancel(_) => Kind::Cancel,
        Frame::Alias { .. } => Kind::Alias,
        Frame::ShortMessage { .. } => Kind::ShortMessage,
        Frame::StreamOpen { .. } => Kind::StreamOpen,
        Frame::StreamAccept { .. } => Kind::StreamAccept,
        Frame::StreamData { .. } => Kind::StreamData,
        Frame::StreamCredit { .. } => Kind::StreamCredit,
        Frame::StreamEnd { .. } => Kind::StreamEnd,
        Frame::Credit(_) => Kind::Credit,
        Frame::CreditAck(_) => Kind::CreditAck,
        Frame::Tally { .. } => Kind::Tally,
    }
}

#[cfg(test)]
mod tests;
