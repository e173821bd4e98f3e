//! The one way in from threads outside any async runtime: C callers,
//! Python threads, a Kotlin thread, a plain Rust `main`.
//!
//! A [`Wait`] polls a netchan future **on the calling thread**, inside the
//! endpoint's runtime context (so its timers and sockets work), with a waker
//! that unparks that thread:
//!
//! 1. the first poll is the fast path: a publish that finds room, a message
//!    already queued, return without waiting, allocating or touching another
//!    thread;
//! 2. while the future is pending, it is polled again without pause for up to
//!    [`Config::busy_poll`](crate::Config::busy_poll) (yielding the CPU
//!    between polls), because waking a parked thread costs tens of
//!    microseconds on a virtual machine (its idle virtual CPU is halted);
//! 3. then the thread parks until the runtime thread that made progress
//!    (read the reply, freed room) unparks it, or the deadline passes.
//!
//! No runtime task is spawned and no channel is used: a request answered
//! from a peer costs one thread hand-off (the reader that got the reply
//! unparks the caller), and none inside the busy-poll window. A wait can be
//! resumed after its deadline ([`Wait::until`] again): bindings wait in
//! slices to check for signals (Python's Ctrl-C) between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::error::{Error, ErrorCode, Result};
use crate::runtime::Lineage;

/// Parks the waiting thread and wakes it: a flag under a mutex and a
/// condition variable, as tokio's own `block_on` parks. (Not
/// `std::thread::park`: that needs `std::thread::current()`, whose handle
/// for a C program's main thread is never freed, which leak checkers
/// report.)
#[derive(Default)]
struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    /// Sleeps until woken or `deadline` (`None`: no limit); a wake that came
    /// before the call returns at once.
    fn park(&self, deadline: Option<Instant>) {
        let mut n = self.notified.lock().unwrap_or_else(|p| p.into_inner());
        while !*n {
            match deadline {
                None => n = self.cv.wait(n).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    n = self
                        .cv
                        .wait_timeout(n, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        *n = false;
    }
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.notified.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }
}

thread_local! {
    /// This thread's parker and its waker, made once: a wait costs no
    /// allocation.
    static THREAD_PARKER: (Arc<Parker>, Waker) = {
        let p = Arc::new(Parker::default());
        (p.clone(), Waker::from(p))
    };
}

/// Runs netchan futures to completion from threads outside any async
/// runtime. Cheap to clone; get one from
/// [`Endpoint::blocker`](crate::Endpoint::blocker) (or a subscription's or
/// service's).
#[derive(Clone, Debug)]
pub struct Blocker {
    rt: Handle,
    busy_poll: Duration,
    lineage: Lineage,
}

impl Blocker {
    pub(crate) fn new(rt: Handle, busy_poll: Duration, lineage: Lineage) -> Blocker {
        Blocker {
            rt,
            busy_poll,
            lineage,
        }
    }

    /// Starts waiting on `fut` from this thread.
    ///
    /// Errors: `WOULD_DEADLOCK` inside an async runtime or a netchan
    /// callback (`.await` the future there); `CLOSED` if the endpoint's
    /// runtime is gone (after `fork()` or `runtime::shutdown`).
    pub fn wait<'f, F: Future + ?Sized>(&'f self, fut: Pin<&'f mut F>) -> Result<Wait<'f, F>> {
        self.check()?;
        Ok(Wait {
            blocker: self,
            fut,
            spin_until: None,
        })
    }

    /// Whether this thread may block on the endpoint's futures: the errors
    /// of [`Blocker::wait`], for a caller that does part of its work on the
    /// thread before it waits (a publish's first sweep).
    pub(crate) fn check(&self) -> Result<()> {
        if Handle::try_current().is_ok() {
            return Err(Error::new(
                ErrorCode::WouldDeadlock,
                "a blocking call from an async context or a netchan callback; await the future instead",
            ));
        }
        if let Some(why) = self.lineage.gone() {
            return Err(Error::new(ErrorCode::Closed, why));
        }
        Ok(())
    }

    /// Runs `fut` to completion on this thread (see [`Blocker::wait`]).
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        let mut fut = std::pin::pin!(fut);
        let mut w = self.wait(fut.as_mut())?;
        loop {
            if let Some(v) = w.until(None) {
                return Ok(v);
            }
        }
    }

    /// Runs `fut` on this thread for at most `timeout` (`None`: no limit);
    /// `Ok(None)` if it did not finish in time (it is then dropped, which
    /// cancels it).
    pub fn block_on_timeout<F: Future>(
        &self,
        fut: F,
        timeout: Option<Duration>,
    ) -> Result<Option<F::Output>> {
        let mut fut = std::pin::pin!(fut);
        let mut w = self.wait(fut.as_mut())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        Ok(w.until(deadline))
    }
}

