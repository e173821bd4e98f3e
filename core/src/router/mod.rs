//! The router: what this endpoint declares (subscriptions, services,
//! publisher intents) and what its peers declare, and the routes computed
//! from both.
//!
//! Everything that changes where a message or request goes happens under
//! the one state lock and bumps the generation number; cached routes carry
//! the generation they were computed at and are recomputed when it moved.
//! A declaration change is queued to every peer under that same lock, so a
//! peer's snapshot and the changes after it arrive in order.

pub(crate) mod acl;
pub(crate) mod decls;
pub(crate) mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{Error, ErrorCode, Result};
use crate::inbox::{Inbox, Meta};
use crate::path::{validate_path, Pattern};
use crate::peer::dialer::Dialer;
use crate::peer::Peer;
use crate::proto::{self, Decl, DeclKind, Frame};
use crate::service_queue::ServiceShared;
use crate::shared::Shared;
use crate::stream::StreamServe;
pub(crate) use state::{Route, RxRoute, State};

/// Route generations, unique across every endpoint of the process.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_gen() -> u64 {
    GENERATION.fetch_add(1, Relaxed)
}

/// A cache of the route a publisher published on last: a stream on one
/// path finds its route without the shared map's lock and hash. It holds
/// the route weakly: the map owns routes (and through them peers), and
/// forgets them when a peer goes, so a cache never keeps a lost peer alive.
#[derive(Default)]
pub(crate) struct RouteCache(std::sync::Mutex<std::sync::Weak<Route>>);

/// Cached routes beyond this many are forgotten (a local publisher on ever
/// new paths could otherwise grow the cache without bound).
const ROUTE_CACHE_MAX: usize = 4096;
/// Declarations per DECLARE frame in a snapshot.
const SNAPSHOT_BATCH: usize = 512;

pub(crate) struct Router {
    pub shared: Arc<Shared>,
    state: Mutex<State>,
    /// Moves whenever a route may have changed.
    gen: AtomicU64,
    /// Moves whenever the local subscriptions changed (received messages'
    /// routes depend on nothing else).
    sub_gen: AtomicU64,
    /// Notified after every change (discovery waits on it).
    changed: Notify,
    routes: RwLock<HashMap<Box<str>, Arc<Route>, rustc_hash::FxBuildHasher>>,
    /// Picks the next of several peers serving a path.
    round_robin: AtomicUsize,
    /// The route `Endpoint::publish` used last (see [`Router::route`]).
    last: RouteCache,
}

