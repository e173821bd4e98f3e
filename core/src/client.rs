//! The request client: sends a request to one server (a local service
//! first, else the next connected peer that serves the path), waits for its
//! RESULT within the deadline, and cancels it at the server if the caller
//! stops waiting; and pings.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RequestOptions;
use crate::error::{Error, ErrorCode, Result};
use crate::path::validate_path;
use crate::peer::send::Enq;
use crate::peer::Peer;
use crate::proto::{self, Frame};
use crate::request::{Reply, ReplyTo, Request};
use crate::router::Router;
use crate::service_queue::LOCAL;

/// Sends a request and waits for its outcome (see `Endpoint::request_with`).
pub(crate) async fn request(
    router: &Router,
    path: &str,
    payload: Bytes,
    opts: RequestOptions,
) -> Result<Bytes> {
    let shared = &router.shared;
    let timeout = opts.timeout;
    shared.check_open()?;
    validate_path(path)?;
    if timeout.is_zero() {
        return Err(Error::invalid_argument(
            "request timeout must be greater than zero",
        ));
    }
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        Error::new(
            ErrorCode::Timeout,
            format!("no reply to {path} within {timeout:?}"),
        )
    };
    if opts.wait_for_responder {
        let appeared = router
            .wait_until(timeout, || {
                shared.check_open()?;
                router.has_servers(path)
            })
            .await?;
        if !appeared {
            return Err(Error::new(
                ErrorCode::NoResponders,
                format!("no endpoint serving {path} appeared within {timeout:?}"),
            ));
        }
    }
    // A local service first: no serialisation at all.
    if let Some(svc) = router.local_service(path) {
        let (tx, rx) = oneshot::channel();
        let cancel = CancellationToken::new();
        let _guard = cancel.clone().drop_guard();
        let reply = Reply::new(ReplyTo::Local(tx), cancel.clone());
        let req = Request {
            path: path.into(),
            payload,
            sender: shared.name.clone(),
            deadline,
            cancel,
        };
        svc.offer(shared, LOCAL, (req, reply))?;
        // Closing the endpoint fails it, as it fails requests to peers
        // (the handler sees it cancelled: `_guard`).
        return tokio::select! {
            biased;
            r = tokio::time::timeout_at(deadline, rx) => match r {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(Error::new(ErrorCode::NoResponders, "the service closed")),
                Err(_) => Err(timed_out()),
            },
            _ = shared.shutdown.cancelled() => Err(Error::closed()),
        };
    }
    // Peers still sending their snapshot may serve it: wait for them.
    for p in router.peers_not_ready() {
        if tokio::time::timeout_at(deadline, p.ready()).await.is_err() {
            return Err(timed_out());
        }
    }
    let Some(peer) = router.next_server(path) else {
        return Err(Error::new(
            ErrorCode::NoResponders,
            format!("no connected endpoint serves {path}"),
        ));
    };
    let frame_len = proto::FRAME_PREFIX + 24 + path.len() + payload.len();
    if frame_len > peer.max_frame {
        return Err(Error::new(
            ErrorCode::MessageTooLarge,
            format!(
                "a {}-byte request exceeds peer {}'s limit of {} bytes",
                payload.len(),
                peer.name,
                peer.max_frame
            ),
        ));
    }
    let id = shared.next_id();
    let (tx, rx) = oneshot::channel();
    // Fails with the link's end if it already ended.
    peer.in_flight().start_request(id, tx)?;
    let mut guard = CancelOnDrop {
        peer: peer.clone(),
        id,
        armed: true,
    };
    let timeout_ms = timeout.as_millis().min(u64::MAX as u128) as u64;
    loop {
        match peer.tx.push_request(id, path, timeout_ms, &payload) {
            Enq::Queued => break,
            Enq::Closed => {
                guard.armed = false;
                peer.in_flight().forget_request(id);
                return Err(peer.lost_error("connection closed"));
            }
            Enq::Full | Enq::NoCredit { .. } => {
                if !peer.tx.wait_space(deadline, frame_len).await {
                    guard.armed = false;
                    peer.in_flight().forget_request(id);
                    peer.counters.dropped_send_full.fetch_add(1, Relaxed);
                    return Err(Error::new(
                        ErrorCode::BufferFull,
                        format!(
                            "the send buffer to {} stayed full until the deadline",
                            peer.name
                        ),
                    ));
                }
            }
        }
    }
    peer.counters.requests_out.fetch_add(1, Relaxed);
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(r)) => {
            guard.armed = false;
            r
        }
        Ok(Err(_)) => {
            guard.armed = false;
            Err(peer.lost_error("connection closed"))
        }
        Err(_) => Err(timed_out()),
    }
}

/// Cancels a request at its server when the caller stops waiting.
struct CancelOnDrop {
    peer: Arc<Peer>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.peer.in_flight().forget_request(self.id) {
            let _ = self.peer.tx.push_control(&Frame::Cancel(self.id));
        }
    }
}

/// Measures the round-trip time to the connected peer named `name`.
pub(crate) async fn ping(router: &Router, name: &str) -> Result<Duration> {
    let shared = &router.shared;
    shared.check_open()?;
    let p = router.peer_by_name(name)?;
    let nonce = shared.next_id();
    let (tx, rx) = oneshot::channel();
    if p.in_flight().start_ping(nonce, Instant::now(), tx).is_err() {
        return Err(p.lost_error("connection closed"));
    }
    if let Enq::Closed = p.tx.push_control(&Frame::Ping(nonce)) {
        return Err(p.lost_error("connection closed"));
    }
    let r = tokio::select! {
        r = tokio::time::timeout(shared.cfg.ping_timeout, rx) => r,
        _ = p.dead.cancelled() => return Err(p.lost_error("connection closed")),
    };
    match r {
        Ok(Ok(rtt)) => Ok(rtt),
        Ok(Err(_)) => Err(p.lost_error("connection closed")),
        Err(_) => {
            p.in_flight().forget_ping(nonce);
            Err(Error::new(
                ErrorCode::Timeout,
                format!("no pong from {name} within {:?}", shared.cfg.ping_timeout),
            ))
        }
    }
}
