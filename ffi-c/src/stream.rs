//! Bidirectional streams: `netchan_stream` (one side), its options
//! (`netchan_stream_options`), and serving them (`netchan_stream_service`,
//! pulled or with a `netchan_stream_handler`); a stream's messages are
//! pulled with `netchan_stream_recv()` or pushed to a
//! `netchan_stream_callback`.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netchan::blocking::Blocker;
use netchan::{Bytes, Error, ErrorCode, Stream, StreamOptions, StreamRequest, StreamService};
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;

use crate::boundary::{
    arg_bytes, arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back,
    write_out,
};
use crate::callback::{Context, Slot};
use crate::endpoint::{arg_endpoint, netchan_endpoint, runtime_stopped, stopped_error};
use crate::error::{netchan_result, set_last_error, FfiError};
use crate::types::{hand_out_bytes, netchan_bytes, netchan_slice, netchan_str};

// --- options -----------------------------------------------------------------

/// Options of one stream: create with `netchan_stream_options_new()`,
/// change with the `netchan_stream_options_set_*()` setters, pass to
/// `netchan_endpoint_open_stream()`, free with
/// `netchan_stream_options_free()`. Values are checked by
/// `netchan_endpoint_open_stream()`. Not thread-safe: use one options
/// object from one thread at a time.
pub struct netchan_stream_options {
    opts: StreamOptions,
}

/// Creates stream options with the defaults: no deadline, a 10 s open
/// timeout, the endpoint's stream window (1 MiB), and `NO_RESPONDERS` at
/// once when nobody serves the path.
///
/// On success writes a new object to `*out`; free it with
/// `netchan_stream_options_free()`. Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_new(
    out: *mut *mut netchan_stream_options,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        let p = hand_out(netchan_stream_options {
            opts: StreamOptions::default(),
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, p) };
        Ok(())
    })
}

/// Frees stream options. NULL, or options freed already, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_free(options: *mut netchan_stream_options) {
    // SAFETY: `options` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(options) }))
}

/// # Safety
/// `options` is NULL or a live `netchan_stream_options` not used elsewhere meanwhile.
unsafe fn stream_opts<'a>(
    options: *mut netchan_stream_options,
) -> Result<&'a mut StreamOptions, FfiError> {
    // SAFETY: NULL or a live options object not used by another thread
    // during the call (the caller's contract); as_mut maps NULL to None.
    Ok(&mut unsafe { options.as_mut() }
        .ok_or_else(|| FfiError::null("options"))?
        .opts)
}

/// The stream's deadline, in milliseconds from the open (default: none).
/// It travels with the opening; at the deadline both sides end the stream
/// with `TIMEOUT`.
///
/// Errors: `NULL_ARGUMENT`; 0 is refused by the open with `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_set_timeout_ms(
    options: *mut netchan_stream_options,
    timeout_ms: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_stream_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { stream_opts(options) }?.timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// How long the open waits for a server to accept the stream, in
/// milliseconds (default 10000, or the deadline if sooner); past it the
/// open fails with `TIMEOUT`.
///
/// Errors: `NULL_ARGUMENT`; 0 is refused by the open with `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_set_open_timeout_ms(
    options: *mut netchan_stream_options,
    timeout_ms: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_stream_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { stream_opts(options) }?.open_timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// Payload bytes the server may send before this side reads (default: the
/// endpoint's stream window, 1 MiB; 1 byte to 4 GiB). The server waits
/// beyond it; nothing else on the connection does.
///
/// Errors: `NULL_ARGUMENT`; 0 is refused by the open with `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_set_window(
    options: *mut netchan_stream_options,
    window: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_stream_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { stream_opts(options) }?.window = Some(window);
        Ok(())
    })
}

/// If nobody serves the path yet, `true` waits (up to the open timeout)
/// for a server to appear instead of failing with `NO_RESPONDERS` at once
/// (default `false`).
///
/// Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_options_set_wait_for_responder(
    options: *mut netchan_stream_options,
    wait: bool,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_stream_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { stream_opts(options) }?.wait_for_responder = wait;
        Ok(())
    })
}

// --- the stream handle ---------------------------------------------------------

