//! Requests with options (`netchan_request_options`: timeout, waiting for a
//! responder) and cancellable requests (`netchan_pending_request`).

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use netchan::{Bytes, RequestOptions};
use tokio::sync::Notify;

use crate::boundary::{
    arg_bytes, arg_out, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back, write_out,
};
use crate::callback::Context;
use crate::endpoint::{
    arg_endpoint, netchan_endpoint, netchan_result_callback, runtime_stopped, ResultCb,
};
use crate::error::{netchan_result, FfiError};
use crate::types::{hand_out_bytes, netchan_bytes};

/// How a request is made (`netchan_endpoint_request_with()`,
/// `netchan_endpoint_request_blocking_with()`). Create with
/// `netchan_request_options_new()`, free with
/// `netchan_request_options_free()`. Only read by the requests that use it;
/// not thread-safe to change while another thread uses it.
pub struct netchan_request_options {
    opts: RequestOptions,
}

/// The default timeout of a request made with options: 5 s, as on the
/// other surfaces.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates request options with the defaults: `timeout_ms` 5000 and
/// `wait_for_responder` false (`NO_RESPONDERS` at once when nobody serves
/// the path).
///
/// On success writes a new object to `*out`. Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_options_new(
    out: *mut *mut netchan_request_options,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        let p = hand_out(netchan_request_options {
            opts: RequestOptions::timeout(DEFAULT_TIMEOUT),
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, p) };
        Ok(())
    })
}

/// Frees request options. NULL, or options freed already, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_options_free(options: *mut netchan_request_options) {
    // SAFETY: `options` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(options) }))
}

/// # Safety
/// `options` is NULL or a live `netchan_request_options` not used elsewhere meanwhile.
unsafe fn opts_mut<'a>(
    options: *mut netchan_request_options,
) -> Result<&'a mut RequestOptions, FfiError> {
    // SAFETY: NULL or a live options object not used by another thread during the call (the caller's contract); as_mut maps NULL to None.
    Ok(&mut unsafe { options.as_mut() }
        .ok_or_else(|| FfiError::null("options"))?
        .opts)
}

/// How long to wait for the reply, in milliseconds (default 5000); also
/// the deadline the handler sees. Past it the request fails with
/// `TIMEOUT`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_options_set_timeout_ms(
    options: *mut netchan_request_options,
    timeout_ms: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or live, not shared with another thread during the call (the function's contract); NULL is refused.
        let o = unsafe { opts_mut(options) }?;
        if timeout_ms == 0 {
            return Err(FfiError::new(
                netchan_result::InvalidArgument,
                "timeout_ms must be at least 1",
            ));
        }
        o.timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// If nobody serves the path yet, wait (up to the timeout) for a server to
/// appear instead of failing with `NO_RESPONDERS` at once (default false).
///
/// Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_options_set_wait_for_responder(
    options: *mut netchan_request_options,
    wait: bool,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or live, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { opts_mut(options) }?.wait_for_responder = wait;
        Ok(())
    })
}

/// A request in flight that can be cancelled
/// (`netchan_endpoint_request_with()`). Cancel it with
/// `netchan_pending_request_cancel()`; free it with
/// `netchan_pending_request_free()` (which does not cancel). Thread-safe.
pub struct netchan_pending_request {
    cancel: Arc<Notify>,
}

/// Gives up on the request: its result callback runs with `CANCELLED`
/// (unless the outcome was already on its way), and the server's handler
/// sees the cancellation (`netchan_reply_is_cancelled()`). Idempotent; does
/// nothing once the request finished.
///
/// Errors: `NULL_ARGUMENT`. Never blocks; thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_pending_request_cancel(
    pending: *const netchan_pending_request,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `pending` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let p = unsafe { crate::boundary::arg_ref(pending, "pending") }?;
        // A stored permit: a cancel before the task first waits is kept.
        p.cancel.notify_one();
        Ok(())
    })
}

/// Frees the handle; the request goes on. NULL, or a handle freed already,
/// is ignored. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_pending_request_free(pending: *mut netchan_pending_request) {
    // SAFETY: `pending` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(pending) }))
}

/// The endpoint, path and (copied) payload of a callback request; on an
/// error the callback is refused, so that only its `drop` runs.
///
/// # Safety
/// `ep` is NULL or a live endpoint handle; `path` NULL or a NUL-terminated
/// string readable for the call; `data` readable for `len` bytes, or `len`
/// is 0.
pub(crate) unsafe fn checked<'a>(
    cb: &mut ResultCb,
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> Result<(&'a netchan_endpoint, String, Bytes), FfiError> {
    let r = (|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the caller's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the caller's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?.to_owned();
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the caller's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        Ok((ep, path, payload))
    })();
    if r.is_err() {
        cb.refuse(); // drop only
    }
    r
}

