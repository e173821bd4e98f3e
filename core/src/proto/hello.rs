//! Reading a HELLO header: a map with six required keys and two optional
//! ones; unknown keys are skipped (a later version may add some).

use super::header::Reader;
use super::Hello;
use crate::error::Result;

/// HELLO keys, each required exactly once.
const HELLO_KEYS: [&str; 6] = [
    "magic",
    "min_version",
    "max_version",
    "name",
    "max_frame",
    "heartbeat_ms",
];

pub(super) fn parse_hello(r: &mut Reader<'_>) -> Result<Hello> {
    let n = r.map("the HELLO header")?;
    let mut seen = [false; HELLO_KEYS.len()];
    let mut h = Hello {
        magic: String::new(),
        min_version: 0,
        max_version: 0,
        name: String::new(),
        max_frame: 0,
        heartbeat_ms: 0,
        instance: 0,
        rejoin: false,
        link: 0,
    };
    // The optional keys: `instance`, `rejoin`, `link`.
    let mut optional_seen = [false; 3];
    for _ in 0..n {
        let key = r.str("a HELLO key")?;
        if let Some(i) = ["instance", "rejoin", "link"]
            .iter()
            .position(|k| *k == key)
        {
            if std::mem::replace(&mut optional_seen[i], true) {
                return Err(r.err(format!("key `{key}` appears twice")));
            }
            match i {
                0 => h.instance = r.uint(key)?,
                1 => h.rejoin = r.bool(key)?,
                _ => h.link = r.uint(key)?,
            }
            continue;
        }
        let Some(i) = HELLO_KEYS.iter().position(|k| *k == key) else {
            // Unknown keys are ignored (a later version may add some).
            r.skip(key)?;
            continue;
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(r.err(format!("key `{key}` appears twice")));
        }
        match i {
            0 => h.magic = r.str(key)?.to_owned(),
            1 => h.min_version = r.uint(key)?,
            2 => h.max_version = r.uint(key)?,
            3 => h.name = r.str(key)?.to_owned(),
            // A peer accepting frames beyond 4 GiB accepts any frame we
            // can encode; a heartbeat beyond 49 days is none.
            4 => h.max_frame = u32::try_from(r.uint(key)?).unwrap_or(u32::MAX),
            _ => h.heartbeat_ms = u32::try_from(r.uint(key)?).unwrap_or(u32::MAX),
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(r.err(format!("required key `{}` is missing", HELLO_KEYS[i])));
    }
    Ok(h)
}
