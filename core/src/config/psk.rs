//! Shared keys (docs/SECURITY.md, "Shared keys"): a key file holds one or
//! more keys, each named by a key id, one per line:
//!
//! ```text
//! # comments and blank lines are ignored
//! netchan-psk 2026-12 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! netchan-psk 2026-06 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
//! ```
//!
//! A dialler proves it holds the first key; a listener accepts any key in
//! its file. `netchan keygen ID` makes a line.
//!
//! A peer that proved a key has the identity `key:ID`. An optional fourth
//! field, `names=PATTERN,...` (`*` matches any run of characters), binds
//! the key to the endpoint names its holders may take; without it a key's
//! holders may take any name (docs/SECURITY.md, "Identities").

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Bytes in a shared key.
pub const SHARED_KEY_LEN: usize = 32;

/// The longest key id.
pub const MAX_KEY_ID: usize = 64;

/// Where the shared keys are: a key file, or its text.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file, read when the endpoint starts and on `reload_keys`.
    File(PathBuf),
    /// The key file's text (lines starting with `netchan-psk`).
    Text(String),
}

impl KeySource {
    /// A value as the `psk` setting takes it: the keys' text if it starts
    /// with `netchan-psk`, a file path otherwise.
    pub fn parse(v: &str) -> KeySource {
        if v.trim_start().starts_with("netchan-psk") {
            KeySource::Text(v.to_owned())
        } else {
            KeySource::File(PathBuf::from(v))
        }
    }

    fn text(&self) -> Result<String> {
        match self {
            KeySource::Text(t) => Ok(t.clone()),
            KeySource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                Error::invalid_argument(format!(
                    "cannot read the shared keys (psk) from {}: {e}",
                    p.display()
                ))
            }),
        }
    }
}

/// Never prints keys.
impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Text(_) => write!(f, "Text(<keys>)"),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Text(_) => write!(f, "<keys>"),
        }
    }
}

/// Shared keys, read and checked: the first is the one a dialler uses.
#[derive(Clone)]
pub(crate) struct SharedKeys {
    pub keys: Vec<(String, [u8; SHARED_KEY_LEN])>,
    /// The endpoint names each key id's holders may take (none: any).
    pub names: std::collections::HashMap<String, Vec<String>>,
}

/// Never prints keys, only their ids.
impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "SharedKeys {ids:?}")
    }
}

impl SharedKeys {
    pub(crate) fn load(src: &KeySource) -> Result<SharedKeys> {
        let text = src.text()?;
        let mut keys: Vec<(String, [u8; SHARED_KEY_LEN])> = Vec::new();
        let mut names = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| {
                Error::invalid_argument(format!(
                    "shared keys ({src}), line {}: {why}; a line is `netchan-psk ID HEX [names=PATTERN,...]` with 64 hex digits (netchan keygen ID makes one)",
                    i + 1
                ))
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (tag, id, hex, bound) = match parts[..] {
                [tag, id, hex] => (tag, id, hex, None),
                [tag, id, hex, extra] => match extra.strip_prefix("names=") {
                    Some(n) if !n.is_empty() && n.split(',').all(|p| !p.is_empty()) => {
                        (tag, id, hex, Some(n))
                    }
                    _ => return Err(bad("the fourth field is `names=PATTERN,...`")),
                },
                _ => return Err(bad("not three fields")),
            };
            if tag != "netchan-psk" {
                return Err(bad("it does not start with netchan-psk"));
            }
            if id.len() > MAX_KEY_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("the key id must be 1 to 64 printable ASCII characters"));
            }
            let key = decode_hex(hex).ok_or_else(|| bad("the key is not 64 hex digits"))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(bad("the key id is used twice"));
            }
            keys.push((id.to_owned(), key));
            if let Some(n) = bound {
                names.insert(id.to_owned(), n.split(',').map(str::to_owned).collect());
            }
        }
        if keys.is_empty() {
            return Err(Error::invalid_argument(format!(
                "shared keys ({src}) hold no key (netchan keygen ID makes one)"
            )));
        }
        Ok(SharedKeys { keys, names })
    }

    /// The identity of a peer that proved key `id`.
    pub(crate) fn identity(&self, id: &str) -> crate::acl::Identity {
        crate::acl::Identity {
            id: format!("key:{id}"),
            names: self.names.get(id).cloned().unwrap_or_default(),
        }
    }

    /// The key named `id`.
    pub(crate) fn get(&self, id: &[u8]) -> Option<&[u8; SHARED_KEY_LEN]> {
        self.keys
            .iter()
            .find(|(k, _)| k.as_bytes() == id)
            .map(|(_, v)| v)
    }
}

fn decode_hex(s: &str) -> Option<[u8; SHARED_KEY_LEN]> {
    if s.len() != 2 * SHARED_KEY_LEN {
        return None;
    }
    let mut out = [0u8; SHARED_KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new key file line for `id`: 32 bytes from the operating system's
/// random source (through rustls's provider).
pub fn generate_key_line(id: &str) -> Result<String> {
    if id.is_empty() || id.len() > MAX_KEY_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_argument(
            "a key id is 1 to 64 printable ASCII characters without spaces",
        ));
    }
    let mut key = [0u8; SHARED_KEY_LEN];
    #[allow(deprecated)] // see transport::tls on the ring provider
    let provider = rustls::crypto::ring::default_provider();
    provider
        .secure_random
        .fill(&mut key)
        .map_err(|_| Error::invalid_argument("the system's random source failed"))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("netchan-psk {id} {hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_parse_and_bad_lines_are_named() {
        let a = generate_key_line("a").unwrap();
        let b = generate_key_line("b-2026").unwrap();
        assert_ne!(a[14..], b[17..], "two keys are different");
        let k = SharedKeys::load(&KeySource::parse(&format!("{a}\n# old\n\n{b}\n"))).unwrap();
        assert_eq!(k.keys.len(), 2);
        assert_eq!(k.keys[0].0, "a");
        assert!(k.get(b"b-2026").is_some() && k.get(b"c").is_none());
        for (text, says) in [
            ("netchan-psk x 00", "64 hex"),
            (
                "psk x 0000000000000000000000000000000000000000000000000000000000000000",
                "netchan-psk",
            ),
            ("netchan-psk x", "three fields"),
            ("# nothing", "no key"),
            (
                "netchan-psk x 0000000000000000000000000000000000000000000000000000000000000000 names",
                "names=PATTERN",
            ),
        ] {
            let e = SharedKeys::load(&KeySource::Text(text.into())).unwrap_err();
            assert!(e.detail().contains(says), "{text}: {e}");
        }
        let dup = format!("{a}\n{a}\n");
        assert!(SharedKeys::load(&KeySource::Text(dup))
            .unwrap_err()
            .detail()
            .contains("twice"));
        assert!(generate_key_line("has space").is_err());
        let bound = SharedKeys::load(&KeySource::Text(format!("{a} names=s-*,t\n{b}"))).unwrap();
        assert_eq!(bound.identity("a").id, "key:a");
        assert!(bound.identity("a").may_use_name("s-1") && !bound.identity("a").may_use_name("u"));
        assert!(bound.identity("b-2026").may_use_name("anything"));
        assert!(format!("{:?}", KeySource::parse(&a)).contains("<keys>"));
    }
}
