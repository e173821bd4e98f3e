//! Publishing: a message goes to every target of its route (local
//! subscriptions, peers with a matching interest, dialled peers that are away)
//! with one sweep that never waits, then, only if some target had no room,
//! a part that waits within `send_timeout` under each target's policy.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::SlowPeer;
use crate::error::{Error, ErrorCode, Result};
use crate::inbox::{Inbox, Message, Meta, Push};
use crate::path::{validate_path, Pattern};
use crate::peer::dialer::{Dialer, Held};
use crate::peer::send::Enq;
use crate::peer::Peer;
use crate::proto;
use crate::router::{Route, RouteCache, Router};
use crate::shared::Shared;

/// The future of [`Endpoint::publish`](crate::Endpoint::publish). Nothing is sent before it is first
/// polled. A message whose targets all have room is delivered on that first
/// poll, without allocating; only a publish that has to wait (a full queue, a
/// dialled peer that is away) boxes its waiting part.
#[must_use = "futures do nothing unless polled"]
pub struct Publish<'a> {
    state: PublishState<'a>,
}

enum PublishState<'a> {
    Start {
        router: &'a Router,
        path: &'a str,
        payload: Bytes,
        /// A publisher's route cache and pattern, when published through one.
        via: Option<(&'a RouteCache, &'a Pattern)>,
    },
    Waiting(std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>),
    Done,
}

impl<'a> Publish<'a> {
    pub(crate) fn new(router: &'a Router, path: &'a str, payload: Bytes) -> Publish<'a> {
        Publish {
            state: PublishState::Start {
                router,
                path,
                payload,
                via: None,
            },
        }
    }

    /// A publish through a [`Publisher`](crate::Publisher): its cached
    /// route, and `path` checked against its pattern.
    pub(crate) fn via(
        router: &'a Router,
        cache: &'a RouteCache,
        pattern: &'a Pattern,
        path: &'a str,
        payload: Bytes,
    ) -> Publish<'a> {
        Publish {
            state: PublishState::Start {
                router,
                path,
                payload,
                via: Some((cache, pattern)),
            },
        }
    }
}

impl Future for Publish<'_> {
    type Output = Result<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use std::task::Poll;
        match std::mem::replace(&mut self.state, PublishState::Done) {
            PublishState::Start {
                router,
                path,
                payload,
                via,
            } => {
                // A publish that fails at once (a stalled target dropped
                // without waiting) spends a unit of the task's budget, as
                // tokio's own resources do, and one started with the budget
                // spent yields first: a loop of such publishes would hold its
                // worker thread, and the runtime's timers, forever. One that
                // queues is paced by its queues' backpressure and spends
                // nothing (a yield per 128 costs a quarter of 8-byte
                // throughput over Unix sockets).
                if !tokio::task::coop::has_budget_remaining() {
                    cx.waker().wake_by_ref();
                    self.state = PublishState::Start {
                        router,
                        path,
                        payload,
                        via,
                    };
                    return Poll::Pending;
                }
                let route = match via {
                    None => router.route(path),
                    Some((cache, pattern)) => {
                        router.route_cached(path, cache, |p| check_pattern(pattern, p))
                    }
                };
                let route = match route {
                    Ok(r) => r,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                let shared = &*router.shared;
                let rest = match sweep(shared, &route, &payload, true) {
                    Swept::Done(r) => return Poll::Ready(spend_if_failed(cx, r)),
                    Swept::Rest(rest) => rest,
                };
                let mut fut = Box::pin(deliver_rest(shared, route, payload, true, rest));
                let p = fut.as_mut().poll(cx);
                if let Poll::Ready(r) = p {
                    return Poll::Ready(spend_if_failed(cx, r));
                }
                self.state = PublishState::Waiting(fut);
                Poll::Pending
            }
            PublishState::Waiting(mut fut) => {
                let p = fut.as_mut().poll(cx);
                if p.is_pending() {
                    self.state = PublishState::Waiting(fut);
                }
                p
            }
            PublishState::Done => Poll::Ready(Err(Error::new(
                ErrorCode::Internal,
                "a publish future was polled after it completed",
            ))),
        }
    }
}

