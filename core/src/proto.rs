//! Wire protocol v1, free of sockets (sans-IO).
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
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// Magic string carried in every HELLO.
pub const MAGIC: &str = "NTCH";
/// Lowest protocol version this build speaks.
pub const VERSION_MIN: u16 = 1;
/// Highest protocol version this build speaks.
pub const VERSION_MAX: u16 = 1;
/// Bytes before the header: `len` (4), `kind` (1), `hlen` (4).
pub const FRAME_PREFIX: usize = 9;
/// Frame size limit before the handshake completes (a HELLO is small).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;
/// The smallest `max_frame` an endpoint may advertise.
pub const MIN_MAX_FRAME: usize = 4096;
/// Longest endpoint name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Frame kinds. Numbers are fixed forever; gaps are reserved:
/// `0x30..=0x3F` streams, `0x40..=0x4F` credits (flow control),
/// `0x50..=0x5F` authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Handshake: magic, versions, name, limits.
    Hello = 0x01,
    /// Orderly close with a code and reason.
    Close = 0x02,
    /// Liveness and RTT probe.
    Ping = 0x03,
    /// Answer to a ping.
    Pong = 0x04,
    /// A batch of interest/intent declarations and undeclarations.
    Declare = 0x10,
    /// End of the initial declaration snapshot.
    SnapshotEnd = 0x11,
    /// A published message.
    Message = 0x20,
    /// A request.
    Request = 0x21,
    /// A request's result (ok or error).
    Result = 0x22,
    /// Cancels a request.
    Cancel = 0x23,
}

impl Kind {
    fn from_u8(b: u8) -> std::result::Result<Kind, String> {
        Ok(match b {
            0x01 => Kind::Hello,
            0x02 => Kind::Close,
            0x03 => Kind::Ping,
            0x04 => Kind::Pong,
            0x10 => Kind::Declare,
            0x11 => Kind::SnapshotEnd,
            0x20 => Kind::Message,
            0x21 => Kind::Request,
            0x22 => Kind::Result,
            0x23 => Kind::Cancel,
            0x30..=0x3F => {
                return Err(format!(
                    "frame kind 0x{b:02x} (streams) is not in protocol v1"
                ))
            }
            0x40..=0x4F => {
                return Err(format!(
                    "frame kind 0x{b:02x} (credits) is not in protocol v1"
                ))
            }
            0x50..=0x5F => {
                return Err(format!("frame kind 0x{b:02x} (auth) is not in protocol v1"))
            }
            _ => return Err(format!("unknown frame kind 0x{b:02x}")),
        })
    }
}

/// What a declaration declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclKind {
    /// "I want messages matching this pattern" (a subscription).
    Interest,
    /// "I publish on this path or pattern".
    Publisher,
    /// "I answer requests matching this pattern".
    Service,
}

impl DeclKind {
    fn to_u8(self) -> u8 {
        match self {
            DeclKind::Interest => 1,
            DeclKind::Publisher => 2,
            DeclKind::Service => 3,
        }
    }
    fn from_u8(b: u8) -> Option<DeclKind> {
        match b {
            1 => Some(DeclKind::Interest),
            2 => Some(DeclKind::Publisher),
            3 => Some(DeclKind::Service),
            _ => None,
        }
    }
}

/// One declaration or undeclaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decl {
    /// true: declare; false: undeclare.
    pub declare: bool,
    /// What is declared.
    pub kind: DeclKind,
    /// The pattern (validated by the receiver).
    pub pattern: String,
}

/// The HELLO header (a msgpack map; unknown keys are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: String,
    /// Lowest version the sender speaks.
    pub min_version: u16,
    /// Highest version the sender speaks.
    pub max_version: u16,
    /// The sender's endpoint name.
    pub name: String,
    /// Largest frame (prefix included) the sender accepts.
    pub max_frame: u32,
    /// The sender's heartbeat interval in milliseconds (0: none).
    pub heartbeat_ms: u32,
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
    /// Declarations.
    Declare(Vec<Decl>),
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
}

