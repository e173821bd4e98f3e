//! An application's lifecycle, in the core: `suspend` (to the background:
//! every link and listener down, everything else kept), `resume`, and
//! `network_changed` (links over the old network may be dead without
//! knowing it: drop them and redial now).
//!
//! What is kept across a suspension: subscriptions, services and publisher
//! declarations (sent again in each new link's snapshot), the dialled
//! addresses, the messages held for dialled peers that are away (the
//! offline buffer, flushed to them first when they are back), and every
//! counter. Nothing is rebuilt: the same endpoint simply has no links.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use super::Links;
use crate::error::{ErrorCode, Result};
use crate::event::Event;
use crate::proto::Frame;

impl Links {
    /// Closes every link (peers see an orderly close, code `CLOSED`) and
    /// every listener, and stops redialling until `resume`. Idempotent.
    pub(crate) async fn suspend(self: &Arc<Self>) -> Result<()> {
        let _one = self.lifecycle.lock().await;
        self.shared.check_open()?;
        if self.suspended.swap(true, SeqCst) {
            return Ok(());
        }
        let addrs = self.stop_listening().await;
        *self.was_listening.lock().unwrap_or_else(|p| p.into_inner()) = addrs;
        for p in self.router.peers() {
            let _ = p.tx.push_control(&Frame::Close {
                code: 0,
                reason: format!("endpoint {} suspended", self.shared.name),
            });
            p.fail(ErrorCode::Closed, "suspended by this endpoint".into());
        }
        // Each link's task reports its loss (`PeerDown`) and holds messages
        // for the dialled ones; wait until they have.
        let _ = self
            .router
            .wait_until(self.shared.cfg.handshake_timeout, || {
                Ok(self.router.peers().is_empty())
            })
            .await;
        tracing::info!(endpoint = %self.shared.name, "suspended");
        self.shared.emit(Event::Suspended);
        Ok(())
    }

    /// Listens again on every address it listened on, and dials every
    /// address it connected to at once (no backoff); returns after the
    /// first attempt of each (failed ones are redialled with backoff).
    ///
    /// Errors: `CLOSED`; `ADDRESS_IN_USE` if a listen address was taken
    /// meanwhile (the rest is restored anyway).
    pub(crate) async fn resume(self: &Arc<Self>) -> Result<()> {
        let _one = self.lifecycle.lock().await;
        self.shared.check_open()?;
        if !self.suspended.load(SeqCst) {
            return Ok(());
        }
        let addrs =
            std::mem::take(&mut *self.was_listening.lock().unwrap_or_else(|p| p.into_inner()));
        let mut first_error = None;
        for a in addrs {
            if let Err(e) = self.listen(&a).await {
                tracing::warn!(endpoint = %self.shared.name, addr = %a, "cannot listen again: {}", e.detail());
                first_error.get_or_insert(e);
            }
        }
        self.suspended.store(false, SeqCst);
        self.redial_all_now().await;
        tracing::info!(endpoint = %self.shared.name, "resumed");
        self.shared.emit(Event::Resumed);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drops every link (they may be dead without knowing it after a network
    /// change) and redials every dialled address now.
    ///
    /// Errors: `CLOSED`.
    pub(crate) async fn network_changed(self: &Arc<Self>) -> Result<()> {
        self.shared.check_open()?;
        if self.is_suspended() {
            return Ok(());
        }
        // Each supervisor redials at once when it sees its link go: asked
        // before the links go, or it could start a backoff first.
        for d in self.router.lock().dialers.iter() {
            d.now.store(true, SeqCst);
        }
        for p in self.router.peers() {
            // The peer learns at once, over the old link if it still works,
            // so that its side is gone when the redial arrives (else the
            // redial is refused NAME_IN_USE until its heartbeat notices).
            let close = Frame::Close {
                code: 0,
                reason: format!("endpoint {} moved to another network", self.shared.name),
            };
            p.fail_telling(
                ErrorCode::PeerLost,
                "the network changed".into(),
                Some(&close),
            );
        }
        self.redial_all_now().await;
        Ok(())
    }

    /// Makes every dialled address's supervisor attempt now, with its
    /// backoff started over, and waits for each first attempt (bounded by
    /// the connect and handshake timeouts).
    async fn redial_all_now(&self) {
        let dialers = self.router.lock().dialers.clone();
        let started: Vec<u64> = dialers.iter().map(|d| d.attempts.load(SeqCst)).collect();
        for d in &dialers {
            d.now.store(true, SeqCst);
            d.kick.notify_one();
        }
        self.resumed.notify_waiters();
        let bound = self.shared.cfg.connect_timeout + self.shared.cfg.handshake_timeout;
        for (d, n) in dialers.iter().zip(started) {
            let attempted = async {
                loop {
                    let a = d.attempted.notified();
                    tokio::pin!(a);
                    a.as_mut().enable();
                    if d.attempts.load(SeqCst) > n || d.stop.is_cancelled() {
                        return;
                    }
                    // A dialler whose link is up makes no attempt.
                    if d.name().is_some_and(|name| self.router.has_peer(&name)) {
                        return;
                    }
                    a.await;
                }
            };
            let _ = tokio::time::timeout(bound, attempted).await;
        }
    }

    /// Waits while suspended (or until redialling stops).
    pub(crate) async fn while_suspended(&self, stop: &tokio_util::sync::CancellationToken) {
        loop {
            let r = self.resumed.notified();
            tokio::pin!(r);
            r.as_mut().enable();
            if !self.is_suspended() || stop.is_cancelled() {
                return;
            }
            tokio::select! { _ = r => {}, _ = stop.cancelled() => return }
        }
    }
}
