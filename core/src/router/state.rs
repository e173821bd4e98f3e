//! The router's state: local declarations with reference counts, the
//! connected peers and dialled addresses, and the routes computed from them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::inbox::{Inbox, Meta};
use crate::path::Pattern;
use crate::peer::dialer::Dialer;
use crate::peer::Peer;
use crate::proto::{Decl, DeclKind};
use crate::service_queue::ServiceShared;

/// Where a publish on one path goes.
pub(crate) struct Route {
    pub gen: u64,
    pub meta: Arc<Meta>,
    pub peers: Vec<Arc<Peer>>,
    pub subs: Vec<Arc<Inbox>>,
    /// The smallest frame limit among `peers`.
    pub max_frame: usize,
    /// Dialled peers that are away and had a matching interest.
    pub offline: Vec<Arc<Dialer>>,
    /// The error of a publish that dropped the message for one target
    /// after waiting, made once: under a stalled subscriber every publish
    /// returns it.
    pub skip_error: std::sync::OnceLock<crate::error::Error>,
}

/// Where a received message on one path goes (local subscriptions only).
pub(crate) struct RxRoute {
    pub gen: u64,
    /// The path, also in `meta`: the reader compares each message's path
    /// with this copy, leaving `meta`'s cache line to the receiving threads
    /// that count references to it.
    pub path: bytes::Bytes,
    pub meta: Arc<Meta>,
    pub subs: Vec<Arc<Inbox>>,
    /// The access rules deny the sender publishing on this path: its
    /// messages are dropped and counted.
    pub denied: bool,
}

#[derive(Default)]
pub(crate) struct State {
    pub peers: Vec<Arc<Peer>>,
    pub subs: BTreeMap<u64, Arc<Inbox>>,
    pub services: BTreeMap<u64, Arc<ServiceShared>>,
    pub stream_services: BTreeMap<u64, Arc<crate::stream::StreamServe>>,
    pub publishers: BTreeMap<u64, Pattern>,
    /// How many local objects declare each (kind, pattern); the wire only
    /// hears about the first and the last.
    pub counts: HashMap<(DeclKind, Arc<str>), usize>,
    /// Addresses this endpoint keeps connected.
    pub dialers: Vec<Arc<Dialer>>,
    /// Access rules in use (see `router::acl`); `None`: all allowed.
    pub acl: Option<Arc<crate::acl::Acl>>,
    /// What they were read from, for `reload_keys`.
    pub acl_source: Option<crate::acl::AclSource>,
}

impl State {
    /// Counts one more local declaration; returns the wire change, if any.
    pub(crate) fn declare(&mut self, kind: DeclKind, p: &Pattern) -> Option<Decl> {
        let n = self.counts.entry((kind, p.text_arc())).or_insert(0);
        *n += 1;
        (*n == 1).then(|| Decl {
            declare: true,
            kind,
            pattern: p.as_str().to_owned(),
        })
    }

    /// Counts one less; returns the wire change, if any.
    pub(crate) fn undeclare(&mut self, kind: DeclKind, p: &Pattern) -> Option<Decl> {
        let key = (kind, p.text_arc());
        let n = self.counts.get_mut(&key)?;
        *n -= 1;
        if *n == 0 {
            self.counts.remove(&key);
            Some(Decl {
                declare: false,
                kind,
                pattern: p.as_str().to_owned(),
            })
        } else {
            None
        }
    }

    /// Every local declaration, for a new peer's snapshot.
    pub(crate) fn snapshot(&self) -> Vec<Decl> {
        let mut v: Vec<Decl> = self
            .counts
            .keys()
            .map(|(kind, p)| Decl {
                declare: true,
                kind: *kind,
                pattern: p.to_string(),
            })
            .collect();
        v.sort_by(|a, b| (a.kind, &a.pattern).cmp(&(b.kind, &b.pattern)));
        v
    }

    pub(crate) fn route(
        &self,
        gen: u64,
        path: &str,
        local_frame_limit: usize,
        me: &Arc<str>,
    ) -> Route {
        let peers: Vec<Arc<Peer>> = self
            .peers
            .iter()
            // A peer takes part as soon as its interests arrive, except a
            // reconnected one whose held messages must go first: that one
            // waits for its snapshot (see `flush_offline`).
            .filter(|p| {
                p.snapshot_done.load(std::sync::atomic::Ordering::SeqCst)
                    || p.dialer.as_ref().is_none_or(|d| !d.lock_offline().active)
            })
            .filter(|p| p.lock_decls().any_matches(DeclKind::Interest, path))
            .filter(|p| self.allowed(p, crate::acl::Action::Subscribe, path))
            .cloned()
            .collect();
        let max_frame = peers
            .iter()
            .map(|p| p.max_frame)
            .min()
            .unwrap_or(usize::MAX)
            .min(local_frame_limit);
        Route {
            gen,
            meta: Arc::new(Meta {
                path: path.into(),
                sender: me.clone(),
            }),
            subs: self.local_subs(path),
            peers,
            max_frame,
            offline: self
                .dialers
                .iter()
                .filter(|d| d.wants(path))
                .cloned()
                .collect(),
            skip_error: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn local_subs(&self, path: &str) -> Vec<Arc<Inbox>> {
        self.subs
            .values()
            .filter(|s| s.pattern.matches(path))
            .cloned()
            .collect()
    }

    pub(crate) fn local_service(&self, path: &str) -> Option<Arc<ServiceShared>> {
        self.services
            .values()
            .find(|s| s.pattern.matches(path))
            .cloned()
    }

    pub(crate) fn remote_servers(&self, path: &str) -> Vec<Arc<Peer>> {
        self.peers
            .iter()
            .filter(|p| p.lock_decls().any_matches(DeclKind::Service, path))
            .filter(|p| self.allowed(p, crate::acl::Action::Serve, path))
            .cloned()
            .collect()
    }

    /// Names of endpoints (this one included, as `self_name`) holding a
    /// declaration of `kind` that overlaps `pattern`.
    pub(crate) fn discover(
        &self,
        self_name: &str,
        kind: DeclKind,
        pattern: &Pattern,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let local = self.counts.keys().any(|(k, p)| {
            *k == kind
                && Pattern::new(p)
                    .map(|p| p.overlaps(pattern))
                    .unwrap_or(false)
        });
        if local {
            out.push(self_name.to_owned());
        }
        for peer in &self.peers {
            let overlaps = peer
                .lock_decls()
                .iter(kind)
                .filter(|p| self.decl_allowed(peer, kind, p))
                .any(|p| Pattern::new(p).is_ok_and(|p| p.overlaps(pattern)));
            if overlaps {
                out.push(peer.name.to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