/// Receives the messages of one stream (`netchan_stream_on_message()`).
///
/// `call(context, stream, message, result)` runs on a netchan thread, one
/// call at a time, in order: once per message with `message` pointing at
/// it (borrowed for the call: copy what you keep) and `result`
/// `NETCHAN_RESULT_OK`; then exactly one last call with `message` NULL:
/// `result` `NETCHAN_RESULT_OK` when the other side finished its direction
/// and everything it sent was delivered, else the code the stream ended
/// with (`CANCELLED`, `TIMEOUT`, `PEER_LOST`, `CLOSED`, a handler's code),
/// whose detail `netchan_last_error()` gives during the call. `stream` is
/// the handle the callback was set on. `call` never runs after `drop`, and
/// `drop(context)` runs exactly once, after the last call, or when the
/// stream is freed before it. `call` must not block for long (it holds up
/// this stream's delivery, and the sender waits once the window is
/// spent), must not throw (C++) or longjmp; it may call any netchan
/// function, including `netchan_stream_try_send()` and
/// `netchan_stream_free()` on its own stream; blocking ones
/// (`netchan_stream_send()`, `_recv()`) return `WOULD_DEADLOCK`. `drop` may
/// be NULL.
#[repr(C)]
pub struct netchan_stream_callback {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called for each message, then once at the end; must not be NULL.
    pub call: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            stream: *mut netchan_stream,
            message: *const netchan_slice,
            result: netchan_result,
        ),
    >,
    /// Called once after the last call; may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

struct StreamCb {
    call: unsafe extern "C" fn(
        *mut c_void,
        *mut netchan_stream,
        *const netchan_slice,
        netchan_result,
    ),
    ctx: Context,
}

/// One side of a bidirectional stream: opened with
/// `netchan_endpoint_open_stream()` or handed out by a stream service.
/// Send with `netchan_stream_send()` / `_try_send()`, receive with
/// `netchan_stream_recv()` / `_try_recv()` or a callback
/// (`netchan_stream_on_message()`), end this side's direction with
/// `netchan_stream_finish()`, end the whole stream with
/// `netchan_stream_cancel()`. Free it with `netchan_stream_free()`, which
/// cancels a stream whose two directions have not both ended. Thread-safe:
/// any function may be called on one stream from any thread at once.
pub struct netchan_stream {
    stream: Arc<Stream>,
    /// The opening as the server saw it (first payload); `None` for the
    /// opener's side.
    request: Option<StreamRequest>,
    /// The message callback, once set.
    slot: Mutex<Option<Arc<Slot<StreamCb>>>>,
    /// A handler-served stream's place among the service's `max_concurrent`,
    /// given back when the handle is freed.
    _permit: Option<OwnedSemaphorePermit>,
    blocker: Blocker,
    rt: Handle,
    /// Its endpoint's runtime generation (see `endpoint::runtime_stopped`).
    generation: u64,
}

/// A stream handle for `stream`, made on the runtime of `blocker`/`rt`.
fn new_stream(
    stream: Stream,
    request: Option<StreamRequest>,
    permit: Option<OwnedSemaphorePermit>,
    ctx: &HandleCtx,
) -> *mut netchan_stream {
    hand_out(netchan_stream {
        stream: Arc::new(stream),
        request,
        slot: Mutex::new(None),
        _permit: permit,
        blocker: ctx.blocker.clone(),
        rt: ctx.rt.clone(),
        generation: ctx.generation,
    })
}

/// What every stream handle of an endpoint shares.
#[derive(Clone)]
struct HandleCtx {
    blocker: Blocker,
    rt: Handle,
    generation: u64,
}

impl HandleCtx {
    fn of(ep: &netchan_endpoint) -> HandleCtx {
        HandleCtx {
            blocker: ep.ep.blocker().clone(),
            rt: ep.rt.clone(),
            generation: ep.generation,
        }
    }
}

/// A timeout argument: negative waits as long as it takes.
fn timeout_of(timeout_ms: i64) -> Option<Duration> {
    u64::try_from(timeout_ms).ok().map(Duration::from_millis)
}

fn would_deadlock(what: &str) -> Result<(), FfiError> {
    if netchan::runtime::in_async_context() {
        return Err(FfiError::new(
            netchan_result::WouldDeadlock,
            format!(
                "{what} called from a netchan callback, where it cannot wait; use the try_ form"
            ),
        ));
    }
    Ok(())
}

