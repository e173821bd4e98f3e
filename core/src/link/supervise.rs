//! Keeping links alive: heartbeats, and one supervisor per dialled address
//! that redials with backoff after every loss.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use super::state::{Liveness, Tick};
use super::Links;
use crate::error::{Error, ErrorCode};
use crate::event::Event;
use crate::peer::dialer::Dialer;
use crate::peer::Peer;
use crate::proto::Frame;
use crate::shared::{now_ms, Shared};

/// Pings a quiet peer and declares it dead after `misses` silent intervals
/// (the rule is [`Liveness`]).
pub(crate) async fn heartbeat(shared: Arc<Shared>, peer: Arc<Peer>) {
    let live = Liveness {
        interval: shared.cfg.heartbeat_interval,
        misses: shared.cfg.heartbeat_misses,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(live.interval) => {}
            _ = peer.dead.cancelled() => return,
        }
        let quiet = Duration::from_millis(now_ms().saturating_sub(peer.last_rx_ms.load(Relaxed)));
        match live.tick(quiet, peer.reading_paused.load(SeqCst)) {
            Tick::Idle => {}
            Tick::Ping => {
                let _ = peer.tx.push_control(&Frame::Ping(0));
            }
            Tick::Dead(reason) => {
                peer.fail(ErrorCode::PeerLost, reason);
                return;
            }
        }
    }
}

/// True for failures that redialling cannot fix.
fn permanent(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::UnsupportedVersion
            | ErrorCode::ProtocolError
            | ErrorCode::HandshakeRejected
            | ErrorCode::InvalidAddress
    )
}

fn jittered(d: Duration, jitter: f64) -> Duration {
    let f = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
    d.mul_f64(f.max(0.0))
}

/// Keeps a dialled address connected: waits until the connection it made
/// (or the one the peer made to us, when both dialled) ends, then redials
/// with exponential backoff and jitter until it is back, the failure is
/// permanent, or redialling stops; then waits again. One supervisor per
/// dialled address, for as long as the endpoint keeps it: a link refused
/// during a redial (NAME_IN_USE) only moves this loop to its next attempt.
/// (Spawning a redial per lost link, as an earlier version did, started a
/// second loop for every refused attempt: a redial storm with no backoff;
/// `name_in_use_passes_once_the_name_is_free` shows it gone.)
///
/// A link that ends within the heartbeat window of being made counts as a
/// failed attempt: the next redial waits the backoff's next delay, not the
/// first, so a peer that accepts and then drops every connection is
/// redialled ever more slowly, like one that refuses
/// (`links_that_end_at_once_back_off_like_refused_connects`).
pub(crate) async fn supervise(links: Arc<Links>, d: Arc<Dialer>, first: Arc<Peer>) {
    let cfg = &links.shared.cfg;
    let (r, settle) = (
        cfg.reconnect.clone(),
        cfg.heartbeat_interval * cfg.heartbeat_misses,
    );
    let mut current = first;
    let mut since = tokio::time::Instant::now();
    // The delay the connection that made `current` waited.
    let mut last = Duration::ZERO;
    loop {
        tokio::select! {
            _ = current.dead.cancelled() => {}
            _ = d.stop.cancelled() => return,
        }
        if links.shared.is_closed() || d.stop.is_cancelled() {
            return;
        }
        let start = if since.elapsed() < settle {
            (last.mul_f64(r.factor)).clamp(r.min_delay, r.max_delay)
        } else {
            r.min_delay
        };
        match redial(&links, &d, start).await {
            Some((p, waited)) => {
                current = p;
                since = tokio::time::Instant::now();
                last = waited;
            }
            None => return,
        }
    }
}

/// Redials until connected (`Some`, with the delay the successful attempt
/// waited), or redialling stops (`None`). The first attempt waits `start`.
async fn redial(
    links: &Arc<Links>,
    d: &Arc<Dialer>,
    start: Duration,
) -> Option<(Arc<Peer>, Duration)> {
    let (shared, router) = (&links.shared, &links.router);
    let r = shared.cfg.reconnect.clone();
    let mut delay = start;
    let mut attempt = 0u32;
    loop {
        // Another connection to the same peer (it dialled us): nothing to do
        // until that one is lost.
        if let Some(name) = d.name() {
            loop {
                let changed = router.changed_notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if !router.has_peer(&name) {
                    break;
                }
                tokio::select! {
                    _ = changed => {}
                    _ = d.stop.cancelled() => return None,
                }
            }
        }
        // Suspended: no link until `resume`, which asks for an attempt now.
        links.while_suspended(&d.stop).await;
        if d.stop.is_cancelled() {
            return None;
        }
        attempt += 1;
        let now = d.now.swap(false, SeqCst);
        if now {
            delay = r.min_delay;
        }
        let wait = if now {
            Duration::ZERO
        } else {
            jittered(delay, r.jitter)
        };
        shared.emit(Event::Reconnecting {
            addr: d.addr.to_string(),
            attempt,
            delay: wait,
        });
        tracing::info!(endpoint = %shared.name, addr = %d.addr, attempt, ?wait, "reconnecting");
        if !now {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = d.kick.notified() => {}
                _ = d.stop.cancelled() => return None,
            }
        }
        if links.is_suspended() {
            continue;
        }
        let outcome = links.connect_once(d).await;
        d.attempts.fetch_add(1, SeqCst);
        d.attempted.notify_waiters();
        match outcome {
            Ok(p) => return Some((p, if now { Duration::ZERO } else { delay })),
            Err(e) if e.code() == ErrorCode::Closed => return None,
            Err(e) if permanent(&e) && !d.name().is_some_and(|n| router.has_peer(&n)) => {
                tracing::warn!(endpoint = %shared.name, addr = %d.addr, code = %e.code(), "giving up reconnecting: {}", e.detail());
                d.stop.cancel();
                d.abandon(shared);
                // Routes that held messages for it must forget it.
                router.routes_changed();
                shared.emit(Event::ReconnectAbandoned {
                    addr: d.addr.to_string(),
                    code: e.code(),
                    detail: e.detail().to_owned(),
                });
                return None;
            }
            Err(e) => {
                tracing::debug!(endpoint = %shared.name, addr = %d.addr, code = %e.code(), "reconnect attempt failed: {}", e.detail());
                delay = delay.mul_f64(r.factor).min(r.max_delay);
            }
        }
    }
}
