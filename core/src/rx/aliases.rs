//! The paths a peer aliased on one link (ALIAS), for its SHORT_MESSAGEs
//! (docs/PROTOCOL.md, "ALIAS, SHORT_MESSAGE").

use bytes::Bytes;

use crate::error::{Error, ErrorCode, Result};
use crate::path::validate_path;
use crate::proto;

/// The paths a peer named with ALIAS on one link, for its SHORT_MESSAGEs.
#[derive(Default)]
pub(super) struct Aliases {
    paths: Vec<Option<Bytes>>,
    bytes: usize,
}

impl Aliases {
    /// ALIAS: `alias` names `path` from now on. Each alias is named once;
    /// at most [`proto::MAX_ALIAS_BYTES`] of paths in all.
    pub(super) fn define(&mut self, alias: u64, path: String) -> Result<()> {
        let bad = |what: String| Error::new(ErrorCode::ProtocolError, what);
        validate_path(&path)
            .map_err(|e| bad(format!("ALIAS of an invalid path: {}", e.detail())))?;
        let i = alias as usize; // below MAX_ALIASES (checked by the codec)
        if self.paths.get(i).is_some_and(Option::is_some) {
            return Err(bad(format!(
                "alias {alias} is already defined on this connection"
            )));
        }
        if self.bytes + path.len() > proto::MAX_ALIAS_BYTES {
            return Err(bad(format!(
                "aliased paths exceed {} bytes on this connection",
                proto::MAX_ALIAS_BYTES
            )));
        }
        if self.paths.len() <= i {
            self.paths.resize(i + 1, None);
        }
        self.bytes += path.len();
        self.paths[i] = Some(Bytes::from(path));
        Ok(())
    }

    /// The path `alias` names.
    pub(super) fn path(&self, alias: u16) -> Result<&[u8]> {
        self.paths
            .get(alias as usize)
            .and_then(|p| p.as_deref())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ProtocolError,
                    format!("SHORT_MESSAGE with alias {alias}, which names no path"),
                )
            })
    }
}
