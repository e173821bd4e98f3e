//! `netchan_endpoint`: create, listen, connect, publish, request, ping,
//! stats, close.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use netchan::{Bytes, Endpoint};
use tokio::runtime::Handle;

use crate::boundary::{
    arg_bytes, arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back,
    write_out,
};
use crate::callback::Context;
use crate::error::{netchan_result, FfiError};
use crate::options::netchan_options;
use crate::types::{hand_out_bytes, hand_out_string, netchan_bytes};

/// A netchan endpoint: connects to peers over TCP and Unix sockets,
/// publishes and subscribes, serves and sends requests.
///
/// Create with `netchan_endpoint_new()`, free with `netchan_endpoint_free()`.
/// Thread-safe: every function may be called on one endpoint from any
/// number of threads at once.
pub struct netchan_endpoint {
    pub(crate) ep: Endpoint,
    pub(crate) rt: Handle,
    name: CString,
    /// `RUNTIME_GENERATION` when created: if `netchan_runtime_shutdown()` ran since,
    /// the runtime is gone and there is nothing left to close.
    pub(crate) generation: u64,
}

/// Bumped by `netchan_runtime_shutdown()` before it stops the runtime.
pub(crate) static RUNTIME_GENERATION: AtomicU64 = AtomicU64::new(0);

/// True once `netchan_runtime_shutdown()` has been called since `generation` was
/// read: the runtime a handle of that generation runs on is stopping or
/// gone.
pub(crate) fn runtime_stopped(generation: u64) -> bool {
    RUNTIME_GENERATION.load(SeqCst) != generation
}

/// What a handle whose runtime `netchan_runtime_shutdown()` stopped reports.
pub(crate) fn stopped_error() -> FfiError {
    FfiError::new(
        netchan_result::Closed,
        "netchan_runtime_shutdown() stopped the runtime this handle ran on",
    )
}

/// The endpoint behind an `ep` argument that must not be NULL; `CLOSED`
/// once `netchan_runtime_shutdown()` stopped its runtime (it could only fail, hang
/// or panic there: its tasks and timers are gone).
///
/// # Safety
/// `ep` is NULL or points to a live `netchan_endpoint` for `'a`.
pub(crate) unsafe fn arg_endpoint<'a>(
    ep: *const netchan_endpoint,
) -> Result<&'a netchan_endpoint, FfiError> {
    // SAFETY: `ep` is NULL or a live handle from this library (the function's contract); NULL is refused.
    let ep = unsafe { arg_ref(ep, "ep") }?;
    if runtime_stopped(ep.generation) {
        return Err(stopped_error());
    }
    Ok(ep)
}

/// The handle of the runtime the endpoint runs on.
fn runtime_of(ep: &Endpoint) -> Result<Handle, FfiError> {
    Ok(ep.runtime().clone())
}

/// A name like the core's default (`ep-3f9a1c0d2b4e5f60`), made here because
/// the core's random generator asks std for the calling thread's handle,
/// which std never frees for a thread it did not start (the C program's main
/// thread): valgrind would report it.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, SeqCst));
    h.write_u32(std::process::id());
    format!("ep-{:016x}", h.finish())
}

