//! Serving requests: `netchan_service`, `netchan_request`, `netchan_reply`.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use netchan::{Bytes, Error, ErrorCode, Reply, Request, Service};

use crate::boundary::{
    arg_bytes, arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back,
    write_out,
};
use crate::callback::{Context, Slot};
use crate::endpoint::{arg_endpoint, netchan_endpoint};
use crate::error::{netchan_result, FfiError};
use crate::types::{netchan_slice, netchan_str};

/// An incoming request. A handler's is borrowed for the duration of its
/// call (copy what you need later); one taken with
/// `netchan_service_accept()` is owned: free it with
/// `netchan_request_free()`. The views the functions below return live as
/// long as the request. Immutable, thread-safe.
pub struct netchan_request {
    req: Request,
}

/// The concrete path requested, valid as long as the request (see
/// `netchan_request`). `{NULL, 0}` if `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_path(request: *const netchan_request) -> netchan_str {
    // SAFETY: `request` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { request.as_ref() } {
        Some(r) => netchan_str::from(r.req.path()),
        None => netchan_str::empty(),
    })
}

/// The request payload, valid as long as the request (see
/// `netchan_request`). `{NULL, 0}` if `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_payload(request: *const netchan_request) -> netchan_slice {
    ffi_boundary_or(netchan_slice::empty(), || {
        // SAFETY: `request` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
        match unsafe { request.as_ref() } {
            Some(r) => netchan_slice::from(r.req.payload()),
            None => netchan_slice::empty(),
        }
    })
}

/// The caller's endpoint name, valid as long as the request (see
/// `netchan_request`). `{NULL, 0}` if `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_sender(request: *const netchan_request) -> netchan_str {
    // SAFETY: `request` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { request.as_ref() } {
        Some(r) => netchan_str::from(r.req.sender()),
        None => netchan_str::empty(),
    })
}

/// Milliseconds left before the caller stops waiting (its timeout, carried
/// on the wire); 0 if it passed or `request` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_remaining_ms(request: *const netchan_request) -> u64 {
    // SAFETY: `request` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(0, || match unsafe { request.as_ref() } {
        Some(r) => u64::try_from(r.req.remaining().as_millis()).unwrap_or(u64::MAX),
        None => 0,
    })
}

/// True once the caller gave up on the request (its timeout passed,
/// `netchan_pending_request_cancel()` or another surface's cancel, its
/// link was lost): a reply sent now is discarded. For the handler call;
/// later, ask the reply handle (`netchan_reply_is_cancelled()`). False if
/// `request` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_is_cancelled(request: *const netchan_request) -> bool {
    ffi_boundary_or(false, || {
        // SAFETY: `request` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
        let r = unsafe { request.as_ref() };
        r.is_some_and(|r| r.req.is_cancelled())
    })
}

/// The handle that answers one request: owned by the handler that received
/// it. Answer once with `netchan_reply_send()` or `netchan_reply_fail()`,
/// now or later, from any thread; then (or instead) free it with
/// `netchan_reply_free()`. Freeing it unanswered fails the request with
/// `HANDLER_ERROR`. Thread-safe.
pub struct netchan_reply {
    reply: Mutex<Option<Reply>>,
    /// The service's handler slot this request holds until it is answered
    /// or its handle freed (see `netchan_endpoint_serve_with`).
    slot: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl netchan_reply {
    fn take(&self) -> Result<Reply, FfiError> {
        let r = self
            .reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                FfiError::new(netchan_result::Closed, "this request was answered already")
            })?;
        drop(self.slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(r)
    }
}

/// True once the caller gave up on the request (see
/// `netchan_request_is_cancelled()`), so a handler answering later from
/// another thread can skip the work. False once answered, or if `reply` is
/// NULL. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_reply_is_cancelled(reply: *const netchan_reply) -> bool {
    ffi_boundary_or(false, || {
        // SAFETY: `reply` is NULL or a live handle from this library (the function's contract); as_ref maps NULL to None.
        let Some(r) = (unsafe { reply.as_ref() }) else {
            return false;
        };
        let held = r.reply.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref().is_some_and(Reply::is_cancelled)
    })
}

/// Answers the request with `len` bytes at `data` (copied; `data` may be
/// NULL when `len` is 0). A reply to a request whose caller gave up
/// (timeout, link lost) is discarded. Never blocks. The handle must still
/// be freed with `netchan_reply_free()`.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED` (answered already). Thread-safe;
/// callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_reply_send(
    reply: *const netchan_reply,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `reply` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let r = unsafe { arg_ref(reply, "reply") }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        r.take()?.send(payload);
        Ok(())
    })
}

