//! The C ABI of netchan: the only crate with `extern "C"` and raw pointers.
//!
//! Built into `libnetchan.so` / `libnetchan.a` by the root package; the
//! header `include/netchan.h` is generated from this crate by cbindgen, and
//! `docs/C-API.md` states the conventions the docs below rely on.
//!
//! ## Layout
//!
//! - `boundary`: the panic boundary every exported function runs in,
//!   argument checks, and the registry of live handles (double frees are
//!   ignored).
//! - `error`: `netchan_result` (the core's `ErrorCode` numbers plus C-only
//!   codes), static texts, the thread-local last error.
//! - `callback`: `{context, call, drop}` ownership and the gate that lets a
//!   handle be freed from inside any callback.
//! - `types`: borrowed views (`netchan_str`, `netchan_slice`), returned
//!   strings and byte buffers.
//! - `options`: the endpoint and subscription option builders.
//! - `endpoint`, `sub`, `serve`, `stream`, `events`, `discovery`, `publisher`,
//!   `request`, `security`: the API proper.
//!
//! ## Threads
//!
//! Callbacks run on netchan's runtime threads. Blocking functions use
//! `Endpoint::block_on`, which refuses (`WOULD_DEADLOCK`) on those threads.
//! Each handle remembers the runtime generation it was made in; after
//! `netchan_runtime_shutdown()` a handle of an older generation reports `CLOSED`
//! rather than touch a runtime that is gone.
//!
//! ## Test-only exports
//!
//! The cargo feature `test-panic` (off by default, never enabled by the
//! root package) adds `netchan_test_panic()`, which panics inside the
//! boundary; tests/c/run.sh builds it as `libnetchan_ffi` for one C test.

#![warn(missing_docs)]
// Every unsafe block says why it is sound (issue 15).
#![deny(clippy::undocumented_unsafe_blocks)]
// Every pointer rule is stated once in docs/C-API.md ("Pointers") and per
// function in its doc comment (which pointers may be NULL); a `# Safety`
// section on each of ~70 exported functions would repeat it.
#![allow(clippy::missing_safety_doc)]
// The Rust type names are the C names (STYLE.md, Naming).
#![allow(non_camel_case_types)]

mod boundary;
mod callback;
mod discovery;
mod endpoint;
mod error;
mod events;
mod options;
mod publisher;
mod request;
mod security;
mod serve;
mod stream;
mod sub;
mod types;

use std::ffi::c_char;
use std::time::Duration;

pub use discovery::*;
pub use endpoint::{
    netchan_endpoint, netchan_endpoint_close, netchan_endpoint_connect, netchan_endpoint_free,
    netchan_endpoint_listen, netchan_endpoint_name, netchan_endpoint_new, netchan_endpoint_ping,
    netchan_endpoint_publish, netchan_endpoint_request, netchan_endpoint_request_blocking,
    netchan_endpoint_stats, netchan_endpoint_try_publish, netchan_endpoint_wait_for_servers,
    netchan_endpoint_wait_for_subscribers, netchan_result_callback, netchan_stats,
};
pub use error::{netchan_last_error, netchan_result, netchan_result_name, netchan_result_str};
pub use events::{
    netchan_endpoint_on_event, netchan_event, netchan_event_callback, netchan_event_kind,
    netchan_event_listener, netchan_event_listener_free,
};
pub use options::*;
pub use publisher::*;
pub use request::*;
pub use security::*;
pub use serve::*;
pub use stream::*;
pub use sub::*;
pub use types::{
    netchan_bytes, netchan_bytes_data, netchan_bytes_free, netchan_slice, netchan_str,
    netchan_string_free,
};

use boundary::ffi_boundary_or;

/// Major version of the library.
pub const NETCHAN_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const NETCHAN_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const NETCHAN_VERSION_PATCH: u32 = 0;

/// The library version as `major * 10000 + minor * 100 + patch`; compare it
/// with `NETCHAN_VERSION_MAJOR` etc. from the header you compiled against.
///
/// Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_version() -> u32 {
    ffi_boundary_or(0, || {
        NETCHAN_VERSION_MAJOR * 10000 + NETCHAN_VERSION_MINOR * 100 + NETCHAN_VERSION_PATCH
    })
}

/// The library version as a static string, e.g. `"0.1.0"`. Never free it.
///
/// Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_version_string() -> *const c_char {
    ffi_boundary_or(c"".as_ptr(), || {
        const V: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
            concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
        ) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
        V.as_ptr()
    })
}

/// Stops netchan's runtime and joins its threads, waiting up to
/// `timeout_ms` milliseconds, and frees the library's global memory, so a
/// leak checker sees every block freed. Call it last, after freeing every
/// handle. A request still in flight has its result callback run with
/// `CANCELLED` before this returns; no other callback is called again, and
/// each one's `drop` runs once, at the latest when its handle is freed.
/// Handles still alive may still be read, closed and freed, but every
/// endpoint function that needs the runtime (listen, connect, publish,
/// request, ping, wait, subscribe, serve, on_event) returns `CLOSED`, and a
/// pull subscription hands out what it had queued, then `CLOSED`. A later
/// `netchan_endpoint_new()` starts a fresh runtime.
///
/// Errors: `WOULD_DEADLOCK` when called from a netchan callback (nothing is
/// stopped). Call from one thread, with no other netchan call running.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_runtime_shutdown(timeout_ms: u64) -> netchan_result {
    boundary::ffi_boundary(|| {
        if netchan::runtime::in_async_context() {
            return Err(error::FfiError::new(
                netchan_result::WouldDeadlock,
                "netchan_runtime_shutdown called from a netchan callback",
            ));
        }
        endpoint::RUNTIME_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        netchan::runtime::shutdown(Duration::from_millis(timeout_ms));
        boundary::release_registry_if_empty();
        error::clear_last_error();
        Ok(())
    })
}

/// Test-only (cargo feature `test-panic`, off by default): panics with the
/// text `msg` inside the panic boundary, so that a C test can check that a
/// panic reaches the caller as `NETCHAN_RESULT_PANIC` with the panic text in
/// `netchan_last_error()`, and that the library works afterwards. Never in
/// include/netchan.h (the line below tells cbindgen) nor in libnetchan.
/// cbindgen:ignore
#[cfg(feature = "test-panic")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_test_panic(msg: *const c_char) -> netchan_result {
    boundary::ffi_boundary(|| {
        // SAFETY: `msg` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let msg = unsafe { boundary::arg_str(msg, "msg") }?;
        panic!("{msg}")
    })
}

#[doc(hidden)]
pub use netchan as _core;

#[cfg(test)]
mod tests {
    #[test]
    fn version_string_matches_the_numbers() {
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(super::netchan_version_string()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(super::netchan_version(), 100);
        assert!(super::boundary::live_count() < usize::MAX);
    }

    #[cfg(feature = "test-panic")]
    #[test]
    fn an_injected_panic_comes_back_as_a_result_code() {
        // SAFETY: a valid NUL-terminated string literal.
        let r = unsafe { super::netchan_test_panic(c"unit".as_ptr()) };
        assert_eq!(r, super::netchan_result::Panic);
        // SAFETY: netchan_last_error returns a NUL-terminated thread-local
        // string valid until the next call on this thread.
        let last = unsafe { std::ffi::CStr::from_ptr(super::netchan_last_error()) };
        assert!(last.to_str().unwrap().ends_with(": unit"), "{last:?}");
    }
}