/// Spends a unit of the task's cooperative budget if a publish failed
/// without waiting (see `Publish::poll`); an exhausted budget makes the next
/// publish yield.
fn spend_if_failed(cx: &mut std::task::Context<'_>, r: Result<()>) -> Result<()> {
    if r.is_err() {
        if let std::task::Poll::Ready(c) = tokio::task::coop::poll_proceed(cx) {
            c.made_progress();
        }
    }
    r
}

/// What [`sweep`] did with a message.
pub(crate) enum Swept {
    /// Delivered to every target (or refused): the publish's outcome.
    Done(Result<()>),
    /// Some targets must be waited for.
    Rest(Rest),
}

/// What a peer a sweep could not send to lacked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lack {
    /// Room in its send buffer (the endpoint's `slow_peer` policy applies).
    Room,
    /// Credit for one of its `Block` subscriptions (the publisher waits
    /// for it within `send_timeout`).
    Credit,
}

/// Counts a message dropped for a peer's subscription without credit.
fn credit_drop(shared: &Shared, peer: &Peer) {
    peer.counters.dropped_send_full.fetch_add(1, Relaxed);
    shared.report_drop(&peer.name, 1);
}

/// Cuts the link to a slow consumer (a `Disconnect` policy, endpoint-wide
/// or a subscription's), telling it why: the CLOSE overtakes queued data.
fn cut_slow_consumer(peer: &Peer, reason: String) {
    let close = proto::Frame::Close {
        code: ErrorCode::BufferFull.as_u16(),
        reason: reason.clone(),
    };
    peer.fail_telling(ErrorCode::BufferFull, reason, Some(&close));
}

/// The targets a sweep could not serve at once.
pub(crate) struct Rest {
    frame_len: usize,
    full_peers: Vec<(Arc<Peer>, Lack)>,
    full_subs: Vec<(Arc<Inbox>, Message)>,
    /// Dialled peers away whose full `Block` buffers must be waited for.
    full_offline: Vec<Arc<Dialer>>,
    skipped: usize,
}

/// The first part of a publish: every target with room gets the message
/// now, without waiting. What is left (a full target, a dialled peer that is
/// away) is returned for [`deliver_rest`].
pub(crate) fn sweep(shared: &Shared, route: &Route, payload: &Bytes, wait: bool) -> Swept {
    let path = &*route.meta.path;
    let frame_len = proto::message_frame_len(path, payload.len());
    if !route.peers.is_empty() && frame_len > route.max_frame {
        return Swept::Done(Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "a message of {} bytes on {path} makes a {frame_len}-byte frame; a subscribed peer accepts at most {} bytes",
                    payload.len(),
                    route.max_frame
                ),
            )));
    }
    let mut full_peers = Vec::new();
    let mut skipped = 0usize;
    for peer in &route.peers {
        match peer.tx.push_message(&route.meta, payload) {
            Enq::Full => full_peers.push((peer.clone(), Lack::Room)),
            Enq::NoCredit { stalled: false } if wait => {
                full_peers.push((peer.clone(), Lack::Credit))
            }
            // A subscription of the peer that a publisher already waited
            // for in vain (or a publish that does not wait): dropped now.
            Enq::NoCredit { .. } => {
                credit_drop(shared, peer);
                skipped += 1;
            }
            // The link is closing: lost with it, counted and reported.
            Enq::Closed => shared.report_loss(&peer.name, 1),
            Enq::Queued => {}
        }
    }
    let mut full_subs = Vec::new();
    if !route.subs.is_empty() {
        let msg = Message {
            meta: route.meta.clone(),
            payload: payload.clone(),
        };
        for sub in &route.subs {
            let r = match sub.push(msg.clone()) {
                (Push::Full, Some(m)) if wait => {
                    full_subs.push((sub.clone(), m));
                    continue;
                }
                (Push::Full, _) => {
                    sub.count_drop(1);
                    Push::Dropped(1)
                }
                (r, _) => r,
            };
            skipped += sub_pushed(shared, sub, r, wait);
        }
    }
    let mut full_offline = Vec::new();
    for d in &route.offline {
        match d.try_hold(&shared.cfg, &route.meta, payload, wait) {
            Some(h) => skipped += held(shared, &route.meta, payload, d, h),
            None => full_offline.push(d.clone()),
        }
    }
    if full_peers.is_empty() && full_offline.is_empty() && full_subs.is_empty() {
        return Swept::Done(skipped_result(shared, route, skipped, wait));
    }
    Swept::Rest(Rest {
        frame_len,
        full_peers,
        full_subs,
        full_offline,
        skipped,
    })
}

