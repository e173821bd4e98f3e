//! Borrowed views (`netchan_str`, `netchan_slice`), library-allocated
//! strings, and owned byte buffers (`netchan_bytes`).

use std::ffi::{c_char, CString};

use netchan::Bytes;

use crate::boundary::{ffi_boundary_or, hand_out, register_raw, take_back, unregister_raw};

/// A borrowed UTF-8 string: `len` bytes at `data`, not NUL-terminated
/// (print it with `printf("%.*s", (int)s.len, s.data)`). Valid as long as the
/// object it came from; never free it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct netchan_str {
    /// The first byte (NULL only when `len` is 0).
    pub data: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

impl netchan_str {
    pub(crate) fn from(s: &str) -> netchan_str {
        netchan_str {
            data: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    pub(crate) fn empty() -> netchan_str {
        netchan_str {
            data: std::ptr::null(),
            len: 0,
        }
    }
}

/// A borrowed byte buffer: `len` bytes at `data`. Valid as long as the object
/// it came from; never free it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct netchan_slice {
    /// The first byte (NULL only when `len` is 0).
    pub data: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl netchan_slice {
    pub(crate) fn from(b: &[u8]) -> netchan_slice {
        netchan_slice {
            data: b.as_ptr(),
            len: b.len(),
        }
    }

    pub(crate) fn empty() -> netchan_slice {
        netchan_slice {
            data: std::ptr::null(),
            len: 0,
        }
    }
}

const STRING_TAG: &str = "netchan string";

/// A NUL-terminated copy of `s` that the caller frees with
/// `netchan_string_free`.
pub(crate) fn hand_out_string(s: &str) -> *mut c_char {
    let p = CString::new(s.replace('\0', ""))
        .unwrap_or_default()
        .into_raw();
    register_raw(p as usize, STRING_TAG);
    p
}

/// Frees a string returned by the library (`netchan_endpoint_listen`'s bound
/// address, `netchan_endpoint_connect`'s peer name, ...).
///
/// `s` may be NULL (nothing happens). A string not returned by netchan, or
/// freed already, is ignored rather than freed. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_string_free(s: *mut c_char) {
    ffi_boundary_or((), || {
        if !s.is_null() && unregister_raw(s as usize, STRING_TAG) {
            // SAFETY: registered by hand_out_string, so made by CString::into_raw.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// An owned byte buffer made by the library (the reply of
/// `netchan_endpoint_request_blocking`). Read it with `netchan_bytes_data()`,
/// free it with `netchan_bytes_free()`.
pub struct netchan_bytes {
    pub(crate) bytes: Bytes,
}

/// The contents of `bytes`, valid until `netchan_bytes_free(bytes)`.
///
/// `bytes` may be NULL (returns `{NULL, 0}`). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_bytes_data(bytes: *const netchan_bytes) -> netchan_slice {
    ffi_boundary_or(netchan_slice::empty(), || {
        // SAFETY: NULL or a live netchan_bytes, per the contract.
        match unsafe { bytes.as_ref() } {
            Some(b) => netchan_slice::from(&b.bytes),
            None => netchan_slice::empty(),
        }
    })
}

/// Frees a `netchan_bytes`. NULL, or a pointer freed already, is ignored.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_bytes_free(bytes: *mut netchan_bytes) {
    // SAFETY: `bytes` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(bytes) }))
}

pub(crate) fn hand_out_bytes(bytes: Bytes) -> *mut netchan_bytes {
    hand_out(netchan_bytes { bytes })
}
