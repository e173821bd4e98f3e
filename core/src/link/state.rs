//! A connection's protocol state, without IO (sans-IO, the way quinn-proto
//! and rustls keep theirs): the handshake, the rules for the frames that
//! follow it, liveness, and what is in flight on the link. Nothing here
//! reads a socket, spawns a task or looks at a clock: the socket code (the
//! handshake in [`super`], the read loop in [`crate::rx`], the heartbeat in
//! [`super::supervise`]) feeds it bytes, frames and the time, and does what
//! it answers. `state/tests.rs` drives two connections against each other in
//! memory, through the real codec, with an explicit clock.
//!
//! Who owns what: the [`Handshake`] belongs to the task that establishes
//! the link; the [`Session`] to the link's reader; the [`Liveness`] rule to
//! its heartbeat; the [`InFlight`] table to the peer (behind its lock),
//! because callers, servers and the reader all reach it.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorCode, Result};
use crate::proto::{self, Agreed, Declarations, Decoded, Frame, Hello};

/// The opening of a link: our HELLO out, the peer's HELLO in and checked,
/// before a deadline.
pub(crate) struct Handshake {
    ours: Hello,
    limit: Duration,
    deadline: Instant,
}

/// What the handshake needs next.
#[derive(Debug)]
pub(crate) enum Step {
    /// The peer's HELLO arrived and agrees with ours.
    Agreed(Agreed),
    /// Not enough bytes yet: the frame is this long (prefix included) when
    /// known, else this many bytes are needed to learn its length.
    NeedMore(usize),
}

impl Handshake {
    /// A handshake that started at `now` and must end within `limit`.
    pub(crate) fn new(ours: Hello, now: Instant, limit: Duration) -> Handshake {
        Handshake {
            ours,
            limit,
            deadline: now + limit,
        }
    }

    /// Our HELLO, to send first.
    pub(crate) fn hello(&self, out: &mut BytesMut) -> Result<()> {
        proto::encode(out, &Frame::Hello(self.ours.clone()))
    }

    /// When the peer's HELLO must have arrived.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The error of a handshake that missed its deadline.
    pub(crate) fn timed_out(&self) -> Error {
        Error::new(
            ErrorCode::Timeout,
            format!("handshake not completed within {:?}", self.limit),
        )
    }

    /// Takes what has arrived in `buf`. The peer's first frame must be a
    /// HELLO of at most [`proto::HANDSHAKE_MAX_FRAME`] bytes that agrees with
    /// ours (a CLOSE instead is its refusal, with its code); its bytes leave
    /// `buf`, and whatever followed it stays there for the link's reader.
    pub(crate) fn on_bytes(&self, buf: &mut BytesMut) -> Result<Step> {
        match proto::decode(buf, proto::HANDSHAKE_MAX_FRAME)? {
            Decoded::Frame(f) => proto::negotiate(&self.ours, f).map(Step::Agreed),
            Decoded::NeedMore(n) => Ok(Step::NeedMore(n)),
        }
    }
}

/// A frame after the handshake, as the link's reader must handle it.
#[derive(Debug)]
pub(crate) enum Input {
    /// A published message (MESSAGE, SHORT_MESSAGE, or the ALIAS that
    /// names a path for the latter). The read loop gathers messages into
    /// batches, and keeps the aliases, on its own path; one that reaches a
    /// [`Session`] is ignored.
    Message,
    /// A request to serve: the caller waits `timeout` from now.
    Request {
        id: u64,
        path: String,
        timeout: Duration,
        payload: Bytes,
    },
    /// The outcome of one of our requests.
    Result { id: u64, outcome: Result<Bytes> },
    /// The caller of request `id` stopped waiting.
    Cancel(u64),
    /// Answer with `Frame::Pong` of this nonce.
    Ping(u64),
    /// The answer to our ping of this nonce.
    Pong(u64),
    /// Declarations to apply (checked item by item against the peer's
    /// limits by the router).
    Declare(Declarations),
    /// The peer's declaration snapshot is complete: the link is ready.
    SnapshotEnd,
    /// Credit slots the peer opened, granted or closed (v2).
    Credit(Vec<crate::proto::CreditItem>),
    /// Our credit slots the peer started counting (v2).
    CreditAck(Vec<u64>),
    /// The peer's count of an earlier link (see [`crate::tally`]).
    Tally(crate::tally::Tally),
    /// A stream frame (see [`crate::stream`]), as it came.
    Stream(Frame),
    /// The peer closed the link. `why` ends the reader; `refusal` is the
    /// error a connect in progress reports when the peer closed with a code.
    Close { why: String, refusal: Option<Error> },
}

/// The rules for the frames of an established link: what each means, and
/// which break the protocol (a second HELLO, a second SNAPSHOT_END).
#[derive(Default)]
pub(crate) struct Session {
    snapshot_done: bool,
}

