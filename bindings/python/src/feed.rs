//! The receive side: subscriptions, services and event streams.
//!
//! Each wraps a [`Feed`]: a queue in front of a core source. Items are taken
//! from the queue, or straight from the source when it has some ready. When
//! both are empty one *filler* task waits on the source on the core's runtime
//! and deposits what it gets, then wakes blocked Python threads (a condvar)
//! and asyncio waiters (through the dispatcher). A Python thread that stops
//! waiting (timeout, Ctrl-C, cancelled task) loses nothing: the filler
//! deposits into the queue, not into the waiter.
//!
//! No lock of ours is held while Python code runs (a `__del__` run by the
//! garbage collector could re-enter), so Python objects are made after the
//! queue is unlocked.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use netchan::{ErrorCode, EventRecv};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use tokio::runtime::Handle;

use crate::bridge::{
    check_alive, dispatch, poll_until, unpark_waker, wait_loop, BoxFut, Job, Spin, Waited,
};
use crate::errors::err;

/// Items a filler asks for at once.
const FILL: usize = 256;

/// Where a feed's items come from.
pub trait Source<T>: Send + Sync + 'static {
    /// Waits for at least one item; an empty vector means the source ended.
    fn fetch(self: Arc<Self>, max: usize) -> BoxFut<Vec<T>>;
    /// Moves items that are ready into `q` without waiting; true if the
    /// source has ended.
    fn try_take(self: &Arc<Self>, q: &mut VecDeque<T>, max: usize) -> bool {
        let mut fut = self.clone().fetch(max);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) if v.is_empty() => true,
            Poll::Ready(v) => {
                q.extend(v);
                false
            }
            Poll::Pending => false,
        }
    }
    /// Ends the source (unsubscribe, stop serving).
    fn close(&self) {}
}

struct State<T> {
    q: VecDeque<T>,
    ended: bool,
    filling: bool,
    filler: Option<tokio::task::AbortHandle>,
    /// A blocked Python thread that polls the source itself (instead of a
    /// filler task) while no asyncio waiter needs the runtime to do it.
    poller: Option<std::thread::Thread>,
    waiters: Vec<(Py<PyAny>, Py<PyAny>)>,
}

/// A buffered receive queue over a [`Source`].
pub struct Feed<T, S> {
    src: Arc<S>,
    rt: Handle,
    st: Mutex<State<T>>,
    cv: Condvar,
}

