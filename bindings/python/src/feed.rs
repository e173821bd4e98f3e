//! The receive side: subscriptions, services and event streams, as thin
//! pumps over the core's queues (the core's queue is the only queue).
//!
//! - Taking what is queued: `Subscription::try_recv_many` /
//!   `Service::try_recv`, straight from the core, GIL held.
//! - Blocking receives wait on the core's own receive future through the
//!   endpoint's `Blocker` ([`bridge::wait`]): GIL released, Ctrl-C checked
//!   between slices; the core wakes the parked thread directly. Many
//!   threads may wait on one source: the core hands each message to one.
//! - asyncio receives (`_poll_async`) take an item, or else register an
//!   asyncio future with the core's readiness hook (`poll_recv_many` /
//!   `poll_recv`); the thread that queues the next item wakes [`Waiters`],
//!   which hands the futures to the dispatcher, and each woken receiver takes
//!   the item itself, so a cancelled wait loses nothing.
//! - The core's event stream has no readiness hook: an asyncio wait there
//!   runs a task that parks the next event in a stash (at most one per
//!   waiter), so cancelling it loses nothing either.
//!
//! No lock of ours is held while Python code runs (a `__del__` run by the
//! garbage collector could re-enter).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use netchan::{ErrorCode, EventRecv};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};
use tokio::runtime::Handle;

use crate::bridge::{check_alive, deadline, dispatch, wait, Job};
use crate::errors::{err, to_py};

/// asyncio futures waiting for one source, completed (with `None`) all at
/// once when the core's readiness hook fires.
#[derive(Default)]
struct Waiters(Mutex<Vec<(Py<PyAny>, Py<PyAny>)>>);

/// Waiters beyond which a new registration wakes the old ones (those of
/// cancelled waits are only dropped at a wake).
const PRUNE_AT: usize = 64;

impl Waiters {
    fn take(&self) -> Vec<(Py<PyAny>, Py<PyAny>)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    /// Runs on whichever thread queued an item: hands the futures to the
    /// dispatcher, never touching the GIL.
    fn wake_by_ref(self: &Arc<Self>) {
        for (event_loop, fut) in self.take() {
            dispatch(Job::Wake { event_loop, fut });
        }
    }
}

/// The asyncio side of one source: its waiters and the waker the core's
/// readiness hook holds (the same one every time, so re-arming is cheap).
struct AsyncHook {
    waiters: Arc<Waiters>,
    waker: Waker,
}

impl AsyncHook {
    fn new() -> AsyncHook {
        let waiters = Arc::new(Waiters::default());
        AsyncHook {
            waker: Waker::from(waiters.clone()),
            waiters,
        }
    }

    /// A context whose waker is this hook's, for polls that may arm it.
    fn cx(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }

    /// An item now (`Ok(Ok(item))`), or a future on `event_loop` that
    /// completes when `poll` may find one; `poll` returns `Ready(None)` once
    /// the source is finished, which raises `CLOSED`.
    fn poll<'py, T>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        what: &str,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<Option<T>>,
    ) -> PyResult<Result<T, Bound<'py, PyAny>>> {
        check_alive()?;
        // Made before locking: creating it runs Python code.
        let fut = event_loop.call_method0("create_future")?;
        let stale = {
            let mut w = self.waiters.0.lock().unwrap_or_else(|p| p.into_inner());
            let stale = if w.len() >= PRUNE_AT {
                std::mem::take(&mut *w)
            } else {
                Vec::new()
            };
            w.push((event_loop.clone().unbind(), fut.clone().unbind()));
            stale
        };
        // A spurious wake: live waiters look again and re-register.
        for (event_loop, fut) in stale {
            dispatch(Job::Wake { event_loop, fut });
        }
        // Registered first: an item queued from here on wakes `fut`.
        let r = poll(&mut self.cx());
        if let Poll::Ready(item) = r {
            self.waiters
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(_, f)| f.as_ptr() != fut.as_ptr());
            return match item {
                Some(x) => Ok(Ok(x)),
                None => Err(err(ErrorCode::Closed, format!("the {what} is closed"))),
            };
        }
        Ok(Err(fut))
    }
}