impl Session {
    /// What `frame` asks of the link, or the protocol error that ends it.
    pub(crate) fn on_frame(&mut self, frame: Frame, peer: &str) -> Result<Input> {
        Ok(match frame {
            Frame::Message { .. } | Frame::Alias { .. } | Frame::ShortMessage { .. } => {
                Input::Message
            }
            Frame::Request {
                id,
                path,
                timeout_ms,
                payload,
            } => Input::Request {
                id,
                path,
                timeout: Duration::from_millis(timeout_ms),
                payload,
            },
            Frame::Result {
                id,
                code,
                message,
                payload,
            } => Input::Result {
                id,
                outcome: if code == 0 {
                    Ok(payload)
                } else {
                    // A code this version does not know is still a failure.
                    let c = ErrorCode::from_u16(code).unwrap_or(ErrorCode::HandlerError);
                    Err(Error::new(c, message))
                },
            },
            Frame::Cancel(id) => Input::Cancel(id),
            Frame::Ping(n) => Input::Ping(n),
            Frame::Pong(n) => Input::Pong(n),
            Frame::Declare(d) => Input::Declare(d),
            Frame::Credit(items) => Input::Credit(items),
            Frame::CreditAck(subs) => Input::CreditAck(subs),
            Frame::Tally { link, messages } => Input::Tally(crate::tally::Tally { link, messages }),
            f @ (Frame::StreamOpen { .. }
            | Frame::StreamAccept { .. }
            | Frame::StreamData { .. }
            | Frame::StreamCredit { .. }
            | Frame::StreamEnd { .. }) => Input::Stream(f),
            Frame::SnapshotEnd => {
                if self.snapshot_done {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        "a second SNAPSHOT_END on this connection",
                    ));
                }
                self.snapshot_done = true;
                Input::SnapshotEnd
            }
            Frame::Close { code, reason } => {
                let c = ErrorCode::from_u16(code).unwrap_or(ErrorCode::Closed);
                let why = if code == 0 {
                    format!("peer closed: {reason}")
                } else {
                    format!("peer closed with {c}: {reason}")
                };
                let refusal =
                    (code != 0).then(|| Error::new(c, format!("peer {peer} refused: {reason}")));
                Input::Close { why, refusal }
            }
            Frame::Hello(_) => {
                return Err(Error::new(
                    ErrorCode::ProtocolError,
                    "HELLO after the handshake",
                ))
            }
        })
    }
}

/// The heartbeat rule: ping a link that has been quiet for an interval,
/// declare it dead after `misses` quiet intervals.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    pub interval: Duration,
    pub misses: u32,
}

/// What a heartbeat tick asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing to do.
    Idle,
    /// Send a PING: the link has been quiet for an interval.
    Ping,
    /// The peer is gone: nothing arrived for the whole window.
    Dead(String),
}

impl Liveness {
    /// The window after which a quiet link is dead.
    pub(crate) fn window(&self) -> Duration {
        self.interval * self.misses
    }

    /// What to do at a tick, `quiet` after bytes last arrived. `paused`:
    /// our reader has stopped reading this peer (it owes us reads, see
    /// `rx::wait_owed`) and keeps its own deadline; silence would be ours.
    pub(crate) fn tick(&self, quiet: Duration, paused: bool) -> Tick {
        if paused {
            Tick::Idle
        } else if quiet >= self.window() {
            Tick::Dead(format!(
                "heard nothing for {quiet:?} (heartbeat every {:?}, {} misses allowed)",
                self.interval, self.misses
            ))
        } else if quiet >= self.interval {
            Tick::Ping
        } else {
            Tick::Idle
        }
    }
}

/// A stream as its link's table holds it: what the link's reader hands
/// over to it (see `crate::stream`). Errors break the protocol.
pub(crate) trait LinkStream: Send + Sync {
    /// STREAM_ACCEPT: the server took the stream and grants `window`.
    fn on_accept(&self, window: u64) -> Result<()>;
    /// STREAM_DATA.
    fn on_data(&self, payload: Bytes) -> Result<()>;
    /// STREAM_CREDIT: `bytes` more to send.
    fn on_credit(&self, bytes: u64) -> Result<()>;
    /// STREAM_END: code 0 ends the peer's direction, any other code the
    /// whole stream.
    fn on_end(&self, code: u16, message: String) -> Result<()>;
    /// The link ended with `err`.
    fn on_link_end(&self, err: &Error);
}

/// Who waits for the outcome of one of our requests.
pub(crate) type PendingTx = oneshot::Sender<Result<Bytes>>;

/// What is in flight on a link: our requests waiting for their RESULT, the
/// peer's requests we serve (with their cancellation), and our pings.
/// Once the link ends ([`InFlight::fail_all`]) nothing new enters.
#[derive(Default)]
pub(crate) struct InFlight {
    ours: HashMap<u64, PendingTx>,
    theirs: HashMap<u64, CancellationToken>,
    pings: HashMap<u64, (Instant, oneshot::Sender<Duration>)>,
    /// Open streams, both ways, by key (see [`crate::stream`]).
    streams: HashMap<u64, std::sync::Arc<dyn LinkStream>>,
    ended: Option<Error>,
}