impl<T: Send + 'static, S: Source<T>> Feed<T, S> {
    fn new(src: S, rt: Handle) -> Arc<Self> {
        Arc::new(Feed {
            src: Arc::new(src),
            rt,
            st: Mutex::new(State {
                q: VecDeque::new(),
                ended: false,
                filling: false,
                filler: None,
                poller: None,
                waiters: Vec::new(),
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Up to `max` items without waiting, and whether the feed is finished
    /// (ended and drained).
    fn take(&self, max: usize) -> (Vec<T>, bool) {
        let mut st = self.lock();
        // While a filler is out, items it took are not queued yet: taking
        // newer ones from the source would reorder them.
        if st.q.is_empty() && !st.ended && !st.filling && self.src.try_take(&mut st.q, FILL) {
            st.ended = true;
        }
        let n = max.min(st.q.len());
        let v: Vec<T> = st.q.drain(..n).collect();
        let done = st.ended && st.q.is_empty();
        (v, done)
    }

    /// One item without waiting (the per-message fast path of iteration):
    /// `Ok(None)` if none is ready, `Err(())` once finished.
    fn take_one(&self) -> Result<Option<T>, ()> {
        let mut st = self.lock();
        if let Some(x) = st.q.pop_front() {
            return Ok(Some(x));
        }
        if !st.ended && !st.filling && self.src.try_take(&mut st.q, FILL) {
            st.ended = true;
        }
        match st.q.pop_front() {
            Some(x) => Ok(Some(x)),
            None if st.ended => Err(()),
            None => Ok(None),
        }
    }

    fn ensure_filler(self: &Arc<Self>, st: &mut State<T>) {
        if st.filling || st.ended {
            return;
        }
        st.filling = true;
        let me = Arc::clone(self);
        let fut = self.src.clone().fetch(FILL);
        let task = self.rt.spawn(async move {
            let v = fut.await;
            me.deposit(v);
        });
        st.filler = Some(task.abort_handle());
    }

    fn deposit(&self, v: Vec<T>) {
        let waiters = {
            let mut st = self.lock();
            st.filling = false;
            st.filler = None;
            st.poller = None;
            if v.is_empty() {
                st.ended = true;
            } else {
                st.q.extend(v);
            }
            std::mem::take(&mut st.waiters)
        };
        self.cv.notify_all();
        for (event_loop, fut) in waiters {
            dispatch(Job::Wake { event_loop, fut });
        }
    }

    /// Waits up to `timeout` (`None`: no limit) for up to `max` items; an
    /// empty vector on timeout, `CLOSED` once ended and drained.
    fn recv_blocking(
        self: &Arc<Self>,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
        what: &str,
    ) -> PyResult<Vec<T>> {
        check_alive()?;
        let deadline = match timeout {
            Some(t) if !(t >= 0.0 && t.is_finite()) => {
                return Err(err(
                    ErrorCode::InvalidArgument,
                    format!("timeout must be a finite number >= 0, not {t}"),
                ))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t)),
            None => None,
        };
        loop {
            let (v, done) = self.take(max.max(1));
            if !v.is_empty() {
                return Ok(v);
            }
            if done {
                return Err(err(ErrorCode::Closed, format!("the {what} is closed")));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Vec::new());
            }
            let mut st = self.lock();
            if !st.filling && !st.ended && st.waiters.is_empty() {
                st.filling = true;
                st.poller = Some(std::thread::current());
                drop(st);
                self.poll_source(py, deadline)?;
                continue;
            }
            self.ensure_filler(&mut st);
            drop(st);
            // Wait for what the poller or filler deposits; once neither is
            // out (the poller took the only item, or gave up), go back to
            // the top and poll: otherwise nobody would, and this thread
            // would sleep on items that have arrived.
            wait_loop(py, |slice| {
                let st = self.lock();
                if !st.q.is_empty() || st.ended || !st.filling {
                    return Some(());
                }
                let mut wait = slice;
                if let Some(d) = deadline {
                    wait = wait.min(d.saturating_duration_since(Instant::now()));
                }
                let (st, _) = self
                    .cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner());
                let ready = !st.q.is_empty() || st.ended || !st.filling;
                (ready || deadline.is_some_and(|d| Instant::now() >= d)).then_some(())
            })?;
        }
    }

    /// Polls the source on this (blocked) thread until it yields, the
    /// deadline passes, the feed ends or the wait is interrupted; the core
    /// unparks the thread directly, with no runtime task in between. The
    /// caller has set `filling` and `poller`; this clears them.
    fn poll_source(self: &Arc<Self>, py: Python<'_>, deadline: Option<Instant>) -> PyResult<()> {
        let mut fut = self.src.clone().fetch(FILL);
        let waker = unpark_waker();
        let spin = Spin::start();
        let r = wait_loop(py, |slice| {
            let mut end = Instant::now() + slice;
            if let Some(d) = deadline {
                end = end.min(d);
            }
            match poll_until(&self.rt, &mut fut, &waker, &spin, end, || self.lock().ended) {
                Waited::Ready(v) => Some(Some(v)),
                Waited::GaveUp => Some(None),
                Waited::Elapsed => deadline
                    .is_some_and(|d| Instant::now() >= d)
                    .then_some(None),
            }
        });
        if let Ok(Some(v)) = r {
            self.deposit(v);
            return Ok(());
        }
        // Nothing taken (a pending fetch takes nothing, so dropping it loses
        // nothing): hand the source back, to a filler task if asyncio waits.
        drop(fut);
        let mut st = self.lock();
        st.poller = None;
        if st.filler.is_none() {
            st.filling = false;
        }
        if !st.waiters.is_empty() {
            self.ensure_filler(&mut st);
        }
        drop(st);
        self.cv.notify_all();
        r.map(|_| ())
    }

    /// `None` if items are ready (or the feed is finished) now; otherwise a
    /// future that completes with `None` when that changes.
    fn wait_async<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        check_alive()?;
        // Made before locking: creating it runs Python code.
        let fut = event_loop.call_method0("create_future")?;
        let mut st = self.lock();
        if st.q.is_empty() && !st.ended && !st.filling && self.src.try_take(&mut st.q, FILL) {
            st.ended = true;
        }
        if !st.q.is_empty() || st.ended {
            return Ok(None);
        }
        st.waiters
            .push((event_loop.clone().unbind(), fut.clone().unbind()));
        self.ensure_filler(&mut st);
        drop(st);
        let _ = py;
        Ok(Some(fut))
    }

    fn close(&self) {
        self.src.close();
    }

    /// Ends the feed now: queued items can still be taken, then `CLOSED`.
    pub fn end(&self) {
        let waiters = {
            let mut st = self.lock();
            st.ended = true;
            st.filling = false;
            if let Some(t) = st.filler.take() {
                t.abort();
            }
            if let Some(t) = st.poller.take() {
                t.unpark();
            }
            std::mem::take(&mut st.waiters)
        };
        self.cv.notify_all();
        for (event_loop, fut) in waiters {
            dispatch(Job::Wake { event_loop, fut });
        }
    }

    fn stop_filler(&self) {
        if let Some(t) = self.lock().filler.take() {
            t.abort();
        }
    }
}

