//! Addresses and byte streams: TCP, TLS over TCP, Unix domain sockets
//! (`unix.rs`, not on Windows), Windows named pipes (`pipe.rs`) and
//! in-process pipes (`inproc://`).
//!
//! Everything above this module sees a connection as a `Conn`: a boxed
//! async read half, a `Wire` write half that any thread may try a
//! non-blocking write on, the remote address and its origin. Adding a
//! transport (TLS, named pipes) means adding a variant to [`Addr`], `Wire`
//! and the listener, and a dial/listen arm here; nothing above changes.

mod inproc;
pub(crate) mod keys;
#[cfg(windows)]
mod pipe;
mod psk;
pub(crate) mod tls;
#[cfg(unix)]
mod unix;

pub use inproc::PIPE_CAPACITY as INPROC_PIPE_CAPACITY;

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;

use std::io::IoSlice;

use std::future::Future;

use tokio::io::AsyncRead;
use tokio::net::{TcpListener, TcpStream};

use crate::admission::Origin;
use crate::error::{Error, ErrorCode, Result};

const FORMS: &str = "accepted forms: tcp://HOST:PORT (tcp://127.0.0.1:7000, tcp://[::1]:7000, \
                     tcp://localhost:7000), tls://HOST:PORT, unix:///ABSOLUTE/PATH (not on Windows), \
                     pipe://NAME (Windows) or inproc://NAME";

/// A parsed endpoint address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// `tcp://HOST:PORT`; HOST is an IPv4 address, `[IPv6]` or a name.
    Tcp {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port; 0 to let the system choose when listening.
        port: u16,
    },
    /// `tls://HOST:PORT`: TLS 1.3 over TCP (see [`TlsConfig`](crate::config::TlsConfig)).
    Tls {
        /// Host name or address (IPv6 without brackets); a dialled peer's
        /// certificate must carry it (or `TlsConfig::server_name`).
        host: String,
        /// Port; 0 to let the system choose when listening.
        port: u16,
    },
    /// `unix:///absolute/path`: a Unix domain socket (not on Windows:
    /// listening or dialling one there fails with `INVALID_ADDRESS`).
    Unix(PathBuf),
    /// `pipe://NAME`: the Windows named pipe `\\.\pipe\NAME` (on other
    /// systems, listening or dialling one fails with `INVALID_ADDRESS`).
    Pipe(String),
    /// `inproc://NAME`: another endpoint of this process, through memory.
    Inproc(String),
}

fn bad(addr: &str, part: impl fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidAddress,
        format!("`{addr}`: {part}; {FORMS}"),
    )
}

impl Addr {
    /// Parses `tcp://HOST:PORT`, `tls://HOST:PORT`, `unix:///abs/path` or
    /// `inproc://NAME`.
    pub fn parse(s: &str) -> Result<Addr> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(bad(s, "missing scheme (`tcp://`, `tls://` or `unix://`)"));
        };
        match scheme {
            "tcp" | "tls" => {
                let (host, port) = if let Some(after) = rest.strip_prefix('[') {
                    let Some((h, p)) = after.split_once(']') else {
                        return Err(bad(s, "IPv6 host is missing its closing `]`"));
                    };
                    if h.parse::<std::net::Ipv6Addr>().is_err() {
                        return Err(bad(s, format!("`{h}` is not an IPv6 address")));
                    }
                    let Some(p) = p.strip_prefix(':') else {
                        return Err(bad(s, "missing `:PORT` after the IPv6 host"));
                    };
                    (h, p)
                } else {
                    let Some((h, p)) = rest.rsplit_once(':') else {
                        return Err(bad(s, "missing `:PORT`"));
                    };
                    if h.contains(':') {
                        return Err(bad(
                            s,
                            "an IPv6 host must be written in brackets, like [::1]",
                        ));
                    }
                    (h, p)
                };
                if host.is_empty() {
                    return Err(bad(s, "missing host"));
                }
                if host.contains('/') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(bad(s, format!("`{host}` is not a valid host")));
                }
                let port: u16 = port.parse().map_err(|_| {
                    bad(s, format!("port `{port}` is not a number from 0 to 65535"))
                })?;
                let host = host.to_owned();
                Ok(if scheme == "tls" {
                    Addr::Tls { host, port }
                } else {
                    Addr::Tcp { host, port }
                })
            }
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad(
                        s,
                        "a unix socket path must be absolute (unix:///tmp/x.sock)",
                    ));
                }
                if rest.len() > 107 {
                    return Err(bad(
                        s,
                        "unix socket path is longer than the system limit of 107 bytes",
                    ));
                }
                if rest.contains('\0') {
                    return Err(bad(s, "unix socket path contains NUL"));
                }
                Ok(Addr::Unix(PathBuf::from(rest)))
            }
            "pipe" => {
                if rest.is_empty()
                    || rest.len() > 256
                    || rest.contains('\\')
                    || rest.chars().any(char::is_control)
                {
                    return Err(bad(
                        s,
                        "a pipe name must be 1 to 256 bytes without backslashes or control characters",
                    ));
                }
                Ok(Addr::Pipe(rest.to_owned()))
            }
            "inproc" => {
                if rest.is_empty() || rest.len() > 255 || rest.chars().any(char::is_control) {
                    return Err(bad(
                        s,
                        "an inproc name must be 1 to 255 bytes without control characters",
                    ));
                }
                Ok(Addr::Inproc(rest.to_owned()))
            }
            other => Err(bad(s, format!("unknown scheme `{other}`"))),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Addr::Tls { host, port } if host.contains(':') => write!(f, "tls://[{host}]:{port}"),
            Addr::Tls { host, port } => write!(f, "tls://{host}:{port}"),
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Pipe(name) => write!(f, "pipe://{name}"),
            Addr::Inproc(name) => write!(f, "inproc://{name}"),
        }
    }
}

