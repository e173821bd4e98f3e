//! The endpoint's keys in use: TLS settings built for rustls, and shared
//! keys. Replaced by `Endpoint::set_tls` / `set_shared_keys` and read again
//! by `reload_keys`; a connection takes what is in use when it starts.

use std::sync::{Arc, Mutex, RwLock};

use super::tls::TlsState;
use crate::config::{KeySource, SharedKeys, TlsConfig};
use crate::error::{Error, Result};

#[derive(Default)]
pub(crate) struct Keys {
    tls: RwLock<Option<Arc<TlsState>>>,
    psk: RwLock<Option<Arc<SharedKeys>>>,
    /// What they were built from, for `reload`; held while replacing, so
    /// replacements happen one at a time.
    source: Mutex<(Option<TlsConfig>, Option<KeySource>)>,
}

fn put<T>(slot: &RwLock<Option<Arc<T>>>, v: Option<T>) {
    *slot.write().unwrap_or_else(|p| p.into_inner()) = v.map(Arc::new);
}

fn get<T>(slot: &RwLock<Option<Arc<T>>>) -> Option<Arc<T>> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Keys {
    /// Builds `tls` and puts it in use for connections made from now on;
    /// on an error the settings in use stay.
    pub(crate) fn replace_tls(&self, tls: Option<TlsConfig>) -> Result<()> {
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        put(&self.tls, tls.as_ref().map(TlsState::build).transpose()?);
        source.0 = tls;
        Ok(())
    }

    /// Reads the shared keys and puts them in use (see `replace_tls`).
    pub(crate) fn replace_psk(&self, psk: Option<KeySource>) -> Result<()> {
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        put(&self.psk, psk.as_ref().map(SharedKeys::load).transpose()?);
        source.1 = psk;
        Ok(())
    }

    /// Reads every file again. Both are read before either is put in use:
    /// on an error nothing changes.
    pub(crate) fn reload(&self) -> Result<()> {
        let source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        let tls = source.0.as_ref().map(TlsState::build).transpose()?;
        let psk = source.1.as_ref().map(SharedKeys::load).transpose()?;
        put(&self.tls, tls);
        put(&self.psk, psk);
        Ok(())
    }

    /// The endpoint name this endpoint's certificate is for, if any (see
    /// `TlsState::own_name`).
    pub(crate) fn tls_own_name(&self) -> Option<String> {
        get(&self.tls).and_then(|s| s.own_name.clone())
    }

    /// The shared keys in use, if any: `tcp://` links prove them.
    pub(crate) fn psk(&self) -> Option<Arc<SharedKeys>> {
        get(&self.psk)
    }

    /// Whether this endpoint can listen on `tls://`.
    pub(crate) fn tls_server(&self) -> Result<Arc<rustls::ServerConfig>> {
        get(&self.tls).and_then(|s| s.server.clone()).ok_or_else(|| {
            Error::invalid_argument(
                "listening on tls:// needs a certificate and its key (Config.tls: tls.cert and tls.key)",
            )
        })
    }

    pub(crate) fn tls_client(&self) -> Result<(Arc<rustls::ClientConfig>, Option<String>)> {
        let s = get(&self.tls);
        let name = s.as_ref().and_then(|s| s.server_name.clone());
        s.and_then(|s| s.client.clone())
            .map(|c| (c, name))
            .ok_or_else(|| {
                Error::invalid_argument(
                    "dialling tls:// needs the CA that signed the peer's certificate (Config.tls: tls.ca) or the certificate itself (tls.pinned)",
                )
            })
    }
}
