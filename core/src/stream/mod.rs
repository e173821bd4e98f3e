//! Bidirectional streams: `open_stream` reaches one server of
//! `serve_stream`, and both sides get a [`Stream`] to send and receive
//! messages on, each direction with its own credit.
//!
//! A stream is two **pipes**, one per direction. A pipe's writer may send
//! while it holds credit (payload bytes, at least one byte per message;
//! the last message may take it below zero) and its reader gives credit
//! back as it takes messages, so a receiver holds at most its window (plus
//! one message) per stream, and a sender that outruns its reader waits at
//! the window — it never stops its link, and nothing else on the link
//! waits for it. Between two endpoints a pipe's credit travels in
//! STREAM_ACCEPT and STREAM_CREDIT frames (docs/PROTOCOL.md, "Streams");
//! between two streams of one endpoint the two sides share the pipes.
//!
//! Ending: [`Stream::finish`] ends this side's direction (the peer reads
//! what was sent, then `None`); [`Stream::cancel`] (or dropping the last
//! handle before both directions ended) ends the whole stream with an
//! error both sides see. The deadline (carried on the wire), the end of
//! the link (`PEER_LOST`) and the endpoint's close end it too.
//!
//! Stream ids: the opener chooses `n`, unique among its streams on the
//! link, and every frame carries `2n` when its sender opened the stream and
//! `2n + 1` when its receiver did. So the id a side receives is its own key
//! for the stream, and the id it sends is that key with the low bit
//! flipped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};
use crate::inbox::ReadyHook;
use crate::link::state::LinkStream;
use crate::peer::send::Enq;
use crate::peer::Peer;
use crate::proto::{self, Frame};

mod fuzz;
mod handle;
pub(crate) mod open;
pub(crate) use fuzz::fuzz_local;
pub(crate) use handle::Hold;
pub use handle::{Stream, StreamReceiver, StreamSender};
pub(crate) mod serve;
pub(crate) use serve::StreamServe;
pub use serve::StreamService;

/// The most credit one direction may hold; a grant past it breaks the
/// protocol.
pub(crate) const MAX_CREDIT: u64 = 1 << 40;

/// What a message costs in credit.
fn cost(b: &Bytes) -> i64 {
    b.len().max(1) as i64
}

fn protocol(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::ProtocolError, detail)
}

#[derive(Default)]
struct PipeState {
    queue: VecDeque<Bytes>,
    /// The writer's credit: payload bytes it may still send.
    credit: i64,
    /// Taken by a remote pipe's reader and not yet granted back.
    unreturned: u64,
    /// The writer ended the direction; the reader gets `None` after the
    /// queue.
    fin: bool,
    /// Why the writer may not write any more.
    write_err: Option<Error>,
    /// What the reader gets after the queue (unless `fin`).
    read_err: Option<Error>,
    /// The reader's own side ended the stream: reads fail at once.
    read_abort: bool,
}

/// One direction of a stream.
struct Pipe {
    st: Mutex<PipeState>,
    readable: Notify,
    /// A foreign event loop's waiter for the reader (see
    /// [`Stream::poll_recv`]).
    hook: ReadyHook,
    writable: Notify,
    /// The reader's window: credit is granted back once a quarter of it
    /// was taken.
    window: u64,
}

