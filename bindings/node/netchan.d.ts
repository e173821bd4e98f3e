// Types of the public netchan API (netchan.js). The native layer's types are
// generated into index.d.ts by `napi build`.
/// <reference types="node" />
import { EventEmitter } from 'node:events'
import type { Duplex, DuplexOptions } from 'node:stream'
import type { PeerInfo, Stats, EventObj, FailedAttempts } from './index'

export type { PeerInfo, Stats, CounterStats, PeerStats, SubscriptionStats, FailedAttempts } from './index'

/** The symbolic error codes, the same in every netchan language. */
export type ErrorCode =
  | 'INVALID_ARGUMENT' | 'INVALID_ADDRESS' | 'INVALID_PATH' | 'MESSAGE_TOO_LARGE'
  | 'CONNECT_REFUSED' | 'ADDRESS_IN_USE' | 'PEER_LOST' | 'UNSUPPORTED_VERSION'
  | 'PROTOCOL_ERROR' | 'HANDSHAKE_REJECTED' | 'UNKNOWN_PEER' | 'IO' | 'NAME_IN_USE' | 'OVERLOADED'
  | 'TIMEOUT' | 'NO_RESPONDERS' | 'CANCELLED' | 'HANDLER_ERROR'
  | 'BUFFER_FULL' | 'CLOSED' | 'WOULD_DEADLOCK'
  | 'PLAINTEXT_REFUSED' | 'TLS_FAILED' | 'CERT_UNTRUSTED' | 'CERT_NAME_MISMATCH' | 'CERT_EXPIRED'
  | 'CLIENT_CERT_REQUIRED' | 'PERMISSION_DENIED' | 'SHARED_KEY_REFUSED' | 'RATE_LIMITED' | 'INTERNAL'

/** Every error netchan throws or rejects with carries one of the codes. */
export interface NetchanError extends Error {
  code: ErrorCode
}

/** `codes.TIMEOUT === 'TIMEOUT'`, for comparisons without string typos. */
export declare const codes: Readonly<{ [K in ErrorCode]: K }>

/** What a payload may be: strings are sent as UTF-8. */
export type Payload = string | Uint8Array | ArrayBuffer | ArrayBufferView

export type Overflow = 'block' | 'drop_oldest' | 'drop_newest' | 'disconnect'

export interface EndpointOptions {
  /** Unique among the endpoints it talks to; default a random `ep-...` name. */
  name?: string
  maxFrameSize?: number
  heartbeatIntervalMs?: number
  heartbeatMisses?: number
  /** Redial connected addresses after a loss (default true). */
  reconnect?: boolean
  connectTimeoutMs?: number
  handshakeTimeoutMs?: number
  sendBuffer?: number
  sendTimeoutMs?: number
  slowPeer?: 'block' | 'drop_newest' | 'disconnect'
  offlineBuffer?: number
  pingTimeoutMs?: number
  /** Default subscription queue bound in messages (the core's `subscribe.capacity`, 16384). */
  subscribeCapacity?: number
  /** Default subscription queue bound in bytes (`subscribe.max_bytes`, 64 MiB). */
  subscribeMaxBytes?: number
  /** Default subscription overflow policy (`subscribe.overflow`, 'block'). */
  subscribeOverflow?: Overflow
  serviceQueue?: number
  /**
   * The core's `busy_poll`, in microseconds (a whole number from 0 to
   * 1000000; default the core's, 0: off): how long `request()` polls for
   * its reply, and a service whose handler answered synchronously for the
   * next request, through the core on the JS thread, before the event loop
   * goes on. A reply or request arriving within it is taken without waking
   * a sleeping event loop; meanwhile the JS thread runs nothing else.
   */
  busyPollUs?: number
  /** Bytes a stream's other side may send before this side reads, by default (1 MiB; the core's `stream_window`). */
  streamWindow?: number
  /** TLS for `tls://` addresses (docs/SECURITY.md). */
  tls?: TlsOptions
  /** Allow plaintext `tcp://` beyond this host (refused by default with `PLAINTEXT_REFUSED`). */
  insecure?: boolean
  /** Any core setting by the name `netchan settings` lists (`{ send_buffer: '1MiB' }`); the options above win. */
  settings?: Record<string, string | number | boolean>
}

/** TLS settings: each PEM a file's path (a string) or the PEM itself (a `Buffer`, or a string starting with `-----BEGIN`). */
export interface TlsOptions {
  /** This endpoint's certificate chain (to listen on `tls://`, or for mutual TLS). */
  cert?: string | Buffer
  /** The private key of `cert`. */
  key?: string | Buffer
  /** CA certificates that sign the peers' certificates (to dial `tls://`, or check clients). */
  ca?: string | Buffer
  /** Peers' certificates trusted as they are, instead of a CA. */
  pinned?: string | Buffer
  /** Ask clients for a certificate: `'none'` (default), `'optional'`, `'required'` (mutual TLS). */
  clientAuth?: 'none' | 'optional' | 'required'
  /** The name the dialled peer's certificate must carry, instead of the address's host. */
  serverName?: string
}

