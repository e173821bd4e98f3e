//! Bidirectional streams: one side (`NativeStream`), and the server's
//! `NativeStreamService`, which hands each stream to a JS handler through
//! the core's own handler runner.
//!
//! Every operation is the core's: `send` is `Stream::send` (it resolves
//! only once the receiver's window let the message go, so a JS sender is
//! held back by the core's credit and nothing queues here), `recv` is
//! `Stream::recv`, `end` is `finish`, `cancel` is `cancel_with`. Both are
//! first polled at once (most sends find credit, most receives a message
//! already there) and only become promises when they have to wait.
//!
//! Serving uses `Endpoint::serve_stream_fn_with`: the core runs at most
//! `maxConcurrent` handlers, and when a handler ends it finishes this side
//! (`Ok`) or ends the stream with the handler's code (`Err`), and cancels a
//! stream whose other direction is still open once the handler's handles
//! are gone. Its handler here passes the stream to the JS thread and waits
//! for the JS handler's outcome (`NativeIncoming::done`); the JS layer
//! releases its handle first (`NativeStream::release`), so "the handler's
//! handles are gone" does not wait for the garbage collector.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use netchan::{ErrorCode, StreamOptions};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::endpoint::{count, millis, payload, to_buffer};
use crate::{code_err, held_promise, poll_now, promise, Hold, OrThrow};

/// Options of `openStream` (times in milliseconds).
#[napi(object)]
#[derive(Default)]
pub struct StreamOpts {
    /// The stream's deadline: both sides end with `TIMEOUT` then.
    pub timeout_ms: Option<f64>,
    /// How long opening waits for a server to accept (default 10000).
    pub open_timeout_ms: Option<f64>,
    /// Bytes the server may send before this side reads (default 1 MiB).
    pub window: Option<f64>,
    /// Wait (up to the open timeout) for a server instead of `NO_RESPONDERS`.
    pub wait_for_responder: Option<bool>,
}

/// Options of `serveStream`.
#[napi(object)]
#[derive(Default)]
pub struct StreamServeOpts {
    /// Streams in handlers at once (default 256); more wait in the queue.
    pub max_concurrent: Option<f64>,
    /// Streams waiting at most; past that an opening is refused with
    /// `BUFFER_FULL`.
    pub queue: Option<f64>,
    /// Bytes of openings waiting at most.
    pub queue_bytes: Option<f64>,
    /// Bytes each opener may send before its handler reads (default 1 MiB).
    pub window: Option<f64>,
}

/// The core's stream options from the JS ones.
pub fn stream_options(o: StreamOpts) -> netchan::Result<StreamOptions> {
    let mut so = StreamOptions::default();
    if let Some(t) = o.timeout_ms {
        so.timeout = Some(millis("timeoutMs", t)?);
    }
    if let Some(t) = o.open_timeout_ms {
        so.open_timeout = Some(millis("openTimeoutMs", t)?);
    }
    if let Some(w) = o.window {
        so.window = Some(count("window", w)?);
    }
    so.wait_for_responder = o.wait_for_responder.unwrap_or(false);
    Ok(so)
}

/// The core's serve options from the JS ones.
pub fn stream_serve_options(o: StreamServeOpts) -> netchan::Result<netchan::ServeOptions> {
    let mut so = netchan::ServeOptions::default();
    if let Some(n) = o.max_concurrent {
        so.max_concurrent = Some(count("maxConcurrent", n)?);
    }
    if let Some(n) = o.queue {
        so.queue = Some(count("queue", n)?);
    }
    if let Some(n) = o.queue_bytes {
        so.queue_bytes = Some(count("queueBytes", n)?);
    }
    if let Some(n) = o.window {
        so.window = Some(count("window", n)?);
    }
    Ok(so)
}

/// Opens a stream; the future resolves with the side the JS layer wraps.
/// An abort (`cancel`) drops the opening, which cancels it at the server.
pub async fn open(
    ep: netchan::Endpoint,
    path: String,
    first: Bytes,
    opts: StreamOptions,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
) -> netchan::Result<netchan::Stream> {
    let open = ep.open_stream_with(&path, first, opts);
    match cancel {
        None => open.await,
        Some(mut rx) => tokio::select! {
            r = open => r,
            _ = rx.wait_for(|c| *c) => Err(netchan::Error::new(
                ErrorCode::Cancelled,
                "opening the stream was aborted",
            )),
        },
    }
}

/// Milliseconds until `deadline`, if there is one.
fn remaining(deadline: Option<tokio::time::Instant>) -> Option<f64> {
    deadline.map(|d| {
        d.saturating_duration_since(tokio::time::Instant::now())
            .as_secs_f64()
            * 1000.0
    })
}

