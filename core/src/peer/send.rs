//! A link's bounded send queue and the writer task that drains it with
//! vectored writes.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::Notify;

use crate::credit::{Check, CreditOut};
use crate::error::Result;
use crate::inbox::Meta;
use crate::proto::{self, CreditItem, Frame};
use crate::transport::Wire;

mod alias;
mod gate;
mod writer;
use alias::{Aliases, Choice};
pub(crate) use gate::WriteThrough;
pub(crate) use writer::writer_loop;

/// Payloads at least this big are queued by reference instead of copied
/// into the send buffer, and written with the frame head in one `writev`.
const BIG_PAYLOAD: usize = 16 * 1024;

/// Small frames gather in one buffer; past this size it becomes a segment
/// of its own (ending at a frame boundary).
const SEGMENT: usize = 64 * 1024;

/// A segment buffer's capacity: a segment, plus the largest frame copied
/// into the buffer (a payload below [`BIG_PAYLOAD`] and its head), so that
/// filling one never reallocates.
const SEGMENT_CAP: usize = SEGMENT + BIG_PAYLOAD + 64;

/// Written segment buffers a link keeps for reuse. A stream through a
/// congested link cuts a segment every 64 KiB and frees one as each is
/// written; without reuse the allocator hands the pages back and faults
/// them in again, which cost a 1 KiB stream half its publisher's CPU time.
const SPARE_SEGMENTS: usize = 8;

/// While the socket pushes back (its last write had to wait), the writer
/// takes at most about this much data per write, ending at a frame
/// boundary, and looks at the control lane in between: a PING waits behind
/// at most this much of the queue (and the kernel's unsent bytes, bounded
/// by `TCP_NOTSENT_LOWAT` on TCP: `transport`). While the socket keeps up,
/// the writer takes everything queued, for the fewest and largest writes.
const TAKE_DATA: usize = 64 * 1024;

/// Which lane a frame goes in. Control frames (PING, PONG, DECLARE,
/// SNAPSHOT_END, CREDIT, TALLY, STREAM_ACCEPT, STREAM_CREDIT) carry no order with the data that matters to the
/// peer and overtake it; the rest (MESSAGE, REQUEST, RESULT, CANCEL,
/// CREDIT_ACK, CLOSE) keep their order. CREDIT_ACK marks where the peer
/// starts counting messages against a slot, so it stays among them; a
/// CANCEL must not pass its REQUEST; CLOSE comes after everything.
fn is_control(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Ping(_)
            | Frame::Pong(_)
            | Frame::Declare(_)
            | Frame::SnapshotEnd
            | Frame::Credit(_)
            | Frame::Tally { .. }
            | Frame::StreamAccept { .. }
            | Frame::StreamCredit { .. }
    )
}

pub(crate) struct SendState {
    /// Messages and payload bytes queued so far (counted under this lock,
    /// which the publisher holds anyway).
    msgs: u64,
    payload_bytes: u64,
    /// The control lane: written before any data not yet taken.
    ctrl: BytesMut,
    /// Data frames, in order: segments taken before `buf`, each with
    /// whether a frame ends with it.
    buf: BytesMut,
    chunks: VecDeque<(Bytes, bool)>,
    queued: usize,
    /// Of `queued`, the bytes of frames the peer is owed (control frames and
    /// results, which ignore the bound): see [`SendQueue::owed`].
    owed: usize,
    closed: bool,
    /// Frames queued since the writer last took the queue.
    frames: u32,
    /// The writer task holds taken bytes it has not finished writing.
    writing: bool,
    /// The peer's credit slots (see [`crate::credit`]).
    credit: CreditOut,
    /// A sender's write-through stopped inside a data frame: the rest of
    /// that frame must go out before any control frame.
    mid_frame: bool,
    /// Paths aliased on this link, for SHORT_MESSAGEs.
    aliases: Aliases,
    /// Segment buffers written and given back (see [`SPARE_SEGMENTS`]).
    spare: Vec<BytesMut>,
}

/// Outcome of queueing a frame.
pub(crate) enum Enq {
    Queued,
    /// The buffer is over its bound; wait on `space` and retry.
    Full,
    /// A subscription of the peer has no credit for it; wait on `space`
    /// and retry, unless `stalled` (a publisher already waited in vain).
    NoCredit {
        stalled: bool,
    },
    /// The connection is gone.
    Closed,
}

