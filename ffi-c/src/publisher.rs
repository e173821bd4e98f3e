//! Publishing more than one message per call: declared publishers
//! (`netchan_publisher`, discoverable, with a cached route) and
//! `netchan_endpoint_publish_many()`.

use std::ffi::c_char;

use netchan::{Bytes, Publisher};

use crate::boundary::{
    arg_array, arg_bytes, arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out,
    take_back, write_out,
};
use crate::endpoint::{arg_endpoint, netchan_endpoint, runtime_stopped, stopped_error};
use crate::error::{netchan_result, FfiError};
use crate::types::{netchan_slice, netchan_str};

/// A publisher declaration: peers see it in `netchan_endpoint_publishers()`
/// (an intent), and it publishes on paths its pattern matches through a
/// cache of the route it used last. Free it with `netchan_publisher_free()`,
/// which withdraws the declaration. Thread-safe.
pub struct netchan_publisher {
    publisher: Publisher,
    /// Its endpoint's runtime generation (see `endpoint::runtime_stopped`).
    generation: u64,
}

/// Declares that this endpoint publishes on `pattern` (wildcards allowed)
/// and returns a publisher for it. On success writes it to `*out`.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`, `CLOSED`.
/// Never blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_declare_publisher(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_publisher,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let pattern = unsafe { arg_str(pattern, "pattern") }?;
        arg_out(out, "out")?;
        let publisher = ep.ep.declare_publisher(pattern)?;
        let p = hand_out(netchan_publisher {
            publisher,
            generation: ep.generation,
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, p) };
        Ok(())
    })
}

/// The declared pattern, valid until the publisher is freed. `{NULL, 0}`
/// if `publisher` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_publisher_pattern(
    publisher: *const netchan_publisher,
) -> netchan_str {
    ffi_boundary_or(netchan_str::empty(), || {
        // SAFETY: `publisher` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
        match unsafe { publisher.as_ref() } {
            Some(p) => netchan_str::from(p.publisher.pattern()),
            None => netchan_str::empty(),
        }
    })
}

/// # Safety
/// `publisher` is NULL or a live `netchan_publisher` for `'a`.
unsafe fn arg_publisher<'a>(
    publisher: *const netchan_publisher,
) -> Result<&'a Publisher, FfiError> {
    // SAFETY: NULL or live (the caller's contract); NULL is refused.
    let p = unsafe { arg_ref(publisher, "publisher") }?;
    if runtime_stopped(p.generation) {
        return Err(stopped_error());
    }
    Ok(&p.publisher)
}

/// The publisher, path and (copied) payload of a publish through it.
///
/// # Safety
/// `publisher` is NULL or a live publisher; `path` NULL or a NUL-terminated
/// string readable for `'a`; `data` readable for `len` bytes, or `len` is 0.
unsafe fn publish_args<'a>(
    publisher: *const netchan_publisher,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> Result<(&'a Publisher, &'a str, Bytes), FfiError> {
    // SAFETY: `publisher` is NULL or a live handle from this library (the caller's contract); NULL is refused.
    let p = unsafe { arg_publisher(publisher) }?;
    // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the caller's contract); NULL and bad UTF-8 are refused.
    let path = unsafe { arg_str(path, "path") }?;
    // SAFETY: `data` points to `len` readable bytes for this call, or `len` is 0 (the caller's contract).
    let payload = Bytes::copy_from_slice(unsafe { arg_bytes(data, len) }?);
    Ok((p, path, payload))
}

/// As `netchan_endpoint_publish()`, on `path`, which the declared pattern
/// must match.
///
/// Errors: as `netchan_endpoint_publish()`; `INVALID_PATH` also for a path
/// the pattern does not match. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_publisher_publish(
    publisher: *const netchan_publisher,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: the arguments are forwarded under this function's contract.
        let (p, path, payload) = unsafe { publish_args(publisher, path, data, len) }?;
        if netchan::runtime::in_async_context() {
            p.try_publish(path, payload)?;
        } else {
            p.publish_blocking(path, payload)?;
        }
        Ok(())
    })
}

/// As `netchan_endpoint_try_publish()` (never waits), on `path`, which the
/// declared pattern must match.
///
/// Errors: as `netchan_publisher_publish()`. Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_publisher_try_publish(
    publisher: *const netchan_publisher,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: the arguments are forwarded under this function's contract.
        let (p, path, payload) = unsafe { publish_args(publisher, path, data, len) }?;
        p.try_publish(path, payload)?;
        Ok(())
    })
}

/// Withdraws the declaration (peers are told) and frees the publisher.
/// NULL, or a publisher freed already, is ignored. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_publisher_free(publisher: *mut netchan_publisher) {
    // SAFETY: `publisher` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(publisher) }))
}

/// Publishes `count` payloads on `path`, in order, in one call: each as
/// `netchan_endpoint_publish()` would. Stops at the first error; when
/// `published` is not NULL, writes how many were published before it (all
/// `count` on success). `payloads` may be NULL when `count` is 0; each
/// slice's `data` may be NULL when its `len` is 0. Payloads are copied.
///
/// Errors: as `netchan_endpoint_publish()` (the last error names the index
/// of the payload that failed). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_publish_many(
    ep: *const netchan_endpoint,
    path: *const c_char,
    payloads: *const netchan_slice,
    count: usize,
    published: *mut usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `payloads` points to `count` readable slices, or `count` is 0 (the function's contract).
        let slices = unsafe { arg_array(payloads, count, "payloads") }?;
        let in_async = netchan::runtime::in_async_context();
        let mut done = 0usize;
        let mut outcome = Ok(());
        for (i, s) in slices.iter().enumerate() {
            // SAFETY: each slice points to `len` readable bytes, or `len` is 0 (the function's contract).
            let r = unsafe { arg_bytes(s.data, s.len) }.and_then(|b| {
                let payload = Bytes::copy_from_slice(b);
                let r = if in_async {
                    ep.ep.try_publish(path, payload)
                } else {
                    ep.ep.publish_blocking(path, payload)
                };
                r.map_err(FfiError::from)
            });
            if let Err(mut e) = r {
                e.detail = format!("payload {i}: {}", e.detail);
                outcome = Err(e);
                break;
            }
            done += 1;
        }
        if !published.is_null() {
            // SAFETY: non-NULL, so writable storage (the function's contract).
            unsafe { write_out(published, done) };
        }
        outcome
    })
}