/// Runs `fut` on the calling thread; `WOULD_DEADLOCK` inside a callback.
fn block<F: std::future::Future>(ep: &Endpoint, fut: F) -> Result<F::Output, FfiError> {
    Ok(ep.block_on(fut)?)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Creates an endpoint. It does nothing on the network until
/// `netchan_endpoint_listen()` or `netchan_endpoint_connect()`.
///
/// `options` may be NULL for every default; it is only read (free it
/// whenever you like). On success writes the new endpoint to `*out`; free
/// it with `netchan_endpoint_free()`.
///
/// Errors: `NULL_ARGUMENT` (out), `INVALID_ARGUMENT` (a bad option; the
/// last error names it), `IO` (the runtime could not start).
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_new(
    options: *const netchan_options,
    out: *mut *mut netchan_endpoint,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        // SAFETY: NULL or a live netchan_options, per the contract.
        let mut config = match unsafe { options.as_ref() } {
            Some(o) => o.config.clone(),
            None => netchan::Config::default(),
        };
        if config.name.is_none() {
            config.name = Some(random_name());
        }
        let ep = Endpoint::new(config)?;
        let rt = runtime_of(&ep)?;
        let name = CString::new(ep.name()).unwrap_or_default();
        let generation = RUNTIME_GENERATION.load(SeqCst);
        let h = hand_out(netchan_endpoint {
            ep,
            rt,
            name,
            generation,
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

fn close_endpoint(ep: &netchan_endpoint) {
    if runtime_stopped(ep.generation) {
        return; // netchan_runtime_shutdown() already stopped everything
    }
    if netchan::runtime::in_async_context() {
        // Inside a callback: closing waits for writers to flush, so let a
        // task do it rather than block a netchan thread.
        let e = ep.ep.clone();
        ep.rt.spawn(async move { e.close().await });
    } else {
        let _ = ep.ep.block_on(ep.ep.close());
    }
}

/// Closes the endpoint: stops listening, tells every peer, fails pending
/// requests (their result callbacks run with `NETCHAN_RESULT_CLOSED`, also
/// for a request to one of its own services whose handler holds the
/// reply), and ends every subscription and service (their callbacks'
/// `drop` runs).
/// Idempotent. Subscription, service and reply handles stay valid until
/// you free them: a subscription reports `CLOSED` once drained, and an
/// answer to a request that was in flight is discarded.
///
/// Waits up to 2 s for queued messages to be flushed to peers; called from
/// a netchan callback it returns at once and the close finishes in the
/// background. Errors: `NULL_ARGUMENT`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_close(ep: *const netchan_endpoint) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or a live handle from this library (the function's contract); NULL is refused.
        close_endpoint(unsafe { arg_ref(ep, "ep") }?);
        Ok(())
    })
}

/// To the background (a mobile app's pause, a laptop's sleep): closes
/// every link (peers see an orderly close) and every listener, and keeps
/// the rest: subscriptions, services, declarations, messages held for
/// dialled peers, counters. Local publish/subscribe keeps working; requests
/// to peers fail with `NO_RESPONDERS`. Emits a `SUSPENDED` event.
/// Idempotent; returns when the links and listeners are down.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`, `WOULD_DEADLOCK` (from a callback).
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_suspend(ep: *const netchan_endpoint) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        block(&ep.ep, ep.ep.suspend())??;
        Ok(())
    })
}

/// Back to the foreground: listens again where it listened and dials every
/// address it connected to at once; returns after the first attempt of
/// each (failed ones are redialled with backoff). Held messages go first.
/// Emits a `RESUMED` event. Does nothing if not suspended.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`, `ADDRESS_IN_USE` (a listen address
/// was taken meanwhile; the rest is restored), `WOULD_DEADLOCK` (from a
/// callback). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_resume(ep: *const netchan_endpoint) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        block(&ep.ep, ep.ep.resume())??;
        Ok(())
    })
}

/// The network changed (another Wi-Fi, mobile data): links over the old
/// one may be dead without knowing it, so every link is dropped and every
/// dialled address redialled now, without backoff.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`, `WOULD_DEADLOCK` (from a callback).
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_network_changed(
    ep: *const netchan_endpoint,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        block(&ep.ep, ep.ep.network_changed())??;
        Ok(())
    })
}

/// Closes (as `netchan_endpoint_close()`) and frees the endpoint.
///
/// NULL, or an endpoint freed already, is ignored. May be called from
/// inside any callback, including one of this endpoint's (then the close
/// finishes in the background). Do not use `ep` afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_free(ep: *mut netchan_endpoint) {
    ffi_boundary_or((), || {
        // SAFETY: `ep` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        if let Some(b) = unsafe { take_back(ep) } {
            close_endpoint(&b);
        }
    })
}

/// The endpoint's name, NUL-terminated, owned by the endpoint: valid until
/// `netchan_endpoint_free(ep)`. NULL if `ep` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_name(ep: *const netchan_endpoint) -> *const c_char {
    // SAFETY: `ep` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(std::ptr::null(), || match unsafe { ep.as_ref() } {
        Some(e) => e.name.as_ptr(),
        None => std::ptr::null(),
    })
}

