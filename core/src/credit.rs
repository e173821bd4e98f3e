//! Credit per subscription (protocol v2): the accounting on both ends of a
//! link, without I/O.
//!
//! A `Block` subscription opens a slot on every link. The subscribing side
//! ([`CreditIn`]) grants the publishing side a window of messages and
//! payload bytes; the publishing side ([`CreditOut`]) sends a message
//! matching the slot's pattern only while the slot has credit, and waits
//! (or counts a drop) otherwise. The subscribing side never stops reading
//! the link for a full subscription: what does not fit in the queue waits
//! in the slot's park, at most the window, and credit goes back as messages
//! leave the link for the queue. A peer that sends past its credit breaks
//! the protocol. See docs/PROTOCOL.md, "Credit".

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, ErrorCode, Result};
use crate::inbox::{Inbox, Meta};
use crate::path::matches_text;
use crate::proto::CreditItem;

/// Largest credit a slot may hold, in messages and in bytes: a grant that
/// would pass it breaks the protocol (credit never overflows).
pub(crate) const MAX_CREDIT: u64 = 1 << 40;

fn proto_err(detail: String) -> Error {
    Error::new(ErrorCode::ProtocolError, detail)
}

// ---------------------------------------------------------------- sending

struct OutSlot {
    sub: u64,
    pattern: Box<str>,
    msgs: u64,
    /// May go below zero: a message is sent while any byte credit is left.
    bytes: i64,
    /// A publisher gave up waiting for this slot's credit: the next ones
    /// drop at once until credit comes.
    stalled: bool,
    /// Out of credit after a wait, the publisher cuts the link instead.
    disconnect: bool,
}

/// The slots a peer opened on this link, as the publishing side counts
/// them (kept under the link's send lock, so a check, its debit and the
/// frame's queueing are one step).
#[derive(Default)]
pub(crate) struct CreditOut {
    /// The slots, found by subscription id through `index`; a message's
    /// slots are found by position (no hashing per message).
    slots: Vec<OutSlot>,
    index: HashMap<u64, usize>,
    /// Moves whenever a slot opens or closes (positions change).
    epoch: u64,
    /// The positions of the slots matching the last route checked, at
    /// `epoch` (the route is held, and compared by identity first).
    memo: Option<(Arc<Meta>, u64, Vec<usize>)>,
}

/// What a message may do on a link, as far as credit goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Send it (its credit is taken).
    Send,
    /// A slot it matches has no credit; `stalled` if a publisher already
    /// gave up waiting for it.
    NoCredit { stalled: bool },
}

impl CreditOut {
    /// Applies a peer's CREDIT items. Returns the slots opened (to be
    /// acknowledged) and whether any credit arrived.
    pub(crate) fn apply(
        &mut self,
        items: Vec<CreditItem>,
        max_slots: usize,
    ) -> Result<(Vec<u64>, bool)> {
        let mut opened = Vec::new();
        let mut granted = false;
        for it in items {
            match it {
                CreditItem::Open {
                    sub,
                    msgs,
                    bytes,
                    pattern,
                    disconnect,
                } => {
                    crate::path::validate_pattern(&pattern).map_err(|e| {
                        proto_err(format!("credit slot with invalid pattern: {}", e.detail()))
                    })?;
                    if self.index.contains_key(&sub) {
                        return Err(proto_err(format!("credit slot {sub} opened twice")));
                    }
                    if self.slots.len() >= max_slots {
                        return Err(proto_err(format!(
                            "peer exceeded the limit of {max_slots} credit slots"
                        )));
                    }
                    check_grant(msgs, bytes, 0, 0)?;
                    self.index.insert(sub, self.slots.len());
                    self.slots.push(OutSlot {
                        sub,
                        pattern: pattern.into(),
                        msgs,
                        bytes: bytes as i64,
                        stalled: false,
                        disconnect,
                    });
                    self.epoch += 1;
                    opened.push(sub);
                    granted = true;
                }
                CreditItem::Grant { sub, msgs, bytes } => {
                    // A grant for a slot closed meanwhile is stale, not wrong.
                    if let Some(s) = self.index.get(&sub).map(|&i| &mut self.slots[i]) {
                        check_grant(msgs, bytes, s.msgs, s.bytes.max(0) as u64)?;
                        s.msgs += msgs;
                        s.bytes += bytes as i64;
                        s.stalled = false;
                        granted = true;
                    }
                }
                CreditItem::Close { sub } => {
                    if let Some(i) = self.index.remove(&sub) {
                        self.slots.swap_remove(i);
                        if let Some(moved) = self.slots.get(i) {
                            self.index.insert(moved.sub, i);
                        }
                        self.epoch += 1;
                        granted = true;
                    }
                }
            }
        }
        Ok((opened, granted))
    }

