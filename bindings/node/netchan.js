'use strict'
// The public JavaScript API of netchan, over the generated native binding
// (native.js loads the addon that `napi build` writes for this platform).
//
// Lifecycle rules this layer keeps (the process exits by itself once nothing
// the user asked for is pending):
//  - a listening endpoint keeps Node alive until close() (like net.Server;
//    ep.unref() opts out, for its subscriptions and services too);
//  - a subscription or service keeps Node alive while open: it always has one
//    pending native promise (taking the next batch), which settles with
//    `null` when the subscription, service or endpoint closes; the native
//    side counts it only while the endpoint is ref'd (NativeEndpoint.setRef);
//  - a pending request, connect, ping keeps Node alive until it settles;
//  - a stream service keeps Node alive while open (like a service); a
//    stream's pending openStream/send/recv keeps it alive until it settles,
//    an open stream with nothing pending does not;
//  - event listeners (ep.on('peer', ...)) never keep Node alive.

const { EventEmitter } = require('node:events')
const { Duplex } = require('node:stream')
const native = require('./native.js').addon
const { pack, unpack } = require('./msgpack.js')

/** Every error code, by name: `codes.TIMEOUT === 'TIMEOUT'`. */
const codes = Object.freeze(Object.fromEntries(native.errorCodes().map((c) => [c, c])))

/** Messages taken from a subscription per native call. */
const BATCH = 256
const EMPTY = new Uint8Array(0)
const DONE = Promise.resolve()
// Event names: each core event kind (`Event::kind()`) in camelCase, plus
// `missed` (events the JS thread could not take), `peer` (peerUp and
// peerDown) and `event` (all). A listener for any of them starts the stream.
const EVENT_NAMES = new Set(['peerUp', 'peerDown', 'dropped', 'reconnecting', 'reconnectAbandoned', 'suspended', 'resumed', 'connectionError', 'denied', 'missed', 'peer', 'event'])

function argError (msg) {
  const e = new TypeError(msg)
  e.code = 'INVALID_ARGUMENT'
  return e
}

/** A payload as the native layer takes it: string or Uint8Array. */
function data (d) {
  if (typeof d === 'string' || d instanceof Uint8Array) return d
  if (d === undefined || d === null) return undefined
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
  if (d instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && d instanceof SharedArrayBuffer)) return new Uint8Array(d)
  throw argError(`payload must be a string, Buffer, Uint8Array, ArrayBuffer or typed array, not ${typeof d === 'object' ? d.constructor && d.constructor.name : typeof d}`)
}

const TLS_KEYS = ['cert', 'key', 'ca', 'pinned', 'clientAuth', 'serverName']
// The options each call knows (netchan.d.ts): any other key is a typo that
// would otherwise be ignored (`{ timeout: 100 }` waiting the default 5 s).
const ENDPOINT_KEYS = ['name', 'maxFrameSize', 'heartbeatIntervalMs', 'heartbeatMisses', 'reconnect',
  'connectTimeoutMs', 'handshakeTimeoutMs', 'sendBuffer', 'sendTimeoutMs', 'slowPeer', 'offlineBuffer',
  'pingTimeoutMs', 'subscribeCapacity', 'subscribeMaxBytes', 'subscribeOverflow', 'serviceQueue', 'busyPollUs',
  'streamWindow', 'tls', 'insecure', 'settings']
const REQUEST_KEYS = ['timeoutMs', 'signal', 'waitForResponder']
const SUBSCRIBE_KEYS = ['capacity', 'maxBytes', 'overflow']
const SERVE_KEYS = ['maxConcurrent', 'queue', 'queueBytes']
const STREAM_KEYS = ['timeoutMs', 'openTimeoutMs', 'window', 'waitForResponder', 'signal']
const STREAM_SERVE_KEYS = ['maxConcurrent', 'queue', 'queueBytes', 'window']

/** Throws INVALID_ARGUMENT for an option `where` does not know (a typo would otherwise be ignored). */
function checkKeys (o, known, where) {
  if (o === undefined || o === null) return
  if (typeof o !== 'object') throw argError(`${where}: options must be an object`)
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw argError(`${where}: unknown option ${JSON.stringify(k)} (known: ${known.join(', ')})`)
  }
}

/**
 * Publishes through a native endpoint or publisher: argument errors
 * (`INVALID_PATH`, `INVALID_ARGUMENT`) are thrown, the rest rejects.
 */
function publishNow (n, path, payload) {
  try {
    const p = n.publish(path, data(payload))
    return p == null ? DONE : p
  } catch (e) {
    if (e && (e.code === 'INVALID_PATH' || e.code === 'INVALID_ARGUMENT')) throw e
    return Promise.reject(e)
  }
}

/** A whole number >= 1 for a count argument, else INVALID_ARGUMENT. */
function count (v, name) {
  if (!Number.isInteger(v) || v < 1) throw argError(`${name} must be a whole number >= 1, not ${v}`)
  return v
}