/// `(item, None)` or `(None, future)`: what `_poll_async` returns to
/// `netchan._async`.
fn item_or_future<'py, T: IntoPyObject<'py>>(
    py: Python<'py>,
    r: Result<T, Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    match r {
        Ok(x) => (x, py.None()).into_pyobject(py),
        Err(fut) => (py.None(), fut).into_pyobject(py),
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

pub(crate) fn is_closed(py: Python<'_>, e: &PyErr) -> bool {
    e.value(py)
        .getattr("code")
        .and_then(|c| c.extract::<String>())
        .is_ok_and(|c| c == "CLOSED")
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

/// A subscription: iterate it (`for msg in sub`, `async for msg in sub`) or
/// call `recv`. Closing it (or the endpoint) ends the iteration once the
/// queued messages are taken.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Subscription {
    sub: netchan::Subscription,
    hook: AsyncHook,
}

impl Subscription {
    pub fn new(sub: netchan::Subscription) -> Subscription {
        Subscription {
            sub,
            hook: AsyncHook::new(),
        }
    }

    /// The next message, waiting up to `timeout` (`None` on timeout);
    /// `CLOSED` once closed and drained. The core's `recv` takes a batch
    /// from its queue and hands it out one by one (the first poll, GIL
    /// held, is all a stream of messages needs).
    fn take_one(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Message>> {
        let deadline = deadline(timeout)?;
        let fut = std::pin::pin!(self.sub.recv());
        match wait(py, self.sub.blocker(), fut, deadline)? {
            None => Ok(None),
            Some(Some(m)) => Ok(Some(Message(m))),
            Some(None) => Err(err(ErrorCode::Closed, "the subscription is closed")),
        }
    }

    /// Up to `max` messages, waiting up to `timeout` for the first (empty
    /// on timeout); `CLOSED` once closed and drained.
    fn take(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<netchan::Message>> {
        check_alive()?;
        let max = max.max(1);
        let mut v = Vec::new();
        // The hook's own waker, not a no-op one: polling an empty queue arms
        // the hook, and a no-op waker there would strand an asyncio waiter.
        match self.sub.poll_recv_many(&mut self.hook.cx(), &mut v, max) {
            Poll::Ready(0) => return Err(err(ErrorCode::Closed, "the subscription is closed")),
            Poll::Ready(_) => return Ok(v),
            Poll::Pending => {}
        }
        let deadline = deadline(timeout)?;
        let got = {
            let fut = std::pin::pin!(self.sub.recv_many(&mut v, max));
            wait(py, self.sub.blocker(), fut, deadline)?
        };
        match got {
            Some(0) => Err(err(ErrorCode::Closed, "the subscription is closed")),
            _ => Ok(v),
        }
    }
}

#[pymethods]
impl Subscription {
    /// The pattern.
    #[getter]
    fn pattern(&self) -> &str {
        self.sub.pattern()
    }
    /// Messages dropped so far by the overflow policy.
    #[getter]
    fn dropped(&self) -> u64 {
        self.sub.dropped()
    }
    /// The next message, waiting up to `timeout` seconds (`None`: no limit);
    /// `None` on timeout. Raises `ClosedError` once closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Message>> {
        self.take_one(py, timeout)
    }
    /// Up to `max` queued messages, waiting up to `timeout` for the first.
    #[pyo3(signature = (max=256, timeout=None))]
    fn recv_many(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Message>> {
        Ok(self
            .take(py, max, timeout)?
            .into_iter()
            .map(Message)
            .collect())
    }
    /// The next message if one is queued, else `None`.
    fn try_recv(&self) -> PyResult<Option<Message>> {
        // The core's `try_recv` never arms the readiness hook.
        Ok(self.sub.try_recv().map_err(to_py)?.map(Message))
    }
    /// Unsubscribes; messages already queued can still be received.
    fn close(&self) {
        self.sub.close()
    }
    fn _poll_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let r = self.hook.poll(event_loop, "subscription", |cx| {
            let mut v = Vec::with_capacity(1);
            match self.sub.poll_recv_many(cx, &mut v, 1) {
                Poll::Ready(0) => Poll::Ready(None),
                Poll::Ready(_) => Poll::Ready(v.pop().map(Message)),
                Poll::Pending => Poll::Pending,
            }
        })?;
        item_or_future(py, r)
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
        match self.take_one(py, None) {
            Ok(m) => Ok(m),
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
            None => Err(crate::errors::to_py(netchan::Error::new(
                netchan::ErrorCode::Closed,
                "this request was already answered",
            ))),
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

fn wrap_req((req, reply): (netchan::Request, netchan::Reply)) -> Request {
    Request {
        req,
        reply: Mutex::new(Some(reply)),
    }
}

/// A served pattern: take requests with `recv` or by iterating, and answer
/// each with `reply` or `fail`. Closing it stops serving.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Service {
    svc: netchan::Service,
    hook: AsyncHook,
}

impl Service {
    pub fn new(svc: netchan::Service) -> Service {
        Service {
            svc,
            hook: AsyncHook::new(),
        }
    }

    /// The next request, waiting up to `timeout` (`None` on timeout);
    /// `CLOSED` once closed.
    fn take(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Request>> {
        check_alive()?;
        if let Some(r) = self.try_take()? {
            return Ok(Some(r));
        }
        let deadline = deadline(timeout)?;
        let fut = std::pin::pin!(self.svc.recv());
        match wait(py, self.svc.blocker(), fut, deadline)? {
            None => Ok(None),
            Some(Some(r)) => Ok(Some(wrap_req(r))),
            Some(None) => Err(err(ErrorCode::Closed, "the service is closed")),
        }
    }

    /// The next request if one is queued. Through the hook's own waker:
    /// the core's `try_recv` arms the hook with a no-op one, which would
    /// strand an asyncio waiter.
    fn try_take(&self) -> PyResult<Option<Request>> {
        match self.svc.poll_recv(&mut self.hook.cx()) {
            Poll::Ready(Some(r)) => Ok(Some(wrap_req(r))),
            Poll::Ready(None) => Err(err(ErrorCode::Closed, "the service is closed")),
            Poll::Pending => Ok(None),
        }
    }
}

#[pymethods]
impl Service {
    /// The served pattern.
    #[getter]
    fn pattern(&self) -> &str {
        self.svc.pattern()
    }
    /// The next request, waiting up to `timeout` seconds; `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Request>> {
        self.take(py, timeout)
    }
    /// The next request if one is queued.
    fn try_recv(&self) -> PyResult<Option<Request>> {
        self.try_take()
    }
    /// Stops serving; queued requests fail at their callers.
    fn close(&self) {
        self.svc.close()
    }
    fn _poll_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let r = self.hook.poll(event_loop, "service", |cx| {
            self.svc.poll_recv(cx).map(|r| r.map(wrap_req))
        })?;
        item_or_future(py, r)
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
        match self.take(py, None) {
            Ok(r) => Ok(r),
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

// ---------------------------------------------------------------- events

/// A connection or delivery event: `kind` is the core's name for it
/// (`"peer_up"`, `"peer_down"`, `"dropped"`, `"reconnecting"`,
/// `"reconnect_abandoned"`, `"suspended"`, `"resumed"`,
/// `"connection_error"`, `"denied"`), or `"missed"` (the receiver fell
/// behind by `count` events). Fields that do not apply are None.
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
    attempt: Option<u32>,
    delay_ms: Option<u64>,
    identity: Option<String>,
    action: Option<String>,
    path: Option<String>,
    attempts: Option<u64>,
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
            ("identity", &self.identity),
            ("action", &self.action),
            ("path", &self.path),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(", {k}={v:?}"));
            }
        }
        if let Some(c) = self.code {
            s.push_str(&format!(", code={c:?}"));
        }
        for (k, v) in [
            ("count", self.count),
            ("attempt", self.attempt.map(u64::from)),
            ("delay_ms", self.delay_ms),
            ("attempts", self.attempts),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(", {k}={v}"));
            }
        }
        s + ")"
    }
}