/// Fails the request: the caller gets result `code` and the text `detail`
/// (NUL-terminated UTF-8, may be NULL for none). `code` must be one of the
/// core codes (100 to 999), typically `NETCHAN_RESULT_HANDLER_ERROR`. Never
/// blocks. The handle must still be freed with `netchan_reply_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_ARGUMENT` (code is not
/// a core code; the request stays unanswered), `CLOSED` (answered already).
/// Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_reply_fail(
    reply: *const netchan_reply,
    code: u32,
    detail: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `reply` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let r = unsafe { arg_ref(reply, "reply") }?;
        let detail = if detail.is_null() {
            ""
        } else {
            // SAFETY: `detail` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
            unsafe { arg_str(detail, "detail") }?
        };
        let code = u16::try_from(code)
            .ok()
            .and_then(ErrorCode::from_u16)
            .ok_or_else(|| {
                FfiError::new(
                    netchan_result::InvalidArgument,
                    format!("{code} is not a core error code (100 to 999)"),
                )
            })?;
        r.take()?.fail(Error::new(code, detail));
        Ok(())
    })
}

/// Frees a reply handle; an unanswered request fails with `HANDLER_ERROR`.
/// NULL, or a handle freed already, is ignored. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_reply_free(reply: *mut netchan_reply) {
    // SAFETY: `reply` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(reply) }))
}

/// A request handler's `call` (see `netchan_request_handler`).
type HandlerFn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        request: *const netchan_request,
        reply: *mut netchan_reply,
    ),
>;

/// Handles the requests of `netchan_endpoint_serve()`.
///
/// `call(context, request, reply)` runs once per request on a netchan
/// thread; calls of one service run one at a time, in arrival order.
/// `request` is borrowed for the call; `reply` is owned by you: answer it
/// with `netchan_reply_send()` / `netchan_reply_fail()` now or later from
/// any thread, and free it with `netchan_reply_free()`. `call` never runs
/// after `drop`, and `drop(context)` runs exactly once after the last call
/// (when the service is freed or the endpoint closes). `call` must not
/// block for long (keep the reply and answer from another thread instead)
/// and must not throw (C++) or longjmp; blocking netchan functions called
/// from it return `WOULD_DEADLOCK`. `drop` may be NULL.
#[repr(C)]
pub struct netchan_request_handler {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called for each request; must not be NULL.
    pub call: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            request: *const netchan_request,
            reply: *mut netchan_reply,
        ),
    >,
    /// Called once after the last call; may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

struct HandlerCb {
    call: unsafe extern "C" fn(*mut c_void, *const netchan_request, *mut netchan_reply),
    ctx: Context,
}

/// A served pattern. Free it with `netchan_service_free()` to stop serving.
/// Thread-safe.
pub struct netchan_service {
    svc: Arc<Service>,
    /// The handler's slot; `None` for a pull service
    /// (`netchan_endpoint_serve_pull()`).
    slot: Option<Arc<Slot<HandlerCb>>>,
    /// Its endpoint's runtime generation (see `endpoint::runtime_stopped`).
    generation: u64,
}

/// Serves `pattern` (wildcards allowed, e.g. `"users/*"`): requests on
/// matching paths, local or from peers, go to `handler` (see
/// `netchan_request_handler`).
///
/// `handler` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns. On success writes the
/// service to `*out`; free it with `netchan_service_free()`.
///
/// Errors: `NULL_ARGUMENT` (also for `handler.call`), `INVALID_UTF8`,
/// `INVALID_PATH`, `CLOSED`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_serve(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    handler: netchan_request_handler,
    out: *mut *mut netchan_service,
) -> netchan_result {
    let ctx = Context::new(handler.context, handler.drop);
    // SAFETY: this function's contract is `serve`'s.
    ffi_boundary(move || unsafe { serve(ep, pattern, 0, 0, handler.call, ctx, out) })
}

/// `netchan_endpoint_serve()` with bounds: at most `max_concurrent`
/// requests in the handler's hands at once (from its call until the reply
/// is answered or freed; the next request waits in the queue meanwhile),
/// at most `queue` waiting; past that a request is refused with
/// `BUFFER_FULL`, counted (`netchan_stats.requests_refused`) and reported
/// (a `DROPPED` event whose site is the pattern). 0 takes the endpoint's
/// setting (`handler_concurrency`, 256; `service_queue`, 1024). When the
/// endpoint closes while every slot is held, the handler's `drop` runs once
/// a held reply is answered or freed, or the service is freed.
///
/// Errors: those of `netchan_endpoint_serve()`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_serve_with(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    max_concurrent: usize,
    queue: usize,
    handler: netchan_request_handler,
    out: *mut *mut netchan_service,
) -> netchan_result {
    let ctx = Context::new(handler.context, handler.drop);
    // SAFETY: this function's contract is `serve`'s.
    ffi_boundary(move || unsafe {
        serve(ep, pattern, max_concurrent, queue, handler.call, ctx, out)
    })
}