/**
 * A publisher declaration: peers find it with `publishers()`, and it
 * publishes on paths its pattern matches through a cached route.
 * `close()` withdraws it.
 */
class Publisher {
  constructor (pattern, npub) {
    this.pattern = pattern
    this._n = npub
  }

  /** Publishes on `path` (which the pattern must match), as `Endpoint.publish`. */
  publish (path, payload) { return publishNow(this._n, path, payload) }

  /** Publishes without waiting; throws BUFFER_FULL if a target had no room. */
  tryPublish (path, payload) { this._n.tryPublish(path, data(payload)) }

  /** Withdraws the declaration. Idempotent. */
  close () { this._n.close() }
}

/** A received message. */
class Message {
  constructor (path, payload, sender) {
    /** The concrete path it was published on. */
    this.path = path
    /** The payload (a Buffer; a view into the batch it arrived in). */
    this.payload = payload
    /** The publishing endpoint's name. */
    this.sender = sender
  }

  /** The payload decoded as UTF-8. */
  text () { return this.payload.toString('utf8') }
  /** The payload decoded as msgpack (see publishObj). */
  obj () { return unpack(this.payload) }
  /** The payload parsed as JSON. */
  json () { return JSON.parse(this.payload.toString('utf8')) }
}

function unbatch (b) {
  const n = b.ends.length
  const out = new Array(n)
  const { data: buf, ends, paths, pathIdx, senders, senderIdx } = b
  let start = 0
  for (let i = 0; i < n; i++) {
    const end = ends[i]
    out[i] = new Message(paths[pathIdx[i]], buf.subarray(start, end), senders[senderIdx[i]])
    start = end
  }
  return out
}

/** Reports an exception thrown by a user callback without stopping delivery. */
function report (ep, err, where) {
  if (err !== null && typeof err === 'object') {
    try { err.netchanSource = where } catch (_) {}
  }
  if (ep.listenerCount('error') > 0) {
    ep.emit('error', err)
  } else {
    const text = err && err.stack ? err.stack : String(err)
    process.emitWarning(`netchan: exception in ${where}: ${text}`, { code: 'NETCHAN_CALLBACK_ERROR' })
  }
}

/**
 * A subscription: an async iterable of messages, or a callback driver.
 * Keeps the process alive while open; close() (or breaking out of a
 * `for await` loop) unsubscribes.
 */
class Subscription {
  constructor (ep, nsub, callback) {
    this._ep = ep
    this._n = nsub
    this._buf = []
    this._i = 0
    this._ended = false
    this._waiting = null
    this.pattern = nsub.pattern
    if (callback) this._drive(callback)
  }

  /** Messages dropped so far by this subscription's overflow policy. */
  get dropped () { return this._n.dropped }

  async _fill () {
    if (this._ended) return false
    let b = this._n.take(BATCH)
    if (b === null) {
      b = await this._n.wait(BATCH)
      if (b === null) { this._ended = true; return false }
    }
    this._buf = unbatch(b)
    this._i = 0
    return true
  }

  /** The next message, or `null` once the subscription has ended. */
  async recv () {
    if (this._i < this._buf.length) return this._buf[this._i++]
    // One waiter at a time; concurrent callers queue behind it.
    while (this._waiting) await this._waiting
    if (this._i < this._buf.length) return this._buf[this._i++]
    this._waiting = this._fill()
    try {
      if (!(await this._waiting)) return null
    } finally {
      this._waiting = null
    }
    return this._buf[this._i++]
  }

  /** The next message if one is queued, else `null`; never waits. */
  tryRecv () {
    if (this._i < this._buf.length) return this._buf[this._i++]
    if (this._ended || this._waiting) return null
    const b = this._n.take(BATCH)
    if (b === null) return null
    this._buf = unbatch(b)
    this._i = 0
    return this._buf[this._i++]
  }

  /**
   * Up to `max` messages (default 256) at once: what is queued, or, when
   * nothing is, waits for the first and takes what came with it. An empty
   * array once the subscription has ended.
   */
  async recvMany (max = BATCH) {
    const n = count(max, 'max')
    if (this._i >= this._buf.length) {
      if ((await this.recv()) === null) return []
      this._i--
    }
    return this._takeBuffered(n)
  }

  /** Up to `max` queued messages (default 256) without waiting; `[]` if none. */
  tryRecvMany (max = BATCH) {
    const n = count(max, 'max')
    if (this._i >= this._buf.length) {
      if (this.tryRecv() === null) return []
      this._i--
    }
    return this._takeBuffered(n)
  }

  _takeBuffered (n) {
    const out = this._buf.slice(this._i, this._i + n)
    this._i += out.length
    return out
  }

  async next () {
    const m = await this.recv()
    return m === null ? { done: true, value: undefined } : { done: false, value: m }
  }

  async return () {
    this.close()
    return { done: true, value: undefined }
  }

  [Symbol.asyncIterator] () { return this }

