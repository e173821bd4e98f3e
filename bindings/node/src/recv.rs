//! The receive side: subscriptions (pulled in batches), services, requests.
//!
//! Subscriptions are pulled, not pushed: the JS layer takes what is queued
//! (`take`, synchronous: the core's `try_recv_many`) and only when the
//! queue is empty waits for more (`wait`, a promise over the core's
//! readiness hook `poll_recv_many`, woken by the thread that queues the next
//! message). Services take requests the same way (`Service::poll_recv`). The
//! only queue is the core's bounded subscription queue, so when the event
//! loop stalls, that queue fills and its overflow policy applies (`block`
//! pushes back on the link, `drop-*` count drops): memory stays bounded and
//! nothing is lost silently.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use netchan::{ErrorCode, Message};
use tokio::runtime::Handle;

use crate::endpoint::{payload, to_buffer};
use crate::{code_err, held_promise, held_promise_spin, Hold, OrThrow};

/// Messages received together: payloads concatenated in `data` (message `i`
/// is `data[ends[i-1]..ends[i]]`), paths and senders deduplicated.
#[napi(object)]
pub struct Batch {
    pub data: Buffer,
    pub ends: Float64Array,
    pub paths: Vec<String>,
    pub path_idx: Uint32Array,
    pub senders: Vec<String>,
    pub sender_idx: Uint32Array,
}

/// Interns strings of a batch: runs of one path (the common case) cost one
/// comparison each.
#[derive(Default)]
struct Interner {
    list: Vec<String>,
    map: HashMap<String, u32>,
    last: Option<u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.last {
            if self.list[i as usize] == s {
                return i;
            }
        }
        let i = match self.map.get(s) {
            Some(&i) => i,
            None => {
                let i = self.list.len() as u32;
                self.list.push(s.to_string());
                self.map.insert(s.to_string(), i);
                i
            }
        };
        self.last = Some(i);
        i
    }
}

fn to_batch(msgs: Vec<Message>) -> Batch {
    let total: usize = msgs.iter().map(|m| m.payload().len()).sum();
    let mut data = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(msgs.len());
    let mut paths = Interner::default();
    let mut senders = Interner::default();
    let mut path_idx = Vec::with_capacity(msgs.len());
    let mut sender_idx = Vec::with_capacity(msgs.len());
    for m in &msgs {
        data.extend_from_slice(m.payload());
        ends.push(data.len() as f64);
        path_idx.push(paths.id(m.path()));
        sender_idx.push(senders.id(m.sender()));
    }
    Batch {
        data: data.into(),
        ends: Float64Array::new(ends),
        paths: paths.list,
        path_idx: Uint32Array::new(path_idx),
        senders: senders.list,
        sender_idx: Uint32Array::new(sender_idx),
    }
}

/// A subscription. Use `Endpoint.subscribe` from the `netchan` package.
#[napi]
pub struct NativeSubscription {
    sub: Arc<netchan::Subscription>,
    rt: Handle,
    /// A `wait` is pending. The core's queue has one waiter at a time, and
    /// a `take` that found it empty would replace that waiter's waker.
    waiting: Arc<AtomicBool>,
    /// The endpoint's: whether a pending `wait` keeps Node alive.
    hold: Hold,
}

impl NativeSubscription {
    pub fn new(sub: netchan::Subscription, rt: Handle, hold: Hold) -> Self {
        NativeSubscription {
            sub: Arc::new(sub),
            rt,
            waiting: Arc::new(AtomicBool::new(false)),
            hold,
        }
    }
}

fn clamp_max(max: u32) -> usize {
    (max as usize).clamp(1, 4096)
}

/// Clears a flag when dropped: a pending wait that Node drops (at teardown)
/// leaves no flag behind.
struct Unset(Arc<AtomicBool>);

impl Drop for Unset {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[napi]
impl NativeSubscription {
    #[napi(getter)]
    pub fn pattern(&self) -> String {
        self.sub.pattern().to_string()
    }

    /// Messages dropped so far by the overflow policy.
    #[napi(getter)]
    pub fn dropped(&self) -> f64 {
        self.sub.dropped() as f64
    }

    /// Up to `max` messages already queued; `null` when none are (or the
    /// subscription ended: then `wait` resolves `null`), and while a `wait`
    /// is pending (it gets them).
    #[napi]
    pub fn take(&self, max: u32) -> Option<Batch> {
        if self.waiting.load(Ordering::Acquire) {
            return None;
        }
        let mut v = Vec::new();
        match self.sub.try_recv_many(&mut v, clamp_max(max)) {
            Ok(n) if n > 0 => Some(to_batch(v)),
            _ => None,
        }
    }

