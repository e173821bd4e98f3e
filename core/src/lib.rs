//! # netchan
//!
//! Network channels for every language: one [`Endpoint`] connects processes
//! on one host (Unix domain sockets) and machines on a LAN (TCP), with
//! publish/subscribe on `/`-separated paths and `*` / `**` patterns,
//! request/reply with deadlines and cancellation, interests and intents
//! advertised to peers (a message only crosses a link to a peer that wants
//! it), bidirectional streams with credit per direction, ping, stats and
//! events.
//!
//! ```no_run
//! # async fn demo() -> netchan::Result<()> {
//! use std::time::Duration;
//! let server = netchan::Endpoint::named("server")?;
//! let addr = server.listen("tcp://127.0.0.1:0").await?;
//! let _svc = server.serve_fn("greet/*", |req| async move {
//!     Ok(format!("hello, {}", req.path()).into())
//! })?;
//! let sub = server.subscribe("sensors/**")?;
//!
//! let client = netchan::Endpoint::named("client")?;
//! client.connect(&addr).await?;
//! client.publish("sensors/kitchen/temp", &b"21.5"[..]).await?;
//! let reply = client.request("greet/ana", "", Duration::from_secs(1)).await?;
//! let msg = sub.recv().await.unwrap();
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! ```text
//! bytes - transport - proto (codec) - link (connection) - rx (receive path) - router - inbox / service queue - binding
//! ```
//!
//! - [`transport`]: byte streams (TCP, Unix sockets, `inproc://`).
//! - `proto` (hidden, unstable): frames and their codec; normative text in
//!   `docs/PROTOCOL.md`.
//! - `link`: listening, admission, dialling, the handshake, each link's
//!   tasks, redial, suspend/resume; its protocol state without IO is
//!   `link::state`.
//! - `rx`: a link's read loop and the delivery of what it reads.
//! - `router`: declarations (ours and our peers'), routes, generations.
//! - `peer`: a link's send queue, in-flight table, counters; dialled
//!   addresses.
//! - `publish`, `client`: publishing; the request client.
//! - `tally`: what a link that ended lost, counted when its two endpoints
//!   meet again.
//! - `inbox`, `sub`, `service`, `service_queue`, `request`: subscriptions,
//!   services, their queues, requests as a server sees them.
//! - `stream`: bidirectional streams (two pipes with credit each), their
//!   opening, serving and handles.
//! - [`acl`]: identities and access rules (parsing and matching; the router
//!   applies them).
//! - [`config`], [`error`], [`metrics`], [`event`], [`path`], [`runtime`].
//!
//! `docs/ARCHITECTURE.md` says who owns what, which tasks run, and where
//! each binding enters.
//!
//! ## Threads
//!
//! An endpoint created inside a tokio runtime runs its tasks there; one
//! created outside uses netchan's own multi-thread runtime
//! ([`runtime::shutdown`] stops it). Callbacks (`subscribe_fn`, `serve_fn`
//! handlers) run on runtime threads and must not block for long.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod acl;
mod admission;
mod attempts;
pub mod blocking;
mod client;
pub mod config;
mod credit;
mod endpoint;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzz;
mod inbox;
mod link;
pub mod metrics;
pub mod path;
mod peer;
/// The wire codec. Not part of the stable API: it changes with the
/// protocol (tests and tools that play a peer use it).
#[doc(hidden)]
pub mod proto;
mod publish;
mod ratelimit;
mod repeats;
mod request;
mod router;
pub mod runtime;
mod rx;
mod service;
mod service_queue;
mod shared;
mod stream;
mod sub;
mod tally;
/// Addresses ([`Addr`]) and, hidden and unstable, raw connections for tests.
pub mod transport;
mod waiting;

pub use acl::{Acl, AclSource, Action};
pub use bytes::Bytes;
pub use config::{
    ClientAuth, Config, KeySource, Overflow, Pem, RateLimit, RatePolicy, Reconnect, RequestOptions,
    ServeOptions, SlowPeer, StreamOptions, SubscribeOptions, TlsConfig,
};
pub use endpoint::{Endpoint, PeerInfo, Publisher};
pub use error::{Error, ErrorCode, Result};
pub use event::{Event, EventRecv, Events};
pub use inbox::Message;
pub use metrics::{CounterStats, PeerStats, Stats, SubscriptionStats};
pub use path::Pattern;
pub use publish::Publish;
pub use request::{Reply, Request};
pub use service::Service;
pub use stream::{Stream, StreamReceiver, StreamRequest, StreamSender, StreamService};
pub use sub::Subscription;
pub use transport::Addr;
