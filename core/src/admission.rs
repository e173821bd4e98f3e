//! Admission of inbound connections until their HELLO is checked.
//!
//! Connections that have not yet sent a valid HELLO are *pending*. They are
//! bounded per remote address (`max_pending_handshakes_per_address`) and in
//! total (`max_pending_handshakes`). When a bound is reached, the **oldest**
//! pending connection (of that address, or of all) is evicted to make room
//! for the new one, not the new one refused: attackers that open connections
//! and send nothing only evict each other, while a real client, which sends
//! its HELLO the moment it connects, is through long before enough newer
//! connections arrive to make it the oldest (the accept loop lets each new
//! handshake run before it accepts the next connection). Evicted connections
//! are told why: a CLOSE with `OVERLOADED` and the limit, before the socket
//! closes. (An earlier design spared connections younger than a few
//! milliseconds and refused the newcomer instead; attackers reconnecting
//! from one address kept every place young, and a real client from that
//! address was refused every time: `handshake_flood_from_the_clients_address_cannot_lock_it_out`.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

/// What identifies a remote address for the per-address bound: its IP for
/// TCP, the peer's user id for Unix sockets (a named pipe's client is
/// `Unknown`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    Ip(std::net::IpAddr),
    #[cfg_attr(not(unix), allow(dead_code))]
    Uid(u32),
    Unknown,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Ip(ip) => write!(f, "{ip}"),
            Origin::Uid(uid) => write!(f, "uid {uid}"),
            Origin::Unknown => f.write_str("an unknown address"),
        }
    }
}

struct Pending {
    origin: Origin,
    evict: CancellationToken,
    reason: Arc<OnceLock<crate::Error>>,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// By admission order: the first entry is the oldest.
    pending: BTreeMap<u64, Pending>,
    per_origin: HashMap<Origin, usize>,
}

pub(crate) struct Admission {
    table: Mutex<Table>,
    max_total: usize,
    max_per_origin: usize,
}

/// A pending connection's place. Dropping it (the HELLO was checked, or the
/// connection ended) frees the place. `evicted` is cancelled when a newer
/// connection took it; the reason is in [`Ticket::evicted_reason`].
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    seq: u64,
    pub evicted: CancellationToken,
    reason: Arc<OnceLock<crate::Error>>,
}

/// Why a connection was not admitted, or was evicted.
pub(crate) fn overloaded(limit: &str, n: usize) -> crate::Error {
    crate::Error::new(
        crate::ErrorCode::Overloaded,
        format!("{limit} of {n} reached: the oldest waiting connection is closed first; try again"),
    )
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_origin: usize) -> Arc<Admission> {
        Arc::new(Admission {
            table: Mutex::new(Table::default()),
            max_total: max_total.max(1),
            max_per_origin: max_per_origin.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `origin`, evicting the oldest pending one
    /// (of that origin, or of all) if a bound is reached.
    pub(crate) fn admit(self: &Arc<Self>, origin: Origin) -> Ticket {
        let mut t = self.lock();
        let from_origin = t.per_origin.get(&origin).copied().unwrap_or(0);
        let victim = if from_origin >= self.max_per_origin {
            t.pending
                .iter()
                .find(|(_, p)| p.origin == origin)
                .map(|(k, _)| {
                    (
                        *k,
                        "pending handshakes from one address",
                        self.max_per_origin,
                    )
                })
        } else if t.pending.len() >= self.max_total {
            t.pending
                .first_key_value()
                .map(|(k, _)| (*k, "pending handshakes", self.max_total))
        } else {
            None
        };
        let mut evicted = None;
        if let Some((seq, limit, n)) = victim {
            if let Some(p) = t.pending.remove(&seq) {
                Self::forget(&mut t, &p.origin);
                let _ = p.reason.set(overloaded(limit, n));
                evicted = Some(p.evict);
            }
        }
        let seq = t.next;
        t.next += 1;
        let evict = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        t.pending.insert(
            seq,
            Pending {
                origin: origin.clone(),
                evict: evict.clone(),
                reason: reason.clone(),
            },
        );
        *t.per_origin.entry(origin).or_insert(0) += 1;
        drop(t);
        if let Some(token) = evicted {
            token.cancel();
        }
        Ticket {
            admission: self.clone(),
            seq,
            evicted: evict,
            reason,
        }
    }

    fn forget(t: &mut Table, origin: &Origin) {
        if let Some(n) = t.per_origin.get_mut(origin) {
            *n -= 1;
            if *n == 0 {
                t.per_origin.remove(origin);
            }
        }
    }

    /// Pending connections now.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

impl Ticket {
    /// The error an evicted connection is closed with.
    pub(crate) fn evicted_reason(&self) -> crate::Error {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| overloaded("pending handshakes", self.admission.max_total))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut t = self.admission.lock();
        if let Some(p) = t.pending.remove(&self.seq) {
            Admission::forget(&mut t, &p.origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Origin {
        Origin::Ip(std::net::IpAddr::from([127, 0, 0, n]))
    }

    #[test]
    fn the_oldest_of_the_same_address_is_evicted_first() {
        let a = Admission::new(10, 2);
        let first = a.admit(ip(1));
        let other = a.admit(ip(2));
        let second = a.admit(ip(1));
        let third = a.admit(ip(1));
        assert!(first.evicted.is_cancelled());
        assert!(
            first
                .evicted_reason()
                .detail()
                .contains("from one address of 2"),
            "{}",
            first.evicted_reason()
        );
        assert!(!second.evicted.is_cancelled());
        assert!(!other.evicted.is_cancelled());
        assert!(!third.evicted.is_cancelled());
        assert_eq!(a.pending(), 3);
        drop(first);
        assert_eq!(a.pending(), 3, "an evicted ticket's place is already free");
    }

    #[test]
    fn the_oldest_of_all_is_evicted_at_the_total_bound() {
        let a = Admission::new(3, 3);
        let t: Vec<_> = (1..=3).map(|n| a.admit(ip(n))).collect();
        let newcomer = a.admit(ip(9));
        assert!(t[0].evicted.is_cancelled());
        assert!(!t[1].evicted.is_cancelled() && !t[2].evicted.is_cancelled());
        assert!(!newcomer.evicted.is_cancelled());
        assert_eq!(a.pending(), 3);
    }
}
