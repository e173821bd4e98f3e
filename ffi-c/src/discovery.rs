//! Who is there: discovery (`netchan_names`), connected peers with their
//! stats (`netchan_peer_list`), per-subscription stats, failed connection
//! attempts, and redialling now.

use std::ffi::c_char;

use netchan::Endpoint;

use crate::boundary::{arg_out, arg_ref, arg_str, ffi_boundary, ffi_boundary_or, hand_out};
use crate::boundary::{take_back, write_out};
use crate::endpoint::{arg_endpoint, counters, netchan_endpoint, netchan_stats};
use crate::error::{netchan_result, FfiError};
use crate::sub::netchan_subscription;
use crate::types::netchan_str;

/// A list of endpoint names (the answer of `netchan_endpoint_subscribers()`
/// and its siblings), a snapshot taken when the call returned. Read it with
/// `netchan_names_len()` and `netchan_names_get()`; free it with
/// `netchan_names_free()`. Immutable; thread-safe.
pub struct netchan_names {
    names: Vec<String>,
}

/// How many names `names` holds; 0 if `names` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_names_len(names: *const netchan_names) -> usize {
    // SAFETY: `names` is NULL or a live list (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(0, || unsafe { names.as_ref() }.map_or(0, |n| n.names.len()))
}

/// The name at `index` (0-based), valid until `netchan_names_free(names)`;
/// `{NULL, 0}` if `names` is NULL or `index` is out of range. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_names_get(
    names: *const netchan_names,
    index: usize,
) -> netchan_str {
    ffi_boundary_or(netchan_str::empty(), || {
        // SAFETY: `names` is NULL or a live list (the function's contract); as_ref maps NULL to None.
        match unsafe { names.as_ref() }.and_then(|n| n.names.get(index)) {
            Some(s) => netchan_str::from(s),
            None => netchan_str::empty(),
        }
    })
}

/// Frees a name list. NULL, or a list freed already, is ignored.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_names_free(names: *mut netchan_names) {
    // SAFETY: `names` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(names) }))
}

/// The shared body of the four discovery calls.
///
/// # Safety
/// As each of them: `ep` NULL or a live endpoint, `pattern` NULL or a
/// NUL-terminated string, `out` NULL or writable.
unsafe fn discover(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_names,
    find: fn(&Endpoint, &str) -> netchan::Result<Vec<String>>,
) -> Result<(), FfiError> {
    // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the caller's contract); NULL is refused.
    let ep = unsafe { arg_endpoint(ep) }?;
    // SAFETY: `pattern` is NULL or a NUL-terminated string readable for this call (the caller's contract); NULL and bad UTF-8 are refused.
    let pattern = unsafe { arg_str(pattern, "pattern") }?;
    arg_out(out, "out")?;
    let names = find(&ep.ep, pattern)?;
    // SAFETY: `out` was checked non-NULL above and points to writable storage (the caller's contract).
    unsafe { write_out(out, hand_out(netchan_names { names })) };
    Ok(())
}

/// Names of the endpoints (this one included) subscribed to something that
/// overlaps `pattern` (`*` and `**` allowed), as their declarations reached
/// this endpoint. On success writes a list to `*out` (free it with
/// `netchan_names_free()`).
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_PATH`, `CLOSED`.
/// Never blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_subscribers(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_names,
) -> netchan_result {
    // SAFETY: the arguments are forwarded under this function's contract.
    ffi_boundary(|| unsafe { discover(ep, pattern, out, Endpoint::subscribers) })
}

/// Names of the endpoints that declared a publisher
/// (`netchan_endpoint_declare_publisher()` or another surface's
/// equivalent) overlapping `pattern`. As `netchan_endpoint_subscribers()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_publishers(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_names,
) -> netchan_result {
    // SAFETY: the arguments are forwarded under this function's contract.
    ffi_boundary(|| unsafe { discover(ep, pattern, out, Endpoint::publishers) })
}

/// Names of the endpoints serving requests on something that overlaps
/// `pattern`. As `netchan_endpoint_subscribers()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_servers(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_names,
) -> netchan_result {
    // SAFETY: the arguments are forwarded under this function's contract.
    ffi_boundary(|| unsafe { discover(ep, pattern, out, Endpoint::servers) })
}

