//! The receive path: a link's read loop, the dispatch of its frames, and
//! delivery to local subscriptions and services.
//!
//! Each read's complete frames are frozen into one shared chunk; message
//! payloads are slices of it (or copies, when small beside it: see
//! [`detach`]). Messages are gathered into runs per route and handed to each
//! subscription in one batch (one lock, at most one wakeup), in order.

mod admit;
mod aliases;
mod detach;
use aliases::Aliases;
use detach::{detach, detach_run};

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::acl::Action;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::link::state::{Input, Session};
use crate::path::validate_path;
use crate::peer::dialer::Dialer;
use crate::peer::send::Enq;
use crate::peer::Peer;
use crate::proto::DeclKind;
use crate::proto::{self, Frame, Peeked};
use crate::request::{Reply, ReplyTo, Request};
use crate::router::{Router, RxRoute};
use crate::shared::{now_ms, Shared};
use crate::transport::Reader;

/// Cached received routes beyond this many are forgotten.
const ROUTE_CACHE_MAX: usize = 4096;

/// A connection's cache of the local routes of received paths. The paths
/// come from the peer, so the map hashes with a per-process random seed
/// (colliding paths cannot be chosen) and is bounded in entries and bytes.
#[derive(Default)]
struct RxCache {
    map: hashbrown::HashMap<Bytes, Arc<RxRoute>>,
    /// Path bytes held by the keys.
    bytes: usize,
}

/// Path bytes a connection's [`RxCache`] may hold before it starts over.
const RX_CACHE_BYTES: usize = 256 * 1024;

/// A connection reader's delivery state.
#[derive(Default)]
struct RxState {
    cache: RxCache,
    /// The route of the last message gathered (kept across batches): the
    /// next message on the same path skips the cache.
    last: Option<Arc<RxRoute>>,
    /// The batch: runs of consecutive messages on one route, each with the
    /// index in `payloads` where it starts.
    runs: Vec<(Arc<RxRoute>, usize)>,
    payloads: Vec<Bytes>,
    /// Heads of the frames in the chunk being dispatched, found by the read
    /// loop (each frame's prefix is checked once).
    heads: Vec<proto::Head>,
    /// The protocol rules for the link's frames.
    session: Session,
    /// Messages (and payload bytes) read since the last [`flush`]: counted
    /// in `msgs_in` only as they are handed on, so that the count is what
    /// this side read even when reading stops mid-batch (see
    /// [`crate::tally`]).
    unflushed: (u64, u64),
    /// The paths the peer aliased on this link (ALIAS), by alias.
    aliases: Aliases,
    /// The alias `last` was found by, if it was: the next SHORT_MESSAGE
    /// with it skips the alias table and the path comparison.
    last_alias: Option<u16>,
}

/// How a received message names its path.
#[derive(Clone, Copy)]
enum PathRef<'a> {
    /// In full (MESSAGE).
    Text(&'a [u8]),
    /// By an alias defined earlier on the link (SHORT_MESSAGE).
    Alias(u16),
}

/// Frames of at least this many bytes are read into a buffer of their own
/// (see [`BigFrames`]) rather than through the link's read buffer.
const LARGE_FRAME: usize = 128 * 1024;

/// The receive buffer for large frames. Each frame is read into it exactly,
/// without the copy a partly read frame costs in the shared read buffer, and
/// leaves as its own `Bytes`. Once every piece of the previous frame has been
/// dropped (a subscriber that keeps up), the next frame reuses the same memory,
/// so a stream of large messages does not allocate or fault in fresh pages.
#[derive(Default)]
struct BigFrames {
    buf: BytesMut,
    /// The largest frame this link has delivered in full: up to this size a
    /// frame's buffer is allocated at once; beyond it, the buffer grows only
    /// as bytes arrive, so an announced length alone never allocates.
    proven: usize,
}