/// A future being waited on from a plain thread (see the [module
/// docs](self)).
pub struct Wait<'f, F: Future + ?Sized> {
    blocker: &'f Blocker,
    fut: Pin<&'f mut F>,
    /// End of the busy-poll window, from the first poll that was pending.
    spin_until: Option<Instant>,
}

impl<F: Future + ?Sized> Wait<'_, F> {
    /// Polls the future until it is ready (`Some`) or `deadline` passes
    /// (`None`; `until` may be called again, the busy-poll window is not
    /// restarted). `None` as deadline waits as long as it takes.
    pub fn until(&mut self, deadline: Option<Instant>) -> Option<F::Output> {
        THREAD_PARKER.with(|(parker, waker)| {
            let mut cx = Context::from_waker(waker);
            loop {
                let polled = {
                    let _in_runtime = self.blocker.rt.enter();
                    self.fut.as_mut().poll(&mut cx)
                };
                if let Poll::Ready(v) = polled {
                    // A wake left over (it came while polling) only makes
                    // this thread's next park return at once and poll again.
                    return Some(v);
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                let spin_until = *self
                    .spin_until
                    .get_or_insert_with(|| now + self.blocker.busy_poll);
                if now < spin_until {
                    // Busy poll: give the CPU to a runnable thread first
                    // (the runtime worker reading the reply may be waiting
                    // for this core), then poll again.
                    std::thread::yield_now();
                    continue;
                }
                parker.park(deadline);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocker(busy: Duration) -> (tokio::runtime::Runtime, Blocker) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let b = Blocker::new(
            rt.handle().clone(),
            busy,
            crate::runtime::Lineage::current(),
        );
        (rt, b)
    }

    #[test]
    fn a_ready_future_returns_from_the_first_poll() {
        let (_rt, b) = blocker(Duration::ZERO);
        assert_eq!(b.block_on(async { 7 }).unwrap(), 7);
    }

    #[test]
    fn a_thread_parked_on_a_future_is_woken_by_the_runtime_thread_that_completes_it() {
        let (rt, b) = blocker(Duration::ZERO);
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(5);
        });
        assert_eq!(b.block_on(rx).unwrap().unwrap(), 5);
    }

    #[test]
    fn timers_work_on_the_waiting_thread_and_a_deadline_leaves_the_future_to_wait_again() {
        let (_rt, b) = blocker(Duration::from_micros(50));
        // Made lazily, as netchan's futures make their timers: on first poll.
        let mut sleep = std::pin::pin!(async {
            tokio::time::sleep(Duration::from_millis(30)).await;
        });
        let mut w = b.wait(sleep.as_mut()).unwrap();
        assert!(w.until(Some(Instant::now())).is_none());
        assert!(w
            .until(Some(Instant::now() + Duration::from_millis(1)))
            .is_none());
        assert!(w.until(None).is_some());
    }

    #[test]
    fn a_timeout_ends_the_wait_with_none() {
        let (_rt, b) = blocker(Duration::ZERO);
        let never = std::future::pending::<()>();
        let r = b
            .block_on_timeout(never, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(r.is_none());
    }

    #[test]
    fn waiting_inside_a_runtime_would_deadlock_and_is_refused() {
        let (rt, b) = blocker(Duration::ZERO);
        let e = rt.block_on(async { b.block_on(async {}).unwrap_err() });
        assert_eq!(e.code(), ErrorCode::WouldDeadlock);
    }
}