/// Names of the endpoints serving streams on something that overlaps
/// `pattern`. As `netchan_endpoint_subscribers()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_stream_servers(
    ep: *const netchan_endpoint,
    pattern: *const c_char,
    out: *mut *mut netchan_names,
) -> netchan_result {
    // SAFETY: the arguments are forwarded under this function's contract.
    ffi_boundary(|| unsafe { discover(ep, pattern, out, Endpoint::stream_servers) })
}

/// One connected peer, as `netchan_peer_list_get()` fills it. The strings
/// are borrowed from the list (valid until `netchan_peer_list_free()`).
/// Fields are only ever appended.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct netchan_peer_info {
    /// The peer's endpoint name.
    pub name: netchan_str,
    /// Its address as seen from here.
    pub addr: netchan_str,
    /// What it proved when it connected: `cert:NAME`, `key:ID`, `uid:N` or
    /// `anonymous` (docs/SECURITY.md, "Identities").
    pub identity: netchan_str,
    /// True if it dialled this endpoint.
    pub inbound: bool,
    /// True once a ping (a heartbeat's or `netchan_endpoint_ping()`'s)
    /// measured `rtt_us`.
    pub has_rtt: bool,
    /// The last measured round-trip time in microseconds; 0 without one.
    pub rtt_us: u64,
    /// The counters of this peer's links (`peers` and `subscriptions` are 0
    /// here).
    pub stats: netchan_stats,
}

/// The connected peers with their stats, a snapshot taken when
/// `netchan_endpoint_peers()` returned. Immutable; thread-safe.
pub struct netchan_peer_list {
    peers: Vec<netchan::PeerStats>,
}

/// The peers connected now, each with its counters. On success writes a
/// list to `*out`; read it with `netchan_peer_list_len()` and
/// `netchan_peer_list_get()`, free it with `netchan_peer_list_free()`.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`. Never blocks; thread-safe; callable
/// from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_peers(
    ep: *const netchan_endpoint,
    out: *mut *mut netchan_peer_list,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        arg_out(out, "out")?;
        let peers = ep.ep.stats().peers;
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, hand_out(netchan_peer_list { peers })) };
        Ok(())
    })
}

/// How many peers `list` holds; 0 if `list` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_peer_list_len(list: *const netchan_peer_list) -> usize {
    // SAFETY: `list` is NULL or a live list (the function's contract); as_ref maps NULL to None.
    ffi_boundary_or(0, || unsafe { list.as_ref() }.map_or(0, |l| l.peers.len()))
}

/// Writes the peer at `index` (0-based) to `*out`. Pass
/// `sizeof(netchan_peer_info)` as `size`: a program built against an older
/// header gets the fields it knows.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (`index` out of range).
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_peer_list_get(
    list: *const netchan_peer_list,
    index: usize,
    out: *mut netchan_peer_info,
    size: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `list` is NULL or a live list (the function's contract); NULL is refused.
        let list = unsafe { arg_ref(list, "list") }?;
        arg_out(out, "out")?;
        let p = list.peers.get(index).ok_or_else(|| {
            FfiError::new(
                netchan_result::InvalidArgument,
                format!("index {index} is past the {} peers", list.peers.len()),
            )
        })?;
        let rtt_us = p
            .rtt
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let v = netchan_peer_info {
            name: netchan_str::from(&p.name),
            addr: netchan_str::from(&p.addr),
            identity: netchan_str::from(&p.identity),
            inbound: p.inbound,
            has_rtt: rtt_us.is_some(),
            rtt_us: rtt_us.unwrap_or(0),
            stats: counters(&p.counters, 0, 0),
        };
        // SAFETY: the caller provides `size` writable bytes at `out` (the function's contract).
        unsafe { copy_sized(&v, out, size) };
        Ok(())
    })
}

/// Frees a peer list. NULL, or a list freed already, is ignored.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_peer_list_free(list: *mut netchan_peer_list) {
    // SAFETY: `list` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(list) }))
}

/// Copies the first `size` bytes of `v` (at most all of it) to `out`: the
/// append-only struct rule of `netchan_stats`.
///
/// # Safety
/// `out` is valid for `size` bytes of writes.
pub(crate) unsafe fn copy_sized<T: Copy>(v: &T, out: *mut T, size: usize) {
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `v` is readable for size_of::<T>() >= n bytes; `out` writable for `size` >= n (the caller's contract).
    unsafe { std::ptr::copy_nonoverlapping((v as *const T).cast::<u8>(), out.cast::<u8>(), n) }
}

/// One subscription's figures (`netchan_subscription_get_stats()`). Fields are
/// only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct netchan_subscription_stats {
    /// Messages handed to the subscriber.
    pub delivered: u64,
    /// Messages dropped by its overflow policy.
    pub dropped: u64,
    /// Messages waiting in its queue now.
    pub queued: u64,
}

