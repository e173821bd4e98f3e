//! Every place the core spins, yields or writes through instead of
//! parking, with the policy behind it. Nothing else in `core/src` holds a
//! spin or yield constant; figures behind these choices are in
//! docs/BENCHMARKS.md.
//!
//! The policy, in one line: look again only where the answer is usually a
//! moment away and a wakeup costs more than the look; bound every look (in
//! count and time); never yield a thread that is not netchan's; never spin
//! by default on a thread a program waits on (`Config::busy_poll` is 0 on
//! every surface unless the program asks).

use std::time::Duration;

/// Sending: write-through is allowed at most once per this interval, for
/// the whole endpoint (`peer::send::WriteThrough`). A lone message (a
/// request, a reply, a rare event) leaves at once from the caller's thread,
/// while a stream of messages, to one link or fanned out to many, is
/// batched by the writer tasks. A frame sent after the peer sent something (a reply, the next
/// request of a ping-pong) writes through regardless
/// (`peer::send::SendQueue::heard`).
pub(crate) const DIRECT_GAP: Duration = Duration::from_micros(50);

/// The writer: times an idle writer yields its task and looks again before
/// it parks. A publisher in full flow refills the queue within a moment.
pub(crate) const WRITER_LOOKS_BEFORE_PARKING: u32 = 2;

/// The writer: after writing a batch of several frames but fewer bytes than
/// this, it pauses for its publishers to fill a larger batch (fewer, larger
/// writes; the queue's lock stops bouncing between cores). A lone frame
/// after a quiet spell is written by its sender and never waits.
pub(crate) const GATHER_BELOW: usize = 16 * 1024;

/// The writer's pause lasts at most this long...
pub(crate) const GATHER_FOR: Duration = Duration::from_micros(20);

/// ...and yields the thread at most this many times, on netchan's own
/// runtime threads only (`runtime::on_own_thread`). A task yield there goes
/// through tokio's multi-thread scheduler, which wakes an idle worker to
/// steal the task: a futex wake and a context switch per yield.
pub(crate) const GATHER_THREAD_YIELDS: u32 = 8;

/// ...or yields the task at most this many times on a program's own
/// runtime, whose threads are the program's (a thread yield would hold up
/// its other tasks; on a current-thread runtime the publishers even run on
/// the same thread). Fewer than [`GATHER_THREAD_YIELDS`]: each task yield
/// costs a look at the IO driver and maybe a wakeup.
pub(crate) const GATHER_TASK_YIELDS: u32 = 2;

/// Receiving (`Subscription::recv_many` and what builds on it): times an
/// empty queue is looked at again after a task yield before the receiver
/// parks. In a stream the next batch is usually a moment away.
pub(crate) const RECEIVER_LOOKS_BEFORE_PARKING: u32 = 2;

// Blocking calls from plain threads (`blocking::Wait::until`) poll once,
// then spin for `Config::busy_poll` (default 0: off), yielding the thread
// between polls, then park. The window is the program's choice; its cost
// and gain are measured per surface in docs/BENCHMARKS.md.
//
// The accept loop yields its task once after each accepted connection so
// that the new handshake starts before the next accept (a HELLO sent at
// once gets through before a burst of newer connections could evict it):
// fairness, not waiting, so it has no constant.