/// The body of `netchan_endpoint_serve_with` (and `_serve`, with zeros).
///
/// # Safety
/// `ep` is NULL or a live endpoint handle; `pattern` NULL or a
/// NUL-terminated string readable for the call; `out` NULL or writable.
unsafe fn serve(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    max_concurrent: usize,
    queue: usize,
    call: HandlerFn,
    ctx: Context,
    out: *mut *mut netchan_service,
) -> Result<(), FfiError> {
    let call = call.ok_or_else(|| FfiError::null("handler.call"))?;
    arg_out(out, "out")?;
    // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
    let ep: &netchan_endpoint = unsafe { arg_endpoint(ep) }?;
    // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
    let pattern = unsafe { arg_str(pattern, "pattern") }?;
    let mut opts = netchan::ServeOptions::default();
    opts.queue = (queue > 0).then_some(queue);
    let svc = Arc::new(ep.ep.serve_with(pattern, opts)?);
    let concurrent = match max_concurrent {
        0 => ep.ep.config().handler_concurrency,
        n => n,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrent));
    let slot = Arc::new(Slot::new(HandlerCb { call, ctx }));
    let (task_svc, task_slot) = (svc.clone(), slot.clone());
    ep.rt.spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let Some((req, reply)) = task_svc.recv().await else {
                break;
            };
            let calling = task_slot.enter();
            let Some(cb) = calling.as_ref().and_then(|c| c.get()) else {
                reply.fail(Error::new(ErrorCode::Closed, "the service was closed"));
                continue;
            };
            let request = netchan_request { req };
            let reply = hand_out(netchan_reply {
                reply: Mutex::new(Some(reply)),
                slot: Mutex::new(Some(permit)),
            });
            // SAFETY: the callback contract; `request` lives for the call.
            unsafe { (cb.call)(cb.ctx.ptr, &request, reply) };
        }
        task_slot.stop();
    });
    let service = netchan_service {
        svc,
        slot: Some(slot),
        generation: ep.generation,
    };
    // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
    unsafe { write_out(out, hand_out(service)) };
    Ok(())
}

/// Serves `pattern` (wildcards allowed) for pulling: requests queue up
/// until `netchan_service_accept()` or `_try_accept()` takes them (their
/// callers wait meanwhile, within their timeouts). At most `queue` wait
/// (0: the endpoint's `service_queue`, 1024); past that a request is
/// refused with `BUFFER_FULL`, counted and reported.
///
/// On success writes the service to `*out`; free it with
/// `netchan_service_free()` (requests still queued fail with `CLOSED`).
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`, `CLOSED`.
/// Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_serve_pull(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    queue: usize,
    out: *mut *mut netchan_service,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep: &netchan_endpoint = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let pattern = unsafe { arg_str(pattern, "pattern") }?;
        let mut opts = netchan::ServeOptions::default();
        opts.queue = (queue > 0).then_some(queue);
        let service = netchan_service {
            svc: Arc::new(ep.ep.serve_with(pattern, opts)?),
            slot: None,
            generation: ep.generation,
        };
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, hand_out(service)) };
        Ok(())
    })
}

/// The pull service behind `service`, or `INVALID_ARGUMENT` for a handler
/// service.
fn pull(service: &netchan_service) -> Result<&Service, FfiError> {
    if service.slot.is_some() {
        return Err(FfiError::new(
            netchan_result::InvalidArgument,
            "a handler service hands requests to its handler; it cannot be accepted from",
        ));
    }
    Ok(&service.svc)
}

/// The service of an accept and its pull side, the out-pointers checked.
///
/// # Safety
/// `service` is NULL or a live service handle for `'a`.
unsafe fn accept_args<'a>(
    service: *const netchan_service,
    request: *mut *mut netchan_request,
    reply: *mut *mut netchan_reply,
) -> Result<(&'a netchan_service, &'a Service), FfiError> {
    // SAFETY: `service` is NULL or a live handle from this library (the caller's contract); NULL is refused.
    let s = unsafe { arg_ref(service, "service") }?;
    let svc = pull(s)?;
    arg_out(request, "request")?;
    arg_out(reply, "reply")?;
    Ok((s, svc))
}

