//! Shared keys on `tcp://` (docs/SECURITY.md and docs/PROTOCOL.md, "Shared
//! keys"): before any netchan frame, the dialler proves it holds a key the
//! listener has, with the Noise protocol (`Noise_NNpsk0_25519_AESGCM_SHA256`,
//! from the `snow` crate; AES-GCM and SHA-256 from ring, which has AES
//! instructions where the processor does): fresh ephemeral keys on both sides (forward
//! secrecy; a recorded handshake replayed later cannot decrypt what
//! follows), and the key mixed in from the first message. Then every byte
//! travels in Noise transport frames: a 2-byte big-endian length and up to
//! 65535 bytes of ciphertext.
//!
//! The dialler's first flight is `"NCPSK" 0x01`, the key id's length (1
//! byte) and the key id, then the first Noise message with its length; the
//! key id names which key (so keys rotate without downtime), and is the
//! Noise prologue, so changing it in flight fails the handshake.
//!
//! As with TLS (see `tls.rs`), the write side is an in-memory pipe that a
//! pump task encrypts into the socket, and the read side decrypts frames as
//! they come.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::inproc::{self, PipeReader};
use super::{Conn, Wire};
use crate::admission::Origin;
use crate::config::SharedKeys;
use crate::error::{Error, ErrorCode, Result};

const MAGIC: &[u8; 6] = b"NCPSK\x01";
const NOISE: &str = "Noise_NNpsk0_25519_AESGCM_SHA256";
/// The largest Noise message.
const MAX_FRAME: usize = 65535;
/// The AEAD tag each transport frame carries.
const TAG: usize = 16;
/// Handshake messages are 48 bytes (an ephemeral key and a tag).
const MAX_HANDSHAKE: usize = 256;

/// Why a shared-key link failed, inside an `io::Error` (see [`failure`]).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The error for an I/O error that is a shared-key failure, if it is one.
pub(crate) fn failure(remote: &str, e: &io::Error) -> Option<Error> {
    let r = e.get_ref()?.downcast_ref::<Refused>()?;
    Some(Error::new(
        ErrorCode::SharedKeyRefused,
        format!("shared key with {remote}: {r}"),
    ))
}

fn refused(detail: impl Into<String>) -> Error {
    Error::new(ErrorCode::SharedKeyRefused, detail)
}

fn noise(e: snow::Error) -> Error {
    Error::new(ErrorCode::Internal, format!("Noise: {e}"))
}

fn prologue(id: &[u8]) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(id.len() as u8);
    p.extend_from_slice(id);
    p
}

fn builder<'a>(prologue: &'a [u8], key: &'a [u8; 32]) -> Result<snow::Builder<'a>> {
    let params = NOISE.parse().map_err(noise)?;
    // ring for the cipher and the hash (several times faster than the
    // portable ones here: docs/BENCHMARKS.md), the default for X25519.
    let resolver = snow::resolvers::FallbackResolver::new(
        Box::new(snow::resolvers::RingResolver),
        Box::new(snow::resolvers::DefaultResolver),
    );
    snow::Builder::with_resolver(params, Box::new(resolver))
        .prologue(prologue)
        .and_then(|b| b.psk(0, key))
        .map_err(noise)
}

/// Proves the first shared key to the listener over a connected stream.
pub(crate) async fn connect(
    keys: &SharedKeys,
    mut s: TcpStream,
    remote: String,
    origin: Origin,
) -> Result<Conn> {
    let (id, key) = &keys.keys[0];
    let pro = prologue(id.as_bytes());
    let mut hs = builder(&pro, key)?.build_initiator().map_err(noise)?;
    let mut msg = [0u8; MAX_HANDSHAKE];
    let n = hs.write_message(&[], &mut msg).map_err(noise)?;
    let mut out = pro.clone();
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&msg[..n]);
    let lost = |e: io::Error| {
        refused(format!(
            "{remote} closed the connection at the shared-key handshake ({e}): it does not hold key `{id}`, or does not use shared keys"
        ))
    };
    s.write_all(&out).await.map_err(lost)?;
    let len = s.read_u16().await.map_err(lost)? as usize;
    if len > MAX_HANDSHAKE {
        return Err(refused(format!(
            "{remote} answered the shared-key handshake with {len} bytes: not a netchan peer with shared keys"
        )));
    }
    s.read_exact(&mut msg[..len]).await.map_err(lost)?;
    let mut payload = [0u8; MAX_HANDSHAKE];
    hs.read_message(&msg[..len], &mut payload).map_err(|_| {
        refused(format!(
            "{remote}'s answer does not prove it holds key `{id}`"
        ))
    })?;
    let t = hs.into_stateless_transport_mode().map_err(noise)?;
    let who = keys.identity(id);
    Ok(conn(s, t, remote, origin, who))
}

