//! The `Endpoint` class (sync methods, plus the `_*_async` primitives that
//! `netchan.aio` awaits) and its small value classes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netchan::{Config, ErrorCode, Overflow};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString};
use tokio::runtime::Handle;

use crate::bridge::{check_alive, maybe_async, run_blocking, start_async, BoxFut};
use crate::errors::{err, to_py};
use crate::feed::{Events, Service, Subscription};
use crate::stream::{Stream, StreamParts, StreamService};

/// Payloads at least this large are shared with Python instead of copied.
const ZERO_COPY_MIN: usize = 64 * 1024;

/// A payload argument as `Bytes`: `bytes` (shared when large), `bytearray`
/// and `memoryview` (copied once), and `str` as UTF-8 (as a handler's `str`
/// reply is).
pub fn payload(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        let s = b.as_bytes();
        if s.len() >= ZERO_COPY_MIN {
            return Ok(Bytes::from_owner(PyBackedBytes::from(b.clone())));
        }
        return Ok(Bytes::copy_from_slice(s));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let b = obj.py().get_type::<PyBytes>().call1((obj,))?;
        return Ok(Bytes::copy_from_slice(b.cast::<PyBytes>()?.as_bytes()));
    }
    if let Ok(t) = obj.cast::<PyString>() {
        // A lone surrogate is a UnicodeEncodeError, as str.encode() gives.
        return Ok(Bytes::copy_from_slice(t.to_cow()?.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "payload must be bytes, bytearray, memoryview or str, not {}",
        obj.get_type().name()?
    )))
}

fn opt_payload(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Bytes> {
    obj.map(payload).transpose().map(Option::unwrap_or_default)
}

/// Seconds as a `Duration`; `INVALID_ARGUMENT` for negative or non-finite.
fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        err(
            ErrorCode::InvalidArgument,
            format!("{what} must be a finite number of seconds >= 0, not {s}"),
        )
    })
}

/// A PEM option: `bytes` or a `str` starting with `-----BEGIN` are the PEM
/// text; any other `str` or `os.PathLike` is a file's path.
/// Applies TLS arguments to `c`: the PEMs (cert, key, ca, pinned: a path
/// or PEM bytes), the client-auth choice and the server name. `prefix`
/// names the arguments in errors (`tls_` in the constructor, none in
/// `set_tls`).
fn apply_tls(
    c: &mut Config,
    prefix: &str,
    pems: [Option<&Bound<'_, PyAny>>; 4],
    client_auth: Option<&str>,
    server_name: Option<String>,
) -> PyResult<()> {
    if let Some(v) = client_auth {
        c.set("tls.client_auth", v).map_err(to_py)?;
    }
    if let Some(v) = server_name {
        c.set("tls.server_name", &v).map_err(to_py)?;
    }
    for (i, v) in pems.into_iter().enumerate() {
        let Some(v) = v else { continue };
        let field = ["cert", "key", "ca", "pinned"][i];
        let p = Some(pem(&format!("{prefix}{field}"), v)?);
        let t = c.tls.get_or_insert_with(netchan::TlsConfig::default);
        match i {
            0 => t.cert = p,
            1 => t.key = p,
            2 => t.ca = p,
            _ => t.pinned = p,
        }
    }
    Ok(())
}

fn pem(name: &str, v: &Bound<'_, PyAny>) -> PyResult<netchan::Pem> {
    if let Ok(b) = v.cast::<PyBytes>() {
        let t = std::str::from_utf8(b.as_bytes()).map_err(|_| {
            err(
                ErrorCode::InvalidArgument,
                format!("{name}: PEM bytes must be text (-----BEGIN ...)"),
            )
        })?;
        return Ok(netchan::Pem::Text(t.to_owned()));
    }
    let path = v
        .py()
        .import("os")?
        .call_method1("fspath", (v,))
        .and_then(|p| p.extract::<String>())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a path (str or os.PathLike) or PEM bytes"
            ))
        })?;
    Ok(netchan::Pem::parse(&path))
}

/// A `settings` value as `Config::set` takes it: `True` is `"true"`,
/// anything else its `str()`.
fn setting_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    Ok(v.str()?.to_cow()?.into_owned())
}

