//! libnetchan: the distributable C library. Every exported symbol is defined
//! in the `netchan-ffi` crate (`ffi-c/`); this crate re-exports it so that the
//! cdylib and staticlib carry the symbols.
pub use netchan_ffi::*;
