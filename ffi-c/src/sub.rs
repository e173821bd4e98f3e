//! `netchan_subscription` (pull or callback) and `netchan_message`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use netchan::{Message, Subscription};

use crate::boundary::{
    arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back, write_out,
};
use crate::callback::{Context, Slot};
use crate::endpoint::{arg_endpoint, netchan_endpoint, runtime_stopped, stopped_error};
use crate::error::{netchan_result, FfiError};
use crate::options::netchan_subscribe_options;
use crate::types::{netchan_slice, netchan_str};

/// A received message. Owned ones (from `netchan_subscription_recv()`,
/// `_try_recv()` or `netchan_message_clone()`) are freed with
/// `netchan_message_free()`; the one a message callback gets is borrowed for
/// the call. Immutable, so thread-safe.
pub struct netchan_message {
    pub(crate) msg: Message,
}

/// The concrete path the message was published on, valid as long as the
/// message. `{NULL, 0}` if `message` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_message_path(message: *const netchan_message) -> netchan_str {
    // SAFETY: `message` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { message.as_ref() } {
        Some(m) => netchan_str::from(m.msg.path()),
        None => netchan_str::empty(),
    })
}

/// The payload, valid as long as the message. `{NULL, 0}` if `message` is
/// NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_message_payload(message: *const netchan_message) -> netchan_slice {
    ffi_boundary_or(netchan_slice::empty(), || {
        // SAFETY: `message` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
        match unsafe { message.as_ref() } {
            Some(m) => netchan_slice::from(m.msg.payload()),
            None => netchan_slice::empty(),
        }
    })
}

/// The name of the endpoint that published the message, valid as long as
/// the message. `{NULL, 0}` if `message` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_message_sender(message: *const netchan_message) -> netchan_str {
    // SAFETY: `message` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { message.as_ref() } {
        Some(m) => netchan_str::from(m.msg.sender()),
        None => netchan_str::empty(),
    })
}

/// Makes an owned copy of a message (cheap: the payload is shared), e.g. to
/// keep one a callback lent you. On success writes it to `*out`; free it
/// with `netchan_message_free()`. Errors: `NULL_ARGUMENT`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_message_clone(
    message: *const netchan_message,
    out: *mut *mut netchan_message,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `message` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let m = unsafe { arg_ref(message, "message") }?;
        arg_out(out, "out")?;
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, hand_out(netchan_message { msg: m.msg.clone() })) };
        Ok(())
    })
}

/// Frees an owned message. NULL, a message freed already, or a borrowed
/// message (the one a callback got) are ignored. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_message_free(message: *mut netchan_message) {
    // SAFETY: `message` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(message) }))
}

/// Receives the messages of `netchan_endpoint_subscribe_callback()`.
///
/// `call(context, message)` runs for every message, in order, one at a
/// time, on a netchan thread; `message` is borrowed for the call
/// (`netchan_message_clone()` keeps it). `call` never runs after `drop`,
/// and `drop(context)` runs exactly once after the last call: when the
/// subscription is freed, or when the endpoint closes. `call` must not
/// block for long (it holds up this subscription's delivery) and must not
/// throw (C++) or longjmp. It may call any netchan function, including
/// `netchan_subscription_free()` on its own subscription; blocking ones
/// return `WOULD_DEADLOCK`. `drop` may be NULL.
#[repr(C)]
pub struct netchan_message_callback {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called for each message; must not be NULL.
    pub call: Option<unsafe extern "C" fn(context: *mut c_void, message: *const netchan_message)>,
    /// Called once after the last call; may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

pub(crate) struct MessageCb {
    call: unsafe extern "C" fn(*mut c_void, *const netchan_message),
    ctx: Context,
}

/// A subscription. Free it with `netchan_subscription_free()`, which
/// unsubscribes. Thread-safe.
pub struct netchan_subscription {
    pub(crate) sub: Arc<Subscription>,
    slot: Option<Arc<Slot<MessageCb>>>,
    /// Its endpoint's runtime generation (see `endpoint::runtime_stopped`).
    generation: u64,
}

unsafe fn subscribe<'a>(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    options: *const netchan_subscribe_options,
) -> Result<(&'a netchan_endpoint, Subscription), FfiError> {
    // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
    let ep = unsafe { arg_endpoint(ep) }?;
    // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
    let pattern = unsafe { arg_str(pattern, "pattern") }?;
    // SAFETY: NULL or live options, per the contract.
    let sub = match unsafe { options.as_ref() } {
        Some(o) => ep.ep.subscribe_with(pattern, o.opts.clone())?,
        None => ep.ep.subscribe(pattern)?,
    };
    Ok((ep, sub))
}

