//! Callbacks from C: the `{context, call, drop}` contract and the gate that
//! lets any handle be freed from inside any callback.
//!
//! A [`Slot`] owns one C callback. The netchan task that calls it holds the
//! slot's lock while calling; freeing the handle stops the slot:
//! - from a plain thread, it waits for a running call to return and runs
//!   `drop` before the free returns;
//! - from inside this slot's own call, it only marks the slot stopped; the
//!   task runs `drop` right after the call returns;
//! - from another netchan callback, it never waits (that could deadlock two
//!   callbacks freeing each other's handles): `drop` runs now if no call is
//!   running, else right after that call returns.
//!
//! In every case `drop` runs exactly once, after the last call, and no call
//! starts after the slot is stopped.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};

/// The `context` pointer and `drop` function of a C callback. Dropping it
/// runs `drop(context)` once.
pub(crate) struct Context {
    pub ptr: *mut c_void,
    drop_fn: Option<unsafe extern "C" fn(*mut c_void)>,
}

// SAFETY: the documented contract of every callback is that `context` may be
// used from any thread (calls may run on netchan threads concurrently).
unsafe impl Send for Context {}
// SAFETY: as for Send: the contract allows concurrent use from any thread.
unsafe impl Sync for Context {}

impl Context {
    pub fn new(ptr: *mut c_void, drop_fn: Option<unsafe extern "C" fn(*mut c_void)>) -> Context {
        Context { ptr, drop_fn }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(d) = self.drop_fn.take() {
            // SAFETY: the caller gave us this function for this context.
            unsafe { d(self.ptr) }
        }
    }
}

thread_local! {
    /// The slot whose callback this thread is running, if any.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Holds one C callback; see the module docs.
pub(crate) struct Slot<T> {
    cb: Mutex<Option<T>>,
    stopped: AtomicBool,
    /// Stopped by someone who did not wait: the caller running the callback
    /// runs `drop` when it leaves.
    orphaned: AtomicBool,
}

/// The running-call lock on a slot, with the thread marked as inside it.
pub(crate) struct Calling<'a, T> {
    slot: &'a Slot<T>,
    guard: Option<MutexGuard<'a, Option<T>>>,
    prev: usize,
}

impl<T> Calling<'_, T> {
    /// The callback, unless the slot was stopped (then make no more calls).
    pub fn get(&self) -> Option<&T> {
        if self.slot.stopped.load(SeqCst) {
            return None;
        }
        self.guard.as_ref().and_then(|g| g.as_ref())
    }
}

impl<T> Drop for Calling<'_, T> {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.prev));
        let mut g = self.guard.take();
        // Stopped by someone who could not wait for us: we run `drop`.
        let cb = if self.slot.orphaned.load(SeqCst) {
            g.as_mut().and_then(|g| g.take())
        } else {
            None
        };
        drop(g);
        drop(cb);
    }
}

impl<T> Slot<T> {
    pub fn new(cb: T) -> Slot<T> {
        Slot {
            cb: Mutex::new(Some(cb)),
            stopped: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
        }
    }

    fn id(&self) -> usize {
        self as *const Slot<T> as usize
    }

    /// Locks the slot for a run of calls. `None` once stopped.
    pub fn enter(&self) -> Option<Calling<'_, T>> {
        if self.stopped.load(SeqCst) {
            return None;
        }
        let guard = self.cb.lock().unwrap_or_else(|p| p.into_inner());
        let prev = CURRENT.try_with(|c| c.replace(self.id())).unwrap_or(0);
        let calling = Calling {
            slot: self,
            guard: Some(guard),
            prev,
        };
        calling.get()?;
        Some(calling)
    }

    /// Stops the slot: no call starts after this; `drop` runs exactly once,
    /// after the last call (see the module docs for when).
    pub fn stop(&self) {
        self.stopped.store(true, SeqCst);
        if CURRENT.try_with(|c| c.get()).unwrap_or(0) == self.id() {
            // Inside our own call: Calling::drop finishes the job.
            self.orphaned.store(true, SeqCst);
            return;
        }
        // If nobody takes it in time, the slot's own drop (when the task and
        // the handle are both gone) still runs `drop` exactly once.
        let cb = if netchan::runtime::in_async_context() {
            match self.cb.try_lock() {
                Ok(mut g) => g.take(),
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    self.orphaned.store(true, SeqCst);
                    None
                }
            }
        } else {
            self.cb.lock().unwrap_or_else(|p| p.into_inner()).take()
        };
        drop(cb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn count_drop(_: *mut c_void) {
        DROPS.fetch_add(1, SeqCst);
    }

    #[test]
    fn stop_from_inside_the_call_defers_drop_to_after_it() {
        DROPS.store(0, SeqCst);
        let slot = Arc::new(Slot::new(Context::new(
            std::ptr::null_mut(),
            Some(count_drop),
        )));
        {
            let c = slot.enter().unwrap();
            assert!(c.get().is_some());
            slot.stop();
            assert!(c.get().is_none());
            assert_eq!(DROPS.load(SeqCst), 0);
        }
        assert_eq!(DROPS.load(SeqCst), 1);
        assert!(slot.enter().is_none());
        slot.stop();
        drop(slot);
        assert_eq!(DROPS.load(SeqCst), 1);
    }
}
