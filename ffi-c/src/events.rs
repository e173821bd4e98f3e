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
    /// A peer completed the handshake: `peer`, `addr`, `identity` (what it
    /// proved: `cert:NAME`, `key:ID`, `uid:N` or `anonymous`).
    PeerUp = 1,
    /// A peer's connection ended: `peer`, `addr`, `detail` (why), `code`
    /// (`CLOSED` for an orderly close).
    PeerDown = 2,
    /// Messages were dropped: `peer` (the pattern or peer name), `code`,
    /// `count`. `BUFFER_FULL`: by a subscription's overflow policy, or
    /// because a peer's send buffer stayed full or its credit ran out;
    /// `PEER_LOST`: lost with the link to the peer; `RATE_LIMITED`: the
    /// peer sent past its rate limit (`rate_limit.*` settings).
    Dropped = 3,
    /// A connection was refused or closed for breaking the protocol or a
    /// limit: `addr`, `code`, `detail`, `count` (failed attempts from that
    /// address, without its port, so far).
    ConnectionError = 4,
    /// The listener fell behind and missed `count` events.
    Missed = 5,
    /// A dialled peer was lost and will be redialled: `addr`, `count` (the
    /// attempt, 1 for the first after the loss), `delay_ms` (the wait
    /// before it).
    Reconnecting = 6,
    /// Redialling `addr` stopped for good (the failure cannot be fixed by
    /// retrying): `code`, `detail`.
    ReconnectAbandoned = 7,
    /// `netchan_endpoint_suspend()` closed every link and listener.
    Suspended = 8,
    /// `netchan_endpoint_resume()` listens and dials again.
    Resumed = 9,
    /// The access rules denied a peer something: `peer`, `identity`,
    /// `detail` (the action: `publish`, `subscribe`, `serve`, `request` or
    /// `stream`), `path` (the path or pattern). Counted in the stats'
    /// `denied`.
    Denied = 10,
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
    /// How many (for `DROPPED` and `MISSED`); the attempt (for
    /// `RECONNECTING`).
    pub count: u64,
    /// The delay before the attempt, in milliseconds (for `RECONNECTING`).
    pub delay_ms: u64,
    /// What the peer proved (for `PEER_UP` and `DENIED`).
    pub identity: netchan_str,
    /// The path or pattern (for `DENIED`).
    pub path: netchan_str,
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

/// The C form of `e`, with every field it has; `None` for a kind this
/// version does not know (then `OTHER`, described in `detail`).
fn to_c(e: &Event) -> Option<netchan_event> {
    let s = netchan_str::from;
    let mut ev = netchan_event {
        kind: netchan_event_kind::Other,
        code: netchan_result::Ok,
        peer: netchan_str::empty(),
        addr: netchan_str::empty(),
        detail: netchan_str::empty(),
        count: 0,
        delay_ms: 0,
        identity: netchan_str::empty(),
        path: netchan_str::empty(),
    };
    match e {
        Event::PeerUp {
            peer,
            addr,
            identity,
        } => {
            ev.kind = netchan_event_kind::PeerUp;
            (ev.peer, ev.addr, ev.identity) = (s(peer), s(addr), s(identity));
        }
        Event::Denied {
            peer,
            identity,
            action,
            path,
        } => {
            ev.kind = netchan_event_kind::Denied;
            (ev.peer, ev.identity, ev.detail, ev.path) = (s(peer), s(identity), s(action), s(path));
        }
        Event::PeerDown {
            peer,
            addr,
            reason,
            code,
        } => {
            ev.kind = netchan_event_kind::PeerDown;
            ev.code = (*code).into();
            (ev.peer, ev.addr, ev.detail) = (s(peer), s(addr), s(reason));
        }
        Event::Dropped { site, code, count } => {
            ev.kind = netchan_event_kind::Dropped;
            ev.code = (*code).into();
            ev.peer = s(site);
            ev.count = *count;
        }
        Event::Reconnecting {
            addr,
            attempt,
            delay,
        } => {
            ev.kind = netchan_event_kind::Reconnecting;
            ev.addr = s(addr);
            ev.count = u64::from(*attempt);
            ev.delay_ms = delay.as_millis().min(u128::from(u64::MAX)) as u64;
        }
        Event::ReconnectAbandoned { addr, code, detail } => {
            ev.kind = netchan_event_kind::ReconnectAbandoned;
            ev.code = (*code).into();
            (ev.addr, ev.detail) = (s(addr), s(detail));
        }
        Event::Suspended => ev.kind = netchan_event_kind::Suspended,
        Event::Resumed => ev.kind = netchan_event_kind::Resumed,
        Event::ConnectionError {
            addr,
            code,
            detail,
            attempts,
        } => {
            ev.kind = netchan_event_kind::ConnectionError;
            ev.code = (*code).into();
            (ev.addr, ev.detail) = (s(addr), s(detail));
            ev.count = *attempts;
        }
        _ => return None,
    }
    Some(ev)
}

