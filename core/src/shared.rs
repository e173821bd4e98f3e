//! What every part of an endpoint shares: its name, configuration and
//! runtime, whether it is closed, its events and totals, and the reporting of
//! drops and of refusals for load. Each owner (router, links, receive path,
//! client) holds an `Arc<Shared>`; none of them holds another's fields.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::blocking::Blocker;
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, Events};
use crate::metrics::Counters;
use crate::peer::send::WriteThrough;
use crate::repeats::{Repeats, Verdict, COLLAPSE_WINDOW};
use crate::runtime::Lineage;
use crate::tally::{Settled, Tallies};
use crate::transport::keys::Keys;

static EPOCH: once_cell::sync::Lazy<Instant> = once_cell::sync::Lazy::new(Instant::now);

/// Milliseconds on a process-wide monotonic clock (for "last heard from").
/// It is tokio's clock, so that on a paused runtime (the virtual-time tests)
/// silence is measured in the same time the heartbeat sleeps in.
pub(crate) fn now_ms() -> u64 {
    Instant::now().saturating_duration_since(*EPOCH).as_millis() as u64
}

/// How long drops are gathered before they are reported.
const DROP_REPORT_WINDOW: Duration = Duration::from_millis(20);

/// Refusals for load are logged and reported at most this often.
const LOAD_REPORT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Shared {
    /// The runtime this endpoint was made on, to tell when it is gone
    /// (see `runtime`, "After fork()", and `runtime::shutdown`).
    lineage: Lineage,
    /// The way in from plain threads (see `blocking`).
    pub blocker: Blocker,
    pub name: Arc<str>,
    /// Random, chosen when the endpoint is made, sent in HELLO: a peer
    /// that sees this name and instance again knows it is us redialling.
    pub instance: u64,
    pub cfg: Config,
    pub rt: Handle,
    closed: AtomicBool,
    /// Cancelled when `close` starts: long waits give up.
    pub shutdown: CancellationToken,
    events: broadcast::Sender<Event>,
    /// Cancelled at the end of `close`: event streams end after what was sent.
    events_ended: CancellationToken,
    /// Counters of links that ended, and of local delivery drops.
    pub totals: Counters,
    next_id: AtomicU64,
    /// Drops not yet reported, per site: for want of room (`BUFFER_FULL`),
    /// and lost with a link (`PEER_LOST`). A reporter task turns them into
    /// `Dropped` events, coalesced over [`DROP_REPORT_WINDOW`].
    drops: Mutex<HashMap<String, [u64; 3]>>,
    drops_ready: Notify,
    /// Refusals for load since the last log line and event about them.
    load_reports: Mutex<LoadReports>,
    /// When a sender may write to a link's socket itself (all links share it).
    pub write_through: Arc<WriteThrough>,
    /// Identical warnings, collapsed with a count (see [`Shared::warn`]).
    repeats: Arc<Repeats>,
    /// Failed connection attempts per remote address.
    pub attempts: crate::attempts::Attempts,
    /// What links that ended lost in transit (see [`crate::tally`]).
    tallies: Mutex<Tallies>,
    /// The TLS settings and shared keys in use (`Endpoint::set_tls`,
    /// `set_shared_keys`, `reload_keys`).
    pub keys: Arc<Keys>,
}