impl BigFrames {
    /// Moves the start of a frame of `total` bytes from `pending` (which
    /// holds nothing else) into the large-frame buffer and reads the rest
    /// of the frame from `rd`, never past its end.
    async fn read(
        &mut self,
        rd: &mut Reader,
        pending: &mut BytesMut,
        total: usize,
        peer: &Peer,
    ) -> std::result::Result<Bytes, (ErrorCode, String)> {
        let b = &mut self.buf;
        // Reclaims the old allocation when nothing refers to it any more.
        b.reserve(if total <= self.proven {
            total
        } else {
            pending.len().max(64 * 1024).min(total)
        });
        b.extend_from_slice(pending);
        pending.clear();
        while b.len() < total {
            if b.capacity() == b.len() {
                b.reserve(b.len().min(total - b.len()));
            }
            let want = (total - b.len()) as u64;
            let r = rd.as_mut().take(want).read_buf(b).await;
            peer.last_rx_ms.store(now_ms(), Relaxed);
            read_ended(r)?;
        }
        self.proven = self.proven.max(total);
        Ok(b.split().freeze())
    }
}

/// Why a link's reading ends after this read result, if it does: end of
/// stream (the peer left without CLOSE) or a read error.
fn read_ended(r: std::io::Result<usize>) -> std::result::Result<usize, (ErrorCode, String)> {
    match r {
        Ok(0) => Err((
            ErrorCode::PeerLost,
            "connection closed by peer without CLOSE".into(),
        )),
        Ok(n) => Ok(n),
        Err(e) => Err((ErrorCode::PeerLost, format!("read error: {e}"))),
    }
}

/// A link's receiver: reads and dispatches what its peer sends.
pub(crate) struct Receiver {
    pub router: Arc<Router>,
}

impl Receiver {
    /// Reads and dispatches frames until the connection ends; returns why.
    ///
    /// Each read's complete frames are frozen into one shared chunk; message
    /// payloads are slices of it. Messages are gathered and handed to each
    /// subscription in one batch (one lock, at most one wakeup), in order.
    pub(crate) async fn read_loop(
        &self,
        peer: Arc<Peer>,
        mut rd: Reader,
        mut buf: BytesMut,
    ) -> (ErrorCode, String) {
        let mut read_hint = 8 * 1024;
        let mut rx = RxState::default();
        let max_frame = self.router.shared.cfg.max_frame_size;
        let mut big = BigFrames::default();
        loop {
            let mut end = 0;
            rx.heads.clear();
            let need = loop {
                match proto::peek(&buf[end..], max_frame) {
                    Ok(Peeked::Complete(h)) => {
                        end += h.total;
                        rx.heads.push(h);
                    }
                    Ok(Peeked::NeedMore(n)) => break Ok(n),
                    Err(e) => break Err(e),
                }
            };
            if end > 0 {
                peer.tx.heard();
                let chunk = buf.split_to(end).freeze();
                if let Err(e) = self.dispatch(&peer, &chunk, &mut rx).await {
                    return self.dispatch_failed(&peer, e);
                }
            }
            let need = match need {
                Ok(n) => n,
                Err(e) => return self.protocol_violation(&peer, e),
            };
            // A large frame whose prefix is checked (`peek` saw its kind and
            // header length) is read into a buffer of its own.
            if need >= LARGE_FRAME && buf.len() >= proto::FRAME_PREFIX {
                let chunk = match big.read(&mut rd, &mut buf, need, &peer).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                read_hint = 8 * 1024;
                rx.heads.clear();
                match proto::peek(&chunk, usize::MAX) {
                    Ok(Peeked::Complete(h)) => rx.heads.push(h),
                    _ => {
                        let e = Error::new(ErrorCode::Internal, "incomplete large frame");
                        return self.protocol_violation(&peer, e);
                    }
                }
                if let Err(e) = self.dispatch(&peer, &chunk, &mut rx).await {
                    return self.dispatch_failed(&peer, e);
                }
                continue;
            }
            // Grow toward the frame's size as its bytes arrive, never ahead;
            // an idle link keeps a small buffer, a busy one doubles it.
            // A large frame is finished in its own buffer (above), so its
            // announced length alone grows this one by LARGE_FRAME at most.
            let want = need
                .saturating_sub(buf.len())
                .min(LARGE_FRAME)
                .max(read_hint);
            buf.reserve(want);
            let spare = buf.capacity() - buf.len();
            let r = rd.read_buf(&mut buf).await;
            peer.last_rx_ms.store(now_ms(), Relaxed);
            match read_ended(r) {
                Ok(n) if n == spare && read_hint < 1024 * 1024 => read_hint *= 2,
                Ok(_) => {}
                Err(end) => return end,
            }
        }
    }