/// One side of a stream. Use `Stream` from the `netchan` package.
#[napi]
pub struct NativeStream {
    /// `None` once released (a served stream after its handler ended).
    /// Pending sends and receives hold their own reference.
    s: Mutex<Option<Arc<netchan::Stream>>>,
    rt: Handle,
    path: String,
    peer: String,
}

impl NativeStream {
    pub fn new(s: netchan::Stream, rt: Handle) -> NativeStream {
        NativeStream {
            path: s.path().to_string(),
            peer: s.peer().to_string(),
            s: Mutex::new(Some(Arc::new(s))),
            rt,
        }
    }

    fn get(&self) -> netchan::Result<Arc<netchan::Stream>> {
        self.s
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                code_err(
                    ErrorCode::Closed,
                    format!(
                        "the stream on {} was released: its handler had ended",
                        self.path
                    ),
                )
            })
    }
}

#[napi]
impl NativeStream {
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// The endpoint at the other side.
    #[napi(getter)]
    pub fn peer(&self) -> String {
        self.peer.clone()
    }

    /// Milliseconds left before the stream's deadline; `null` without one.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> Option<f64> {
        self.get().ok().and_then(|s| remaining(s.deadline()))
    }

    /// Sends one message. `null` when it went at once, else a promise
    /// that resolves once the receiver's window let it go.
    #[napi(ts_return_type = "Promise<void> | null")]
    pub fn send<'e>(
        &self,
        env: &'e Env,
        data: Option<Either<String, Uint8ArraySlice>>,
    ) -> Result<Option<Object<'e>>> {
        let s = self.get().or_throw(env)?;
        let data = payload(data);
        let mut fut = Box::pin(async move { s.send(data).await });
        match poll_now(&self.rt, fut.as_mut()) {
            Some(r) => r.map(|()| None).or_throw(env),
            None => promise(env, &self.rt, fut, |_, ()| Ok(())).map(Some),
        }
    }

    /// The next message (`null` at the end): the value when one is here,
    /// else a promise.
    #[napi(ts_return_type = "Buffer | null | Promise<Buffer | null>")]
    pub fn recv<'e>(&self, env: &'e Env) -> Result<Either<Option<Buffer>, Object<'e>>> {
        let s = self.get().or_throw(env)?;
        let mut fut = Box::pin(async move { s.recv().await });
        match poll_now(&self.rt, fut.as_mut()) {
            Some(r) => r.map(|b| Either::A(b.map(to_buffer))).or_throw(env),
            None => promise(env, &self.rt, fut, |_, b| Ok(b.map(to_buffer))).map(Either::B),
        }
    }

    /// Ends this side's direction (the core's `finish`). Idempotent.
    #[napi]
    pub fn end(&self) {
        if let Ok(s) = self.get() {
            s.finish();
        }
    }

    /// Ends the whole stream: `CANCELLED`, or `code` (a netchan code name;
    /// anything else becomes `HANDLER_ERROR`) with `message`.
    #[napi]
    pub fn cancel(&self, code: Option<String>, message: Option<String>) {
        let Ok(s) = self.get() else { return };
        match code {
            None => s.cancel(),
            Some(c) => s.cancel_with(netchan::Error::new(
                ErrorCode::from_name(&c).unwrap_or(ErrorCode::HandlerError),
                message.unwrap_or_else(|| "the stream was ended".to_string()),
            )),
        }
    }

    /// Drops this handle now instead of when the object is collected (the
    /// core cancels a stream whose last handle goes before it ended).
    #[napi]
    pub fn release(&self) {
        self.s.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// What the core's handler runner passes to the JS thread.
type Incoming = (
    netchan::StreamRequest,
    netchan::Stream,
    oneshot::Sender<netchan::Result<()>>,
);

/// A served stream pattern. Use `Endpoint.serveStream` from the `netchan`
/// package.
#[napi]
pub struct NativeStreamService {
    svc: Arc<netchan::StreamService>,
    /// The handler runner's streams; `None` for a service pulled from
    /// (`serveStreamPull`), whose streams come from the core's queue.
    rx: Option<Arc<Mutex<mpsc::UnboundedReceiver<Incoming>>>>,
    rt: Handle,
    /// The endpoint's: whether a pending `next` keeps Node alive.
    hold: Hold,
}

impl NativeStreamService {
    pub fn new(
        ep: &netchan::Endpoint,
        rt: Handle,
        hold: Hold,
        pattern: &str,
        opts: netchan::ServeOptions,
    ) -> netchan::Result<NativeStreamService> {
        // Unbounded, yet never longer than `max_concurrent`: the core calls
        // the handler only when a slot is free.
        let (tx, rx) = mpsc::unbounded_channel::<Incoming>();
        let svc = ep.serve_stream_fn_with(pattern, opts, move |req, stream| {
            let tx = tx.clone();
            async move {
                let (done, outcome) = oneshot::channel();
                if tx.send((req, stream, done)).is_err() {
                    return Err(code_err(ErrorCode::Closed, "the stream service is closed"));
                }
                // Dropped without an outcome (the JS environment went away):
                // this side is finished like a handler that returned.
                outcome.await.unwrap_or(Ok(()))
            }
        })?;
        Ok(NativeStreamService {
            svc: Arc::new(svc),
            rx: Some(Arc::new(Mutex::new(rx))),
            rt,
            hold,
        })
    }

    /// A service whose streams are pulled with `next()` and handled by the
    /// caller, who owns each stream (no handler slot is held for it).
    pub fn pulled(
        ep: &netchan::Endpoint,
        rt: Handle,
        hold: Hold,
        pattern: &str,
        opts: netchan::ServeOptions,
    ) -> netchan::Result<NativeStreamService> {
        Ok(NativeStreamService {
            svc: Arc::new(ep.serve_stream_with(pattern, opts)?),
            rx: None,
            rt,
            hold,
        })
    }
}

#[napi]
impl NativeStreamService {
    #[napi(getter)]
    pub fn pattern(&self) -> String {
        self.svc.pattern().to_string()
    }

    /// Streams waiting for a free handler slot.
    #[napi(getter)]
    pub fn queued(&self) -> f64 {
        self.svc.queued() as f64
    }

    /// Resolves with the next stream for a handler, or `null` once the
    /// service or endpoint is closed.
    #[napi(ts_return_type = "Promise<NativeIncoming | null>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let rt = self.rt.clone();
        let Some(rx) = self.rx.clone() else {
            // Pulled: the core's queue; the caller owns the stream, so its
            // outcome goes nowhere.
            let svc = self.svc.clone();
            return held_promise(
                env,
                &self.rt,
                &self.hold,
                async move { Ok(poll_fn(|cx| svc.poll_recv(cx)).await) },
                move |_, i| {
                    Ok(i.map(|(req, stream)| {
                        NativeIncoming::new((req, stream, oneshot::channel().0), rt)
                    }))
                },
            );
        };
        held_promise(
            env,
            &self.rt,
            &self.hold,
            async move {
                Ok(poll_fn(|cx| rx.lock().unwrap_or_else(|p| p.into_inner()).poll_recv(cx)).await)
            },
            move |_, i| Ok(i.map(|i| NativeIncoming::new(i, rt))),
        )
    }

    /// Stops serving: streams still queued are refused with
    /// `NO_RESPONDERS`; handlers already running go on. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.svc.close()
    }
}

