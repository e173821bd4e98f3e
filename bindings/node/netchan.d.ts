// Types of the public netchan API (netchan.js). The native layer's types are
// generated into index.d.ts by `napi build`.
/// <reference types="node" />
import { EventEmitter } from 'node:events'
import type { PeerInfo, Stats, EventObj } from './index'

export type { PeerInfo, Stats, CounterStats, PeerStats, SubscriptionStats } from './index'

/** The symbolic error codes, the same in every netchan language. */
export type ErrorCode =
  | 'INVALID_ARGUMENT' | 'INVALID_ADDRESS' | 'INVALID_PATH' | 'MESSAGE_TOO_LARGE'
  | 'CONNECT_REFUSED' | 'ADDRESS_IN_USE' | 'PEER_LOST' | 'UNSUPPORTED_VERSION'
  | 'PROTOCOL_ERROR' | 'HANDSHAKE_REJECTED' | 'UNKNOWN_PEER' | 'IO' | 'NAME_IN_USE' | 'OVERLOADED'
  | 'TIMEOUT' | 'NO_RESPONDERS' | 'CANCELLED' | 'HANDLER_ERROR'
  | 'BUFFER_FULL' | 'CLOSED' | 'WOULD_DEADLOCK' | 'INTERNAL'

/** Every error netchan throws or rejects with carries one of the codes. */
export interface NetchanError extends Error {
  code: ErrorCode
}

/** `codes.TIMEOUT === 'TIMEOUT'`, for comparisons without string typos. */
export declare const codes: Readonly<{ [K in ErrorCode]: K }>

/** What a payload may be: strings are sent as UTF-8. */
export type Payload = string | Uint8Array | ArrayBuffer | ArrayBufferView

export type Overflow = 'block' | 'drop-oldest' | 'drop-newest'

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
  slowPeer?: 'block' | 'drop-newest' | 'disconnect'
  offlineBuffer?: number
  pingTimeoutMs?: number
  /** Default subscription queue bound in messages (16384). */
  queueCapacity?: number
  /** Default subscription queue bound in bytes (64 MiB). */
  queueMaxBytes?: number
  /** Default subscription overflow policy ('block'). */
  overflow?: Overflow
  serviceQueue?: number
}

export interface SubscribeOptions {
  capacity?: number
  maxBytes?: number
  overflow?: Overflow
}

export interface RequestOptions {
  /** How long to wait for the reply (default 5000); also the handler's deadline. */
  timeoutMs?: number
  /** Aborting rejects the request with `CANCELLED` and cancels it at the server. */
  signal?: AbortSignal
  /** Wait for a server to appear instead of failing with `NO_RESPONDERS` at once. */
  waitForResponder?: boolean
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
  next(): Promise<IteratorResult<Message, undefined>>
  return(): Promise<IteratorResult<Message, undefined>>
  [Symbol.asyncIterator](): AsyncIterableIterator<Message>
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
}

export declare class Service {
  readonly pattern: string
  close(): void
}

export type Handler = (req: Request) => Payload | void | null | Promise<Payload | void | null>

export interface PeerEvent {
  type: 'peerUp' | 'peerDown'
  peer: string
  addr: string
  reason?: string
  code?: ErrorCode
}

export interface DroppedEvent { type: 'dropped'; site: string; code: ErrorCode; count: number }
export interface ReconnectingEvent { type: 'reconnecting'; addr: string; attempt: number; delayMs: number }
export interface ReconnectAbandonedEvent { type: 'reconnectAbandoned'; addr: string; code: ErrorCode; detail: string }
export interface ConnectionErrorEvent { type: 'connectionError'; addr: string; code: ErrorCode; detail: string }
export interface MissedEvent { type: 'missed'; count: number }
export type NetchanEvent = PeerEvent | DroppedEvent | ReconnectingEvent | ReconnectAbandonedEvent | ConnectionErrorEvent | MissedEvent

export interface EndpointEvents {
  peer: [PeerEvent]
  peerUp: [PeerEvent]
  peerDown: [PeerEvent]
  dropped: [DroppedEvent]
  reconnecting: [ReconnectingEvent]
  reconnectAbandoned: [ReconnectAbandonedEvent]
  connectionError: [ConnectionErrorEvent]
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
  on<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  once<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  off<K extends keyof EndpointEvents>(event: K, listener: (...args: EndpointEvents[K]) => void): this
  listen(addr: string): Promise<string>
  connect(addr: string): Promise<PeerInfo>
  reconnectNow(): void
  unref(): this
  ref(): this
  publish(path: string, payload?: Payload): Promise<void>
  tryPublish(path: string, payload?: Payload): void
  publishObj(path: string, value: unknown): Promise<void>
  subscribe(pattern: string, options?: SubscribeOptions): Subscription
  subscribe(pattern: string, callback: (msg: Message) => void | Promise<void>, options?: SubscribeOptions): Subscription
  serve(pattern: string, handler: Handler): Service
  declarePublisher(pattern: string): { pattern: string; close(): void }
  request(path: string, payload?: Payload, options?: RequestOptions): Promise<Buffer>
  requestObj(path: string, value: unknown, options?: RequestOptions): Promise<unknown>
  ping(peer: string): Promise<number>
  peers(): PeerInfo[]
  stats(): Stats
  hasSubscribers(path: string): boolean
  waitForSubscribers(path: string, timeoutMs?: number): Promise<boolean>
  hasServers(path: string): boolean
  waitForServers(path: string, timeoutMs?: number): Promise<boolean>
  subscribers(pattern: string): string[]
  publishers(pattern: string): string[]
  servers(pattern: string): string[]
  close(): Promise<void>
}

/** msgpack of a plain JS value (interoperable with every netchan binding). */
export declare function pack(value: unknown): Buffer
export declare function unpack(bytes: Uint8Array): unknown
/**
 * Sets how long, in microseconds, the event loop keeps polling instead of
 * sleeping while a request awaits its reply and after a service answers
 * (default 100; 0 turns it off; at most 1000000). Returns the previous value.
 * Throws a TypeError with code INVALID_ARGUMENT for anything else.
 */
export declare function setBusyPoll(microseconds: number): number
export declare const version: string

// Keeps the generated event type referenced for declaration consumers.
export type NativeEvent = EventObj