    /// Called after each frame that makes something owed to the peer (a
    /// PONG, a RESULT): past `send_buffer` of owed bytes, the rest of what
    /// the peer sent waits, unread, until the writer has taken what is owed.
    /// Each batch
    /// the writer takes is progress; a peer that reads nothing for the
    /// heartbeat window (interval x misses) is cut with `BUFFER_FULL`.
    async fn wait_owed(&self, peer: &Peer) -> Result<()> {
        let window =
            self.router.shared.cfg.heartbeat_interval * self.router.shared.cfg.heartbeat_misses;
        peer.reading_paused.store(true, SeqCst);
        let r = loop {
            let progress = peer.tx.space.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let owed = peer.tx.owed();
            if owed <= self.router.shared.cfg.send_buffer {
                break Ok(());
            }
            if tokio::time::timeout(window, progress).await.is_err() {
                break Err(Error::new(
                    ErrorCode::BufferFull,
                    format!(
                        "peer {} read nothing for {window:?} while {owed} bytes of replies were owed to it",
                        peer.name
                    ),
                ));
            }
        };
        peer.reading_paused.store(false, SeqCst);
        // The wait was not silence from the peer: its bytes were left unread.
        peer.last_rx_ms.store(now_ms(), Relaxed);
        r
    }

    /// Ends a link whose peer exceeded a per-peer bound: counted, logged,
    /// reported; no CLOSE is queued behind what the peer already left unread.
    fn limit_exceeded(&self, peer: &Peer, e: Error) -> (ErrorCode, String) {
        peer.counters.errors.fetch_add(1, Relaxed);
        self.router.shared.warn(format!(
            "closing connection: {} (code={}, peer={})",
            e.detail(),
            e.code(),
            peer.name
        ));
        self.router.shared.emit(Event::ConnectionError {
            addr: peer.addr.clone(),
            code: e.code(),
            detail: e.detail().to_owned(),
            attempts: self.router.shared.attempts.failed(&peer.addr),
        });
        (e.code(), e.detail().to_owned())
    }

    /// Why reading ends when handling received frames failed: the endpoint
    /// closing, or the peer breaking the protocol.
    fn dispatch_failed(&self, peer: &Arc<Peer>, e: Error) -> (ErrorCode, String) {
        match e.code() {
            ErrorCode::Closed => (ErrorCode::Closed, e.detail().to_owned()),
            // A per-peer bound (see `wait_owed`): no CLOSE is queued behind
            // what the peer already leaves unread.
            ErrorCode::BufferFull => self.limit_exceeded(peer, e),
            _ => self.protocol_violation(peer, e),
        }
    }