/// Listens on `addr` (`"tcp://HOST:PORT"`, port 0 picks a free port,
/// `"tls://HOST:PORT"`, `"unix:///ABS/PATH"`, or on Windows the named pipe
/// `"pipe://NAME"`). Blocks until bound.
///
/// `bound` may be NULL; else on success it receives the bound address
/// (e.g. `"tcp://127.0.0.1:41234"`), a string you free with
/// `netchan_string_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_ADDRESS`,
/// `ADDRESS_IN_USE`, `IO`, `CLOSED`, `WOULD_DEADLOCK` (from a callback).
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_listen(
    ep: *const netchan_endpoint,
    addr: *const c_char,
    bound: *mut *mut c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `addr` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let addr = unsafe { arg_str(addr, "addr") }?;
        let b = block(&ep.ep, ep.ep.listen(addr))??;
        if !bound.is_null() {
            // SAFETY: `bound` was checked non-NULL above and points to writable storage (the function's contract).
            unsafe { write_out(bound, hand_out_string(&b)) };
        }
        Ok(())
    })
}

/// Connects to the endpoint listening at `addr` and blocks until the
/// handshake is done and the peer's subscriptions and services are known
/// (so a request right after sees its services).
///
/// `peer_name` may be NULL; else on success it receives the peer's endpoint
/// name (for `netchan_endpoint_ping()`), freed with `netchan_string_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_ADDRESS`,
/// `CONNECT_REFUSED`, `TIMEOUT`, `UNSUPPORTED_VERSION`,
/// `HANDSHAKE_REJECTED`, `PROTOCOL_ERROR`, `CLOSED`, `WOULD_DEADLOCK`.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_connect(
    ep: *const netchan_endpoint,
    addr: *const c_char,
    peer_name: *mut *mut c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `addr` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let addr = unsafe { arg_str(addr, "addr") }?;
        let info = block(&ep.ep, ep.ep.connect(addr))??;
        if !peer_name.is_null() {
            // SAFETY: `peer_name` was checked non-NULL above and points to writable storage (the function's contract).
            unsafe { write_out(peer_name, hand_out_string(&info.name)) };
        }
        Ok(())
    })
}

/// Publishes `len` bytes at `data` on `path` to every matching subscriber,
/// local and remote. The bytes are copied; `data` may be NULL when `len`
/// is 0.
///
/// Waits while a peer's send buffer or a local blocking subscription is
/// full, up to the send timeout. Called from a netchan callback it never
/// waits: a full target is skipped (counted, reported as an event) and the
/// call returns `BUFFER_FULL`, as `netchan_endpoint_try_publish()` does.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`,
/// `MESSAGE_TOO_LARGE` (nothing sent), `BUFFER_FULL` (some targets
/// skipped), `CLOSED`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_publish(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        if netchan::runtime::in_async_context() {
            ep.ep.try_publish(path, payload)?;
        } else {
            ep.ep.publish_blocking(path, payload)?;
        }
        Ok(())
    })
}

/// Like `netchan_endpoint_publish()` but never waits: a target without room
/// is skipped, counted as a drop and reported, and the call returns
/// `BUFFER_FULL`.
///
/// Errors: as `netchan_endpoint_publish()`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_try_publish(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        ep.ep.try_publish(path, payload)?;
        Ok(())
    })
}

/// Receives the outcome of `netchan_endpoint_request()`.
///
/// `call(context, result, reply, reply_len, error)` runs exactly once, on a
/// netchan thread (possibly before `netchan_endpoint_request()` returns),
/// then `drop(context)` runs once. On `NETCHAN_RESULT_OK`, `reply` /
/// `reply_len` is the reply payload and `error` is NULL; otherwise `reply`
/// is NULL, `reply_len` 0 and `error` a NUL-terminated detail. All three
/// are borrowed for the duration of the call only: copy what you keep.
/// `call` must not block for long and must not throw (C++) or longjmp; it
/// may call any netchan function, but blocking ones return
/// `WOULD_DEADLOCK`. `drop` may be NULL.
#[repr(C)]
pub struct netchan_result_callback {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called once with the outcome; must not be NULL.
    pub call: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            result: netchan_result,
            reply: *const u8,
            reply_len: usize,
            error: *const c_char,
        ),
    >,
    /// Called once after `call` (or instead of it, when the request was
    /// refused before it started); may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

pub(crate) type ResultFn =
    unsafe extern "C" fn(*mut c_void, netchan_result, *const u8, usize, *const c_char);

/// A result callback that runs `call` exactly once, even when its task is
/// dropped unfinished or finishes after `netchan_runtime_shutdown()` was called:
/// then with `CANCELLED`.
pub(crate) struct ResultCb {
    pub(crate) call: Option<ResultFn>,
    pub(crate) ctx: Context,
}

impl ResultCb {
    pub(crate) fn has_call(&self) -> bool {
        self.call.is_some()
    }

