//! A peer: one connected endpoint (its declarations, its send queue, what is
//! in flight on its link, its counters), and a dialled address that may be
//! away (`dialer`).

pub(crate) mod dialer;
pub(crate) mod send;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::credit::CreditIn;
use crate::error::{Error, ErrorCode};
use crate::link::state::InFlight;
use crate::metrics::{CounterStats, Counters};
use crate::proto::Frame;
use crate::router::decls::RemoteDecls;
use dialer::Dialer;
use send::SendQueue;

/// A peer after its handshake.
pub(crate) struct Peer {
    pub id: u64,
    pub name: Arc<str>,
    /// What it proved when it connected (`cert:NAME`, `key:ID`, `uid:N`,
    /// `anonymous`): what access rules name (see [`crate::acl`]).
    pub identity: Arc<str>,
    /// Its rate limit (see [`crate::ratelimit`]); `None`: none.
    pub limit: Option<crate::ratelimit::PeerLimit>,
    pub addr: String,
    pub inbound: bool,
    /// The peer's HELLO `instance` (0: not given).
    pub instance: u64,
    /// This link's id for tallies (see [`crate::tally`]); 0: none (the peer
    /// gave no HELLO `link`).
    pub link: u64,
    pub max_frame: usize,
    pub decls: Mutex<RemoteDecls>,
    pub snapshot_done: AtomicBool,
    pub snapshot: Notify,
    pub tx: Arc<SendQueue>,
    /// Requests both ways and pings in flight on the link.
    in_flight: Mutex<InFlight>,
    pub counters: Counters,
    pub rtt_us: AtomicU64,
    /// Cancelled when the link's reader has stopped reading (the peer closed,
    /// or the link ended for another reason).
    pub reader_done: CancellationToken,
    /// Cancelled when the link ends, for whatever reason; `failure` then
    /// says why if something other than the link's reader ended it.
    pub dead: CancellationToken,
    failure: Mutex<Option<(ErrorCode, String)>>,
    /// The dialler that made this connection (None for inbound ones).
    pub dialer: Option<Arc<Dialer>>,
    /// When bytes last arrived (`link::now_ms`), for heartbeats.
    pub last_rx_ms: AtomicU64,
    /// True while the reader waits for the peer to read what it is owed;
    /// the heartbeat then leaves liveness to the reader's own deadline.
    pub reading_paused: AtomicBool,
    /// Replaced by a newer connection to the same peer: not a loss.
    pub replaced: AtomicBool,
    /// The code and reason of the peer's CLOSE frame, if it sent one.
    pub close_error: Mutex<Option<Error>>,
    /// Our subscriptions' credit slots on this link (see [`crate::credit`]).
    credit_in: Mutex<CreditIn>,
}

/// What a new [`Peer`] is made from.
pub(crate) struct NewPeer {
    pub id: u64,
    pub name: Arc<str>,
    pub identity: Arc<str>,
    pub limit: Option<crate::ratelimit::PeerLimit>,
    pub addr: String,
    pub inbound: bool,
    pub instance: u64,
    pub link: u64,
    pub max_frame: usize,
    pub tx: Arc<SendQueue>,
    pub dialer: Option<Arc<Dialer>>,
    pub now_ms: u64,
}

impl Peer {
    pub(crate) fn new(p: NewPeer) -> Peer {
        Peer {
            id: p.id,
            name: p.name,
            identity: p.identity,
            limit: p.limit,
            addr: p.addr,
            inbound: p.inbound,
            instance: p.instance,
            link: p.link,
            max_frame: p.max_frame,
            decls: Mutex::new(RemoteDecls::default()),
            snapshot_done: AtomicBool::new(false),
            snapshot: Notify::new(),
            tx: p.tx,
            in_flight: Mutex::new(InFlight::default()),
            counters: Counters::default(),
            rtt_us: AtomicU64::new(0),
            dead: CancellationToken::new(),
            reader_done: CancellationToken::new(),
            failure: Mutex::new(None),
            dialer: p.dialer,
            last_rx_ms: AtomicU64::new(p.now_ms),
            reading_paused: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
            close_error: Mutex::new(None),
            credit_in: Mutex::new(CreditIn::new(p.id)),
        }
    }

    /// Our subscriptions' credit slots on this link.
    pub(crate) fn credit_in(&self) -> std::sync::MutexGuard<'_, CreditIn> {
        self.credit_in.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is in flight on the link (see [`InFlight`]).
    pub(crate) fn in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn lock_decls(&self) -> std::sync::MutexGuard<'_, RemoteDecls> {
        self.decls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the link from outside its reader (a slow consumer disconnected,
    /// a heartbeat that heard nothing): the link's task sees `dead` and
    /// reports this code and reason. The first failure wins.
    pub(crate) fn fail(&self, code: ErrorCode, reason: String) {
        self.fail_telling(code, reason, None);
    }

    /// [`fail`](Self::fail), telling the peer first with `tell` (a CLOSE,
    /// which overtakes queued data). The reason is recorded before the
    /// frame can leave: a peer that closes the socket as soon as it is told
    /// does not make the link end for "closed by peer" instead.
    pub(crate) fn fail_telling(&self, code: ErrorCode, reason: String, tell: Option<&Frame>) {
        {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() && !self.dead.is_cancelled() {
                *f = Some((code, reason));
            }
        }
        if let Some(frame) = tell {
            let _ = self.tx.push_control(frame);
        }
        self.tx.close();
        self.dead.cancel();
    }

    /// Why the link was failed from outside its reader, if it was.
    pub(crate) fn failure(&self) -> Option<(ErrorCode, String)> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fails everything in flight on this link; nothing new enters.
    pub(crate) fn fail_in_flight(&self, err: &Error) {
        self.in_flight().fail_all(err);
    }

    /// This peer's counters, including those kept by the send queue.
    pub(crate) fn snapshot(&self) -> CounterStats {
        let mut c = self.counters.snapshot();
        let (m, b) = self.tx.sent();
        c.msgs_out = m;
        c.bytes_out = b;
        c
    }

    /// True once its declaration snapshot has arrived.
    pub(crate) fn is_ready(&self) -> bool {
        self.snapshot_done.load(SeqCst)
    }

    /// Waits until its snapshot has arrived or the link ended.
    pub(crate) async fn ready(&self) {
        loop {
            let n = self.snapshot.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_ready() || self.dead.is_cancelled() {
                return;
            }
            tokio::select! { _ = n => {}, _ = self.dead.cancelled() => return }
        }
    }

    /// Why the link ended while connecting: the peer's CLOSE if it sent one.
    pub(crate) fn ended_error(&self, during: &str) -> Error {
        self.close_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.lost_error(during))
    }

    pub(crate) fn lost_error(&self, reason: &str) -> Error {
        Error::new(
            ErrorCode::PeerLost,
            format!("link to peer {} lost: {reason}", self.name),
        )
    }
}
