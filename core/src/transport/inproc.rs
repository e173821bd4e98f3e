//! `inproc://NAME`: connections between endpoints of one process, through
//! in-memory pipes instead of sockets.
//!
//! Each direction of a connection is a bounded pipe ([`PIPE_CAPACITY`]
//! bytes, like a socket buffer): a writer that finds it full waits, a reader
//! that finds it empty waits, and either side's end is seen by the other as
//! end of stream or a broken pipe. Nothing here touches the operating
//! system, so an endpoint pair over `inproc` runs on a paused tokio clock
//! without the clock racing packets in flight: the tests of heartbeats,
//! backoff and timeouts run in virtual time over it.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use once_cell::sync::Lazy;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::Conn;
use crate::admission::Origin;
use crate::error::{Error, ErrorCode, Result};

/// Bytes one direction of a connection holds before its writer waits.
pub const PIPE_CAPACITY: usize = 256 * 1024;

#[derive(Default)]
struct PipeState {
    buf: BytesMut,
    /// The writer shut down or was dropped: the reader sees end of stream
    /// once the buffer is drained.
    write_closed: bool,
    /// The reader was dropped: writes fail.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

struct Pipe {
    st: Mutex<PipeState>,
    /// Bytes it holds before its writer waits.
    capacity: usize,
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reading end of a pipe.
pub(crate) struct PipeReader(Arc<Pipe>);

/// The writing end of a pipe: any thread may try a non-blocking write.
pub(crate) struct PipeWriter(Arc<Pipe>);

fn pipe() -> (PipeWriter, PipeReader) {
    pipe_with(PIPE_CAPACITY)
}

/// A pipe that holds `capacity` bytes before its writer waits.
pub(crate) fn pipe_with(capacity: usize) -> (PipeWriter, PipeReader) {
    let p = Arc::new(Pipe {
        st: Mutex::new(PipeState::default()),
        capacity,
    });
    (PipeWriter(p.clone()), PipeReader(p))
}

impl PipeReader {
    /// Takes everything buffered, waiting for something; `None` at the end
    /// of the stream. No copy: the bytes move out as they are.
    pub(crate) async fn take_all(&mut self) -> Option<BytesMut> {
        std::future::poll_fn(|cx| {
            let mut st = self.0.lock();
            if !st.buf.is_empty() {
                let b = st.buf.split();
                if let Some(w) = st.writer.take() {
                    w.wake();
                }
                return Poll::Ready(Some(b));
            }
            if st.write_closed {
                return Poll::Ready(None);
            }
            st.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.0.lock();
        if !st.buf.is_empty() {
            let n = st.buf.len().min(out.remaining());
            out.put_slice(&st.buf[..n]);
            st.buf.advance(n);
            if let Some(w) = st.writer.take() {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        if st.write_closed {
            return Poll::Ready(Ok(()));
        }
        if !st.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.read_closed = true;
        st.buf = BytesMut::new();
        if let Some(w) = st.writer.take() {
            w.wake();
        }
    }
}

impl PipeWriter {
    /// Writes what fits now; `WouldBlock` if nothing does.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.0.lock();
        if st.read_closed || st.write_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut room = self.0.capacity.saturating_sub(st.buf.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            st.buf.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        if n > 0 {
            if let Some(w) = st.reader.take() {
                w.wake();
            }
        }
        Ok(n)
    }

    /// Waits until a write may make progress (or would fail at once).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let mut st = self.0.lock();
            if st.read_closed || st.write_closed || st.buf.len() < self.0.capacity {
                return Poll::Ready(Ok(()));
            }
            st.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Ends this direction: the reader sees end of stream after the bytes
    /// already written.
    pub(crate) fn shutdown(&self) {
        let mut st = self.0.lock();
        st.write_closed = true;
        if let Some(w) = st.reader.take() {
            w.wake();
        }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Listening names of this process: each with its listener's id and its
/// queue of new connections.
type Names = HashMap<String, (u64, mpsc::UnboundedSender<Conn>)>;

static NAMES: Lazy<Mutex<Names>> = Lazy::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn names() -> std::sync::MutexGuard<'static, Names> {
    NAMES.lock().unwrap_or_else(|p| p.into_inner())
}

/// A listening `inproc` name; dropping it frees the name.
pub(crate) struct InprocListener {
    name: String,
    id: u64,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Conn>>,
}

impl InprocListener {
    pub(crate) fn bind(name: &str) -> Result<InprocListener> {
        let mut n = names();
        if n.contains_key(name) {
            return Err(Error::new(
                ErrorCode::AddressInUse,
                format!(
                    "cannot listen on inproc://{name}: another endpoint of this process listens there"
                ),
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n.insert(name.to_owned(), (id, tx));
        Ok(InprocListener {
            name: name.to_owned(),
            id,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<Conn> {
        match self.rx.lock().await.recv().await {
            Some(c) => Ok(c),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Drop for InprocListener {
    fn drop(&mut self) {
        let mut n = names();
        if n.get(&self.name).is_some_and(|(id, _)| *id == self.id) {
            n.remove(&self.name);
        }
    }
}

/// Connects to the endpoint listening on `inproc://name`.
pub(crate) fn dial(name: &str) -> Result<Conn> {
    let tx = names().get(name).map(|(_, tx)| tx.clone());
    let refused = || {
        Error::new(
            ErrorCode::ConnectRefused,
            format!("cannot connect to inproc://{name}: no endpoint of this process listens there"),
        )
    };
    let tx = tx.ok_or_else(refused)?;
    let (to_server, server_reads) = pipe();
    let (to_client, client_reads) = pipe();
    let remote = format!("inproc://{name}");
    let server_side = Conn {
        reader: Box::pin(server_reads),
        writer: super::Wire::Inproc(to_client),
        remote: remote.clone(),
        origin: Origin::Unknown,
        identity: None,
    };
    tx.send(server_side).map_err(|_| refused())?;
    Ok(Conn {
        reader: Box::pin(client_reads),
        writer: super::Wire::Inproc(to_server),
        remote,
        origin: Origin::Unknown,
        identity: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_pipe_carries_bytes_blocks_when_full_and_ends() {
        let (w, mut r) = pipe();
        assert_eq!(w.try_write_vectored(&[IoSlice::new(b"hello")]).unwrap(), 5);
        let mut got = [0u8; 5];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        let big = vec![1u8; PIPE_CAPACITY + 10];
        assert_eq!(
            w.try_write_vectored(&[IoSlice::new(&big)]).unwrap(),
            PIPE_CAPACITY
        );
        assert_eq!(
            w.try_write_vectored(&[IoSlice::new(b"x")])
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
        let mut sink = vec![0u8; PIPE_CAPACITY];
        r.read_exact(&mut sink).await.unwrap();
        w.writable().await.unwrap();
        w.shutdown();
        assert_eq!(r.read(&mut sink).await.unwrap(), 0, "end of stream");
        drop(r);
        let (w, r) = pipe();
        drop(r);
        assert_eq!(
            w.try_write_vectored(&[IoSlice::new(b"x")])
                .unwrap_err()
                .kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[tokio::test]
    async fn names_are_unique_and_freed_with_their_listener() {
        let l = InprocListener::bind("t-names").unwrap();
        assert_eq!(
            InprocListener::bind("t-names").err().unwrap().code(),
            ErrorCode::AddressInUse
        );
        let _c = dial("t-names").unwrap();
        let _s = l.accept().await.unwrap();
        drop(l);
        assert_eq!(
            dial("t-names").err().unwrap().code(),
            ErrorCode::ConnectRefused
        );
        let _again = InprocListener::bind("t-names").unwrap();
    }
}