#[derive(Serialize, Deserialize)]
struct CloseHdr<'a> {
    code: u16,
    #[serde(borrow)]
    reason: std::borrow::Cow<'a, str>,
}
#[derive(Serialize, Deserialize)]
struct NonceHdr {
    nonce: u64,
}
#[derive(Serialize, Deserialize)]
struct RequestHdr<'a> {
    id: u64,
    #[serde(borrow)]
    path: std::borrow::Cow<'a, str>,
    timeout_ms: u64,
}
#[derive(Serialize, Deserialize)]
struct ResultHdr<'a> {
    id: u64,
    code: u16,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}
#[derive(Serialize, Deserialize)]
struct MessageHdr<'a> {
    #[serde(borrow)]
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

/// The encoded size of a MESSAGE frame (prefix included).
pub fn message_frame_len(path: &str, payload_len: usize) -> usize {
    FRAME_PREFIX + 1 + str_header_len(path.len()) + path.len() + payload_len
}

fn str_header_len(n: usize) -> usize {
    match n {
        0..=31 => 1,
        32..=255 => 2,
        256..=65535 => 3,
        _ => 5,
    }
}

/// Writes the head of a MESSAGE frame. Hand-written because it is the hot
/// path; the tests check it against rmp-serde byte for byte.
pub fn encode_message_head(buf: &mut BytesMut, path: &str, payload_len: usize) -> Result<()> {
    let start = buf.len();
    let n = path.len();
    buf.reserve(FRAME_PREFIX + 6 + n);
    buf.put_slice(&[0; FRAME_PREFIX]);
    buf.put_u8(0x91); // fixarray of 1
    match n {
        0..=31 => buf.put_u8(0xa0 | n as u8),
        32..=255 => {
            buf.put_u8(0xd9);
            buf.put_u8(n as u8)
        }
        256..=65535 => {
            buf.put_u8(0xda);
            buf.put_u16(n as u16)
        }
        _ => {
            buf.put_u8(0xdb);
            buf.put_u32(n as u32)
        }
    }
    buf.put_slice(path.as_bytes());
    let hlen = buf.len() - start - FRAME_PREFIX;
    finish_prefix(buf, start, Kind::Message, hlen, payload_len)
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
        Frame::Declare(items) => {
            let wire: Vec<(u8, u8, &str)> = items
                .iter()
                .map(|d| (d.declare as u8, d.kind.to_u8(), d.pattern.as_str()))
                .collect();
            encode_head(buf, Kind::Declare, &wire, 0)
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
    }
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
    if len < 5 {
        return Err(proto_err(format!(
            "frame length {len} is shorter than its kind and header length"
        )));
    }
    if buf.len() < 9 {
        // Check the kind early so garbage is refused on its first bytes.
        if buf.len() >= 5 {
            Kind::from_u8(buf[4]).map_err(proto_err)?;
        }
        return Ok(Peeked::NeedMore(total));
    }
    let kind = Kind::from_u8(buf[4]).map_err(proto_err)?;
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

/// The path of a MESSAGE frame whose header is the usual `[path]` with a
/// fixstr, str8 or str16 string: its byte range within `frame` (which starts
/// at the frame prefix). `None` for any other encoding (use [`parse_frame`]).
/// The bytes are not checked for UTF-8.
pub fn message_path_range(frame: &[u8], head: Head) -> Option<std::ops::Range<usize>> {
    let h = frame.get(FRAME_PREFIX..FRAME_PREFIX + head.hlen)?;
    let (start, n) = match h {
        [0x91, b, ..] if b & 0xe0 == 0xa0 => (2, (b & 0x1f) as usize),
        [0x91, 0xd9, n, ..] => (3, *n as usize),
        [0x91, 0xda, a, b, ..] => (4, u16::from_be_bytes([*a, *b]) as usize),
        _ => return None,
    };
    (start + n == h.len()).then(|| FRAME_PREFIX + start..FRAME_PREFIX + h.len())
}

/// Decodes the complete frame at `at` in `chunk`, described by `head` (from
/// [`peek`]); the payload shares `chunk`.
pub fn parse_frame(chunk: &Bytes, at: usize, head: Head) -> Result<Frame> {
    let header = &chunk[at + FRAME_PREFIX..at + FRAME_PREFIX + head.hlen];
    let payload = chunk.slice(at + FRAME_PREFIX + head.hlen..at + head.total);
    let kind = head.kind;
    Ok(match kind {
        Kind::Message => {
            let path = match message_path_range(&chunk[at..at + head.total], head) {
                Some(r) => {
                    let bytes = &chunk[at + r.start..at + r.end];
                    std::str::from_utf8(bytes)
                        .map_err(|_| proto_err("bad Message header: path is not UTF-8"))?;
                    chunk.slice(at + r.start..at + r.end)
                }
                None => {
                    let hdr: MessageHdr<'_> = de(kind, header)?;
                    chunk.slice_ref(hdr.path.as_bytes())
                }
            };
            Frame::Message { path, payload }
        }
        Kind::Hello => {
            no_payload(kind, &payload)?;
            Frame::Hello(de(kind, header)?)
        }
        Kind::Close => {
            no_payload(kind, &payload)?;
            let h: CloseHdr<'_> = de(kind, header)?;
            Frame::Close {
                code: h.code,
                reason: h.reason.into_owned(),
            }
        }
        Kind::Ping | Kind::Pong | Kind::Cancel => {
            no_payload(kind, &payload)?;
            let h: NonceHdr = de(kind, header)?;
            match kind {
                Kind::Ping => Frame::Ping(h.nonce),
                Kind::Pong => Frame::Pong(h.nonce),
                _ => Frame::Cancel(h.nonce),
            }
        }
        Kind::Declare => {
            no_payload(kind, &payload)?;
            let items: Vec<(u8, u8, String)> = de(kind, header)?;
            let mut out = Vec::with_capacity(items.len());
            for (op, k, pattern) in items {
                let declare = match op {
                    0 => false,
                    1 => true,
                    _ => return Err(proto_err(format!("bad Declare op {op}"))),
                };
                let kind = DeclKind::from_u8(k)
                    .ok_or_else(|| proto_err(format!("bad Declare kind {k}")))?;
                out.push(Decl {
                    declare,
                    kind,
                    pattern,
                });
            }
            Frame::Declare(out)
        }
        Kind::SnapshotEnd => {
            no_payload(kind, &payload)?;
            let items: Vec<serde::de::IgnoredAny> = de(kind, header)?;
            if !items.is_empty() {
                return Err(proto_err("SnapshotEnd header must be an empty array"));
            }
            Frame::SnapshotEnd
        }
        Kind::Request => {
            let h: RequestHdr<'_> = de(kind, header)?;
            Frame::Request {
                id: h.id,
                path: h.path.into_owned(),
                timeout_ms: h.timeout_ms,
                payload,
            }
        }
        Kind::Result => {
            let h: ResultHdr<'_> = de(kind, header)?;
            Frame::Result {
                id: h.id,
                code: h.code,
                message: h.message.into_owned(),
                payload,
            }
        }
    })
}

fn no_payload(kind: Kind, payload: &Bytes) -> Result<()> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(proto_err(format!(
            "{kind:?} frame carries {} payload bytes; it must carry none",
            payload.len()
        )))
    }
}

