//! The C ABI of netchan: the only crate with `extern "C"` and raw pointers.
//!
//! Built into `libnetchan.so` / `libnetchan.a` by the root package; the
//! header `include/netchan.h` is generated from this crate by cbindgen.

#![warn(missing_docs)]

/// Major version of the library.
pub const NETCHAN_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const NETCHAN_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const NETCHAN_VERSION_PATCH: u32 = 0;

/// The library version as `major * 10000 + minor * 100 + patch`.
///
/// Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn netchan_version() -> u32 {
    NETCHAN_VERSION_MAJOR * 10000 + NETCHAN_VERSION_MINOR * 100 + NETCHAN_VERSION_PATCH
}

#[doc(hidden)]
pub use netchan as _core;