export interface SubscribeOptions {
  capacity?: number
  maxBytes?: number
  overflow?: Overflow
}

export interface ServeOptions {
  /** Requests the handler works on at once (default 256); more wait in the queue. */
  maxConcurrent?: number
  /** Requests waiting at most (default 1024); past that one is refused with `BUFFER_FULL`, counted (`requestsRefused`) and reported (`dropped`). */
  queue?: number
  /** Bytes of requests waiting at most (default 64 MiB). */
  queueBytes?: number
}

export interface RequestOptions {
  /** How long to wait for the reply (default 5000); also the handler's deadline. */
  timeoutMs?: number
  /**
   * Aborting rejects the request with an `AbortError` (code `CANCELLED`),
   * or for `AbortSignal.timeout()` a `TimeoutError` (code `TIMEOUT`), and
   * cancels it at the server; `cause` is the signal's reason.
   */
  signal?: AbortSignal
  /** Wait for a server to appear instead of failing with `NO_RESPONDERS` at once. */
  waitForResponder?: boolean
}

export interface StreamOptions {
  /** The stream's deadline in milliseconds: both sides end with `TIMEOUT` then (default none). */
  timeoutMs?: number
  /** How long opening waits for a server to accept (default 10000, or the deadline if sooner); `TIMEOUT` then. */
  openTimeoutMs?: number
  /** Bytes the server may send before this side reads (default the endpoint's `streamWindow`). */
  window?: number
  /** Wait (up to the open timeout) for a server to appear instead of failing with `NO_RESPONDERS` at once. */
  waitForResponder?: boolean
  /** Aborting rejects a pending `openStream` with an `AbortError` (`CANCELLED`; `TIMEOUT` for `AbortSignal.timeout()`), and cancels an open stream. */
  signal?: AbortSignal
}

export interface StreamServeOptions {
  /** Streams in handlers at once (default 256); more wait in the queue. */
  maxConcurrent?: number
  /** Streams waiting at most (default 1024); past that an opening is refused with `BUFFER_FULL`. */
  queue?: number
  /** Bytes of openings waiting at most (default 64 MiB). */
  queueBytes?: number
  /** Bytes each opener may send before its handler reads (default the endpoint's `streamWindow`). */
  window?: number
}

export declare class Message {
  readonly path: string
  readonly payload: Buffer
  readonly sender: string
  text(): string
  obj(): unknown
  json(): unknown
}

export declare class Subscription implements AsyncIterableIterator<Message> {
  readonly pattern: string
  /** Messages dropped so far by the overflow policy. */
  readonly dropped: number
  /** The next message, or `null` once the subscription has ended. */
  recv(): Promise<Message | null>
  /** The next queued message, or `null`; never waits. */
  tryRecv(): Message | null
  /** Up to `max` (default 256) messages: what is queued, or waits for the first; `[]` once ended. */
  recvMany(max?: number): Promise<Message[]>
  /** Up to `max` (default 256) queued messages without waiting; `[]` if none. */
  tryRecvMany(max?: number): Message[]
  next(): Promise<IteratorResult<Message, undefined>>
  return(): Promise<IteratorResult<Message, undefined>>
  [Symbol.asyncIterator](): AsyncIterableIterator<Message>
  close(): void
}

/** A publisher declaration (discovery) that publishes on paths its pattern matches; `close()` withdraws it. */
export declare class Publisher {
  readonly pattern: string
  /** Publishes on `path`, which the pattern must match (`INVALID_PATH` otherwise). */
  publish(path: string, payload?: Payload): Promise<void>
  tryPublish(path: string, payload?: Payload): void
  close(): void
}

export declare class Request {
  readonly path: string
  readonly sender: string
  readonly payload: Buffer
  readonly remainingMs: number
  readonly cancelled: boolean
  text(): string
  obj(): unknown
  json(): unknown
  /** Answers a request taken with `Service.recv()` (once; `CLOSED` after that). A handler answers by returning. */
  reply(payload?: Payload): void
  /** Fails a request taken with `Service.recv()`; the caller gets `code` and `message`. A handler fails by throwing. */
  fail(message: string, code?: ErrorCode): void
}