static ASYNC_HELPERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A coroutine from `netchan._async` (the asyncio side is plain Python).
fn helper<'py>(
    py: Python<'py>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = ASYNC_HELPERS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("netchan._async")?.into_any().unbind())
    })?;
    m.bind(py).getattr(name)?.call1(args)
}

// ---------------------------------------------------------------- messages

/// A received message.
#[pyclass(module = "netchan._native", frozen)]
pub struct Message(pub netchan::Message);

#[pymethods]
impl Message {
    /// The concrete path it was published on.
    #[getter]
    fn path(&self) -> &str {
        self.0.path()
    }
    /// The payload.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.payload())
    }
    /// The name of the endpoint that published it.
    #[getter]
    fn sender(&self) -> &str {
        self.0.sender()
    }
    /// The payload decoded as msgpack (see `publish_obj`).
    fn obj(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::msgpack::decode(py, self.0.payload())
    }
    fn __len__(&self) -> usize {
        self.0.payload().len()
    }
    fn __repr__(&self) -> String {
        format!(
            "Message(path={:?}, sender={:?}, {} bytes)",
            self.0.path(),
            self.0.sender(),
            self.0.payload().len()
        )
    }
}

struct SubSrc(netchan::Subscription);

impl Source<netchan::Message> for SubSrc {
    fn fetch(self: Arc<Self>, max: usize) -> BoxFut<Vec<netchan::Message>> {
        Box::pin(async move {
            let mut v = Vec::new();
            self.0.recv_many(&mut v, max).await;
            v
        })
    }
    fn try_take(self: &Arc<Self>, q: &mut VecDeque<netchan::Message>, max: usize) -> bool {
        let mut v = Vec::new();
        let r = {
            let fut = std::pin::pin!(self.0.recv_many(&mut v, max));
            fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
        };
        q.extend(v);
        matches!(r, Poll::Ready(0))
    }
    fn close(&self) {
        self.0.close()
    }
}

/// A subscription: iterate it (`for msg in sub`, `async for msg in sub`) or
/// call `recv`. Closing it (or the endpoint) ends the iteration once the
/// queued messages are taken.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Subscription {
    feed: Arc<Feed<netchan::Message, SubSrc>>,
}

impl Subscription {
    pub fn new(sub: netchan::Subscription, rt: Handle) -> Subscription {
        Subscription {
            feed: Feed::new(SubSrc(sub), rt),
        }
    }
}

