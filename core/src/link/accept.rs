//! The accept loop: each accepted connection gets a place among pending
//! handshakes (admission), then its own task for the TLS handshake (if
//! any), the Unix peer check and the netchan handshake, so that a slow or
//! hostile connection never holds up the next accept.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{reject, Links};
use crate::admission::{Origin, Ticket};
use crate::error::{Error, ErrorCode};
use crate::transport::{Accepted, Listener};

pub(super) async fn accept_loop(
    links: Arc<Links>,
    listener: Listener,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut failures = 0u64;
    loop {
        let accepted = tokio::select! {
            // An accept ready at the moment of closing is not taken.
            biased;
            _ = links.shared.shutdown.cancelled() => break,
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok(a) => {
                failures = 0;
                let ticket = links.admission.admit(a.origin.clone());
                let links2 = links.clone();
                links
                    .shared
                    .rt
                    .spawn(async move { links2.accepted(a, ticket).await });
                // Let the new handshake run before the next accept: a client
                // that sent its HELLO at once is through before a burst of
                // newer connections could evict it.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, and say so once per burst, not every 50 ms.
                failures += 1;
                links.shared.totals.errors.fetch_add(1, Relaxed);
                if failures == 1 || failures % 100 == 0 {
                    tracing::warn!(endpoint = %links.shared.name, error = %e, failures, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
    }
}

impl Links {
    /// Finishes an accepted connection's TLS handshake within the time an
    /// inbound connection has for its HELLO (evicted like one at the
    /// pending-handshake bound), checks a Unix peer's user id, and runs
    /// the netchan handshake.
    async fn accepted(self: Arc<Self>, a: Accepted, ticket: Ticket) {
        let remote = a.remote.clone();
        let limit = self
            .shared
            .cfg
            .hello_timeout
            .min(self.shared.cfg.handshake_timeout);
        let evicted = ticket.evicted.clone();
        let conn = tokio::select! {
            r = tokio::time::timeout(limit, a.finish()) => match r {
                Ok(c) => c,
                Err(_) => Err(Error::new(
                    ErrorCode::TlsFailed,
                    format!("TLS handshake with {remote} did not finish within {limit:?}"),
                )),
            },
            _ = evicted.cancelled() => {
                self.shared.refused_for_load(&remote, &ticket.evicted_reason());
                return;
            }
        };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.shared.connection_error(&remote, &e);
                return;
            }
        };
        let allowed = &self.shared.cfg.unix_allowed_uids;
        if let Origin::Uid(uid) = conn.origin {
            if !allowed.is_empty() && !allowed.contains(&uid) {
                let e = Error::new(
                    ErrorCode::PermissionDenied,
                    format!("user id {uid} may not connect to this endpoint (unix_allowed_uids)"),
                );
                self.shared.connection_error(&remote, &e);
                drop(ticket);
                reject(&mut conn.reader, conn.writer, &e).await;
                return;
            }
        }
        let _ = self.establish(conn, true, None, Some(ticket)).await;
    }
}