/// Writes the subscription's figures to `*out`. Pass
/// `sizeof(netchan_subscription_stats)` as `size` (see `netchan_stats`).
///
/// Errors: `NULL_ARGUMENT`. Never blocks; thread-safe; callable from
/// callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscription_get_stats(
    sub: *const netchan_subscription,
    out: *mut netchan_subscription_stats,
    size: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `sub` is NULL or a live handle from this library (the function's contract); NULL is refused.
        let sub = unsafe { arg_ref(sub, "sub") }?;
        arg_out(out, "out")?;
        let s = sub.sub.stats();
        let v = netchan_subscription_stats {
            delivered: s.delivered,
            dropped: s.dropped,
            queued: s.queued as u64,
        };
        // SAFETY: the caller provides `size` writable bytes at `out` (the function's contract).
        unsafe { copy_sized(&v, out, size) };
        Ok(())
    })
}

/// Failed connection attempts per remote address, a snapshot. Read it
/// with `netchan_attempts_len()` and `netchan_attempts_get()`; free it with
/// `netchan_attempts_free()`. Immutable; thread-safe.
pub struct netchan_attempts {
    rows: Vec<(String, u64)>,
}

/// Failed connection attempts per remote address (`tcp://10.0.0.5`:
/// without its port), most first: refused handshakes, protocol violations,
/// links cut for a limit (docs/SECURITY.md). At most 4096 addresses are tracked; past that the
/// one with the fewest failures makes room. On success writes a list to
/// `*out`.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`. Never blocks; thread-safe; callable
/// from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_failed_attempts(
    ep: *const netchan_endpoint,
    out: *mut *mut netchan_attempts,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        arg_out(out, "out")?;
        let rows = ep.ep.failed_attempts();
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, hand_out(netchan_attempts { rows })) };
        Ok(())
    })
}

/// How many addresses `attempts` holds; 0 if NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_attempts_len(attempts: *const netchan_attempts) -> usize {
    ffi_boundary_or(0, || {
        // SAFETY: `attempts` is NULL or a live list (the function's contract); as_ref maps NULL to None.
        let a = unsafe { attempts.as_ref() };
        a.map_or(0, |a| a.rows.len())
    })
}

/// The address at `index` and its count of failed attempts: writes the
/// address (borrowed from the list) to `*addr` and the count to `*count`;
/// either may be NULL.
///
/// Errors: `NULL_ARGUMENT` (`attempts`), `INVALID_ARGUMENT` (`index` out
/// of range). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_attempts_get(
    attempts: *const netchan_attempts,
    index: usize,
    addr: *mut netchan_str,
    count: *mut u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `attempts` is NULL or a live list (the function's contract); NULL is refused.
        let a = unsafe { arg_ref(attempts, "attempts") }?;
        let (who, n) = a.rows.get(index).ok_or_else(|| {
            FfiError::new(
                netchan_result::InvalidArgument,
                format!("index {index} is past the {} addresses", a.rows.len()),
            )
        })?;
        if !addr.is_null() {
            // SAFETY: non-NULL, so writable storage (the function's contract).
            unsafe { write_out(addr, netchan_str::from(who)) };
        }
        if !count.is_null() {
            // SAFETY: non-NULL, so writable storage (the function's contract).
            unsafe { write_out(count, *n) };
        }
        Ok(())
    })
}

/// Frees an attempts list. NULL, or a list freed already, is ignored.
/// Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_attempts_free(attempts: *mut netchan_attempts) {
    // SAFETY: `attempts` is NULL or a handle this library handed out; take_back frees only what its registry holds.
    ffi_boundary_or((), || drop(unsafe { take_back(attempts) }))
}

/// Redials every lost peer now, skipping the rest of its backoff (after a
/// known network change use `netchan_endpoint_network_changed()`, which
/// also drops links that look alive). Returns at once; the dials run in
/// the background and their outcome arrives as events.
///
/// Errors: `NULL_ARGUMENT`, `CLOSED`. Never blocks; thread-safe; callable
/// from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_reconnect_now(
    ep: *const netchan_endpoint,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        ep.ep.reconnect_now();
        Ok(())
    })
}