  async _drive (callback) {
    const where = `subscription callback for ${JSON.stringify(this.pattern)}`
    for (;;) {
      if (!(await this._fill())) return
      const msgs = this._buf
      this._buf = []
      for (let i = 0; i < msgs.length; i++) {
        try {
          const r = callback(msgs[i])
          // An async callback is awaited, so messages are handled in order
          // and a slow handler pushes back on the queue (its policy applies).
          if (r && typeof r.then === 'function') {
            try { await r } catch (e) { report(this._ep, e, where) }
          }
        } catch (e) {
          report(this._ep, e, where)
        }
      }
    }
  }

  /** Unsubscribes. Idempotent. */
  close () { this._n.close() }
}

/**
 * An incoming request. A handler answers it by returning; one taken from a
 * service without a handler (`svc.recv()`, `for await`) is answered with
 * `reply()` or `fail()`.
 */
class Request {
  constructor (nreq, pulled = false) {
    this._n = nreq
    this._pulled = pulled
    this.path = nreq.path
    this.sender = nreq.sender
    this._payload = undefined
  }

  /** Answers a pulled request with `payload` (once; CLOSED after that). */
  reply (payload) {
    if (!this._pulled) throw argError('a handler answers by returning its reply; reply() is for requests taken with recv()')
    this._n.respond(data(payload))
  }

  /** Fails a pulled request: the caller gets `code` (default HANDLER_ERROR) and `message`. */
  fail (message, code = 'HANDLER_ERROR') {
    if (!this._pulled) throw argError('a handler fails a request by throwing; fail() is for requests taken with recv()')
    if (typeof code !== 'string' || !codes[code]) throw argError(`fail: code must be a netchan error code, not ${code}`)
    this._n.fail(code, String(message))
  }

  /** The request payload (Buffer). */
  get payload () {
    if (this._payload === undefined) this._payload = this._n.payload
    return this._payload
  }

  /** Milliseconds until the caller stops waiting. */
  get remainingMs () { return this._n.remainingMs }
  /** True once the caller gave up (timeout, abort, link lost). */
  get cancelled () { return this._n.isCancelled }
  text () { return this.payload.toString('utf8') }
  obj () { return unpack(this.payload) }
  json () { return JSON.parse(this.payload.toString('utf8')) }
}

// Busy polling (the endpoint option `busyPollUs`, the core's `busy_poll`)
// happens in the native layer, through the core's blocking entry point: a
// request's native call, and a service's wait for its next request after it
// answered, poll for up to the window before they return. Nothing here
// loops or keeps the event loop turning.

/**
 * What a service made without a handler shares with a stream service made
 * without one: `_take()` gives the next item the native `next()` resolves
 * with, through `_wrap`, one waiter at a time, and the async iterator
 * protocol; leaving a `for await` loop closes the service.
 */
class Pulled {
  async _take () {
    if (!this._pull) throw argError(`a service with a handler hands what it serves to the handler; recv() is for one made without (${this.pattern})`)
    // One waiter at a time; concurrent callers queue behind it.
    while (this._waiting) await this._waiting.catch(() => {})
    this._waiting = this._n.next()
    try {
      const n = await this._waiting
      return n === null ? null : this._wrap(n)
    } finally {
      this._waiting = null
    }
  }

  async next () {
    const r = await this.recv()
    return r === null ? { done: true, value: undefined } : { done: false, value: r }
  }

  /** Leaving a `for await` loop stops serving (what was taken goes on). */
  async return () {
    this.close()
    return { done: true, value: undefined }
  }

  [Symbol.asyncIterator] () { return this }
}

/**
 * A service: runs a handler per request, or, made without one, hands its
 * requests out in arrival order (`recv()`, `for await`), each answered
 * with `req.reply()` / `req.fail()`. Keeps the process alive while open.
 */
class Service extends Pulled {
  constructor (ep, nsvc, handler, maxConcurrent) {
    super()
    this._ep = ep
    this._n = nsvc
    this.pattern = nsvc.pattern
    this._waiting = null
    this._pull = handler === null
    if (!this._pull) this._drive(handler, maxConcurrent)
  }

  /** The next request of a service made without a handler, or `null` once it is closed. */
  recv () { return this._take() }

  _wrap (nreq) { return new Request(nreq, true) }

  // At most `max` handler calls in flight: the next request is taken from
  // the core's queue (bounded, fair among callers) only when one is free.
  async _drive (handler, max) {
    const where = `service handler for ${JSON.stringify(this.pattern)}`
    let running = 0
    let freed = null
    const done = () => {
      running--
      if (freed) { const f = freed; freed = null; f() }
    }
    for (;;) {
      while (running >= max) await new Promise((resolve) => { freed = resolve })
      const nreq = await this._n.next()
      if (nreq === null) return
      const req = new Request(nreq)
      let r
      try {
        r = handler(req)
      } catch (e) {
        this._fail(nreq, e)
        continue
      }
      if (r && typeof r.then === 'function') {
        running++
        r.then((v) => { done(); this._reply(nreq, v, where) }, (e) => { done(); this._fail(nreq, e) })
      } else {
        this._reply(nreq, r, where)
      }
    }
  }