impl Event {
    fn empty(kind: &'static str) -> Event {
        Event {
            kind,
            peer: None,
            addr: None,
            reason: None,
            code: None,
            detail: None,
            site: None,
            count: None,
            attempt: None,
            delay_ms: None,
            identity: None,
            action: None,
            path: None,
            attempts: None,
        }
    }
}

/// Every field of a core event. The core's enum is `non_exhaustive`, so a
/// kind added there reaches Python by its name without its fields until it
/// is mapped here: `test_every_core_event_reaches_python_with_all_its_fields`
/// (built from `Event::examples()`) fails until then.
fn from_core(e: netchan::Event) -> Event {
    use netchan::Event as E;
    let mut ev = Event::empty(e.kind());
    match e {
        E::PeerUp {
            peer,
            addr,
            identity,
        } => (ev.peer, ev.addr, ev.identity) = (Some(peer), Some(addr), Some(identity)),
        E::Denied {
            peer,
            identity,
            action,
            path,
        } => {
            (ev.peer, ev.identity) = (Some(peer), Some(identity));
            (ev.action, ev.path) = (Some(action), Some(path));
        }
        E::PeerDown {
            peer,
            addr,
            reason,
            code,
        } => {
            (ev.peer, ev.addr, ev.reason) = (Some(peer), Some(addr), Some(reason));
            ev.code = Some(code.name());
        }
        E::Dropped { site, code, count } => {
            (ev.site, ev.count, ev.code) = (Some(site), Some(count), Some(code.name()));
        }
        E::Reconnecting {
            addr,
            attempt,
            delay,
        } => {
            (ev.addr, ev.attempt) = (Some(addr), Some(attempt));
            ev.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        }
        E::ReconnectAbandoned { addr, code, detail } => {
            (ev.addr, ev.detail, ev.code) = (Some(addr), Some(detail), Some(code.name()));
        }
        E::ConnectionError {
            addr,
            code,
            detail,
            attempts,
        } => {
            (ev.addr, ev.detail, ev.code) = (Some(addr), Some(detail), Some(code.name()));
            ev.attempts = Some(attempts);
        }
        E::Suspended | E::Resumed => {}
        _ => {}
    }
    ev
}

