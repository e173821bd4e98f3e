//! The promise bridge: core futures polled on the JS thread.
//!
//! A native call that returns a promise polls its core future at once, on
//! the JS thread (a request is written to the socket right there). If the
//! future is pending, it is kept here and its waker, called by a core
//! runtime thread when the future can progress (a reply arrived, a timer
//! fired), queues the task and makes one thread-safe call back to the JS
//! thread, which polls it again and settles the promise when it is done.
//!
//! So a pending future costs no runtime task and no thread-safe function of
//! its own: one thread-safe function per JS thread carries every wake, and
//! wakes that come together are handled in one call. A completion is one
//! hop (the runtime thread that read the reply wakes the event loop), which
//! is what request/reply latency depends on.
//!
//! Busy polling ([`promise_spin`], for a request awaiting its reply and a
//! service awaiting its next request after it answered): the core's
//! `Config::busy_poll` through the core's own blocking entry point
//! (`netchan::blocking::Blocker`: first poll, then polling without pause
//! for the window), on the JS thread, before the future is left to the
//! wake above. What arrives within the window settles the promise before
//! the native call returns. The JS thread never parks there: at the end of
//! the window the future waits like any other. There is no other poll loop
//! here or in `netchan.js`.
//!
//! While any task is pending the thread-safe function is ref'd, so Node stays
//! alive for a pending request or an open subscription; with none it is
//! unref'd. A task started in a [`Hold`] (the waits of one endpoint's
//! subscriptions and services) counts only while its hold is ref'd
//! (`ep.unref()` lets the process exit while only they are left). When Node tears the environment down it finalizes the
//! thread-safe function; wakes after that are ignored.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::sys;
use netchan::blocking::Blocker;
use tokio::runtime::Handle;

use crate::Code;

/// Polls a pending future on the JS thread; true once it settled its promise.
type Task = Box<dyn FnMut(&mut Context<'_>, sys::napi_env) -> bool>;

/// A pending task: its poll function, its waker and its hold, if any.
struct Entry {
    task: Task,
    waker: Waker,
    hold: Option<Rc<HoldState>>,
}

/// Whether the pending waits of one endpoint's subscriptions and services
/// keep Node alive: they do until [`Hold::set_ref`] says otherwise
/// (`ep.unref()`). Lives on its JS thread (not `Send`).
#[derive(Clone, Default)]
pub struct Hold(Rc<HoldState>);

#[derive(Default)]
struct HoldState {
    /// `ep.unref()` was called (and `ep.ref()` not since).
    unref: Cell<bool>,
    /// Tasks of this hold now pending.
    pending: Cell<usize>,
}

impl Hold {
    /// Makes this hold's pending and future tasks keep Node alive (`true`)
    /// or not; called on the JS thread that made the hold.
    pub fn set_ref(&self, env: &Env, keep: bool) -> Result<()> {
        if self.0.unref.get() != keep {
            return Ok(());
        }
        self.0.unref.set(!keep);
        let n = self.0.pending.get();
        // Tasks pending means this thread's executor exists, unless Node
        // finalized it (teardown), which dropped them uncounted.
        let Some(e) = EXEC.with(|x| x.borrow().clone()) else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        let strong = e.strong.get();
        e.strong.set(if keep {
            strong + n
        } else {
            strong.saturating_sub(n)
        });
        e.update_ref(env.raw());
        Ok(())
    }
}

/// What runtime threads share with the JS thread.
struct Shared {
    q: Mutex<Queue>,
}

struct Queue {
    /// Tasks woken since the last call back.
    ready: Vec<u64>,
    /// A call back is on its way.
    scheduled: bool,
    /// Node finalized the thread-safe function (environment teardown).
    closed: bool,
    tsfn: sys::napi_threadsafe_function,
}

// SAFETY: the only field that is not `Send` is the raw thread-safe function,
// a handle Node-API lets any thread call (`napi_call_threadsafe_function` is
// the one thread-safe call); it is only called with the queue locked and
// `closed` unset, so never after Node finalized it.
unsafe impl Send for Queue {}

struct TaskWaker {
    id: u64,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let mut q = self.shared.q.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed {
            return;
        }
        q.ready.push(self.id);
        if !q.scheduled {
            q.scheduled = true;
            // SAFETY: the function is alive until its finalizer sets
            // `closed`, which takes this lock.
            unsafe {
                sys::napi_call_threadsafe_function(
                    q.tsfn,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                );
            }
        }
    }
}

