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

/// One event. `type` is the core's `Event::kind()` in camelCase (`peerUp`,
/// `peerDown`, `dropped`, `reconnecting`, `reconnectAbandoned`,
/// `suspended`, `resumed`, `connectionError`, `denied`), or `missed` (events the JS
/// thread could not take); the fields the kind has are set, the others
/// absent.
#[napi(object)]
#[derive(Debug, Default, PartialEq)]
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
    /// What the peer proved (`peerUp`, `denied`): `cert:NAME`, `key:ID`,
    /// `uid:N` or `anonymous`.
    pub identity: Option<String>,
    /// What the access rules denied (`denied`): `publish`, `subscribe`,
    /// `serve`, `request` or `stream`.
    pub action: Option<String>,
    /// The path or pattern (`denied`).
    pub path: Option<String>,
    /// Failed attempts from the address, without its port, so far
    /// (`connectionError`).
    pub attempts: Option<f64>,
}

/// `peer_up` -> `peerUp`: the core's snake_case kind as a JS name.
pub fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl EventObj {
    fn new(kind: &str) -> EventObj {
        EventObj {
            kind: kind.to_string(),
            ..EventObj::default()
        }
    }

    /// The JS form of `e`, with every field it has. A kind this version of
    /// the binding does not know yet still arrives under its name, with the
    /// core's description in `detail`.
    pub fn from_event(e: Event) -> EventObj {
        let kind = camel(e.kind());
        let code = |c: netchan::ErrorCode| Some(c.name().to_string());
        match e {
            Event::PeerUp {
                peer,
                addr,
                identity,
            } => EventObj {
                peer: Some(peer),
                addr: Some(addr),
                identity: Some(identity),
                ..EventObj::new(&kind)
            },
            Event::Denied {
                peer,
                identity,
                action,
                path,
            } => EventObj {
                peer: Some(peer),
                identity: Some(identity),
                action: Some(action),
                path: Some(path),
                ..EventObj::new(&kind)
            },
            Event::PeerDown {
                peer,
                addr,
                reason,
                code: c,
            } => EventObj {
                peer: Some(peer),
                addr: Some(addr),
                reason: Some(reason),
                code: code(c),
                ..EventObj::new(&kind)
            },
            Event::Dropped {
                site,
                code: c,
                count,
            } => EventObj {
                site: Some(site),
                code: code(c),
                count: Some(count as f64),
                ..EventObj::new(&kind)
            },
            Event::Reconnecting {
                addr,
                attempt,
                delay,
            } => EventObj {
                addr: Some(addr),
                attempt: Some(attempt),
                delay_ms: Some(delay.as_secs_f64() * 1000.0),
                ..EventObj::new(&kind)
            },
            Event::ReconnectAbandoned {
                addr,
                code: c,
                detail,
            } => EventObj {
                addr: Some(addr),
                code: code(c),
                detail: Some(detail),
                ..EventObj::new(&kind)
            },
            Event::ConnectionError {
                addr,
                code: c,
                detail,
                attempts,
            } => EventObj {
                addr: Some(addr),
                code: code(c),
                detail: Some(detail),
                attempts: Some(attempts as f64),
                ..EventObj::new(&kind)
            },
            Event::Suspended | Event::Resumed => EventObj::new(&kind),
            other => EventObj {
                detail: Some(format!("{other:?}")),
                ..EventObj::new(&kind)
            },
        }
    }
}

/// Not API: one event of every core kind (`Event::examples()`), as JS
/// receives it, beside the core's kind; for the test that every kind
/// reaches JS with every field.
#[napi(js_name = "__eventExamples")]
pub fn event_examples() -> Vec<EventExample> {
    Event::examples()
        .into_iter()
        .map(|e| EventExample {
            kind: e.kind().to_string(),
            event: EventObj::from_event(e),
        })
        .collect()
}

/// See `__eventExamples`.
#[napi(object)]
pub struct EventExample {
    /// `Event::kind()`, snake_case.
    pub kind: String,
    pub event: EventObj,
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
            let obj = EventObj::from_event(e);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every kind of core event reaches JS under its camelCase name with each
    /// of its fields (none only as a description in `detail`), and nothing
    /// else set.
    #[test]
    fn every_core_event_reaches_js_with_all_its_fields() {
        let s = |x: &str| Some(x.to_string());
        let mut kinds = Vec::new();
        // Through the hook the JS test calls (`__eventExamples`).
        let hook = event_examples();
        assert_eq!(hook.len(), Event::examples().len());
        for (
            e,
            EventExample {
                kind: snake,
                event: js,
            },
        ) in Event::examples().into_iter().zip(hook)
        {
            assert_eq!(snake, e.kind());
            let kind = camel(e.kind());
            let want = match e.clone() {
                Event::PeerUp {
                    peer,
                    addr,
                    identity,
                } => EventObj {
                    peer: s(&peer),
                    addr: s(&addr),
                    identity: s(&identity),
                    ..EventObj::new(&kind)
                },
                Event::Denied {
                    peer,
                    identity,
                    action,
                    path,
                } => EventObj {
                    peer: s(&peer),
                    identity: s(&identity),
                    action: s(&action),
                    path: s(&path),
                    ..EventObj::new(&kind)
                },
                Event::PeerDown {
                    peer,
                    addr,
                    reason,
                    code,
                } => EventObj {
                    peer: s(&peer),
                    addr: s(&addr),
                    reason: s(&reason),
                    code: s(code.name()),
                    ..EventObj::new(&kind)
                },
                Event::Dropped { site, code, count } => EventObj {
                    site: s(&site),
                    code: s(code.name()),
                    count: Some(count as f64),
                    ..EventObj::new(&kind)
                },
                Event::Reconnecting {
                    addr,
                    attempt,
                    delay,
                } => {
                    assert_ne!(delay, Duration::ZERO, "the example's delay must show");
                    EventObj {
                        addr: s(&addr),
                        attempt: Some(attempt),
                        delay_ms: Some(delay.as_millis() as f64),
                        ..EventObj::new(&kind)
                    }
                }
                Event::ReconnectAbandoned { addr, code, detail } => EventObj {
                    addr: s(&addr),
                    code: s(code.name()),
                    detail: s(&detail),
                    ..EventObj::new(&kind)
                },
                Event::ConnectionError {
                    addr,
                    code,
                    detail,
                    attempts,
                } => EventObj {
                    addr: s(&addr),
                    code: s(code.name()),
                    detail: s(&detail),
                    attempts: Some(attempts as f64),
                    ..EventObj::new(&kind)
                },
                Event::Suspended | Event::Resumed => EventObj::new(&kind),
                other => panic!("a core event this test does not check: {other:?}"),
            };
            assert_eq!(js, want, "{}", e.kind());
            kinds.push(js.kind);
        }
        assert_eq!(
            kinds,
            [
                "peerUp",
                "peerDown",
                "dropped",
                "reconnecting",
                "reconnectAbandoned",
                "suspended",
                "resumed",
                "connectionError",
                "denied"
            ]
        );
    }

    #[test]
    fn camel_case_of_snake_case() {
        assert_eq!(camel("peer_up"), "peerUp");
        assert_eq!(camel("reconnect_abandoned"), "reconnectAbandoned");
        assert_eq!(camel("dropped"), "dropped");
    }
}
