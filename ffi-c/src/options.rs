//! Option builders: `netchan_options` (endpoint) and
//! `netchan_subscribe_options` (one subscription). Opaque, with one setter
//! per field, so new options never change the ABI.

use std::ffi::c_char;
use std::time::Duration;

use netchan::{Config, Overflow, SubscribeOptions};

use crate::boundary::{
    arg_out, arg_str, ffi_boundary, ffi_boundary_or, hand_out, take_back, write_out,
};
use crate::error::{netchan_result, FfiError};

/// What a full subscription queue does with the next message. Pass the
/// values to `netchan_subscribe_options_set_overflow()` and
/// `netchan_options_set_subscribe_overflow()`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum netchan_overflow {
    /// Wait for room: publishers are held back through credit per
    /// subscription (up to their send timeout, then a counted drop and
    /// BUFFER_FULL for them); the link keeps carrying everything else.
    /// The default.
    Block = 0,
    /// Discard the oldest queued message (counted, reported as an event).
    DropOldest = 1,
    /// Discard the new message (counted, reported as an event).
    DropNewest = 2,
    /// As Block, but a remote publisher that waited its send timeout for
    /// this subscription's credit closes its link to this endpoint
    /// (BUFFER_FULL, "slow consumer") instead of dropping the message: a
    /// slow consumer is cut off. A local publisher waits as for Block.
    Disconnect = 3,
}

fn overflow_from(n: u32) -> Result<Overflow, FfiError> {
    match n {
        0 => Ok(Overflow::Block),
        1 => Ok(Overflow::DropOldest),
        2 => Ok(Overflow::DropNewest),
        3 => Ok(Overflow::Disconnect),
        _ => Err(FfiError::new(
            netchan_result::InvalidArgument,
            format!("overflow {n} is not a netchan_overflow value"),
        )),
    }
}

/// Endpoint options: create with `netchan_options_new()`, change with the
/// `netchan_options_set_*()` setters, pass to `netchan_endpoint_new()`, free
/// with `netchan_options_free()`. Values are checked by
/// `netchan_endpoint_new()`, which names the bad field. Not thread-safe:
/// use one options object from one thread at a time.
pub struct netchan_options {
    pub(crate) config: Config,
}

/// Creates endpoint options with every default (random name, 16 MiB frames,
/// 5 s connect/handshake/ping timeouts, 8 MiB send buffer, 10 s send
/// timeout, subscriptions of 16384 messages / 64 MiB that block when full).
///
/// On success writes a new object to `*out`; free it with
/// `netchan_options_free()`. Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_new(out: *mut *mut netchan_options) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        let p = hand_out(netchan_options {
            config: Config::default(),
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, p) };
        Ok(())
    })
}

/// Frees options. NULL, or options freed already, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_free(options: *mut netchan_options) {
    // SAFETY: `options` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(options) }))
}

/// # Safety
/// `options` is NULL or a live `netchan_options` not used elsewhere meanwhile.
unsafe fn config<'a>(options: *mut netchan_options) -> Result<&'a mut Config, FfiError> {
    // SAFETY: NULL or a live options object not used by another thread
    // during the call (the caller's contract); as_mut maps NULL to None.
    Ok(&mut unsafe { options.as_mut() }
        .ok_or_else(|| FfiError::null("options"))?
        .config)
}

/// Sets the endpoint's name (unique among the endpoints it talks to; 1 to
/// 255 bytes of UTF-8 without control characters). NULL restores the random
/// default name. The string is copied.
///
/// Errors: `NULL_ARGUMENT` (options), `INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_name(
    options: *mut netchan_options,
    name: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        c.name = if name.is_null() {
            None
        } else {
            // SAFETY: `name` is NULL or a NUL-terminated string readable for this call (the function's contract); NULL and bad UTF-8 are refused.
            Some(unsafe { arg_str(name, "name") }?.to_owned())
        };
        Ok(())
    })
}

/// Largest frame accepted from a peer, in bytes (default 16 MiB, at least 64 KiB).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_max_frame_size(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.max_frame_size = v;
        Ok(())
    })
}

/// Time allowed to dial an address, in milliseconds (default 5000).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_connect_timeout_ms(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.connect_timeout = Duration::from_millis(v);
        Ok(())
    })
}

/// Time allowed for a handshake, in milliseconds (default 5000).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_handshake_timeout_ms(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.handshake_timeout = Duration::from_millis(v);
        Ok(())
    })
}

/// Heartbeat interval advertised to peers, in milliseconds (default 2000).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_heartbeat_interval_ms(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.heartbeat_interval = Duration::from_millis(v);
        Ok(())
    })
}

/// Bytes queued per peer before publishers wait (default 8 MiB).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_send_buffer(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.send_buffer = v;
        Ok(())
    })
}

/// How long a publish or request waits for room in a peer's send buffer
/// before failing with `BUFFER_FULL`, in milliseconds (default 10000).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_send_timeout_ms(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.send_timeout = Duration::from_millis(v);
        Ok(())
    })
}

/// Time `netchan_endpoint_ping()` waits for a pong, in milliseconds (default 5000).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_ping_timeout_ms(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.ping_timeout = Duration::from_millis(v);
        Ok(())
    })
}

/// Default queue bound of subscriptions, in messages (default 16384).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_subscribe_capacity(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.subscribe.capacity = v;
        Ok(())
    })
}

/// Default queue bound of subscriptions, in payload bytes (default 64 MiB).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_subscribe_max_bytes(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.subscribe.max_bytes = v;
        Ok(())
    })
}