/// The second part of a publish, for what [`sweep`] left.
pub(crate) async fn deliver_rest(
    shared: &Shared,
    route: Arc<Route>,
    payload: Bytes,
    wait: bool,
    rest: Rest,
) -> Result<()> {
    let skipped = deliver_waiting(shared, &route, &payload, wait, rest).await;
    skipped_result(shared, &route, skipped, wait)
}

/// A publish's outcome once `skipped` targets had no room.
fn skipped_result(shared: &Shared, route: &Route, skipped: usize, wait: bool) -> Result<()> {
    let path = &*route.meta.path;
    if skipped == 1 && wait {
        // The common case under a stalled subscriber: made once per route.
        let e = route.skip_error.get_or_init(|| {
            Error::new(
                ErrorCode::BufferFull,
                format!(
                    "1 target(s) of {path} had no room within {} ms; the message was dropped for them",
                    shared.cfg.send_timeout.as_millis()
                ),
            )
        });
        return Err(e.clone());
    }
    if skipped > 0 {
        // One format: under a stalled subscriber every publish lands here.
        let detail = if wait {
            format!(
                "{skipped} target(s) of {path} had no room within {} ms; the message was dropped for them",
                shared.cfg.send_timeout.as_millis()
            )
        } else {
            format!("{skipped} target(s) of {path} had no room; the message was dropped for them")
        };
        return Err(Error::new(ErrorCode::BufferFull, detail));
    }
    Ok(())
}

/// The waiting part of a publish: waits (when `wait`) for room at full
/// peers, subscriptions and offline buffers. Returns how many targets were
/// skipped, the sweep's included.
async fn deliver_waiting(
    shared: &Shared,
    route: &Route,
    payload: &Bytes,
    wait: bool,
    rest: Rest,
) -> usize {
    let Rest {
        frame_len,
        full_peers,
        full_subs,
        full_offline,
        mut skipped,
    } = rest;
    let path = &*route.meta.path;
    // Read the clock only when something has to wait.
    let mut deadline = None;
    let mut deadline = || *deadline.get_or_insert_with(|| Instant::now() + shared.cfg.send_timeout);
    for (peer, lack) in full_peers {
        let policy = shared.cfg.slow_peer;
        let may_wait = wait
            && (lack == Lack::Credit
                || policy != SlowPeer::DropNewest
                    && !(policy == SlowPeer::Block && peer.tx.is_stalled()));
        let mut sent = false;
        let mut lack = lack;
        if may_wait {
            while peer.tx.wait_space(deadline(), frame_len).await {
                let n = peer.tx.space.notified();
                tokio::pin!(n);
                n.as_mut().enable();
                match peer.tx.push_message(&route.meta, payload) {
                    Enq::Full => lack = Lack::Room,
                    Enq::NoCredit { stalled: false } => {
                        lack = Lack::Credit;
                        // Credit comes with a notification of `space`.
                        if tokio::time::timeout_at(deadline(), n).await.is_err() {
                            break;
                        }
                    }
                    Enq::NoCredit { stalled: true } => {
                        lack = Lack::Credit;
                        break;
                    }
                    Enq::Closed => {
                        shared.report_loss(&peer.name, 1);
                        sent = true;
                        break;
                    }
                    Enq::Queued => {
                        sent = true;
                        break;
                    }
                }
            }
        }
        if sent {
            continue;
        }
        credit_drop(shared, &peer);
        skipped += 1;
        if lack == Lack::Credit {
            // A `Disconnect` subscription out of credit after the wait:
            // its link is cut (the message counted above as dropped).
            if may_wait && peer.tx.stall_credit(path) {
                cut_slow_consumer(
                    &peer,
                    format!(
                        "slow consumer: a disconnect subscription on {path} gave no credit for {} ms",
                        shared.cfg.send_timeout.as_millis()
                    ),
                );
            }
            continue;
        }
        if may_wait {
            match policy {
                SlowPeer::Disconnect => cut_slow_consumer(
                    &peer,
                    format!(
                        "slow consumer: its send buffer stayed full for {} ms",
                        shared.cfg.send_timeout.as_millis()
                    ),
                ),
                _ => peer.tx.set_stalled(),
            }
        }
    }
    for d in full_offline {
        let h = d.hold(&shared.cfg, &route.meta, payload, deadline()).await;
        skipped += held(shared, &route.meta, payload, &d, h);
    }
    for (sub, m) in full_subs {
        let r = match tokio::time::timeout_at(deadline(), sub.push_wait(m)).await {
            Ok(r) => r,
            Err(_) => {
                sub.count_drop(1);
                Push::Dropped(1)
            }
        };
        skipped += sub_pushed(shared, &sub, r, wait);
    }
    skipped
}