/// The stream behind a `stream` argument that must not be NULL.
///
/// # Safety
/// `stream` is NULL or points to a live `netchan_stream` for `'a`.
unsafe fn arg_stream<'a>(stream: *const netchan_stream) -> Result<&'a netchan_stream, FfiError> {
    // SAFETY: `stream` is NULL or a live handle from this library (the function's contract); NULL is refused.
    unsafe { arg_ref(stream, "stream") }
}

/// The stream, for pulling messages: `INVALID_ARGUMENT` once a callback
/// receives them.
fn pull(s: &netchan_stream) -> Result<&Stream, FfiError> {
    if s.slot.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
        return Err(FfiError::new(
            netchan_result::InvalidArgument,
            "this stream delivers to its message callback; it cannot be received from",
        ));
    }
    Ok(&s.stream)
}

/// Opens a bidirectional stream on `path` to one endpoint serving streams
/// there (a local stream service first, else a connected peer that serves
/// it, in turn), carrying `len` bytes at `data` as the first payload
/// (copied; `data` may be NULL when `len` is 0), and blocks until the
/// server accepts it (a stream waiting in a full service's queue is
/// accepted when its handler takes it), at most the open timeout.
///
/// `options` may be NULL (the defaults of `netchan_stream_options_new()`);
/// it is only read. On success writes the stream to `*out`; free it with
/// `netchan_stream_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`,
/// `INVALID_ARGUMENT` (options), `NO_RESPONDERS` (nobody serves streams on
/// `path`, or the service closed before taking it), `BUFFER_FULL` (the
/// service's queue is full), `TIMEOUT` (not accepted within the open
/// timeout), `PEER_LOST`, `MESSAGE_TOO_LARGE`, `CLOSED`, `WOULD_DEADLOCK`
/// (called from a netchan callback). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_open_stream(
    ep: *const netchan_endpoint,
    path: *const c_char,
    data: *const u8,
    len: usize,
    options: *const netchan_stream_options,
    out: *mut *mut netchan_stream,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let first = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        arg_out(out, "out")?;
        would_deadlock("netchan_endpoint_open_stream")?;
        // SAFETY: NULL or live options, per the contract.
        let opts = match unsafe { options.as_ref() } {
            Some(o) => o.opts.clone(),
            None => StreamOptions::default(),
        };
        let stream = ep.ep.open_stream_blocking(path, first, opts)?;
        let h = new_stream(stream, None, None, &HandleCtx::of(ep));
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// Sends `len` bytes at `data` (copied; `data` may be NULL when `len` is
/// 0) as one message, waiting while the receiver's window is full, at most
/// `timeout_ms` milliseconds (negative: no limit; 0: do not wait). Only
/// this stream waits; nothing else on the connection does.
///
/// Errors: `TIMEOUT` (no room in time; nothing was sent and the stream
/// goes on — also the code of a stream that reached its deadline), the
/// code the stream ended with (`CANCELLED`, `TIMEOUT`, `PEER_LOST`, a
/// handler's code), `INVALID_ARGUMENT` (after `netchan_stream_finish()`),
/// `MESSAGE_TOO_LARGE`, `CLOSED`, `WOULD_DEADLOCK` (called from a netchan
/// callback: use `netchan_stream_try_send()`), `NULL_ARGUMENT`.
/// Thread-safe: concurrent sends on one stream go out whole, one after
/// the other.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_send(
    stream: *const netchan_stream,
    data: *const u8,
    len: usize,
    timeout_ms: i64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        would_deadlock("netchan_stream_send")?;
        if runtime_stopped(s.generation) {
            return Err(stopped_error());
        }
        match s
            .blocker
            .block_on_timeout(s.stream.send(payload), timeout_of(timeout_ms))?
        {
            Some(r) => Ok(r?),
            None => Err(FfiError::new(
                netchan_result::Timeout,
                format!(
                    "no room in the receiver's window on {} within {timeout_ms} ms; nothing was sent",
                    s.stream.path()
                ),
            )),
        }
    })
}