fn deliver(cb: &EventCb, e: &Event) {
    let other;
    let ev = match to_c(e) {
        Some(ev) => ev,
        None => {
            other = format!("{e:?}");
            netchan_event {
                kind: netchan_event_kind::Other,
                code: netchan_result::Ok,
                peer: netchan_str::empty(),
                addr: netchan_str::empty(),
                detail: netchan_str::from(&other),
                count: 0,
                delay_ms: 0,
                identity: netchan_str::empty(),
                path: netchan_str::empty(),
            }
        }
    };
    // SAFETY: the callback and its context pointer were registered together by the C caller, who promised both stay valid until the matching free; the argument lives across the call.
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
/// (`netchan_runtime_shutdown()` stopped the endpoint). Thread-safe; callable from
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
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
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
                            delay_ms: 0,
                            identity: netchan_str::empty(),
                            path: netchan_str::empty(),
                        };
                        // SAFETY: the callback contract.
                        unsafe { (cb.call)(cb.ctx.ptr, &ev) };
                    }
                    EventRecv::Closed => break,
                }
            }
            task_slot.stop();
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
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
        // SAFETY: `listener` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
        if let Some(b) = unsafe { take_back(listener) } {
            b.slot.stop();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of core event reaches C as a named kind with each of its
    /// fields, none as `OTHER`.
    #[test]
    fn every_core_event_has_a_c_kind_with_all_its_fields() {
        for e in Event::examples() {
            let c = to_c(&e).unwrap_or_else(|| panic!("{} is OTHER in C", e.kind()));
            let text = |x: &netchan_str| {
                if x.len == 0 {
                    return String::new();
                }
                // SAFETY: `x` borrows a string of `e`, alive for this loop.
                let b = unsafe { std::slice::from_raw_parts(x.data.cast::<u8>(), x.len) };
                String::from_utf8(b.to_vec()).unwrap()
            };
            match &e {
                Event::PeerUp {
                    peer,
                    addr,
                    identity,
                } => {
                    assert_eq!((text(&c.peer), text(&c.addr)), (peer.clone(), addr.clone()));
                    assert_eq!(text(&c.identity), *identity);
                }
                Event::Denied {
                    peer,
                    identity,
                    action,
                    path,
                } => {
                    assert_eq!(text(&c.peer), *peer);
                    assert_eq!(text(&c.identity), *identity);
                    assert_eq!(text(&c.detail), *action);
                    assert_eq!(text(&c.path), *path);
                }
                Event::PeerDown {
                    peer,
                    addr,
                    reason,
                    code,
                } => {
                    assert_eq!(text(&c.peer), *peer);
                    assert_eq!(text(&c.addr), *addr);
                    assert_eq!(text(&c.detail), *reason);
                    assert_eq!(c.code, netchan_result::from(*code));
                }
                Event::Dropped { site, code, count } => {
                    assert_eq!(text(&c.peer), *site);
                    assert_eq!(c.code, netchan_result::from(*code));
                    assert_eq!(c.count, *count);
                }
                Event::Reconnecting {
                    addr,
                    attempt,
                    delay,
                } => {
                    assert_eq!(text(&c.addr), *addr);
                    assert_eq!(c.count, u64::from(*attempt));
                    assert_eq!(c.delay_ms, delay.as_millis() as u64);
                }
                Event::ReconnectAbandoned { addr, code, detail } => {
                    assert_eq!(text(&c.addr), *addr);
                    assert_eq!(c.code, netchan_result::from(*code));
                    assert_eq!(text(&c.detail), *detail);
                }
                Event::ConnectionError {
                    addr,
                    code,
                    detail,
                    attempts,
                } => {
                    assert_eq!(text(&c.addr), *addr);
                    assert_eq!(c.code, netchan_result::from(*code));
                    assert_eq!(text(&c.detail), *detail);
                    assert_eq!(c.count, *attempts);
                }
                Event::Suspended | Event::Resumed => {}
                other => panic!("a core event this test does not check: {other:?}"),
            }
            assert_ne!(c.kind, netchan_event_kind::Other);
        }
    }
}
