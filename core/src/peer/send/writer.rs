//! A link's writer task: drains its send queue with vectored writes,
//! gathering small batches into larger ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use tokio_util::sync::CancellationToken;

use super::SendQueue;
use crate::waiting::{
    GATHER_BELOW, GATHER_FOR, GATHER_TASK_YIELDS, GATHER_THREAD_YIELDS, WRITER_LOOKS_BEFORE_PARKING,
};

/// How long a closing connection may take to flush what was queued (the
/// CLOSE frame last) before it is cut.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// The writer task: drain the queue until it is closed and empty. A write
/// error marks the peer dead. The socket's write side shuts down when the
/// peer (which owns it) is dropped.
pub(crate) async fn writer_loop(tx: Arc<SendQueue>, dead: CancellationToken, name: Arc<str>) {
    write_until_closed(&tx, &dead, &name).await;
    tx.wire.shutdown();
}

async fn write_until_closed(tx: &SendQueue, dead: &CancellationToken, name: &str) {
    let mut chunks = VecDeque::new();
    let mut written = Vec::new();
    let mut idle = 0;
    // Once the link is closing or dead, what is left must be written by then.
    let mut flush_by = None;
    loop {
        let (closed, frames) = tx.take(&mut chunks, &mut written);
        if chunks.is_empty() {
            if closed {
                break;
            }
            // A publisher in full flow refills the queue within a moment:
            // looking again after a yield is far cheaper than parking the
            // task and being woken by the next message.
            if idle < WRITER_LOOKS_BEFORE_PARKING {
                idle += 1;
                tokio::task::yield_now().await;
                continue;
            }
            idle = 0;
            tx.wake.notified().await;
            continue;
        }
        idle = 0;
        let batch: usize = chunks.iter().map(|(c, _)| c.len()).sum();
        let mut bounded = closed;
        if !closed {
            // Write freely while the peer is alive; once it is declared dead,
            // finish within the bound below.
            tokio::select! {
                r = tx.write_chunks(&mut chunks, true, &mut written) => match r {
                    // Control frames wait: they go first, then the rest.
                    Ok(true) => {
                        tx.give_back(&mut chunks);
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(peer = %name, error = %e, "write failed");
                        tx.close();
                        dead.cancel();
                        return;
                    }
                },
                _ = dead.cancelled() => bounded = true,
            }
        }
        if !bounded && frames > 1 && batch < GATHER_BELOW {
            if crate::runtime::on_own_thread() {
                gather_pause();
            } else {
                gather_pause_as_a_task().await;
            }
        }
        if bounded {
            let by = *flush_by.get_or_insert_with(|| tokio::time::Instant::now() + CLOSE_FLUSH);
            let r = match tokio::time::timeout_at(
                by,
                tx.write_chunks(&mut chunks, false, &mut written),
            )
            .await
            {
                Ok(r) => r.map(drop),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            };
            if let Err(e) = r {
                tracing::debug!(peer = %name, error = %e, "final flush failed");
                tx.close();
                dead.cancel();
                return;
            }
        }
    }
}

/// A small write of several frames means a stream in which the writer is
/// outpacing its publishers: give them a moment to fill a larger batch before
/// taking the queue's lock again. Fewer, larger writes, and the lock stops
/// bouncing between the threads' cores. A frame queued meanwhile waits at
/// most [`GATHER_FOR`] longer, unless the thread loses its CPU; a lone frame
/// after a quiet spell is written by its sender and never waits here.
///
/// On netchan's own runtime the pause yields the thread, not the task. A
/// task yield goes through tokio's multi-thread scheduler, which wakes an idle
/// worker to steal the yielded task: a futex wake and a context switch per
/// yield. In an 8-byte stream that cost the publishing process a third of its
/// CPU time.
fn gather_pause() {
    let start = Instant::now();
    for _ in 0..GATHER_THREAD_YIELDS {
        std::thread::yield_now();
        if start.elapsed() >= GATHER_FOR {
            break;
        }
    }
}

/// The pause on a program's own runtime: its worker threads are the
/// program's, and a thread yield there would hold up its other tasks (on a
/// current-thread runtime the publishers even run on this very thread), so
/// the writer yields its task instead, fewer times (each task yield on a
/// multi-thread runtime costs a look at the IO driver and maybe a wake-up).
async fn gather_pause_as_a_task() {
    let start = Instant::now();
    for _ in 0..GATHER_TASK_YIELDS {
        tokio::task::yield_now().await;
        if start.elapsed() >= GATHER_FOR {
            break;
        }
    }
}
