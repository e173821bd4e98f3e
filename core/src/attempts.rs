//! Failed connection attempts, counted per remote address (without its
//! port): a handshake refused for a bad certificate, a wrong shared key, a
//! name its identity does not allow, a stall. Each `ConnectionError` event
//! carries the count for its address so far, and the warning log collapses
//! a storm from one address into one line with a count.
//!
//! The table is bounded: past [`MAX_ADDRESSES`] the address with the fewest
//! failures makes room, so a flood from ever new (spoofed) addresses cannot
//! grow it, and a persistent offender keeps its count.

use std::collections::HashMap;
use std::sync::Mutex;

/// Addresses tracked at once.
pub(crate) const MAX_ADDRESSES: usize = 4096;

#[derive(Default)]
pub(crate) struct Attempts {
    failed: Mutex<HashMap<String, u64>>,
}

/// `tcp://10.0.0.5:51234` -> `tcp://10.0.0.5`, `tcp://[::1]:7` ->
/// `tcp://[::1]`; an address without a port (a Unix socket) as it is.
pub(crate) fn without_port(addr: &str) -> &str {
    let Some((scheme, rest)) = addr.split_once("://") else {
        return addr;
    };
    if matches!(scheme, "tcp" | "tls") {
        if let Some(i) = rest.rfind(':') {
            let host = &rest[..i];
            // An IPv6 address keeps its colons inside brackets.
            if !host.contains(':') || host.ends_with(']') {
                return &addr[..scheme.len() + 3 + i];
            }
        }
    }
    addr
}

impl Attempts {
    /// Counts a failed attempt from `addr`; returns the failures from its
    /// address so far, this one included.
    pub(crate) fn failed(&self, addr: &str) -> u64 {
        let key = without_port(addr);
        let mut m = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(key) {
            *n += 1;
            return *n;
        }
        if m.len() >= MAX_ADDRESSES {
            // Rare (only while the table is full): a scan is cheaper than
            // the accept that brought the attempt.
            if let Some(k) = m.iter().min_by_key(|(_, n)| **n).map(|(k, _)| k.clone()) {
                m.remove(&k);
            }
        }
        m.insert(key.to_owned(), 1);
        1
    }

    /// Failed attempts per address, most first.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let m = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, u64)> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_left_out_and_everything_else_kept() {
        for (a, want) in [
            ("tcp://10.0.0.5:51234", "tcp://10.0.0.5"),
            ("tls://127.0.0.1:7", "tls://127.0.0.1"),
            ("tcp://[::1]:7", "tcp://[::1]"),
            ("unix:///tmp/x.sock", "unix:///tmp/x.sock"),
            ("inproc://a", "inproc://a"),
            ("garbage", "garbage"),
        ] {
            assert_eq!(without_port(a), want, "{a}");
        }
    }

    #[test]
    fn counted_per_address_and_bounded() {
        let a = Attempts::default();
        assert_eq!(a.failed("tcp://10.0.0.5:1"), 1);
        assert_eq!(a.failed("tcp://10.0.0.5:2"), 2);
        assert_eq!(a.failed("tcp://10.0.0.6:1"), 1);
        assert_eq!(
            a.snapshot(),
            vec![
                ("tcp://10.0.0.5".to_owned(), 2),
                ("tcp://10.0.0.6".to_owned(), 1)
            ]
        );
        for i in 0..2 * MAX_ADDRESSES {
            a.failed(&format!("tcp://192.0.2.{i}:9"));
        }
        let s = a.snapshot();
        assert_eq!(s.len(), MAX_ADDRESSES);
        assert_eq!(
            s[0],
            ("tcp://10.0.0.5".to_owned(), 2),
            "the offender keeps its count"
        );
    }
}
