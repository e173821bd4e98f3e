//! `netchan stream` and `netchan serve-stream`: byte pipes over a
//! bidirectional stream.
//!
//! `stream` sends what it reads on stdin (each read, up to 64 KiB, is one
//! message), finishes its direction at end of input, and writes what comes
//! back to stdout byte for byte, until the server ends its direction.
//! `serve-stream` answers each stream with `--echo` (every message back)
//! or `--exec CMD` (the stream's bytes go to the command's stdin, its
//! stdout comes back; a failing command ends the stream with
//! HANDLER_ERROR).

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use netchan::{Endpoint, Error, ErrorCode, ServeOptions, Stream, StreamOptions, StreamRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{attach, Where};

/// Bytes read at once from stdin or a command's stdout: one message.
const CHUNK: usize = 64 * 1024;

#[derive(Args)]
pub(crate) struct StreamArgs {
    /// Concrete path.
    path: String,
    /// Endpoint to open the stream to.
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// First payload, sent with the opening (default: empty).
    #[arg(long, value_name = "TEXT")]
    data: Option<String>,
    /// End the stream (TIMEOUT) after MS.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Bytes the server may send before this side reads (default: the
    /// endpoint's `stream_window`).
    #[arg(long, value_name = "BYTES")]
    window: Option<usize>,
}

#[derive(Args)]
pub(crate) struct ServeStreamArgs {
    /// Pattern to serve.
    pattern: String,
    #[command(flatten)]
    at: Where,
    /// Send every message back (the first payload too, unless empty).
    #[arg(long, conflicts_with = "exec")]
    echo: bool,
    /// Run `sh -c CMD` per stream: the stream's bytes are its stdin, its
    /// stdout goes back.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Exit after N streams.
    #[arg(long)]
    count: Option<u64>,
    /// Streams handled at once (default: the endpoint's `handler_concurrency`).
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Streams waiting; past that an opening is refused with BUFFER_FULL.
    #[arg(long, value_name = "N")]
    queue: Option<usize>,
    /// Bytes each opener may send before the server reads (default: the
    /// endpoint's `stream_window`).
    #[arg(long, value_name = "BYTES")]
    window: Option<usize>,
}

pub(crate) async fn open(ep: &Endpoint, a: StreamArgs) -> Result<(), Error> {
    netchan::path::validate_path(&a.path)?;
    let mut opts = StreamOptions::default();
    opts.timeout = match a.timeout_ms {
        Some(0) => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "--timeout-ms must be greater than zero",
            ))
        }
        t => t.map(Duration::from_millis),
    };
    opts.window = a.window;
    ep.connect(&a.connect).await?;
    let s = ep
        .open_stream_with(&a.path, a.data.unwrap_or_default().into_bytes(), opts)
        .await?;
    let (tx, rx) = s.split();
    // stdin is read on its own thread (reads block); each read is one message.
    let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; CHUNK];
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if chunks_tx.blocking_send(buf.into()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let pump = tokio::spawn(async move {
        while let Some(c) = chunks.recv().await {
            tx.send(c).await?;
        }
        tx.finish();
        Ok::<(), Error>(())
    });
    let mut out = std::io::stdout().lock();
    let r = loop {
        match rx.recv().await {
            Ok(Some(m)) => {
                if out.write_all(&m).and_then(|_| out.flush()).is_err() {
                    break Ok(()); // a closed stdout ends the command quietly
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(out);
    // The server is done; what stdin still had is not wanted.
    if pump.is_finished() {
        if let Ok(Err(e)) = pump.await {
            if r.is_ok() {
                return Err(e);
            }
        }
    } else {
        pump.abort();
    }
    r
}

pub(crate) async fn serve(
    ep: &Endpoint,
    cfg_concurrency: usize,
    a: ServeStreamArgs,
) -> Result<(), Error> {
    if !a.echo && a.exec.is_none() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "serve-stream needs --echo or --exec CMD",
        ));
    }
    let mut opts = ServeOptions::default();
    opts.max_concurrent = a.max_concurrent;
    opts.queue = a.queue;
    opts.window = a.window;
    let svc = ep.serve_stream_with(&a.pattern, opts)?;
    attach(ep, &a.at).await?;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(
        a.max_concurrent.unwrap_or(cfg_concurrency),
    ));
    let mut n = 0u64;
    let mut running = tokio::task::JoinSet::new();
    while a.count.is_none_or(|c| n < c) {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some((req, s)) = svc.recv().await else {
            break;
        };
        n += 1;
        let exec = a.exec.clone();
        running.spawn(async move {
            let r = match exec {
                None => echo(req, &s).await,
                Some(cmd) => run(&cmd, req, &s).await,
            };
            // Dropped next: if the opener still sends, it is told
            // (CANCELLED) after it has received everything sent here.
            match r {
                Ok(()) => s.finish(),
                Err(e) => s.cancel_with(e),
            }
            drop(slot);
        });
    }
    while running.join_next().await.is_some() {}
    ep.close().await;
    Ok(())
}

async fn echo(req: StreamRequest, s: &Stream) -> Result<(), Error> {
    if !req.payload().is_empty() {
        s.send(req.payload().clone()).await?;
    }
    while let Some(m) = s.recv().await? {
        s.send(m).await?;
    }
    Ok(())
}

/// Runs `sh -c cmd` with the stream as its stdin and stdout.
async fn run(cmd: &str, req: StreamRequest, s: &Stream) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::new(ErrorCode::Io, format!("{cmd}: {e}"));
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io)?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(Error::new(ErrorCode::Internal, "the command's pipes"));
    };
    let feed = async {
        if !req.payload().is_empty() && stdin.write_all(req.payload()).await.is_err() {
            return Ok(());
        }
        while let Some(m) = s.recv().await? {
            if stdin.write_all(&m).await.is_err() {
                break; // the command stopped reading
            }
        }
        drop(stdin);
        Ok::<(), Error>(())
    };
    let answer = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = stdout.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Ok::<(), Error>(());
            }
            s.send(Bytes::copy_from_slice(&buf[..n])).await?;
        }
    };
    // Fed until the opener ends its side; answered until the command
    // closes its stdout (then what the opener still sends is not wanted).
    tokio::pin!(feed);
    tokio::pin!(answer);
    let mut feeding = true;
    loop {
        tokio::select! {
            r = &mut feed, if feeding => {
                feeding = false;
                r?;
            }
            r = &mut answer => {
                r?;
                break;
            }
        }
    }
    let status = child.wait().await.map_err(io)?;
    if !status.success() {
        return Err(Error::new(
            ErrorCode::HandlerError,
            format!("{cmd} exited with {status}"),
        ));
    }
    Ok(())
}
