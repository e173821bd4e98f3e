//! Python threads and the core's runtime.
//!
//! - Blocking calls ([`run_blocking`], [`wait`]) go through the core's one
//!   way in from plain threads (`netchan::blocking::Blocker`: first poll,
//!   busy poll for the endpoint's `busy_poll`, park), with the GIL released
//!   after the first poll, in slices (20 ms on the main thread, where Ctrl-C
//!   lands; 100 ms elsewhere), checking signals and the exit flag between
//!   slices.
//! - Async calls ([`start_async`]) return an asyncio future. A future that
//!   can finish at once is finished inline; otherwise its work is spawned on
//!   the core's runtime and the result goes through a queue to the
//!   dispatcher, a Python thread (`dispatch_forever`) that completes it with
//!   `loop.call_soon_threadsafe`. Runtime threads never wait on the GIL.
//! - Exit (TOOLCHAINS P1): `shutdown` runs from `atexit`. It sets [`EXITING`]
//!   (every later call fails with `CLOSED` without touching the runtime),
//!   stops the dispatcher, shuts the runtime down, and waits until no thread
//!   is inside a GIL-released wait of ours, so none re-attaches while the
//!   interpreter finalizes (PyO3/pyo3#6084).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use netchan::blocking::Blocker;
use netchan::{Error, ErrorCode};
use once_cell::sync::Lazy;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::runtime::Handle;

use crate::errors::to_py;

/// Set once the interpreter is exiting; nothing touches the runtime after.
pub static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads now inside a GIL-released wait of ours.
static DETACHED: AtomicUsize = AtomicUsize::new(0);
/// True while the dispatcher thread is inside `dispatch_forever`.
static DISPATCHING: AtomicBool = AtomicBool::new(false);
/// The `ClosedError` raised once exiting, made before the flag is set: raising
/// it then runs no Python code (which could switch threads mid-finalization).
static EXIT_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static MAIN_IDENT: once_cell::sync::OnceCell<u64> = once_cell::sync::OnceCell::new();

