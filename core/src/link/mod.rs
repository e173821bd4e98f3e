//! Links: connections to peers. Listening and accepting (with admission of
//! pending handshakes), dialling, the handshake, the tasks of a live link
//! (reader, writer, heartbeat), the loss of a link, and closing them all.
//! Keeping dialled addresses connected is in [`supervise`].

mod accept;
mod lifecycle;
pub(crate) mod state;
mod supervise;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::admission::{Admission, Origin, Ticket};
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::path::Pattern;
use crate::peer::dialer::Dialer;
use crate::peer::send::{writer_loop, SendQueue};
use crate::peer::{NewPeer, Peer};
use crate::proto::{self, DeclKind, Frame, Hello};
use crate::router::Router;
use crate::rx::Receiver;
use crate::shared::{now_ms, Shared};
use crate::tally::Tally;
use crate::transport::{dial, Conn, Listener, Reader};
use accept::accept_loop;
use state::{Handshake, Step};
pub(crate) use supervise::{heartbeat, supervise};

/// How long closing links may take to flush what was queued.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

pub(crate) struct Links {
    pub shared: Arc<Shared>,
    pub router: Arc<Router>,
    /// Connections (inbound and outbound) at once, for `max_connections`.
    connections: AtomicUsize,
    admission: Arc<Admission>,
    /// Places for connections refused for load to linger (see `reject_for_load`).
    drains: tokio::sync::Semaphore,
    /// Listeners opened (a peer can dial us only if there is one).
    listeners: AtomicUsize,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Listening addresses with their accept loops: `close` and `suspend`
    /// stop them and wait, so that the listeners are gone (and their
    /// addresses free) when they return; `resume` listens on them again.
    listening: Mutex<Vec<Acceptor>>,
    /// True between `suspend` and `resume`: links stay down.
    suspended: std::sync::atomic::AtomicBool,
    /// Notified by `resume`.
    resumed: tokio::sync::Notify,
    /// One `suspend`/`resume` at a time.
    lifecycle: tokio::sync::Mutex<()>,
    /// What `suspend` stopped listening on, for `resume`.
    was_listening: Mutex<Vec<crate::transport::Addr>>,
}

/// A listening address and its accept loop.
struct Acceptor {
    addr: crate::transport::Addr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Links {
    pub(crate) fn new(shared: Arc<Shared>, router: Arc<Router>) -> Arc<Links> {
        let cfg = &shared.cfg;
        Arc::new(Links {
            admission: Admission::new(
                cfg.max_pending_handshakes,
                cfg.max_pending_handshakes_per_address,
            ),
            connections: AtomicUsize::new(0),
            drains: tokio::sync::Semaphore::new(LOAD_DRAINS),
            listeners: AtomicUsize::new(0),
            writers: Mutex::new(Vec::new()),
            listening: Mutex::new(Vec::new()),
            suspended: std::sync::atomic::AtomicBool::new(false),
            resumed: tokio::sync::Notify::new(),
            lifecycle: tokio::sync::Mutex::new(()),
            was_listening: Mutex::new(Vec::new()),
            shared,
            router,
        })
    }

    /// Listens on `addr` and accepts connections there; returns the bound
    /// address (a TCP port 0 resolved).
    pub(crate) async fn listen(self: &Arc<Self>, addr: &crate::transport::Addr) -> Result<String> {
        let (listener, bound) =
            Listener::bind(addr, &self.shared.keys, self.shared.cfg.unix_mode).await?;
        tracing::info!(endpoint = %self.shared.name, addr = %bound, "listening");
        self.listeners.fetch_add(1, Relaxed);
        let stop = tokio_util::sync::CancellationToken::new();
        let task = self
            .shared
            .rt
            .spawn(accept_loop(self.clone(), listener, stop.clone()));
        let text = bound.to_string();
        self.listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Acceptor {
                addr: bound,
                stop,
                task,
            });
        Ok(text)
    }

    /// Stops every accept loop and waits until its listener is gone;
    /// returns the addresses they listened on.
    async fn stop_listening(&self) -> Vec<crate::transport::Addr> {
        let all: Vec<Acceptor> =
            std::mem::take(&mut *self.listening.lock().unwrap_or_else(|p| p.into_inner()));
        let mut addrs = Vec::with_capacity(all.len());
        for a in all {
            a.stop.cancel();
            let _ = a.task.await;
            addrs.push(a.addr);
        }
        addrs
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(SeqCst)
    }

