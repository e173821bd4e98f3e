//! Bidirectional streams: `Stream`, `StreamRequest` and `StreamService`,
//! thin wrappers over the core's (`netchan::Stream`, ...). Every operation
//! is the core's: blocking calls wait on the core's async operation through
//! the endpoint's `Blocker` ([`bridge::wait`]: GIL released, Ctrl-C
//! checked between slices), asyncio calls through the bridge's futures.
//!
//! The core's stream and stream service have no readiness hook, so an
//! asyncio receive that must wait runs a task that takes the next item and
//! parks it in a stash (at most one per waiter), then wakes the receiver,
//! which takes it from there (as `feed::Events` does): a cancelled asyncio
//! receive loses nothing. Receivers take turns (a tokio mutex) and look at
//! the stash first, so items keep their order whichever API takes them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use netchan::blocking::Blocker;
use netchan::ErrorCode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use tokio::runtime::Handle;

use crate::bridge::{check_alive, deadline, dispatch, maybe_async, wait, Job};
use crate::errors::{err, to_py};

fn closed_stream() -> PyErr {
    err(
        ErrorCode::Closed,
        "the stream was closed (close() or with-block exit)",
    )
}

/// Seconds until a core deadline (0 once passed), `None` without one.
fn remaining(d: Option<tokio::time::Instant>) -> Option<f64> {
    d.map(|d| {
        d.saturating_duration_since(tokio::time::Instant::now())
            .as_secs_f64()
    })
}

/// A stash of items taken for asyncio receivers that were gone by then.
struct Stash<T>(Mutex<VecDeque<T>>);

impl<T> Stash<T> {
    fn new() -> Stash<T> {
        Stash(Mutex::new(VecDeque::new()))
    }
    fn pop(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
    fn push(&self, v: T) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(v)
    }
    fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}

// ---------------------------------------------------------------- stream

type Recvd = netchan::Result<Option<Bytes>>;

/// One side of a stream, shared by the Python object and the operations
/// in flight on it.
struct Inner {
    s: netchan::Stream,
    turn: tokio::sync::Mutex<()>,
    stash: Stash<Recvd>,
}

impl Inner {
    /// The next item if one is here: `Ok(Some(Some(b)))`, `Ok(Some(None))`
    /// at the end, `Ok(None)` when nothing is here yet.
    fn try_next(&self) -> netchan::Result<Option<Option<Bytes>>> {
        if let Some(r) = self.stash.pop() {
            return r.map(Some);
        }
        // Held by a waiter: whatever it takes comes through the stash.
        let Ok(_turn) = self.turn.try_lock() else {
            return Ok(None);
        };
        if let Some(r) = self.stash.pop() {
            return r.map(Some);
        }
        self.s.try_recv()
    }

    /// Waits for the next item.
    async fn next(&self) -> Recvd {
        let _turn = self.turn.lock().await;
        if let Some(r) = self.stash.pop() {
            return r;
        }
        self.s.recv().await
    }
}

/// One side of a bidirectional stream (see the package documentation).
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Stream {
    inner: Mutex<Option<Arc<Inner>>>,
    path: String,
    peer: String,
    deadline: Option<tokio::time::Instant>,
    blocker: Blocker,
    rt: Handle,
}

/// What a core stream needs to become a Python one.
pub type StreamParts = (netchan::Stream, Blocker, Handle);

impl Stream {
    pub fn new((s, blocker, rt): StreamParts) -> Stream {
        Stream {
            path: s.path().to_owned(),
            peer: s.peer().to_owned(),
            deadline: s.deadline(),
            inner: Mutex::new(Some(Arc::new(Inner {
                s,
                turn: tokio::sync::Mutex::new(()),
                stash: Stash::new(),
            }))),
            blocker,
            rt,
        }
    }

    fn get(&self) -> Option<Arc<Inner>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn inner(&self) -> PyResult<Arc<Inner>> {
        check_alive()?;
        self.get().ok_or_else(closed_stream)
    }