/// Sets any endpoint setting by its name, as `netchan settings` lists them
/// and `netchan -o KEY=VALUE` takes them, so a setting has one name and one
/// syntax everywhere: sizes with a unit (`"8MiB"`), durations (`"200ms"`),
/// policies by name (`"drop_oldest"`), `"true"`/`"false"`. TLS
/// (docs/SECURITY.md): `"tls.cert"`, `"tls.key"`, `"tls.ca"` and
/// `"tls.pinned"` take a PEM file's path or the PEM text itself (a value
/// starting with `-----BEGIN`), `"tls.client_auth"` takes `"none"`,
/// `"optional"` or `"required"`, `"tls.server_name"` a host name;
/// `"insecure"` `"true"` allows plaintext `tcp://` beyond this host. Both
/// strings are copied.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_UTF8`, `INVALID_ARGUMENT` (an unknown
/// name, or a value it does not take: `netchan_last_error()` says which).
/// Files are read, and keys checked, by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set(
    options: *mut netchan_options,
    name: *const c_char,
    value: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        // SAFETY: `name` and `value` are NULL or NUL-terminated strings readable for this call (the function's contract); NULL and bad UTF-8 are refused.
        let (name, value) = unsafe { (arg_str(name, "name")?, arg_str(value, "value")?) };
        c.set(name, value)?;
        Ok(())
    })
}

/// Busy polling for the blocking calls (`netchan_endpoint_request_blocking`,
/// `netchan_subscription_recv`), in microseconds (default 0: off; at most
/// 1000000). The waiting thread keeps polling, yielding its core to other
/// runnable threads, for up to this long before it sleeps, so a reply or
/// message that arrives meanwhile does not have to wake it: shorter round
/// trips for up to this much CPU time per wait.
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_busy_poll_us(
    options: *mut netchan_options,
    value: u64,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        c.busy_poll = Duration::from_micros(value);
        Ok(())
    })
}

/// Requests queued per service before new ones are refused with
/// `BUFFER_FULL` (default 1024).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_service_queue(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.service_queue = v;
        Ok(())
    })
}

/// Connections (inbound and outbound) at once (default 1024).
///
/// Errors: `NULL_ARGUMENT`. The value is checked by `netchan_endpoint_new()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_max_connections(
    options: *mut netchan_options,
    value: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        let c = unsafe { config(options) }?;
        let v = value;
        c.max_connections = v;
        Ok(())
    })
}

/// Sets the default overflow policy of subscriptions (a `netchan_overflow`
/// value; default `NETCHAN_OVERFLOW_BLOCK`).
///
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (not a `netchan_overflow`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_options_set_subscribe_overflow(
    options: *mut netchan_options,
    overflow: u32,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_options from netchan_options_new, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { config(options) }?.subscribe.overflow = overflow_from(overflow)?;
        Ok(())
    })
}

/// Options of one subscription: create with
/// `netchan_subscribe_options_new()` (starting from the library defaults,
/// not the endpoint's), change with the setters, pass to
/// `netchan_endpoint_subscribe()` or `netchan_endpoint_subscribe_callback()`,
/// free with `netchan_subscribe_options_free()`. Not thread-safe.
pub struct netchan_subscribe_options {
    pub(crate) opts: SubscribeOptions,
}

/// Creates subscription options with the defaults (16384 messages, 64 MiB,
/// `NETCHAN_OVERFLOW_BLOCK`).
///
/// On success writes a new object to `*out`; free it with
/// `netchan_subscribe_options_free()`. Errors: `NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscribe_options_new(
    out: *mut *mut netchan_subscribe_options,
) -> netchan_result {
    ffi_boundary(|| {
        arg_out(out, "out")?;
        let p = hand_out(netchan_subscribe_options {
            opts: SubscribeOptions::default(),
        });
        // SAFETY: `out` was checked non-NULL above and points to writable storage (the function's contract).
        unsafe { write_out(out, p) };
        Ok(())
    })
}

/// Frees subscription options. NULL, or options freed already, are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscribe_options_free(options: *mut netchan_subscribe_options) {
    // SAFETY: `options` is NULL or a handle this library handed out; take_back frees only what its registry holds, so a double free is refused.
    ffi_boundary_or((), || drop(unsafe { take_back(options) }))
}

/// # Safety
/// `options` is NULL or a live `netchan_subscribe_options` not used elsewhere meanwhile.
unsafe fn sub_opts<'a>(
    options: *mut netchan_subscribe_options,
) -> Result<&'a mut SubscribeOptions, FfiError> {
    // SAFETY: NULL or a live options object not used by another thread
    // during the call (the caller's contract); as_mut maps NULL to None.
    Ok(&mut unsafe { options.as_mut() }
        .ok_or_else(|| FfiError::null("options"))?
        .opts)
}

/// Sets the queue bound in messages (at least 1).
///
/// Errors: `NULL_ARGUMENT`; 0 is refused by the subscribe call with `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscribe_options_set_capacity(
    options: *mut netchan_subscribe_options,
    capacity: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_subscribe_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { sub_opts(options) }?.capacity = capacity;
        Ok(())
    })
}

/// Sets the queue bound in payload bytes (at least 1).
///
/// Errors: `NULL_ARGUMENT`; 0 is refused by the subscribe call with `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscribe_options_set_max_bytes(
    options: *mut netchan_subscribe_options,
    max_bytes: usize,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_subscribe_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { sub_opts(options) }?.max_bytes = max_bytes;
        Ok(())
    })
}

/// Sets what a full queue does (a `netchan_overflow` value).
///
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (not a `netchan_overflow`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_subscribe_options_set_overflow(
    options: *mut netchan_subscribe_options,
    overflow: u32,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `options` is NULL or a live netchan_subscribe_options, not shared with another thread during the call (the function's contract); NULL is refused.
        unsafe { sub_opts(options) }?.overflow = overflow_from(overflow)?;
        Ok(())
    })
}