/// `None` once the stream ended.
fn to_event(e: EventRecv) -> Option<Event> {
    match e {
        EventRecv::Event(e) => Some(from_core(e)),
        EventRecv::Missed(n) => {
            let mut ev = Event::empty("missed");
            ev.count = Some(n);
            Some(ev)
        }
        _ => None,
    }
}

/// Every core event kind, one with every field set (`Event::examples()`),
/// as Python sees it, with the core's `Debug` text of it: the tests check
/// that no field is lost on the way. Not API.
#[pyfunction]
pub fn _event_examples() -> Vec<(Event, String)> {
    netchan::Event::examples()
        .into_iter()
        .map(|e| {
            let debug = format!("{e:?}");
            (from_core(e), debug)
        })
        .collect()
}

/// The core's event stream and what asyncio waits took from it for
/// receivers that had gone (kept in order; at most one per wait).
struct EvInner {
    ev: tokio::sync::Mutex<netchan::Events>,
    stash: Mutex<VecDeque<EventRecv>>,
}

impl EvInner {
    fn stashed(&self) -> Option<EventRecv> {
        self.stash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn stashed_none(&self) -> bool {
        self.stash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The next event without waiting.
    fn try_next(&self) -> Option<EventRecv> {
        if let Some(e) = self.stashed() {
            return Some(e);
        }
        // Held by a waiter: whatever it takes comes through the stash.
        self.ev.try_lock().ok()?.try_recv()
    }

    /// Waits for the next event.
    async fn next(&self) -> EventRecv {
        let mut g = self.ev.lock().await;
        // Stashed by a waiter that held the stream before us.
        if let Some(e) = self.stashed() {
            return e;
        }
        g.recv().await
    }
}

/// The endpoint's events from the moment `events()` was called: iterate it
/// or call `recv`. Ends when the endpoint is closed.
#[pyclass(module = "netchan._native", frozen, weakref)]
pub struct Events {
    inner: Arc<EvInner>,
    rt: Handle,
    blocker: netchan::blocking::Blocker,
}

impl Events {
    pub fn new(ev: netchan::Events, ep: &netchan::Endpoint) -> Events {
        Events {
            inner: Arc::new(EvInner {
                ev: tokio::sync::Mutex::new(ev),
                stash: Default::default(),
            }),
            rt: ep.runtime().clone(),
            blocker: ep.blocker().clone(),
        }
    }

    /// The next event, waiting up to `timeout` (`None` on timeout); `CLOSED`
    /// once the stream ended.
    fn take(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        check_alive()?;
        let e = match self.inner.try_next() {
            Some(e) => e,
            None => {
                let deadline = deadline(timeout)?;
                let fut = std::pin::pin!(self.inner.next());
                match wait(py, &self.blocker, fut, deadline)? {
                    Some(e) => e,
                    None => return Ok(None),
                }
            }
        };
        match to_event(e) {
            Some(ev) => Ok(Some(ev)),
            None => Err(err(ErrorCode::Closed, "the endpoint is closed")),
        }
    }
}

#[pymethods]
impl Events {
    /// The next event, waiting up to `timeout` seconds; `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        self.take(py, timeout)
    }
    /// The next event if one is ready.
    fn try_recv(&self) -> PyResult<Option<Event>> {
        match self.inner.try_next().map(to_event) {
            None => Ok(None),
            Some(Some(ev)) => Ok(Some(ev)),
            Some(None) => Err(err(ErrorCode::Closed, "the endpoint is closed")),
        }
    }
    fn _poll_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        check_alive()?;
        if let Some(e) = self.inner.try_next() {
            return match to_event(e) {
                Some(ev) => item_or_future(py, Ok(Py::new(py, ev)?)),
                None => Err(err(ErrorCode::Closed, "the endpoint is closed")),
            };
        }
        let fut = event_loop.call_method0("create_future")?;
        let (inner, l, f) = (
            self.inner.clone(),
            event_loop.clone().unbind(),
            fut.clone().unbind(),
        );
        let task = self.rt.spawn(async move {
            let mut g = inner.ev.lock().await;
            if inner.stashed_none() {
                let e = g.recv().await;
                // Stashed while the stream is still held: a waiter that
                // takes it next looks at the stash first.
                inner
                    .stash
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(e);
            }
            drop(g);
            dispatch(Job::Wake {
                event_loop: l,
                fut: f,
            });
        });
        crate::bridge::cancel_with(&fut, task.abort_handle())?;
        item_or_future::<Py<Event>>(py, Err(fut))
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
        match self.take(py, None) {
            Ok(ev) => Ok(ev),
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