/// Sends `len` bytes at `data` as one message if the receiver's window
/// (and the connection's send buffer) has room now; never waits.
///
/// Errors: `BUFFER_FULL` (no room now; nothing was sent), and those of
/// `netchan_stream_send()` except `TIMEOUT` for the wait and
/// `WOULD_DEADLOCK`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_try_send(
    stream: *const netchan_stream,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
        // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the function's contract).
        let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
        if runtime_stopped(s.generation) {
            return Err(stopped_error());
        }
        if s.stream.try_send(&payload)? {
            Ok(())
        } else {
            Err(FfiError::new(
                netchan_result::BufferFull,
                format!(
                    "no room in the receiver's window on {} now; nothing was sent",
                    s.stream.path()
                ),
            ))
        }
    })
}

/// Writes one received message (or the end, as NULL) to `out`, which the
/// caller checked with `arg_out`.
fn message_out(out: *mut *mut netchan_bytes, m: Option<Bytes>) {
    let p = m.map_or(std::ptr::null_mut(), hand_out_bytes);
    // SAFETY: every caller checked `out` with arg_out; it points to writable
    // storage per the calling function's contract.
    unsafe { write_out(out, p) };
}

/// Waits for the next message from the other side, at most `timeout_ms`
/// milliseconds (negative: no limit; 0: do not wait).
///
/// On `NETCHAN_RESULT_OK` writes to `*out` either the message (free it with
/// `netchan_bytes_free()`) or NULL: the other side finished its direction
/// and everything it sent was received (every later call returns the same).
/// After a cancel or a lost link, the messages that arrived before it come
/// first, then the error.
///
/// Errors: `TIMEOUT` (nothing arrived in time; the stream goes on — a
/// stream that reached its deadline also ends with `TIMEOUT`, and then
/// `netchan_stream_try_recv()` reports it too instead of `EMPTY`), the code
/// the stream ended with (`CANCELLED`, `TIMEOUT`, `PEER_LOST`, a handler's
/// code), `CLOSED`, `INVALID_ARGUMENT` (a callback receives this stream's
/// messages), `WOULD_DEADLOCK` (called from a netchan callback: use
/// `netchan_stream_try_recv()`), `NULL_ARGUMENT`. Thread-safe: several
/// threads may wait on one stream; each message goes to one of them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_recv(
    stream: *const netchan_stream,
    timeout_ms: i64,
    out: *mut *mut netchan_bytes,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
        let st = pull(s)?;
        arg_out(out, "out")?;
        would_deadlock("netchan_stream_recv")?;
        if runtime_stopped(s.generation) {
            // No runtime to wait on: what arrived, then CLOSED.
            match st.try_recv()? {
                Some(m) => message_out(out, m),
                None => return Err(stopped_error()),
            }
            return Ok(());
        }
        match s
            .blocker
            .block_on_timeout(st.recv(), timeout_of(timeout_ms))?
        {
            Some(r) => message_out(out, r?),
            None => {
                return Err(FfiError::new(
                    netchan_result::Timeout,
                    format!(
                        "no message on {} within {timeout_ms} ms; the stream goes on",
                        st.path()
                    ),
                ))
            }
        }
        Ok(())
    })
}

/// Takes the next message without waiting. On `NETCHAN_RESULT_OK` writes
/// the message (free it with `netchan_bytes_free()`) or NULL (the other
/// side's direction ended) to `*out`, as `netchan_stream_recv()`.
///
/// Errors: `EMPTY` (nothing here yet), the code the stream ended with,
/// `CLOSED`, `INVALID_ARGUMENT` (a callback receives this stream's
/// messages), `NULL_ARGUMENT`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_try_recv(
    stream: *const netchan_stream,
    out: *mut *mut netchan_bytes,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
        let st = pull(s)?;
        arg_out(out, "out")?;
        match st.try_recv()? {
            Some(m) => message_out(out, m),
            None if runtime_stopped(s.generation) => return Err(stopped_error()),
            None => {
                return Err(FfiError::new(
                    netchan_result::Empty,
                    "no message has arrived on the stream",
                ))
            }
        }
        Ok(())
    })
}