    /// Handles every frame of `chunk`, whose heads are in `rx.heads`.
    async fn dispatch(&self, peer: &Arc<Peer>, chunk: &Bytes, rx: &mut RxState) -> Result<()> {
        let mut at = 0;
        let heads = std::mem::take(&mut rx.heads);
        let r = async {
            for &head in &heads {
                if head.kind == proto::Kind::Message {
                    let frame = &chunk[at..at + head.total];
                    let payload =
                        chunk.slice(at + proto::FRAME_PREFIX + head.hlen..at + head.total);
                    rx.unflushed.0 += 1;
                    rx.unflushed.1 += payload.len() as u64;
                    match proto::message_path_range(frame, head) {
                        Some(r) => self.gather(peer, PathRef::Text(&frame[r]), payload, rx)?,
                        None => {
                            if let Frame::Message { path, payload } =
                                proto::parse_frame(chunk, at, head)?
                            {
                                self.gather(peer, PathRef::Text(&path), payload, rx)?;
                            }
                        }
                    }
                    if rx.payloads.len() >= 1024 {
                        self.flush(peer, rx, chunk.len())?;
                    }
                } else if head.kind == proto::Kind::ShortMessage {
                    let alias = u16::from_be_bytes([chunk[at + 5], chunk[at + 6]]);
                    let payload = chunk.slice(at + 7..at + head.total);
                    rx.unflushed.0 += 1;
                    rx.unflushed.1 += payload.len() as u64;
                    self.gather(peer, PathRef::Alias(alias), payload, rx)?;
                    if rx.payloads.len() >= 1024 {
                        self.flush(peer, rx, chunk.len())?;
                    }
                } else if head.kind == proto::Kind::Alias {
                    // Changes nothing delivered so far: no flush.
                    if let Frame::Alias { alias, path } = proto::parse_frame(chunk, at, head)? {
                        rx.aliases.define(alias, path)?;
                    }
                } else {
                    self.flush(peer, rx, chunk.len())?;
                    let mut f = proto::parse_frame(chunk, at, head)?;
                    if let Some(p) = f.payload_mut() {
                        *p = detach(std::mem::take(p), chunk.len());
                    }
                    self.on_frame(peer, f, &mut rx.session).await?;
                    // A peer that does not read what it is owed (replies,
                    // pongs) is not read from either until it does.
                    if peer.tx.owed() > self.router.shared.cfg.send_buffer {
                        self.wait_owed(peer).await?;
                    }
                    // A megabyte of requests is thousands of frames: take
                    // turns with the other connections' tasks every 128.
                    tokio::task::consume_budget().await;
                }
                at += head.total;
            }
            self.flush(peer, rx, chunk.len())
        }
        .await;
        rx.heads = heads;
        r
    }

    /// Adds a received message to the batch, if a local subscription wants it.
    fn gather(
        &self,
        peer: &Arc<Peer>,
        path: PathRef<'_>,
        payload: Bytes,
        rx: &mut RxState,
    ) -> Result<()> {
        // No rate limit (the default) costs one branch here.
        if peer.limit.is_some() && !self.within_limit(peer, payload.len())? {
            let text = match path {
                PathRef::Text(p) => p,
                PathRef::Alias(a) => rx.aliases.path(a)?,
            };
            self.forfeit(peer, text, payload.len());
            return Ok(());
        }
        let gen = self.router.sub_gen();
        // Consecutive messages on one path (the common case) skip the hash,
        // and on one alias the path comparison too.
        let same = rx.last.as_ref().is_some_and(|r| {
            r.gen == gen
                && match path {
                    PathRef::Text(p) => *r.path == *p,
                    PathRef::Alias(a) => rx.last_alias == Some(a),
                }
        });
        if !same {
            let (text, alias) = match path {
                PathRef::Text(p) => (p, None),
                PathRef::Alias(a) => (rx.aliases.path(a)?, Some(a)),
            };
            let Some(route) = self.rx_route(peer, text, payload.len(), gen, &mut rx.cache)? else {
                return Ok(());
            };
            rx.last = Some(route);
            rx.last_alias = alias;
        }
        let starts_run = match (rx.runs.last(), &rx.last) {
            (Some((r, _)), Some(last)) => !Arc::ptr_eq(r, last),
            _ => true,
        };
        if starts_run {
            if let Some(last) = &rx.last {
                rx.runs.push((last.clone(), rx.payloads.len()));
            }
        }
        rx.payloads.push(payload);
        Ok(())
    }