thread_local! {
    static IS_MAIN: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Records which thread is Python's main thread (the one that gets Ctrl-C).
pub fn init(py: Python<'_>) -> PyResult<()> {
    let ident: u64 = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?
        .extract()?;
    let _ = MAIN_IDENT.set(ident);
    Ok(())
}

fn is_main_thread(py: Python<'_>) -> bool {
    IS_MAIN.with(|c| {
        if let Some(v) = c.get() {
            return v;
        }
        let me: Option<u64> = py
            .import("threading")
            .and_then(|t| t.call_method0("get_ident"))
            .and_then(|i| i.extract())
            .ok();
        let v = me.is_some() && me == MAIN_IDENT.get().copied();
        c.set(Some(v));
        v
    })
}

/// The error every call gets once the interpreter is exiting.
pub fn exiting_error() -> Error {
    Error::new(
        ErrorCode::Closed,
        "netchan is shut down (the interpreter is exiting)",
    )
}

/// The exception for calls made while the interpreter exits.
pub fn exiting_pyerr() -> PyErr {
    Python::attach(|py| match EXIT_ERROR.get(py) {
        Some(e) => PyErr::from_value(e.bind(py).clone()),
        None => to_py(exiting_error()),
    })
}

/// Fails with `CLOSED` once the interpreter is exiting.
pub fn check_alive() -> PyResult<()> {
    if EXITING.load(SeqCst) {
        return Err(exiting_pyerr());
    }
    Ok(())
}

/// How long a blocked call waits with the GIL released before it re-attaches
/// to run signal handlers (Ctrl-C raises there) and notice the exit flag:
/// short on the main thread, where Python delivers signals.
fn slice(py: Python<'_>) -> Duration {
    if is_main_thread(py) {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(100)
    }
}

/// A boxed core future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Polls `fut` once on this thread, inside the runtime's context, with a
/// waker that does nothing: the fast path of an asyncio call (most
/// publishes, every call that need not wait) finishes here without a
/// thread hop.
pub fn poll_inline<T>(rt: &Handle, fut: &mut BoxFut<T>) -> Poll<T> {
    let _enter = rt.enter();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.as_mut().poll(&mut cx)
}

/// Threads now inside a GIL-released [`Wait`](netchan::blocking::Wait) of
/// ours; `shutdown` waits for them before it stops the runtime (a tokio
/// timer polled after its runtime shut down panics).
static POLLING: AtomicUsize = AtomicUsize::new(0);

/// Waits for `fut` through the core's one way in from plain threads
/// ([`Blocker`]: first poll, busy poll for the endpoint's `busy_poll`,
/// park until woken): the first poll with the GIL held (a publish that
/// finds room, a message already queued), then with the GIL released, in
/// slices, re-attaching between them to run signal handlers and notice the
/// exit flag. `Ok(None)` once `deadline` passes; dropping the future
/// afterwards cancels the operation.
pub fn wait<F>(
    py: Python<'_>,
    blocker: &Blocker,
    fut: Pin<&mut F>,
    deadline: Option<Instant>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send + ?Sized,
    F::Output: Send,
{
    check_alive()?;
    let mut w = blocker.wait(fut).map_err(to_py)?;
    if let Some(v) = w.until(Some(Instant::now())) {
        return Ok(Some(v));
    }
    let slice = slice(py);
    loop {
        check_alive()?;
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(None);
        }
        let end = deadline.map_or(now + slice, |d| d.min(now + slice));
        DETACHED.fetch_add(1, SeqCst);
        let r = py.detach(|| {
            POLLING.fetch_add(1, SeqCst);
            // Set before our count went up: the runtime may be gone.
            let r = if EXITING.load(SeqCst) {
                None
            } else {
                w.until(Some(end))
            };
            POLLING.fetch_sub(1, SeqCst);
            r
        });
        DETACHED.fetch_sub(1, SeqCst);
        if let Some(v) = r {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
}

/// The deadline of a receive's `timeout` argument (seconds, `None`: no
/// limit); `INVALID_ARGUMENT` for a negative or non-finite one.
pub fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(|d| Some(Instant::now() + d))
            .map_err(|_| {
                crate::errors::err(
                    ErrorCode::InvalidArgument,
                    format!("timeout must be a finite number >= 0, not {t}"),
                )
            }),
    }
}

/// Runs a core future to completion for a blocking Python call (see
/// [`wait`]); Ctrl-C or exit ends the wait and drops the future, which
/// cancels the operation.
pub fn run_blocking<T: Send>(
    py: Python<'_>,
    blocker: &Blocker,
    fut: impl Future<Output = netchan::Result<T>> + Send,
) -> PyResult<T> {
    let fut = std::pin::pin!(fut);
    match wait(py, blocker, fut, None)? {
        Some(Err(_)) if EXITING.load(SeqCst) => Err(exiting_pyerr()),
        Some(r) => r.map_err(to_py),
        None => Err(exiting_pyerr()), // no deadline: unreachable
    }
}

/// Turns a finished result into a Python value (run with the GIL held).
pub type Convert<T> = fn(Python<'_>, T) -> PyResult<Py<PyAny>>;

/// Starts a core future for an asyncio caller and returns the future that
/// completes with its converted result. Cancelling the asyncio future drops
/// the core future (a request is then cancelled at the server).
pub fn start_async<'py, T: Send + 'static>(
    py: Python<'py>,
    rt: &Handle,
    event_loop: &Bound<'py, PyAny>,
    fut: impl Future<Output = netchan::Result<T>> + Send + 'static,
    convert: Convert<T>,
) -> PyResult<Bound<'py, PyAny>> {
    check_alive()?;
    let pyfut = event_loop.call_method0("create_future")?;
    let mut fut: BoxFut<netchan::Result<T>> = Box::pin(fut);
    if let Poll::Ready(r) = poll_inline(rt, &mut fut) {
        match r.map_err(to_py).and_then(|v| convert(py, v)) {
            Ok(v) => pyfut.call_method1("set_result", (v,))?,
            Err(e) => pyfut.call_method1("set_exception", (e.into_value(py),))?,
        };
        return Ok(pyfut);
    }
    finish_async(rt, &pyfut, fut, convert)?;
    Ok(pyfut)
}

/// Starts a core future for an asyncio caller that usually finishes at
/// once (a publish, a stream send with credit): `None` when it finished
/// inline (its error, if any, is raised), else the future to await.
pub fn maybe_async<'py, T: Send + 'static>(
    rt: &Handle,
    event_loop: &Bound<'py, PyAny>,
    mut fut: BoxFut<netchan::Result<T>>,
    convert: Convert<T>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    check_alive()?;
    if let Poll::Ready(r) = poll_inline(rt, &mut fut) {
        r.map_err(to_py)?;
        return Ok(None);
    }
    let pyfut = event_loop.call_method0("create_future")?;
    finish_async(rt, &pyfut, fut, convert)?;
    Ok(Some(pyfut))
}

/// Completes `pyfut` from the runtime once `fut` (already polled inline and
/// pending) finishes.
pub fn finish_async<T: Send + 'static>(
    rt: &Handle,
    pyfut: &Bound<'_, PyAny>,
    fut: BoxFut<netchan::Result<T>>,
    convert: Convert<T>,
) -> PyResult<()> {
    let event_loop = pyfut.call_method0("get_loop")?;
    let (l, f) = (event_loop.unbind(), pyfut.clone().unbind());
    let task = rt.spawn(async move {
        let r = fut.await;
        dispatch(Job::Resolve {
            event_loop: l,
            fut: f,
            make: Box::new(move |py| r.map_err(to_py).and_then(|v| convert(py, v))),
        });
    });
    cancel_with(pyfut, task.abort_handle())
}

