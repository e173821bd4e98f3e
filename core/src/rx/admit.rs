//! What this endpoint admits of a peer's traffic before anything sees it:
//! its declarations, within the per-peer limits (and counted when the
//! access rules deny them); its messages and requests, within the rate
//! limit (see [`crate::ratelimit`]); and the credit a dropped message
//! spent, given back (a denied or rate-limited message never stalls the
//! subscriptions it would have reached).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Receiver;
use crate::config::RatePolicy;
use crate::error::{Error, ErrorCode, Result};
use crate::path::validate_pattern;
use crate::peer::Peer;
use crate::proto::{self, Frame};

impl Receiver {
    /// Takes a message of `len` bytes from `peer`'s rate limit: true if it
    /// passes; false if it is dropped (counted and reported); an error
    /// (`RATE_LIMITED`, ending the link) under the disconnect policy.
    pub(super) fn within_limit(&self, peer: &Peer, len: usize) -> Result<bool> {
        let Some(l) = &peer.limit else {
            return Ok(true);
        };
        if l.admit(len) {
            return Ok(true);
        }
        peer.counters.rate_limited.fetch_add(1, Relaxed);
        if l.policy == RatePolicy::Disconnect {
            return Err(Error::new(
                ErrorCode::RateLimited,
                format!(
                    "{} sent more than the rate limit allows (rate_limit.policy = disconnect)",
                    peer.name
                ),
            ));
        }
        self.router.shared.report_rate_limited(&peer.name, 1);
        Ok(false)
    }

    /// Gives back the credit `peer` spent on a message this side dropped
    /// before delivery (see `CreditIn::forfeit`).
    pub(super) fn forfeit(&self, peer: &Peer, path: &[u8], len: usize) {
        let Ok(path) = std::str::from_utf8(path) else {
            return;
        };
        let mut grants = Vec::new();
        peer.credit_in().forfeit(path, len, &mut grants);
        if !grants.is_empty() {
            let _ = peer.tx.push_control(&Frame::Credit(grants));
        }
    }

    /// Applies a peer's declarations one at a time, checking each against
    /// the per-peer limits before it is stored: a frame of a million items
    /// is refused at the first one over the limit, having allocated for none
    /// beyond it.
    pub(super) fn apply_declarations(
        &self,
        peer: &Arc<Peer>,
        list: proto::Declarations,
    ) -> Result<()> {
        let max_count = self.router.shared.cfg.max_declarations_per_peer;
        let max_bytes = self.router.shared.cfg.max_declaration_bytes_per_peer;
        // What the rules deny is only looked for when there are rules.
        let checking = self.router.lock().acl.is_some();
        let mut added = Vec::new();
        let r = {
            // Only the peer's own table is locked while items are applied;
            // the generation bump below (under the state lock) invalidates
            // any route computed meanwhile.
            let mut decls = peer.lock_decls();
            list.iter().try_for_each(|d| {
                validate_pattern(d.pattern).map_err(|e| {
                    Error::new(
                        ErrorCode::ProtocolError,
                        format!("declaration with invalid pattern: {}", e.detail()),
                    )
                })?;
                if !d.declare {
                    decls.remove(d.kind, d.pattern);
                    return Ok(());
                }
                if decls.contains(d.kind, d.pattern) {
                    return Ok(());
                }
                if decls.len() >= max_count {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        format!("peer exceeded the limit of {max_count} declarations"),
                    ));
                }
                if decls.text_bytes() + d.pattern.len() > max_bytes {
                    return Err(Error::new(
                        ErrorCode::ProtocolError,
                        format!(
                            "peer exceeded the limit of {max_bytes} bytes of declared patterns"
                        ),
                    ));
                }
                decls.insert(d.kind, d.pattern);
                if checking {
                    added.push((d.kind, d.pattern.to_owned()));
                }
                Ok(())
            })
        };
        // Kept (a rule change may allow them), but a declaration the rules
        // deny outright is counted and told once, as it arrives.
        let denied: Vec<_> = {
            let st = self.router.lock();
            added
                .into_iter()
                .filter(|(kind, pattern)| !st.decl_allowed(peer, *kind, pattern))
                .collect()
        };
        for (kind, pattern) in denied {
            self.router
                .denied(peer, crate::router::acl::action_of(kind), &pattern, 1);
        }
        {
            let _st = self.router.lock();
            self.router.bump(false);
        }
        self.router.notify();
        r
    }
}
