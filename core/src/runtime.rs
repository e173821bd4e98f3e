//! The runtime netchan runs on.
//!
//! An endpoint created inside a tokio runtime uses that runtime. Otherwise it
//! uses one process-wide multi-thread runtime, started on first use and
//! stopped by [`shutdown`] (which C programs call before exit so that leak
//! checkers see every worker thread joined). Its threads block the signals
//! a program handles itself (Ctrl-C, termination), so that they reach the
//! program's own threads.
//!
//! ## After `fork()`
//!
//! A forked child has only the thread that forked: the runtime's worker
//! threads are gone, and its I/O driver shares its epoll instance with the
//! parent, so a child that drove it would take the parent's readiness
//! events (the parent's calls would then hang). So netchan counts forks
//! (a `pthread_atfork` child handler), and in the child:
//! - an endpoint made before the fork fails every call at once with
//!   `CLOSED` ("made before fork()"), and its drop does nothing; it never
//!   touches the parent's runtime;
//! - a new endpoint gets a new runtime (the parent's is forgotten, never
//!   shut down: its threads do not exist here), so the child can use
//!   netchan normally.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::runtime::{Handle, Runtime};

/// netchan's own runtime, with the fork generation it was made in.
static RUNTIME: Lazy<Mutex<Option<(Runtime, u64)>>> = Lazy::new(|| Mutex::new(None));

/// How many times this process's lineage has forked since netchan was first
/// used (the child handler of `pthread_atfork` counts).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// How many times [`shutdown`] stopped netchan's own runtime: an endpoint
/// made on it before then has no runtime left.
static SHUTDOWNS: AtomicU64 = AtomicU64::new(0);

/// What an endpoint's runtime is, for telling later whether it is gone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lineage {
    fork: u64,
    /// `SHUTDOWNS` when made, if it runs on netchan's own runtime (a
    /// caller's runtime is the caller's to stop).
    own: Option<u64>,
}

impl Lineage {
    /// The lineage of an endpoint made now on a caller's runtime (tests).
    #[cfg(test)]
    pub(crate) fn current() -> Lineage {
        Lineage {
            fork: fork_generation(),
            own: None,
        }
    }

    /// Why an endpoint of this lineage can no longer run, if it cannot: a
    /// `fork()` since (this is the child), or [`shutdown`] since.
    pub(crate) fn gone(&self) -> Option<&'static str> {
        if fork_generation() != self.fork {
            Some(
                "this endpoint was made before fork(): it belongs to the parent process \
                 and cannot be used in the child; make a new endpoint in the child",
            )
        } else if self.own.is_some_and(|n| n != SHUTDOWNS.load(SeqCst)) {
            Some(
                "netchan's runtime was stopped by runtime::shutdown() (netchan_runtime_shutdown() \
                 in C) after this endpoint was made; make a new endpoint",
            )
        } else {
            None
        }
    }
}
static ATFORK: std::sync::Once = std::sync::Once::new();

#[cfg(unix)]
extern "C" fn forked_child() {
    FORKS.fetch_add(1, SeqCst);
}

/// The current fork generation (registering the fork handler on first use).
pub(crate) fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        #[cfg(unix)]
        // SAFETY: registers a child handler that only increments an atomic
        // (async-signal-safe); the prepare and parent handlers are none.
        unsafe {
            libc::pthread_atfork(None, None, Some(forked_child));
        }
    });
    FORKS.load(SeqCst)
}

/// The handle endpoints spawn on: the caller's runtime if there is one, else
/// netchan's own; with its lineage.
pub(crate) fn handle() -> std::io::Result<(Handle, Lineage)> {
    let fork = fork_generation();
    if let Ok(h) = Handle::try_current() {
        return Ok((h, Lineage { fork, own: None }));
    }
    let own = Some(SHUTDOWNS.load(SeqCst));
    own_handle().map(|h| (h, Lineage { fork, own }))
}

/// netchan's own runtime, started if needed.
pub(crate) fn own_handle() -> std::io::Result<Handle> {
    let generation = fork_generation();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    match slot.take() {
        Some((rt, g)) if g == generation => {
            let h = rt.handle().clone();
            *slot = Some((rt, g));
            return Ok(h);
        }
        // Made before a fork: its threads are not in this process, and
        // dropping it would wait for them. Forget it.
        Some((rt, _)) => std::mem::forget(rt),
        None => {}
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("netchan")
        .on_thread_start(|| {
            OWN_THREAD.with(|o| o.set(true));
            leave_signals_to_the_program();
        })
        .enable_all()
        .build()?;
    let h = rt.handle().clone();
    *slot = Some((rt, generation));
    Ok(h)
}

thread_local! {
    /// Set on the threads of netchan's own runtime.
    static OWN_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on a thread of netchan's own runtime, whose scheduling netchan may
/// shape (a program's own runtime threads are the program's).
pub(crate) fn on_own_thread() -> bool {
    OWN_THREAD.with(|o| o.get())
}

/// Signals a program handles itself (Ctrl-C, termination, timers, child
/// exits) are blocked on netchan's own threads. The kernel delivers a
/// process-directed signal to any thread that does not block it; delivered
/// to a netchan thread, a C program's `sigwait` loop or Python's handler
/// (which runs only when the main thread is woken) would not see it in time,
/// or at all. Synchronous signals (SIGSEGV, SIGPIPE from our own writes,
/// which use MSG_NOSIGNAL anyway) are left alone.
fn leave_signals_to_the_program() {
    #[cfg(unix)]
    {
        // SAFETY: builds a signal set on the stack and changes only the
        // calling thread's mask (pthread_sigmask), as a thread may at any
        // time.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in ASYNC_SIGNALS {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// The signals [`leave_signals_to_the_program`] blocks.
#[cfg(unix)]
const ASYNC_SIGNALS: [libc::c_int; 9] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGCHLD,
    libc::SIGWINCH,
];

/// True when the current thread is inside a tokio runtime (an async context
/// or a netchan callback), where blocking would deadlock.
pub fn in_async_context() -> bool {
    Handle::try_current().is_ok()
}

/// Stops netchan's own runtime, waiting up to `timeout` for its threads.
/// Endpoints still open on it stop working: every call on them fails at
/// once with `CLOSED`. A later endpoint starts a fresh
/// runtime. Does nothing when called from inside a runtime (it cannot wait
/// there); returns whether a runtime was stopped.
pub fn shutdown(timeout: Duration) -> bool {
    if in_async_context() {
        return false;
    }
    let rt = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
    match rt {
        Some((rt, g)) if g == fork_generation() => {
            // First, so that endpoints on it refuse calls from now on
            // instead of spawning onto a runtime that is stopping.
            SHUTDOWNS.fetch_add(1, SeqCst);
            rt.shutdown_timeout(timeout);
            true
        }
        // The parent's, inherited by fork: nothing of it runs here.
        Some((rt, _)) => {
            std::mem::forget(rt);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer shapes its pauses (thread yields) only on netchan's own
    /// threads; on a program's runtime it yields as a task.
    #[test]
    fn only_netchans_own_threads_count_as_its_own() {
        assert!(!on_own_thread());
        let own = own_handle().expect("runtime");
        assert!(own.block_on(async { tokio::spawn(async { on_own_thread() }).await.unwrap() }));
        let theirs = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert!(!theirs.block_on(async { tokio::spawn(async { on_own_thread() }).await.unwrap() }));
    }
}