impl Router {
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<Router> {
        Arc::new(Router {
            shared,
            state: Mutex::new(State::default()),
            gen: AtomicU64::new(next_gen()),
            sub_gen: AtomicU64::new(1),
            changed: Notify::new(),
            routes: RwLock::new(HashMap::default()),
            round_robin: AtomicUsize::new(0),
            last: RouteCache::default(),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a change to the local declarations and sends the resulting
    /// declaration to every peer, all under the state lock. With `sync`, a
    /// PING follows it on every link: its PONG says the peer has applied
    /// it (frames of the control lane are handled in order).
    ///
    /// `slot` gives, per peer, a CREDIT frame that goes first (a
    /// subscription's credit slot); each peer's frames are queued together,
    /// one write when its link is idle.
    pub(crate) fn change(
        &self,
        f: impl FnOnce(&mut State) -> Option<Decl>,
        subs_changed: bool,
        sync: bool,
        slot: impl Fn(&Peer) -> Option<Frame>,
    ) -> Result<Synced> {
        let mut st = self.lock();
        // Checked under the lock: close() empties the state under it too.
        self.shared.check_open()?;
        let decl = f(&mut st);
        let declare = decl
            .as_ref()
            .map(|d| Frame::Declare(proto::Declarations::new(std::slice::from_ref(d))));
        let mut synced = Synced(Vec::new());
        let mut frames = Vec::with_capacity(3);
        for p in &st.peers {
            frames.clear();
            frames.extend(slot(p));
            // Only what the peer may see (see `router::acl`).
            if decl
                .as_ref()
                .is_some_and(|d| st.visible(p, d.kind, &d.pattern))
            {
                frames.extend(declare.clone());
            }
            if sync {
                let nonce = self.shared.next_id();
                let (tx, rx) = tokio::sync::oneshot::channel();
                if p.in_flight()
                    .start_ping(nonce, tokio::time::Instant::now(), tx)
                    .is_ok()
                {
                    frames.push(Frame::Ping(nonce));
                    synced.0.push((p.clone(), nonce, rx));
                }
            }
            let _ = p.tx.push_controls(&frames);
        }
        self.bump(subs_changed);
        drop(st);
        self.changed.notify_waiters();
        Ok(synced)
    }

    /// Moves the generations (call under the state lock, or with the change
    /// already visible to route computations).
    pub(crate) fn bump(&self, subs_changed: bool) {
        self.gen.store(next_gen(), SeqCst);
        if subs_changed {
            self.sub_gen.fetch_add(1, SeqCst);
        }
    }

    /// Invalidates every cached route (something they depend on changed
    /// outside a declaration change: a peer's declarations, a dialler that
    /// gave up, a peer that came or went).
    pub(crate) fn routes_changed(&self) {
        {
            let _st = self.lock();
            self.bump(false);
        }
        self.changed.notify_waiters();
    }

    /// Wakes everything waiting for a change (discovery, requests waiting
    /// for a responder).
    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }

    pub(crate) fn changed_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The generation of the local subscriptions.
    pub(crate) fn sub_gen(&self) -> u64 {
        self.sub_gen.load(Relaxed)
    }

    /// Adds a local subscription's inbox and declares its interest. A
    /// `Block` subscription first opens its credit slot on every link.
    pub(crate) fn subscribe(&self, inbox: &Arc<Inbox>) -> Result<Synced> {
        self.change(
            |st| {
                st.subs.insert(inbox.id, inbox.clone());
                st.declare(DeclKind::Interest, &inbox.pattern)
            },
            true,
            true,
            |p| {
                let open = p.credit_in().open(inbox);
                open.map(|item| Frame::Credit(vec![item]))
            },
        )
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        let _ = self.change(
            |st| {
                let s = st.subs.remove(&id)?;
                st.undeclare(DeclKind::Interest, &s.pattern)
            },
            true,
            false,
            |p| {
                let close = p.credit_in().close(id);
                close.map(|item| Frame::Credit(vec![item]))
            },
        );
    }

    /// Adds a local service and declares it.
    pub(crate) fn serve(&self, id: u64, svc: Arc<ServiceShared>) -> Result<Synced> {
        let pattern = svc.pattern.clone();
        self.change(
            |st| {
                st.services.insert(id, svc);
                st.declare(DeclKind::Service, &pattern)
            },
            false,
            true,
            |_| None,
        )
    }

    pub(crate) fn unserve(&self, id: u64) {
        let _ = self.change(
            |st| {
                let s = st.services.remove(&id)?;
                st.undeclare(DeclKind::Service, &s.pattern)
            },
            false,
            false,
            |_| None,
        );
    }

    /// Adds a local stream service and declares it.
    pub(crate) fn serve_stream(&self, id: u64, svc: Arc<StreamServe>) -> Result<Synced> {
        let pattern = svc.svc.pattern.clone();
        self.change(
            |st| {
                st.stream_services.insert(id, svc);
                st.declare(DeclKind::StreamService, &pattern)
            },
            false,
            true,
            |_| None,
        )
    }

    pub(crate) fn unserve_stream(&self, id: u64) {
        let _ = self.change(
            |st| {
                let s = st.stream_services.remove(&id)?;
                st.undeclare(DeclKind::StreamService, &s.svc.pattern)
            },
            false,
            false,
            |_| None,
        );
    }

    /// The local stream service for `path`, if there is one.
    pub(crate) fn local_stream_service(&self, path: &str) -> Option<Arc<StreamServe>> {
        self.lock()
            .stream_services
            .values()
            .find(|s| s.svc.pattern.matches(path))
            .cloned()
    }

    /// True if a stream opened on `path` now would find a server.
    pub(crate) fn has_stream_servers(&self, path: &str) -> Result<bool> {
        self.shared.check_open()?;
        validate_path(path)?;
        let st = self.lock();
        Ok(st
            .stream_services
            .values()
            .any(|s| s.svc.pattern.matches(path))
            || st.peers.iter().any(|p| {
                p.lock_decls().any_matches(DeclKind::StreamService, path)
                    && st.allowed(p, crate::acl::Action::Stream, path)
            }))
    }

    /// The next of the connected peers serving streams on `path`, in turn.
    pub(crate) fn next_stream_server(&self, path: &str) -> Option<Arc<Peer>> {
        let st = self.lock();
        let candidates: Vec<Arc<Peer>> = st
            .peers
            .iter()
            .filter(|p| p.lock_decls().any_matches(DeclKind::StreamService, path))
            .filter(|p| st.allowed(p, crate::acl::Action::Stream, path))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = self.round_robin.fetch_add(1, Relaxed) % candidates.len();
        Some(candidates[i].clone())
    }

    /// Declares a publisher intent.
    pub(crate) fn declare_publisher(&self, id: u64, pattern: &Pattern) -> Result<()> {
        self.change(
            |st| {
                st.publishers.insert(id, pattern.clone());
                st.declare(DeclKind::Publisher, pattern)
            },
            false,
            false,
            |_| None,
        )
        .map(drop)
    }

    pub(crate) fn withdraw_publisher(&self, id: u64) {
        let _ = self.change(
            |st| {
                let p = st.publishers.remove(&id)?;
                st.undeclare(DeclKind::Publisher, &p)
            },
            false,
            false,
            |_| None,
        );
    }

    /// Names of the endpoints (this one included) with a declaration of
    /// `kind` overlapping `pattern`.
    pub(crate) fn discover(&self, kind: DeclKind, pattern: &str) -> Result<Vec<String>> {
        let pattern = Pattern::new(pattern)?;
        Ok(self.lock().discover(&self.shared.name, kind, &pattern))
    }

    pub(crate) fn peer_by_name(&self, name: &str) -> Result<Arc<Peer>> {
        self.lock()
            .peers
            .iter()
            .find(|p| &*p.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::UnknownPeer,
                    format!("no connected peer is named {name:?}"),
                )
            })
    }