    /// Waits for at least one message; resolves with up to `max`, or `null`
    /// once the subscription or endpoint is closed and drained.
    #[napi(ts_return_type = "Promise<Batch | null>")]
    pub fn wait<'e>(&self, env: &'e Env, max: u32) -> Result<Object<'e>> {
        let sub = self.sub.clone();
        let max = clamp_max(max);
        self.waiting.store(true, Ordering::Release);
        let waiting = Unset(self.waiting.clone());
        held_promise(
            env,
            &self.rt,
            &self.hold,
            async move {
                let mut v = Vec::new();
                let n = poll_fn(|cx| sub.poll_recv_many(cx, &mut v, max)).await;
                drop(waiting);
                Ok((n > 0).then(|| to_batch(v)))
            },
            |_, b| Ok(b),
        )
    }

    /// Unsubscribes; queued messages can still be taken. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.sub.close()
    }
}

/// A service. Use `Endpoint.serve` from the `netchan` package.
#[napi]
pub struct NativeService {
    svc: Arc<netchan::Service>,
    rt: Handle,
    /// The endpoint's `busy_poll`.
    busy_poll: Duration,
    /// Requests taken and not answered yet.
    open: Arc<AtomicUsize>,
    /// The endpoint's: whether a pending `next` keeps Node alive.
    hold: Hold,
}

impl NativeService {
    pub fn new(svc: netchan::Service, rt: Handle, busy_poll: Duration, hold: Hold) -> Self {
        NativeService {
            svc: Arc::new(svc),
            rt,
            busy_poll,
            open: Arc::new(AtomicUsize::new(0)),
            hold,
        }
    }
}

#[napi]
impl NativeService {
    #[napi(getter)]
    pub fn pattern(&self) -> String {
        self.svc.pattern().to_string()
    }

    /// Resolves with the next request, or `null` once the service or
    /// endpoint is closed. When every request taken so far has been
    /// answered (the handler answered synchronously), it first busy-polls
    /// for the endpoint's `busy_poll`: the next request of a ping-pong
    /// usually comes within it. While a handler still holds a request it
    /// does not: the event loop must run for that handler to answer.
    #[napi(ts_return_type = "Promise<NativeRequest | null>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let svc = self.svc.clone();
        let open = self.open.clone();
        let fut = async move { Ok(poll_fn(|cx| svc.poll_recv(cx)).await) };
        let convert = move |_: &Env, r: Option<(netchan::Request, netchan::Reply)>| {
            Ok(r.map(|r| NativeRequest::new(r, Open::new(open))))
        };
        if self.open.load(Ordering::Acquire) == 0 {
            let spin = (self.svc.blocker(), self.busy_poll);
            held_promise_spin(env, &self.rt, spin, &self.hold, fut, convert)
        } else {
            held_promise(env, &self.rt, &self.hold, fut, convert)
        }
    }

    /// Stops serving; pending requests fail at their callers. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.svc.close()
    }
}

/// One request taken and not answered yet (see `NativeService::open`).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(n: Arc<AtomicUsize>) -> Open {
        n.fetch_add(1, Ordering::AcqRel);
        Open(n)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One incoming request and the handle to answer it (once).
#[napi]
pub struct NativeRequest {
    req: netchan::Request,
    /// The reply handle, and the mark that the request is open (dropped
    /// with it once answered, or when JS drops the request unanswered).
    reply: Mutex<Option<(netchan::Reply, Open)>>,
}

impl NativeRequest {
    fn new((req, reply): (netchan::Request, netchan::Reply), open: Open) -> Self {
        NativeRequest {
            req,
            reply: Mutex::new(Some((reply, open))),
        }
    }

    fn take_reply(&self) -> netchan::Result<(netchan::Reply, Open)> {
        self.reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| code_err(ErrorCode::Closed, "the request was already answered"))
    }
}

#[napi]
impl NativeRequest {
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.req.path().to_string()
    }

    #[napi(getter)]
    pub fn payload(&self) -> Buffer {
        to_buffer(Bytes::copy_from_slice(self.req.payload()))
    }

    #[napi(getter)]
    pub fn sender(&self) -> String {
        self.req.sender().to_string()
    }

    /// Milliseconds left before the caller stops waiting.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> f64 {
        self.req.remaining().as_secs_f64() * 1000.0
    }

    /// True once the caller gave up (timeout, abort, link lost).
    #[napi(getter)]
    pub fn is_cancelled(&self) -> bool {
        self.req.is_cancelled()
    }

    /// Sends the reply.
    #[napi]
    pub fn respond(&self, env: &Env, data: Option<Either<String, Uint8ArraySlice>>) -> Result<()> {
        let (reply, _open) = self.take_reply().or_throw(env)?;
        reply.send(payload(data));
        Ok(())
    }

    /// Fails the request: the caller's error gets `code` (a netchan code
    /// name; anything else becomes `HANDLER_ERROR`) and `message`.
    #[napi]
    pub fn fail(&self, env: &Env, code: Option<String>, message: String) -> Result<()> {
        let code = code
            .as_deref()
            .and_then(ErrorCode::from_name)
            .unwrap_or(ErrorCode::HandlerError);
        let (reply, _open) = self.take_reply().or_throw(env)?;
        reply.fail(netchan::Error::new(code, message));
        Ok(())
    }
}