/// Ends this side's direction (half-close): the other side receives what
/// was sent, then the end; receiving goes on. Later sends fail with
/// `INVALID_ARGUMENT`. Idempotent; does nothing on a stream that ended.
/// Never blocks.
///
/// Errors: `NULL_ARGUMENT`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_finish(stream: *const netchan_stream) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        unsafe { arg_stream(stream) }?.stream.finish();
        Ok(())
    })
}

/// Ends the whole stream with `CANCELLED`: this side's sends and receives
/// fail with it at once; the other side receives what was sent before it,
/// then `CANCELLED` (unless this side had finished its direction), and its
/// sends fail with it. Idempotent. Never blocks.
///
/// Errors: `NULL_ARGUMENT`. Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_cancel(stream: *const netchan_stream) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        unsafe { arg_stream(stream) }?.stream.cancel();
        Ok(())
    })
}

/// Ends the whole stream as `netchan_stream_cancel()` does, but with result
/// `code` and the text `detail` (NUL-terminated UTF-8, may be NULL for
/// none), which the other side receives. `code` must be one of the core
/// codes (100 to 999), typically `NETCHAN_RESULT_HANDLER_ERROR`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_ARGUMENT` (code is not
/// a core code; nothing happens). Thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_cancel_with(
    stream: *const netchan_stream,
    code: u32,
    detail: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
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
        s.stream.cancel_with(Error::new(code, detail));
        Ok(())
    })
}

/// The path the stream was opened on, valid until the stream is freed.
/// `{NULL, 0}` if `stream` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_path(stream: *const netchan_stream) -> netchan_str {
    // SAFETY: `stream` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { stream.as_ref() } {
        Some(s) => netchan_str::from(s.stream.path()),
        None => netchan_str::empty(),
    })
}

/// The name of the endpoint at the other side (for a served stream: the
/// opener), valid until the stream is freed. `{NULL, 0}` if `stream` is
/// NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_peer(stream: *const netchan_stream) -> netchan_str {
    // SAFETY: `stream` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { stream.as_ref() } {
        Some(s) => netchan_str::from(s.stream.peer()),
        None => netchan_str::empty(),
    })
}

/// For a stream a service handed out: the first payload its opener sent
/// with the opening, valid until the stream is freed. `{NULL, 0}` for a
/// stream you opened, or if `stream` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_first_payload(
    stream: *const netchan_stream,
) -> netchan_slice {
    ffi_boundary_or(netchan_slice::empty(), || {
        // SAFETY: `stream` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
        match unsafe { stream.as_ref() }.and_then(|s| s.request.as_ref()) {
            Some(r) => netchan_slice::from(r.payload()),
            None => netchan_slice::empty(),
        }
    })
}

/// Milliseconds left before the stream's deadline (the opener's
/// `netchan_stream_options_set_timeout_ms()`, carried on the wire); 0 if
/// it passed or `stream` is NULL; `UINT64_MAX` if the stream has no
/// deadline. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_remaining_ms(stream: *const netchan_stream) -> u64 {
    // SAFETY: `stream` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(0, || match unsafe { stream.as_ref() } {
        Some(s) => match s.stream.deadline() {
            Some(d) => {
                let left = d.saturating_duration_since(tokio::time::Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX - 1)
            }
            None => u64::MAX,
        },
        None => 0,
    })
}