/// Subscribes to `pattern` (`/`-separated; `*` matches one segment, `**`
/// any number) for pulling messages with `netchan_subscription_recv()` /
/// `_try_recv()`. Messages queue up from now on, within the options'
/// bounds.
///
/// `options` may be NULL (the endpoint's defaults); it is only read. On
/// success writes the subscription to `*out`; free it with
/// `netchan_subscription_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`,
/// `INVALID_ARGUMENT` (options), `CLOSED`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_subscribe(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    options: *const netchan_subscribe_options,
    out: *mut *mut netchan_subscription,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        // SAFETY: the caller's pointers are NULL or valid per this function's contract, which is subscribe's.
        let (ep, sub) = unsafe { subscribe(ep, pattern, options) }?;
        let h = hand_out(netchan_subscription {
            sub: Arc::new(sub),
            slot: None,
            generation: ep.generation,
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// Subscribes to `pattern` and runs `callback` for every message (see
/// `netchan_message_callback` for the threads and guarantees).
///
/// `callback` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns. `options` may be NULL.
/// On success writes the subscription to `*out`; free it with
/// `netchan_subscription_free()` (from any thread or callback) to stop.
///
/// Errors: `NULL_ARGUMENT` (also for `callback.call`), `INVALID_UTF8`,
/// `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_subscribe_callback(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    options: *const netchan_subscribe_options,
    callback: netchan_message_callback,
    out: *mut *mut netchan_subscription,
) -> netchan_result {
    let ctx = Context::new(callback.context, callback.drop);
    ffi_boundary(move || {
        let call = callback
            .call
            .ok_or_else(|| FfiError::null("callback.call"))?;
        arg_out(out, "out")?;
        // SAFETY: the caller's pointers are NULL or valid per this function's contract, which is subscribe's.
        let (ep, sub) = unsafe { subscribe(ep, pattern, options) }?;
        let sub = Arc::new(sub);
        let slot = Arc::new(Slot::new(MessageCb { call, ctx }));
        let (task_sub, task_slot) = (sub.clone(), slot.clone());
        ep.rt.spawn(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                batch.clear();
                if task_sub.recv_many(&mut batch, 256).await == 0 {
                    break;
                }
                let Some(calling) = task_slot.enter() else {
                    break;
                };
                for m in batch.drain(..) {
                    let Some(cb) = calling.get() else { break };
                    let msg = netchan_message { msg: m };
                    // SAFETY: the callback contract; `msg` lives for the call.
                    unsafe { (cb.call)(cb.ctx.ptr, &msg) };
                }
            }
            // Closed: no call can come any more.
            task_slot.stop();
        });
        let h = hand_out(netchan_subscription {
            sub,
            slot: Some(slot),
            generation: ep.generation,
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// Writes `m` to `out`, which every caller checked with `arg_out` first.
fn message_out(out: *mut *mut netchan_message, m: Message) {
    // SAFETY: every caller checked `out` with arg_out; it points to writable
    // storage per the calling function's contract.
    unsafe { write_out(out, hand_out(netchan_message { msg: m })) };
}

/// Takes the next queued message without waiting.
///
/// On `NETCHAN_RESULT_OK` writes it to `*out` (free it with
/// `netchan_message_free()`). Returns `NETCHAN_RESULT_EMPTY` when nothing is
/// queued, `CLOSED` once the subscription (or its endpoint) is closed and
/// its queue drained, `INVALID_ARGUMENT` for a callback subscription,
/// `NULL_ARGUMENT`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_try_recv(
    sub: *const netchan_subscription,
    out: *mut *mut netchan_message,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `sub` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let s = unsafe { arg_ref(sub, "sub") }?;
        let q = pull(s)?;
        arg_out(out, "out")?;
        match q.try_recv()? {
            Some(m) => message_out(out, m),
            None if runtime_stopped(s.generation) => return Err(stopped_error()),
            None => return Err(FfiError::new(netchan_result::Empty, "no message is queued")),
        }
        Ok(())
    })
}

fn pull(s: &netchan_subscription) -> Result<&Subscription, FfiError> {
    if s.slot.is_some() {
        return Err(FfiError::new(
            netchan_result::InvalidArgument,
            "a callback subscription delivers to its callback; it cannot be received from",
        ));
    }
    Ok(&s.sub)
}

/// Waits for the next message, at most `timeout_ms` milliseconds (negative:
/// no limit; 0: do not wait).
///
/// On `NETCHAN_RESULT_OK` writes it to `*out` (free it with
/// `netchan_message_free()`). Errors: `TIMEOUT` (nothing arrived in time),
/// `CLOSED` (the subscription or endpoint is closed and the queue drained),
/// `WOULD_DEADLOCK` (called from a netchan callback: use `try_recv`),
/// `INVALID_ARGUMENT` (a callback subscription), `NULL_ARGUMENT`.
/// Thread-safe: several threads may wait on one subscription; each message
/// goes to one of them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_recv(
    sub: *const netchan_subscription,
    timeout_ms: i64,
    out: *mut *mut netchan_message,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `sub` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let s = unsafe { arg_ref(sub, "sub") }?;
        let q = pull(s)?;
        arg_out(out, "out")?;
        if runtime_stopped(s.generation) {
            // No runtime to wait on (its timers are gone): what is queued,
            // then CLOSED.
            match q.try_recv()? {
                Some(m) => message_out(out, m),
                None => return Err(stopped_error()),
            }
            return Ok(());
        }
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        match q.recv_blocking(timeout)? {
            Some(m) => message_out(out, m),
            None => {
                return Err(FfiError::new(
                    netchan_result::Timeout,
                    format!("no message within {timeout_ms} ms"),
                ))
            }
        }
        Ok(())
    })
}