    fn take(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Bytes>> {
        let inner = self.inner()?;
        if let Some(r) = inner.try_next().map_err(to_py)? {
            return Ok(r);
        }
        let deadline = deadline(timeout)?;
        let fut = std::pin::pin!(inner.next());
        match wait(py, &self.blocker, fut, deadline)? {
            Some(r) => r.map_err(to_py),
            None => Err(err(
                ErrorCode::Timeout,
                format!(
                    "recv: nothing arrived on the stream on {} within {:?} s (the stream goes on)",
                    self.path,
                    timeout.unwrap_or_default()
                ),
            )),
        }
    }
}

fn bytes_or_none(py: Python<'_>, b: Option<Bytes>) -> Option<Bound<'_, PyBytes>> {
    b.map(|b| PyBytes::new(py, &b))
}

#[pymethods]
impl Stream {
    /// The path the stream was opened on.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }
    /// The endpoint at the other side.
    #[getter]
    fn peer(&self) -> &str {
        &self.peer
    }
    /// Seconds left before the stream's deadline ends it with `TIMEOUT`;
    /// `None` without a deadline.
    #[getter]
    fn remaining(&self) -> Option<f64> {
        remaining(self.deadline)
    }
    /// True once `close()` was called (or the `with` block exited).
    #[getter]
    fn closed(&self) -> bool {
        self.get().is_none()
    }
    /// Sends one message, waiting while the receiver's window is full, at
    /// most `timeout` seconds (then `TimeoutError`, and nothing was sent).
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let inner = self.inner()?;
        let p = crate::endpoint::payload(data)?;
        let deadline = deadline(timeout)?;
        let fut = std::pin::pin!(inner.s.send(p));
        match wait(py, &self.blocker, fut, deadline)? {
            Some(r) => r.map_err(to_py),
            None => Err(err(
                ErrorCode::Timeout,
                format!(
                    "send: no room in the receiver's window on {} within {:?} s; nothing was sent",
                    self.path,
                    timeout.unwrap_or_default()
                ),
            )),
        }
    }
    /// The next message, waiting at most `timeout` seconds (then
    /// `TimeoutError`; the stream goes on); `None` once the other side
    /// finished and everything it sent was received.
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(bytes_or_none(py, self.take(py, timeout)?))
    }
    /// Ends this side's direction (half-close); receiving goes on.
    /// Idempotent.
    fn finish(&self) {
        if let Some(i) = self.get() {
            i.s.finish()
        }
    }
    /// Ends the whole stream with `CANCELLED`, at both sides.
    fn cancel(&self) {
        if let Some(i) = self.get() {
            i.s.cancel()
        }
    }
    /// Ends the whole stream with an error of `code` and `message`, which
    /// the other side raises.
    #[pyo3(signature = (message, code="HANDLER_ERROR"))]
    fn fail(&self, message: &str, code: &str) -> PyResult<()> {
        let c = ErrorCode::from_name(code).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("unknown error code {code:?}"))
        })?;
        if let Some(i) = self.get() {
            i.s.cancel_with(netchan::Error::new(c, message));
        }
        Ok(())
    }
    /// Lets go of the stream, as the core does when a stream is dropped:
    /// one that has not ended both ways is cancelled. Later calls raise
    /// `ClosedError`. Idempotent.
    fn close(&self) {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(i) = taken {
            // Calls in flight hold the stream too; cancelling is what its
            // drop would do (and does nothing to a stream that ended).
            if Arc::strong_count(&i) > 1 {
                i.s.cancel();
            }
        }
    }
    fn _poll_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let inner = self.inner()?;
        if let Some(r) = inner.try_next().map_err(to_py)? {
            return (bytes_or_none(py, r), py.None()).into_pyobject(py);
        }
        let fut = event_loop.call_method0("create_future")?;
        let (l, f) = (event_loop.clone().unbind(), fut.clone().unbind());
        let task = self.rt.spawn(async move {
            let turn = inner.turn.lock().await;
            if inner.stash.is_empty() {
                // Nothing awaits between taking and stashing: an abort
                // (the receive was cancelled) comes before or after both.
                let r = inner.s.recv().await;
                inner.stash.push(r);
            }
            drop(turn);
            dispatch(Job::Wake {
                event_loop: l,
                fut: f,
            });
        });
        crate::bridge::cancel_with(&fut, task.abort_handle())?;
        (py.None(), fut).into_pyobject(py)
    }
    /// `None` when the send finished at once, else a future to await.
    fn _send_async<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let inner = self.inner()?;
        let p = crate::endpoint::payload(data)?;
        let fut = Box::pin(async move { inner.s.send(p).await });
        maybe_async(&self.rt, event_loop, fut, |py, ()| Ok(py.None()))
    }
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(bytes_or_none(py, self.take(py, None)?))
    }
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    /// Leaving the block normally finishes this side and lets go of the
    /// stream (the other side reads everything, then the end; its own
    /// direction, if still open, is cancelled: nobody reads it any more).
    /// Leaving with an exception cancels the stream, so the other side
    /// never takes a partial exchange for a whole one.
    fn __exit__(
        &self,
        t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        if t.is_none() {
            self.finish();
        } else {
            self.cancel();
        }
        self.close();
        false
    }
    fn __repr__(&self) -> String {
        format!("Stream(path={:?}, peer={:?})", self.path, self.peer)
    }
}

// ---------------------------------------------------------------- serving

/// What the opener of a stream asked for, as its server sees it.
#[pyclass(module = "netchan._native", frozen)]
pub struct StreamRequest(netchan::StreamRequest);

#[pymethods]
impl StreamRequest {
    /// The concrete path the stream was opened on.
    #[getter]
    fn path(&self) -> &str {
        self.0.path()
    }
    /// The first payload, sent with the opening.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.payload())
    }
    /// The opener's endpoint name.
    #[getter]
    fn sender(&self) -> &str {
        self.0.sender()
    }
    /// Seconds left before the opener's deadline ends the stream; `None`
    /// without a deadline.
    #[getter]
    fn remaining(&self) -> Option<f64> {
        remaining(self.0.deadline())
    }
    /// The first payload decoded as msgpack.
    fn obj(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::msgpack::decode(py, self.0.payload())
    }
    fn __repr__(&self) -> String {
        format!(
            "StreamRequest(path={:?}, sender={:?}, {} bytes)",
            self.0.path(),
            self.0.sender(),
            self.0.payload().len()
        )
    }
}