    /// Dials once, handshakes, and waits for the peer's snapshot. If a
    /// connection to the same peer already exists (it dialled us), that one
    /// is returned.
    pub(crate) async fn connect_once(self: &Arc<Self>, d: &Arc<Dialer>) -> Result<Arc<Peer>> {
        self.shared.check_open()?;
        let connect_timeout = self.shared.cfg.connect_timeout;
        let conn =
            match tokio::time::timeout(connect_timeout, dial(&d.addr, &self.shared.keys)).await {
                Ok(c) => c?,
                Err(_) => {
                    return Err(Error::new(
                        ErrorCode::ConnectRefused,
                        format!(
                            "cannot connect to {}: no answer within {connect_timeout:?}",
                            d.addr
                        ),
                    ))
                }
            };
        let deadline = Instant::now() + self.shared.cfg.handshake_timeout;
        // A duplicate of a connection the peer made to us (both dialled):
        // the kept one may still be completing its handshake here; wait
        // for it rather than fail.
        let me = self.clone();
        let existing = |e: Error| async move {
            let me = me;
            let Some(name) = d.name() else { return Err(e) };
            // (Only possible if we listen: otherwise nobody dials us.)
            if e.code() == ErrorCode::NameInUse && me.listeners.load(Relaxed) > 0 {
                let timeout = me.shared.cfg.handshake_timeout;
                let _ = me
                    .router
                    .wait_until(timeout, || Ok(me.router.has_peer(&name)))
                    .await;
            }
            // Only a connection the peer dialled counts (the kept one of a
            // pair); our own refused attempt may still be registered here.
            match me.router.peer_by_name(&name) {
                Ok(p) if p.inbound => Ok(p),
                _ => Err(e),
            }
        };
        let peer = match self
            .clone()
            .establish(conn, false, Some(d.clone()), None)
            .await
        {
            Ok(p) => p,
            Err(e) => return existing(e).await,
        };
        let wait = async {
            peer.ready().await;
            if peer.is_ready() {
                Ok(())
            } else {
                Err(peer.ended_error("closed during the handshake"))
            }
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(())) => Ok(peer),
            Ok(Err(e)) => existing(e).await,
            Err(_) => {
                existing(Error::new(
                    ErrorCode::Timeout,
                    format!("peer {} sent no declaration snapshot in time", peer.name),
                ))
                .await
            }
        }
    }

    /// Handshake, registration, and the reader and writer tasks.
    ///
    /// `ticket` is an inbound connection's place among pending handshakes
    /// (see [`crate::admission`]): it is given up once the peer's HELLO is
    /// checked, and if a newer connection evicts it first, this one is closed
    /// with `OVERLOADED`.
    pub(super) async fn establish(
        self: Arc<Self>,
        conn: Conn,
        inbound: bool,
        dialer: Option<Arc<Dialer>>,
        ticket: Option<Ticket>,
    ) -> Result<Arc<Peer>> {
        let Conn {
            mut reader,
            writer,
            remote,
            origin,
            identity,
        } = conn;
        let identity = identity.unwrap_or_else(|| match origin {
            Origin::Uid(uid) => crate::acl::Identity {
                id: format!("uid:{uid}"),
                names: Vec::new(),
            },
            _ => crate::acl::Identity::anonymous(),
        });
        let fail = |e: Error| {
            self.shared.connection_error(&remote, &e);
            e
        };
        if self.connections.fetch_add(1, SeqCst) >= self.shared.cfg.max_connections {
            self.connections.fetch_sub(1, SeqCst);
            let e = Error::new(
                ErrorCode::Overloaded,
                format!(
                    "connection limit of {} reached",
                    self.shared.cfg.max_connections
                ),
            );
            drop(ticket);
            self.shared.refused_for_load(&remote, &e);
            self.reject_for_load(reader, writer, &e).await;
            return Err(e);
        }
        let link_nonce = crate::shared::random_u64();
        let hello = Hello {
            magic: proto::MAGIC.into(),
            min_version: proto::VERSION_MIN,
            max_version: proto::VERSION_MAX,
            name: self.shared.name.to_string(),
            max_frame: self.shared.cfg.max_frame_size as u32,
            heartbeat_ms: self
                .shared
                .cfg
                .heartbeat_interval
                .as_millis()
                .min(u32::MAX as u128) as u32,
            instance: self.shared.instance,
            // A supervisor's redial: it knew the peer, and has no link to
            // it now (it waits while one exists).
            rejoin: dialer.as_ref().is_some_and(|d| d.name().is_some()),
            link: link_nonce,
        };
        // An inbound connection has `hello_timeout` to send its HELLO.
        let limit = match ticket {
            Some(_) => self
                .shared
                .cfg
                .hello_timeout
                .min(self.shared.cfg.handshake_timeout),
            None => self.shared.cfg.handshake_timeout,
        };
        let handshake = Handshake::new(hello, Instant::now(), limit);
        // A HELLO is small (at most HANDSHAKE_MAX_FRAME): a pending
        // connection holds no more than what it has sent so far.
        let mut rbuf = BytesMut::with_capacity(256);
        let hs = async {
            let mut out = BytesMut::new();
            handshake.hello(&mut out)?;
            writer
                .write_all(&out[..])
                .await
                .map_err(|e| Error::new(ErrorCode::PeerLost, format!("sending HELLO: {e}")))?;
            loop {
                match handshake.on_bytes(&mut rbuf)? {
                    Step::Agreed(a) => return Ok(a),
                    Step::NeedMore(n) => {
                        rbuf.reserve(n.saturating_sub(rbuf.len()).max(64));
                        let n = reader.read_buf(&mut rbuf).await.map_err(|e| {
                            // TLS 1.3: a refused client certificate is told
                            // after the client's side of the handshake.
                            crate::transport::security_error(&remote, &e).unwrap_or_else(|| {
                                Error::new(ErrorCode::PeerLost, format!("reading HELLO: {e}"))
                            })
                        })?;
                        if n == 0 {
                            return Err(Error::new(
                                ErrorCode::PeerLost,
                                "connection closed during the handshake",
                            ));
                        }
                    }
                }
            }
        };
        let evicted = ticket
            .as_ref()
            .map(|t| t.evicted.clone())
            .unwrap_or_default();
        let outcome = tokio::select! {
            r = tokio::time::timeout_at(handshake.deadline(), hs) => Some(r),
            _ = evicted.cancelled() => None,
        };
        let agreed = match outcome {
            Some(Ok(Ok(a))) => a,
            Some(Ok(Err(e))) => {
                self.connections.fetch_sub(1, SeqCst);
                // Counted and reported now, not after the CLOSE drained.
                let e = fail(e);
                reject(&mut reader, writer, &e).await;
                return Err(e);
            }
            Some(Err(_)) => {
                self.connections.fetch_sub(1, SeqCst);
                // Counted and reported now, not after the CLOSE drained.
                let e = fail(handshake.timed_out());
                reject(&mut reader, writer, &e).await;
                return Err(e);
            }
            None => {
                self.connections.fetch_sub(1, SeqCst);
                let e = ticket
                    .as_ref()
                    .map(Ticket::evicted_reason)
                    .unwrap_or_else(|| Error::new(ErrorCode::Overloaded, "evicted"));
                drop(ticket);
                self.shared.refused_for_load(&remote, &e);
                self.reject_for_load(reader, writer, &e).await;
                return Err(e);
            }
        };
        // No longer pending: the place goes to the next connection.
        drop(ticket);
        if !identity.may_use_name(&agreed.peer.name) {
            self.connections.fetch_sub(1, SeqCst);
            let e = fail(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "{remote} proved {} but calls itself {:?}, a name that identity was not issued (docs/SECURITY.md, \"Identities\")",
                    identity.id, agreed.peer.name
                ),
            ));
            reject(&mut reader, writer, &e).await;
            return Err(e);
        }
        let peer = Arc::new(Peer::new(NewPeer {
            id: self.shared.next_id(),
            name: agreed.peer.name.as_str().into(),
            identity: identity.id.as_str().into(),
            limit: crate::ratelimit::PeerLimit::new(
                &self.shared.cfg.rate_limit,
                self.shared.cfg.max_frame_size,
            ),
            addr: remote.clone(),
            inbound,
            instance: agreed.peer.instance,
            // Tallied only between endpoints that both name links and
            // themselves (see `crate::tally`).
            link: if agreed.peer.link != 0 && agreed.peer.instance != 0 {
                link_nonce ^ agreed.peer.link
            } else {
                0
            },
            max_frame: agreed.peer.max_frame as usize,
            tx: Arc::new(SendQueue::new(
                self.shared.cfg.send_buffer,
                writer,
                self.shared.write_through.clone(),
            )),
            dialer: dialer.clone(),
            now_ms: now_ms(),
        }));
        if let Some(d) = &dialer {
            d.set_name(peer.name.clone());
        }
        let (refused, replaced) = {
            let mut st = self.router.lock();
            // Refused because this side is going away: to the dialler that is
            // a refused connection, not its own endpoint being closed.
            if self.shared.is_closed() || self.is_suspended() {
                let why = if self.shared.is_closed() {
                    "closing"
                } else {
                    "suspended"
                };
                (
                    Some(Error::new(
                        ErrorCode::ConnectRefused,
                        format!("endpoint {} is {why}", self.shared.name),
                    )),
                    None,
                )
            } else if let Some(pos) = st.peers.iter().position(|p| p.name == peer.name) {
                let old = st.peers[pos].clone();
                // Two connections to one peer. Of a pair dialled in opposite
                // directions (a mesh), both sides keep the one dialled by the
                // endpoint with the smaller name. Of two in the same
                // direction the older stays; if it belongs to a dead process,
                // heartbeats remove it and the newcomer's redial gets in;
                // unless the newcomer is the same endpoint (its HELLO's
                // `instance`) dialling again: then the older link is stale
                // (its network changed, or it was lost on that side first).
                let same_endpoint_again = old.inbound
                    && peer.inbound
                    && agreed.peer.rejoin
                    && peer.instance != 0
                    && peer.instance == old.instance;
                let keep_new = same_endpoint_again
                    || old.inbound != peer.inbound
                        && if peer.inbound {
                            *peer.name < *self.shared.name
                        } else {
                            *self.shared.name < *peer.name
                        };
                if keep_new {
                    st.peers.remove(pos);
                    self.shared.totals.add(&old.snapshot());
                    old.replaced.store(true, SeqCst);
                    self.router.register(&mut st, &peer);
                    (None, Some(old))
                } else {
                    let e = if old.inbound == peer.inbound {
                        Error::new(
                            ErrorCode::NameInUse,
                            format!("a peer named {:?} is already connected", peer.name),
                        )
                    } else {
                        let dialled_by = if old.inbound {
                            &*peer.name
                        } else {
                            &*self.shared.name
                        };
                        Error::new(
                            ErrorCode::NameInUse,
                            format!("duplicate connection to {}: keeping the one dialled by {dialled_by}", peer.name),
                        )
                    };
                    (Some(e), None)
                }
            } else {
                self.router.register(&mut st, &peer);
                (None, None)
            }
        };
        // The stale link's reader may be in the middle of a batch: the new
        // link's reader starts once it has stopped, so that nothing from
        // the old link is delivered after anything from the new one.
        let predecessor = replaced.as_ref().map(|old| old.reader_done.clone());
        if let Some(old) = replaced {
            self.connections.fetch_sub(1, SeqCst);
            let reason = if old.inbound && peer.inbound {
                format!("replaced by a newer connection from {}", peer.name)
            } else {
                format!("replaced by another connection from {}", self.shared.name)
            };
            let _ = old.tx.push_control(&Frame::Close {
                code: ErrorCode::NameInUse.as_u16(),
                reason,
            });
            old.tx.close();
            old.dead.cancel();
        }
        if let Some(e) = refused {
            self.connections.fetch_sub(1, SeqCst);
            let _ = peer.tx.push_control(&Frame::Close {
                code: e.code().as_u16(),
                reason: e.detail().to_owned(),
            });
            peer.tx.close();
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                writer_loop(peer.tx.clone(), peer.dead.clone(), peer.name.clone()),
            )
            .await;
            drop(peer); // FIN
            drain(&mut reader).await;
            return Err(fail(e));
        }
        self.router.notify();
        tracing::info!(endpoint = %self.shared.name, peer = %peer.name, addr = %remote, inbound, version = agreed.version, "peer up");
        self.shared.emit(Event::PeerUp {
            peer: peer.name.to_string(),
            addr: remote.clone(),
            identity: peer.identity.to_string(),
        });
        let w = self.shared.rt.spawn(writer_loop(
            peer.tx.clone(),
            peer.dead.clone(),
            peer.name.clone(),
        ));
        {
            let mut ws = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            ws.retain(|h| !h.is_finished());
            ws.push(w);
        }
        self.shared
            .rt
            .spawn(heartbeat(self.shared.clone(), peer.clone()));
        let me = self.clone();
        let p = peer.clone();
        self.shared.rt.spawn(async move {
            let rx = Receiver {
                router: me.router.clone(),
            };
            if let Some(done) = predecessor {
                tokio::select! {
                    _ = done.cancelled() => {}
                    _ = p.dead.cancelled() => {}
                }
            }
            let read = tokio::select! {
                biased;
                _ = p.dead.cancelled() => None,
                r = rx.read_loop(p.clone(), reader, rbuf) => Some(r),
            };
            // A link failed from outside (heartbeat, network change, slow
            // consumer) ends for that reason, even if the peer, told, has
            // closed the socket meanwhile.
            let (code, reason) = p
                .failure()
                .or(read)
                .unwrap_or((ErrorCode::PeerLost, "connection closed".to_owned()));
            p.reader_done.cancel();
            me.peer_down(&p, code, &reason);
        });
        Ok(peer)
    }

    pub(crate) fn peer_down(&self, peer: &Arc<Peer>, code: ErrorCode, reason: &str) {
        let closing = self.shared.is_closed();
        let (removed, redial_by) = {
            let mut st = self.router.lock();
            // Only addresses whose connect() succeeded are kept connected.
            let redial_by = peer
                .dialer
                .as_ref()
                .filter(|d| {
                    !closing
                        && !peer.replaced.load(SeqCst)
                        && self.shared.cfg.reconnect.enabled
                        && !d.stop.is_cancelled()
                        && st.dialers.iter().any(|x| Arc::ptr_eq(x, d))
                })
                .cloned();
            let removed = self.router.remove(&mut st, peer);
            if !closing && peer.link != 0 {
                tally_ended(&self.shared, &st, peer);
            }
            if removed {
                // Under the lock `stats()` takes: the link's counts are in
                // the peer list or in the totals, never in neither.
                self.shared.totals.add(&peer.snapshot());
                if let Some(d) = &redial_by {
                    go_offline(&self.shared, d, peer);
                }
                // Under the lock a redial's supervisor takes to see that the
                // link is gone: `PeerDown` always comes before its
                // `Reconnecting` and the next `PeerUp` (a supervisor woken
                // in between once told of the redial first).
                self.shared.emit(Event::PeerDown {
                    peer: peer.name.to_string(),
                    addr: peer.addr.clone(),
                    reason: reason.to_owned(),
                    code,
                });
            }
            (removed, redial_by)
        };
        peer.tx.close();
        peer.dead.cancel();
        let err = if closing {
            Error::new(ErrorCode::Closed, "the endpoint was closed")
        } else {
            peer.lost_error(reason)
        };
        peer.fail_in_flight(&err);
        if removed {
            self.connections.fetch_sub(1, SeqCst);
            self.router.notify();
            tracing::info!(endpoint = %self.shared.name, peer = %peer.name, code = %code, "peer down: {reason}");
            // The dialler's supervisor (see `supervise`) sees `dead` and
            // redials; nothing is spawned here, so a link refused during a
            // redial cannot start a second redial loop.
            let _ = redial_by;
        }
    }

    /// Closes every link for `Endpoint::close`: tells each peer (a CLOSE
    /// after what was already queued for it), fails what is in flight, lets
    /// the writers flush and reads until each peer has closed its side, all
    /// within two seconds.
    pub(crate) async fn close_all(&self, peers: Vec<Arc<Peer>>, dialers: Vec<Arc<Dialer>>) {
        // The accept loops end; their listeners go with them.
        self.stop_listening().await;
        for d in dialers {
            d.stop.cancel();
            d.abandon(&self.shared);
        }
        for p in &peers {
            let _ = p.tx.push_control(&Frame::Close {
                code: 0,
                reason: format!("endpoint {} closed", self.shared.name),
            });
            p.tx.close();
            p.fail_in_flight(&Error::new(ErrorCode::Closed, "the endpoint was closed"));
            self.shared.totals.add(&p.snapshot());
            self.shared.emit(Event::PeerDown {
                peer: p.name.to_string(),
                addr: p.addr.clone(),
                reason: "closed by this endpoint".into(),
                code: ErrorCode::Closed,
            });
        }
        // Let writers flush what was queued, then the CLOSE frame.
        let writers: Vec<_> =
            std::mem::take(&mut *self.writers.lock().unwrap_or_else(|p| p.into_inner()));
        let flush = async {
            for w in writers {
                let _ = w.await;
            }
        };
        let by = tokio::time::Instant::now() + CLOSE_FLUSH;
        let _ = tokio::time::timeout_at(by, flush).await;
        // Each peer answers the CLOSE by closing its side. Read until it
        // has (within the same bound): bytes it sent meanwhile (credit,
        // pongs) left unread would make the kernel reset the connection,
        // destroying what the peer had received and not yet read
        // (Python `test_exit_without_close_still_sends_what_was_published`).
        let answered = async {
            for p in &peers {
                p.reader_done.cancelled().await;
            }
        };
        let _ = tokio::time::timeout_at(by, answered).await;
        for p in &peers {
            p.dead.cancel();
        }
    }
}