  _reply (nreq, v, where) {
    let d
    try {
      d = data(v)
    } catch (e) {
      const bad = new Error(`the handler returned a value that is not a payload (${e.message}); return a string or bytes, or use pack()`)
      bad.code = 'HANDLER_ERROR'
      this._fail(nreq, bad)
      report(this._ep, e, where)
      return
    }
    try { nreq.respond(d) } catch (_) { /* answered already: nothing to do */ }
  }

  _fail (nreq, e) {
    const code = e && typeof e.code === 'string' && codes[e.code] ? e.code : 'HANDLER_ERROR'
    const msg = e && e.message !== undefined ? String(e.message) : String(e)
    try { nreq.fail(code, msg) } catch (_) {}
  }

  /** Stops serving. Idempotent. */
  close () { this._n.close() }
}

/** What a stream handler gets beside its stream: the opening. */
class StreamRequest {
  constructor (ninc) {
    this._n = ninc
    /** The concrete path the stream was opened on. */
    this.path = ninc.path
    /** The opener's endpoint name. */
    this.sender = ninc.sender
    this._payload = undefined
  }

  /** The first payload, sent with the opening (Buffer; empty if none). */
  get payload () {
    if (this._payload === undefined) this._payload = this._n.payload
    return this._payload
  }

  /** Milliseconds before the stream's deadline, or `null` without one. */
  get remainingMs () { return this._n.remainingMs }
  text () { return this.payload.toString('utf8') }
  obj () { return unpack(this.payload) }
  json () { return JSON.parse(this.payload.toString('utf8')) }
}

const END = Object.freeze({ done: true, value: undefined })

/**
 * One side of a bidirectional stream (the core's `Stream`): `send()`
 * resolves once the receiver's window let the message go, `recv()`
 * resolves with the next message or `null` after the other side's
 * `end()`; `for await` reads until then. `end()` ends this side's
 * direction (half-close), `cancel()` the whole stream (both sides see
 * `CANCELLED`). A stream collected by the garbage collector before both
 * directions ended is cancelled (the core drops its last handle).
 */
class Stream {
  constructor (nstream) {
    this._n = nstream
    /** The path the stream was opened on. */
    this.path = nstream.path
    /** The endpoint at the other side. */
    this.peer = nstream.peer
    // An AbortSignal's listener (openStream's `signal`), removed once the
    // stream is known ended here; `_readEnd`/`_writeEnd` track that.
    this._unwatch = null
    this._readEnd = false
    this._writeEnd = false
  }

  /** Milliseconds before the stream's deadline, or `null` without one. */
  get remainingMs () { return this._n.remainingMs }

  _watch (signal) {
    const onAbort = () => this.cancel()
    if (signal.aborted) { onAbort(); return }
    signal.addEventListener('abort', onAbort, { once: true })
    this._unwatch = () => signal.removeEventListener('abort', onAbort)
  }

  _ended (read) {
    if (read) this._readEnd = true
    else this._writeEnd = true
    if (this._unwatch && this._readEnd && this._writeEnd) { this._unwatch(); this._unwatch = null }
  }

  /** Sends one message; resolves once the receiver's window let it go (only this stream waits). */
  send (payload) {
    let p
    try {
      p = this._n.send(data(payload))
    } catch (e) {
      if (this._unwatch) this._ended(false)
      return Promise.reject(e)
    }
    if (p == null) return DONE
    if (!this._unwatch) return p
    return p.catch((e) => { this._ended(false); throw e })
  }

  /** The next message (Buffer), or `null` once the other side ended its direction and all it sent was read. */
  recv () {
    let r
    try {
      r = this._n.recv()
    } catch (e) {
      if (this._unwatch) this._ended(true)
      return Promise.reject(e)
    }
    if (!(r instanceof Promise)) {
      if (r === null && this._unwatch) this._ended(true)
      return Promise.resolve(r)
    }
    if (!this._unwatch) return r
    return r.then((b) => { if (b === null) this._ended(true); return b }, (e) => { this._ended(true); throw e })
  }

  /** Ends this side's direction: the other side reads what was sent, then `null`. Receiving goes on. Idempotent. */
  end () {
    this._n.end()
    if (this._unwatch) this._ended(false)
  }

  /** Ends the whole stream: both sides' pending and later calls fail with `CANCELLED`. Idempotent. */
  cancel () {
    this._n.cancel()
    if (this._unwatch) { this._unwatch(); this._unwatch = null }
  }

  async next () {
    const b = await this.recv()
    return b === null ? END : { done: false, value: b }
  }

  /** Leaving a `for await` loop early cancels the stream (like a Node Readable's destroy). */
  async return () {
    this.cancel()
    return END
  }

