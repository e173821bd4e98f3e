//! The endpoint's streams: opening, serving, discovery.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::Endpoint;
use crate::config::{ServeOptions, StreamOptions};
use crate::error::Result;
use crate::path::Pattern;
use crate::proto::DeclKind;
use crate::service_queue::{ServiceQueue, ServiceShared};
use crate::stream::serve::run_stream_handler;
use crate::stream::{Stream, StreamRequest, StreamServe, StreamService};

impl Endpoint {
    /// Opens a bidirectional stream on `path` to one endpoint serving
    /// streams there (a local stream service if there is one, else a
    /// connected peer that declared a matching one, chosen in turn),
    /// carrying `first` as its first payload, and waits (up to 10 s) for
    /// the server to accept it. Many streams share one connection; each
    /// direction has its own credit, so a slow reader holds back only its
    /// own stream (`streams_share_a_link_without_blocking_each_other`).
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `NO_RESPONDERS`,
    /// `BUFFER_FULL` (the service's queue is full), `TIMEOUT`, `PEER_LOST`,
    /// `MESSAGE_TOO_LARGE`, `CLOSED`.
    pub async fn open_stream(&self, path: &str, first: impl Into<Bytes>) -> Result<Stream> {
        self.open_stream_with(path, first, StreamOptions::default())
            .await
    }

    /// [`open_stream`](Self::open_stream) with options: a deadline carried
    /// on the wire, the window, the open timeout, waiting for a server.
    pub async fn open_stream_with(
        &self,
        path: &str,
        first: impl Into<Bytes>,
        opts: StreamOptions,
    ) -> Result<Stream> {
        crate::stream::open::open(&self.parts.router, path, first.into(), opts).await
    }

    /// Serves streams on `pattern`: each opened stream arrives at the
    /// returned [`StreamService`]'s `recv` with its [`StreamRequest`].
    ///
    /// Errors: `INVALID_PATH`, `INVALID_ARGUMENT`, `CLOSED`.
    pub fn serve_stream(&self, pattern: &str) -> Result<StreamService> {
        self.serve_stream_with(pattern, ServeOptions::default())
    }

    /// [`serve_stream`](Self::serve_stream) with its own queue bounds and
    /// window.
    pub fn serve_stream_with(&self, pattern: &str, opts: ServeOptions) -> Result<StreamService> {
        let (_, queue, bytes) = opts.resolve(&self.parts.shared.cfg)?;
        self.serve_stream_inner(pattern, true, queue, bytes, &opts)
    }

    /// Serves streams on `pattern` with an async handler, run in its own
    /// task per stream. When the handler returns `Ok`, this side's
    /// direction is finished (if it was not) and, once the handler's
    /// handles are gone, a stream whose other direction is still open is
    /// cancelled; `Err(e)` ends the stream with `e`'s code and detail.
    pub fn serve_stream_fn<F, Fut>(&self, pattern: &str, handler: F) -> Result<StreamService>
    where
        F: Fn(StreamRequest, Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.serve_stream_fn_with(pattern, ServeOptions::default(), handler)
    }

    /// [`serve_stream_fn`](Self::serve_stream_fn) with its own bounds: at
    /// most `max_concurrent` streams in the handler at once, `queue`
    /// waiting; past that an opening is refused with `BUFFER_FULL` and
    /// counted in `requests_refused`
    /// (`a_stream_service_handles_at_most_max_concurrent`).
    pub fn serve_stream_fn_with<F, Fut>(
        &self,
        pattern: &str,
        opts: ServeOptions,
        handler: F,
    ) -> Result<StreamService>
    where
        F: Fn(StreamRequest, Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (concurrent, queue, bytes) = opts.resolve(&self.parts.shared.cfg)?;
        let mut svc = self.serve_stream_inner(pattern, false, queue, bytes, &opts)?;
        let task =
            self.parts
                .shared
                .rt
                .spawn(run_stream_handler(svc.queue.clone(), concurrent, handler));
        svc.task = Some(task.abort_handle());
        Ok(svc)
    }

    fn serve_stream_inner(
        &self,
        pattern: &str,
        pull: bool,
        queue: usize,
        queue_bytes: usize,
        opts: &ServeOptions,
    ) -> Result<StreamService> {
        let window = crate::stream::serve::check_window(
            opts.window.unwrap_or(self.parts.shared.cfg.stream_window),
        )?;
        let pattern = Pattern::new(pattern)?;
        let id = self.parts.shared.next_id();
        let queue = Arc::new(ServiceQueue::new(queue, queue_bytes));
        let synced = self.parts.router.serve_stream(
            id,
            Arc::new(StreamServe {
                svc: ServiceShared {
                    pattern: pattern.clone(),
                    queue: queue.clone(),
                },
                window,
            }),
        )?;
        Ok(StreamService {
            id,
            pattern,
            queue,
            pull,
            router: self.parts.router.clone(),
            task: None,
            blocker: self.parts.shared.blocker.clone(),
            declaring: Mutex::new(self.settle(synced)),
        })
    }

    /// Names of the endpoints serving streams on something that overlaps
    /// `pattern`.
    pub fn stream_servers(&self, pattern: &str) -> Result<Vec<String>> {
        self.parts.router.discover(DeclKind::StreamService, pattern)
    }

    /// [`open_stream_with`](Self::open_stream_with) from a plain thread.
    ///
    /// Errors: as `open_stream`; `WOULD_DEADLOCK` from an async context.
    pub fn open_stream_blocking(
        &self,
        path: &str,
        first: impl Into<Bytes>,
        opts: StreamOptions,
    ) -> Result<Stream> {
        self.parts
            .shared
            .blocker
            .block_on(self.open_stream_with(path, first, opts))?
    }
}