type Incoming = (netchan::StreamRequest, netchan::Stream);

struct SvcInner {
    svc: netchan::StreamService,
    turn: tokio::sync::Mutex<()>,
    /// `None`: the service closed.
    stash: Stash<Option<Incoming>>,
}

impl SvcInner {
    /// `Some(Some(x))`: a stream; `Some(None)`: closed; `None`: none yet.
    fn try_next(&self) -> Option<Option<Incoming>> {
        if let Some(x) = self.stash.pop() {
            return Some(x);
        }
        let _turn = self.turn.try_lock().ok()?;
        if let Some(x) = self.stash.pop() {
            return Some(x);
        }
        match self.svc.try_recv() {
            Ok(Some(x)) => Some(Some(x)),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }

    async fn next(&self) -> Option<Incoming> {
        let _turn = self.turn.lock().await;
        if let Some(x) = self.stash.pop() {
            return x;
        }
        self.svc.recv().await
    }
}

/// A pattern served with streams: take opened streams with `recv` or by
/// iterating. Closing it stops serving; streams still queued are refused
/// (`NO_RESPONDERS`).
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct StreamService {
    inner: Arc<SvcInner>,
    pattern: String,
    blocker: Blocker,
    rt: Handle,
}

impl StreamService {
    pub fn new(svc: netchan::StreamService, blocker: Blocker, rt: Handle) -> StreamService {
        StreamService {
            pattern: svc.pattern().to_owned(),
            inner: Arc::new(SvcInner {
                svc,
                turn: tokio::sync::Mutex::new(()),
                stash: Stash::new(),
            }),
            blocker,
            rt,
        }
    }

    fn wrap<'py>(
        &self,
        py: Python<'py>,
        x: Option<Incoming>,
    ) -> PyResult<(Bound<'py, StreamRequest>, Bound<'py, Stream>)> {
        let Some((req, s)) = x else {
            return Err(err(ErrorCode::Closed, "the stream service is closed"));
        };
        Ok((
            Bound::new(py, StreamRequest(req))?,
            Bound::new(py, Stream::new((s, self.blocker.clone(), self.rt.clone())))?,
        ))
    }

    fn take<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Bound<'py, StreamRequest>, Bound<'py, Stream>)>> {
        check_alive()?;
        if let Some(x) = self.inner.try_next() {
            return self.wrap(py, x).map(Some);
        }
        let deadline = deadline(timeout)?;
        let fut = std::pin::pin!(self.inner.next());
        match wait(py, &self.blocker, fut, deadline)? {
            None => Ok(None),
            Some(x) => self.wrap(py, x).map(Some),
        }
    }
}

impl Drop for StreamService {
    fn drop(&mut self) {
        // Asyncio waits in flight hold the core's service too: stop now.
        self.inner.svc.close();
    }
}

#[pymethods]
impl StreamService {
    /// The served pattern.
    #[getter]
    fn pattern(&self) -> &str {
        &self.pattern
    }
    /// Streams waiting to be taken.
    #[getter]
    fn queued(&self) -> usize {
        self.inner.svc.queued()
    }
    /// The next opened stream as `(request, stream)`, waiting at most
    /// `timeout` seconds; `None` on timeout. Taking it accepts it (the
    /// opener's `open_stream` returns). Raises `ClosedError` once closed.
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Bound<'py, StreamRequest>, Bound<'py, Stream>)>> {
        self.take(py, timeout)
    }
    /// The next opened stream if one is waiting, else `None`.
    fn try_recv<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, StreamRequest>, Bound<'py, Stream>)>> {
        check_alive()?;
        match self.inner.try_next() {
            Some(x) => self.wrap(py, x).map(Some),
            None => Ok(None),
        }
    }
    /// Stops serving; streams still queued are refused (`NO_RESPONDERS`).
    fn close(&self) {
        self.inner.svc.close()
    }
    fn _poll_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        check_alive()?;
        if let Some(x) = self.inner.try_next() {
            return (self.wrap(py, x)?, py.None()).into_pyobject(py);
        }
        let fut = event_loop.call_method0("create_future")?;
        let (inner, l, f) = (
            self.inner.clone(),
            event_loop.clone().unbind(),
            fut.clone().unbind(),
        );
        let task = self.rt.spawn(async move {
            let turn = inner.turn.lock().await;
            if inner.stash.is_empty() {
                let x = inner.svc.recv().await;
                inner.stash.push(x);
            }
            drop(turn);
            dispatch(Job::Wake {
                event_loop: l,
                fut: f,
            });
        });
        crate::bridge::cancel_with(&fut, task.abort_handle())?;
        (py.None(), fut).into_pyobject(py)
    }
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, StreamRequest>, Bound<'py, Stream>)>> {
        match self.take(py, None) {
            Ok(x) => Ok(x),
            Err(e) if crate::feed::is_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __exit__(
        &self,
        _t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }
    fn __repr__(&self) -> String {
        format!("StreamService(pattern={:?})", self.pattern)
    }
}