    /// Takes the credit for a message of `len` payload bytes on `meta`'s
    /// path, if every slot it matches has some.
    pub(crate) fn take(&mut self, meta: &Arc<Meta>, len: usize) -> Check {
        if self.slots.is_empty() {
            return Check::Send;
        }
        let path = &*meta.path;
        let fresh = matches!(&self.memo,
            Some((m, e, _)) if *e == self.epoch && (Arc::ptr_eq(m, meta) || *m.path == *path));
        if !fresh {
            // Reuses the memo's buffer: a publisher alternating paths does
            // not allocate per message.
            let (m, e, at) = self
                .memo
                .get_or_insert_with(|| (meta.clone(), 0, Vec::new()));
            if !Arc::ptr_eq(m, meta) {
                *m = meta.clone();
            }
            *e = self.epoch;
            at.clear();
            at.extend(
                self.slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| matches_text(&s.pattern, path))
                    .map(|(i, _)| i),
            );
        }
        let Some((_, _, at)) = &self.memo else {
            return Check::Send;
        };
        let mut stalled = false;
        let mut short = false;
        for &i in at {
            let s = &self.slots[i];
            if s.msgs == 0 || s.bytes <= 0 {
                short = true;
                stalled |= s.stalled;
            }
        }
        if short {
            return Check::NoCredit { stalled };
        }
        for &i in at {
            let s = &mut self.slots[i];
            s.msgs -= 1;
            s.bytes -= len as i64;
        }
        Check::Send
    }

    /// Marks the slots `path` lacks credit in as stalled; true if one of
    /// them asks for the link to be cut instead (`Disconnect`).
    pub(crate) fn stall(&mut self, path: &str) -> bool {
        let mut cut = false;
        for s in &mut self.slots {
            if (s.msgs == 0 || s.bytes <= 0) && matches_text(&s.pattern, path) {
                s.stalled = true;
                cut |= s.disconnect;
            }
        }
        cut
    }
}

fn check_grant(msgs: u64, bytes: u64, have_msgs: u64, have_bytes: u64) -> Result<()> {
    if msgs > MAX_CREDIT - have_msgs.min(MAX_CREDIT)
        || bytes > MAX_CREDIT - have_bytes.min(MAX_CREDIT)
    {
        return Err(proto_err(format!(
            "credit grant of {msgs} messages / {bytes} bytes overflows the slot (limit {MAX_CREDIT})"
        )));
    }
    Ok(())
}

// -------------------------------------------------------------- receiving

struct Parked {
    meta: Arc<Meta>,
    payload: Bytes,
    /// Sent under the slot's credit (arrived after its CREDIT_ACK): leaving
    /// the park gives credit back.
    counted: bool,
}

struct InSlot {
    inbox: Arc<Inbox>,
    /// The peer acknowledged the slot: every message since is counted.
    active: bool,
    /// Credit the peer holds, as this side counts it.
    msgs: u64,
    bytes: i64,
    window: (u64, u64),
    /// Credit released and not yet granted.
    pend: (u64, u64),
    park: VecDeque<Parked>,
    park_bytes: usize,
    /// A task is moving the park into the queue.
    draining: bool,
}

impl InSlot {
    fn release(&mut self, msgs: u64, bytes: u64, grants: &mut Vec<CreditItem>, sub: u64) {
        self.pend.0 += msgs;
        self.pend.1 += bytes;
        // Batched: a grant goes out once a quarter of the window is free.
        if self.pend.0 * 4 >= self.window.0 || self.pend.1 * 4 >= self.window.1 {
            let (m, b) = std::mem::take(&mut self.pend);
            self.msgs += m;
            self.bytes += b as i64;
            grants.push(CreditItem::Grant {
                sub,
                msgs: m,
                bytes: b,
            });
        }
    }
}

/// The slots this endpoint's subscriptions hold on one link, as the
/// subscribing side counts them, and what waits in each slot's park.
#[derive(Default)]
pub(crate) struct CreditIn {
    /// The link's id (its turn among a subscription's parks).
    link: u64,
    slots: HashMap<u64, InSlot>,
}

impl CreditIn {
    /// The slots of link `link`.
    pub(crate) fn new(link: u64) -> CreditIn {
        CreditIn {
            link,
            slots: HashMap::new(),
        }
    }
}

