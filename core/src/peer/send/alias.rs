//! The paths a link's sender aliased (ALIAS), so that later messages on
//! them go as SHORT_MESSAGEs (docs/PROTOCOL.md, "ALIAS, SHORT_MESSAGE").

use std::sync::Arc;

use bytes::BytesMut;

use crate::error::Result;
use crate::inbox::Meta;
use crate::proto::{self, Frame};

/// The first [`proto::MAX_ALIASES`] paths published on a link, within
/// [`proto::MAX_ALIAS_BYTES`]; later ones go in full MESSAGEs. The keys
/// are this endpoint's own paths, not a peer's: a fast hash is fine.
#[derive(Default)]
pub(super) struct Aliases {
    map: hashbrown::HashMap<Box<str>, u16>,
    bytes: usize,
    /// The route last found, by identity: a publisher repeating a route
    /// (the common case) skips the hash. Held, so the pointer is never
    /// reused for another route while it is here.
    last: Option<(Arc<Meta>, u16)>,
}

/// How a message on a path goes.
#[derive(Clone, Copy)]
pub(super) enum Choice {
    /// A SHORT_MESSAGE with this alias.
    Known(u16),
    /// An ALIAS naming the path with this alias, then a SHORT_MESSAGE.
    New(u16),
    /// A MESSAGE: the link's aliases are used up.
    Full,
}

impl Choice {
    /// The bytes it queues, at most.
    pub(super) fn frame_len(self, path: &str, payload_len: usize) -> usize {
        match self {
            Choice::Known(_) => proto::short_message_frame_len(payload_len),
            // An ALIAS frame is at most this big.
            Choice::New(_) => {
                proto::FRAME_PREFIX + 12 + path.len() + proto::short_message_frame_len(payload_len)
            }
            Choice::Full => proto::message_frame_len(path, payload_len),
        }
    }
}

impl Aliases {
    /// How a message on `meta`'s path goes now.
    pub(super) fn choose(&mut self, meta: &Arc<Meta>) -> Choice {
        if let Some((m, a)) = &self.last {
            if Arc::ptr_eq(m, meta) {
                return Choice::Known(*a);
            }
        }
        let path = &*meta.path;
        match self.map.get(path) {
            Some(&a) => {
                self.last = Some((meta.clone(), a));
                Choice::Known(a)
            }
            None if (self.map.len() as u64) < proto::MAX_ALIASES
                && self.bytes + path.len() <= proto::MAX_ALIAS_BYTES =>
            {
                Choice::New(self.map.len() as u16)
            }
            None => Choice::Full,
        }
    }

    /// Encodes the ALIAS naming `meta`'s path `alias` into `buf` and
    /// remembers it.
    pub(super) fn name(&mut self, buf: &mut BytesMut, alias: u16, meta: &Arc<Meta>) -> Result<()> {
        let path = &*meta.path;
        proto::encode(
            buf,
            &Frame::Alias {
                alias: alias.into(),
                path: path.to_owned(),
            },
        )?;
        self.map.insert(path.into(), alias);
        self.bytes += path.len();
        self.last = Some((meta.clone(), alias));
        Ok(())
    }
}