/// Refusals for load (connection limit, pending handshakes), reported at
/// most once per [`LOAD_REPORT_EVERY`]: under a flood of connections, one
/// log line and one event a second say how many, instead of one each.
#[derive(Default)]
struct LoadReports {
    last: Option<Instant>,
    unreported: u64,
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        cfg: Config,
        rt: Handle,
        lineage: Lineage,
        keys: Arc<Keys>,
    ) -> Arc<Shared> {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            lineage,
            blocker: Blocker::new(rt.clone(), cfg.busy_poll, lineage),
            name,
            instance: random_u64(),
            cfg,
            rt,
            closed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            events,
            events_ended: CancellationToken::new(),
            totals: Counters::default(),
            next_id: AtomicU64::new(1),
            drops: Mutex::new(HashMap::new()),
            drops_ready: Notify::new(),
            load_reports: Mutex::new(LoadReports::default()),
            write_through: Arc::new(WriteThrough::new()),
            repeats: Arc::new(Repeats::default()),
            attempts: Default::default(),
            tallies: Mutex::new(Tallies::default()),
            keys,
        });
        shared.rt.spawn(report_drops(Arc::downgrade(&shared)));
        shared
    }

    /// A number unique within this endpoint (ids of subscriptions, services,
    /// requests, pings, links).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// True when the runtime this endpoint was made on is gone: this is a
    /// child forked since, or netchan's own runtime was shut down. It must
    /// not be touched then.
    pub(crate) fn runtime_gone(&self) -> bool {
        self.lineage.gone().is_some()
    }

    /// `CLOSED` if the endpoint's runtime is gone (see [`Lineage::gone`]).
    pub(crate) fn check_runtime(&self) -> Result<()> {
        match self.lineage.gone() {
            Some(why) => Err(Error::new(ErrorCode::Closed, why)),
            None => Ok(()),
        }
    }

    /// `CLOSED` if the endpoint is closed, or its runtime is gone.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.check_runtime()?;
        if self.is_closed() {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    /// Marks the endpoint closed; false if it already was.
    pub(crate) fn mark_closed(&self) -> bool {
        !self.closed.swap(true, SeqCst)
    }

    pub(crate) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub(crate) fn events(&self) -> Events {
        Events {
            rx: self.events.subscribe(),
            ended: self.events_ended.clone(),
        }
    }

    /// Ends every event stream after the events already sent.
    pub(crate) fn end_events(&self) {
        self.emit_drops();
        self.events_ended.cancel();
    }

    /// Counts `n` dropped messages at `site` for the next `Dropped` event.
    pub(crate) fn report_drop(&self, site: &str, n: u64) {
        self.report(site, 0, n);
    }

    /// Counts `n` messages from `peer` over the rate limit for the next
    /// `Dropped` event (with `RATE_LIMITED`).
    pub(crate) fn report_rate_limited(&self, peer: &str, n: u64) {
        self.report(peer, 2, n);
    }

    /// Counts `n` messages lost with the link to `peer` (published while
    /// it was closing, or never read by the peer: see [`crate::tally`]) and
    /// reports them (a `Dropped` event with `PEER_LOST`).
    pub(crate) fn report_loss(&self, peer: &str, n: u64) {
        self.totals.lost_with_link.fetch_add(n, Relaxed);
        self.report(peer, 1, n);
    }

    fn report(&self, site: &str, kind: usize, n: u64) {
        if n == 0 {
            return;
        }
        let mut d = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        let first = d.is_empty();
        // Under a flood of drops the site is there already: no allocation.
        match d.get_mut(site) {
            Some(c) => c[kind] += n,
            None => {
                let mut c = [0; 3];
                c[kind] = n;
                d.insert(site.to_owned(), c);
            }
        }
        drop(d);
        if first {
            self.drops_ready.notify_one();
        }
    }

    /// The tables of links' tallies (see [`crate::tally`]).
    pub(crate) fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A tally settled (see [`crate::tally`]): counts what the link to
    /// `peer` lost, or warns of a peer whose count cannot be right.
    pub(crate) fn settled(&self, peer: &str, s: Settled) {
        match s {
            Settled::Lost(n) => {
                if n > 0 {
                    tracing::warn!(endpoint = %self.name, peer, lost = n, "messages lost with a link that ended");
                }
                self.report_loss(peer, n)
            }
            Settled::Inconsistent { queued, read } => {
                self.totals.errors.fetch_add(1, Relaxed);
                self.warn(format!(
                    "peer {peer} says it queued {queued} messages on a link on which {read} were read here; its tally is ignored"
                ));
            }
        }
    }

    /// Emits one `Dropped` event per site with what was counted.
    fn emit_drops(&self) {
        let d = std::mem::take(&mut *self.drops.lock().unwrap_or_else(|p| p.into_inner()));
        for (site, [full, lost, limited]) in d {
            for (code, count) in [
                (ErrorCode::BufferFull, full),
                (ErrorCode::PeerLost, lost),
                (ErrorCode::RateLimited, limited),
            ] {
                if count > 0 {
                    self.emit(Event::Dropped {
                        site: site.clone(),
                        code,
                        count,
                    });
                }
            }
        }
    }

    /// Counts a connection refused or evicted for load, and reports it
    /// (rate-limited, see [`LoadReports`]).
    pub(crate) fn refused_for_load(&self, addr: &str, e: &Error) {
        self.totals.errors.fetch_add(1, Relaxed);
        let n = {
            let mut r = self.load_reports.lock().unwrap_or_else(|p| p.into_inner());
            r.unreported += 1;
            let now = Instant::now();
            if r.last
                .is_some_and(|t| now.duration_since(t) < LOAD_REPORT_EVERY)
            {
                return;
            }
            r.last = Some(now);
            std::mem::take(&mut r.unreported)
        };
        let detail = if n > 1 {
            format!(
                "{} ({n} connections refused since the last report)",
                e.detail()
            )
        } else {
            e.detail().to_owned()
        };
        tracing::warn!(endpoint = %self.name, addr = %addr, code = %e.code(), "connection refused: {detail}");
        self.emit(Event::ConnectionError {
            addr: addr.to_owned(),
            code: e.code(),
            detail,
            attempts: self.attempts.failed(addr),
        });
    }

    /// Logs a warning, unless an identical one was logged within the last
    /// [`COLLAPSE_WINDOW`]: then it is counted, and one line at the end of
    /// the window says how many there were
    /// (`identical_warnings_are_collapsed_with_a_count`).
    pub(crate) fn warn(&self, line: String) {
        self.warn_as(line.clone(), line)
    }

    /// [`warn`](Self::warn), collapsing warnings by `kind` rather than by
    /// their text (which may name a port, a count, ...).
    fn warn_as(&self, kind: String, line: String) {
        match self.repeats.check(&kind, Instant::now()) {
            Verdict::Log { unreported: 0 } => tracing::warn!(endpoint = %self.name, "{line}"),
            Verdict::Log { unreported: n } => {
                tracing::warn!(endpoint = %self.name, "{line} (and {n} more like it before this)")
            }
            Verdict::FirstRepeat(at) => {
                let repeats = self.repeats.clone();
                let name = self.name.clone();
                self.rt.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let n = repeats.due(&kind);
                    if n > 0 {
                        tracing::warn!(endpoint = %name, "{line} (repeated {n} times in {COLLAPSE_WINDOW:?})");
                    }
                });
            }
            Verdict::Repeat => {}
        }
    }

    /// Counts, logs and reports a connection refused or ended for an error
    /// (a protocol violation, a failed handshake, a per-peer bound).
    pub(crate) fn connection_error(&self, addr: &str, e: &Error) {
        self.totals.errors.fetch_add(1, Relaxed);
        let attempts = self.attempts.failed(addr);
        let from = crate::attempts::without_port(addr);
        // A storm from one address is one line with a count, whatever
        // port each attempt came from.
        self.warn_as(
            format!("connection refused: {} from {from}", e.code()),
            format!(
                "connection refused: {} (code={}, addr={addr}, {attempts} failed from {from})",
                e.detail(),
                e.code()
            ),
        );
        self.emit(Event::ConnectionError {
            addr: addr.to_owned(),
            code: e.code(),
            detail: e.detail().to_owned(),
            attempts,
        });
    }
}

/// Turns counted drops into `Dropped` events: the first drop of a burst
/// starts a short window, then one event per site carries the whole count.
async fn report_drops(shared: Weak<Shared>) {
    loop {
        let (ready, shutdown) = match shared.upgrade() {
            Some(s) => (s.clone(), s.shutdown.clone()),
            None => return,
        };
        tokio::select! {
            _ = ready.drops_ready.notified() => {}
            _ = shutdown.cancelled() => {
                ready.emit_drops();
                return;
            }
        }
        drop(ready);
        tokio::time::sleep(DROP_REPORT_WINDOW).await;
        match shared.upgrade() {
            Some(s) => s.emit_drops(),
            None => return,
        }
    }
}

/// A random non-zero number (HELLO's `instance` and `link`). Not fastrand's global
/// generator: on first use in a thread it takes that thread's handle, which
/// std never frees for a C program's main thread (valgrind shows it).
/// RandomState's keys come from the OS; the time, process and a counter
/// make each endpoint's differ.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static MADE: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(MADE.fetch_add(1, Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish().max(1)
}