fn de<'a, T: Deserialize<'a>>(kind: Kind, header: &'a [u8]) -> Result<T> {
    rmp_serde::from_slice(header).map_err(|e| proto_err(format!("bad {kind:?} header: {e}")))
}

/// What a completed handshake agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The protocol version both sides use.
    pub version: u16,
    /// The peer's HELLO.
    pub peer: Hello,
}

/// Formats a version range for error messages: `1` or `1..3`.
fn range(min: u16, max: u16) -> String {
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
                "expected HELLO as the first frame, got {:?}",
                frame_kind(&other)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hello() -> Hello {
        Hello {
            magic: MAGIC.into(),
            min_version: 1,
            max_version: 1,
            name: "a".into(),
            max_frame: 16 * 1024 * 1024,
            heartbeat_ms: 5000,
        }
    }

    /// The test vectors of docs/PROTOCOL.md, section "Test vectors".
    fn vectors() -> Vec<(Frame, &'static str)> {
        vec![
            (
                Frame::Hello(hello()),
                "00000051 01 0000004c 86 a56d61676963 a44e544348 ab6d696e5f76657273696f6e 01 \
                 ab6d61785f76657273696f6e 01 a46e616d65 a161 a96d61785f6672616d65 ce01000000 \
                 ac6865617274626561745f6d73 cd1388",
            ),
            (
                Frame::Close {
                    code: 0,
                    reason: "bye".into(),
                },
                "0000000b 02 00000006 92 00 a3627965",
            ),
            (Frame::Ping(7), "00000007 03 00000002 91 07"),
            (Frame::Pong(7), "00000007 04 00000002 91 07"),
            (
                Frame::Declare(vec![
                    Decl {
                        declare: true,
                        kind: DeclKind::Interest,
                        pattern: "a/*".into(),
                    },
                    Decl {
                        declare: false,
                        kind: DeclKind::Service,
                        pattern: "b".into(),
                    },
                ]),
                "00000012 10 0000000d 92 93 01 01 a3612f2a 93 00 03 a162",
            ),
            (Frame::SnapshotEnd, "00000006 11 00000001 90"),
            (
                Frame::Message {
                    path: Bytes::from_static(b"a/b"),
                    payload: Bytes::from_static(b"hi"),
                },
                "0000000c 20 00000005 91 a3612f62 6869",
            ),
            (
                Frame::Request {
                    id: 1,
                    path: "svc".into(),
                    timeout_ms: 1000,
                    payload: Bytes::from_static(b"q"),
                },
                "0000000f 21 00000009 93 01 a3737663 cd03e8 71",
            ),
            (
                Frame::Result {
                    id: 1,
                    code: 0,
                    message: String::new(),
                    payload: Bytes::from_static(b"r"),
                },
                "0000000a 22 00000004 93 01 00 a0 72",
            ),
            (
                Frame::Result {
                    id: 1,
                    code: 301,
                    message: "none".into(),
                    payload: Bytes::new(),
                },
                "0000000f 22 0000000a 93 01 cd012d a46e6f6e65",
            ),
            (Frame::Cancel(1), "00000007 23 00000002 91 01"),
        ]
    }

    #[test]
    fn test_vectors_encode_and_decode() {
        for (frame, want) in vectors() {
            let mut buf = BytesMut::new();
            encode(&mut buf, &frame).unwrap();
            assert_eq!(hex(&buf), hex(&unhex(want)), "encoding {frame:?}");
            let mut input = BytesMut::from(&unhex(want)[..]);
            assert_eq!(decode(&mut input, 1 << 20).unwrap(), Decoded::Frame(frame));
            assert!(input.is_empty());
        }
    }

    /// docs/PROTOCOL.md lists exactly these vectors, byte for byte.
    #[test]
    fn protocol_doc_lists_the_same_vectors() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
                .expect("docs/PROTOCOL.md is readable");
        let section = doc
            .split("## Test vectors")
            .nth(1)
            .expect("a Test vectors section");
        let mut in_doc: Vec<String> = section
            .lines()
            .filter(|l| l.starts_with('|'))
            .filter_map(|l| l.rsplit('`').nth(1).map(|h| h.split_whitespace().collect()))
            .collect();
        let mut in_code: Vec<String> = vectors()
            .iter()
            .map(|(_, h)| h.split_whitespace().collect())
            .collect();
        in_doc.sort();
        in_code.sort();
        assert_eq!(in_doc, in_code);
    }

    #[test]
    fn hand_written_message_head_matches_rmp_serde() {
        for n in [0usize, 1, 31, 32, 255, 256, 1024, 70000] {
            let path = "x".repeat(n);
            let mut fast = BytesMut::new();
            encode_message_head(&mut fast, &path, 3).unwrap();
            let mut slow = BytesMut::new();
            encode_head(&mut slow, Kind::Message, &MessageHdr { path: &path }, 3).unwrap();
            assert_eq!(fast, slow, "path length {n}");
            assert_eq!(fast.len() + 3, message_frame_len(&path, 3));
            fast.put_slice(b"abc");
            let Decoded::Frame(Frame::Message { path: p, payload }) =
                decode(&mut fast, 1 << 20).unwrap()
            else {
                panic!("not a message")
            };
            assert_eq!(&p[..], path.as_bytes());
            assert_eq!(&payload[..], b"abc");
        }
    }

    #[test]
    fn split_input_needs_more_then_decodes() {
        for (frame, want) in vectors() {
            let bytes = unhex(want);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                assert!(matches!(
                    decode(&mut buf, 1 << 20).unwrap(),
                    Decoded::NeedMore(_)
                ));
                buf.extend_from_slice(&bytes[cut..]);
                assert_eq!(
                    decode(&mut buf, 1 << 20).unwrap(),
                    Decoded::Frame(frame.clone())
                );
            }
        }
    }

    #[test]
    fn oversize_and_malformed_lengths_are_refused_before_allocation() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decode(&mut buf, 1 << 20).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        let mut buf = BytesMut::from(&(1u32 << 20).to_be_bytes()[..]);
        assert!(decode(&mut buf, 1 << 20)
            .unwrap_err()
            .detail()
            .contains("exceeds the limit"));
        let mut buf = BytesMut::from(&unhex("00000002 20 00")[..]);
        assert!(decode(&mut buf, 1 << 20).is_err());
        let mut buf = BytesMut::from(&unhex("00000006 20 00000009 00")[..]);
        assert!(decode(&mut buf, 1 << 20)
            .unwrap_err()
            .detail()
            .contains("header length"));
        let mut buf = BytesMut::from(&unhex("00000006 35 00000001 90")[..]);
        assert!(decode(&mut buf, 1 << 20)
            .unwrap_err()
            .detail()
            .contains("streams"));
        // HTTP and TLS garbage is refused on its first bytes.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(decode(&mut buf, HANDSHAKE_MAX_FRAME).is_err());
        let mut buf = BytesMut::from(&unhex("16030100a5010000a10303")[..]);
        assert!(decode(&mut buf, HANDSHAKE_MAX_FRAME).is_err());
    }

    #[test]
    fn msgpack_bombs_are_refused() {
        // Declare header claiming 2^32-1 items in a 6-byte header.
        let mut buf = BytesMut::from(&unhex("0000000a 10 00000005 ddffffffff")[..]);
        assert!(decode(&mut buf, 1 << 20).is_err());
        // Deeply nested arrays.
        let depth = 3000;
        let mut h = vec![0x91u8; depth];
        h.push(0x00);
        let mut frame = BytesMut::new();
        frame.put_u32((5 + h.len()) as u32);
        frame.put_u8(0x10);
        frame.put_u32(h.len() as u32);
        frame.put_slice(&h);
        assert!(decode(&mut frame, 1 << 20).is_err());
    }

    #[test]
    fn version_mismatch_message_names_both_ranges() {
        let mut theirs = hello();
        theirs.name = "b".into();
        theirs.min_version = 9;
        theirs.max_version = 9;
        let e = negotiate(&hello(), Frame::Hello(theirs.clone())).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedVersion);
        assert_eq!(
            e.detail(),
            "unsupported protocol version 9 (supported 1..1)"
        );
        // And the other side, seeing our HELLO, says the same in its terms.
        let e = negotiate(&theirs, Frame::Hello(hello())).unwrap_err();
        assert_eq!(
            e.detail(),
            "unsupported protocol version 1 (supported 9..9)"
        );
    }

    #[test]
    fn negotiate_checks_magic_name_and_first_frame() {
        let mut bad = hello();
        bad.name = "b".into();
        bad.magic = "HTTP".into();
        assert_eq!(
            negotiate(&hello(), Frame::Hello(bad)).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        assert_eq!(
            negotiate(&hello(), Frame::Hello(hello()))
                .unwrap_err()
                .code(),
            ErrorCode::HandshakeRejected
        );
        assert_eq!(
            negotiate(&hello(), Frame::Ping(1)).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        let mut ok = hello();
        ok.name = "b".into();
        assert_eq!(negotiate(&hello(), Frame::Hello(ok)).unwrap().version, 1);
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..8 {
                match decode(&mut buf, 1 << 16) {
                    Ok(Decoded::Frame(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