/// Checks that an accepted connection holds one of `keys`, within the
/// caller's time limit.
pub(crate) async fn accept(
    keys: Arc<SharedKeys>,
    mut s: TcpStream,
    remote: String,
    origin: Origin,
) -> Result<Conn> {
    let (t, id) = respond(&keys, &mut s, &remote).await?;
    let who = keys.identity(&id);
    Ok(conn(s, t, remote, origin, who))
}

/// The listener's side of the handshake, on any byte stream.
async fn respond<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    keys: &SharedKeys,
    s: &mut S,
    remote: &str,
) -> Result<(StatelessTransportState, String)> {
    let lost = |e: io::Error| {
        refused(format!(
            "{remote} left during the shared-key handshake ({e})"
        ))
    };
    let mut magic = [0u8; 6];
    s.read_exact(&mut magic).await.map_err(lost)?;
    if &magic != MAGIC {
        return Err(refused(format!(
            "{remote} did not start a shared-key handshake (a peer without shared keys, or not netchan)"
        )));
    }
    let id_len = s.read_u8().await.map_err(lost)? as usize;
    if id_len == 0 || id_len > crate::config::MAX_KEY_ID {
        return Err(refused(format!("{remote} sent a key id of {id_len} bytes")));
    }
    let mut id = vec![0u8; id_len];
    s.read_exact(&mut id).await.map_err(lost)?;
    let shown = String::from_utf8_lossy(&id).into_owned();
    let Some(key) = keys.get(&id) else {
        return Err(refused(format!(
            "{remote} named key `{shown}`, which this endpoint does not have"
        )));
    };
    let len = s.read_u16().await.map_err(lost)? as usize;
    if len > MAX_HANDSHAKE {
        return Err(refused(format!(
            "{remote} sent a {len}-byte handshake message"
        )));
    }
    let mut msg = [0u8; MAX_HANDSHAKE];
    s.read_exact(&mut msg[..len]).await.map_err(lost)?;
    let pro = prologue(&id);
    let mut hs = builder(&pro, key)?.build_responder().map_err(noise)?;
    let mut payload = [0u8; MAX_HANDSHAKE];
    hs.read_message(&msg[..len], &mut payload)
        .map_err(|_| refused(format!("{remote} does not hold key `{shown}`")))?;
    let n = hs.write_message(&[], &mut msg).map_err(noise)?;
    let mut out = (n as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&msg[..n]);
    s.write_all(&out).await.map_err(lost)?;
    let t = hs.into_stateless_transport_mode().map_err(noise)?;
    Ok((t, shown))
}

fn conn(
    s: TcpStream,
    t: StatelessTransportState,
    remote: String,
    origin: Origin,
    identity: crate::acl::Identity,
) -> Conn {
    let t = Arc::new(t);
    let (r, w) = s.into_split();
    let (pw, pr) = inproc::pipe_with(super::tls::ENCRYPTED_PIPE);
    tokio::spawn(pump(pr, w, t.clone()));
    Conn {
        reader: Box::pin(Decrypt {
            inner: r,
            t,
            nonce: 0,
            raw: BytesMut::with_capacity(2 * MAX_FRAME),
            plain: BytesMut::new(),
        }),
        writer: Wire::Piped(pw),
        remote,
        origin,
        identity: Some(identity),
    }
}