    /// The local route of a received message's path; `None` if no local
    /// subscription wants it (the peer raced our unsubscribe).
    fn rx_route(
        &self,
        peer: &Arc<Peer>,
        path: &[u8],
        len: usize,
        gen: u64,
        cache: &mut RxCache,
    ) -> Result<Option<Arc<RxRoute>>> {
        if let Some(r) = cache.map.get(path) {
            if r.gen == gen {
                if r.denied {
                    // Its event was raised when the route was computed.
                    peer.counters.denied.fetch_add(1, Relaxed);
                    self.forfeit(peer, path, len);
                }
                return Ok((!r.subs.is_empty()).then(|| r.clone()));
            }
        }
        let text = std::str::from_utf8(path)
            .map_err(|_| Error::new(ErrorCode::ProtocolError, "message path is not UTF-8"))?;
        validate_path(text).map_err(|e| {
            Error::new(
                ErrorCode::ProtocolError,
                format!("message with invalid path: {}", e.detail()),
            )
        })?;
        let key = Bytes::copy_from_slice(path);
        let r = self.router.rx_route(peer, text, key.clone());
        if r.denied {
            self.router.denied(peer, Action::Publish, text, 1);
            self.forfeit(peer, path, len);
        }
        if cache.map.len() >= ROUTE_CACHE_MAX || cache.bytes + key.len() > RX_CACHE_BYTES {
            cache.map.clear();
            cache.bytes = 0;
        }
        cache.bytes += key.len();
        if let Some(old) = cache.map.insert(key, r.clone()) {
            cache.bytes -= old.path.len();
        }
        Ok((!r.subs.is_empty()).then_some(r))
    }

    /// Hands gathered messages to their subscriptions, in order, never
    /// waiting: a `Block` subscription takes what fits in its queue, and
    /// the rest waits in its credit slot's park on this link (at most the
    /// credit it granted), moved on by a task as the queue empties (see
    /// [`crate::credit`]). Credit freed is granted back in one frame.
    ///
    /// A run whose payloads are small beside the chunk they were read in is
    /// first copied into a buffer of its own (see [`detach`]).
    fn flush(&self, peer: &Arc<Peer>, rx: &mut RxState, chunk_len: usize) -> Result<()> {
        let (n, b) = std::mem::take(&mut rx.unflushed);
        if n > 0 {
            peer.counters.msgs_in.fetch_add(n, Relaxed);
            peer.counters.bytes_in.fetch_add(b, Relaxed);
        }
        let RxState { runs, payloads, .. } = rx;
        if runs.is_empty() {
            return Ok(());
        }
        let mut grants = Vec::new();
        let mut drains = Vec::new();
        // Even when a run breaks the protocol, what arrived before it is
        // delivered: the drains started are spawned below.
        let r = (|| -> Result<()> {
            let mut cin = peer.credit_in();
            for (r, (route, start)) in runs.iter().enumerate() {
                let end = runs.get(r + 1).map_or(payloads.len(), |next| next.1);
                detach_run(&mut payloads[*start..end], chunk_len);
                let last = route.subs.len().saturating_sub(1);
                for (k, sub) in route.subs.iter().enumerate() {
                    // The last subscription takes the payloads; the others share.
                    let run = &mut payloads[*start..end];
                    let dropped = if cin.has(sub.id) {
                        let (d, broke) =
                            match cin.deliver(sub.id, &route.meta, run, k == last, &mut grants) {
                                Ok(d) => (d, None),
                                Err(e) => (e.out, Some(e.error)),
                            };
                        if d.start_drain {
                            drains.push(sub.id);
                        }
                        if let Some(e) = broke {
                            return Err(e);
                        }
                        d.dropped
                    } else {
                        // No slot: a policy that drops (it never leaves
                        // messages behind), or a subscription closing.
                        sub.push_run(&route.meta, run, k == last)
                            .map_or(0, |(_, dropped)| dropped)
                    };
                    if dropped > 0 {
                        peer.counters.dropped_queue_full.fetch_add(dropped, Relaxed);
                        self.router
                            .shared
                            .report_drop(sub.pattern.as_str(), dropped);
                    }
                }
            }
            Ok(())
        })();
        runs.clear();
        payloads.clear();
        if !grants.is_empty() {
            let _ = peer.tx.push_control(&Frame::Credit(grants));
        }
        for sub in drains {
            self.router
                .shared
                .rt
                .spawn(drain_park(self.router.shared.clone(), peer.clone(), sub));
        }
        r
    }

