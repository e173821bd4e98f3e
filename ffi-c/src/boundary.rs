//! The API boundary: panic catching, argument checks and the registry of
//! live handles.
//!
//! Every exported function's body is one call to [`ffi_boundary`] (functions
//! that return a result code) or [`ffi_boundary_or`] (functions that return a
//! value or nothing). `tests/c/check_boundary.py` checks that for every
//! function in `include/netchan.h`.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use crate::error::{netchan_result, set_last_error, FfiError};

/// Runs `f`, turning its error or a panic into a result code and recording
/// the detail as this thread's last error.
pub(crate) fn ffi_boundary(f: impl FnOnce() -> Result<(), FfiError>) -> netchan_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => netchan_result::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.detail);
            e.code
        }
        Err(p) => {
            set_last_error(&panic_text(&*p));
            netchan_result::Panic
        }
    }
}

/// Runs `f` for a function without a result code; `default` if it panics.
pub(crate) fn ffi_boundary_or<T>(default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            set_last_error(&panic_text(&*p));
            default
        }
    }
}

fn panic_text(p: &(dyn Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal panic (a bug in netchan, please report it): {what}")
}

/// A shared reference from a pointer argument that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a live `T` for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, FfiError> {
    // SAFETY: `p` is NULL or valid for this call (the function's contract); as_ref maps NULL to None.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// A `&str` from a NUL-terminated UTF-8 argument that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string live for `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: checked non-NULL above; NUL-terminated and readable for this
    // call per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
        FfiError::new(
            netchan_result::InvalidUtf8,
            format!("argument `{name}` is not valid UTF-8: {e}"),
        )
    })
}

/// A byte slice from `(data, len)`; `data` may be NULL only when `len` is 0.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes live for `'a`.
pub(crate) unsafe fn arg_bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::null("data"));
    }
    // SAFETY: non-NULL and len > 0 here (checked above); `len` readable
    // bytes per the caller's contract, not written during the call.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// An array of `len` values at `data`; `data` may be NULL only when `len`
/// is 0.
///
/// # Safety
/// `data` is NULL or points to `len` readable, initialised, aligned `T`s
/// live for `'a`.
pub(crate) unsafe fn arg_array<'a, T>(
    data: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL and len > 0 here (checked above); `len` readable
    // values per the caller's contract, not written during the call.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Checks that an out-pointer is not NULL.
pub(crate) fn arg_out<T>(p: *mut T, name: &str) -> Result<(), FfiError> {
    if p.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(())
    }
}

/// Writes `v` through an out-pointer already checked by [`arg_out`].
///
/// # Safety
/// `p` is a valid, writable, non-NULL `*mut T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T) {
    // SAFETY: the caller checked `p` with arg_out (non-NULL) and it points
    // to writable, suitably aligned storage per this function's contract.
    unsafe { p.write(v) }
}

/// Addresses of the objects the library has handed out and not yet freed,
/// with their type, so that a second free of the same pointer (or a free of
/// a borrowed pointer, or of the wrong type) is detected and ignored.
///
/// Messages pass through here once each, so it is sharded by address (no
/// contention between a receiving and a freeing thread) and hashes with a
/// multiply instead of SipHash (the keys are our own addresses).
const SHARDS: usize = 16;
type Registry = HashMap<usize, &'static str, BuildHasherDefault<AddrHasher>>;
static LIVE: [Mutex<Option<Registry>>; SHARDS] = [const { Mutex::new(None) }; SHARDS];

#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn live(addr: usize) -> MutexGuard<'static, Option<Registry>> {
    // Heap blocks are 16-byte aligned: skip the always-zero bits.
    LIVE[(addr >> 4) % SHARDS]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Records `addr` as a live object of type `tag`.
pub(crate) fn register_raw(addr: usize, tag: &'static str) {
    live(addr)
        .get_or_insert_with(Registry::default)
        .insert(addr, tag);
}

/// Forgets `addr` if it is a live object of type `tag`; false otherwise.
pub(crate) fn unregister_raw(addr: usize, tag: &'static str) -> bool {
    let mut g = live(addr);
    let Some(map) = g.as_mut() else { return false };
    match map.get(&addr) {
        Some(t) if *t == tag => {
            map.remove(&addr);
            true
        }
        _ => false,
    }
}

/// Moves `v` to the heap, records it as live and returns the raw pointer the
/// caller will own.
pub(crate) fn hand_out<T>(v: T) -> *mut T {
    let p = Box::into_raw(Box::new(v));
    register_raw(p as usize, std::any::type_name::<T>());
    p
}

/// Takes back an object handed out by [`hand_out`]; `None` for NULL, a
/// pointer freed already, or a pointer to another type.
///
/// # Safety
/// `p` is NULL, or was returned by `hand_out::<T>`.
pub(crate) unsafe fn take_back<T>(p: *mut T) -> Option<Box<T>> {
    if p.is_null() || !unregister_raw(p as usize, std::any::type_name::<T>()) {
        return None;
    }
    // SAFETY: the registry held `p`, so hand_out made it with Box::into_raw
    // and nobody has taken it back since (unregister_raw removed it now).
    Some(unsafe { Box::from_raw(p) })
}

/// Releases the registry's own memory where nothing is live (shutdown), so a
/// leak checker sees every block freed.
pub(crate) fn release_registry_if_empty() {
    for shard in &LIVE {
        let mut g = shard.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|m| m.is_empty()) {
            *g = None;
        }
    }
}

/// How many handed-out objects are live (tests).
#[cfg(test)]
pub(crate) fn live_count() -> usize {
    LIVE.iter()
        .map(|s| s.lock().unwrap().as_ref().map_or(0, |m| m.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_result_code_with_detail() {
        let r = ffi_boundary(|| panic!("boom"));
        assert_eq!(r, netchan_result::Panic);
        // SAFETY: netchan_last_error returns a NUL-terminated thread-local
        // string valid until the next call on this thread.
        let last = unsafe { CStr::from_ptr(crate::error::netchan_last_error()) };
        assert!(last.to_str().unwrap().contains("boom"));
        assert_eq!(ffi_boundary_or(7, || panic!("x")), 7);
    }

    #[test]
    fn double_take_back_and_wrong_type_are_ignored() {
        let p = hand_out(5u32);
        // SAFETY: take_back looks the address up in its registry before it
        // touches it; an address never handed out is refused.
        assert!(unsafe { take_back(p as *mut u64) }.is_none());
        // SAFETY: `p` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        assert_eq!(*unsafe { take_back(p) }.unwrap(), 5);
        // SAFETY: `p` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        assert!(unsafe { take_back(p) }.is_none());
        // SAFETY: take_back maps NULL to None before touching anything.
        assert!(unsafe { take_back::<u32>(std::ptr::null_mut()) }.is_none());
    }
}
