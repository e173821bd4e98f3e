//! Bidirectional streams: [`Stream`] (one side, both directions), the
//! foreign-implemented [`StreamHandler`] that serves them, and their
//! options and request.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::endpoint::spawn_on;
use crate::error::NetchanError;

type Result<T, E = NetchanError> = std::result::Result<T, E>;

/// Options of one stream (`Endpoint.openStream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct StreamOptions {
    /// The stream's deadline, from now; it travels with the opening, and
    /// at the deadline both sides end with `TIMEOUT`. `null`/`nil`: none.
    #[uniffi(default = None)]
    pub timeout: Option<Duration>,
    /// How long opening waits for a server to take the stream (default
    /// 10 s, or the deadline if sooner).
    #[uniffi(default = None)]
    pub open_timeout: Option<Duration>,
    /// Payload bytes the server may send before this side receives
    /// (default: the endpoint's `stream_window`, 1 MiB).
    #[uniffi(default = None)]
    pub window: Option<u64>,
    /// Wait (up to the open timeout) for a server to appear instead of
    /// failing with `NO_RESPONDERS` at once.
    #[uniffi(default = false)]
    pub wait_for_responder: bool,
}

impl From<StreamOptions> for netchan::StreamOptions {
    fn from(o: StreamOptions) -> Self {
        let mut c = netchan::StreamOptions::default();
        c.timeout = o.timeout;
        c.open_timeout = o.open_timeout;
        c.window = o.window.map(|w| usize::try_from(w).unwrap_or(usize::MAX));
        c.wait_for_responder = o.wait_for_responder;
        c
    }
}

/// An opened stream, as its server sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StreamRequest {
    /// The concrete path the stream was opened on.
    pub path: String,
    /// The first payload, sent with the opening.
    pub payload: Vec<u8>,
    /// The opener's endpoint name.
    pub sender: String,
    /// Time left before the stream's deadline, if the opener gave one.
    pub remaining: Option<Duration>,
}

impl StreamRequest {
    /// The record of a core opening.
    pub(crate) fn from_core(req: &netchan::StreamRequest) -> StreamRequest {
        StreamRequest {
            path: req.path().to_owned(),
            payload: req.payload().to_vec(),
            sender: req.sender().to_owned(),
            remaining: req
                .deadline()
                .map(|d| d.saturating_duration_since(tokio::time::Instant::now())),
        }
    }
}

/// Serves streams. Implemented in Kotlin or Swift.
///
/// Called on a thread of its own per stream (at most the service's
/// `maxConcurrent` at once), so it may block: `recvBlocking` and
/// `sendBlocking` work there, and so do the suspend/async calls. When it
/// returns, this side's direction is finished; a thrown `NetchanError`
/// (Kotlin `NetchanException`) ends the stream with its code and detail,
/// any other exception with `HANDLER_ERROR`.
#[uniffi::export(callback_interface)]
pub trait StreamHandler: Send + Sync {
    /// Handles one stream.
    fn handle(&self, request: StreamRequest, stream: Arc<Stream>) -> Result<(), NetchanError>;
}

/// One side of a bidirectional stream: `send` messages, `recv` the other
/// side's, `finish` this side's direction, or `cancel` the whole stream.
/// Each direction has its own credit (the receiver's window): a sender
/// that outruns its receiver waits, and nothing else waits with it.
///
/// Thread-safe. Kotlin: `close()` (or `use {}`) frees it, which cancels a
/// stream whose two directions have not both ended; Swift: on `deinit`.
#[derive(uniffi::Object)]
pub struct Stream {
    core: Arc<netchan::Stream>,
    rt: Handle,
}

impl Stream {
    pub(crate) fn new(core: netchan::Stream, rt: Handle) -> Arc<Stream> {
        Arc::new(Stream {
            core: Arc::new(core),
            rt,
        })
    }
}

#[uniffi::export]
impl Stream {
    /// The path the stream was opened on.
    pub fn path(&self) -> String {
        self.core.path().to_owned()
    }

    /// The endpoint at the other side.
    pub fn peer(&self) -> String {
        self.core.peer().to_owned()
    }

    /// Sends one message, waiting while the receiver's window is full.
    ///
    /// Errors: the code the stream ended with (`CANCELLED`, `TIMEOUT`,
    /// `PEER_LOST`, a handler's code), `INVALID_ARGUMENT` after `finish`,
    /// `MESSAGE_TOO_LARGE`, `CLOSED`.
    pub async fn send(self: Arc<Self>, data: Vec<u8>) -> Result<()> {
        let core = self.core.clone();
        spawn_on(&self.rt, async move { Ok(core.send(data).await?) }).await
    }

    /// The next message; `null`/`nil` once the other side finished its
    /// direction and everything it sent was received.
    ///
    /// Errors: the code the stream ended with (after what arrived before
    /// it), `CLOSED`.
    pub async fn recv(self: Arc<Self>) -> Result<Option<Vec<u8>>> {
        let core = self.core.clone();
        spawn_on(&self.rt, async move {
            Ok(core.recv().await?.map(|b| b.to_vec()))
        })
        .await
    }

    /// `send` from a thread that may block, waiting at most `timeout`
    /// (`TIMEOUT`, nothing sent); `null`/`nil`: no limit.
    ///
    /// Errors: as `send`; `TIMEOUT`.
    pub fn send_blocking(&self, data: Vec<u8>, timeout: Option<Duration>) -> Result<()> {
        Ok(self.core.send_blocking(data, timeout)?)
    }

    /// `recv` from a thread that may block, waiting at most `timeout`
    /// (`TIMEOUT`; the stream goes on); `null`/`nil`: no limit.
    ///
    /// Errors: as `recv`; `TIMEOUT`.
    pub fn recv_blocking(&self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        Ok(self.core.recv_blocking(timeout)?.map(|b| b.to_vec()))
    }

    /// Ends this side's direction: the other side receives what was sent,
    /// then the end. Receiving goes on. Idempotent.
    pub fn finish(&self) {
        self.core.finish()
    }

    /// Ends the whole stream with `CANCELLED`; the other side sees it
    /// within one round trip.
    pub fn cancel(&self) {
        self.core.cancel()
    }
}

/// Serves streams on `pattern` of `core` with a foreign handler, each on a
/// thread of its own (the handler may block on the stream; a blocking-pool
/// thread would refuse that, being inside the runtime).
pub(crate) fn serve(
    core: &netchan::Endpoint,
    pattern: &str,
    options: netchan::ServeOptions,
    handler: Arc<dyn StreamHandler>,
) -> Result<netchan::StreamService> {
    let rt = core.runtime().clone();
    Ok(
        core.serve_stream_fn_with(pattern, options, move |req, stream| {
            let (handler, rt) = (handler.clone(), rt.clone());
            async move {
                let r = StreamRequest::from_core(&req);
                let s = Stream::new(stream, rt);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let spawned = std::thread::Builder::new()
                    .name("netchan-stream-handler".into())
                    .spawn(move || {
                        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            handler.handle(r, s)
                        }));
                        let _ = tx.send(out);
                    });
                if let Err(e) = spawned {
                    return Err(netchan::Error::new(
                        netchan::ErrorCode::Internal,
                        format!("cannot start a thread for the stream handler: {e}"),
                    ));
                }
                match rx.await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.into_core()),
                    _ => Err(netchan::Error::new(
                        netchan::ErrorCode::HandlerError,
                        "the stream handler panicked",
                    )),
                }
            }
        })?,
    )
}