fn overflow(s: &str) -> PyResult<Overflow> {
    match s {
        "block" => Ok(Overflow::Block),
        "drop_oldest" => Ok(Overflow::DropOldest),
        "drop_newest" => Ok(Overflow::DropNewest),
        "disconnect" => Ok(Overflow::Disconnect),
        _ => Err(err(
            ErrorCode::InvalidArgument,
            format!("overflow must be \"block\", \"drop_oldest\", \"drop_newest\" or \"disconnect\", not {s:?}"),
        )),
    }
}

/// A connected peer.
#[pyclass(module = "netchan._native", frozen, get_all)]
pub struct PeerInfo {
    name: String,
    addr: String,
    inbound: bool,
    /// What it proved: `cert:NAME`, `key:ID`, `uid:N` or `anonymous`.
    identity: String,
}

#[pymethods]
impl PeerInfo {
    fn __repr__(&self) -> String {
        format!(
            "PeerInfo(name={:?}, addr={:?}, inbound={}, identity={:?})",
            self.name,
            self.addr,
            if self.inbound { "True" } else { "False" },
            self.identity
        )
    }
}

impl From<netchan::PeerInfo> for PeerInfo {
    fn from(p: netchan::PeerInfo) -> Self {
        PeerInfo {
            name: p.name,
            addr: p.addr,
            inbound: p.inbound,
            identity: p.identity,
        }
    }
}

/// A publisher declaration (discovery) that also publishes on paths its
/// pattern matches, through a cached route; `close()` withdraws it.
#[pyclass(module = "netchan._native", frozen)]
pub struct Publisher {
    pattern: String,
    decl: std::sync::Mutex<Option<Arc<netchan::Publisher>>>,
    rt: Handle,
    blocker: netchan::blocking::Blocker,
}

impl Publisher {
    /// The declaration, or `ClosedError` once `close()` withdrew it.
    fn decl(&self) -> PyResult<Arc<netchan::Publisher>> {
        check_alive()?;
        self.decl
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                to_py(netchan::Error::new(
                    netchan::ErrorCode::Closed,
                    "this publisher was closed",
                ))
            })
    }

    fn publish_fut(
        &self,
        path: String,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<BoxFut<netchan::Result<()>>> {
        let p = payload(data)?;
        let d = self.decl()?;
        Ok(Box::pin(async move { d.publish(&path, p).await }))
    }
}

#[pymethods]
impl Publisher {
    /// The declared pattern.
    #[getter]
    fn pattern(&self) -> &str {
        &self.pattern
    }
    /// Publishes `data` on `path`, which the pattern must match
    /// (`InvalidPathError` otherwise), as `Endpoint.publish` does.
    fn publish(&self, py: Python<'_>, path: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let fut = self.publish_fut(path, data)?;
        run_blocking(py, &self.blocker, fut)
    }
    /// Publishes without waiting, as `Endpoint.try_publish` does.
    fn try_publish(&self, path: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = payload(data)?;
        let d = self.decl()?;
        let _enter = self.rt.enter();
        d.try_publish(path, p).map_err(to_py)
    }
    fn _publish_async<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let fut = self.publish_fut(path, data)?;
        maybe_async(&self.rt, event_loop, fut, conv_none)
    }
    /// Withdraws the declaration.
    fn close(&self) {
        self.decl.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }
    fn __exit__(
        &self,
        _t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }
}

fn conv_none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}
fn conv_str(py: Python<'_>, s: String) -> PyResult<Py<PyAny>> {
    Ok(s.into_pyobject(py)?.into_any().unbind())
}
fn conv_bytes(py: Python<'_>, b: Bytes) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, &b).into_any().unbind())
}
fn conv_bool(py: Python<'_>, b: bool) -> PyResult<Py<PyAny>> {
    Ok(b.into_pyobject(py)?.to_owned().into_any().unbind())
}
fn conv_secs(py: Python<'_>, d: Duration) -> PyResult<Py<PyAny>> {
    Ok(d.as_secs_f64().into_pyobject(py)?.into_any().unbind())
}
fn conv_usize(py: Python<'_>, n: usize) -> PyResult<Py<PyAny>> {
    Ok(n.into_pyobject(py)?.into_any().unbind())
}
fn conv_stream(py: Python<'_>, parts: StreamParts) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, Stream::new(parts))?.into_any())
}
fn conv_peer(py: Python<'_>, p: netchan::PeerInfo) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PeerInfo::from(p))?.into_any())
}