/// Settles what an offline buffer did with a message; 1 if it was
/// dropped (the publisher's outcome counts it as skipped).
fn held(shared: &Shared, meta: &Arc<Meta>, payload: &Bytes, d: &Dialer, h: Held) -> usize {
    match h {
        Held::Queued => 0,
        Held::DroppedOld(n) => {
            d.dropped(shared, n);
            0
        }
        Held::Dropped => {
            d.dropped(shared, 1);
            1
        }
        Held::Successor(tx) => match tx.push_message(meta, payload) {
            Enq::Full | Enq::NoCredit { .. } => {
                d.dropped(shared, 1);
                1
            }
            Enq::Closed => {
                shared.report_loss(&d.label(), 1);
                0
            }
            Enq::Queued => 0,
        },
    }
}

/// Counts and reports what a subscription dropped; 1 if the message counts
/// as skipped for the publisher (only when it does not wait).
fn sub_pushed(shared: &Shared, sub: &Inbox, r: Push, wait: bool) -> usize {
    if let Push::Dropped(n) = r {
        shared.totals.dropped_queue_full.fetch_add(n, Relaxed);
        shared.report_drop(sub.pattern.as_str(), n);
        if !wait {
            return 1;
        }
    }
    0
}

/// Publishes without waiting: a target without room is skipped, counted as a
/// drop and reported, and the outcome is `BUFFER_FULL`.
/// A publisher publishes only on paths its pattern matches.
pub(crate) fn check_pattern(pattern: &Pattern, path: &str) -> Result<()> {
    validate_path(path)?;
    if pattern.matches(path) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidPath,
            format!(
                "{path} does not match the publisher's pattern {}",
                pattern.as_str()
            ),
        ))
    }
}

/// `publish` from a plain thread. The sweep runs on the caller's thread
/// without entering the runtime (it never waits: it queues, or writes
/// through to a socket that takes it at once); only a publish with targets
/// to wait for blocks on the rest. `route` is found after the thread is
/// checked, so a blocking call from an async context fails the same way
/// whatever the path.
pub(crate) fn publish_blocking(
    router: &Router,
    route: impl FnOnce() -> Result<Arc<Route>>,
    payload: Bytes,
) -> Result<()> {
    let shared = &*router.shared;
    shared.blocker.check()?;
    let route = route()?;
    match sweep(shared, &route, &payload, true) {
        Swept::Done(r) => r,
        Swept::Rest(rest) => shared
            .blocker
            .block_on(deliver_rest(shared, route, payload, true, rest))?,
    }
}

pub(crate) fn try_publish(router: &Router, path: &str, payload: Bytes) -> Result<()> {
    try_publish_on(router, router.route(path)?, payload)
}

/// [`try_publish`] on a route already found.
pub(crate) fn try_publish_on(router: &Router, route: Arc<Route>, payload: Bytes) -> Result<()> {
    let shared = &*router.shared;
    let rest = match sweep(shared, &route, &payload, false) {
        Swept::Done(r) => return r,
        Swept::Rest(rest) => rest,
    };
    let fut = deliver_rest(shared, route, payload, false, rest);
    // Without waiting the rest completes on its first poll.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(Error::new(ErrorCode::Internal, "try_publish would wait")),
    }
}
