//! Flow control on the wire (protocol v2): what CREDIT and CREDIT_ACK
//! frames carry.
//!
//! A subscription that must not lose messages (the `Block` policy) opens a
//! credit slot on each link: the subscribing side grants the publishing
//! side a number of messages and payload bytes; the publishing side sends a
//! message matching the slot's pattern only while the slot has credit, and
//! the subscribing side gives credit back as the messages leave the link
//! for the subscription's queue. The publishing side answers each opened
//! slot with a CREDIT_ACK queued at the moment it starts counting, so both
//! sides agree on which messages the slot's credit covers.

use super::header::Reader;
use crate::error::Result;

/// One item of a CREDIT frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditItem {
    /// A new slot for the subscription `sub` on `pattern`, with its first
    /// grant. Wire: `[sub, msgs, bytes, pattern]`, or `[sub, msgs, bytes,
    /// pattern, 1]` for a subscription whose publisher cuts the link when
    /// it runs out of credit (the `Disconnect` policy).
    Open {
        /// The subscription's id (the sender's own numbering).
        sub: u64,
        /// Messages granted.
        msgs: u64,
        /// Payload bytes granted.
        bytes: u64,
        /// The subscription's pattern (validated by the receiver).
        pattern: String,
        /// A publisher that waited in vain for this slot's credit closes
        /// the link instead of dropping the message.
        disconnect: bool,
    },
    /// More credit for an open slot. Wire: `[sub, msgs, bytes]`.
    Grant {
        /// The subscription's id.
        sub: u64,
        /// Messages granted.
        msgs: u64,
        /// Payload bytes granted.
        bytes: u64,
    },
    /// The slot is closed (the subscription ended). Wire: `[sub]`.
    Close {
        /// The subscription's id.
        sub: u64,
    },
}

/// The smallest encoding of an item: `91 00`.
const MIN_ITEM: usize = 2;

/// Encodes the header of a CREDIT frame.
pub(super) fn encode_items(buf: &mut Vec<u8>, items: &[CreditItem]) {
    use rmp::encode as e;
    // Writing into a Vec cannot fail.
    let _ = e::write_array_len(buf, items.len() as u32);
    for it in items {
        match it {
            CreditItem::Open {
                sub,
                msgs,
                bytes,
                pattern,
                disconnect,
            } => {
                let _ = e::write_array_len(buf, if *disconnect { 5 } else { 4 });
                let _ = e::write_uint(buf, *sub);
                let _ = e::write_uint(buf, *msgs);
                let _ = e::write_uint(buf, *bytes);
                let _ = e::write_str(buf, pattern);
                if *disconnect {
                    let _ = e::write_uint(buf, 1);
                }
            }
            CreditItem::Grant { sub, msgs, bytes } => {
                let _ = e::write_array_len(buf, 3);
                let _ = e::write_uint(buf, *sub);
                let _ = e::write_uint(buf, *msgs);
                let _ = e::write_uint(buf, *bytes);
            }
            CreditItem::Close { sub } => {
                let _ = e::write_array_len(buf, 1);
                let _ = e::write_uint(buf, *sub);
            }
        }
    }
}

/// Reads a CREDIT header: a list of items, each checked for its shape. The
/// count is checked against the bytes that follow before anything is kept.
pub(super) fn parse_items(r: &mut Reader<'_>) -> Result<Vec<CreditItem>> {
    let n = r.array("the CREDIT list")?;
    r.check_count(n, MIN_ITEM, "the CREDIT list")?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.array("a CREDIT item")?;
        let sub = r.uint("sub")?;
        let item = match len {
            1 => CreditItem::Close { sub },
            3..=5 => {
                let msgs = r.uint("msgs")?;
                let bytes = r.uint("bytes")?;
                if len >= 4 {
                    let pattern = r.str("pattern")?.to_owned();
                    let disconnect = if len == 5 {
                        match r.uint("policy")? {
                            1 => true,
                            p => {
                                return Err(r.err(format!(
                                    "a CREDIT slot's policy is 1 (disconnect) or absent, got {p}"
                                )))
                            }
                        }
                    } else {
                        false
                    };
                    CreditItem::Open {
                        sub,
                        msgs,
                        bytes,
                        pattern,
                        disconnect,
                    }
                } else {
                    CreditItem::Grant { sub, msgs, bytes }
                }
            }
            n => {
                return Err(r.err(format!(
                    "a CREDIT item is [sub], [sub, msgs, bytes] or [sub, msgs, bytes, pattern(, 1)], got an array of {n}"
                )))
            }
        };
        items.push(item);
    }
    Ok(items)
}

/// Encodes the header of a CREDIT_ACK frame: the slots opened.
pub(super) fn encode_ack(buf: &mut Vec<u8>, subs: &[u64]) {
    let _ = rmp::encode::write_array_len(buf, subs.len() as u32);
    for s in subs {
        let _ = rmp::encode::write_uint(buf, *s);
    }
}

/// Reads a CREDIT_ACK header.
pub(super) fn parse_ack(r: &mut Reader<'_>) -> Result<Vec<u64>> {
    let n = r.array("the CREDIT_ACK list")?;
    let mut subs = Vec::with_capacity(n);
    for _ in 0..n {
        subs.push(r.uint("sub")?);
    }
    Ok(subs)
}