/// A run that broke the protocol, and what was done with the part of it
/// that did not.
#[derive(Debug)]
pub(crate) struct DeliverError {
    pub out: Delivered,
    pub error: Error,
}

/// What [`CreditIn::deliver`] did with a run.
#[derive(Debug)]
pub(crate) struct Delivered {
    /// Messages dropped by the queue's policy (never for `Block`).
    pub dropped: u64,
    /// The slot's park needs a task to move it into the queue.
    pub start_drain: bool,
}

impl CreditIn {
    /// A message on `path` of `len` payload bytes that this side dropped
    /// before any subscription saw it (the access rules, the rate limit):
    /// the credit the peer spent on it in each slot it matches comes back,
    /// so what is dropped never stalls the subscriptions it would have
    /// reached.
    pub(crate) fn forfeit(&mut self, path: &str, len: usize, grants: &mut Vec<CreditItem>) {
        for (&sub, slot) in self.slots.iter_mut() {
            if slot.active && slot.inbox.pattern.matches(path) {
                slot.msgs = slot.msgs.saturating_sub(1);
                slot.bytes -= len as i64;
                slot.release(1, len as u64, grants, sub);
            }
        }
    }

    /// Opens a slot for `inbox` (a `Block` subscription); returns the CREDIT
    /// item that tells the peer, or `None` if the subscription has no slot.
    pub(crate) fn open(&mut self, inbox: &Arc<Inbox>) -> Option<CreditItem> {
        let window = inbox.credit_window()?;
        self.slots.insert(
            inbox.id,
            InSlot {
                inbox: inbox.clone(),
                active: false,
                msgs: window.0,
                bytes: window.1 as i64,
                window,
                pend: (0, 0),
                park: VecDeque::new(),
                park_bytes: 0,
                draining: false,
            },
        );
        Some(CreditItem::Open {
            sub: inbox.id,
            msgs: window.0,
            bytes: window.1,
            pattern: inbox.pattern.as_str().to_owned(),
            disconnect: inbox.disconnects(),
        })
    }

    /// Closes the slot of subscription `sub`; what its park held is dropped
    /// with the subscription. Returns the CREDIT item, if it had a slot.
    pub(crate) fn close(&mut self, sub: u64) -> Option<CreditItem> {
        let slot = self.slots.remove(&sub)?;
        slot.inbox.parked.fetch_sub(slot.park.len() as u64, Relaxed);
        slot.inbox.end_turn(self.link);
        Some(CreditItem::Close { sub })
    }

    /// The peer started counting these slots.
    pub(crate) fn acked(&mut self, subs: &[u64]) {
        for s in subs {
            if let Some(slot) = self.slots.get_mut(s) {
                slot.active = true;
            }
        }
    }

    /// Messages waiting in `sub`'s park, and the most it may hold.
    pub(crate) fn parked(&self, sub: u64) -> (u64, u64) {
        self.slots
            .get(&sub)
            .map_or((0, 0), |s| (s.park.len() as u64, 2 * s.window.0 + 1))
    }

    /// True if `sub` has a slot on this link.
    pub(crate) fn has(&self, sub: u64) -> bool {
        self.slots.contains_key(&sub)
    }