/// A stream opened at a service, for its handler.
#[napi]
pub struct NativeIncoming {
    req: netchan::StreamRequest,
    stream: Mutex<Option<NativeStream>>,
    done: Mutex<Option<oneshot::Sender<netchan::Result<()>>>>,
}

impl NativeIncoming {
    fn new((req, stream, done): Incoming, rt: Handle) -> NativeIncoming {
        NativeIncoming {
            req,
            stream: Mutex::new(Some(NativeStream::new(stream, rt))),
            done: Mutex::new(Some(done)),
        }
    }
}

#[napi]
impl NativeIncoming {
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.req.path().to_string()
    }

    /// The first payload, sent with the opening.
    #[napi(getter)]
    pub fn payload(&self) -> Buffer {
        to_buffer(self.req.payload().clone())
    }

    /// The opener's endpoint name.
    #[napi(getter)]
    pub fn sender(&self) -> String {
        self.req.sender().to_string()
    }

    /// Milliseconds left before the stream's deadline; `null` without one.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> Option<f64> {
        remaining(self.req.deadline())
    }

    /// The server's side of the stream (once).
    #[napi]
    pub fn stream(&self, env: &Env) -> Result<NativeStream> {
        self.stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| code_err(ErrorCode::InvalidArgument, "the stream was taken already"))
            .or_throw(env)
    }

    /// The handler ended: without `code` it returned (this side is
    /// finished), else it failed with that code (a netchan code name;
    /// anything else becomes `HANDLER_ERROR`) and `message`, which end the
    /// stream. Once; later calls do nothing.
    #[napi]
    pub fn done(&self, code: Option<String>, message: Option<String>) {
        let Some(tx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let outcome = match code {
            None => Ok(()),
            Some(c) => Err(netchan::Error::new(
                ErrorCode::from_name(&c).unwrap_or(ErrorCode::HandlerError),
                message.unwrap_or_else(|| "the stream handler failed".to_string()),
            )),
        };
        let _ = tx.send(outcome);
    }
}