    fn protocol_violation(&self, peer: &Peer, e: Error) -> (ErrorCode, String) {
        peer.counters.errors.fetch_add(1, Relaxed);
        self.router.shared.warn(format!(
            "closing connection: {} (code={}, peer={})",
            e.detail(),
            e.code(),
            peer.name
        ));
        self.router.shared.emit(Event::ConnectionError {
            addr: peer.addr.clone(),
            code: e.code(),
            detail: e.detail().to_owned(),
            attempts: self.router.shared.attempts.failed(&peer.addr),
        });
        let _ = peer.tx.push_control(&Frame::Close {
            code: e.code().as_u16(),
            reason: e.detail().to_owned(),
        });
        peer.tx.close();
        (e.code(), e.detail().to_owned())
    }

    /// Does what a frame other than MESSAGE asks (see [`Session::on_frame`]
    /// for what each means and which break the protocol).
    async fn on_frame(&self, peer: &Arc<Peer>, f: Frame, session: &mut Session) -> Result<()> {
        match session.on_frame(f, &peer.name)? {
            // Gathered and delivered in batches by `read_loop`.
            Input::Message => {}
            Input::Request {
                id,
                path,
                timeout,
                payload,
            } => {
                peer.counters.requests_in.fetch_add(1, Relaxed);
                if !self.within_limit(peer, payload.len())? {
                    let _ = peer.tx.push_result(
                        id,
                        ErrorCode::RateLimited.as_u16(),
                        &format!(
                            "{} sends more than {}'s rate limit allows",
                            peer.name, self.router.shared.name
                        ),
                        &Bytes::new(),
                    );
                    return Ok(());
                }
                validate_path(&path).map_err(|e| {
                    Error::new(
                        ErrorCode::ProtocolError,
                        format!("request with invalid path: {}", e.detail()),
                    )
                })?;
                let (svc, allowed) = {
                    let st = self.router.lock();
                    (
                        st.local_service(&path),
                        st.allowed(peer, Action::Request, &path),
                    )
                };
                if !allowed {
                    self.router.denied(peer, Action::Request, &path, 1);
                    let _ = peer.tx.push_result(
                        id,
                        ErrorCode::PermissionDenied.as_u16(),
                        &format!(
                            "{} ({}) may not request {path} here (access rules)",
                            peer.name, peer.identity
                        ),
                        &Bytes::new(),
                    );
                    return Ok(());
                }
                let Some(svc) = svc else {
                    let _ = peer.tx.push_result(
                        id,
                        ErrorCode::NoResponders.as_u16(),
                        &format!("{} does not serve {path}", self.router.shared.name),
                        &Bytes::new(),
                    );
                    return Ok(());
                };
                let cancel = peer.in_flight().start_serving(id)?;
                let req = Request {
                    path: path.into(),
                    payload,
                    sender: peer.name.clone(),
                    deadline: Instant::now() + timeout,
                    cancel,
                };
                let reply = Reply::new(
                    ReplyTo::Remote {
                        peer: peer.clone(),
                        id,
                    },
                    req.cancel.clone(),
                );
                // Refused or pushed-out requests are failed by `offer`.
                let _ = svc.offer(&self.router.shared, peer.id, (req, reply));
            }
            Input::Result { id, outcome } => {
                peer.in_flight().on_result(id, outcome);
            }
            Input::Cancel(id) => peer.in_flight().cancel_served(id),
            Input::Ping(n) => {
                let _ = peer.tx.push_control(&Frame::Pong(n));
            }
            Input::Pong(n) => {
                let pong = peer.in_flight().on_pong(n, Instant::now());
                if let Some(pong) = pong {
                    peer.rtt_us
                        .store(pong.rtt.as_micros().max(1) as u64, Relaxed);
                    pong.deliver();
                }
            }
            Input::Declare(items) => self.apply_declarations(peer, items)?,
            Input::Stream(f @ Frame::StreamOpen { .. }) => {
                crate::stream::serve::on_open(&self.router, peer, f)?
            }
            Input::Stream(f) => crate::stream::serve::on_stream_frame(peer, f)?,
            Input::Credit(items) => {
                let max = self.router.shared.cfg.max_declarations_per_peer;
                peer.tx.apply_credit(items, max)?;
            }
            Input::CreditAck(subs) => peer.credit_in().acked(&subs),
            Input::Tally(t) => {
                if t.link == peer.link {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        "a TALLY of the connection it came on (only ended ones are tallied)",
                    ));
                }
                let settled = self.router.shared.tallies().theirs(t);
                if let Some(s) = settled {
                    self.router.shared.settled(&peer.name, s);
                }
            }
            Input::SnapshotEnd => {
                {
                    // Under the state lock: what was held for this peer while
                    // it was away goes out before anything routed to it now.
                    let _st = self.router.lock();
                    if let Some(d) = &peer.dialer {
                        flush_offline(&self.router.shared, d, peer);
                    }
                    peer.snapshot_done.store(true, SeqCst);
                    self.router.bump(false);
                }
                peer.snapshot.notify_waiters();
                self.router.notify();
            }
            Input::Close { why, refusal } => {
                if let Some(e) = refusal {
                    *peer.close_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
                return Err(Error::new(ErrorCode::Closed, why));
            }
        }
        Ok(())
    }
}