/// Starts a request on `ep`'s runtime; `cb` receives the outcome (and
/// `CANCELLED` when `cancel` fires first).
pub(crate) fn start(
    ep: &netchan_endpoint,
    path: String,
    payload: Bytes,
    opts: RequestOptions,
    mut cb: ResultCb,
    cancel: Option<Arc<Notify>>,
) {
    let e = ep.ep.clone();
    let generation = ep.generation;
    ep.rt.spawn(async move {
        let work = e.request_with(&path, payload, opts);
        let r = match cancel {
            None => work.await.map_err(FfiError::from),
            Some(c) => tokio::select! {
                biased;
                _ = c.notified() => Err(FfiError::new(
                    netchan_result::Cancelled,
                    "cancelled by netchan_pending_request_cancel()",
                )),
                r = work => r.map_err(FfiError::from),
            },
        };
        // While netchan_runtime_shutdown() stops the runtime, a worker that has not
        // seen it yet may still finish a request, with whatever the
        // teardown caused (a peer's socket closed under it: PEER_LOST) or a
        // reply that raced it. Every request still pending when shutdown
        // was called reports CANCELLED, as the task dropped unfinished
        // does: one outcome, not a race.
        if runtime_stopped(generation) {
            return; // `cb` is dropped here: CANCELLED
        }
        cb.finish(r);
    });
}

/// As `netchan_endpoint_request()`, with `options` (NULL: the defaults of
/// `netchan_request_options_new()`, read now; the caller keeps them) and a
/// handle to cancel it: when `pending` is not NULL, on success a new
/// `netchan_pending_request` is written to `*pending` (free it with
/// `netchan_pending_request_free()`, also after the request finished).
///
/// `callback` is taken over even when this function fails (then `call`
/// never runs and `drop` has run before it returns). On
/// `NETCHAN_RESULT_OK` `call` runs exactly once with the outcome, as for
/// `netchan_endpoint_request()`, or `CANCELLED` after
/// `netchan_pending_request_cancel()`.
///
/// Errors returned here: `NULL_ARGUMENT` (ep, path, `callback.call`),
/// `INVALID_UTF8`, `CLOSED` (`netchan_runtime_shutdown()` stopped the endpoint).
/// Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_request_with(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
    options: *const netchan_request_options,
    callback: netchan_result_callback,
    pending: *mut *mut netchan_pending_request,
) -> netchan_result {
    // Own the callback first, so that every exit below runs its drop.
    let cb = ResultCb {
        call: callback.call,
        ctx: Context::new(callback.context, callback.drop),
    };
    ffi_boundary(move || {
        let mut cb = cb;
        if !cb.has_call() {
            return Err(FfiError::null("callback.call"));
        }
        // SAFETY: the arguments are forwarded under this function's contract.
        let (ep, path, payload) = unsafe { checked(&mut cb, ep, path, data, len) }?;
        // SAFETY: NULL or live options, only read (the function's contract).
        let opts = unsafe { read_opts(options) };
        let cancel = (!pending.is_null()).then(|| Arc::new(Notify::new()));
        if let Some(c) = &cancel {
            let p = hand_out(netchan_pending_request { cancel: c.clone() });
            // SAFETY: `pending` is non-NULL here and points to writable storage (the function's contract).
            unsafe { write_out(pending, p) };
        }
        start(ep, path, payload, opts, cb, cancel);
        Ok(())
    })
}

/// # Safety
/// `options` is NULL or a live `netchan_request_options`.
unsafe fn read_opts(options: *const netchan_request_options) -> RequestOptions {
    // SAFETY: NULL or live options (the caller's contract); as_ref maps NULL to None.
    match unsafe { options.as_ref() } {
        Some(o) => o.opts.clone(),
        None => RequestOptions::timeout(DEFAULT_TIMEOUT),
    }
}

/// As `netchan_endpoint_request_blocking()`, with `options` (NULL: the
/// defaults of `netchan_request_options_new()`).
///
/// Errors: as `netchan_endpoint_request_blocking()`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_request_blocking_with(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
    options: *const netchan_request_options,
    reply: *mut *mut netchan_bytes,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        arg_out(reply, "reply")?;
        // SAFETY: NULL or live options, only read (the function's contract).
        let opts = unsafe { read_opts(options) };
        let r = ep.ep.block_on(ep.ep.request_with(path, payload, opts))??;
        // SAFETY: `reply` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(reply, hand_out_bytes(r)) };
        Ok(())
    })
}
