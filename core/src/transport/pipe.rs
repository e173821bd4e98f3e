//! Windows named pipes (`pipe://NAME`, the pipe `\\.\pipe\NAME`): the
//! same-host transport Unix sockets are elsewhere.
//!
//! A pipe instance carries one connection. The listener keeps one instance
//! waiting for a client; when a client connects it makes the next one
//! before handing the connected one over, so a client never finds no
//! instance while the endpoint listens. Instances refuse remote clients
//! (`reject_remote_clients`): a pipe is for this machine only. The default
//! security descriptor applies (full control for the creating user,
//! SYSTEM and administrators; read access for everyone else, which cannot
//! write a frame).
//!
//! Both halves of a connection share the instance: reads and writes are
//! readiness-based (`try_read`, `try_write_vectored`), as on sockets. A pipe
//! has no half-close: shutting the write side down makes later writes fail
//! and, on the listening side, disconnects the instance; a dialled pipe
//! closes when its last half is dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};

use super::{Addr, Conn, Wire};
use crate::admission::Origin;
use crate::error::{Error, ErrorCode, Result};

/// `ERROR_FILE_NOT_FOUND`: nobody listens on that name.
const ERROR_FILE_NOT_FOUND: i32 = 2;
/// `ERROR_ACCESS_DENIED`: the name is taken (by another listener).
const ERROR_ACCESS_DENIED: i32 = 5;
/// `ERROR_PIPE_BUSY`: every instance is connected; the listener makes the
/// next one a moment later.
const ERROR_PIPE_BUSY: i32 = 231;
/// How long a dial waits for a busy listener's next instance, and how
/// often it looks.
const BUSY_WAIT: Duration = Duration::from_secs(5);
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// The pipe's path for `pipe://NAME`.
fn path(name: &str) -> String {
    format!(r"\\.\pipe\{name}")
}

enum End {
    Server(NamedPipeServer),
    Client(NamedPipeClient),
}

/// One connected pipe instance, shared by both halves of a connection.
struct Pipe {
    end: End,
    shut: AtomicBool,
}

impl Pipe {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.end {
            End::Server(p) => p.poll_read_ready(cx),
            End::Client(p) => p.poll_read_ready(cx),
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.end {
            End::Server(p) => p.try_read(buf),
            End::Client(p) => p.try_read(buf),
        }
    }
}

/// The read half of a pipe connection.
struct PipeReader(Arc<Pipe>);

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.0.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale (it is cleared now): wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The other side closed: the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The write half of a pipe connection (see [`Wire`]).
pub(crate) struct PipeWriter(Arc<Pipe>);

impl PipeWriter {
    pub(super) fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.0.shut.load(SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match &self.0.end {
            End::Server(p) => p.try_write_vectored(bufs),
            End::Client(p) => p.try_write_vectored(bufs),
        }
    }

    pub(super) async fn writable(&self) -> io::Result<()> {
        match &self.0.end {
            End::Server(p) => p.writable().await,
            End::Client(p) => p.writable().await,
        }
    }

    pub(super) fn shutdown(&self) -> io::Result<()> {
        self.0.shut.store(true, SeqCst);
        match &self.0.end {
            End::Server(p) => p.disconnect(),
            End::Client(_) => Ok(()),
        }
    }
}

fn conn(end: End, name: &str) -> Conn {
    let pipe = Arc::new(Pipe {
        end,
        shut: AtomicBool::new(false),
    });
    Conn {
        reader: Box::pin(PipeReader(pipe.clone())),
        writer: Wire::Pipe(PipeWriter(pipe)),
        remote: format!("pipe://{name}"),
        origin: Origin::Unknown,
        identity: None,
    }
}

/// Dials `pipe://name`, waiting a moment for a busy listener's next
/// instance.
pub(super) async fn dial(name: &str) -> io::Result<Conn> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    loop {
        match ClientOptions::new().open(path(name)) {
            Ok(c) => return Ok(conn(End::Client(c), name)),
            Err(e)
                if e.raw_os_error() == Some(ERROR_PIPE_BUSY)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(BUSY_RETRY).await
            }
            Err(e) if e.raw_os_error() == Some(ERROR_FILE_NOT_FOUND) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no endpoint listens on that pipe",
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// A listening pipe name, with the instance waiting for the next client.
pub(crate) struct PipeListener {
    name: String,
    next: tokio::sync::Mutex<NamedPipeServer>,
}

fn instance(name: &str, first: bool) -> io::Result<NamedPipeServer> {
    ServerOptions::new()
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .create(path(name))
}

/// Listens on `pipe://name` (`addr`); the name must be free.
pub(super) fn listen(addr: &Addr, name: &str) -> Result<PipeListener> {
    let first = instance(name, true).map_err(|e| {
        let code = if e.raw_os_error() == Some(ERROR_ACCESS_DENIED) {
            ErrorCode::AddressInUse
        } else {
            ErrorCode::InvalidAddress
        };
        Error::new(code, format!("cannot listen on {addr}: {e}"))
    })?;
    Ok(PipeListener {
        name: name.to_owned(),
        next: tokio::sync::Mutex::new(first),
    })
}

impl PipeListener {
    /// The next connection.
    pub(super) async fn accept(&self) -> io::Result<Conn> {
        let mut next = self.next.lock().await;
        if let Err(e) = next.connect().await {
            // A client that left before the connection completed leaves the
            // instance unusable: the next accept waits on a fresh one.
            *next = instance(&self.name, false)?;
            return Err(e);
        }
        let connected = std::mem::replace(&mut *next, instance(&self.name, false)?);
        Ok(conn(End::Server(connected), &self.name))
    }
}
