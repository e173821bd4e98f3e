//! Access rules where traffic enters and leaves the router (see
//! [`crate::acl`] for the rules themselves, docs/SECURITY.md "Access
//! rules" for what a user sees).
//!
//! - A peer's declarations are all kept; routes and discovery use only the
//!   ones its identity allows, so a rule change takes effect on existing
//!   links with a generation bump (no peer has to declare again).
//! - Our own declarations reach a peer only when it may act on them
//!   (our subscription if it may publish there, our service if it may
//!   request, our publisher intent if it may subscribe, our stream service
//!   if it may open streams): discovery never shows a peer what it may not
//!   see. A rule change sends each peer what it now may or may no longer
//!   see.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{Router, State};
use crate::acl::{Acl, AclSource, Action};
use crate::error::Result;
use crate::event::Event;
use crate::peer::Peer;
use crate::proto::{self, Decl, DeclKind, Frame};

/// What a peer does with a declaration of this kind: a peer's own
/// declaration needs it, and one of ours is shown to a peer that may do
/// the opposite (`shown_to`).
pub(crate) fn action_of(kind: DeclKind) -> Action {
    match kind {
        DeclKind::Interest => Action::Subscribe,
        DeclKind::Publisher => Action::Publish,
        DeclKind::Service => Action::Serve,
        DeclKind::StreamService => Action::Stream,
    }
}

/// What a peer must be allowed to see our declaration of `kind`.
fn shown_to(kind: DeclKind) -> Action {
    match kind {
        DeclKind::Interest => Action::Publish,
        DeclKind::Publisher => Action::Subscribe,
        DeclKind::Service => Action::Request,
        DeclKind::StreamService => Action::Stream,
    }
}

impl State {
    /// True if `peer` may do `action` on the concrete `path`.
    pub(crate) fn allowed(&self, peer: &Peer, action: Action, path: &str) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|a| a.allows(&peer.identity, action, path))
    }

    /// True if `peer`'s own declaration of `kind` on `pattern` counts.
    pub(crate) fn decl_allowed(&self, peer: &Peer, kind: DeclKind, pattern: &str) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|a| a.allows_some(&peer.identity, action_of(kind), pattern))
    }

    /// True if our declaration `d` is shown to `peer`.
    pub(crate) fn visible(&self, peer: &Peer, kind: DeclKind, pattern: &str) -> bool {
        visible(self.acl.as_deref(), peer, kind, pattern)
    }
}

fn visible(acl: Option<&Acl>, peer: &Peer, kind: DeclKind, pattern: &str) -> bool {
    acl.is_none_or(|a| a.allows_some(&peer.identity, shown_to(kind), pattern))
}

impl Router {
    /// Counts a denial on `peer` and raises its event.
    pub(crate) fn denied(&self, peer: &Peer, action: Action, path: &str, count: u64) {
        peer.counters.denied.fetch_add(count, Relaxed);
        tracing::debug!(endpoint = %self.shared.name, peer = %peer.name, identity = %peer.identity, %action, path, "denied by the access rules");
        self.shared.emit(Event::Denied {
            peer: peer.name.to_string(),
            identity: peer.identity.to_string(),
            action: action.as_str().to_owned(),
            path: path.to_owned(),
        });
    }

    /// Puts access rules in use (`None`: everything allowed), reading them
    /// first: on an error the rules in use stay. Routes are recomputed,
    /// and every peer is sent the declarations it now may, or may no
    /// longer, see.
    pub(crate) fn set_acl(&self, source: Option<AclSource>) -> Result<()> {
        let acl = source
            .as_ref()
            .map(AclSource::load)
            .transpose()?
            .map(Arc::new);
        let mut st = self.lock();
        let old = std::mem::replace(&mut st.acl, acl);
        st.acl_source = source;
        let ours = st.snapshot();
        for p in &st.peers {
            let changes: Vec<Decl> = ours
                .iter()
                .filter_map(|d| {
                    let was = visible(old.as_deref(), p, d.kind, &d.pattern);
                    let is = st.visible(p, d.kind, &d.pattern);
                    (was != is).then(|| Decl {
                        declare: is,
                        kind: d.kind,
                        pattern: d.pattern.clone(),
                    })
                })
                .collect();
            for chunk in changes.chunks(super::SNAPSHOT_BATCH) {
                let _ =
                    p.tx.push_control(&Frame::Declare(proto::Declarations::new(chunk)));
            }
        }
        self.bump(true);
        drop(st);
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.notify();
        Ok(())
    }

    /// Reads the rules file again (see [`set_acl`](Self::set_acl)).
    pub(crate) fn reload_acl(&self) -> Result<()> {
        let source = self.lock().acl_source.clone();
        match source {
            Some(s) => self.set_acl(Some(s)),
            None => Ok(()),
        }
    }
}