/// Takes up to `max` messages at once: what is queued, or, when nothing
/// is, waits at most `timeout_ms` milliseconds (negative: no limit; 0: do
/// not wait) for the first and takes what came with it. One lock and one
/// wakeup per batch rather than per message.
///
/// On `NETCHAN_RESULT_OK` writes `*count` (1 to `max`) messages to
/// `out[0..*count]`, in order; free each with `netchan_message_free()`.
/// Errors: `TIMEOUT` (nothing arrived in time; `*count` is 0), `CLOSED`
/// (closed and drained), `WOULD_DEADLOCK` (waiting from a netchan callback:
/// pass 0), `INVALID_ARGUMENT` (a callback subscription, or `max` 0),
/// `NULL_ARGUMENT`. Thread-safe: each message goes to one caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_recv_many(
    sub: *const netchan_subscription,
    timeout_ms: i64,
    out: *mut *mut netchan_message,
    max: usize,
    count: *mut usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `sub` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let s = unsafe { arg_ref(sub, "sub") }?;
        let q = pull(s)?;
        arg_out(out, "out")?;
        arg_out(count, "count")?;
        // SAFETY: `count` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(count, 0) };
        if max == 0 {
            return Err(FfiError::new(
                netchan_result::InvalidArgument,
                "max must be at least 1",
            ));
        }
        let mut v = Vec::new();
        q.try_recv_many(&mut v, max)?;
        if v.is_empty() {
            if runtime_stopped(s.generation) {
                return Err(stopped_error());
            }
            if timeout_ms == 0 {
                return Err(FfiError::new(
                    netchan_result::Timeout,
                    "no message is queued",
                ));
            }
            if netchan::runtime::in_async_context() {
                return Err(FfiError::new(
                    netchan_result::WouldDeadlock,
                    "recv_many would wait inside a netchan callback; pass a timeout of 0",
                ));
            }
            let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
            match q
                .blocker()
                .block_on_timeout(q.recv_many(&mut v, max), timeout)?
            {
                None => {
                    return Err(FfiError::new(
                        netchan_result::Timeout,
                        format!("no message within {timeout_ms} ms"),
                    ))
                }
                Some(0) => {
                    return Err(FfiError::new(
                        netchan_result::Closed,
                        "the subscription is closed",
                    ))
                }
                Some(_) => {}
            }
        }
        let n = v.len();
        for (i, m) in v.into_iter().enumerate() {
            // SAFETY: `out` points to at least `max` >= n writable pointers (the function's contract).
            unsafe { write_out(out.add(i), hand_out(netchan_message { msg: m })) };
        }
        // SAFETY: checked non-NULL above.
        unsafe { write_out(count, n) };
        Ok(())
    })
}

/// The subscription's pattern, valid until the subscription is freed.
/// `{NULL, 0}` if `sub` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_pattern(
    sub: *const netchan_subscription,
) -> netchan_str {
    // SAFETY: `sub` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { sub.as_ref() } {
        Some(s) => netchan_str::from(s.sub.pattern()),
        None => netchan_str::empty(),
    })
}

/// Messages dropped so far by the subscription's overflow policy; 0 if
/// `sub` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_dropped(sub: *const netchan_subscription) -> u64 {
    // SAFETY: `sub` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(0, || match unsafe { sub.as_ref() } {
        Some(s) => s.sub.dropped(),
        None => 0,
    })
}

fn stop(s: &netchan_subscription) {
    s.sub.close();
    if let Some(slot) = &s.slot {
        slot.stop();
    }
}

/// Unsubscribes now (peers are told). Messages already queued can still be
/// received, then `recv` reports `CLOSED`. For a callback subscription, no
/// call starts after this returns, and when called outside callbacks a
/// running call has finished and `drop` has run. Idempotent. The handle
/// stays valid: free it with `netchan_subscription_free()`.
///
/// Errors: `NULL_ARGUMENT`. Thread-safe; callable from any callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_close(
    sub: *const netchan_subscription,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `sub` is NULL or a live handle from this library (the function's contract); NULL is refused.
        stop(unsafe { arg_ref(sub, "sub") }?);
        Ok(())
    })
}

/// Unsubscribes (as `netchan_subscription_close()`) and frees the handle.
///
/// NULL, or a subscription freed already, is ignored. May be called from
/// any thread and from inside any callback, including this subscription's
/// own: from a plain thread it waits for a running call to finish and runs
/// `drop` before returning; from a callback it never waits, and `drop` runs
/// right after the running call returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_free(sub: *mut netchan_subscription) {
    ffi_boundary_or((), || {
        // SAFETY: `sub` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        if let Some(b) = unsafe { take_back(sub) } {
            stop(&b);
        }
    })
}