    /// Delivers a run of messages on one path to the slotted subscription
    /// `sub`: counts them against the peer's credit, queues what fits and
    /// parks the rest (in order). `take` moves payloads out of `payloads`.
    /// Credit to give back is added to `grants`. A run past the peer's
    /// credit (or, before the slot is acknowledged, past twice the window
    /// waiting in the park) breaks the protocol.
    pub(crate) fn deliver(
        &mut self,
        sub: u64,
        meta: &Arc<Meta>,
        payloads: &mut [Bytes],
        take: bool,
        grants: &mut Vec<CreditItem>,
    ) -> std::result::Result<Delivered, DeliverError> {
        let mut out = Delivered {
            dropped: 0,
            start_drain: false,
        };
        let Some(slot) = self.slots.get_mut(&sub) else {
            return Ok(out);
        };
        let counted = slot.active;
        // What is within the peer's credit is delivered even when the rest
        // of the run breaks the protocol.
        let mut past_credit = None;
        let mut payloads = payloads;
        if counted {
            let mut within = 0;
            for p in payloads.iter() {
                if slot.msgs == 0 || slot.bytes <= 0 {
                    past_credit = Some(proto_err(format!(
                        "peer sent past its credit for subscription {} ({})",
                        sub,
                        slot.inbox.pattern.as_str()
                    )));
                    break;
                }
                slot.msgs -= 1;
                slot.bytes -= p.len() as i64;
                within += 1;
            }
            payloads = &mut payloads[..within];
        }
        let mut used = 0;
        // Straight into the queue only while no park waits, on any link.
        if slot.park.is_empty() && slot.inbox.parked.load(Relaxed) == 0 {
            let total: usize = payloads.iter().map(Bytes::len).sum();
            match slot.inbox.push_run(meta, payloads, take) {
                Ok((n, dropped)) => {
                    used = n;
                    out.dropped = dropped;
                }
                // Closed: the subscription is ending; nothing is owed.
                Err(()) => return Ok(out),
            }
            if counted && used > 0 {
                // Pushed payloads may have been moved out; the rest were not.
                let left: usize = payloads[used..].iter().map(Bytes::len).sum();
                slot.release(used as u64, (total - left) as u64, grants, sub);
            }
        }
        let parked = payloads.len() - used;
        if parked > 0 {
            if slot.park.is_empty() {
                slot.inbox.take_turn(self.link);
            }
            slot.inbox.parked.fetch_add(parked as u64, Relaxed);
        }
        for p in &mut payloads[used..] {
            let payload = if take { std::mem::take(p) } else { p.clone() };
            slot.park_bytes += payload.len();
            slot.park.push_back(Parked {
                meta: meta.clone(),
                payload,
                counted,
            });
        }
        // Even when this run breaks the protocol below, what is parked
        // drains: a park that never drains would hold every other link of
        // the subscription behind its turn.
        if !slot.park.is_empty() && !slot.draining {
            slot.draining = true;
            out.start_drain = true;
        }
        if !counted
            && (slot.park.len() as u64 > 2 * slot.window.0
                || slot.park_bytes as u64 > 2 * slot.window.1)
        {
            let error = proto_err(format!(
                "peer sent {} messages ({} bytes) for subscription {} before it acknowledged the credit slot",
                slot.park.len(),
                slot.park_bytes,
                sub
            ));
            return Err(DeliverError { out, error });
        }
        match past_credit {
            Some(e) => Err(DeliverError { out, error: e }),
            None => Ok(out),
        }
    }

    /// Moves what fits from `sub`'s park into its queue, in order. Returns
    /// the subscription's inbox while messages remain parked (wait for its
    /// space, then call again); `None` when the park is empty (the drain is
    /// over) or the slot is gone.
    pub(crate) fn drain(&mut self, sub: u64, grants: &mut Vec<CreditItem>) -> Option<Arc<Inbox>> {
        let slot = self.slots.get_mut(&sub)?;
        if !slot.park.is_empty() && !slot.inbox.is_turn(self.link) {
            // An older park of this subscription goes first.
            return Some(slot.inbox.clone());
        }
        while let Some(front) = slot.park.front() {
            let meta = front.meta.clone();
            let counted = front.counted;
            // A run: consecutive parked messages on one path, counted alike.
            let n = slot
                .park
                .iter()
                .take_while(|p| Arc::ptr_eq(&p.meta, &meta) && p.counted == counted)
                .count();
            // Moved out, not shared (no count per payload); what does not
            // fit goes back below.
            let mut run: Vec<Bytes> = slot
                .park
                .iter_mut()
                .take(n)
                .map(|p| std::mem::take(&mut p.payload))
                .collect();
            let total: usize = run.iter().map(Bytes::len).sum();
            let used = match slot.inbox.push_run(&meta, &mut run, true) {
                Ok((used, _)) => used,
                Err(()) => {
                    slot.inbox.parked.fetch_sub(slot.park.len() as u64, Relaxed);
                    slot.park.clear();
                    slot.park_bytes = 0;
                    break;
                }
            };
            let mut left = 0;
            for (p, b) in slot.park.iter_mut().zip(&mut run).skip(used) {
                left += b.len();
                p.payload = std::mem::take(b);
            }
            let bytes = total - left;
            slot.park.drain(..used);
            slot.park_bytes -= bytes;
            slot.inbox.parked.fetch_sub(used as u64, Relaxed);
            if counted && used > 0 {
                slot.release(used as u64, bytes as u64, grants, sub);
            }
            if used < n {
                return Some(slot.inbox.clone());
            }
        }
        slot.draining = false;
        slot.inbox.end_turn(self.link);
        None
    }
}

#[cfg(test)]
mod tests;