/// A netchan endpoint. See the package documentation; the sync methods
/// release the GIL while they wait and can be interrupted with Ctrl-C.
#[pyclass(module = "netchan._native", subclass, frozen, weakref)]
pub struct Endpoint {
    ep: netchan::Endpoint,
    rt: Handle,
    /// The core's way in from plain threads, with this endpoint's busy poll.
    blocker: netchan::blocking::Blocker,
}

impl Endpoint {
    fn publish_fut(
        &self,
        path: String,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<BoxFut<netchan::Result<()>>> {
        let p = payload(data)?;
        let ep = self.ep.clone();
        Ok(Box::pin(async move { ep.publish(&path, p).await }))
    }

    fn publish_many_fut(
        &self,
        path: String,
        payloads: &Bound<'_, PyAny>,
    ) -> PyResult<BoxFut<netchan::Result<usize>>> {
        let mut v = Vec::new();
        for p in payloads.try_iter()? {
            v.push(payload(&p?)?);
        }
        let ep = self.ep.clone();
        Ok(Box::pin(async move {
            let n = v.len();
            for p in v {
                ep.publish(&path, p).await?;
            }
            Ok(n)
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn open_stream_fut(
        &self,
        path: String,
        first: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        open_timeout: Option<f64>,
        window: Option<usize>,
        wait_for_responder: bool,
    ) -> PyResult<impl std::future::Future<Output = netchan::Result<StreamParts>> + Send + 'static>
    {
        let p = opt_payload(first)?;
        let mut o = netchan::StreamOptions::default();
        o.timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        o.open_timeout = open_timeout
            .map(|t| seconds("open_timeout", t))
            .transpose()?;
        o.window = window;
        o.wait_for_responder = wait_for_responder;
        let (ep, blocker, rt) = (self.ep.clone(), self.blocker.clone(), self.rt.clone());
        Ok(async move {
            let s = ep.open_stream_with(&path, p, o).await?;
            Ok((s, blocker, rt))
        })
    }

    fn request_fut(
        &self,
        path: String,
        data: Option<&Bound<'_, PyAny>>,
        timeout: f64,
        wait_for_responder: bool,
    ) -> PyResult<impl std::future::Future<Output = netchan::Result<Bytes>> + Send + 'static> {
        let p = opt_payload(data)?;
        let t = seconds("timeout", timeout)?;
        let mut o = netchan::RequestOptions::timeout(t);
        o.wait_for_responder = wait_for_responder;
        let ep = self.ep.clone();
        Ok(async move { ep.request_with(&path, p, o).await })
    }
}

#[pymethods]
impl Endpoint {
    #[new]
    #[pyo3(signature = (
        name=None, *, max_frame_size=None, heartbeat_interval=None, connect_timeout=None,
        handshake_timeout=None, send_buffer=None, send_timeout=None, ping_timeout=None,
        service_queue=None, max_connections=None, max_pending_handshakes=None,
        max_declarations_per_peer=None, subscribe_capacity=None, subscribe_max_bytes=None, subscribe_overflow=None,
        busy_poll=None, stream_window=None, tls_cert=None, tls_key=None, tls_ca=None,
        tls_pinned=None, tls_client_auth=None, tls_server_name=None, insecure=None, settings=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Option<String>,
        max_frame_size: Option<usize>,
        heartbeat_interval: Option<f64>,
        connect_timeout: Option<f64>,
        handshake_timeout: Option<f64>,
        send_buffer: Option<usize>,
        send_timeout: Option<f64>,
        ping_timeout: Option<f64>,
        service_queue: Option<usize>,
        max_connections: Option<usize>,
        max_pending_handshakes: Option<usize>,
        max_declarations_per_peer: Option<usize>,
        subscribe_capacity: Option<usize>,
        subscribe_max_bytes: Option<usize>,
        subscribe_overflow: Option<&str>,
        busy_poll: Option<f64>,
        stream_window: Option<usize>,
        tls_cert: Option<&Bound<'_, PyAny>>,
        tls_key: Option<&Bound<'_, PyAny>>,
        tls_ca: Option<&Bound<'_, PyAny>>,
        tls_pinned: Option<&Bound<'_, PyAny>>,
        tls_client_auth: Option<&str>,
        tls_server_name: Option<String>,
        insecure: Option<bool>,
        settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        check_alive()?;
        let mut c = Config::default();
        // Any setting by its name, as the CLI's `-o` takes it; the keywords
        // win over it (as the typed options do in Node, Kotlin and Swift).
        // Any mapping (a dict, a MappingProxyType, ...), as typed.
        if let Some(m) = settings {
            let items = m.call_method0("items").map_err(|_| {
                err(
                    ErrorCode::InvalidArgument,
                    "settings must be a mapping of setting names to values, like {\"insecure\": True}",
                )
            })?;
            for item in items.try_iter()? {
                let (k, v): (String, Bound<'_, PyAny>) = item?.extract()?;
                c.set(&k, &setting_text(&v)?).map_err(to_py)?;
            }
        }
        if name.is_some() {
            c.name = name;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = $f { c.$f = v; } )* };
        }
        macro_rules! set_secs {
            ($($f:ident),*) => { $( if let Some(v) = $f { c.$f = seconds(stringify!($f), v)?; } )* };
        }
        set!(
            max_frame_size,
            send_buffer,
            service_queue,
            max_connections,
            max_pending_handshakes,
            max_declarations_per_peer,
            stream_window
        );
        set_secs!(
            heartbeat_interval,
            connect_timeout,
            handshake_timeout,
            send_timeout,
            ping_timeout,
            busy_poll
        );
        if let Some(v) = subscribe_capacity {
            c.subscribe.capacity = v;
        }
        if let Some(v) = subscribe_max_bytes {
            c.subscribe.max_bytes = v;
        }
        if let Some(v) = subscribe_overflow {
            c.subscribe.overflow = overflow(v)?;
        }
        if let Some(v) = insecure {
            c.insecure = v;
        }
        let pems = [tls_cert, tls_key, tls_ca, tls_pinned];
        apply_tls(&mut c, "tls_", pems, tls_client_auth, tls_server_name)?;
        crate::logbridge::refresh(py);
        // The dispatcher thread (asyncio completions, log records) starts
        // with the first endpoint.
        py.import("netchan._threads")?
            .call_method0("ensure_dispatcher")?;
        let ep = netchan::Endpoint::new(c).map_err(to_py)?;
        // The endpoint lives on netchan's own runtime; keep its handle to
        // spawn on (this thread is outside any runtime).
        let rt = ep.runtime().clone();
        let blocker = ep.blocker().clone();
        Ok(Endpoint { ep, rt, blocker })
    }

    /// The endpoint's name.
    #[getter]
    fn name(&self) -> &str {
        self.ep.name()
    }

    /// How long a blocking call keeps polling before it parks its thread,
    /// in seconds: the core's `Config::busy_poll` for this endpoint (the
    /// `busy_poll` option; default 0).
    #[getter]
    fn busy_poll(&self) -> f64 {
        self.ep.config().busy_poll.as_secs_f64()
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.ep.is_closed()
    }

    /// Listens on `addr` and returns the bound address.
    fn listen(&self, py: Python<'_>, addr: String) -> PyResult<String> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.listen(&addr).await })
    }

    /// Connects to the endpoint listening at `addr`.
    fn connect(&self, py: Python<'_>, addr: String) -> PyResult<PeerInfo> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.connect(&addr).await }).map(PeerInfo::from)
    }

    /// Publishes `data` on `path`.
    fn publish(&self, py: Python<'_>, path: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let fut = self.publish_fut(path, data)?;
        run_blocking(py, &self.blocker, fut)
    }

    /// Publishes without waiting; raises `BufferFullError` if a target had no room.
    fn try_publish(&self, path: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        check_alive()?;
        let p = payload(data)?;
        let _enter = self.rt.enter();
        self.ep.try_publish(path, p).map_err(to_py)
    }

    /// Publishes every payload of `payloads` on `path`, in order; returns how many.
    fn publish_many(
        &self,
        py: Python<'_>,
        path: String,
        payloads: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let fut = self.publish_many_fut(path, payloads)?;
        run_blocking(py, &self.blocker, fut)
    }

    /// Publishes `obj` encoded as plain msgpack.
    fn publish_obj(&self, py: Python<'_>, path: String, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut out = Vec::new();
        crate::msgpack::encode(obj, &mut out)?;
        let ep = self.ep.clone();
        run_blocking(
            py,
            &self.blocker,
            async move { ep.publish(&path, out).await },
        )
    }

    #[pyo3(signature = (pattern, capacity=None, max_bytes=None, overflow=None))]
    fn _subscribe(
        &self,
        pattern: &str,
        capacity: Option<usize>,
        max_bytes: Option<usize>,
        overflow: Option<&str>,
    ) -> PyResult<Subscription> {
        check_alive()?;
        let mut o = self.ep.config().subscribe.clone();
        if let Some(v) = capacity {
            o.capacity = v;
        }
        if let Some(v) = max_bytes {
            o.max_bytes = v;
        }
        if let Some(v) = overflow {
            o.overflow = self::overflow(v)?;
        }
        let _enter = self.rt.enter();
        let sub = self.ep.subscribe_with(pattern, o).map_err(to_py)?;
        Ok(Subscription::new(sub))
    }

    #[pyo3(signature = (pattern, queue=None, queue_bytes=None))]
    fn _serve(
        &self,
        pattern: &str,
        queue: Option<usize>,
        queue_bytes: Option<usize>,
    ) -> PyResult<Service> {
        check_alive()?;
        let _enter = self.rt.enter();
        let mut opts = netchan::ServeOptions::default();
        opts.queue = queue;
        opts.queue_bytes = queue_bytes;
        let svc = self.ep.serve_with(pattern, opts).map_err(to_py)?;
        Ok(Service::new(svc))
    }

    /// Sends a request and waits up to `timeout` seconds for the reply;
    /// with `wait_for_responder`, first waits (within the timeout) for a
    /// server to appear instead of raising `NoRespondersError` at once.
    #[pyo3(signature = (path, data=None, timeout=5.0, *, wait_for_responder=false))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        path: String,
        data: Option<&Bound<'py, PyAny>>,
        timeout: f64,
        wait_for_responder: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let fut = self.request_fut(path, data, timeout, wait_for_responder)?;
        let b = run_blocking(py, &self.blocker, fut)?;
        Ok(PyBytes::new(py, &b))
    }

    /// Opens a bidirectional stream on `path` to one endpoint serving
    /// streams there, with `first` as its first payload, and waits (up to
    /// `open_timeout`, default 10 s) for the server to take it.
    #[pyo3(signature = (
        path, first=None, *, timeout=None, open_timeout=None, window=None, wait_for_responder=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open_stream(
        &self,
        py: Python<'_>,
        path: String,
        first: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        open_timeout: Option<f64>,
        window: Option<usize>,
        wait_for_responder: bool,
    ) -> PyResult<Stream> {
        let fut = self.open_stream_fut(
            path,
            first,
            timeout,
            open_timeout,
            window,
            wait_for_responder,
        )?;
        run_blocking(py, &self.blocker, fut).map(Stream::new)
    }

    #[pyo3(signature = (pattern, queue=None, queue_bytes=None, window=None))]
    fn _serve_stream(
        &self,
        pattern: &str,
        queue: Option<usize>,
        queue_bytes: Option<usize>,
        window: Option<usize>,
    ) -> PyResult<StreamService> {
        check_alive()?;
        let _enter = self.rt.enter();
        let mut opts = netchan::ServeOptions::default();
        opts.queue = queue;
        opts.queue_bytes = queue_bytes;
        opts.window = window;
        let svc = self.ep.serve_stream_with(pattern, opts).map_err(to_py)?;
        Ok(StreamService::new(
            svc,
            self.blocker.clone(),
            self.rt.clone(),
        ))
    }

    /// Names of the endpoints serving streams on something overlapping `pattern`.
    fn stream_servers(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.ep.stream_servers(pattern).map_err(to_py)
    }

    /// Round-trip time to the connected peer named `peer`, in seconds.
    fn ping(&self, py: Python<'_>, peer: String) -> PyResult<f64> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.ping(&peer).await })
            .map(|d| d.as_secs_f64())
    }

    /// The connected peers.
    fn peers(&self) -> Vec<PeerInfo> {
        self.ep.peers().into_iter().map(PeerInfo::from).collect()
    }

    /// Replaces the access rules (docs/SECURITY.md, "Access rules"): a
    /// rules file's path (`str` or `os.PathLike`) or the rules' text
    /// (lines `allow IDENTITY ACTIONS PATH`); `None` removes them. They
    /// take effect at once, on existing links too; on an error the rules
    /// in use stay. Never blocks.
    #[pyo3(signature = (rules))]
    fn set_acl(&self, rules: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let src = match rules {
            None => None,
            Some(r) => {
                let text: String = r
                    .py()
                    .import("os")?
                    .call_method1("fspath", (r,))
                    .and_then(|p| p.extract())
                    .map_err(|_| {
                        PyTypeError::new_err(
                            "rules must be a path (str or os.PathLike), rules text, or None",
                        )
                    })?;
                netchan::AclSource::from_setting(&text)
            }
        };
        self.ep.set_acl(src).map_err(to_py)
    }

    /// Reads the TLS files, the shared key file and the rules file again
    /// (keys for connections made from now on, rules at once); on an error
    /// everything in use stays. Never blocks.
    fn reload_keys(&self) -> PyResult<()> {
        self.ep.reload_keys().map_err(to_py)
    }

    /// Failed connection attempts per remote address (without its port),
    /// most first: `[(address, count), ...]`.
    fn failed_attempts(&self) -> Vec<(String, u64)> {
        self.ep.failed_attempts()
    }

    /// Counters: `{"name", "total", "peers", "subscriptions"}`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.ep.stats();
        let counters = |c: &netchan::CounterStats| -> PyResult<Bound<'py, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("msgs_in", c.msgs_in)?;
            d.set_item("msgs_out", c.msgs_out)?;
            d.set_item("bytes_in", c.bytes_in)?;
            d.set_item("bytes_out", c.bytes_out)?;
            d.set_item("requests_in", c.requests_in)?;
            d.set_item("requests_out", c.requests_out)?;
            d.set_item("requests_refused", c.requests_refused)?;
            d.set_item("dropped_queue_full", c.dropped_queue_full)?;
            d.set_item("dropped_send_full", c.dropped_send_full)?;
            d.set_item("lost_with_link", c.lost_with_link)?;
            d.set_item("errors", c.errors)?;
            d.set_item("denied", c.denied)?;
            d.set_item("rate_limited", c.rate_limited)?;
            Ok(d)
        };
        let out = PyDict::new(py);
        out.set_item("name", &s.name)?;
        out.set_item("total", counters(&s.total)?)?;
        let peers = PyList::empty(py);
        for p in &s.peers {
            let d = PyDict::new(py);
            d.set_item("name", &p.name)?;
            d.set_item("addr", &p.addr)?;
            d.set_item("inbound", p.inbound)?;
            d.set_item("identity", &p.identity)?;
            d.set_item("rtt", p.rtt.map(|r| r.as_secs_f64()))?;
            d.set_item("counters", counters(&p.counters)?)?;
            peers.append(d)?;
        }
        out.set_item("peers", peers)?;
        let subs = PyList::empty(py);
        for x in &s.subscriptions {
            let d = PyDict::new(py);
            d.set_item("pattern", &x.pattern)?;
            d.set_item("delivered", x.delivered)?;
            d.set_item("dropped", x.dropped)?;
            d.set_item("queued", x.queued)?;
            subs.append(d)?;
        }
        out.set_item("subscriptions", subs)?;
        Ok(out)
    }

    /// Connection and drop events from now on.
    fn events(&self) -> PyResult<Events> {
        check_alive()?;
        Ok(Events::new(self.ep.events(), &self.ep))
    }

    /// The application goes to the background: closes every link and
    /// listener; subscriptions, services, declarations, messages held for
    /// dialled peers and counters stay. Emits a `suspended` event. Idempotent.
    fn suspend(&self, py: Python<'_>) -> PyResult<()> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.suspend().await })
    }

    /// Back to the foreground: listens and dials again at once; held
    /// messages go first. Emits a `resumed` event. Does nothing if not
    /// suspended.
    fn resume(&self, py: Python<'_>) -> PyResult<()> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.resume().await })
    }

    /// Replaces the TLS settings (the constructor's `tls_*` arguments,
    /// without the prefix); called with none of them, removes TLS
    /// (`tls://` is then refused). Connections made from now on use the
    /// new settings; existing ones keep theirs. Everything is read and
    /// checked first: on an error the settings in use stay.
    #[pyo3(signature = (*, cert=None, key=None, ca=None, pinned=None, client_auth=None, server_name=None))]
    #[allow(clippy::too_many_arguments)]
    fn set_tls(
        &self,
        cert: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        ca: Option<&Bound<'_, PyAny>>,
        pinned: Option<&Bound<'_, PyAny>>,
        client_auth: Option<&str>,
        server_name: Option<String>,
    ) -> PyResult<()> {
        check_alive()?;
        let mut c = Config::default();
        apply_tls(
            &mut c,
            "",
            [cert, key, ca, pinned],
            client_auth,
            server_name,
        )?;
        self.ep.set_tls(c.tls).map_err(to_py)
    }

    /// Replaces the shared keys: a key file's path (`netchan keygen`) or
    /// the keys' text, as the `psk` setting takes it; `None` removes them.
    /// `tcp://` links made from now on prove the new keys; on an error the
    /// keys in use stay.
    fn set_shared_keys(&self, keys: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        check_alive()?;
        let keys = match keys {
            None => None,
            Some(k) => {
                let text: String = k
                    .py()
                    .import("os")?
                    .call_method1("fspath", (k,))
                    .and_then(|p| p.extract::<String>())
                    .or_else(|_| k.extract::<String>())?;
                (!text.trim().is_empty()).then(|| netchan::KeySource::parse(&text))
            }
        };
        self.ep.set_shared_keys(keys).map_err(to_py)
    }

    /// Redials every lost peer now, skipping the rest of its backoff
    /// delay; returns at once (the outcome arrives as events).
    fn reconnect_now(&self) -> PyResult<()> {
        check_alive()?;
        self.ep.reconnect_now();
        Ok(())
    }

    /// The network changed: drops every link and redials every dialled
    /// address now.
    fn network_changed(&self, py: Python<'_>) -> PyResult<()> {
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move { ep.network_changed().await })
    }

    /// Closes the endpoint at interpreter exit (the package's exit hook),
    /// waiting at most `timeout` seconds for it: what is queued for peers
    /// is sent first (the core's close flushes, bounded), so a script that
    /// publishes and ends without `close()` still delivers.
    fn _close_at_exit(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        if crate::bridge::EXITING.load(std::sync::atomic::Ordering::SeqCst) || self.ep.is_closed() {
            return Ok(true);
        }
        let t = seconds("timeout", timeout)?;
        let ep = self.ep.clone();
        let fut = std::pin::pin!(async move { ep.close().await });
        let end = std::time::Instant::now() + t;
        Ok(crate::bridge::wait(py, &self.blocker, fut, Some(end))?.is_some())
    }

    /// True if a message published on `path` now would reach a subscriber.
    fn has_subscribers(&self, path: &str) -> PyResult<bool> {
        self.ep.has_subscribers(path).map_err(to_py)
    }

    /// Waits up to `timeout` seconds for a subscriber of `path`; whether one appeared.
    #[pyo3(signature = (path, timeout=5.0))]
    fn wait_for_subscribers(&self, py: Python<'_>, path: String, timeout: f64) -> PyResult<bool> {
        let t = seconds("timeout", timeout)?;
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move {
            ep.wait_for_subscribers(&path, t).await
        })
    }

    /// True if a request on `path` now would find a server.
    fn has_servers(&self, path: &str) -> PyResult<bool> {
        self.ep.has_servers(path).map_err(to_py)
    }

    /// Waits up to `timeout` seconds for a server of `path`; whether one appeared.
    #[pyo3(signature = (path, timeout=5.0))]
    fn wait_for_servers(&self, py: Python<'_>, path: String, timeout: f64) -> PyResult<bool> {
        let t = seconds("timeout", timeout)?;
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move {
            ep.wait_for_servers(&path, t).await
        })
    }

    /// Names of the endpoints subscribed to something overlapping `pattern`.
    fn subscribers(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.ep.subscribers(pattern).map_err(to_py)
    }

    /// Names of the endpoints that declared a publisher overlapping `pattern`.
    fn publishers(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.ep.publishers(pattern).map_err(to_py)
    }

    /// Names of the endpoints serving something overlapping `pattern`.
    fn servers(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.ep.servers(pattern).map_err(to_py)
    }

    /// Declares that this endpoint publishes on `pattern` (discovery).
    fn declare_publisher(&self, pattern: &str) -> PyResult<Publisher> {
        check_alive()?;
        let _enter = self.rt.enter();
        let d = self.ep.declare_publisher(pattern).map_err(to_py)?;
        Ok(Publisher {
            pattern: pattern.to_owned(),
            decl: std::sync::Mutex::new(Some(Arc::new(d))),
            rt: self.rt.clone(),
            blocker: self.blocker.clone(),
        })
    }

    /// Closes the endpoint. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if crate::bridge::EXITING.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let ep = self.ep.clone();
        run_blocking(py, &self.blocker, async move {
            ep.close().await;
            Ok(())
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Endpoint(name={:?})", self.ep.name())
    }

    // ------------------------------------------- primitives for netchan.aio

    fn _listen_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        addr: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.listen(&addr).await };
        start_async(py, &self.rt, event_loop, fut, conv_str)
    }

    fn _connect_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        addr: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.connect(&addr).await };
        start_async(py, &self.rt, event_loop, fut, conv_peer)
    }

    /// `None` when the publish finished at once (the usual case), else a
    /// future to await.
    fn _publish_async<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let fut = self.publish_fut(path, data)?;
        maybe_async(&self.rt, event_loop, fut, conv_none)
    }

    fn _publish_many_async<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        payloads: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.publish_many_fut(path, payloads)?;
        start_async(event_loop.py(), &self.rt, event_loop, fut, conv_usize)
    }

    #[pyo3(signature = (event_loop, path, data=None, timeout=5.0, wait_for_responder=false))]
    fn _request_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        data: Option<&Bound<'py, PyAny>>,
        timeout: f64,
        wait_for_responder: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.request_fut(path, data, timeout, wait_for_responder)?;
        start_async(py, &self.rt, event_loop, fut, conv_bytes)
    }

    #[pyo3(signature = (
        event_loop, path, first=None, timeout=None, open_timeout=None, window=None,
        wait_for_responder=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn _open_stream_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        first: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
        open_timeout: Option<f64>,
        window: Option<usize>,
        wait_for_responder: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.open_stream_fut(
            path,
            first,
            timeout,
            open_timeout,
            window,
            wait_for_responder,
        )?;
        start_async(py, &self.rt, event_loop, fut, conv_stream)
    }

    fn _ping_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        peer: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.ping(&peer).await };
        start_async(py, &self.rt, event_loop, fut, conv_secs)
    }

    fn _wait_for_subscribers_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = seconds("timeout", timeout)?;
        let ep = self.ep.clone();
        let fut = async move { ep.wait_for_subscribers(&path, t).await };
        start_async(py, &self.rt, event_loop, fut, conv_bool)
    }

    fn _wait_for_servers_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
        path: String,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = seconds("timeout", timeout)?;
        let ep = self.ep.clone();
        let fut = async move { ep.wait_for_servers(&path, t).await };
        start_async(py, &self.rt, event_loop, fut, conv_bool)
    }

    fn _suspend_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.suspend().await };
        start_async(py, &self.rt, event_loop, fut, conv_none)
    }

    fn _resume_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.resume().await };
        start_async(py, &self.rt, event_loop, fut, conv_none)
    }

    fn _network_changed_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move { ep.network_changed().await };
        start_async(py, &self.rt, event_loop, fut, conv_none)
    }

    fn _close_async<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ep = self.ep.clone();
        let fut = async move {
            ep.close().await;
            Ok(())
        };
        start_async(py, &self.rt, event_loop, fut, conv_none)
    }
}