  [Symbol.asyncIterator] () { return this }

  /**
   * A Node `Duplex` over this stream: writes are sent (a write's callback
   * runs once `send()` resolved, so the core's credit is the backpressure),
   * `end()` ends this side's direction, reads come from `recv()` while the
   * readable side has room, and `destroy()` cancels the stream unless both
   * directions ended. In byte mode (the default) message boundaries are not
   * kept; `options` go to the Duplex constructor (`objectMode`,
   * `readableHighWaterMark`, ...).
   */
  toDuplex (options) {
    const s = this
    let reading = false
    const d = new Duplex({
      ...options,
      async read () {
        if (reading) return
        reading = true
        try {
          for (;;) {
            const b = await s.recv()
            if (b === null) { d.push(null); return }
            if (!d.push(b)) return
          }
        } catch (e) {
          d.destroy(e)
        } finally {
          reading = false
        }
      },
      write (chunk, encoding, cb) {
        s.send(chunk).then(() => cb(), cb)
      },
      final (cb) {
        s.end()
        cb()
      },
      destroy (err, cb) {
        // Does nothing once both directions ended and all was read.
        s.cancel()
        cb(err)
      }
    })
    return d
  }
}

/**
 * A pattern served with streams: the handler runs per opened stream, at
 * most `maxConcurrent` at once (the core's handler runner). Keeps the
 * process alive while open.
 */
class StreamService extends Pulled {
  constructor (ep, nsvc, handler) {
    super()
    this._ep = ep
    this._n = nsvc
    this.pattern = nsvc.pattern
    this._waiting = null
    this._pull = handler === null
    if (!this._pull) this._drive(handler)
  }

  /**
   * The next opened stream of a service made without a handler, as
   * `[request, stream]` (this side's stream is yours: `end()` or
   * `cancel()` it), or `null` once the service is closed.
   */
  recv () { return this._take() }

  _wrap (ninc) { return [new StreamRequest(ninc), new Stream(ninc.stream())] }

  /** Streams waiting for a free handler slot. */
  get queued () { return this._n.queued }

  async _drive (handler) {
    for (;;) {
      const ninc = await this._n.next()
      if (ninc === null) return
      this._run(handler, ninc)
    }
  }

  async _run (handler, ninc) {
    const ns = ninc.stream()
    let code
    let msg
    try {
      await handler(new StreamRequest(ninc), new Stream(ns))
    } catch (e) {
      code = e && typeof e.code === 'string' && codes[e.code] ? e.code : 'HANDLER_ERROR'
      msg = e && e.message !== undefined ? String(e.message) : String(e)
    }
    // The handler's handle goes now, not when collected; then the core
    // finishes this side (or ends the stream with the handler's code) and
    // cancels a stream whose other direction is still open.
    ns.release()
    ninc.done(code, msg)
  }

  /** Stops serving: streams still queued are refused with `NO_RESPONDERS`; running handlers go on. Idempotent. */
  close () { this._n.close() }
}

/**
 * A netchan endpoint. Emits each core event under its kind in camelCase
 * (`peerUp`, `peerDown`, `dropped`, `reconnecting`, `reconnectAbandoned`,
 * `suspended`, `resumed`, `connectionError`, `denied`), `missed`, `peer` (peerUp and
 * peerDown) and `event` (all of them), and `error` for exceptions thrown
 * (or promises rejected) by subscription callbacks and event listeners, and
 * for service handler replies that are not payloads.
 */
class Endpoint extends EventEmitter {
  /** @param {object} [options] see EndpointOptions in netchan.d.ts */
  constructor (options) {
    // captureRejections: a promise rejected by an async listener reaches
    // the method below (reported like a thrown exception) instead of
    // becoming an unhandled rejection, which would end the process.
    super({ captureRejections: true })
    if (typeof options === 'string') options = { name: options }
    checkKeys(options, ENDPOINT_KEYS, 'new Endpoint')
    if (options && options.tls) checkKeys(options.tls, TLS_KEYS, 'new Endpoint: tls')
    this._n = new native.NativeEndpoint(options)
    this._keep = null
    this._unref = false
    this._evs = null
    this._closed = false
    this.on('newListener', (name) => {
      if (EVENT_NAMES.has(name) && !this._evs && !this._closed) this._startEvents()
    })
    this.on('removeListener', () => {
      if (this._evs && ![...EVENT_NAMES].some((n) => this.listenerCount(n) > 0)) {
        this._evs.close()
        this._evs = null
      }
    })
  }

  _startEvents () {
    // Each name is emitted on its own: a listener that throws is reported
    // and the event still reaches the listeners of its other names.
    const emit = (name, ev) => {
      try {
        this.emit(name, ev)
      } catch (e) {
        report(this, e, `'${name}' event listener`)
      }
    }
    this._evs = this._n.events((ev) => {
      emit(ev.type, ev)
      if (ev.type === 'peerUp' || ev.type === 'peerDown') emit('peer', ev)
      emit('event', ev)
    })
  }

