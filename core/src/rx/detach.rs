//! Payloads out of a shared receive chunk, copied when keeping the chunk
//! would cost too much memory.

use bytes::{Bytes, BytesMut};

/// A received payload may keep the whole chunk it was read in alive (up to
/// a megabyte) for as long as a queue holds it. One that is less than a
/// quarter of its chunk is copied out, so what a queue holds is at most
/// four times the payload bytes it counts (docs/RELIABILITY.md,
/// "Amplification budget").
const DETACH_RATIO: usize = 4;

pub(super) fn detach(payload: Bytes, chunk_len: usize) -> Bytes {
    if payload.len().saturating_mul(DETACH_RATIO) < chunk_len {
        Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

/// [`detach`] for a run of messages: copied together into one buffer.
pub(super) fn detach_run(payloads: &mut [Bytes], chunk_len: usize) {
    let total: usize = payloads.iter().map(Bytes::len).sum();
    if total.saturating_mul(DETACH_RATIO) >= chunk_len {
        return;
    }
    let mut buf = BytesMut::with_capacity(total);
    for p in payloads.iter() {
        buf.extend_from_slice(p);
    }
    let buf = buf.freeze();
    let mut at = 0;
    for p in payloads.iter_mut() {
        let n = p.len();
        *p = buf.slice(at..at + n);
        at += n;
    }
}