impl Pipe {
    fn new(window: u64, credit: u64) -> Arc<Pipe> {
        Arc::new(Pipe {
            st: Mutex::new(PipeState {
                credit: credit as i64,
                ..PipeState::default()
            }),
            readable: Notify::new(),
            hook: ReadyHook::default(),
            writable: Notify::new(),
            window,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something arrived, or the direction ended: wakes its readers.
    fn readable_changed(&self) {
        self.readable.notify_waiters();
        self.hook.fire();
    }

    fn wake(&self) {
        self.readable_changed();
        self.writable.notify_waiters();
    }
}

/// What [`StreamCore::try_send`] did.
enum TrySend {
    Sent,
    /// No credit: wait for the reader.
    NoCredit,
    /// The link's send buffer is full: wait for room.
    Full(Arc<Peer>),
}

/// Where a stream's other side is.
enum Wire {
    /// In this endpoint: the two sides share their pipes.
    Local,
    /// Across a link; `id` is what this side puts in its frames.
    Remote { peer: Arc<Peer>, id: u64 },
}

/// One side of a stream, shared by its handles and (for a remote stream)
/// the link's table.
pub(crate) struct StreamCore {
    inp: Arc<Pipe>,
    out: Arc<Pipe>,
    wire: Wire,
    path: Arc<str>,
    peer_name: Arc<str>,
    deadline: Option<Instant>,
    shutdown: CancellationToken,
    blocker: Option<crate::blocking::Blocker>,
    /// Senders take turns, so each message goes out whole and in order.
    send_turn: tokio::sync::Mutex<()>,
    /// Live handles ([`Stream`], [`StreamSender`], [`StreamReceiver`], and a
    /// handler runner's own); the last one to go ends an unfinished stream.
    handles: AtomicUsize,
    /// The opener waits here for STREAM_ACCEPT (or the refusal).
    accept: Mutex<Option<oneshot::Sender<Result<()>>>>,
    /// The server sent its STREAM_ACCEPT.
    accepted: std::sync::atomic::AtomicBool,
    timer: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for StreamCore {
    fn drop(&mut self) {
        if let Some(t) = self.timer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

/// What the opener asked for, as its server sees it.
#[derive(Debug)]
pub struct StreamRequest {
    pub(crate) path: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) sender: Arc<str>,
    pub(crate) deadline: Option<Instant>,
}

impl StreamRequest {
    /// The concrete path the stream was opened on.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The first payload, sent with the opening.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// The opener's endpoint name.
    pub fn sender(&self) -> &str {
        &self.sender
    }
    /// When the stream ends with `TIMEOUT`, if the opener gave it a
    /// deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// A stream as a service's queue holds it until a handler takes it.
pub(crate) type IncomingStream = (StreamRequest, Stream);

impl crate::service_queue::Queued for IncomingStream {
    fn cost(&self) -> usize {
        self.0.payload.len() + self.0.path.len() + crate::service_queue::REQUEST_OVERHEAD
    }
    fn path(&self) -> &str {
        &self.0.path
    }
    fn refuse(self, e: Error) {
        self.1.core().cancel(e);
    }
}

/// How the parts of a new stream side are set.
pub(crate) struct Side {
    pub path: Arc<str>,
    pub peer_name: Arc<str>,
    pub deadline: Option<Instant>,
    pub shutdown: CancellationToken,
    /// The endpoint's way in from plain threads (`None` in fuzzing).
    pub blocker: Option<crate::blocking::Blocker>,
}

impl StreamCore {
    fn new(side: Side, inp: Arc<Pipe>, out: Arc<Pipe>, wire: Wire) -> Arc<StreamCore> {
        Arc::new(StreamCore {
            inp,
            out,
            wire,
            path: side.path,
            peer_name: side.peer_name,
            deadline: side.deadline,
            shutdown: side.shutdown,
            blocker: side.blocker,
            send_turn: tokio::sync::Mutex::new(()),
            handles: AtomicUsize::new(0),
            accept: Mutex::new(None),
            accepted: std::sync::atomic::AtomicBool::new(false),
            timer: Mutex::new(None),
        })
    }

    /// Both sides of a stream within one endpoint: (opener, server, what
    /// the opener waits on until the server takes its side).
    /// `windows`: (the opener's, the server's).
    pub(crate) fn local_pair(
        opener: Side,
        server: Side,
        windows: (u64, u64),
    ) -> (
        Arc<StreamCore>,
        Arc<StreamCore>,
        oneshot::Receiver<Result<()>>,
    ) {
        let to_server = Pipe::new(windows.1, windows.1);
        let to_opener = Pipe::new(windows.0, windows.0);
        let a = StreamCore::new(opener, to_opener.clone(), to_server.clone(), Wire::Local);
        let b = StreamCore::new(server, to_server, to_opener, Wire::Local);
        let (tx, rx) = oneshot::channel();
        *b.accept.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        (a, b, rx)
    }

    /// The opener's side of a stream to `peer`, sending with id `2n`;
    /// `window` is what it lets the server send. No credit to send until
    /// the server accepts.
    pub(crate) fn opening(
        side: Side,
        peer: Arc<Peer>,
        n: u64,
        window: u64,
    ) -> (Arc<StreamCore>, oneshot::Receiver<Result<()>>) {
        let core = StreamCore::new(
            side,
            Pipe::new(window, window),
            Pipe::new(0, 0),
            Wire::Remote { peer, id: 2 * n },
        );
        let (tx, rx) = oneshot::channel();
        *core.accept.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        (core, rx)
    }

    /// The server's side of a stream `peer` opened with id `id` (even),
    /// granted `peer_window` to send, receiving within `window` once
    /// [`accept`](Self::accept)ed: until then the opener has no credit, so
    /// a stream waiting in its service's queue holds nothing but its
    /// opening.
    pub(crate) fn accepting(
        side: Side,
        peer: Arc<Peer>,
        id: u64,
        window: u64,
        peer_window: u64,
    ) -> Arc<StreamCore> {
        StreamCore::new(
            side,
            Pipe::new(window, 0),
            Pipe::new(0, peer_window),
            Wire::Remote { peer, id: id | 1 },
        )
    }

    /// A server took the stream from its queue: the opener is granted the
    /// window (STREAM_ACCEPT). Once; nothing for a stream within this
    /// endpoint (its credit was there from the start) or one that ended.
    pub(crate) fn accept(&self) {
        let Some((peer, id)) = self.peer() else {
            // Within this endpoint: the opener waits for this.
            if let Some(tx) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(Ok(()));
            }
            return;
        };
        if id & 1 == 0 || self.accepted.swap(true, SeqCst) {
            return; // the opener's side, or accepted already
        }
        let mut st = self.inp.lock();
        if st.read_abort || st.read_err.is_some() {
            return;
        }
        st.credit += self.inp.window as i64;
        let _ = peer.tx.push_control(&Frame::StreamAccept {
            id,
            window: self.inp.window,
        });
    }

    /// Ends the stream with `TIMEOUT` at its deadline, if it has one.
    pub(crate) fn arm_deadline(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let Some(at) = self.deadline else { return };
        let weak = Arc::downgrade(self);
        let t = rt.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(core) = weak.upgrade() {
                core.cancel(Error::new(
                    ErrorCode::Timeout,
                    format!("the stream on {} reached its deadline", core.path),
                ));
            }
        });
        *self.timer.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.abort_handle());
    }

    fn peer(&self) -> Option<(&Arc<Peer>, u64)> {
        match &self.wire {
            Wire::Remote { peer, id } => Some((peer, *id)),
            Wire::Local => None,
        }
    }

    /// The key of a remote stream in its link's table.
    fn key(&self) -> Option<(&Arc<Peer>, u64)> {
        self.peer().map(|(p, id)| (p, id ^ 1))
    }

    /// Checks that `len` bytes fit one frame to the peer.
    fn check_size(&self, len: usize) -> Result<()> {
        if let Some((peer, _)) = self.peer() {
            if proto::STREAM_DATA_HEAD_MAX + len > peer.max_frame {
                return Err(Error::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "a {len}-byte stream message exceeds peer {}'s limit of {} bytes",
                        peer.name, peer.max_frame
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Sends `data` if the credit (and the link's send buffer) lets it go
    /// now.
    fn try_send(&self, data: &Bytes) -> Result<TrySend> {
        let mut st = self.out.lock();
        if let Some(e) = &st.write_err {
            return Err(e.clone());
        }
        if st.fin {
            return Err(Error::invalid_argument(
                "this side of the stream was finished; nothing more can be sent",
            ));
        }
        if st.credit <= 0 {
            return Ok(TrySend::NoCredit);
        }
        match &self.wire {
            Wire::Local => {
                st.credit -= cost(data);
                st.queue.push_back(data.clone());
                drop(st);
                self.out.readable_changed();
                Ok(TrySend::Sent)
            }
            Wire::Remote { peer, id } => {
                let frame = Frame::StreamData {
                    id: *id,
                    payload: Bytes::new(),
                };
                match peer.tx.push_frame(&frame, Some(data), true) {
                    Enq::Queued => {
                        st.credit -= cost(data);
                        Ok(TrySend::Sent)
                    }
                    Enq::Closed => Err(peer.lost_error("connection closed")),
                    Enq::Full | Enq::NoCredit { .. } => Ok(TrySend::Full(peer.clone())),
                }
            }
        }
    }

    /// Sends one message, waiting for credit (and for room in the link's
    /// send buffer).
    async fn send(&self, data: Bytes) -> Result<()> {
        let _turn = self.send_turn.lock().await;
        self.check_size(data.len())?;
        loop {
            let writable = self.out.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            match self.try_send(&data)? {
                TrySend::Sent => return Ok(()),
                TrySend::NoCredit => tokio::select! {
                    _ = &mut writable => {}
                    _ = self.shutdown.cancelled() => return Err(Error::closed()),
                },
                TrySend::Full(peer) => {
                    let until = Instant::now() + Duration::from_secs(1);
                    let size = proto::STREAM_DATA_HEAD_MAX + data.len();
                    tokio::select! {
                        _ = peer.tx.wait_space(until, size) => {}
                        _ = &mut writable => {}
                        _ = self.shutdown.cancelled() => return Err(Error::closed()),
                    }
                }
            }
        }
    }

    /// [`try_recv`](Self::try_recv), or `Pending` with `cx`'s waker armed
    /// to be woken once when that may change.
    fn poll_recv(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<Option<Bytes>>> {
        for armed in [false, true] {
            match self.try_recv() {
                Ok(Some(r)) => return std::task::Poll::Ready(Ok(r)),
                Err(e) => return std::task::Poll::Ready(Err(e)),
                Ok(None) if !armed => self.inp.hook.arm(cx.waker()),
                Ok(None) => {}
            }
        }
        std::task::Poll::Pending
    }

    /// The next message, `None` once the other side finished, or `Pending`.
    fn try_recv(&self) -> Result<Option<Option<Bytes>>> {
        let mut st = self.inp.lock();
        if st.read_abort {
            return Err(st.read_err.clone().unwrap_or_else(cancelled_here));
        }
        let Some(b) = st.queue.pop_front() else {
            if st.fin {
                return Ok(Some(None));
            }
            if let Some(e) = &st.read_err {
                return Err(e.clone());
            }
            return Ok(None);
        };
        let c = cost(&b);
        match &self.wire {
            Wire::Local => {
                st.credit += c;
                drop(st);
                self.inp.writable.notify_waiters();
            }
            Wire::Remote { peer, id } => {
                st.unreturned += c as u64;
                if !st.fin && st.read_err.is_none() && st.unreturned >= (self.inp.window / 4).max(1)
                {
                    let bytes = std::mem::take(&mut st.unreturned);
                    st.credit += bytes as i64;
                    let _ = peer
                        .tx
                        .push_control(&Frame::StreamCredit { id: *id, bytes });
                }
            }
        }
        Ok(Some(Some(b)))
    }

    async fn recv(&self) -> Result<Option<Bytes>> {
        loop {
            let readable = self.inp.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            if let Some(r) = self.try_recv()? {
                return Ok(r);
            }
            tokio::select! {
                _ = &mut readable => {}
                _ = self.shutdown.cancelled() => return Err(Error::closed()),
            }
        }
    }

    /// Ends this side's direction: the other side reads what was sent,
    /// then `None`. Does nothing if it already ended.
    fn finish(&self) {
        {
            let mut st = self.out.lock();
            if st.fin || st.write_err.is_some() {
                return;
            }
            st.fin = true;
            if let Some((peer, id)) = self.peer() {
                let _ = peer.tx.push_frame(
                    &Frame::StreamEnd {
                        id,
                        code: 0,
                        message: String::new(),
                    },
                    None,
                    false,
                );
            }
        }
        self.out.wake();
        self.maybe_forget();
    }

    /// True once both directions ended (cleanly or not).
    fn ended(&self) -> bool {
        let i = self.inp.lock();
        let inp_done = i.fin || i.read_err.is_some();
        drop(i);
        let o = self.out.lock();
        inp_done && (o.fin || o.write_err.is_some())
    }

    /// Ends the whole stream with `err`, telling the other side: its reads
    /// get what was sent before, then `err` (unless this side had finished
    /// its direction); its sends fail with `err`; this side's reads and
    /// sends fail with it at once.
    pub(crate) fn cancel(&self, err: Error) {
        let tell = {
            // The two sides of a local stream share their pipes in opposite
            // roles: lock them in one order (by address) on both.
            let (mut i, mut o) = if Arc::as_ptr(&self.inp) < Arc::as_ptr(&self.out) {
                let i = self.inp.lock();
                (i, self.out.lock())
            } else {
                let o = self.out.lock();
                (self.inp.lock(), o)
            };
            let whole = i.fin && i.queue.is_empty() && o.fin;
            let tell = !(i.fin && o.fin) && o.write_err.is_none();
            if !whole {
                i.queue.clear();
                i.read_abort = true;
                i.read_err.get_or_insert_with(|| err.clone());
                // Locally the pipes are shared: the other side's writes into
                // `inp` and reads of `out` end too.
                i.write_err.get_or_insert_with(|| err.clone());
                if !o.fin {
                    o.read_err.get_or_insert_with(|| err.clone());
                }
                o.write_err.get_or_insert_with(|| err.clone());
            }
            tell
        };
        if tell {
            if let Some((peer, id)) = self.peer() {
                let _ = peer.tx.push_frame(
                    &Frame::StreamEnd {
                        id,
                        code: err.code().as_u16(),
                        message: err.detail().to_owned(),
                    },
                    None,
                    false,
                );
            }
        }
        if let Some(tx) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(Err(err));
        }
        self.inp.wake();
        self.out.wake();
        self.maybe_forget();
    }

    /// The link ended (or the peer ended the stream) with `err`: reads get
    /// what arrived, then `err` (unless the peer had finished); sends fail.
    fn fail(&self, err: &Error) {
        {
            let mut i = self.inp.lock();
            if !i.fin {
                i.read_err.get_or_insert_with(|| err.clone());
            }
        }
        self.out.lock().write_err.get_or_insert_with(|| err.clone());
        if let Some(tx) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(Err(err.clone()));
        }
        self.inp.wake();
        self.out.wake();
    }

    /// Leaves the link's table once both directions ended.
    fn maybe_forget(&self) {
        if let Some((peer, key)) = self.key() {
            if self.ended() {
                peer.in_flight().forget_stream(key);
            }
        }
    }

    fn release(&self) {
        if self.handles.fetch_sub(1, SeqCst) == 1 && !self.ended() {
            self.cancel(Error::new(
                ErrorCode::Cancelled,
                format!("the stream on {} was dropped before it ended", self.path),
            ));
        }
    }
}

fn cancelled_here() -> Error {
    Error::new(ErrorCode::Cancelled, "the stream was cancelled")
}

impl LinkStream for StreamCore {
    /// STREAM_DATA for this side.
    fn on_data(&self, payload: Bytes) -> Result<()> {
        {
            let mut st = self.inp.lock();
            if st.fin {
                return Err(protocol(format!(
                    "STREAM_DATA on stream {} after its sender ended it",
                    self.path
                )));
            }
            if st.read_abort {
                return Ok(()); // this side cancelled: data in flight is dropped
            }
            if st.credit <= 0 {
                return Err(protocol(format!(
                    "STREAM_DATA on stream {} beyond the credit granted",
                    self.path
                )));
            }
            st.credit -= cost(&payload);
            st.queue.push_back(payload);
        }
        self.inp.readable_changed();
        Ok(())
    }

    /// STREAM_CREDIT: `bytes` more to send.
    fn on_credit(&self, bytes: u64) -> Result<()> {
        {
            let mut st = self.out.lock();
            let after = st.credit.saturating_add(bytes.min(MAX_CREDIT * 2) as i64);
            if after > MAX_CREDIT as i64 {
                return Err(protocol(format!(
                    "STREAM_CREDIT would raise a stream's credit past 2^40 (to {after})"
                )));
            }
            st.credit = after;
        }
        self.out.writable.notify_waiters();
        Ok(())
    }

    /// STREAM_ACCEPT: the server took the stream and grants `window`.
    fn on_accept(&self, window: u64) -> Result<()> {
        let Some(tx) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Err(protocol(
                "a second STREAM_ACCEPT, or one for a stream not opened here",
            ));
        };
        self.on_credit(window)?;
        let _ = tx.send(Ok(()));
        Ok(())
    }

    /// STREAM_END: code 0 ends the peer's direction, any other code the
    /// whole stream.
    fn on_end(&self, code: u16, message: String) -> Result<()> {
        if code == 0 {
            {
                let mut st = self.inp.lock();
                if st.fin {
                    return Err(protocol("a second STREAM_END with code 0 on one stream"));
                }
                st.fin = true;
            }
            self.inp.wake();
        } else {
            let c = ErrorCode::from_u16(code).unwrap_or(ErrorCode::HandlerError);
            self.fail(&Error::new(
                c,
                format!(
                    "{} ended the stream on {}: {message}",
                    self.peer_name, self.path
                ),
            ));
        }
        self.maybe_forget();
        Ok(())
    }

    /// The link ended with `err`.
    fn on_link_end(&self, err: &Error) {
        self.fail(err);
    }
}