/// The executor of one JS thread (the main thread or a worker).
struct Exec {
    shared: Arc<Shared>,
    tsfn: sys::napi_threadsafe_function,
    tasks: RefCell<HashMap<u64, Entry>>,
    next_id: Cell<u64>,
    /// Pending tasks that keep Node alive: those without a hold, and those
    /// of ref'd holds.
    strong: Cell<usize>,
    refd: Cell<bool>,
}

thread_local! {
    static EXEC: RefCell<Option<Rc<Exec>>> = const { RefCell::new(None) };
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("{what} failed ({status})"),
        ))
    }
}

fn exec(env: sys::napi_env) -> Result<Rc<Exec>> {
    if let Some(e) = EXEC.with(|e| e.borrow().clone()) {
        return Ok(e);
    }
    let shared = Arc::new(Shared {
        q: Mutex::new(Queue {
            ready: Vec::new(),
            scheduled: false,
            closed: false,
            tsfn: ptr::null_mut(),
        }),
    });
    let mut name = ptr::null_mut();
    let mut tsfn = ptr::null_mut();
    // The finalizer's data: one strong count, given back in `finalize`.
    check(
        // SAFETY: `env` is the environment of the native call running on
        // this, its JS thread; the out-pointer points to a local; the string
        // is 7 bytes long.
        unsafe { sys::napi_create_string_utf8(env, c"netchan".as_ptr(), 7, &mut name) },
        "napi_create_string_utf8",
    )?;
    let data = Arc::into_raw(shared.clone()) as *mut c_void;
    // SAFETY: `env` as above, `name` a string made in it, `tsfn` a local;
    // `finalize` and `call_js` have the signatures Node calls them with,
    // and `data` is what `finalize` expects (an `Arc<Shared>` count).
    let st = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            data,
            Some(finalize),
            ptr::null_mut(),
            Some(call_js),
            &mut tsfn,
        )
    };
    if st != sys::Status::napi_ok {
        // SAFETY: the function was not created, so `finalize` will never
        // take back the strong count `data` holds: take it back here, once.
        drop(unsafe { Arc::from_raw(data as *const Shared) });
        check(st, "napi_create_threadsafe_function")?;
    }
    check(
        // SAFETY: `tsfn` was just created in this `env`, on its thread.
        unsafe { sys::napi_unref_threadsafe_function(env, tsfn) },
        "napi_unref_threadsafe_function",
    )?;
    shared.q.lock().unwrap_or_else(|p| p.into_inner()).tsfn = tsfn;
    let e = Rc::new(Exec {
        shared,
        tsfn,
        tasks: RefCell::new(HashMap::new()),
        next_id: Cell::new(1),
        strong: Cell::new(0),
        refd: Cell::new(false),
    });
    EXEC.with(|x| *x.borrow_mut() = Some(e.clone()));
    Ok(e)
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc::into_raw` given to the thread-safe
    // function in `exec`, and Node finalizes a function once: this takes
    // back that one strong count, once.
    let shared = unsafe { Arc::from_raw(data as *const Shared) };
    let mut q = shared.q.lock().unwrap_or_else(|p| p.into_inner());
    q.closed = true;
    q.ready.clear();
    drop(q);
    // Pending tasks can never settle now; drop them with the executor.
    let _ = EXEC.try_with(|x| x.borrow_mut().take());
}

unsafe extern "C" fn call_js(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    _context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() {
        return; // the environment is being torn down
    }
    let Some(e) = EXEC.with(|x| x.borrow().clone()) else {
        return;
    };
    let ready = {
        let mut q = e.shared.q.lock().unwrap_or_else(|p| p.into_inner());
        // Wakes from now on schedule a new call.
        q.scheduled = false;
        std::mem::take(&mut q.ready)
    };
    for id in ready {
        // Out of the map while it runs: settling a promise may run JS that
        // starts new tasks.
        let Some(mut entry) = e.tasks.borrow_mut().remove(&id) else {
            continue; // woken twice, already done
        };
        if (entry.task)(&mut Context::from_waker(&entry.waker), env) {
            e.forget(entry.hold.as_deref());
        } else {
            e.tasks.borrow_mut().insert(id, entry);
        }
    }
    e.update_ref(env);
}

impl Exec {
    /// Counts a task now pending in its hold (if any).
    fn count(&self, hold: Option<&HoldState>) {
        if let Some(h) = hold {
            h.pending.set(h.pending.get() + 1);
            if h.unref.get() {
                return;
            }
        }
        self.strong.set(self.strong.get() + 1);
    }

    /// Undoes [`Exec::count`] for a task that settled.
    fn forget(&self, hold: Option<&HoldState>) {
        if let Some(h) = hold {
            h.pending.set(h.pending.get() - 1);
            if h.unref.get() {
                return;
            }
        }
        self.strong.set(self.strong.get() - 1);
    }

    /// Keeps Node alive exactly while tasks that count are pending.
    fn update_ref(&self, env: sys::napi_env) {
        let want = self.strong.get() > 0;
        if want != self.refd.get() {
            self.refd.set(want);
            // SAFETY: called on the JS thread with its `env` (from a native
            // call or `call_js`); the function is not finalized while this
            // executor exists (`finalize` drops the executor).
            unsafe {
                if want {
                    sys::napi_ref_threadsafe_function(env, self.tsfn);
                } else {
                    sys::napi_unref_threadsafe_function(env, self.tsfn);
                }
            }
        }
    }
}

/// A JS `Error` with the core's code and detail.
fn core_error(env: sys::napi_env, e: netchan::Error) -> sys::napi_value {
    // SAFETY: `env` is the JS thread's environment, passed down from
    // `call_js` or a native call on that thread.
    unsafe {
        JsError::from(napi::Error::new(
            Code(e.code().name()),
            e.detail().to_string(),
        ))
        .into_value(env)
    }
}

/// Settles `deferred` with the outcome (on the JS thread).
fn settle<T, V, C>(
    env: sys::napi_env,
    deferred: sys::napi_deferred,
    r: netchan::Result<T>,
    convert: C,
) where
    V: ToNapiValue,
    C: FnOnce(&Env, T) -> Result<V>,
{
    let value = match r {
        Err(e) => Err(core_error(env, e)),
        Ok(v) => match convert(&Env::from_raw(env), v)
            // SAFETY: `env` is the JS thread's environment (see `core_error`).
            .and_then(|v| unsafe { V::to_napi_value(env, v) })
        {
            Ok(v) => Ok(v),
            // SAFETY: as above.
            Err(e) => Err(unsafe { JsError::from(e).into_value(env) }),
        },
    };
    // SAFETY: `deferred` was made by `napi_create_promise` in this `env`
    // and is settled once: `settle` runs once per promise (its `convert` is
    // taken), and Node frees the deferred when it is settled.
    unsafe {
        match value {
            Ok(v) => sys::napi_resolve_deferred(env, deferred, v),
            Err(v) => sys::napi_reject_deferred(env, deferred, v),
        };
    }
}

/// Returns a promise settled with `convert(value)` or rejected with the core
/// error (its `code` set). `fut` is polled on this (the JS) thread, inside
/// the core runtime's context; see the module docs.
pub fn promise<'env, T, V, F, C>(
    env: &'env Env,
    rt: &Handle,
    fut: F,
    convert: C,
) -> Result<Object<'env>>
where
    T: 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = netchan::Result<T>> + 'static,
    C: FnOnce(&Env, T) -> Result<V> + 'static,
{
    start(env, rt, None, None, fut, convert)
}

/// As [`promise`], for the wait of a subscription or service: it keeps Node
/// alive only while `hold` is ref'd.
pub fn held_promise<'env, T, V, F, C>(
    env: &'env Env,
    rt: &Handle,
    hold: &Hold,
    fut: F,
    convert: C,
) -> Result<Object<'env>>
where
    T: 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = netchan::Result<T>> + 'static,
    C: FnOnce(&Env, T) -> Result<V> + 'static,
{
    start(env, rt, None, Some(hold), fut, convert)
}

/// A busy-poll window: the core's one way in from a foreign thread
/// ([`Blocker`]) and how long it may spin (the endpoint's
/// `Config::busy_poll`).
pub type Spin<'a> = (&'a Blocker, Duration);

/// As [`promise`], but first waits through the core's [`Blocker`] for up to
/// the window (its first poll, then its busy poll), on this thread: a reply
/// or request that arrives meanwhile settles the promise before this call
/// returns, without waking a sleeping event loop (tens of microseconds on a
/// virtual machine). The JS thread never parks: after the window the future
/// waits as in [`promise`]. A zero window is [`promise`].
pub fn promise_spin<'env, T, V, F, C>(
    env: &'env Env,
    rt: &Handle,
    spin: Spin<'_>,
    fut: F,
    convert: C,
) -> Result<Object<'env>>
where
    T: 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = netchan::Result<T>> + 'static,
    C: FnOnce(&Env, T) -> Result<V> + 'static,
{
    start(env, rt, Some(spin), None, fut, convert)
}

/// As [`promise_spin`], kept pending only while `hold` is ref'd (see
/// [`held_promise`]).
pub fn held_promise_spin<'env, T, V, F, C>(
    env: &'env Env,
    rt: &Handle,
    spin: Spin<'_>,
    hold: &Hold,
    fut: F,
    convert: C,
) -> Result<Object<'env>>
where
    T: 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = netchan::Result<T>> + 'static,
    C: FnOnce(&Env, T) -> Result<V> + 'static,
{
    start(env, rt, Some(spin), Some(hold), fut, convert)
}

fn start<'env, T, V, F, C>(
    env: &'env Env,
    rt: &Handle,
    spin: Option<Spin<'_>>,
    hold: Option<&Hold>,
    fut: F,
    convert: C,
) -> Result<Object<'env>>
where
    T: 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = netchan::Result<T>> + 'static,
    C: FnOnce(&Env, T) -> Result<V> + 'static,
{
    let raw = env.raw();
    let e = exec(raw)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(
        // SAFETY: `raw` is the environment of this native call, on its
        // thread; the out-pointers point to locals.
        unsafe { sys::napi_create_promise(raw, &mut deferred, &mut promise) },
        "napi_create_promise",
    )?;
    let rt = rt.clone();
    let mut fut: Pin<Box<F>> = Box::pin(fut);
    if let Some((blocker, window)) = spin.filter(|(_, w)| !w.is_zero()) {
        // The deadline ends the wait where the core would park.
        let deadline = Instant::now() + window;
        // `wait` refuses only where this thread is inside a runtime or the
        // runtime is gone; then the plain path below reports what happens.
        let done = match blocker.wait(fut.as_mut()) {
            Ok(mut w) => w.until(Some(deadline)),
            Err(_) => None,
        };
        if let Some(r) = done {
            settle(raw, deferred, r, convert);
            return Ok(Object::from_raw(raw, promise));
        }
        // Still pending: the poll below registers this executor's waker in
        // place of the core's parker.
    }
    let mut convert = Some(convert);
    let mut task: Task = Box::new(move |cx, env| {
        let r = {
            let _enter = rt.enter();
            fut.as_mut().poll(cx)
        };
        match r {
            Poll::Pending => false,
            Poll::Ready(r) => {
                if let Some(c) = convert.take() {
                    settle(env, deferred, r, c);
                }
                true
            }
        }
    });
    let id = e.next_id.get();
    e.next_id.set(id + 1);
    let waker = Waker::from(Arc::new(TaskWaker {
        id,
        shared: e.shared.clone(),
    }));
    if !task(&mut Context::from_waker(&waker), raw) {
        let hold = hold.map(|h| h.0.clone());
        e.count(hold.as_deref());
        e.tasks.borrow_mut().insert(id, Entry { task, waker, hold });
        e.update_ref(raw);
    }
    Ok(Object::from_raw(raw, promise))
}