/** With a handler, it runs the handler per request; without one, an async iterable of requests to answer. */
export declare class Service implements AsyncIterableIterator<Request> {
  readonly pattern: string
  /** The next request of a service made without a handler, or `null` once closed. */
  recv(): Promise<Request | null>
  next(): Promise<IteratorResult<Request, undefined>>
  /** Leaving a `for await` loop stops serving. */
  return(): Promise<IteratorResult<Request, undefined>>
  [Symbol.asyncIterator](): AsyncIterableIterator<Request>
  close(): void
}

export type Handler = (req: Request) => Payload | void | null | Promise<Payload | void | null>

/** The opening of a stream, as its handler sees it. */
export declare class StreamRequest {
  readonly path: string
  readonly sender: string
  /** The first payload (empty if none). */
  readonly payload: Buffer
  /** Milliseconds before the stream's deadline, or `null` without one. */
  readonly remainingMs: number | null
  text(): string
  obj(): unknown
  json(): unknown
}

/** One side of a bidirectional stream. */
export declare class Stream implements AsyncIterableIterator<Buffer> {
  readonly path: string
  /** The endpoint at the other side. */
  readonly peer: string
  /** Milliseconds before the stream's deadline, or `null` without one. */
  readonly remainingMs: number | null
  /** Resolves once the receiver's window let the message go. */
  send(payload?: Payload): Promise<void>
  /** The next message, or `null` once the other side ended its direction. */
  recv(): Promise<Buffer | null>
  /** Ends this side's direction (half-close). Idempotent. */
  end(): void
  /** Ends the whole stream with `CANCELLED` on both sides. Idempotent. */
  cancel(): void
  next(): Promise<IteratorResult<Buffer, undefined>>
  /** Leaving a `for await` loop early cancels the stream. */
  return(): Promise<IteratorResult<Buffer, undefined>>
  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer>
  /** A Node `Duplex` over this stream; a write's callback runs once its send resolved. */
  toDuplex(options?: DuplexOptions): Duplex
}

/** With a handler, it runs the handler per opened stream; without one, an async iterable of `[request, stream]` pairs. */
export declare class StreamService implements AsyncIterableIterator<[StreamRequest, Stream]> {
  readonly pattern: string
  /** Streams waiting for a free handler slot (or, without a handler, to be taken). */
  readonly queued: number
  /** The next opened stream of a service made without a handler (the stream is yours to end), or `null` once closed. */
  recv(): Promise<[StreamRequest, Stream] | null>
  next(): Promise<IteratorResult<[StreamRequest, Stream], undefined>>
  /** Leaving a `for await` loop stops serving. */
  return(): Promise<IteratorResult<[StreamRequest, Stream], undefined>>
  [Symbol.asyncIterator](): AsyncIterableIterator<[StreamRequest, Stream]>
  close(): void
}

/** Runs per opened stream; when it settles, this side is ended (a rejection ends the stream with its code). */
export type StreamHandler = (req: StreamRequest, stream: Stream) => void | Promise<void>

export interface PeerEvent {
  type: 'peerUp' | 'peerDown'
  peer: string
  addr: string
  /** `peerUp`: what the peer proved (`cert:NAME`, `key:ID`, `uid:N`, `anonymous`). */
  identity?: string
  reason?: string
  code?: ErrorCode
}

export interface DroppedEvent { type: 'dropped'; site: string; code: ErrorCode; count: number }
export interface ReconnectingEvent { type: 'reconnecting'; addr: string; attempt: number; delayMs: number }
export interface ReconnectAbandonedEvent { type: 'reconnectAbandoned'; addr: string; code: ErrorCode; detail: string }
/** `attempts`: failed attempts from this address (without its port) so far. */
export interface ConnectionErrorEvent { type: 'connectionError'; addr: string; code: ErrorCode; detail: string; attempts: number }
/** The access rules denied a peer something (docs/SECURITY.md, "Access rules"). */
export interface DeniedEvent { type: 'denied'; peer: string; identity: string; action: 'publish' | 'subscribe' | 'serve' | 'request' | 'stream'; path: string }
export interface SuspendedEvent { type: 'suspended' }
export interface ResumedEvent { type: 'resumed' }
export interface MissedEvent { type: 'missed'; count: number }
/** Every event; `type` is the core's `Event::kind()` in camelCase, or `missed`. */
export type NetchanEvent = PeerEvent | DroppedEvent | ReconnectingEvent | ReconnectAbandonedEvent | SuspendedEvent | ResumedEvent | ConnectionErrorEvent | DeniedEvent | MissedEvent

export interface EndpointEvents {
  peer: [PeerEvent]
  peerUp: [PeerEvent]
  peerDown: [PeerEvent]
  dropped: [DroppedEvent]
  reconnecting: [ReconnectingEvent]
  reconnectAbandoned: [ReconnectAbandonedEvent]
  suspended: [SuspendedEvent]
  resumed: [ResumedEvent]
  connectionError: [ConnectionErrorEvent]
  denied: [DeniedEvent]
  missed: [MissedEvent]
  event: [NetchanEvent]
  /**
   * An exception thrown (or a promise rejected) by a subscription callback
   * or an event listener, or a service handler's reply that is not a payload.
   */
  error: [unknown]
}