/// A peer's bounded send queue. Senders append encoded frames under the
/// lock; the writer task takes everything queued and writes it with one
/// vectored write. When the queue is empty and the writer idle, a sender
/// writes its frame to the socket itself (non-blocking, under the lock so
/// order is kept), saving a thread hop on the latency path.
pub(crate) struct SendQueue {
    st: Mutex<SendState>,
    /// Set when a publisher gave up waiting for room; cleared when the
    /// writer makes progress. A stalled peer is skipped without waiting.
    stalled: AtomicBool,
    /// The socket's last write had to wait for room (see [`TAKE_DATA`]).
    congested: AtomicBool,
    /// Set by the link's reader when frames arrived: a frame sent after
    /// that is (likely) an answer or the next request of a ping-pong, and
    /// writes through even within [`crate::waiting::DIRECT_GAP`] of the last one.
    heard: AtomicBool,
    limit: usize,
    wire: Wire,
    /// The endpoint's write-through gate, shared by all its links.
    gate: Arc<WriteThrough>,
    wake: Notify,
    pub space: Notify,
}

impl SendQueue {
    pub(crate) fn new(limit: usize, wire: Wire, gate: Arc<WriteThrough>) -> SendQueue {
        SendQueue {
            st: Mutex::new(SendState {
                msgs: 0,
                payload_bytes: 0,
                ctrl: BytesMut::new(),
                buf: BytesMut::new(),
                chunks: VecDeque::new(),
                queued: 0,
                owed: 0,
                frames: 0,
                closed: false,
                writing: false,
                credit: CreditOut::default(),
                mid_frame: false,
                aliases: Aliases::default(),
                spare: Vec::new(),
            }),
            stalled: AtomicBool::new(false),
            congested: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            limit,
            wire,
            gate,
            wake: Notify::new(),
            space: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SendState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After queueing `size` bytes: write through if the queue was empty and
    /// the writer idle, else make sure the writer runs.
    fn finish(&self, mut st: std::sync::MutexGuard<'_, SendState>, size: usize) {
        if st.queued != size {
            return; // not empty before: the writer has been woken already
        }
        if !st.writing {
            let answer = self.heard.swap(false, Relaxed);
            if self.gate.open(answer) && self.try_flush(&mut st) {
                return;
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Writes what the socket takes now; true if nothing is left queued.
    fn try_flush(&self, st: &mut SendState) -> bool {
        let mut n = {
            let mut iov = [IoSlice::new(&[]); 16];
            iov[0] = IoSlice::new(&st.ctrl);
            let mut k = 1;
            for (c, _) in st.chunks.iter().take(14) {
                iov[k] = IoSlice::new(c);
                k += 1;
            }
            iov[k] = IoSlice::new(&st.buf);
            k += 1;
            match self.wire.try_write_vectored(&iov[..k]) {
                Ok(n) => n,
                // WouldBlock or a real error: the writer task takes over
                // (and reports the error).
                Err(_) => return false,
            }
        };
        st.queued = st.queued.saturating_sub(n);
        let c = n.min(st.ctrl.len());
        st.ctrl.advance(c);
        n -= c;
        while n > 0 {
            match st.chunks.front_mut() {
                Some((front, end)) if front.len() <= n => {
                    n -= front.len();
                    st.mid_frame = !*end;
                    st.chunks.pop_front();
                }
                Some((front, _)) => {
                    front.advance(n);
                    st.mid_frame = true;
                    n = 0;
                }
                None => {
                    st.buf.advance(n);
                    // Whole frames, but the write may have ended inside one.
                    st.mid_frame = !st.buf.is_empty();
                    n = 0;
                }
            }
        }
        st.ctrl.is_empty() && st.chunks.is_empty() && st.buf.is_empty()
    }

    /// Queues a message, subject to the bound: a SHORT_MESSAGE on an
    /// aliased path (aliasing it first, with an ALIAS in the same lane, if
    /// the link's aliases have room), else a MESSAGE.
    pub(crate) fn push_message(&self, meta: &Arc<Meta>, payload: &Bytes) -> Enq {
        let mut st = self.lock();
        if st.closed {
            return Enq::Closed;
        }
        let path = &*meta.path;
        let choice = st.aliases.choose(meta);
        let size = choice.frame_len(path, payload.len());
        if st.queued > 0 && st.queued + size > self.limit {
            return Enq::Full;
        }
        if let Check::NoCredit { stalled } = st.credit.take(meta, payload.len()) {
            return Enq::NoCredit { stalled };
        }
        let before = st.buf.len();
        let alias = match choice {
            Choice::Known(a) => Some(a),
            Choice::New(a) => {
                let st = &mut *st;
                if st.aliases.name(&mut st.buf, a, meta).is_err() {
                    st.buf.truncate(before);
                    return Enq::Closed;
                }
                st.frames += 1;
                Some(a)
            }
            Choice::Full => None,
        };
        // Cannot fail: the caller checked the size against the peer's limit.
        let head = match alias {
            Some(a) => proto::encode_short_message_head(&mut st.buf, a, payload.len()),
            None => proto::encode_message_head(&mut st.buf, path, payload.len()),
        };
        if head.is_err() {
            st.buf.truncate(before);
            return Enq::Closed;
        }
        let size = st.buf.len() - before + payload.len();
        self.append_payload(&mut st, payload);
        st.queued += size;
        st.frames += 1;
        st.msgs += 1;
        st.payload_bytes += payload.len() as u64;
        self.finish(st, size);
        Enq::Queued
    }

    /// Messages and payload bytes queued for this peer so far.
    pub(crate) fn sent(&self) -> (u64, u64) {
        let st = self.lock();
        (st.msgs, st.payload_bytes)
    }

    /// Appends the payload of the data frame whose head was just encoded
    /// into `buf`; the frame ends here.
    fn append_payload(&self, st: &mut SendState, payload: &Bytes) {
        if payload.len() >= BIG_PAYLOAD {
            let head = st.buf.split().freeze();
            st.chunks.push_back((head, false));
            st.chunks.push_back((payload.clone(), true));
        } else {
            st.buf.extend_from_slice(payload);
            if st.buf.len() >= SEGMENT {
                // The next segment fills a buffer of its own, a spare one
                // if a written segment was given back.
                let next = st
                    .spare
                    .pop()
                    .unwrap_or_else(|| BytesMut::with_capacity(SEGMENT_CAP));
                let seg = std::mem::replace(&mut st.buf, next).freeze();
                st.chunks.push_back((seg, true));
            }
        }
    }

    /// Queues a REQUEST frame, subject to the bound.
    pub(crate) fn push_request(
        &self,
        id: u64,
        path: &str,
        timeout_ms: u64,
        payload: &Bytes,
    ) -> Enq {
        self.push_frame(
            &Frame::Request {
                id,
                path: path.to_owned(),
                timeout_ms,
                payload: Bytes::new(),
            },
            Some(payload),
            true,
        )
    }

    /// Queues a control frame (or a result), ignoring the bound: these are
    /// answers the peer is owed and never dropped for space.
    pub(crate) fn push_control(&self, frame: &Frame) -> Enq {
        self.push_frame(frame, None, false)
    }

    /// Queues control frames together (one write when the link is idle),
    /// ignoring the bound.
    pub(crate) fn push_controls(&self, frames: &[Frame]) -> Enq {
        let mut st = self.lock();
        let mut size = 0;
        for f in frames {
            match self.queue_frame(&mut st, f, None, false) {
                Ok(n) => size += n,
                Err(e) => return e,
            }
        }
        if size > 0 {
            self.finish(st, size);
        }
        Enq::Queued
    }

    /// Queues a RESULT frame with its payload, ignoring the bound.
    pub(crate) fn push_result(&self, id: u64, code: u16, message: &str, payload: &Bytes) -> Enq {
        self.push_frame(
            &Frame::Result {
                id,
                code,
                message: message.to_owned(),
                payload: Bytes::new(),
            },
            Some(payload),
            false,
        )
    }

    /// Queues `frame`, whose payload (if it has one) is `payload`;
    /// `bounded`: subject to the bound (else owed to the peer).
    pub(crate) fn push_frame(&self, frame: &Frame, payload: Option<&Bytes>, bounded: bool) -> Enq {
        let mut st = self.lock();
        match self.queue_frame(&mut st, frame, payload, bounded) {
            Ok(size) => {
                self.finish(st, size);
                Enq::Queued
            }
            Err(e) => e,
        }
    }

    /// Applies the peer's CREDIT items; an opened slot is acknowledged
    /// (CREDIT_ACK) under the same lock, so every message counted against
    /// it is queued after the acknowledgement. Publishers waiting for
    /// credit are woken.
    pub(crate) fn apply_credit(&self, items: Vec<CreditItem>, max_slots: usize) -> Result<()> {
        let mut st = self.lock();
        let (opened, granted) = st.credit.apply(items, max_slots)?;
        let mut size = None;
        if !opened.is_empty() {
            if let Ok(n) = self.queue_frame(&mut st, &Frame::CreditAck(opened), None, false) {
                size = Some(n);
            }
        }
        match size {
            Some(n) => self.finish(st, n),
            None => drop(st),
        }
        if granted {
            self.space.notify_waiters();
        }
        Ok(())
    }

    /// Marks the peer's slots that `path` lacks credit in as stalled: the
    /// next messages for them are dropped at once, until credit comes.
    pub(crate) fn stall_credit(&self, path: &str) -> bool {
        self.lock().credit.stall(path)
    }

    /// Encodes `frame` into the queue under the lock; its size, for
    /// [`finish`](Self::finish).
    fn queue_frame(
        &self,
        st: &mut SendState,
        frame: &Frame,
        payload: Option<&Bytes>,
        bounded: bool,
    ) -> std::result::Result<usize, Enq> {
        if st.closed {
            return Err(Enq::Closed);
        }
        let plen = payload.map_or(0, |p| p.len());
        if bounded && st.queued > 0 && st.queued + plen > self.limit {
            return Err(Enq::Full);
        }
        let control = is_control(frame);
        let lane = if control { &mut st.ctrl } else { &mut st.buf };
        let before = lane.len();
        let ok = match frame {
            Frame::Request {
                id,
                path,
                timeout_ms,
                ..
            } => proto::encode_head(
                lane,
                proto::Kind::Request,
                &(id, path.as_str(), timeout_ms),
                plen,
            ),
            Frame::Result {
                id, code, message, ..
            } => proto::encode_head(
                lane,
                proto::Kind::Result,
                &(id, code, message.as_str()),
                plen,
            ),
            Frame::StreamData { id, .. } => proto::encode_stream_data_head(lane, *id, plen),
            Frame::StreamOpen {
                id,
                path,
                timeout_ms,
                window,
                ..
            } => proto::encode_head(
                lane,
                proto::Kind::StreamOpen,
                &(id, path.as_str(), timeout_ms, window),
                plen,
            ),
            other => proto::encode(lane, other),
        };
        if ok.is_err() {
            lane.truncate(before);
            return Err(Enq::Closed);
        }
        let size = lane.len() - before + plen;
        match payload {
            Some(p) => self.append_payload(st, p),
            None if !control && st.buf.len() >= SEGMENT => {
                let seg = st.buf.split().freeze();
                st.chunks.push_back((seg, true));
            }
            None => {}
        }
        st.queued += size;
        if !bounded {
            st.owed += size;
        }
        st.frames += 1;
        Ok(size)
    }

    /// Stops accepting frames; the writer flushes what is queued and exits.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.space.notify_waiters();
    }

    /// Takes what the writer writes next (marking it busy while it holds
    /// bytes): the whole control lane, then data up to [`TAKE_DATA`], ending
    /// at a frame boundary. Returns whether the queue is closed and how many
    /// frames were queued since the last take.
    ///
    /// Segments the writer finished (`written`) are kept for reuse when
    /// nothing else holds them.
    fn take(&self, out: &mut VecDeque<(Bytes, bool)>, written: &mut Vec<Bytes>) -> (bool, u32) {
        let mut st = self.lock();
        for b in written.drain(..) {
            if st.spare.len() < SPARE_SEGMENTS {
                // Only a buffer nothing else holds, that already has room
                // for a segment (never allocating here) and not much more.
                if let Ok(mut m) = b.try_into_mut() {
                    m.clear();
                    if m.try_reclaim(SEGMENT_CAP) && m.capacity() <= 2 * SEGMENT_CAP {
                        st.spare.push(m);
                    }
                }
            }
        }
        let frames = std::mem::take(&mut st.frames);
        let mut taken = 0;
        // A frame a sender began writing through is finished first: a
        // control frame must never land inside it.
        if std::mem::take(&mut st.mid_frame) {
            let mut ended = false;
            while let Some((c, end)) = st.chunks.pop_front() {
                taken += c.len();
                out.push_back((c, end));
                if end {
                    ended = true;
                    break;
                }
            }
            if !ended && !st.buf.is_empty() {
                let b = st.buf.split().freeze();
                taken += b.len();
                out.push_back((b, true));
            }
        }
        if !st.ctrl.is_empty() {
            // Taken whole, capacity and all: a control lane that cannot be
            // written (a peer that does not read) grows from a fresh buffer
            // instead of keeping the old one alive beside its successor.
            let c = std::mem::take(&mut st.ctrl).freeze();
            taken += c.len();
            // Control frames are all owed (they ignore the bound).
            st.owed = st.owed.saturating_sub(c.len());
            out.push_back((c, true));
        }
        let limit = if self.congested.load(Relaxed) {
            TAKE_DATA
        } else {
            usize::MAX
        };
        let mut data = 0;
        let mut at_boundary = true;
        while let Some((c, end)) = st.chunks.pop_front() {
            data += c.len();
            at_boundary = end;
            out.push_back((c, end));
            if at_boundary && data >= limit {
                break;
            }
        }
        if st.chunks.is_empty() && at_boundary && data < limit && !st.buf.is_empty() {
            let streaming = st.buf.len() >= 16 * 1024;
            let b = st.buf.split().freeze();
            data += b.len();
            out.push_back((b, true));
            // A stream keeps a warm buffer for its next batch; an idle link
            // lets it go.
            if streaming && st.buf.capacity() < 16 * 1024 {
                st.buf.reserve(64 * 1024);
            }
        }
        taken += data;
        st.writing = !out.is_empty();
        if st.writing {
            self.stalled.store(false, Relaxed);
        }
        st.queued = st.queued.saturating_sub(taken);
        st.owed = st.owed.min(st.queued);
        let closed = st.closed;
        drop(st);
        if taken > 0 {
            self.space.notify_waiters();
        }
        (closed, frames)
    }

    /// Bytes of owed frames (PONGs, RESULTs, DECLAREs, CANCELs) queued and
    /// not yet taken by the writer. Owed frames ignore the bound, so a peer
    /// that keeps asking (PINGs, REQUESTs) and never reads would grow this
    /// without end; the reader stops reading from such a peer while it is
    /// above `send_buffer` (see `Inner::wait_owed`).
    pub(crate) fn owed(&self) -> usize {
        self.lock().owed
    }

    /// The link's reader got frames from the peer (see `heard`).
    pub(crate) fn heard(&self) {
        self.heard.store(true, Relaxed);
    }

    /// Marks the queue stalled (a publisher timed out waiting for room).
    pub(crate) fn set_stalled(&self) {
        self.stalled.store(true, Relaxed);
    }

    /// True while stalled.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Relaxed)
    }

    /// Waits until a frame of `size` bytes fits (call `push_*` again after);
    /// false at the deadline.
    pub(crate) async fn wait_space(&self, deadline: tokio::time::Instant, size: usize) -> bool {
        loop {
            let n = self.space.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            {
                let st = self.lock();
                if st.closed || st.queued == 0 || st.queued + size <= self.limit {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, n).await.is_err() {
                return false;
            }
        }
    }

    /// Writes the chunks (each marked with whether a frame ends with it),
    /// waiting for the socket as needed. With `yield_to_control`, a socket
    /// that pushes back at a frame boundary while control frames wait ends
    /// the write early: `Ok(true)`, the rest left in `chunks` to be given
    /// back ([`give_back`](Self::give_back)), so that a PING never waits
    /// behind a large batch taken before the link slowed down.
    ///
    /// Chunks written go to `written`, for [`take`](Self::take) to keep
    /// the segment buffers among them for reuse.
    async fn write_chunks(
        &self,
        chunks: &mut VecDeque<(Bytes, bool)>,
        yield_to_control: bool,
        written: &mut Vec<Bytes>,
    ) -> std::io::Result<bool> {
        const MAX_IOV: usize = 64;
        let mut waited = false;
        // A batch starts at a frame boundary; it may start with control
        // frames, which must go before any given back (control frames keep
        // their order), so the first chunk is always written.
        let mut boundary = false;
        while !chunks.is_empty() {
            let r = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                for (c, _) in chunks.iter().take(MAX_IOV) {
                    iov[k] = IoSlice::new(c);
                    k += 1;
                }
                self.wire.try_write_vectored(&iov[..k])
            };
            let mut n = match r {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    waited = true;
                    self.congested.store(true, Relaxed);
                    if yield_to_control && boundary && !self.lock().ctrl.is_empty() {
                        return Ok(true);
                    }
                    self.wire.writable().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            while n > 0 {
                let Some((front, end)) = chunks.front_mut() else {
                    break;
                };
                if front.len() <= n {
                    n -= front.len();
                    boundary = *end;
                    if let Some((c, _)) = chunks.pop_front() {
                        written.push(c);
                    }
                } else {
                    front.advance(n);
                    boundary = false;
                    n = 0;
                }
            }
        }
        if !waited {
            self.congested.store(false, Relaxed);
        }
        Ok(false)
    }

    /// Puts back, at the front of the queue, what a write left unwritten
    /// (starting at a frame boundary).
    fn give_back(&self, chunks: &mut VecDeque<(Bytes, bool)>) {
        let mut st = self.lock();
        while let Some(c) = chunks.pop_back() {
            st.queued += c.0.len();
            st.chunks.push_front(c);
        }
    }
}

// Over Unix socket pairs: not built on Windows (the queue's logic is the
// same there; its transports are tested through the C and Node suites).
#[cfg(all(test, unix))]
mod tests;
