//! # netchan's Python binding (`netchan._native`)
//!
//! The compiled half of the `netchan` Python package; the pure-Python half
//! (`python/netchan/`) adds the error classes, callback threads, the asyncio
//! wrapper and the typed stubs.
//!
//! ## Layout
//!
//! - `bridge`: how Python threads wait for the core's runtime (through the
//!   core's `Blocker`, GIL released, Ctrl-C checked every 20 ms), how asyncio
//!   futures are completed (a dispatcher thread calls
//!   `loop.call_soon_threadsafe`), and the exit sequence that makes
//!   interpreter shutdown safe (TOOLCHAINS P1).
//! - `feed`: the receive side of subscriptions, services and event streams,
//!   thin pumps over the core's queues (blocking waits through the
//!   `Blocker`, asyncio waits through the core's readiness hooks).
//! - `stream`: bidirectional streams (`Stream`, `StreamRequest`,
//!   `StreamService`) over the core's, blocking and asyncio.
//! - `endpoint`: the `Endpoint` class and its small value classes.
//! - `errors`: core errors become instances of the Python classes in
//!   `netchan/_errors.py` (built-in subclasses carrying `.code`).
//! - `logbridge`: core `tracing` events reach Python `logging` (logger
//!   `netchan`) through the dispatcher thread, never from a network thread.
//! - `msgpack`: plain msgpack of Python values, readable by every binding.
//!
//! ## Threads
//!
//! The core runs on its own multi-thread runtime. Its threads never take the
//! GIL: whatever must run Python code (asyncio completions, log records,
//! callbacks) is handed to a Python thread through a queue.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use pyo3::prelude::*;

mod bridge;
mod endpoint;
mod errors;
mod feed;
mod logbridge;
mod msgpack;
mod stream;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bridge::init(m.py())?;
    errors::prime(m.py())?;
    logbridge::install();
    m.add_class::<endpoint::Endpoint>()?;
    m.add_class::<endpoint::PeerInfo>()?;
    m.add_class::<endpoint::Publisher>()?;
    m.add_class::<feed::Message>()?;
    m.add_class::<feed::Subscription>()?;
    m.add_class::<feed::Request>()?;
    m.add_class::<feed::Service>()?;
    m.add_class::<feed::Event>()?;
    m.add_class::<feed::Events>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<stream::StreamRequest>()?;
    m.add_class::<stream::StreamService>()?;
    m.add_function(wrap_pyfunction!(bridge::dispatch_forever, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::resolve, m)?)?;
    m.add_function(wrap_pyfunction!(feed::_event_examples, m)?)?;
    m.add_function(wrap_pyfunction!(msgpack::pack, m)?)?;
    m.add_function(wrap_pyfunction!(msgpack::unpack, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(logbridge::refresh_log_level, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