    pub(crate) fn has_peer(&self, name: &str) -> bool {
        self.lock().peers.iter().any(|p| &*p.name == name)
    }

    /// The connected peers, now.
    pub(crate) fn peers(&self) -> Vec<Arc<Peer>> {
        self.lock().peers.clone()
    }

    /// Adds a peer, queueing this endpoint's snapshot to it first so that
    /// every later declaration change reaches it after the snapshot.
    pub(crate) fn register(&self, st: &mut State, peer: &Arc<Peer>) {
        let opens: Vec<_> = {
            let mut cin = peer.credit_in();
            st.subs.values().filter_map(|s| cin.open(s)).collect()
        };
        for chunk in opens.chunks(SNAPSHOT_BATCH) {
            let _ = peer.tx.push_control(&Frame::Credit(chunk.to_vec()));
        }
        let mut snap = st.snapshot();
        snap.retain(|d| st.visible(peer, d.kind, &d.pattern));
        for chunk in snap.chunks(SNAPSHOT_BATCH) {
            let _ = peer
                .tx
                .push_control(&Frame::Declare(proto::Declarations::new(chunk)));
        }
        let _ = peer.tx.push_control(&Frame::SnapshotEnd);
        // What this side owes the peer instance for links that ended
        // (see `crate::tally`).
        if peer.link != 0 {
            for t in self.shared.tallies().take_owed(&peer.name, peer.instance) {
                let _ = peer.tx.push_control(&Frame::Tally {
                    link: t.link,
                    messages: t.messages,
                });
            }
        }
        st.peers.push(peer.clone());
        self.bump(false);
    }