/// Connections refused for load that may linger, draining, at once.
const LOAD_DRAINS: usize = 64;

impl Links {
    /// Tells a peer refused for load why (a CLOSE frame, then FIN) without
    /// waiting to write: the CLOSE fits an empty socket buffer. Closing with
    /// unread bytes would reset the connection and could destroy the CLOSE
    /// before the peer reads it (a real client sends its HELLO at once), so
    /// the connection lingers, discarding what arrives, until the peer
    /// closes or for at most 100 ms; at most [`LOAD_DRAINS`] linger at once,
    /// beyond that they close at once.
    async fn reject_for_load(&self, mut r: Reader, w: crate::transport::Wire, e: &Error) {
        let mut out = BytesMut::new();
        if proto::encode(
            &mut out,
            &Frame::Close {
                code: e.code().as_u16(),
                reason: e.detail().to_owned(),
            },
        )
        .is_ok()
        {
            let _ = w.try_write_vectored(&[std::io::IoSlice::new(&out)]);
        }
        w.shutdown();
        let Ok(_permit) = self.drains.try_acquire() else {
            return;
        };
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            let mut sink = vec![0u8; 4096];
            let mut left = 64 * 1024;
            while left > 0 {
                match r.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left -= n.min(left),
                }
            }
        })
        .await;
    }
}