/// Moves a subscription's parked messages from one link into its queue as
/// it empties, giving credit back as they go. Ends when the park is empty,
/// the subscription closes or the endpoint shuts down; a link that ended
/// meanwhile does not stop it (what arrived is delivered).
async fn drain_park(shared: Arc<Shared>, peer: Arc<Peer>, sub: u64) {
    loop {
        let mut grants = Vec::new();
        let inbox = peer.credit_in().drain(sub, &mut grants);
        if !grants.is_empty() {
            let _ = peer.tx.push_control(&Frame::Credit(grants));
        }
        let Some(inbox) = inbox else { return };
        tokio::select! {
            _ = inbox.wait_turn_and_space(peer.id) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Sends what was held for a returning peer to its new link, in order,
/// before anything published after its snapshot (called under the router's
/// state lock, when the new link's snapshot has arrived).
fn flush_offline(shared: &Shared, d: &Dialer, peer: &Arc<Peer>) {
    // The offline lock is held until every held message is queued: a
    // publish that found the peer away and holds on (`Dialer::hold`) sends
    // to the successor only after them (it waits for this lock), never in
    // between (`lost_messages_are_counted_after_freezes_kills_and_floods`
    // saw newer messages among the held ones).
    let mut off = d.lock_offline();
    if !off.active {
        return;
    }
    off.active = false;
    off.successor = Arc::downgrade(&peer.tx);
    off.bytes = 0;
    off.interests.clear();
    let queue = std::mem::take(&mut off.queue);
    let mut dropped = 0u64;
    let decls = peer.lock_decls();
    for (meta, payload) in queue {
        if !decls.any_matches(DeclKind::Interest, &meta.path) {
            // The peer no longer wants it: nothing is owed.
            continue;
        }
        match peer.tx.push_message(&meta, &payload) {
            Enq::Queued => {}
            _ => dropped += 1,
        }
    }
    drop(decls);
    drop(off);
    d.flushed.notify_waiters();
    d.dropped(shared, dropped);
}