export declare class Endpoint extends EventEmitter {
  constructor(options?: EndpointOptions | string)
  readonly name: string
  readonly closed: boolean
  /** The busy-poll window in microseconds (the `busyPollUs` option, else the core's default). */
  readonly busyPollUs: number
  on<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  once<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  off<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  listen(addr: string): Promise<string>
  connect(addr: string): Promise<PeerInfo>
  reconnectNow(): void
  /**
   * To the background: closes every link and listener; keeps subscriptions,
   * services, declarations, messages held for dialled peers and counters.
   * Emits `suspended`. Idempotent. Rejects with `CLOSED` once closed.
   */
  suspend(): Promise<void>
  /**
   * Listens and dials again at once; emits `resumed`. Does nothing if not
   * suspended. Rejects with `CLOSED`, or `ADDRESS_IN_USE` if a listen
   * address was taken meanwhile (the rest is restored anyway).
   */
  resume(): Promise<void>
  /** Drops every link and redials every dialled address now. Rejects with `CLOSED`. */
  networkChanged(): Promise<void>
  /**
   * Lets the process exit while only this endpoint's listeners,
   * subscriptions and services (made before or after) are left, like
   * `net.Server#unref`; any other pending call (a request, connect, ping, a
   * publish waiting for room, an openStream, ...) still keeps it alive until
   * it settles.
   */
  unref(): this
  /** Undoes `unref()`. */
  ref(): this
  /** Resolves once every target took the message; a bad path or payload throws at once (`INVALID_PATH`, `INVALID_ARGUMENT`). */
  publish(path: string, payload?: Payload): Promise<void>
  tryPublish(path: string, payload?: Payload): void
  /** Publishes every payload on `path` in order, in one call; resolves with how many. */
  publishMany(path: string, payloads: Iterable<Payload>): Promise<number>
  publishObj(path: string, value: unknown): Promise<void>
  subscribe(pattern: string, options?: SubscribeOptions): Subscription
  subscribe(pattern: string, callback: (msg: Message) => void | Promise<void>, options?: SubscribeOptions): Subscription
  serve(pattern: string, handler: Handler, options?: ServeOptions): Service
  /** Without a handler: take the requests with `recv()` or `for await`, answer with `req.reply()`. */
  serve(pattern: string, options?: ServeOptions): Service
  declarePublisher(pattern: string): Publisher
  openStream(path: string, first?: Payload, options?: StreamOptions): Promise<Stream>
  openStream(path: string, options: StreamOptions): Promise<Stream>
  serveStream(pattern: string, handler: StreamHandler, options?: StreamServeOptions): StreamService
  /** Without a handler: take the streams with `recv()` or `for await`. */
  serveStream(pattern: string, options?: StreamServeOptions): StreamService
  request(path: string, payload?: Payload, options?: RequestOptions): Promise<Buffer>
  requestObj(path: string, value: unknown, options?: RequestOptions): Promise<unknown>
  ping(peer: string): Promise<number>
  peers(): PeerInfo[]
  /** Replaces the access rules: a rules file's path or the rules' text; null removes them (docs/SECURITY.md). */
  setAcl(rules: string | null): void
  /** Reads the TLS, shared-key and rules files again; on an error everything in use stays. */
  reloadKeys(): void
  /** Replaces the TLS settings (`null` removes them); on an error the settings in use stay. Unknown keys are `INVALID_ARGUMENT`. */
  setTls(tls: TlsOptions | null): void
  /** Replaces the shared keys: a key file's path or the keys' text; `null` removes them. */
  setSharedKeys(keys: string | null): void
  /** Failed connection attempts per remote address (without its port), most first. */
  failedAttempts(): FailedAttempts[]
  stats(): Stats
  hasSubscribers(path: string): boolean
  waitForSubscribers(path: string, timeoutMs?: number): Promise<boolean>
  hasServers(path: string): boolean
  waitForServers(path: string, timeoutMs?: number): Promise<boolean>
  subscribers(pattern: string): string[]
  publishers(pattern: string): string[]
  servers(pattern: string): string[]
  streamServers(pattern: string): string[]
  close(): Promise<void>
}

/** msgpack of a plain JS value (interoperable with every netchan binding). */
export declare function pack(value: unknown): Buffer
export declare function unpack(bytes: Uint8Array): unknown
export declare const version: string

// Keeps the generated event type referenced for declaration consumers.
export type NativeEvent = EventObj
