//! The receive side: subscriptions (pulled in batches), services, requests.
//!
//! Subscriptions are pulled, not pushed: the JS layer takes what is queued
//! (`take`, synchronous) and only when the queue is empty waits for more
//! (`wait`, a promise). The only queue is the core's bounded subscription
//! queue, so when the event loop stalls, that queue fills and its overflow
//! policy applies (`block` pushes back on the link, `drop-*` count drops):
//! memory stays bounded and nothing is lost silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use netchan::{ErrorCode, Message};
use tokio::runtime::Handle;

use crate::endpoint::{payload, to_buffer};
use crate::{code_err, poll_now, promise, OrThrow};

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
}

impl NativeSubscription {
    pub fn new(sub: netchan::Subscription, rt: Handle) -> Self {
        NativeSubscription {
            sub: Arc::new(sub),
            rt,
        }
    }
}

fn clamp_max(max: u32) -> usize {
    (max as usize).clamp(1, 4096)
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
    /// subscription ended: then `wait` resolves `null`).
    #[napi]
    pub fn take(&self, max: u32) -> Option<Batch> {
        let mut v = Vec::new();
        let n = {
            let fut = self.sub.recv_many(&mut v, clamp_max(max));
            let fut = std::pin::pin!(fut);
            poll_now(&self.rt, fut).unwrap_or(0)
        };
        (n > 0).then(|| to_batch(v))
    }

    /// Waits for at least one message; resolves with up to `max`, or `null`
    /// once the subscription or endpoint is closed and drained.
    #[napi(ts_return_type = "Promise<Batch | null>")]
    pub fn wait<'e>(&self, env: &'e Env, max: u32) -> Result<Object<'e>> {
        let sub = self.sub.clone();
        let max = clamp_max(max);
        promise(
            env,
            &self.rt,
            async move {
                let mut v = Vec::new();
                let n = sub.recv_many(&mut v, max).await;
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
}

impl NativeService {
    pub fn new(svc: netchan::Service, rt: Handle) -> Self {
        NativeService {
            svc: Arc::new(svc),
            rt,
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
    /// endpoint is closed.
    #[napi(ts_return_type = "Promise<NativeRequest | null>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let svc = self.svc.clone();
        promise(
            env,
            &self.rt,
            async move { Ok(svc.recv().await) },
            |_, r| Ok(r.map(NativeRequest::new)),
        )
    }

    /// Stops serving; pending requests fail at their callers. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.svc.close()
    }
}

/// One incoming request and the handle to answer it (once).
#[napi]
pub struct NativeRequest {
    req: netchan::Request,
    reply: Mutex<Option<netchan::Reply>>,
}

impl NativeRequest {
    fn new((req, reply): (netchan::Request, netchan::Reply)) -> Self {
        NativeRequest {
            req,
            reply: Mutex::new(Some(reply)),
        }
    }

    fn take_reply(&self) -> netchan::Result<netchan::Reply> {
        self.reply
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                code_err(
                    ErrorCode::InvalidArgument,
                    "the request was already answered",
                )
            })
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
        self.take_reply().or_throw(env)?.send(payload(data));
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
        self.take_reply()
            .or_throw(env)?
            .fail(netchan::Error::new(code, message));
        Ok(())
    }
}
