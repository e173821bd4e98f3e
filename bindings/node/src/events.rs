//! Endpoint events pushed to JS through a weak, bounded thread-safe function.
//!
//! Weak: a listener for events must not keep Node alive (like an
//! EventEmitter listener). Bounded: at most `QUEUE` events wait for the JS
//! thread; past that they are counted and reported as one `missed` event
//! when the queue has room again, instead of growing memory. (Node does
//! not say when the queue has room: while a count waits, the task offers
//! it again every `RETRY`, so it is reported without waiting for the next
//! event.)

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use netchan::{Event, EventRecv};
use tokio::runtime::Handle;

/// Events queued for the JS thread at most.
const QUEUE: usize = 1024;

/// How often a count of missed events is offered again while the queue is full.
const RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// One event. `type` is `peerUp`, `peerDown`, `dropped`, `reconnecting`,
/// `reconnectAbandoned`, `connectionError` or `missed`; the other fields
/// are set as they apply.
#[napi(object)]
pub struct EventObj {
    #[napi(js_name = "type")]
    pub kind: String,
    pub peer: Option<String>,
    pub addr: Option<String>,
    pub reason: Option<String>,
    pub code: Option<String>,
    pub detail: Option<String>,
    pub site: Option<String>,
    pub count: Option<f64>,
    pub attempt: Option<u32>,
    pub delay_ms: Option<f64>,
}

impl EventObj {
    fn new(kind: &str) -> EventObj {
        EventObj {
            kind: kind.to_string(),
            peer: None,
            addr: None,
            reason: None,
            code: None,
            detail: None,
            site: None,
            count: None,
            attempt: None,
            delay_ms: None,
        }
    }

    fn from_event(e: Event) -> Option<EventObj> {
        Some(match e {
            Event::PeerUp { peer, addr } => EventObj {
                peer: Some(peer),
                addr: Some(addr),
                ..EventObj::new("peerUp")
            },
            Event::PeerDown {
                peer,
                addr,
                reason,
                code,
            } => EventObj {
                peer: Some(peer),
                addr: Some(addr),
                reason: Some(reason),
                code: Some(code.name().to_string()),
                ..EventObj::new("peerDown")
            },
            Event::Dropped { site, code, count } => EventObj {
                site: Some(site),
                code: Some(code.name().to_string()),
                count: Some(count as f64),
                ..EventObj::new("dropped")
            },
            Event::Reconnecting {
                addr,
                attempt,
                delay,
            } => EventObj {
                addr: Some(addr),
                attempt: Some(attempt),
                delay_ms: Some(delay.as_secs_f64() * 1000.0),
                ..EventObj::new("reconnecting")
            },
            Event::ReconnectAbandoned { addr, code, detail } => EventObj {
                addr: Some(addr),
                code: Some(code.name().to_string()),
                detail: Some(detail),
                ..EventObj::new("reconnectAbandoned")
            },
            Event::ConnectionError { addr, code, detail } => EventObj {
                addr: Some(addr),
                code: Some(code.name().to_string()),
                detail: Some(detail),
                ..EventObj::new("connectionError")
            },
            _ => return None,
        })
    }
}

type Tsfn = ThreadsafeFunction<EventObj, (), EventObj, Status, false, true, QUEUE>;

/// A running event stream; `close()` stops it.
#[napi]
pub struct NativeEventStream {
    task: Option<tokio::task::AbortHandle>,
}

#[napi]
impl NativeEventStream {
    /// Stops delivering events. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for NativeEventStream {
    fn drop(&mut self) {
        self.close();
    }
}

pub fn spawn_events(
    ep: &netchan::Endpoint,
    rt: &Handle,
    callback: Function<'_, EventObj, ()>,
) -> napi::Result<NativeEventStream> {
    let tsfn: Tsfn = callback
        .build_threadsafe_function::<EventObj>()
        .callee_handled::<false>()
        .weak::<true>()
        .max_queue_size::<QUEUE>()
        .build()?;
    let mut events = ep.events();
    let task = rt.spawn(async move {
        let mut missed = 0u64;
        // Queues the count of missed events, if any; Ok when nothing waits.
        let report = |missed: &mut u64| {
            if *missed == 0 {
                return Status::Ok;
            }
            let m = EventObj {
                count: Some(*missed as f64),
                ..EventObj::new("missed")
            };
            let st = tsfn.call(m, ThreadsafeFunctionCallMode::NonBlocking);
            if st == Status::Ok {
                *missed = 0;
            }
            st
        };
        loop {
            let next = if missed > 0 {
                tokio::select! {
                    r = events.recv() => Some(r),
                    _ = tokio::time::sleep(RETRY) => None,
                }
            } else {
                Some(events.recv().await)
            };
            let e = match next {
                Some(EventRecv::Event(e)) => e,
                Some(EventRecv::Missed(n)) => {
                    missed += n;
                    continue;
                }
                Some(EventRecv::Closed) => {
                    report(&mut missed);
                    break;
                }
                None => match report(&mut missed) {
                    Status::Ok | Status::QueueFull => continue,
                    // The environment is going away.
                    _ => break,
                },
            };
            let Some(obj) = EventObj::from_event(e) else {
                continue;
            };
            // The count goes first, so that events stay in order.
            let st = match report(&mut missed) {
                Status::Ok => tsfn.call(obj, ThreadsafeFunctionCallMode::NonBlocking),
                st => st,
            };
            match st {
                Status::Ok => {}
                Status::QueueFull => missed += 1,
                // The environment is going away.
                _ => break,
            }
        }
    });
    Ok(NativeEventStream {
        task: Some(task.abort_handle()),
    })
}
