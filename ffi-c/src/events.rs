//! Connection and drop events: `netchan_endpoint_on_event()`.

use std::ffi::c_void;
use std::sync::Arc;

use netchan::{Event, EventRecv};

use crate::boundary::{arg_out, ffi_boundary, ffi_boundary_or, hand_out, take_back, write_out};
use crate::callback::{Context, Slot};
use crate::endpoint::{arg_endpoint, netchan_endpoint};
use crate::error::{netchan_result, FfiError};
use crate::types::netchan_str;

/// What a `netchan_event` reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum netchan_event_kind {
    /// A peer completed the handshake: `peer`, `addr`.
    PeerUp = 1,
    /// A peer's connection ended: `peer`, `addr`, `detail` (why), `code`
    /// (`CLOSED` for an orderly close).
    PeerDown = 2,
    /// Messages were dropped by a subscription's overflow policy or because
    /// a peer's send buffer stayed full: `peer` (the pattern or peer name),
    /// `code` (`BUFFER_FULL`), `count`.
    Dropped = 3,
    /// A connection was refused or closed for breaking the protocol or a
    /// limit: `addr`, `code`, `detail`.
    ConnectionError = 4,
    /// The listener fell behind and missed `count` events.
    Missed = 5,
    /// An event this version of the C API does not know; `detail` describes it.
    Other = 99,
}

/// One event, borrowed for the duration of the event callback. Fields that
/// do not apply to the kind are empty (`{NULL, 0}`, 0, `NETCHAN_RESULT_OK`).
/// Fields are only ever appended.
#[repr(C)]
pub struct netchan_event {
    /// What happened.
    pub kind: netchan_event_kind,
    /// The code of the reason, if any.
    pub code: netchan_result,
    /// The peer's name (for `DROPPED`: the pattern or peer name).
    pub peer: netchan_str,
    /// The remote address.
    pub addr: netchan_str,
    /// Why, in words.
    pub detail: netchan_str,
    /// How many (for `DROPPED` and `MISSED`).
    pub count: u64,
}

/// Receives the events of `netchan_endpoint_on_event()`.
///
/// `call(context, event)` runs for each event in order, one at a time, on
/// a netchan thread; `event` and its strings are borrowed for the call.
/// `call` never runs after `drop`, and `drop(context)` runs exactly once
/// after the last call (when the listener is freed or the endpoint is gone).
/// Same rules as the other callbacks: no blocking for long, no throwing;
/// blocking netchan functions return `WOULD_DEADLOCK`. `drop` may be NULL.
#[repr(C)]
pub struct netchan_event_callback {
    /// Passed to `call` and `drop`; may be NULL.
    pub context: *mut c_void,
    /// Called for each event; must not be NULL.
    pub call: Option<unsafe extern "C" fn(context: *mut c_void, event: *const netchan_event)>,
    /// Called once after the last call; may be NULL.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

struct EventCb {
    call: unsafe extern "C" fn(*mut c_void, *const netchan_event),
    ctx: Context,
}

/// A registered event callback; free it with `netchan_event_listener_free()`.
pub struct netchan_event_listener {
    slot: Arc<Slot<EventCb>>,
}

fn deliver(cb: &EventCb, e: &Event) {
    let empty = netchan_str::empty;
    let other;
    let ev = match e {
        Event::PeerUp { peer, addr } => netchan_event {
            kind: netchan_event_kind::PeerUp,
            code: netchan_result::Ok,
            peer: netchan_str::from(peer),
            addr: netchan_str::from(addr),
            detail: empty(),
            count: 0,
        },
        Event::PeerDown {
            peer,
            addr,
            reason,
            code,
        } => netchan_event {
            kind: netchan_event_kind::PeerDown,
            code: (*code).into(),
            peer: netchan_str::from(peer),
            addr: netchan_str::from(addr),
            detail: netchan_str::from(reason),
            count: 0,
        },
        Event::Dropped { site, code, count } => netchan_event {
            kind: netchan_event_kind::Dropped,
            code: (*code).into(),
            peer: netchan_str::from(site),
            addr: empty(),
            detail: empty(),
            count: *count,
        },
        Event::ConnectionError { addr, code, detail } => netchan_event {
            kind: netchan_event_kind::ConnectionError,
            code: (*code).into(),
            peer: empty(),
            addr: netchan_str::from(addr),
            detail: netchan_str::from(detail),
            count: 0,
        },
        e => {
            other = format!("{e:?}");
            netchan_event {
                kind: netchan_event_kind::Other,
                code: netchan_result::Ok,
                peer: empty(),
                addr: empty(),
                detail: netchan_str::from(&other),
                count: 0,
            }
        }
    };
    // SAFETY: the callback contract; `ev` and its strings live for the call.
    unsafe { (cb.call)(cb.ctx.ptr, &ev) };
}

/// Calls `callback` for every connection and drop event of `ep` from now on
/// (see `netchan_event_callback`).
///
/// `callback` is taken over even when this function fails: then `call` is
/// never run and `drop` has run before it returns. On success writes the
/// listener to `*out`; free it with `netchan_event_listener_free()`.
///
/// Errors: `NULL_ARGUMENT` (also for `callback.call`), `CLOSED`
/// (`netchan_shutdown()` stopped the endpoint). Thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_on_event(
    ep: *const netchan_endpoint,
    callback: netchan_event_callback,
    out: *mut *mut netchan_event_listener,
) -> netchan_result {
    let ctx = Context::new(callback.context, callback.drop);
    ffi_boundary(move || {
        let call = callback
            .call
            .ok_or_else(|| FfiError::null("callback.call"))?;
        arg_out(out, "out")?;
        let ep: &netchan_endpoint = unsafe { arg_endpoint(ep) }?;
        let mut events = ep.ep.events();
        let slot = Arc::new(Slot::new(EventCb { call, ctx }));
        let task_slot = slot.clone();
        ep.rt.spawn(async move {
            loop {
                let r = events.recv().await;
                let Some(calling) = task_slot.enter() else {
                    break;
                };
                let Some(cb) = calling.get() else { break };
                match r {
                    EventRecv::Event(e) => deliver(cb, &e),
                    EventRecv::Missed(n) => {
                        let ev = netchan_event {
                            kind: netchan_event_kind::Missed,
                            code: netchan_result::Ok,
                            peer: netchan_str::empty(),
                            addr: netchan_str::empty(),
                            detail: netchan_str::empty(),
                            count: n,
                        };
                        // SAFETY: the callback contract.
                        unsafe { (cb.call)(cb.ctx.ptr, &ev) };
                    }
                    EventRecv::Closed => break,
                }
            }
            task_slot.stop();
        });
        unsafe { write_out(out, hand_out(netchan_event_listener { slot })) };
        Ok(())
    })
}

/// Stops the event callback and frees the listener. NULL, or a listener
/// freed already, is ignored. Callable from any thread and any callback;
/// from a plain thread it waits for a running call and runs `drop` before
/// returning.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_event_listener_free(listener: *mut netchan_event_listener) {
    ffi_boundary_or((), || {
        if let Some(b) = unsafe { take_back(listener) } {
            b.slot.stop();
        }
    })
}