/// Tells a refused peer why (a CLOSE frame, then FIN) and drains what it
/// already sent for a moment, so the kernel does not answer with a reset that
/// would destroy the CLOSE before the peer reads it.
pub(super) async fn reject(r: &mut Reader, w: crate::transport::Wire, e: &Error) {
    let mut out = BytesMut::new();
    if proto::encode(
        &mut out,
        &Frame::Close {
            code: e.code().as_u16(),
            reason: e.detail().to_owned(),
        },
    )
    .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            let _ = w.write_all(&out).await;
        })
        .await;
    }
    drop(w); // FIN
    drain(r).await;
}

/// Reads and discards what a refused peer already sent, briefly and boundedly.
async fn drain(r: &mut Reader) {
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut sink = vec![0u8; 4096];
        let mut left = 256 * 1024;
        while left > 0 {
            match r.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

/// The end of a link that names itself for tallies (see [`crate::tally`];
/// under the router's state lock, after its reader stopped and its send
/// queue closed, so both counts are final): records what was read on it,
/// settling the peer's tally if it came first, and sends the peer this
/// side's tally on a newer link to it, or keeps it for the next one.
fn tally_ended(shared: &Shared, st: &crate::router::State, peer: &Peer) {
    let read = peer.counters.msgs_in.load(Relaxed);
    let mine = Tally {
        link: peer.link,
        messages: peer.tx.sent().0,
    };
    let settled = {
        let mut t = shared.tallies();
        let settled = t.ended(peer.link, read);
        let newer = st.peers.iter().find(|p| {
            p.id != peer.id && p.link != 0 && p.name == peer.name && p.instance == peer.instance
        });
        match newer {
            Some(p) => {
                let _ = p.tx.push_control(&Frame::Tally {
                    link: mine.link,
                    messages: mine.messages,
                });
            }
            None => t.owe(peer.name.clone(), peer.instance, mine),
        }
        settled
    };
    if let Some(s) = settled {
        shared.settled(&peer.name, s);
    }
}

/// Starts holding messages for a lost dialled peer (under the router's
/// state lock), for the interests it had.
fn go_offline(shared: &Shared, d: &Dialer, peer: &Peer) {
    let interests: Vec<Pattern> = peer
        .lock_decls()
        .iter(DeclKind::Interest)
        .filter_map(|p| Pattern::new(p).ok())
        .collect();
    let mut off = d.lock_offline();
    off.active = shared.cfg.offline_buffer > 0 && !interests.is_empty();
    off.interests = interests;
    off.successor = Weak::new();
}