  /** A listener's rejected promise (see captureRejections above). */
  [Symbol.for('nodejs.rejection')] (err, event) {
    if (event === 'error') {
      // Re-emitting 'error' would call the failing listener again.
      const text = err && err.stack ? err.stack : String(err)
      process.emitWarning(`netchan: exception in 'error' event listener: ${text}`, { code: 'NETCHAN_CALLBACK_ERROR' })
    } else {
      report(this, err, `'${event}' event listener`)
    }
  }

  /** The endpoint's name. */
  get name () { return this._n.name }
  /** True once closed. */
  get closed () { return this._n.isClosed }
  /** The busy-poll window in microseconds (the `busyPollUs` option, else the core's default). */
  get busyPollUs () { return this._n.busyPollUs }

  /** Listens on `tcp://HOST:PORT` (port 0: any) or `unix:///path`; resolves with the bound address. */
  async listen (addr) {
    const bound = await this._n.listen(addr)
    if (!this._keep && !this._closed) {
      this._keep = setInterval(() => {}, 1 << 30)
      if (this._unref) this._keep.unref()
    }
    return bound
  }

  /**
   * Lets the process exit while only this endpoint's listeners,
   * subscriptions and services are left (like net.Server#unref); any other
   * pending call (a request, connect, ping, a publish waiting for room, an
   * openStream, ...) still keeps it alive until it settles.
   */
  unref () {
    this._unref = true
    if (this._keep) this._keep.unref()
    this._n.setRef(false)
    return this
  }

  /** Undoes unref(). */
  ref () {
    this._unref = false
    if (this._keep) this._keep.ref()
    this._n.setRef(true)
    return this
  }

  /** Connects to an endpoint listening at `addr` and keeps it connected; resolves with the peer. */
  connect (addr) { return this._n.connect(addr) }

  /** Redials every lost peer now, skipping the backoff delay. */
  reconnectNow () { this._n.reconnectNow() }

  /**
   * To the background: closes every link and listener, keeps subscriptions,
   * services, declarations, messages held for dialled peers and counters;
   * emits `suspended`. Idempotent.
   */
  suspend () { return this._n.suspend() }

  /** Back: listens and dials again at once; emits `resumed`. Does nothing if not suspended. */
  resume () { return this._n.resume() }

  /** The network changed: drops every link and redials every dialled address now. */
  networkChanged () { return this._n.networkChanged() }

  /**
   * Publishes `payload` on `path`; resolves once every target took it. A
   * bad path or payload throws at once (`INVALID_PATH`,
   * `INVALID_ARGUMENT`), so a forgotten `await` cannot turn it into an
   * unhandled rejection; what happens on the way rejects.
   */
  publish (path, payload) { return publishNow(this._n, path, payload) }

  /** Publishes without waiting; throws BUFFER_FULL if a target had no room. */
  tryPublish (path, payload) { this._n.tryPublish(path, data(payload)) }