    /// Removes a peer (by link id); true if it was there. Routes that held
    /// it (and its socket) are forgotten.
    pub(crate) fn remove(&self, st: &mut State, peer: &Peer) -> bool {
        let before = st.peers.len();
        st.peers.retain(|p| p.id != peer.id);
        let removed = st.peers.len() != before;
        if removed {
            self.bump(false);
            self.routes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        removed
    }

    /// True if a message published on `path` now would reach a subscriber.
    pub(crate) fn has_subscribers(&self, path: &str) -> Result<bool> {
        let r = self.route(path)?;
        Ok(!r.peers.is_empty() || !r.subs.is_empty())
    }

    /// True if a request on `path` now would find a server.
    pub(crate) fn has_servers(&self, path: &str) -> Result<bool> {
        self.shared.check_open()?;
        validate_path(path)?;
        let st = self.lock();
        Ok(st.local_service(path).is_some() || !st.remote_servers(path).is_empty())
    }

    /// The local service for `path`, if there is one.
    pub(crate) fn local_service(&self, path: &str) -> Option<Arc<ServiceShared>> {
        self.lock().local_service(path)
    }

    /// The next of the connected peers serving `path`, taken in turn.
    pub(crate) fn next_server(&self, path: &str) -> Option<Arc<Peer>> {
        let candidates = self.lock().remote_servers(path);
        if candidates.is_empty() {
            return None;
        }
        let i = self.round_robin.fetch_add(1, Relaxed) % candidates.len();
        Some(candidates[i].clone())
    }

    /// Peers whose snapshot has not arrived yet (they may serve a path).
    pub(crate) fn peers_not_ready(&self) -> Vec<Arc<Peer>> {
        self.lock()
            .peers
            .iter()
            .filter(|p| !p.is_ready())
            .cloned()
            .collect()
    }

    /// Waits until `ready()` holds (re-checked after every change), up to
    /// `timeout`; returns whether it did.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.changed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if ready()? {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, n).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// The route for a publish on `path`: the route the endpoint published
    /// on last if it is that path and still valid, else from the shared
    /// map. (A thread that finds the last route's slot busy, another thread
    /// publishing at that moment, goes to the map rather than wait.)
    pub(crate) fn route(&self, path: &str) -> Result<Arc<Route>> {
        self.shared.check_open()?;
        let gen = self.gen.load(SeqCst);
        let Ok(mut last) = self.last.0.try_lock() else {
            return self.route_slow(path, gen);
        };
        if let Some(r) = last.upgrade() {
            if r.gen == gen && &*r.meta.path == path {
                return Ok(r);
            }
        }
        let r = self.route_slow(path, gen)?;
        *last = Arc::downgrade(&r);
        Ok(r)
    }

    /// [`route`](Self::route) through a publisher's own cache; `check` runs
    /// on a path the cache does not hold (the publisher's pattern).
    pub(crate) fn route_cached(
        &self,
        path: &str,
        cache: &RouteCache,
        check: impl FnOnce(&str) -> Result<()>,
    ) -> Result<Arc<Route>> {
        self.shared.check_open()?;
        let gen = self.gen.load(SeqCst);
        let mut c = cache.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = c.upgrade() {
            if r.gen == gen && &*r.meta.path == path {
                return Ok(r);
            }
        }
        check(path)?;
        let r = self.route_slow(path, gen)?;
        *c = Arc::downgrade(&r);
        Ok(r)
    }

    fn route_slow(&self, path: &str, gen: u64) -> Result<Arc<Route>> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            if r.gen == gen {
                return Ok(r.clone());
            }
        }
        validate_path(path)?;
        let route = {
            let st = self.lock();
            Arc::new(st.route(
                self.gen.load(SeqCst),
                path,
                self.shared.cfg.max_frame_size,
                &self.shared.name,
            ))
        };
        let mut cache = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ROUTE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.into(), route.clone());
        Ok(route)
    }

    /// The local route of a message received from `sender` on `path`
    /// (`text` is `key` as a checked path), computed now.
    pub(crate) fn rx_route(&self, sender: &Peer, text: &str, key: Bytes) -> Arc<RxRoute> {
        let st = self.lock();
        let denied = !st.allowed(sender, crate::acl::Action::Publish, text);
        let subs = if denied {
            Vec::new()
        } else {
            st.local_subs(text)
        };
        Arc::new(RxRoute {
            gen: self.sub_gen.load(SeqCst),
            path: key,
            // Nobody receives a message on a route without subscriptions.
            meta: Arc::new(Meta {
                path: if subs.is_empty() {
                    "".into()
                } else {
                    text.into()
                },
                sender: sender.name.clone(),
            }),
            subs,
            denied,
        })
    }

    /// Takes everything for `close`: the peers, subscriptions, services and
    /// dialers, leaving the state empty.
    pub(crate) fn take_all(&self) -> Closing {
        let mut st = self.lock();
        let peers = std::mem::take(&mut st.peers);
        let subs: Vec<_> = std::mem::take(&mut st.subs).into_values().collect();
        let services: Vec<_> = std::mem::take(&mut st.services).into_values().collect();
        let stream_services: Vec<_> = std::mem::take(&mut st.stream_services)
            .into_values()
            .collect();
        let dialers = std::mem::take(&mut st.dialers);
        st.counts.clear();
        st.publishers.clear();
        self.bump(true);
        drop(st);
        self.changed.notify_waiters();
        Closing {
            peers,
            subs,
            services,
            stream_services,
            dialers,
        }
    }
}

