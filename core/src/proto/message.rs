//! Messages on the wire: MESSAGE's hand-written head (the hot path), and
//! the compact SHORT_MESSAGE on an aliased path.

use bytes::{BufMut, BytesMut};

use super::{finish_prefix, Head, Kind, FRAME_PREFIX};
use crate::error::{Error, ErrorCode, Result};

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

/// The most aliases one side may name on a connection; an ALIAS at or
/// past it is a protocol error.
pub const MAX_ALIASES: u64 = 4096;

/// The most path bytes one side may alias on a connection in all.
pub const MAX_ALIAS_BYTES: usize = 256 * 1024;

/// The encoded size of a SHORT_MESSAGE frame.
pub fn short_message_frame_len(payload_len: usize) -> usize {
    7 + payload_len
}

/// Writes the head of a SHORT_MESSAGE frame (`len`, kind, alias) whose
/// payload of `payload_len` bytes the caller appends next.
pub fn encode_short_message_head(buf: &mut BytesMut, alias: u16, payload_len: usize) -> Result<()> {
    let Ok(len) = u32::try_from(3 + payload_len) else {
        return Err(Error::new(
            ErrorCode::MessageTooLarge,
            format!("a frame of {payload_len} bytes does not fit the 32-bit length field"),
        ));
    };
    buf.put_u32(len);
    buf.put_u8(Kind::ShortMessage as u8);
    buf.put_u16(alias);
    Ok(())
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