  /**
   * Publishes every payload of the iterable `payloads` on `path`, in
   * order, in one call into the core; resolves with how many.
   */
  publishMany (path, payloads) {
    try {
      if (payloads == null || typeof payloads[Symbol.iterator] !== 'function') {
        throw argError('payloads must be an iterable of payloads')
      }
      const all = []
      for (const p of payloads) {
        const d = data(p)
        all.push(d === undefined ? EMPTY : d)
      }
      const r = this._n.publishMany(path, all)
      return typeof r === 'number' ? Promise.resolve(r) : r
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Publishes a JS value as msgpack (readable by every binding's obj()). */
  publishObj (path, value) {
    let b
    try { b = pack(value) } catch (e) { return Promise.reject(e) }
    return this.publish(path, b)
  }

  /**
   * Subscribes to `pattern` (`*` one segment, `**` any). With a callback,
   * calls it for each message in order (an async callback is awaited);
   * without, returns an async iterable. Options: capacity, maxBytes,
   * overflow ('block' | 'drop_oldest' | 'drop_newest' | 'disconnect').
   */
  subscribe (pattern, callback, options) {
    if (callback !== undefined && callback !== null && typeof callback === 'object') {
      options = callback
      callback = undefined
    }
    if (callback !== undefined && callback !== null && typeof callback !== 'function') {
      throw argError('subscribe(pattern, callback?, options?): callback must be a function')
    }
    checkKeys(options, SUBSCRIBE_KEYS, 'subscribe')
    const nsub = this._n.subscribe(pattern, options)
    return new Subscription(this, nsub, callback)
  }

  /** Serves `pattern`: `handler(req)` returns (or resolves with) the reply; a throw fails the request. */
  serve (pattern, handler, options) {
    if (options === undefined && handler !== null && typeof handler === 'object') { options = handler; handler = undefined }
    checkKeys(options, SERVE_KEYS, 'serve')
    if (handler === undefined || handler === null) {
      const o = options || {}
      return new Service(this, this._n.serve(pattern, { queue: o.queue, queueBytes: o.queueBytes }), null, 0)
    }
    if (typeof handler !== 'function') throw argError('serve(pattern, handler?, options?): handler must be a function')
    const o = options || {}
    let max = 256
    if (o.maxConcurrent !== undefined) {
      if (!Number.isInteger(o.maxConcurrent) || o.maxConcurrent < 1) {
        throw argError(`serve: maxConcurrent must be a whole number >= 1, not ${o.maxConcurrent}`)
      }
      max = o.maxConcurrent
    }
    return new Service(this, this._n.serve(pattern, { queue: o.queue, queueBytes: o.queueBytes }), handler, max)
  }

  /**
   * Opens a bidirectional stream on `path` to one endpoint serving it,
   * `first` its first payload; resolves with the `Stream` once the server
   * accepted it. Options: timeoutMs (the stream's deadline: both sides end
   * with TIMEOUT), openTimeoutMs (default 10000), window (bytes the server
   * may send before this side reads; default the endpoint's streamWindow),
   * waitForResponder, signal (AbortSignal: aborts the opening, then
   * cancels the stream). `openStream(path, options)` works too.
   */
  openStream (path, first, options) {
    if (options === undefined && isOptions(first)) { options = first; first = undefined }
    checkKeys(options, STREAM_KEYS, 'openStream')
    const { timeoutMs, openTimeoutMs, window, waitForResponder = false, signal } = options || {}
    const o = { timeoutMs, openTimeoutMs, window, waitForResponder }
    let d
    try { d = data(first) } catch (e) { return Promise.reject(e) }
    if (!signal) {
      try { return this._n.openStream(path, d, o).then((n) => new Stream(n)) } catch (e) { return Promise.reject(e) }
    }
    if (signal.aborted) return Promise.reject(cancelled(signal, 'opening the stream was aborted'))
    const token = new native.CancelToken()
    const onAbort = () => token.cancel()
    signal.addEventListener('abort', onAbort, { once: true })
    let p
    try {
      p = this._n.openStream(path, d, o, token)
    } catch (e) {
      signal.removeEventListener('abort', onAbort)
      return Promise.reject(e)
    }
    return p.then((n) => {
      signal.removeEventListener('abort', onAbort)
      const s = new Stream(n)
      s._watch(signal)
      return s
    }, (e) => {
      signal.removeEventListener('abort', onAbort)
      throw e && e.code === 'CANCELLED' && signal.aborted ? aborted(e, signal) : e
    })
  }

  /**
   * Serves streams on `pattern`: `handler(req, stream)` runs per opened
   * stream. When it returns (or its promise resolves) this side is ended
   * (`stream.end()`), and a stream whose other direction is still open is
   * cancelled; a throw or rejection ends the stream with the error's code
   * (a netchan code, else HANDLER_ERROR). Options: maxConcurrent (default
   * 256), queue, queueBytes, window.
   */
  serveStream (pattern, handler, options) {
    if (options === undefined && handler !== null && typeof handler === 'object') { options = handler; handler = undefined }
    checkKeys(options, STREAM_SERVE_KEYS, 'serveStream')
    if (handler === undefined || handler === null) {
      const o = options || {}
      const n = this._n.serveStreamPull(pattern, { maxConcurrent: o.maxConcurrent, queue: o.queue, queueBytes: o.queueBytes, window: o.window })
      return new StreamService(this, n, null)
    }
    if (typeof handler !== 'function') throw argError('serveStream(pattern, handler?, options?): handler must be a function')
    const o = options || {}
    if (o.maxConcurrent !== undefined && (!Number.isInteger(o.maxConcurrent) || o.maxConcurrent < 1)) {
      throw argError(`serveStream: maxConcurrent must be a whole number >= 1, not ${o.maxConcurrent}`)
    }
    const n = this._n.serveStream(pattern, { maxConcurrent: o.maxConcurrent, queue: o.queue, queueBytes: o.queueBytes, window: o.window })
    return new StreamService(this, n, handler)
  }

  /** Declares a publisher on `pattern` (discovery); close() the result to withdraw it. */
  declarePublisher (pattern) {
    return new Publisher(pattern, this._n.declarePublisher(pattern))
  }

  /**
   * Sends a request and resolves with the reply (Buffer). Options:
   * timeoutMs (default 5000), signal (AbortSignal: rejects with CANCELLED),
   * waitForResponder (wait for a server to appear instead of NO_RESPONDERS).
   */
  request (path, payload, options = {}) {
    checkKeys(options, REQUEST_KEYS, 'request')
    const { timeoutMs = 5000, signal, waitForResponder = false } = options
    let d
    try { d = data(payload) } catch (e) { return Promise.reject(e) }
    if (!signal) {
      try { return this._n.request(path, d, timeoutMs, waitForResponder) } catch (e) { return Promise.reject(e) }
    }
    if (signal.aborted) return Promise.reject(aborted(new Error('the request was aborted'), signal))
    const token = new native.CancelToken()
    const onAbort = () => token.cancel()
    signal.addEventListener('abort', onAbort, { once: true })
    let p
    try {
      p = this._n.request(path, d, timeoutMs, waitForResponder, token)
    } catch (e) {
      signal.removeEventListener('abort', onAbort)
      return Promise.reject(e)
    }
    return p.then((v) => {
      signal.removeEventListener('abort', onAbort)
      return v
    }, (e) => {
      signal.removeEventListener('abort', onAbort)
      throw e && e.code === 'CANCELLED' && signal.aborted ? aborted(e, signal) : e
    })
  }

  /** request() with msgpack: sends pack(value), resolves with unpack(reply). */
  async requestObj (path, value, options) {
    return unpack(await this.request(path, pack(value), options))
  }

  /** Round-trip time to the connected peer named `peer`, in milliseconds. */
  ping (peer) { return this._n.ping(peer) }
  /** The connected peers: [{name, addr, inbound, identity}]. */
  peers () { return this._n.peers() }
  /** Replaces the access rules: a rules file's path or the rules' text; null removes them (docs/SECURITY.md). */
  setAcl (rules) { return this._n.setAcl(rules ?? null) }
  /** Reads the TLS, shared-key and rules files again. */
  reloadKeys () { return this._n.reloadKeys() }

  /**
   * Replaces the TLS settings (the `tls` option's shape); `null` removes
   * them. Connections made from now on use the new ones; on an error the
   * settings in use stay.
   */
  setTls (tls) {
    if (tls !== null && tls !== undefined) checkKeys(tls, TLS_KEYS, 'setTls')
    return this._n.setTls(tls ?? null)
  }

  /** Replaces the shared keys (a key file's path or the keys' text); `null` removes them. */
  setSharedKeys (keys) {
    if (keys !== null && keys !== undefined && typeof keys !== 'string') throw argError('setSharedKeys: keys must be a string (a path or the keys\' text) or null')
    return this._n.setSharedKeys(keys ?? null)
  }
  /** Failed connection attempts per remote address, most first: [{addr, count}]. */
  failedAttempts () { return this._n.failedAttempts() }
  /** Counters in total, per peer and per subscription. */
  stats () { return this._n.stats() }
  /** True if a message on `path` would reach a subscriber now. */
  hasSubscribers (path) { return this._n.hasSubscribers(path) }
  /** Resolves true once `path` has a subscriber, false after timeoutMs. */
  waitForSubscribers (path, timeoutMs = 5000) { return this._n.waitForSubscribers(path, timeoutMs) }
  /** True if a request on `path` would find a server now. */
  hasServers (path) { return this._n.hasServers(path) }
  /** Resolves true once `path` has a server, false after timeoutMs. */
  waitForServers (path, timeoutMs = 5000) { return this._n.waitForServers(path, timeoutMs) }
  /** Names of endpoints subscribed to something overlapping `pattern`. */
  subscribers (pattern) { return this._n.subscribers(pattern) }
  /** Names of endpoints that declared a publisher overlapping `pattern`. */
  publishers (pattern) { return this._n.publishers(pattern) }
  /** Names of endpoints serving something overlapping `pattern`. */
  servers (pattern) { return this._n.servers(pattern) }
  /** Names of endpoints serving streams on something overlapping `pattern`. */
  streamServers (pattern) { return this._n.streamServers(pattern) }

  /**
   * Closes: stops listening, tells peers, fails pending requests with
   * CLOSED, ends subscriptions and services. Idempotent.
   */
  async close () {
    this._closed = true
    if (this._keep) { clearInterval(this._keep); this._keep = null }
    await this._n.close()
    if (this._evs) { this._evs.close(); this._evs = null }
  }
}

if (Symbol.asyncDispose) {
  Endpoint.prototype[Symbol.asyncDispose] = function () { return this.close() }
}

/** A plain object of options (not a payload). */
function isOptions (x) {
  return x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype
}

/**
 * What an aborted call rejects with, as fetch and timers do: an
 * `AbortError` (code `CANCELLED`), or a `TimeoutError` (code `TIMEOUT`)
 * when the signal came from `AbortSignal.timeout()`; `cause` is the
 * signal's reason.
 */
function aborted (e, signal) {
  const timedOut = signal.reason != null && signal.reason.name === 'TimeoutError'
  e.name = timedOut ? 'TimeoutError' : 'AbortError'
  e.code = timedOut ? 'TIMEOUT' : 'CANCELLED'
  if (signal.reason !== undefined) e.cause = signal.reason
  return e
}

function cancelled (signal, what = 'the request was aborted') {
  return aborted(new Error(what), signal)
}

module.exports = {
  Publisher,
  Endpoint,
  Subscription,
  Service,
  Request,
  Message,
  Stream,
  StreamService,
  StreamRequest,
  codes,
  pack,
  unpack,
  version: require('./package.json').version
}