/// Encrypts what the link writes into frames on the socket. An error ends
/// it (the dropped pipe fails the link's next write); the pipe's end shuts
/// the socket's write side.
async fn pump(mut from: PipeReader, mut to: OwnedWriteHalf, t: Arc<StatelessTransportState>) {
    let mut nonce = 0u64;
    let mut out = Vec::new();
    while let Some(chunk) = from.take_all().await {
        out.clear();
        for piece in chunk.chunks(MAX_FRAME - TAG) {
            let at = out.len();
            out.resize(at + 2 + piece.len() + TAG, 0);
            let Ok(n) = t.write_message(nonce, piece, &mut out[at + 2..]) else {
                return;
            };
            nonce += 1;
            out[at..at + 2].copy_from_slice(&(n as u16).to_be_bytes());
            out.truncate(at + 2 + n);
        }
        if to.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// The read side: frames in, plaintext out.
struct Decrypt<R = OwnedReadHalf> {
    inner: R,
    t: Arc<StatelessTransportState>,
    nonce: u64,
    /// Bytes read, not yet a whole frame.
    raw: BytesMut,
    /// Decrypted bytes not yet read.
    plain: BytesMut,
}

impl<R> Decrypt<R> {
    /// Decrypts the whole frames in `raw` into `plain`.
    fn open(&mut self) -> io::Result<()> {
        while self.raw.len() >= 2 {
            let len = u16::from_be_bytes([self.raw[0], self.raw[1]]) as usize;
            if self.raw.len() < 2 + len {
                break;
            }
            let at = self.plain.len();
            self.plain.resize(at + len, 0);
            let n = self
                .t
                .read_message(self.nonce, &self.raw[2..2 + len], &mut self.plain[at..])
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        Refused(
                            "a frame does not decrypt with the shared key (a replayed recording, or tampering)"
                                .into(),
                        ),
                    )
                })?;
            self.nonce += 1;
            self.plain.truncate(at + n);
            self.raw.advance(2 + len);
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Decrypt<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.plain.is_empty() {
                let n = me.plain.len().min(out.remaining());
                out.put_slice(&me.plain[..n]);
                me.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            me.raw.reserve(MAX_FRAME + 2);
            let before = me.raw.len();
            let n = {
                let spare = me.raw.spare_capacity_mut();
                let mut buf = ReadBuf::uninit(spare);
                match Pin::new(&mut me.inner).poll_read(cx, &mut buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => buf.filled().len(),
                }
            };
            if n == 0 {
                // The end: clean only at a frame boundary.
                return Poll::Ready(if me.raw.is_empty() {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                });
            }
            // SAFETY: `poll_read` initialised `n` bytes of the spare
            // capacity, right after the `before` bytes already there.
            unsafe { me.raw.set_len(before + n) };
            me.open()?;
        }
    }
}

/// The fuzz target's body (`netchan::fuzz::shared_key_handshake`): `data`
/// is what a dialler sends to a listener with one key. The listener must
/// refuse or accept without panicking, and what follows an accepted
/// handshake must fail to decrypt (the fuzzer cannot know the ephemeral
/// keys), never panic.
pub(crate) fn fuzz_listener(data: &[u8]) {
    let keys = SharedKeys {
        keys: vec![("k1".to_owned(), [7u8; 32])],
        names: Default::default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for the fuzz body");
    rt.block_on(async {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        // Fits the duplex buffer: written whole, then ended.
        let _ = far.write_all(&data[..data.len().min(1 << 19)]).await;
        let _ = far.shutdown().await;
        let Ok((t, _)) = respond(&keys, &mut near, "fuzz").await else {
            return;
        };
        let mut d = Decrypt {
            inner: near,
            t: Arc::new(t),
            nonce: 0,
            raw: BytesMut::new(),
            plain: BytesMut::new(),
        };
        let mut sink = [0u8; 4096];
        // The end of the stream or an error: never a decrypted byte.
        if let Ok(n) = d.read(&mut sink).await {
            assert_eq!(
                n, 0,
                "bytes decrypted under a listener's fresh ephemeral key"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dialler's genuine first flight for key `k1` = [7; 32] (the fuzz
    /// body's key), as the seed the fuzzer cannot guess.
    fn genuine_flight() -> Vec<u8> {
        let pro = prologue(b"k1");
        let key = [7u8; 32];
        let mut hs = builder(&pro, &key).unwrap().build_initiator().unwrap();
        let mut msg = [0u8; MAX_HANDSHAKE];
        let n = hs.write_message(&[], &mut msg).unwrap();
        let mut out = pro;
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&msg[..n]);
        out
    }

    #[test]
    fn a_genuine_flight_is_accepted_and_what_follows_it_without_the_keys_fails() {
        let flight = genuine_flight();
        // Accepted: the fuzz body reaches the transport phase and finds
        // nothing decrypts (it panics if something does).
        fuzz_listener(&flight);
        let mut frames = flight.clone();
        frames.extend_from_slice(&[0, 32]);
        frames.extend_from_slice(&[0x5a; 32]);
        frames.extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        fuzz_listener(&frames);
        // Cut anywhere, or a byte changed anywhere: refused, never a panic.
        for i in 0..flight.len() {
            fuzz_listener(&flight[..i]);
            let mut bad = flight.clone();
            bad[i] ^= 0x40;
            fuzz_listener(&bad);
        }
    }
}
