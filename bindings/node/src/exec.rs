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
//! While any task is pending the thread-safe function is ref'd, so Node stays
//! alive for a pending request or an open subscription; with none it is
//! unref'd. When Node tears the environment down it finalizes the
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

use napi::bindgen_prelude::*;
use napi::sys;
use tokio::runtime::Handle;

use crate::Code;

/// Polls a pending future on the JS thread; true once it settled its promise.
type Task = Box<dyn FnMut(&mut Context<'_>, sys::napi_env) -> bool>;

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

// The raw thread-safe function may be called from any thread; it is only
// called with the queue locked and `closed` unset.
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
    tasks: RefCell<HashMap<u64, (Task, Waker)>>,
    next_id: Cell<u64>,
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
    let data = Arc::into_raw(shared.clone()) as *mut c_void;
    unsafe {
        check(
            sys::napi_create_string_utf8(env, c"netchan".as_ptr(), 7, &mut name),
            "napi_create_string_utf8",
        )?;
        let st = sys::napi_create_threadsafe_function(
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
        );
        if st != sys::Status::napi_ok {
            drop(Arc::from_raw(data as *const Shared));
            check(st, "napi_create_threadsafe_function")?;
        }
        check(
            sys::napi_unref_threadsafe_function(env, tsfn),
            "napi_unref_threadsafe_function",
        )?;
    }
    shared.q.lock().unwrap_or_else(|p| p.into_inner()).tsfn = tsfn;
    let e = Rc::new(Exec {
        shared,
        tsfn,
        tasks: RefCell::new(HashMap::new()),
        next_id: Cell::new(1),
        refd: Cell::new(false),
    });
    EXEC.with(|x| *x.borrow_mut() = Some(e.clone()));
    Ok(e)
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
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
        let Some((mut task, waker)) = e.tasks.borrow_mut().remove(&id) else {
            continue; // woken twice, already done
        };
        if !task(&mut Context::from_waker(&waker), env) {
            e.tasks.borrow_mut().insert(id, (task, waker));
        }
    }
    e.update_ref(env);
}

impl Exec {
    /// Keeps Node alive exactly while tasks are pending.
    fn update_ref(&self, env: sys::napi_env) {
        let want = !self.tasks.borrow().is_empty();
        if want != self.refd.get() {
            self.refd.set(want);
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
            .and_then(|v| unsafe { V::to_napi_value(env, v) })
        {
            Ok(v) => Ok(v),
            Err(e) => Err(unsafe { JsError::from(e).into_value(env) }),
        },
    };
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
    let raw = env.raw();
    let e = exec(raw)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(
        unsafe { sys::napi_create_promise(raw, &mut deferred, &mut promise) },
        "napi_create_promise",
    )?;
    let rt = rt.clone();
    let mut fut: Pin<Box<F>> = Box::pin(fut);
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
        e.tasks.borrow_mut().insert(id, (task, waker));
        e.update_ref(raw);
    }
    Ok(Object::from_raw(raw, promise))
}