fn one<T>(mut v: Vec<T>) -> Option<T> {
    v.truncate(1);
    v.pop()
}

#[pymethods]
impl Subscription {
    /// The pattern.
    #[getter]
    fn pattern(&self) -> &str {
        self.feed.src.0.pattern()
    }
    /// Messages dropped so far by the overflow policy.
    #[getter]
    fn dropped(&self) -> u64 {
        self.feed.src.0.dropped()
    }
    /// The next message, waiting up to `timeout` seconds (`None`: no limit);
    /// `None` on timeout. Raises `ClosedError` once closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Message>> {
        if let Ok(Some(m)) = self.feed.take_one() {
            return Ok(Some(Message(m)));
        }
        let v = self.feed.recv_blocking(py, 1, timeout, "subscription")?;
        Ok(one(v).map(Message))
    }
    /// Up to `max` queued messages, waiting up to `timeout` for the first.
    #[pyo3(signature = (max=256, timeout=None))]
    fn recv_many(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Message>> {
        let v = self.feed.recv_blocking(py, max, timeout, "subscription")?;
        Ok(v.into_iter().map(Message).collect())
    }
    /// The next message if one is queued, else `None`.
    fn try_recv(&self) -> PyResult<Option<Message>> {
        match self.feed.take_one() {
            Ok(m) => Ok(m.map(Message)),
            Err(()) => Err(err(ErrorCode::Closed, "the subscription is closed")),
        }
    }
    /// Unsubscribes; messages already queued can still be received.
    fn close(&self) {
        self.feed.close()
    }
    fn _wait_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.feed.wait_async(py, event_loop)
    }
    /// Awaitable form of `recv`.
    #[pyo3(signature = (timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "recv", (slf, timeout))
    }
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        match self.feed.take_one() {
            Ok(Some(m)) => return Ok(Some(Message(m))),
            Err(()) => return Ok(None),
            Ok(None) => {}
        }
        match self.feed.recv_blocking(py, 1, None, "subscription") {
            Ok(v) => Ok(one(v).map(Message)),
            Err(e) if is_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "anext", (slf,))
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
        format!("Subscription(pattern={:?})", self.pattern())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The filler holds the core subscription: end it explicitly.
        self.feed.close();
        self.feed.stop_filler();
    }
}

fn is_closed(py: Python<'_>, e: &PyErr) -> bool {
    e.value(py)
        .getattr("code")
        .and_then(|c| c.extract::<String>())
        .is_ok_and(|c| c == "CLOSED")
}

// ---------------------------------------------------------------- requests

/// An incoming request. Answer it once with `reply` or `fail`; a request
/// dropped unanswered fails at the caller with `HANDLER_ERROR`.
#[pyclass(module = "netchan._native", frozen)]
pub struct Request {
    req: netchan::Request,
    reply: Mutex<Option<netchan::Reply>>,
}

impl Request {
    fn answer(&self, f: impl FnOnce(netchan::Reply)) -> PyResult<()> {
        let r = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take();
        match r {
            Some(r) => {
                f(r);
                Ok(())
            }
            None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this request was already answered",
            )),
        }
    }
}

