//! Security at run time: access rules, TLS settings and shared keys
//! replaced on a live endpoint, and their files read again.

use std::ffi::c_char;

use crate::boundary::{arg_str, ffi_boundary};
use crate::endpoint::{arg_endpoint, netchan_endpoint};
use crate::error::netchan_result;
use crate::options::netchan_options;

/// Replaces the access rules (docs/SECURITY.md, "Access rules"): `rules`
/// is a rules file's path or the rules' text (lines `allow IDENTITY
/// ACTIONS PATH`), as the `acl` setting takes it; NULL or `""` removes the
/// rules (every peer may do everything). They take effect at once, on
/// existing links too. The rules are read and checked first: on an error
/// the rules in use stay. `rules` is copied; the caller keeps it.
///
/// Errors: `NULL_ARGUMENT` (`ep`), `INVALID_ARGUMENT` (a file that cannot
/// be read, a line that does not parse: the detail names it). Never
/// blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_set_acl(
    ep: *const netchan_endpoint,
    rules: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        let rules = if rules.is_null() {
            ""
        } else {
            // SAFETY: non-NULL `rules` is a NUL-terminated string the caller keeps alive for the call (the function's contract).
            unsafe { arg_str(rules, "rules") }?
        };
        ep.ep.set_acl(netchan::AclSource::from_setting(rules))?;
        Ok(())
    })
}

/// Reads the TLS settings' files, the shared key file and the access rules
/// file again (a renewed certificate, a rotated key, new rules): keys for
/// connections made from now on, rules at once. On an error everything in
/// use stays.
///
/// Errors: `NULL_ARGUMENT`, `INVALID_ARGUMENT` (the detail names the file).
/// Never blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_reload_keys(
    ep: *const netchan_endpoint,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        ep.ep.reload_keys()?;
        Ok(())
    })
}

/// Replaces the endpoint's TLS settings with those of `options` (its
/// `tls.*` settings, set with `netchan_options_set()`; the rest of
/// `options` is not used); NULL, or options without TLS settings, removes
/// TLS (`tls://` is then refused). Connections made from now on use the
/// new settings; existing ones keep theirs. The certificates and keys are
/// read and checked first: on an error the settings in use stay.
/// `options` is only read.
///
/// Errors: `NULL_ARGUMENT` (`ep`), `INVALID_ARGUMENT` (the detail names
/// the setting or file at fault), `CLOSED`. Never blocks; thread-safe;
/// callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_set_tls(
    ep: *const netchan_endpoint,
    options: *const netchan_options,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        // SAFETY: `options` is NULL or live options, only read (the function's contract); as_ref maps NULL to None.
        let tls = unsafe { options.as_ref() }.and_then(|o| o.config.tls.clone());
        ep.ep.set_tls(tls)?;
        Ok(())
    })
}

/// Replaces the endpoint's shared keys: `keys` is a key file's path (made
/// by `netchan keygen`) or the keys' text, as the `psk` setting takes it;
/// NULL or `""` removes them. `tcp://` links made from now on prove the
/// new keys; existing links keep working. The keys are read and checked
/// first: on an error the keys in use stay. `keys` is copied.
///
/// Errors: `NULL_ARGUMENT` (`ep`), `INVALID_UTF8`, `INVALID_ARGUMENT` (a
/// file that cannot be read, a line that does not parse), `CLOSED`. Never
/// blocks; thread-safe; callable from callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn netchan_endpoint_set_shared_keys(
    ep: *const netchan_endpoint,
    keys: *const c_char,
) -> netchan_result {
    ffi_boundary(|| {
        // SAFETY: `ep` is NULL or an endpoint handle from this library not yet freed (the function's contract); NULL is refused.
        let ep = unsafe { arg_endpoint(ep) }?;
        let keys = if keys.is_null() {
            None
        } else {
            // SAFETY: `keys` is a NUL-terminated string readable for this call (the function's contract); bad UTF-8 is refused.
            let k = unsafe { arg_str(keys, "keys") }?;
            (!k.trim().is_empty()).then(|| netchan::KeySource::parse(k))
        };
        ep.ep.set_shared_keys(keys)?;
        Ok(())
    })
}