    /// The request was refused before it started: only `drop` will run.
    pub(crate) fn refuse(&mut self) {
        self.call = None;
    }

    pub(crate) fn finish(&mut self, r: Result<Bytes, FfiError>) {
        let Some(call) = self.call.take() else { return };
        match r {
            // SAFETY: the callback contract; pointers live for the call.
            Ok(b) => unsafe {
                call(
                    self.ctx.ptr,
                    netchan_result::Ok,
                    b.as_ptr(),
                    b.len(),
                    std::ptr::null(),
                )
            },
            Err(e) => {
                let detail = CString::new(e.detail.replace('\0', "")).unwrap_or_default();
                // SAFETY: the callback contract; `detail` lives for the call.
                unsafe { call(self.ctx.ptr, e.code, std::ptr::null(), 0, detail.as_ptr()) }
            }
        }
    }
}

impl Drop for ResultCb {
    fn drop(&mut self) {
        self.finish(Err(FfiError::new(
            netchan_result::Cancelled,
            "the request was abandoned: netchan's runtime shut down",
        )));
    }
}

/// Sends a request on `path` to one endpoint serving it (a local service
/// first, else a connected peer that serves it, in turn) and returns at
/// once; the outcome arrives at `callback` (see `netchan_result_callback`).
/// The request fails with `TIMEOUT` if no reply came within `timeout_ms`
/// milliseconds (which must be > 0); the timeout travels to the server as
/// the request's deadline.
///
/// `callback` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns. On `NETCHAN_RESULT_OK`
/// the callback's `call` runs exactly once with the outcome: the reply, or
/// `INVALID_PATH`, `INVALID_ARGUMENT`, `NO_RESPONDERS`, `TIMEOUT`,
/// `PEER_LOST`, `BUFFER_FULL`, `MESSAGE_TOO_LARGE`, `CLOSED` (also when the
/// endpoint is closed or freed while a request to a peer is in flight),
/// `CANCELLED` (still in flight when `netchan_runtime_shutdown()` is called) or the
/// code the handler failed with. `data` (copied) may be NULL when `len` is
/// 0.
///
/// Errors returned here: `NULL_ARGUMENT` (ep, path, or `callback.call`),
/// `INVALID_UTF8`, `CLOSED` (`netchan_runtime_shutdown()` stopped the endpoint).
/// Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_request(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    callback: netchan_result_callback,
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
        let (ep, path, payload) = unsafe { crate::request::checked(&mut cb, ep, path, data, len) }?;
        let opts = netchan::RequestOptions::timeout(millis(timeout_ms));
        crate::request::start(ep, path, payload, opts, cb, None);
        Ok(())
    })
}

/// Sends a request like `netchan_endpoint_request()` and blocks until the
/// reply or an error, at most `timeout_ms` milliseconds (> 0).
///
/// On success writes the reply to `*reply` (free it with
/// `netchan_bytes_free()`); on failure `*reply` is untouched and
/// `netchan_last_error()` has the detail (for `HANDLER_ERROR` and other
/// handler codes, the handler's text). `data` (copied) may be NULL when
/// `len` is 0.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`,
/// `INVALID_ARGUMENT`, `NO_RESPONDERS`, `TIMEOUT`, `PEER_LOST`,
/// `BUFFER_FULL`, `MESSAGE_TOO_LARGE`, `CLOSED`, the handler's code, and
/// `WOULD_DEADLOCK` when called from a netchan callback. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_request_blocking(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
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
        let r = block(&ep.ep, ep.ep.request(path, payload, millis(timeout_ms)))??;
        // SAFETY: `reply` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(reply, hand_out_bytes(r)) };
        Ok(())
    })
}

/// Measures the round-trip time to the connected peer named `peer` (the
/// name `netchan_endpoint_connect()` returned). Blocks up to the ping
/// timeout.
///
/// On success writes the round trip in microseconds to `*rtt_us` (may be
/// NULL). Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `UNKNOWN_PEER`,
/// `TIMEOUT`, `PEER_LOST`, `CLOSED`, `WOULD_DEADLOCK`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_ping(
    ep: *const netchan_endpoint,
    peer: *const c_char,
    rtt_us: *mut u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `peer` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let peer = unsafe { arg_str(peer, "peer") }?;
        let rtt = block(&ep.ep, ep.ep.ping(peer))??;
        if !rtt_us.is_null() {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            // SAFETY: `rtt_us` was checked non-NULL above and points to writable storage (the function's contract).
            unsafe { write_out(rtt_us, us) };
        }
        Ok(())
    })
}