#[pymethods]
impl Request {
    /// The concrete path requested.
    #[getter]
    fn path(&self) -> &str {
        self.req.path()
    }
    /// The request payload.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.req.payload())
    }
    /// The caller's endpoint name.
    #[getter]
    fn sender(&self) -> &str {
        self.req.sender()
    }
    /// Seconds left before the caller stops waiting.
    #[getter]
    fn remaining(&self) -> f64 {
        self.req.remaining().as_secs_f64()
    }
    /// True once the caller gave up (timeout, cancel) or its link was lost.
    #[getter]
    fn cancelled(&self) -> bool {
        self.req.is_cancelled()
    }
    /// True once `reply` or `fail` was called.
    #[getter]
    fn answered(&self) -> bool {
        self.reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
    /// The payload decoded as msgpack.
    fn obj(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::msgpack::decode(py, self.req.payload())
    }
    /// Sends the reply.
    #[pyo3(signature = (data=None))]
    fn reply(&self, data: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let p = match data {
            Some(d) => crate::endpoint::payload(d)?,
            None => bytes::Bytes::new(),
        };
        self.answer(|r| r.send(p))
    }
    /// Sends `obj` encoded as msgpack.
    fn reply_obj(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut out = Vec::new();
        crate::msgpack::encode(obj, &mut out)?;
        self.answer(|r| r.send(out))
    }
    /// Fails the request: the caller gets an error with this code and message.
    #[pyo3(signature = (message, code="HANDLER_ERROR"))]
    fn fail(&self, message: &str, code: &str) -> PyResult<()> {
        let c = ErrorCode::from_name(code).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("unknown error code {code:?}"))
        })?;
        self.answer(|r| r.fail(netchan::Error::new(c, message)))
    }
    fn __repr__(&self) -> String {
        format!(
            "Request(path={:?}, sender={:?}, {} bytes)",
            self.req.path(),
            self.req.sender(),
            self.req.payload().len()
        )
    }
}

struct SvcSrc(netchan::Service);

impl Source<(netchan::Request, netchan::Reply)> for SvcSrc {
    fn fetch(self: Arc<Self>, _max: usize) -> BoxFut<Vec<(netchan::Request, netchan::Reply)>> {
        Box::pin(async move { self.0.recv().await.into_iter().collect() })
    }
    fn close(&self) {
        self.0.close()
    }
}

fn wrap_req(v: Vec<(netchan::Request, netchan::Reply)>) -> Option<Request> {
    one(v).map(|(req, reply)| Request {
        req,
        reply: Mutex::new(Some(reply)),
    })
}

/// A served pattern: take requests with `recv` or by iterating, and answer
/// each with `reply` or `fail`. Closing it stops serving.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Service {
    feed: Arc<Feed<(netchan::Request, netchan::Reply), SvcSrc>>,
}

impl Service {
    pub fn new(svc: netchan::Service, rt: Handle) -> Service {
        Service {
            feed: Feed::new(SvcSrc(svc), rt),
        }
    }
}

#[pymethods]
impl Service {
    /// The served pattern.
    #[getter]
    fn pattern(&self) -> &str {
        self.feed.src.0.pattern()
    }
    /// The next request, waiting up to `timeout` seconds; `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Request>> {
        Ok(wrap_req(
            self.feed.recv_blocking(py, 1, timeout, "service")?,
        ))
    }
    /// The next request if one is queued.
    fn try_recv(&self) -> PyResult<Option<Request>> {
        let (v, done) = self.feed.take(1);
        if done {
            return Err(err(ErrorCode::Closed, "the service is closed"));
        }
        Ok(wrap_req(v))
    }
    /// Stops serving; queued requests fail at their callers.
    fn close(&self) {
        self.feed.close()
    }
    fn _wait_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.feed.wait_async(py, event_loop)
    }
    /// Awaitable form of `recv`.
    #[pyo3(signature = (timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "recv", (slf, timeout))
    }
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Request>> {
        match self.feed.recv_blocking(py, 1, None, "service") {
            Ok(v) => Ok(wrap_req(v)),
            Err(e) if is_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "anext", (slf,))
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
        format!("Service(pattern={:?})", self.pattern())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.feed.close();
        self.feed.stop_filler();
    }
}

// ---------------------------------------------------------------- events