/// Delivers the stream's messages to `callback` from now on, instead of
/// `netchan_stream_recv()` (which then returns `INVALID_ARGUMENT`); see
/// `netchan_stream_callback` for the threads and guarantees. Once per
/// stream.
///
/// `callback` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns.
///
/// Errors: `NULL_ARGUMENT` (also for `callback.call`), `INVALID_ARGUMENT`
/// (a callback was set already), `CLOSED` (`netchan_runtime_shutdown()` stopped
/// the runtime). Thread-safe; callable from callbacks (e.g. from the
/// `netchan_stream_handler` that received the stream).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_on_message(
    stream: *mut netchan_stream,
    callback: netchan_stream_callback,
) -> netchan_result {
    let ctx = Context::new(callback.context, callback.drop);
    ffi_boundary(move || {
        let call = callback
            .call
            .ok_or_else(|| FfiError::null("callback.call"))?;
        // SAFETY: `stream` is NULL or a live stream handle (the function's contract); NULL is refused.
        let s = unsafe { arg_stream(stream) }?;
        if runtime_stopped(s.generation) {
            return Err(stopped_error());
        }
        let mut g = s.slot.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_some() {
            return Err(FfiError::new(
                netchan_result::InvalidArgument,
                "this stream has a message callback already",
            ));
        }
        let slot = Arc::new(Slot::new(StreamCb { call, ctx }));
        *g = Some(slot.clone());
        drop(g);
        let task_stream = s.stream.clone();
        // The handle outlives every call: freeing it stops the slot first.
        let handle = stream as usize;
        s.rt.spawn(async move {
            loop {
                let r = task_stream.recv().await;
                let Some(calling) = slot.enter() else { break };
                let Some(cb) = calling.get() else { break };
                let h = handle as *mut netchan_stream;
                match r {
                    Ok(Some(m)) => {
                        let view = netchan_slice::from(&m);
                        // SAFETY: the callback contract; `view` borrows `m`, alive for the call.
                        unsafe { (cb.call)(cb.ctx.ptr, h, &view, netchan_result::Ok) };
                    }
                    Ok(None) => {
                        // SAFETY: the callback contract.
                        unsafe { (cb.call)(cb.ctx.ptr, h, std::ptr::null(), netchan_result::Ok) };
                        break;
                    }
                    Err(e) => {
                        let e = FfiError::from(e);
                        set_last_error(&e.detail);
                        // SAFETY: the callback contract.
                        unsafe { (cb.call)(cb.ctx.ptr, h, std::ptr::null(), e.code) };
                        break;
                    }
                }
            }
            // Ended: no call can come any more.
            slot.stop();
        });
        Ok(())
    })
}

/// Frees the stream handle. A stream whose two directions have not both
/// ended (finished by each side, or ended by a cancel, the deadline or a
/// lost link) is cancelled first: the other side sees `CANCELLED`. A
/// message callback's `call` never runs after this; from a plain thread it
/// waits for a running call to return and runs `drop` before returning
/// (from inside a callback `drop` runs right after the running call).
/// Frees a handler-served stream's place among its service's
/// `max_concurrent`. NULL, or a stream freed already, is ignored.
/// Thread-safe; callable from callbacks (its own message callback's too).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_free(stream: *mut netchan_stream) {
    ffi_boundary_or((), || {
        // SAFETY: `stream` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        if let Some(b) = unsafe { take_back(stream) } {
            let slot = b.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(slot) = slot {
                slot.stop();
            }
            // The callback task may hold the stream too: end it here, as
            // dropping the last handle of an unfinished one would. A stream
            // that ended both ways is left as it is.
            b.stream.cancel();
        }
    })
}

// --- serving -----------------------------------------------------------------

/// Handles the streams of `netchan_endpoint_serve_stream_callback()`.
///
/// `call(context, stream)` runs once per opened stream on a netchan thread;
/// calls of one service run one at a time, in arrival order. `stream` is
/// owned by you: read its first payload with
/// `netchan_stream_first_payload()`, use it from any thread (or set a
/// `netchan_stream_callback` on it with `netchan_stream_on_message()`),
/// and free it with `netchan_stream_free()`. `call` never runs after
/// `drop`, and `drop(context)` runs exactly once after the last call (when
/// the service is freed or the endpoint closes). `call` must not block for
/// long (hand the stream to another thread instead) and must not throw
/// (C++) or longjmp; blocking netchan functions called from it return
/// `WOULD_DEADLOCK`. `drop` may be NULL.
#[repr(C)]
pub struct netchan_stream_handler {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called for each opened stream; must not be NULL.
    pub call: Option<unsafe extern "C" fn(context: *mut c_void, stream: *mut netchan_stream)>,
    /// Called once after the last call; may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

struct HandlerCb {
    call: unsafe extern "C" fn(*mut c_void, *mut netchan_stream),
    ctx: Context,
}

/// A pattern served with streams: pulled with
/// `netchan_stream_service_accept()` (`netchan_endpoint_serve_stream()`) or
/// run by a handler (`netchan_endpoint_serve_stream_callback()`). Free it
/// with `netchan_stream_service_free()` to stop serving. Thread-safe.
pub struct netchan_stream_service {
    svc: Arc<StreamService>,
    slot: Option<Arc<Slot<HandlerCb>>>,
    ctx: HandleCtx,
}

/// Serves streams on `pattern`. 0 takes the endpoint's setting.
///
/// # Safety
/// `ep` is NULL or a live endpoint handle; `pattern` NULL or a
/// NUL-terminated string readable for the call.
unsafe fn serve_stream<'a>(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    queue: usize,
    window: usize,
) -> Result<(&'a netchan_endpoint, StreamService), FfiError> {
    // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
    let ep: &netchan_endpoint = unsafe { arg_endpoint(ep) }?;
    // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
    let pattern = unsafe { arg_str(pattern, "pattern") }?;
    let mut opts = netchan::ServeOptions::default();
    opts.queue = (queue > 0).then_some(queue);
    opts.window = (window > 0).then_some(window);
    let svc = ep.ep.serve_stream_with(pattern, opts)?;
    Ok((ep, svc))
}

