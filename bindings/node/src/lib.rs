//! Node.js binding of netchan, built with napi-rs into `netchan.<triple>.node`.
//!
//! This crate exposes *native* classes (`NativeEndpoint`, `NativeSubscription`,
//! ...) that the hand-written JavaScript layer (`netchan.js`) wraps into the
//! public API: `Endpoint` with Promises, async iterators, `AbortSignal`,
//! events and msgpack helpers.
//!
//! ## Layout
//!
//! - this file: errors (`err.code` is the core's symbolic name).
//! - `exec`: the promise bridge. Core futures are polled on the JS thread
//!   and woken by the core through one thread-safe function per JS thread;
//!   no runtime task per call. A pending promise keeps Node alive, which is
//!   what a pending request or an active subscription should do.
//! - `endpoint`: `NativeEndpoint`, options, stats, peers.
//! - `recv`: subscriptions (pulled in batches from the core's queue through
//!   its readiness hook), services and requests.
//! - `stream`: bidirectional streams, each operation the core's; served
//!   streams go to JS handlers through the core's handler runner.
//! - `events`: endpoint events, pushed through a *weak*, bounded
//!   thread-safe function (events never keep the process alive; when the
//!   JS thread is stalled and the queue is full, events are counted as missed).
//!
//! ## Threads
//!
//! Every native call is made on the JS thread, and promise-returning calls
//! poll their core futures there too (inside the runtime's context). The
//! core's I/O runs on its own multi-thread runtime; JS code never runs
//! there, so a slow JS callback cannot stall the network, and a stalled
//! event loop only fills the subscription's bounded queue (its overflow
//! policy then applies).

#![deny(clippy::all)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::runtime::Handle;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use netchan::ErrorCode;

mod endpoint;
mod events;
mod exec;
mod recv;
mod stream;

/// The status of a thrown error: the core's symbolic code (`"TIMEOUT"`, ...),
/// which napi puts in the JS error's `code` property.
#[derive(Clone, Copy, Debug)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<Status> for Code {
    fn from(s: Status) -> Code {
        match s {
            Status::InvalidArg | Status::ObjectExpected | Status::StringExpected => {
                Code("INVALID_ARGUMENT")
            }
            _ => Code("INTERNAL"),
        }
    }
}

/// An error with a code and message, for argument checks.
pub fn code_err(code: ErrorCode, msg: impl Into<String>) -> netchan::Error {
    netchan::Error::new(code, msg)
}

/// Builds the JS error object for a core error (on the JS thread) and wraps
/// it, so that napi throws or rejects with exactly that object: an `Error`
/// whose `code` is the core's symbolic name. (napi's own `Status` codes
/// cannot carry those names.)
pub fn throw(env: &Env, e: netchan::Error) -> napi::Error {
    let js = JsError::from(napi::Error::new(
        Code(e.code().name()),
        e.detail().to_string(),
    ))
    .into_unknown(*env);
    napi::Error::from(js)
}

/// `.or_throw(env)` on core results at the native boundary.
pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for netchan::Result<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|e| throw(env, e))
    }
}

pub use exec::{held_promise, held_promise_spin, promise, promise_spin, Hold};

/// Polls a future once without a waker: its output if it completes at once.
/// Used for fast paths (a publish that finds room, a queue with messages).
/// The poll runs inside `rt`'s context: a core future that has to wait
/// creates timers and I/O registrations, which need it.
pub fn poll_now<F: Future + ?Sized>(rt: &Handle, fut: Pin<&mut F>) -> Option<F::Output> {
    let _rt = rt.enter();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match fut.poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Every error code name, in numeric order (the JS layer exports them).
#[napi]
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// The version of the native addon (the workspace version).
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