/// Aborts `task` when the asyncio future `pyfut` is cancelled.
pub fn cancel_with(pyfut: &Bound<'_, PyAny>, task: tokio::task::AbortHandle) -> PyResult<()> {
    pyfut.call_method1("add_done_callback", (Canceller(task),))?;
    Ok(())
}

/// Done-callback that drops the core future when its asyncio future is cancelled.
#[pyclass(module = "netchan._native", frozen)]
struct Canceller(tokio::task::AbortHandle);

#[pymethods]
impl Canceller {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

/// Makes a future's outcome (value or exception) once the GIL is held.
pub type MakeResult = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// Work for the dispatcher thread.
pub enum Job {
    /// Complete `fut` with what `make` returns (value or exception).
    Resolve {
        event_loop: Py<PyAny>,
        fut: Py<PyAny>,
        make: MakeResult,
    },
    /// Complete `fut` with `None` (data is ready to be taken).
    Wake {
        event_loop: Py<PyAny>,
        fut: Py<PyAny>,
    },
    /// A core log record for the `netchan` logger.
    Log { level: u8, text: String },
    /// End the dispatcher (interpreter exit).
    Stop,
}

type Queue = (Sender<Job>, Mutex<Option<Receiver<Job>>>);
static QUEUE: Lazy<Queue> = Lazy::new(|| {
    let (tx, rx) = mpsc::channel();
    (tx, Mutex::new(Some(rx)))
});

/// Hands a job to the dispatcher thread; never blocks.
pub fn dispatch(job: Job) {
    let _ = QUEUE.0.send(job);
}

static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Completes an asyncio future unless it is already done (cancelled): the
/// callback that the dispatcher schedules on the future's loop.
#[pyfunction]
pub fn resolve(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// The dispatcher: run by one Python thread (started by the package), it
/// completes asyncio futures and forwards log records until interpreter exit.
#[pyfunction]
pub fn dispatch_forever(py: Python<'_>) -> PyResult<()> {
    let Some(mut rx) = QUEUE.1.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return Ok(()); // another thread runs it
    };
    DISPATCHING.store(true, SeqCst);
    let r = dispatch_loop(py, &mut rx);
    DISPATCHING.store(false, SeqCst);
    r
}

fn dispatch_loop(py: Python<'_>, rx: &mut Receiver<Job>) -> PyResult<()> {
    let resolve = RESOLVE
        .import(py, "netchan._native", "resolve")?
        .clone()
        .unbind();
    loop {
        DETACHED.fetch_add(1, SeqCst);
        let batch = py.detach(|| next_batch(rx));
        DETACHED.fetch_sub(1, SeqCst);
        crate::logbridge::refresh(py);
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            if EXITING.load(SeqCst) {
                // Nobody waits any more, and running Python code (even a
                // __del__) could switch threads while the interpreter
                // finalizes: leave the rest untouched.
                std::mem::forget(job);
                jobs.for_each(std::mem::forget);
                return Ok(());
            }
            match job {
                Job::Resolve {
                    event_loop,
                    fut,
                    make,
                } => {
                    let (ok, value) = match make(py) {
                        Ok(v) => (true, v),
                        Err(e) => (false, e.into_value(py).into_any()),
                    };
                    // A closed loop refuses; nobody waits on its futures.
                    let _ = event_loop.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (&resolve, fut, ok, value),
                    );
                }
                Job::Wake { event_loop, fut } => {
                    let _ = event_loop.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (&resolve, fut, true, py.None()),
                    );
                }
                Job::Log { level, text } => crate::logbridge::emit(py, level, &text),
                Job::Stop => return Ok(()),
            }
        }
    }
}

fn next_batch(rx: &mut Receiver<Job>) -> Vec<Job> {
    let mut v = Vec::new();
    // The timeout only paces log-level refreshes.
    if let Ok(j) = rx.recv_timeout(Duration::from_secs(1)) {
        v.push(j);
        while v.len() < 1024 {
            match rx.try_recv() {
                Ok(j) => v.push(j),
                Err(_) => break,
            }
        }
    }
    v
}

/// Stops everything before the interpreter finalizes; registered with
/// `atexit` by the package. Idempotent.
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    if EXITING.load(SeqCst) {
        return;
    }
    let _ = EXIT_ERROR.get_or_init(py, || {
        crate::errors::to_py(exiting_error())
            .into_value(py)
            .into_any()
    });
    EXITING.store(true, SeqCst);
    dispatch(Job::Stop);
    py.detach(|| {
        // A wait that saw EXITING unset ends within its slice (at most
        // 100 ms); none starts after.
        let deadline = Instant::now() + Duration::from_secs(2);
        while POLLING.load(SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        netchan::runtime::shutdown(Duration::from_secs(1));
        // The dispatcher returns after the job it is running.
        while (DETACHED.load(SeqCst) > 0 || DISPATCHING.load(SeqCst)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}