impl std::str::FromStr for Addr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Addr> {
        Addr::parse(s)
    }
}

/// The read half of a connection.
pub(crate) type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// The write half of a connection, shareable: any thread may try a
/// non-blocking write (the send queue's write-through), and the writer task
/// waits for writability. Dropping it shuts the write direction down (FIN).
pub(crate) enum Wire {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    #[cfg(unix)]
    Unix(tokio::net::unix::OwnedWriteHalf),
    #[cfg(windows)]
    Pipe(pipe::PipeWriter),
    Inproc(inproc::PipeWriter),
    /// A pipe that its own task drains into an encrypted stream (TLS,
    /// shared keys: see [`tls`]).
    Piped(inproc::PipeWriter),
}

impl Wire {
    /// Writes what the socket takes now, without waiting (`WouldBlock` if nothing).
    ///
    /// With `sendmsg(MSG_NOSIGNAL)` where the platform has it: `writev` to a
    /// connection the peer has closed raises SIGPIPE, which kills a host
    /// program that did not ignore it (a C program linking libnetchan does
    /// not; Rust programs do).
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd"
        ))]
        {
            use tokio::io::Interest;
            let send =
                |s: socket2::SockRef<'_>| s.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL);
            match self {
                Wire::Tcp(w) => {
                    let s = w.as_ref();
                    s.try_io(Interest::WRITABLE, || send(socket2::SockRef::from(s)))
                }
                Wire::Unix(w) => {
                    let s = w.as_ref();
                    s.try_io(Interest::WRITABLE, || send(socket2::SockRef::from(s)))
                }
                Wire::Inproc(w) | Wire::Piped(w) => w.try_write_vectored(bufs),
            }
        }
        #[cfg(not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd"
        )))]
        match self {
            // Apple systems: the sockets carry SO_NOSIGPIPE (see `no_sigpipe`).
            Wire::Tcp(w) => w.try_write_vectored(bufs),
            #[cfg(unix)]
            Wire::Unix(w) => w.try_write_vectored(bufs),
            #[cfg(windows)]
            Wire::Pipe(w) => w.try_write_vectored(bufs),
            Wire::Inproc(w) | Wire::Piped(w) => w.try_write_vectored(bufs),
        }
    }

    /// Waits until the socket may accept more bytes.
    pub(crate) async fn writable(&self) -> std::io::Result<()> {
        match self {
            Wire::Tcp(w) => w.writable().await,
            #[cfg(unix)]
            Wire::Unix(w) => w.writable().await,
            #[cfg(windows)]
            Wire::Pipe(w) => w.writable().await,
            Wire::Inproc(w) | Wire::Piped(w) => w.writable().await,
        }
    }

    /// Shuts the write direction down now (FIN), even while other owners
    /// still hold the peer; later writes fail.
    pub(crate) fn shutdown(&self) {
        let r = match self {
            Wire::Tcp(w) => socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write),
            #[cfg(unix)]
            Wire::Unix(w) => socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write),
            #[cfg(windows)]
            Wire::Pipe(w) => w.shutdown(),
            Wire::Inproc(w) | Wire::Piped(w) => {
                w.shutdown();
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::trace!(error = %e, "shutdown of the write side failed (already closed?)");
        }
    }

    /// Writes all of `buf`.
    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.try_write_vectored(&[IoSlice::new(buf)]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A connected byte stream split in two, with the remote address for logs.
pub(crate) struct Conn {
    pub reader: Reader,
    pub writer: Wire,
    pub remote: String,
    /// Who is on the other side, for the per-address handshake bound.
    pub origin: Origin,
    /// What the peer proved (a certificate, a shared key); `None`: only
    /// `origin` says who it is.
    pub identity: Option<crate::acl::Identity>,
}

/// Unsent bytes a TCP socket may hold before it stops taking more
/// (`TCP_NOTSENT_LOWAT`): past it, the queue waits in netchan's send queue,
/// where control frames (PING, PONG, CREDIT, DECLARE) go ahead of it. Without
/// it the kernel would take megabytes, and a PING would wait behind them for
/// seconds on a slow link (docs/RELIABILITY.md, "Liveness"). Bytes already
/// sent and awaiting their ACK do not count, so a fast link stays full.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
const TCP_UNSENT_MAX: u32 = 64 * 1024;

/// The option's number: the `libc` crate names it for Linux only; Apple's
/// `<netinet/tcp.h>` defines it as 0x201.
#[cfg(any(target_os = "linux", target_os = "android"))]
const TCP_NOTSENT_LOWAT: libc::c_int = libc::TCP_NOTSENT_LOWAT;
#[cfg(target_vendor = "apple")]
const TCP_NOTSENT_LOWAT: libc::c_int = 0x201;

/// Sets a TCP connection's options; returns its remote address (with
/// `scheme`) and origin.
fn tcp_prepare(s: &TcpStream, scheme: &str) -> (String, Origin) {
    let _ = s.set_nodelay(true);
    no_sigpipe(socket2::SockRef::from(s));
    set_unsent_max(s);
    let remote = s
        .peer_addr()
        .map(|a| format!("{scheme}://{a}"))
        .unwrap_or_else(|_| format!("{scheme}://?"));
    let origin = s
        .peer_addr()
        .map_or(Origin::Unknown, |a| Origin::Ip(a.ip()));
    (remote, origin)
}

fn tcp_conn(s: TcpStream) -> Conn {
    let (remote, origin) = tcp_prepare(&s, "tcp");
    let (r, w) = s.into_split();
    Conn {
        reader: Box::pin(r),
        writer: Wire::Tcp(w),
        remote,
        origin,
        identity: None,
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn set_unsent_max(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let v: libc::c_int = TCP_UNSENT_MAX as libc::c_int;
    // SAFETY: `s` owns a valid TCP socket for the duration of the call, and
    // the option value points at a live c_int of the size passed.
    // Best effort: without it only control frames' latency suffers.
    let _ = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn set_unsent_max(_: &TcpStream) {}

/// Apple systems have no `MSG_NOSIGNAL`: a write to a connection the peer
/// closed would raise SIGPIPE, which kills a host program that does not
/// ignore it, unless the socket carries `SO_NOSIGPIPE` (best effort: tokio's
/// sockets usually have it already).
fn no_sigpipe(_s: socket2::SockRef<'_>) {
    #[cfg(target_vendor = "apple")]
    let _ = _s.set_nosigpipe(true);
}

/// A connection made by [`raw_connect`] or accepted by a [`RawListener`]:
/// bytes without netchan's protocol, for tests that play a peer (a silent
/// one, a hostile one, a proxy) over any transport, `inproc` included.
/// Not part of the stable API.
#[doc(hidden)]
pub struct RawConn {
    conn: Conn,
}

impl RawConn {
    /// The remote address.
    pub fn remote(&self) -> &str {
        &self.conn.remote
    }
}

impl tokio::io::AsyncRead for RawConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.conn.reader.as_mut().poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for RawConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        loop {
            match self.conn.writer.try_write_vectored(&[IoSlice::new(buf)]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let w = self.conn.writer.writable();
                    let mut w = std::pin::pin!(w);
                    match w.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.conn.writer.shutdown();
        std::task::Poll::Ready(Ok(()))
    }
}

/// Dials `addr` without speaking netchan's protocol. Not part of the stable API.
#[doc(hidden)]
pub async fn raw_connect(addr: &str) -> Result<RawConn> {
    Ok(RawConn {
        conn: dial(&Addr::parse(addr)?, &keys::Keys::default()).await?,
    })
}

/// Listens on `addr` without speaking netchan's protocol. Not part of the
/// stable API.
#[doc(hidden)]
pub struct RawListener {
    inner: Listener,
    /// The bound address (port 0 resolved).
    pub addr: String,
}

impl RawListener {
    /// Binds `addr`.
    pub async fn bind(addr: &str) -> Result<RawListener> {
        let tls = std::sync::Arc::new(keys::Keys::default());
        let (inner, bound) = Listener::bind(&Addr::parse(addr)?, &tls, 0o600).await?;
        Ok(RawListener {
            inner,
            addr: bound.to_string(),
        })
    }

    /// The next connection.
    pub async fn accept(&self) -> std::io::Result<RawConn> {
        let a = self.inner.accept().await?;
        let conn = a
            .finish()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(RawConn { conn })
    }
}

/// The shared-key fuzz target's body (see `psk::fuzz_listener`).
pub(crate) fn fuzz_shared_key_listener(data: &[u8]) {
    psk::fuzz_listener(data)
}

/// The error for an I/O error that is a TLS or shared-key failure with
/// `remote` (after the handshake too), if it is one.
pub(crate) fn security_error(remote: &str, e: &std::io::Error) -> Option<Error> {
    tls::tls_error(remote, e).or_else(|| psk::failure(remote, e))
}

/// Dials an address (a `tls://` one, or `tcp://` with shared keys, with the
/// keys in `keys`).
pub(crate) async fn dial(addr: &Addr, keys: &keys::Keys) -> Result<Conn> {
    let refused = |e: std::io::Error| {
        Error::new(
            ErrorCode::ConnectRefused,
            format!("cannot connect to {addr}: {e}"),
        )
    };
    match addr {
        Addr::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(refused)?;
            match keys.psk() {
                None => Ok(tcp_conn(s)),
                Some(psk) => {
                    let (remote, origin) = tcp_prepare(&s, "tcp");
                    psk::connect(&psk, s, remote, origin).await
                }
            }
        }
        Addr::Tls { host, port } => {
            // Settings first: a missing CA is the caller's to fix, not the peer's.
            let client = keys.tls_client()?;
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(refused)?;
            let (remote, origin) = tcp_prepare(&s, "tls");
            tls::connect(client, host, s, remote, origin).await
        }
        #[cfg(unix)]
        Addr::Unix(p) => unix::dial(addr, p).await.map_err(refused),
        #[cfg(windows)]
        Addr::Pipe(name) => pipe::dial(name).await.map_err(refused),
        #[cfg(not(unix))]
        Addr::Unix(_) => Err(unix_elsewhere(addr)),
        #[cfg(not(windows))]
        Addr::Pipe(_) => Err(pipe_elsewhere(addr)),
        Addr::Inproc(name) => inproc::dial(name),
    }
}

/// An accepted connection whose TLS handshake, if any, is still to run:
/// [`Accepted::finish`] runs it in the connection's own task, so a slow or
/// stalled handshake never holds up the accept loop.
pub(crate) struct Accepted {
    /// Who is on the other side, for the per-address handshake bound.
    pub origin: Origin,
    /// The remote address, for logs and errors.
    pub remote: String,
    ready: Pin<Box<dyn Future<Output = Result<Conn>> + Send>>,
}

impl Accepted {
    fn ready(conn: Conn) -> Accepted {
        Accepted {
            origin: conn.origin.clone(),
            remote: conn.remote.clone(),
            ready: Box::pin(std::future::ready(Ok(conn))),
        }
    }

    /// The connection, once its handshake (if any) is done.
    pub(crate) async fn finish(self) -> Result<Conn> {
        self.ready.await
    }
}

/// A bound listener.
pub(crate) enum Listener {
    /// TCP; with shared keys in use at the time of an accept, the
    /// connection must prove one.
    Tcp(TcpListener, std::sync::Arc<keys::Keys>),
    /// TLS: the endpoint's settings at the time of each accept.
    Tls(TcpListener, std::sync::Arc<keys::Keys>),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
    #[cfg(windows)]
    Pipe(pipe::PipeListener),
    Inproc(inproc::InprocListener),
}

impl Listener {
    /// Binds; returns the listener and its actual address (port 0
    /// resolved). A Unix socket file gets the permissions `unix_mode`.
    pub(crate) async fn bind(
        addr: &Addr,
        keys: &std::sync::Arc<keys::Keys>,
        unix_mode: u32,
    ) -> Result<(Listener, Addr)> {
        #[cfg(not(unix))]
        let _ = unix_mode;
        match addr {
            Addr::Tcp { host, port } | Addr::Tls { host, port } => {
                let secure = matches!(addr, Addr::Tls { .. });
                if secure {
                    keys.tls_server()?;
                }
                let l = TcpListener::bind((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        let code = if e.kind() == std::io::ErrorKind::AddrInUse {
                            ErrorCode::AddressInUse
                        } else {
                            ErrorCode::InvalidAddress
                        };
                        Error::new(code, format!("cannot listen on {addr}: {e}"))
                    })?;
                let local = l.local_addr().map_err(|e| Error::io("local_addr", &e))?;
                let (host, port) = (local.ip().to_string(), local.port());
                Ok(if secure {
                    (Listener::Tls(l, keys.clone()), Addr::Tls { host, port })
                } else {
                    (Listener::Tcp(l, keys.clone()), Addr::Tcp { host, port })
                })
            }
            #[cfg(unix)]
            Addr::Unix(p) => Ok((
                Listener::Unix(unix::listen(addr, p, unix_mode).await?, p.clone()),
                addr.clone(),
            )),
            #[cfg(windows)]
            Addr::Pipe(name) => Ok((Listener::Pipe(pipe::listen(addr, name)?), addr.clone())),
            #[cfg(not(unix))]
            Addr::Unix(_) => Err(unix_elsewhere(addr)),
            #[cfg(not(windows))]
            Addr::Pipe(_) => Err(pipe_elsewhere(addr)),
            Addr::Inproc(name) => Ok((
                Listener::Inproc(inproc::InprocListener::bind(name)?),
                addr.clone(),
            )),
        }
    }

    pub(crate) async fn accept(&self) -> std::io::Result<Accepted> {
        Ok(match self {
            Listener::Tcp(l, keys) => {
                let (s, _) = l.accept().await?;
                match keys.psk() {
                    None => Accepted::ready(tcp_conn(s)),
                    Some(psk) => {
                        let (remote, origin) = tcp_prepare(&s, "tcp");
                        Accepted {
                            origin: origin.clone(),
                            remote: remote.clone(),
                            ready: Box::pin(psk::accept(psk, s, remote, origin)),
                        }
                    }
                }
            }
            Listener::Tls(l, keys) => {
                let (s, _) = l.accept().await?;
                let (remote, origin) = tcp_prepare(&s, "tls");
                let cfg = keys.tls_server();
                Accepted {
                    origin: origin.clone(),
                    remote: remote.clone(),
                    ready: Box::pin(async move { tls::accept(cfg?, s, remote, origin).await }),
                }
            }
            #[cfg(unix)]
            Listener::Unix(l, p) => Accepted::ready(unix::accept(l, p).await?),
            #[cfg(windows)]
            Listener::Pipe(l) => Accepted::ready(l.accept().await?),
            Listener::Inproc(l) => Accepted::ready(l.accept().await?),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `unix://` on a system without Unix sockets (Windows).
#[cfg(not(unix))]
fn unix_elsewhere(addr: &Addr) -> Error {
    Error::new(
        ErrorCode::InvalidAddress,
        format!("{addr}: Unix sockets are not available on this system; use pipe://NAME for a named pipe"),
    )
}

/// `pipe://` on a system without named pipes (everything but Windows).
#[cfg(not(windows))]
fn pipe_elsewhere(addr: &Addr) -> Error {
    Error::new(
        ErrorCode::InvalidAddress,
        format!("{addr}: named pipes are a Windows transport; use unix:///PATH on this system"),
    )
}

#[cfg(test)]
mod tests;