/// Waits until a message published on `path` would reach a subscriber
/// (local, or a peer that declared a matching interest), at most
/// `timeout_ms` milliseconds (0: just check).
///
/// On success writes whether one is there to `*found`. Errors:
/// `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`, `CLOSED`,
/// `WOULD_DEADLOCK`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_wait_for_subscribers(
    ep: *const netchan_endpoint,
    path: *const c_char,
    timeout_ms: u64,
    found: *mut bool,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        arg_out(found, "found")?;
        let f = block(&ep.ep, ep.ep.wait_for_subscribers(path, millis(timeout_ms)))??;
        // SAFETY: `found` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(found, f) };
        Ok(())
    })
}

/// Waits until a request on `path` would find a server, at most
/// `timeout_ms` milliseconds (0: just check).
///
/// On success writes whether one is there to `*found`. Errors:
/// `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`, `CLOSED`,
/// `WOULD_DEADLOCK`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_wait_for_servers(
    ep: *const netchan_endpoint,
    path: *const c_char,
    timeout_ms: u64,
    found: *mut bool,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        arg_out(found, "found")?;
        let f = block(&ep.ep, ep.ep.wait_for_servers(path, millis(timeout_ms)))??;
        // SAFETY: `found` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(found, f) };
        Ok(())
    })
}

/// Counters of an endpoint (`netchan_endpoint_stats()`). Fields are only
/// ever appended; the library fills as much as the caller's `size` allows.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct netchan_stats {
    /// Messages received from the network.
    pub msgs_in: u64,
    /// Messages sent to the network (one per peer it went to).
    pub msgs_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Requests received from peers.
    pub requests_in: u64,
    /// Requests sent to peers.
    pub requests_out: u64,
    /// Messages dropped because a subscription queue was full.
    pub dropped_queue_full: u64,
    /// Messages not sent because a peer's send buffer stayed full.
    pub dropped_send_full: u64,
    /// Protocol errors, refused connections and failed handshakes.
    pub errors: u64,
    /// Peers connected now.
    pub peers: u64,
    /// Subscriptions open now.
    pub subscriptions: u64,
    /// Messages lost with a link that ended: published while it was
    /// closing, or queued for this endpoint by a peer and never read here
    /// (counted when the two meet again; docs/RELIABILITY.md).
    pub lost_with_link: u64,
    /// Requests this endpoint's services refused with `BUFFER_FULL` (their
    /// queue was full).
    pub requests_refused: u64,
    /// What the access rules denied peers: messages, subscriptions,
    /// service declarations, requests, streams (docs/SECURITY.md).
    pub denied: u64,
    /// Messages and requests from peers over the rate limit (settings
    /// `rate_limit.*`), dropped or refused.
    pub rate_limited: u64,
}

/// Writes the endpoint's counters (totals over every peer, past and
/// present) to `*out`. Pass `sizeof(netchan_stats)` as `size`: a program
/// built against an older header gets the fields it knows, and fields the
/// library does not know are left as they were (zero them first).
///
/// Errors: `NULL_ARGUMENT`. Never blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_stats(
    ep: *const netchan_endpoint,
    out: *mut netchan_stats,
    size: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let ep = unsafe { arg_ref(ep, "ep") }?;
        arg_out(out, "out")?;
        let s = ep.ep.stats();
        let v = counters(&s.total, s.peers.len(), s.subscriptions.len());
        // SAFETY: the caller provides `size` writable bytes at `out` (the function's contract).
        unsafe { crate::discovery::copy_sized(&v, out, size) };
        Ok(())
    })
}

/// The C view of a set of counters, with the two live counts beside them.
pub(crate) fn counters(t: &netchan::CounterStats, peers: usize, subs: usize) -> netchan_stats {
    netchan_stats {
        msgs_in: t.msgs_in,
        msgs_out: t.msgs_out,
        bytes_in: t.bytes_in,
        bytes_out: t.bytes_out,
        requests_in: t.requests_in,
        requests_out: t.requests_out,
        dropped_queue_full: t.dropped_queue_full,
        dropped_send_full: t.dropped_send_full,
        errors: t.errors,
        peers: peers as u64,
        subscriptions: subs as u64,
        lost_with_link: t.lost_with_link,
        requests_refused: t.requests_refused,
        denied: t.denied,
        rate_limited: t.rate_limited,
    }
}
