//! The runtime netchan runs on.
//!
//! An endpoint created inside a tokio runtime uses that runtime. Otherwise it
//! uses one process-wide multi-thread runtime, started on first use and
//! stopped by [`shutdown`] (which C programs call before exit so that leak
//! checkers see every worker thread joined).

use std::future::Future;
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: Lazy<Mutex<Option<Runtime>>> = Lazy::new(|| Mutex::new(None));

/// The handle endpoints spawn on: the caller's runtime if there is one, else
/// netchan's own.
pub(crate) fn handle() -> std::io::Result<Handle> {
    if let Ok(h) = Handle::try_current() {
        return Ok(h);
    }
    own_handle()
}

/// netchan's own runtime, started if needed.
pub(crate) fn own_handle() -> std::io::Result<Handle> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.handle().clone());
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("netchan")
        .enable_all()
        .build()?;
    let h = rt.handle().clone();
    *slot = Some(rt);
    Ok(h)
}

/// True when the current thread is inside a tokio runtime (an async context
/// or a netchan callback), where blocking would deadlock.
pub fn in_async_context() -> bool {
    Handle::try_current().is_ok()
}

/// Stops netchan's own runtime, waiting up to `timeout` for its threads.
/// Endpoints still open on it stop working. A later endpoint starts a fresh
/// runtime. Does nothing when called from inside a runtime (it cannot wait
/// there); returns whether a runtime was stopped.
pub fn shutdown(timeout: Duration) -> bool {
    if in_async_context() {
        return false;
    }
    let rt = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
    match rt {
        Some(rt) => {
            rt.shutdown_timeout(timeout);
            true
        }
        None => false,
    }
}

/// Awaits `fut`, busy-polling it for up to `window` (see
/// [`Config::busy_poll`](crate::Config::busy_poll)) when polled outside a
/// runtime task: while the window lasts, a pending poll wakes its own waker,
/// so an executor such as `block_on` polls again at once instead of parking
/// the thread. Inside a task, or with a zero window, it is a plain await.
pub(crate) async fn busy_poll<F: Future>(window: Duration, fut: F) -> F::Output {
    if window.is_zero() || tokio::task::try_id().is_some() {
        return fut.await;
    }
    let mut fut = std::pin::pin!(fut);
    let mut since = None;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        let now = Instant::now();
        if now.duration_since(*since.get_or_insert(now)) < window {
            // Give the CPU to a runnable thread first: the runtime worker
            // that reads the reply may be waiting for this core.
            std::thread::yield_now();
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}