/// Serves streams on `pattern` (wildcards allowed, e.g. `"files/*"`):
/// streams opened on matching paths, locally or by peers, wait in the
/// service's queue until `netchan_stream_service_accept()` takes them
/// (their openers wait meanwhile). At most `queue` wait; past that an open
/// is refused with `BUFFER_FULL`. Each stream's opener may send `window`
/// bytes before this side reads (1 byte to 4 GiB). 0 takes the endpoint's
/// setting (`service_queue`, 1024; the stream window, 1 MiB).
///
/// On success writes the service to `*out`; free it with
/// `netchan_stream_service_free()`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`,
/// `INVALID_ARGUMENT` (window), `CLOSED`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_serve_stream(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    queue: usize,
    window: usize,
    out: *mut *mut netchan_stream_service,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        // SAFETY: the caller's pointers are NULL or valid per this function's contract, which is serve_stream's.
        let (ep, svc) = unsafe { serve_stream(ep, pattern, queue, window) }?;
        let h = hand_out(netchan_stream_service {
            svc: Arc::new(svc),
            slot: None,
            ctx: HandleCtx::of(ep),
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// Serves streams on `pattern` like `netchan_endpoint_serve_stream()`, but
/// hands each opened stream to `handler` (see `netchan_stream_handler`).
/// At most `max_concurrent` streams are in the handler's hands at once
/// (from its call until the stream handle is freed); the next ones wait in
/// the queue, their openers waiting to be accepted. 0 takes the endpoint's
/// setting (`handler_concurrency`, 256; `service_queue`, 1024; the stream
/// window, 1 MiB).
///
/// `handler` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns. On success writes the
/// service to `*out`; free it with `netchan_stream_service_free()`.
///
/// Errors: `NULL_ARGUMENT` (also for `handler.call`), `INVALID_UTF8`,
/// `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_serve_stream_callback(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    max_concurrent: usize,
    queue: usize,
    window: usize,
    handler: netchan_stream_handler,
    out: *mut *mut netchan_stream_service,
) -> netchan_result {
    let ctx = Context::new(handler.context, handler.drop);
    ffi_boundary(move || {
        let call = handler.call.ok_or_else(|| FfiError::null("handler.call"))?;
        arg_out(out, "out")?;
        // SAFETY: the caller's pointers are NULL or valid per this function's contract, which is serve_stream's.
        let (ep, svc) = unsafe { serve_stream(ep, pattern, queue, window) }?;
        let svc = Arc::new(svc);
        let concurrent = match max_concurrent {
            0 => ep.ep.config().handler_concurrency,
            n => n,
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrent));
        let slot = Arc::new(Slot::new(HandlerCb { call, ctx }));
        let hctx = HandleCtx::of(ep);
        let (task_svc, task_slot, task_ctx) = (svc.clone(), slot.clone(), hctx.clone());
        ep.rt.spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let Some((req, stream)) = task_svc.recv().await else {
                    break;
                };
                let calling = task_slot.enter();
                let Some(cb) = calling.as_ref().and_then(|c| c.get()) else {
                    stream.cancel_with(Error::new(
                        ErrorCode::NoResponders,
                        "the stream service was closed",
                    ));
                    continue;
                };
                let h = new_stream(stream, Some(req), Some(permit), &task_ctx);
                // SAFETY: the callback contract; the handler owns `h` from now on.
                unsafe { (cb.call)(cb.ctx.ptr, h) };
            }
            task_slot.stop();
        });
        let h = hand_out(netchan_stream_service {
            svc,
            slot: Some(slot),
            ctx: hctx,
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// The service, for pulling streams: `INVALID_ARGUMENT` for one run by a
/// handler.
fn pull_service(s: &netchan_stream_service) -> Result<&StreamService, FfiError> {
    if s.slot.is_some() {
        return Err(FfiError::new(
            netchan_result::InvalidArgument,
            "a stream service run by a handler hands its streams to the handler",
        ));
    }
    Ok(&s.svc)
}

/// Waits for the next opened stream, at most `timeout_ms` milliseconds
/// (negative: no limit; 0: do not wait), and accepts it (its opener's
/// `netchan_endpoint_open_stream()` returns).
///
/// On `NETCHAN_RESULT_OK` writes the stream to `*out`; read the opener's
/// first payload with `netchan_stream_first_payload()` and its name with
/// `netchan_stream_peer()`; free it with `netchan_stream_free()`.
///
/// Errors: `TIMEOUT` (no stream was opened in time), `CLOSED` (the service
/// or its endpoint is closed), `INVALID_ARGUMENT` (a service run by a
/// handler), `WOULD_DEADLOCK` (called from a netchan callback: use
/// `netchan_stream_service_try_accept()`), `NULL_ARGUMENT`. Thread-safe:
/// several threads may wait on one service; each stream goes to one of
/// them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_service_accept(
    service: *const netchan_stream_service,
    timeout_ms: i64,
    out: *mut *mut netchan_stream,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `service` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let s = unsafe { arg_ref(service, "service") }?;
        let svc = pull_service(s)?;
        arg_out(out, "out")?;
        would_deadlock("netchan_stream_service_accept")?;
        if runtime_stopped(s.ctx.generation) {
            return Err(stopped_error());
        }
        match svc.recv_blocking(timeout_of(timeout_ms))? {
            Some((req, stream)) => {
                let h = new_stream(stream, Some(req), None, &s.ctx);
                // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
                unsafe { write_out(out, h) };
                Ok(())
            }
            None => Err(FfiError::new(
                netchan_result::Timeout,
                format!(
                    "no stream was opened on {} within {timeout_ms} ms",
                    svc.pattern()
                ),
            )),
        }
    })
}