impl InFlight {
    /// Registers a stream under `key`: the link's end if it already ended
    /// (then the stream is not kept); a protocol error if the key is taken
    /// (a STREAM_OPEN reusing the id of a stream still open).
    pub(crate) fn start_stream(
        &mut self,
        key: u64,
        core: std::sync::Arc<dyn LinkStream>,
    ) -> Result<()> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        match self.streams.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Error::new(
                ErrorCode::ProtocolError,
                format!("STREAM_OPEN id {key} is already open on this connection"),
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(core);
                Ok(())
            }
        }
    }

    /// The stream of `key`, if it is open.
    pub(crate) fn stream(&self, key: u64) -> Option<std::sync::Arc<dyn LinkStream>> {
        self.streams.get(&key).cloned()
    }

    /// Forgets the stream of `key` (both its directions ended).
    pub(crate) fn forget_stream(&mut self, key: u64) {
        self.streams.remove(&key);
    }

    /// Registers our request `id` before it is sent; the link's end, if
    /// it already ended.
    pub(crate) fn start_request(&mut self, id: u64, tx: PendingTx) -> Result<()> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        self.ours.insert(id, tx);
        Ok(())
    }

    /// Delivers the outcome of our request `id`; false if nobody waits for
    /// it any more (it timed out or was cancelled: the peer's answer raced).
    pub(crate) fn on_result(&mut self, id: u64, outcome: Result<Bytes>) -> bool {
        match self.ours.remove(&id) {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Stops waiting for our request `id`; true if it was still waiting
    /// (then the peer should be sent a CANCEL).
    pub(crate) fn forget_request(&mut self, id: u64) -> bool {
        self.ours.remove(&id).is_some()
    }

    /// Registers the peer's request `id` for serving: its cancellation.
    /// Ids are unique per connection while in flight; a repeat breaks the
    /// protocol.
    pub(crate) fn start_serving(&mut self, id: u64) -> Result<CancellationToken> {
        if self.ended.is_some() {
            // The link is going: the request is dropped with it.
            let t = CancellationToken::new();
            t.cancel();
            return Ok(t);
        }
        match self.theirs.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Error::new(
                ErrorCode::ProtocolError,
                format!("REQUEST id {id} is already in flight on this connection"),
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                let t = CancellationToken::new();
                v.insert(t.clone());
                Ok(t)
            }
        }
    }

    /// The peer cancelled its request `id`: its server sees it cancelled,
    /// and its reply will not be sent.
    pub(crate) fn cancel_served(&mut self, id: u64) {
        if let Some(t) = self.theirs.remove(&id) {
            t.cancel();
        }
    }

    /// The reply to the peer's request `id` is ready: true if it is still
    /// wanted (then it is sent), false if the caller cancelled.
    pub(crate) fn finish_served(&mut self, id: u64) -> bool {
        self.theirs.remove(&id).is_some()
    }

    /// Registers our ping `nonce`, sent at `now`.
    pub(crate) fn start_ping(
        &mut self,
        nonce: u64,
        now: Instant,
        tx: oneshot::Sender<Duration>,
    ) -> Result<()> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        self.pings.insert(nonce, (now, tx));
        Ok(())
    }

    /// The PONG of `nonce` arrived at `now`: its round-trip time and whoever
    /// waits for it, to be handed the time once the caller has recorded it
    /// (so that the waiter, woken, sees it in the stats); `None` for a nonce
    /// nobody waits for (the heartbeat's, or one that timed out).
    pub(crate) fn on_pong(&mut self, nonce: u64, now: Instant) -> Option<PongArrived> {
        let (sent, waiter) = self.pings.remove(&nonce)?;
        Some(PongArrived {
            rtt: now.saturating_duration_since(sent),
            waiter,
        })
    }

    /// Stops waiting for ping `nonce`.
    pub(crate) fn forget_ping(&mut self, nonce: u64) {
        self.pings.remove(&nonce);
    }

    /// The link ended with `err`: every request of ours fails with it,
    /// every request served is cancelled, pings are forgotten, and nothing
    /// new is accepted.
    pub(crate) fn fail_all(&mut self, err: &Error) {
        self.ended.get_or_insert_with(|| err.clone());
        for (_, tx) in self.ours.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, t) in self.theirs.drain() {
            t.cancel();
        }
        for (_, s) in self.streams.drain() {
            s.on_link_end(err);
        }
        self.pings.clear();
    }

    /// Requests of ours waiting, requests of the peer's being served.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.ours.len(), self.theirs.len())
    }
}

/// A PONG someone waits for (see [`InFlight::on_pong`]).
#[derive(Debug)]
pub(crate) struct PongArrived {
    pub rtt: Duration,
    waiter: oneshot::Sender<Duration>,
}

impl PongArrived {
    /// Hands the round-trip time to whoever waits.
    pub(crate) fn deliver(self) {
        let _ = self.waiter.send(self.rtt);
    }
}

#[cfg(test)]
mod tests;