/// A declaration on its way to the connected peers: one PONG to wait for
/// per link (see [`Router::change`]).
#[must_use]
pub(crate) struct Synced(Vec<(Arc<Peer>, u64, tokio::sync::oneshot::Receiver<Duration>)>);

impl Synced {
    /// Waits until every peer has applied the declaration (or its link
    /// ended).
    pub(crate) async fn all(mut self) {
        while let Some((_, _, rx)) = self.0.last_mut() {
            let _ = rx.await;
            self.0.pop();
        }
    }

    /// True if there is nothing to wait for (no peer was connected).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Synced {
    /// A wait that ended (its bound passed, or nobody waited) forgets the
    /// PINGs still unanswered: a peer that never answers does not collect
    /// one per `subscribe`.
    fn drop(&mut self) {
        for (peer, nonce, _) in self.0.drain(..) {
            peer.in_flight().forget_ping(nonce);
        }
    }
}

/// A declaration whose arrival at the peers is still to be waited for,
/// with the bound (`Config::declare_wait`).
pub(crate) struct Declaring {
    pub synced: Synced,
    pub wait: Duration,
}

impl Declaring {
    /// Waits (up to the bound) until every peer connected when it was made
    /// has it.
    pub(crate) async fn done(self) {
        let _ = tokio::time::timeout(self.wait, self.synced.all()).await;
    }

    /// `ready()` of a subscription or service: the wait it was handed, if
    /// any (taken: only the first call waits).
    pub(crate) async fn ready(slot: &Mutex<Option<Declaring>>) {
        let d = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(d) = d {
            d.done().await;
        }
    }
}

/// What `close` has to end, taken from the router at once.
pub(crate) struct Closing {
    pub peers: Vec<Arc<Peer>>,
    pub subs: Vec<Arc<Inbox>>,
    pub services: Vec<Arc<ServiceShared>>,
    pub stream_services: Vec<Arc<StreamServe>>,
    pub dialers: Vec<Arc<Dialer>>,
}