/// A connection or delivery event. `kind` is one of `"peer_up"`,
/// `"peer_down"`, `"dropped"`, `"connection_error"`, `"missed"` (the
/// receiver fell behind by `count` events); fields that do not apply are None.
#[pyclass(module = "netchan._native", frozen, get_all)]
pub struct Event {
    kind: &'static str,
    peer: Option<String>,
    addr: Option<String>,
    reason: Option<String>,
    code: Option<&'static str>,
    detail: Option<String>,
    site: Option<String>,
    count: Option<u64>,
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        let mut s = format!("Event(kind={:?}", self.kind);
        for (k, v) in [
            ("peer", &self.peer),
            ("addr", &self.addr),
            ("reason", &self.reason),
            ("detail", &self.detail),
            ("site", &self.site),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(", {k}={v:?}"));
            }
        }
        if let Some(c) = self.code {
            s.push_str(&format!(", code={c:?}"));
        }
        if let Some(c) = self.count {
            s.push_str(&format!(", count={c}"));
        }
        s + ")"
    }
}

fn to_event(e: EventRecv) -> Event {
    let mut ev = Event {
        kind: "other",
        peer: None,
        addr: None,
        reason: None,
        code: None,
        detail: None,
        site: None,
        count: None,
    };
    match e {
        EventRecv::Missed(n) => {
            ev.kind = "missed";
            ev.count = Some(n);
        }
        EventRecv::Event(netchan::Event::PeerUp { peer, addr }) => {
            ev.kind = "peer_up";
            (ev.peer, ev.addr) = (Some(peer), Some(addr));
        }
        EventRecv::Event(netchan::Event::PeerDown {
            peer,
            addr,
            reason,
            code,
        }) => {
            ev.kind = "peer_down";
            (ev.peer, ev.addr, ev.reason) = (Some(peer), Some(addr), Some(reason));
            ev.code = Some(code.name());
        }
        EventRecv::Event(netchan::Event::Dropped { site, code, count }) => {
            ev.kind = "dropped";
            (ev.site, ev.count) = (Some(site), Some(count));
            ev.code = Some(code.name());
        }
        EventRecv::Event(netchan::Event::ConnectionError { addr, code, detail }) => {
            ev.kind = "connection_error";
            (ev.addr, ev.detail) = (Some(addr), Some(detail));
            ev.code = Some(code.name());
        }
        _ => {}
    }
    ev
}

pub struct EvSrc(tokio::sync::Mutex<netchan::Events>);

impl Source<EventRecv> for EvSrc {
    fn fetch(self: Arc<Self>, _max: usize) -> BoxFut<Vec<EventRecv>> {
        Box::pin(async move {
            let mut ev = self.0.lock().await;
            match ev.recv().await {
                EventRecv::Closed => Vec::new(),
                e => vec![e],
            }
        })
    }
}

/// The endpoint's events from the moment `events()` was called: iterate it
/// or call `recv`. Ends when the endpoint is closed.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Events {
    feed: Arc<Feed<EventRecv, EvSrc>>,
}

/// The shared queue of an [`Events`], so the endpoint can end it on close.
pub type EventsFeed = Feed<EventRecv, EvSrc>;

impl Events {
    pub fn new(ev: netchan::Events, rt: Handle) -> Events {
        Events {
            feed: Feed::new(EvSrc(tokio::sync::Mutex::new(ev)), rt),
        }
    }

    pub fn feed(&self) -> &Arc<EventsFeed> {
        &self.feed
    }
}

#[pymethods]
impl Events {
    /// The next event, waiting up to `timeout` seconds; `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        let v = self.feed.recv_blocking(py, 1, timeout, "event stream")?;
        Ok(one(v).map(to_event))
    }
    /// The next event if one is ready.
    fn try_recv(&self) -> PyResult<Option<Event>> {
        let (v, done) = self.feed.take(1);
        if done {
            return Err(err(ErrorCode::Closed, "the endpoint is closed"));
        }
        Ok(one(v).map(to_event))
    }
    fn _wait_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.feed.wait_async(py, event_loop)
    }
    /// Awaitable form of `recv`.
    #[pyo3(signature = (timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "recv", (slf, timeout))
    }
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        match self.feed.recv_blocking(py, 1, None, "event stream") {
            Ok(v) => Ok(one(v).map(to_event)),
            Err(e) if is_closed(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        helper(slf.py(), "anext", (slf,))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.feed.stop_filler();
    }
}