/// Takes and accepts the next opened stream without waiting; on
/// `NETCHAN_RESULT_OK` writes it to `*out` as
/// `netchan_stream_service_accept()` does.
///
/// Errors: `EMPTY` (no stream is waiting), `CLOSED`, `INVALID_ARGUMENT` (a
/// service run by a handler), `NULL_ARGUMENT`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_service_try_accept(
    service: *const netchan_stream_service,
    out: *mut *mut netchan_stream,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `service` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let s = unsafe { arg_ref(service, "service") }?;
        let svc = pull_service(s)?;
        arg_out(out, "out")?;
        if runtime_stopped(s.ctx.generation) {
            return Err(stopped_error());
        }
        match svc.try_recv()? {
            Some((req, stream)) => {
                let h = new_stream(stream, Some(req), None, &s.ctx);
                // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
                unsafe { write_out(out, h) };
                Ok(())
            }
            None => Err(FfiError::new(
                netchan_result::Empty,
                "no opened stream is waiting",
            )),
        }
    })
}

/// The served pattern, valid until the service is freed. `{NULL, 0}` if
/// `service` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_service_pattern(
    service: *const netchan_stream_service,
) -> netchan_str {
    // SAFETY: `service` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(netchan_str::empty(), || match unsafe { service.as_ref() } {
        Some(s) => netchan_str::from(s.svc.pattern()),
        None => netchan_str::empty(),
    })
}

/// Stops serving and frees the handle. Streams still waiting in the queue
/// are refused (their openers get `NO_RESPONDERS`); streams already handed
/// out stay usable until freed. NULL, or a service freed already, is
/// ignored. May be called from any thread and from inside any callback
/// (its own handler's too); from a plain thread it waits for a running
/// handler call to finish and runs `drop` before returning.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_stream_service_free(service: *mut netchan_stream_service) {
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
