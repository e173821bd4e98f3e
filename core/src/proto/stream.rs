//! Stream frames (STREAM_OPEN, STREAM_ACCEPT, STREAM_DATA, STREAM_CREDIT,
//! STREAM_END): their headers on the wire.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use super::header::Reader;
use super::{
    encode_head, truncate, wire_code, Frame, Kind, NonceHdr, ResultHdr, FRAME_PREFIX,
    MAX_REASON_LEN,
};
use crate::error::{Error, ErrorCode, Result};

#[derive(Serialize)]
struct StreamOpenHdr<'a> {
    id: u64,
    path: &'a str,
    timeout_ms: u64,
    window: u64,
}
#[derive(Serialize)]
struct PairHdr {
    id: u64,
    n: u64,
}
/// Writes the head of a STREAM_DATA frame (`[id]`) whose payload of
/// `payload_len` bytes the caller appends next.
pub fn encode_stream_data_head(buf: &mut BytesMut, id: u64, payload_len: usize) -> Result<()> {
    encode_head(buf, Kind::StreamData, &NonceHdr { nonce: id }, payload_len)
}

/// The encoded size of a STREAM_DATA frame's head (prefix and header) at most.
pub const STREAM_DATA_HEAD_MAX: usize = FRAME_PREFIX + 1 + 9;

/// Encodes one of the stream frames.
pub(super) fn encode(buf: &mut BytesMut, frame: &Frame) -> Result<()> {
    match frame {
        Frame::StreamOpen {
            id,
            path,
            timeout_ms,
            window,
            payload,
        } => {
            encode_head(
                buf,
                Kind::StreamOpen,
                &StreamOpenHdr {
                    id: *id,
                    path,
                    timeout_ms: *timeout_ms,
                    window: *window,
                },
                payload.len(),
            )?;
            buf.put_slice(payload);
            Ok(())
        }
        Frame::StreamAccept { id, window } => encode_head(
            buf,
            Kind::StreamAccept,
            &PairHdr {
                id: *id,
                n: *window,
            },
            0,
        ),
        Frame::StreamData { id, payload } => {
            encode_stream_data_head(buf, *id, payload.len())?;
            buf.put_slice(payload);
            Ok(())
        }
        Frame::StreamCredit { id, bytes } => {
            encode_head(buf, Kind::StreamCredit, &PairHdr { id: *id, n: *bytes }, 0)
        }
        Frame::StreamEnd { id, code, message } => encode_head(
            buf,
            Kind::StreamEnd,
            &ResultHdr {
                id: *id,
                code: *code,
                message: message.as_str().into(),
            },
            0,
        ),
        other => Err(Error::new(
            ErrorCode::Internal,
            format!("{} is not a stream frame", super::frame_kind(other).name()),
        )),
    }
}

/// Parses the header of a stream frame of `kind` whose payload is `payload`.
pub(super) fn parse(kind: Kind, r: &mut Reader<'_>, payload: Bytes) -> Result<Frame> {
    Ok(match kind {
        Kind::StreamOpen => {
            r.tuple(4, "[id, path, timeout_ms, window]")?;
            Frame::StreamOpen {
                id: r.uint("id")?,
                path: r.str("path")?.to_owned(),
                timeout_ms: r.uint("timeout_ms")?,
                window: r.uint("window")?,
                payload,
            }
        }
        Kind::StreamAccept => {
            r.tuple(2, "[id, window]")?;
            Frame::StreamAccept {
                id: r.uint("id")?,
                window: r.uint("window")?,
            }
        }
        Kind::StreamData => {
            r.tuple(1, "[id]")?;
            Frame::StreamData {
                id: r.uint("id")?,
                payload,
            }
        }
        Kind::StreamCredit => {
            r.tuple(2, "[id, bytes]")?;
            Frame::StreamCredit {
                id: r.uint("id")?,
                bytes: r.uint("bytes")?,
            }
        }
        Kind::StreamEnd => {
            r.tuple(3, "[id, code, message]")?;
            Frame::StreamEnd {
                id: r.uint("id")?,
                code: wire_code(r.uint("code")?),
                message: truncate(r.str("message")?, MAX_REASON_LEN).to_owned(),
            }
        }
        other => {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("{} is not a stream frame", other.name()),
            ))
        }
    })
}
