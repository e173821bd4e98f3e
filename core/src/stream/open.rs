//! The opener's side: `open_stream` reaches one server (a local stream
//! service first, else the next connected peer that serves the path) and
//! waits for it to accept.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::serve::check_window;
use super::{Side, Stream, StreamCore, StreamRequest};
use crate::config::StreamOptions;
use crate::error::{Error, ErrorCode, Result};
use crate::link::state::LinkStream;
use crate::path::validate_path;
use crate::peer::send::Enq;
use crate::proto::{self, Frame};
use crate::router::Router;
use crate::service_queue::LOCAL;

/// How long `open_stream` waits for the server to accept, by default.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a stream on `path` (see `Endpoint::open_stream_with`).
pub(crate) async fn open(
    router: &Router,
    path: &str,
    payload: Bytes,
    opts: StreamOptions,
) -> Result<Stream> {
    let shared = &router.shared;
    shared.check_open()?;
    validate_path(path)?;
    let window = check_window(opts.window.unwrap_or(shared.cfg.stream_window))?;
    if opts.timeout.is_some_and(|t| t.is_zero()) || opts.open_timeout.is_some_and(|t| t.is_zero()) {
        return Err(Error::invalid_argument(
            "a stream's timeout and open timeout must be greater than zero",
        ));
    }
    let now = Instant::now();
    let deadline = opts.timeout.map(|t| now + t);
    let open_timeout = opts.open_timeout.unwrap_or(DEFAULT_OPEN_TIMEOUT);
    let open_by = match deadline {
        Some(d) => d.min(now + open_timeout),
        None => now + open_timeout,
    };
    let path_arc: Arc<str> = path.into();
    let side = |peer_name: Arc<str>| Side {
        path: path_arc.clone(),
        peer_name,
        deadline,
        shutdown: shared.shutdown.clone(),
        blocker: Some(shared.blocker.clone()),
    };
    if opts.wait_for_responder {
        let appeared = router
            .wait_until(open_by - now, || router.has_stream_servers(path))
            .await?;
        if !appeared {
            return Err(Error::new(
                ErrorCode::NoResponders,
                format!("no endpoint serving streams on {path} appeared within {open_timeout:?}"),
            ));
        }
    }
    if let Some(svc) = router.local_stream_service(path) {
        let (ours, theirs, taken) = StreamCore::local_pair(
            side(shared.name.clone()),
            side(shared.name.clone()),
            (window, svc.window),
        );
        ours.arm_deadline(&shared.rt);
        let mine = Stream::new(ours);
        let req = StreamRequest {
            path: path_arc.clone(),
            payload,
            sender: shared.name.clone(),
            deadline,
        };
        svc.svc.offer(shared, LOCAL, (req, Stream::new(theirs)))?;
        // Like a peer's, opens once a handler or `recv` takes it (dropping
        // `mine` on a timeout cancels it).
        return match tokio::time::timeout_at(open_by, taken).await {
            Ok(Ok(Ok(()))) => Ok(mine),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::new(
                ErrorCode::NoResponders,
                "the stream service closed",
            )),
            Err(_) => Err(not_accepted(path, open_timeout)),
        };
    }
    for p in router.peers_not_ready() {
        if tokio::time::timeout_at(open_by, p.ready()).await.is_err() {
            return Err(not_accepted(path, open_timeout));
        }
    }
    let Some(peer) = router.next_stream_server(path) else {
        return Err(Error::new(
            ErrorCode::NoResponders,
            format!("no connected endpoint serves streams on {path}"),
        ));
    };
    let frame_len = proto::FRAME_PREFIX + 40 + path.len() + payload.len();
    if frame_len > peer.max_frame {
        return Err(Error::new(
            ErrorCode::MessageTooLarge,
            format!(
                "a {}-byte first payload exceeds peer {}'s limit of {} bytes",
                payload.len(),
                peer.name,
                peer.max_frame
            ),
        ));
    }
    let n = shared.next_id();
    let (core, accepted) = StreamCore::opening(side(peer.name.clone()), peer.clone(), n, window);
    peer.in_flight().start_stream(2 * n + 1, core.clone())?;
    let stream = Stream::new(core.clone());
    let timeout_ms = opts
        .timeout
        .map_or(0, |t| t.as_millis().clamp(1, u64::MAX as u128) as u64);
    let frame = Frame::StreamOpen {
        id: 2 * n,
        path: path.to_owned(),
        timeout_ms,
        window,
        payload: Bytes::new(),
    };
    loop {
        match peer.tx.push_frame(&frame, Some(&payload), true) {
            Enq::Queued => break,
            Enq::Closed => {
                core.on_link_end(&peer.lost_error("connection closed"));
                return Err(peer.lost_error("connection closed"));
            }
            Enq::Full | Enq::NoCredit { .. } => {
                if !peer.tx.wait_space(open_by, frame_len).await {
                    // Never sent: nothing to tell the peer.
                    core.on_link_end(&Error::new(ErrorCode::BufferFull, "not sent"));
                    peer.in_flight().forget_stream(2 * n + 1);
                    return Err(Error::new(
                        ErrorCode::BufferFull,
                        format!(
                            "the send buffer to {} stayed full until the open timed out",
                            peer.name
                        ),
                    ));
                }
            }
        }
    }
    core.arm_deadline(&shared.rt);
    // Dropping `stream` on an early return cancels it at the server.
    match tokio::time::timeout_at(open_by, accepted).await {
        Ok(Ok(Ok(()))) => Ok(stream),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(peer.lost_error("connection closed")),
        Err(_) => Err(not_accepted(path, open_timeout)),
    }
}

fn not_accepted(path: &str, t: Duration) -> Error {
    Error::new(
        ErrorCode::Timeout,
        format!("no server accepted the stream on {path} within {t:?}"),
    )
}
