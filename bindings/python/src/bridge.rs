//! Python threads and the core's runtime.
//!
//! - Blocking calls ([`run_blocking`], [`wait_loop`]) release the GIL and wait
//!   in slices (20 ms on the main thread, where Ctrl-C lands; 100 ms
//!   elsewhere), checking signals and the exit flag between slices.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

/// Runs `poll(slice)` with the GIL released until it returns `Some`; between
/// slices re-attaches to run signal handlers (Ctrl-C raises here) and to
/// notice the exit flag.
pub fn wait_loop<T, F>(py: Python<'_>, mut poll: F) -> PyResult<T>
where
    T: Send,
    F: FnMut(Duration) -> Option<T> + Send,
{
    let slice = if is_main_thread(py) {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(100)
    };
    loop {
        check_alive()?;
        DETACHED.fetch_add(1, SeqCst);
        let r = py.detach(|| poll(slice));
        DETACHED.fetch_sub(1, SeqCst);
        if let Some(v) = r {
            return Ok(v);
        }
        py.check_signals()?;
    }
}

/// A boxed core future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Polls `fut` once on this thread, inside the runtime's context, with a
/// waker that does nothing: most publishes and every non-waiting call finish
/// here without a thread hop.
pub fn poll_inline<T>(rt: &Handle, fut: &mut BoxFut<T>) -> Poll<T> {
    let _enter = rt.enter();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.as_mut().poll(&mut cx)
}

/// Default of [`set_busy_poll`]: how long a blocked call keeps polling
/// before it parks, in microseconds.
pub const DEFAULT_BUSY_POLL_US: u64 = 100;
static BUSY_POLL_US: AtomicU64 = AtomicU64::new(DEFAULT_BUSY_POLL_US);

/// Sets how long (microseconds) a blocking call (`request`, `recv`, the
/// service loop of `serve`) keeps polling, yielding the CPU between polls,
/// before it parks its thread; 0 parks at once. Waking a parked thread costs
/// tens of microseconds on virtual machines (an idle virtual CPU is halted),
/// so a short poll halves request/reply latency there, at the price of up to
/// this much CPU time per wait. At most 1 s (1,000,000); negative values
/// raise `InvalidArgumentError`. Returns the previous value.
#[pyfunction]
pub fn set_busy_poll(microseconds: i64) -> PyResult<u64> {
    if !(0..=1_000_000).contains(&microseconds) {
        return Err(crate::errors::err(
            ErrorCode::InvalidArgument,
            format!("busy poll must be 0..=1000000 microseconds, not {microseconds}"),
        ));
    }
    Ok(BUSY_POLL_US.swap(microseconds as u64, SeqCst))
}

/// The busy-poll window of one wait.
pub struct Spin(Instant);

impl Spin {
    pub fn start() -> Self {
        Spin(Instant::now() + Duration::from_micros(BUSY_POLL_US.load(Relaxed)))
    }
    /// True while the window is open at `now`.
    pub fn keep_polling(&self, now: Instant) -> bool {
        now < self.0
    }
}

/// Threads now polling a core future outside the runtime ([`poll_here`]);
/// `shutdown` waits for them before it stops the runtime.
static POLLING: AtomicUsize = AtomicUsize::new(0);

/// Wakes a thread that polls a core future itself.
pub struct Unpark(pub std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the current thread.
pub fn unpark_waker() -> std::task::Waker {
    std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())))
}

/// Polls `fut` on this thread inside the runtime's context; `None` once the
/// interpreter is exiting (the runtime may be gone: tokio timers panic when
/// polled after their runtime shut down, so no poll may overlap `shutdown`).
pub fn poll_here<T>(rt: &Handle, fut: &mut BoxFut<T>, waker: &std::task::Waker) -> Option<Poll<T>> {
    POLLING.fetch_add(1, SeqCst);
    let r = if EXITING.load(SeqCst) {
        None
    } else {
        let _enter = rt.enter();
        Some(fut.as_mut().poll(&mut Context::from_waker(waker)))
    };
    POLLING.fetch_sub(1, SeqCst);
    r
}

/// How [`poll_until`] ended.
pub enum Waited<T> {
    Ready(T),
    /// `end` passed first.
    Elapsed,
    /// The interpreter is exiting, or `stop` said so.
    GaveUp,
}

/// Polls `fut` on this thread until it is ready or `end` passes: without
/// pause while `spin` lasts (yielding the CPU between polls), then parked
/// until `waker` unparks the thread. `stop` is checked before each poll.
/// Call with the GIL released.
pub fn poll_until<T>(
    rt: &Handle,
    fut: &mut BoxFut<T>,
    waker: &std::task::Waker,
    spin: &Spin,
    end: Instant,
    mut stop: impl FnMut() -> bool,
) -> Waited<T> {
    loop {
        if stop() {
            return Waited::GaveUp;
        }
        match poll_here(rt, fut, waker) {
            None => return Waited::GaveUp,
            Some(Poll::Ready(v)) => return Waited::Ready(v),
            Some(Poll::Pending) => {}
        }
        let now = Instant::now();
        if now >= end {
            return Waited::Elapsed;
        }
        if spin.keep_polling(now) {
            std::thread::yield_now();
            continue;
        }
        std::thread::park_timeout(end - now);
    }
}

/// Runs a core future to completion for a blocking Python call.
///
/// After a first poll with the GIL held (enough for most calls), the
/// calling thread polls the future itself with the GIL released: first for the
/// busy-poll window ([`set_busy_poll`]), then parked between polls, woken by
/// the core directly. No runtime task is spawned, so a request costs at most
/// one thread hand-off (the runtime thread that reads the reply unparks this
/// one), and none when the reply comes within the window.
pub fn run_blocking<T: Send + 'static>(
    py: Python<'_>,
    rt: &Handle,
    fut: impl Future<Output = netchan::Result<T>> + Send + 'static,
) -> PyResult<T> {
    check_alive()?;
    let mut fut: BoxFut<netchan::Result<T>> = Box::pin(fut);
    // Most calls (a publish that finds room) finish here, GIL held.
    if let Poll::Ready(r) = poll_inline(rt, &mut fut) {
        return r.map_err(to_py);
    }
    let waker = unpark_waker();
    let spin = Spin::start();
    let r = wait_loop(py, |slice| {
        match poll_until(rt, &mut fut, &waker, &spin, Instant::now() + slice, || {
            false
        }) {
            Waited::Ready(r) => Some(r),
            Waited::Elapsed => None,
            Waited::GaveUp => Some(Err(exiting_error())),
        }
    });
    match r {
        Ok(Err(_)) if EXITING.load(SeqCst) => Err(exiting_pyerr()),
        Ok(r) => r.map_err(to_py),
        // Ctrl-C or exit: dropping the future (when this returns) cancels
        // the operation.
        Err(interrupted) => Err(interrupted),
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
    let canceller = Canceller(task.abort_handle());
    pyfut.call_method1("add_done_callback", (canceller,))?;
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
        // A poll that saw EXITING unset finishes first (microseconds).
        while POLLING.load(SeqCst) > 0 {
            std::thread::yield_now();
        }
        netchan::runtime::shutdown(Duration::from_secs(1));
        // Waits woken by the shutdown return within one slice (100 ms); the
        // dispatcher returns after the job it is running.
        let deadline = Instant::now() + Duration::from_secs(2);
        while (DETACHED.load(SeqCst) > 0 || DISPATCHING.load(SeqCst)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}