/// Hands a taken request out: an owned request and its reply handle.
fn accepted(
    (req, reply): (Request, Reply),
    request: *mut *mut netchan_request,
    out_reply: *mut *mut netchan_reply,
) {
    let r = hand_out(netchan_reply {
        reply: Mutex::new(Some(reply)),
        slot: Mutex::new(None),
    });
    // SAFETY: both were checked non-NULL by the caller and point to writable storage (its contract).
    unsafe {
        write_out(request, hand_out(netchan_request { req }));
        write_out(out_reply, r);
    }
}

/// Waits for the next request of a pull service, at most `timeout_ms`
/// milliseconds (negative: no limit; 0: do not wait).
///
/// On `NETCHAN_RESULT_OK` writes the request to `*request` (read it with
/// `netchan_request_path()` etc.; free it with `netchan_request_free()`)
/// and its reply handle to `*reply` (answer and free it as a handler
/// would). Errors: `TIMEOUT`, `CLOSED` (the service or its endpoint is
/// closed), `WOULD_DEADLOCK` (waiting inside a netchan callback: use
/// `_try_accept`), `INVALID_ARGUMENT` (a handler service),
/// `NULL_ARGUMENT`. Thread-safe: several threads may accept from one
/// service; each request goes to one of them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_service_accept(
    service: *const netchan_service,
    timeout_ms: i64,
    request: *mut *mut netchan_request,
    reply: *mut *mut netchan_reply,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: the arguments are forwarded under this function's contract.
        let (s, svc) = unsafe { accept_args(service, request, reply) }?;
        if let Some(taken) = svc.try_recv()? {
            accepted(taken, request, reply);
            return Ok(());
        }
        if crate::endpoint::runtime_stopped(s.generation) {
            return Err(crate::endpoint::stopped_error());
        }
        if timeout_ms == 0 {
            return Err(FfiError::new(
                netchan_result::Timeout,
                "no request is queued",
            ));
        }
        let timeout = u64::try_from(timeout_ms)
            .ok()
            .map(std::time::Duration::from_millis);
        match svc.recv_blocking(timeout)? {
            Some(taken) => accepted(taken, request, reply),
            None => {
                return Err(FfiError::new(
                    netchan_result::Timeout,
                    format!("no request within {timeout_ms} ms"),
                ))
            }
        }
        Ok(())
    })
}

/// Takes the next queued request of a pull service without waiting, as
/// `netchan_service_accept()` with a timeout of 0 but returning `EMPTY`
/// when none is queued.
///
/// Errors: `EMPTY`, `CLOSED`, `INVALID_ARGUMENT` (a handler service),
/// `NULL_ARGUMENT`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_service_try_accept(
    service: *const netchan_service,
    request: *mut *mut netchan_request,
    reply: *mut *mut netchan_reply,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: the arguments are forwarded under this function's contract.
        let (_, svc) = unsafe { accept_args(service, request, reply) }?;
        match svc.try_recv()? {
            Some(taken) => accepted(taken, request, reply),
            None => return Err(FfiError::new(netchan_result::Empty, "no request is queued")),
        }
        Ok(())
    })
}

/// Frees a request taken with `netchan_service_accept()` (its reply handle
/// is separate). NULL, a request freed already, or a handler's borrowed
/// request, is ignored. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_request_free(request: *mut netchan_request) {
    // SAFETY: `request` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a borrowed or freed one is ignored.
    ffi_boundary_or((), || drop(unsafe { take_back(request) }))
}

/// The served pattern, valid until the service is freed. `{NULL, 0}` if
/// `service` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_service_pattern(service: *const netchan_service) -> netchan_str {
    // SAFETY: `service` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { service.as_ref() } {
        Some(s) => netchan_str::from(s.svc.pattern()),
        None => netchan_str::empty(),
    })
}

/// Stops serving and frees the handle. Requests still queued fail with
/// `CLOSED`; replies the handler kept stay usable until freed. NULL, or a
/// service freed already, is ignored. May be called from any thread and
/// from inside any callback (its own handler's too); from a plain thread
/// it waits for a running handler call to finish and runs `drop` before
/// returning.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_service_free(service: *mut netchan_service) {
    ffi_boundary_or((), || {
        // SAFETY: `service` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        if let Some(b) = unsafe { take_back(service) } {
            b.svc.close();
            if let Some(slot) = &b.slot {
                slot.stop();
            }
        }
    })
}
