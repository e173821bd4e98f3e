'use strict'
// Bidirectional streams (the core's Stream): openStream / serveStream over
// TCP and Unix sockets, credit per stream, half-close, cancel, deadline,
// refusals, abandoned streams and the Duplex adapter. Every wait is bounded
// by a watchdog; no test sleeps.
const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const v8 = require('node:v8')
const vm = require('node:vm')
const { Readable, Writable, Transform } = require('node:stream')
const { pipeline } = require('node:stream/promises')
const { netchan, pair, within, rejectsWith, nextTurn, until, TRANSPORTS } = require('./helpers.js')
// This system's same-host transport: Unix sockets, or named pipes on Windows.
const LOCAL = TRANSPORTS[1]
const { Endpoint } = netchan

const WATCHDOG = 20000

/** A promise and its resolve, for gates a test opens itself. */
function gate () {
  let open
  const p = new Promise((resolve) => { open = resolve })
  return { p, open }
}

/** Resolves with the code a promise rejects with (fails if it fulfils). */
async function codeOf (p) {
  try {
    await p
  } catch (e) {
    assert.ok(e instanceof Error)
    return e.code
  }
  assert.fail('expected a rejection')
}

for (const transport of TRANSPORTS) {
  test.describe(`streams over ${transport}`, () => {
    let p
    test.beforeEach(async () => { p = await pair(transport) })
    test.afterEach(async () => { await p.close() })

    test('a stream service without a handler hands out its streams: recv, for await, each owned by its taker', async () => {
      const svc = p.server.serveStream('pull/*', { queue: 4 })
      await until(() => p.client.streamServers('pull/**').includes(p.server.name), 'the stream service to be declared')
      const opening = p.client.openStream('pull/a', 'hello')
      const taken = await within(svc.recv(), WATCHDOG, 'recv')
      const [req, stream] = taken
      assert.equal(req.path, 'pull/a')
      assert.equal(req.text(), 'hello')
      assert.equal(req.sender, p.client.name)
      const s = await within(opening, WATCHDOG, 'openStream')
      await s.send('ping')
      assert.equal((await stream.recv()).toString(), 'ping')
      await stream.send('pong')
      assert.equal((await s.recv()).toString(), 'pong')
      s.end()
      assert.equal(await stream.recv(), null) // the opener's direction ended
      stream.end()
      assert.equal(await s.recv(), null)
      // for await takes the next one; leaving the loop stops serving.
      const second = p.client.openStream('pull/b')
      for await (const [r, st] of svc) {
        assert.equal(r.path, 'pull/b')
        st.cancel()
        break
      }
      assert.equal(await codeOf(second.then((x) => x.recv())), 'CANCELLED')
      assert.equal(await svc.recv(), null)
      // A handler service cannot be pulled from.
      const handled = p.server.serveStream('h/*', async () => {})
      await rejectsWith(handled.recv(), 'INVALID_ARGUMENT')
      handled.close()
    })

    test('a stream echoes byte for byte both ways and half-closes', async () => {
      const seen = []
      p.server.serveStream('echo/*', async (req, stream) => {
        seen.push({ path: req.path, sender: req.sender, first: req.text(), peer: stream.peer, streamPath: stream.path, remaining: req.remainingMs })
        for await (const chunk of stream) await stream.send(chunk)
        // The opener ended its direction; this one is still open.
        await stream.send('bye')
      })
      await until(() => p.client.streamServers('echo/**').includes(p.server.name), 'the stream service to be declared')
      const s = await within(p.client.openStream('echo/a', 'first'), WATCHDOG, 'openStream')
      assert.equal(s.path, 'echo/a')
      assert.equal(s.peer, p.server.name)
      assert.equal(s.remainingMs, null)
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
      const sent = [Buffer.from('buf'), new Uint8Array([1, 2, 3]), 'héllo', '', all, new Uint16Array([0x0201]).buffer, Buffer.alloc(100000, 7)]
      for (const m of sent) await s.send(m)
      s.end()
      s.end() // idempotent
      await rejectsWith(s.send('late'), 'INVALID_ARGUMENT')
      const got = []
      for await (const b of s) got.push(b)
      const expect = [Buffer.from('buf'), Buffer.from([1, 2, 3]), Buffer.from('héllo'), Buffer.alloc(0), all, Buffer.from([1, 2]), Buffer.alloc(100000, 7), Buffer.from('bye')]
      assert.equal(got.length, expect.length)
      for (let i = 0; i < expect.length; i++) assert.ok(Buffer.isBuffer(got[i]) && got[i].equals(expect[i]), `message ${i}`)
      assert.equal(await s.recv(), null, 'the end stays the end')
      assert.deepEqual(seen, [{ path: 'echo/a', sender: p.client.name, first: 'first', peer: p.client.name, streamPath: 'echo/a', remaining: null }])
    })

    test('16 MiB cross a stream with a 64 KiB window each way while a request on the same link answers', async () => {
      const WINDOW = 64 * 1024
      const CHUNK = 64 * 1024
      const data = crypto.randomBytes(16 * 1024 * 1024)
      const g = gate()
      p.server.serve('still', () => 'here')
      p.server.serveStream('bulk', async (req, stream) => {
        let first = true
        for await (const c of stream) {
          if (first) { first = false; await g.p }
          await stream.send(c)
        }
        stream.end()
      }, { window: WINDOW })
      await until(() => p.client.streamServers('bulk').length === 1 && p.client.hasServers('still'), 'the services to be declared')
      const s = await p.client.openStream('bulk', undefined, { window: WINDOW })
      let sentBytes = 0
      const writer = (async () => {
        for (let off = 0; off < data.length; off += CHUNK) {
          await s.send(data.subarray(off, off + CHUNK))
          sentBytes += CHUNK
        }
        s.end()
      })()
      const hash = crypto.createHash('sha256')
      let received = 0
      const reader = (async () => {
        for await (const b of s) { hash.update(b); received += b.length }
      })()
      // The handler holds the first chunk: the opener's sends stop at the
      // server's window (the last one may pass it by one message), and a
      // request on the same link is answered meanwhile.
      assert.equal(String(await within(p.client.request('still', '', { timeoutMs: 10000 }), WATCHDOG, 'a request')), 'here')
      assert.ok(sentBytes <= CHUNK + WINDOW + CHUNK, `sent ${sentBytes} bytes past a ${WINDOW}-byte window`)
      g.open()
      await within(Promise.all([writer, reader]), 60000, 'the transfer')
      assert.equal(received, data.length)
      assert.equal(hash.digest('hex'), crypto.createHash('sha256').update(data).digest('hex'))
    })

    test('cancel from either side: the other side sees CANCELLED after what was sent before', async () => {
      const handlerSaw = []
      const cancelledHere = gate()
      p.server.serveStream('c/*', async (req, stream) => {
        if (req.path === 'c/by-client') {
          handlerSaw.push(String(await stream.recv()))
          handlerSaw.push(await codeOf(stream.recv()))
          handlerSaw.push(await codeOf(stream.send('x')))
          cancelledHere.open()
        } else {
          await stream.send('last words')
          stream.cancel()
          stream.cancel() // idempotent
          handlerSaw.push(await codeOf(stream.send('more')))
        }
      })
      await until(() => p.client.streamServers('c/*').length === 1, 'the stream service to be declared')

      const a = await p.client.openStream('c/by-client')
      await a.send('before')
      // A receive pending when the stream is cancelled fails too.
      const pending = a.recv()
      a.cancel()
      assert.equal(await codeOf(pending), 'CANCELLED')
      assert.equal(await codeOf(a.send('after')), 'CANCELLED')
      await within(cancelledHere.p, WATCHDOG, 'the handler to see the cancel')
      assert.deepEqual(handlerSaw.splice(0), ['before', 'CANCELLED', 'CANCELLED'])

      const b = await p.client.openStream('c/by-server')
      assert.equal(String(await b.recv()), 'last words')
      assert.equal(await within(codeOf(b.recv()), WATCHDOG, 'the cancel to arrive'), 'CANCELLED')
      assert.equal(await codeOf(b.send('x')), 'CANCELLED')
      assert.deepEqual(handlerSaw, ['CANCELLED'])
    })

    test('a handler error ends the stream with its code, HANDLER_ERROR when it has none', async () => {
      p.server.serveStream('fail/*', async (req, stream) => {
        await stream.send('partial')
        if (req.path === 'fail/coded') {
          const e = new Error('no such thing')
          e.code = 'INVALID_PATH'
          throw e
        }
        throw new Error('boom')
      })
      await until(() => p.client.streamServers('fail/*').length === 1, 'the stream service to be declared')
      for (const [path, code, detail] of [['fail/coded', 'INVALID_PATH', /no such thing/], ['fail/plain', 'HANDLER_ERROR', /boom/]]) {
        const s = await p.client.openStream(path)
        assert.equal(String(await s.recv()), 'partial')
        await assert.rejects(within(s.recv(), WATCHDOG, 'the end'), (e) => {
          assert.equal(e.code, code)
          assert.match(e.message, detail)
          return true
        })
      }
    })

    test('a deadline ends the stream on both sides with TIMEOUT', async () => {
      const handler = gate()
      p.server.serveStream('slow', async (req, stream) => {
        const left = req.remainingMs
        handler.open({ left, code: await codeOf(stream.recv()) })
      })
      await until(() => p.client.streamServers('slow').length === 1, 'the stream service to be declared')
      const s = await p.client.openStream('slow', '', { timeoutMs: 300 })
      const left = s.remainingMs
      assert.ok(typeof left === 'number' && left <= 300, `remainingMs ${left}`)
      assert.equal(await within(codeOf(s.recv()), WATCHDOG, 'the deadline'), 'TIMEOUT')
      assert.equal(await codeOf(s.send('x')), 'TIMEOUT')
      const h = await within(handler.p, WATCHDOG, 'the handler')
      assert.equal(h.code, 'TIMEOUT')
      assert.ok(typeof h.left === 'number' && h.left <= 300, `handler remainingMs ${h.left}`)
    })

    test('a handler that never reads holds back only its own stream', async () => {
      const WINDOW = 16 * 1024
      const CHUNK = 4 * 1024
      const stalled = gate()
      p.server.serveStream('stall', async (req, stream) => { await stalled.p }, { window: WINDOW })
      p.server.serveStream('echo', async (req, stream) => { for await (const c of stream) await stream.send(c) })
      p.server.serve('still', () => 'here')
      await until(() => p.client.streamServers('**').length === 1 && p.client.hasServers('still'), 'the services to be declared')
      const st = await p.client.openStream('stall')
      let sentBytes = 0
      const writer = (async () => {
        for (;;) {
          await st.send(Buffer.alloc(CHUNK, 1))
          sentBytes += CHUNK
        }
      })()
      // Another stream and a request on the same link go on meanwhile.
      const e = await p.client.openStream('echo')
      await e.send('ping')
      assert.equal(String(await within(e.recv(), WATCHDOG, 'the echo')), 'ping')
      e.end()
      assert.equal(await e.recv(), null)
      assert.equal(String(await p.client.request('still')), 'here')
      // The stalled stream's sends stopped at its window (plus one message).
      assert.ok(sentBytes <= WINDOW + CHUNK, `sent ${sentBytes} bytes into a ${WINDOW}-byte window`)
      st.cancel()
      assert.equal(await within(codeOf(writer), WATCHDOG, 'the blocked send to fail'), 'CANCELLED')
      stalled.open()
    })
  })
}

test('opening without a server fails with NO_RESPONDERS; waitForResponder waits for one', async () => {
  const { server, client, close } = await pair('tcp')
  try {
    await rejectsWith(client.openStream('nobody/here'), 'NO_RESPONDERS')
    assert.deepEqual(client.streamServers('**'), [])
    await rejectsWith(client.openStream('nobody/here', { waitForResponder: true, openTimeoutMs: 50 }), 'NO_RESPONDERS')
    const opening = client.openStream('late', 'x', { waitForResponder: true, openTimeoutMs: 15000 })
    server.serveStream('late', async (req, stream) => { await stream.send(req.payload) })
    const s = await within(opening, WATCHDOG, 'the opening to find the late server')
    assert.equal(String(await s.recv()), 'x')
    assert.equal(await s.recv(), null)
    assert.deepEqual(client.streamServers('**'), [server.name])
    // Arguments the core refuses.
    await rejectsWith(client.openStream('bad//path'), 'INVALID_PATH')
    await rejectsWith(client.openStream('late', '', { window: 0 }), 'INVALID_ARGUMENT')
    await rejectsWith(client.openStream('late', '', { timeoutMs: -1 }), 'INVALID_ARGUMENT')
    await rejectsWith(client.openStream('late', { payload: 1 }, {}), 'INVALID_ARGUMENT')
    assert.throws(() => server.serveStream('x', 42), (e) => e.code === 'INVALID_ARGUMENT') // null: pulled
    assert.throws(() => server.serveStream('x', async () => {}, { maxConcurrent: 0 }), (e) => e.code === 'INVALID_ARGUMENT')
    assert.throws(() => server.serveStream('x', async () => {}, { window: 0 }), (e) => e.code === 'INVALID_ARGUMENT')
  } finally {
    await close()
  }
})

test('a stream service with maxConcurrent 1 and queue 1 runs one handler, queues one and refuses the rest with BUFFER_FULL', async () => {
  const { server, client, close } = await pair('tcp')
  try {
    let running = 0
    let peak = 0
    const release = gate()
    const svc = server.serveStream('one', async (req, stream) => {
      running++
      peak = Math.max(peak, running)
      await release.p
      await stream.send(req.payload)
      running--
    }, { maxConcurrent: 1, queue: 1 })
    await until(() => client.streamServers('one').length === 1, 'the stream service to be declared')
    const first = await client.openStream('one', 'a')
    await until(() => running === 1, 'the first handler')
    // The second waits in the queue: its opening is pending until a
    // handler takes it; the third is refused at once.
    const second = client.openStream('one', 'b')
    await until(() => svc.queued === 1, 'the second stream to be queued')
    await rejectsWith(client.openStream('one', 'c'), 'BUFFER_FULL')
    // A queued stream whose opener gives up first is not waited for.
    release.open()
    assert.equal(String(await first.recv()), 'a')
    const s2 = await within(second, WATCHDOG, 'the queued stream to be accepted')
    assert.equal(String(await s2.recv()), 'b')
    assert.equal(peak, 1)
    assert.ok(server.stats().total.requestsRefused >= 1)
  } finally {
    await close()
  }
})

test('an opening that no handler takes within openTimeoutMs fails with TIMEOUT', async () => {
  const { server, client, close } = await pair(LOCAL)
  try {
    const release = gate()
    server.serveStream('busy', async () => { await release.p }, { maxConcurrent: 1 })
    await until(() => client.streamServers('busy').length === 1, 'the stream service to be declared')
    const first = await client.openStream('busy')
    await rejectsWith(client.openStream('busy', '', { openTimeoutMs: 100 }), 'TIMEOUT')
    release.open()
    assert.equal(await within(first.recv(), WATCHDOG, 'the end'), null)
  } finally {
    await close()
  }
})

test('an AbortSignal aborts openStream with CANCELLED, then cancels the open stream', async () => {
  const { server, client, close } = await pair('tcp')
  try {
    const ac0 = new AbortController()
    ac0.abort(new Error('not today'))
    await assert.rejects(client.openStream('s', '', { signal: ac0.signal }), (e) => e.code === 'CANCELLED' && e.cause.message === 'not today')
    // Aborted while the opening waits for a server.
    const ac1 = new AbortController()
    const opening = client.openStream('s', '', { signal: ac1.signal, waitForResponder: true, openTimeoutMs: 15000 })
    ac1.abort('changed my mind')
    await assert.rejects(opening, (e) => e.code === 'CANCELLED' && e.cause === 'changed my mind')
    // Aborted once open: the stream is cancelled on both sides.
    const saw = gate()
    server.serveStream('s', async (req, stream) => { saw.open(await codeOf(stream.recv())) })
    await until(() => client.streamServers('s').length === 1, 'the stream service to be declared')
    const ac2 = new AbortController()
    const s = await client.openStream('s', '', { signal: ac2.signal })
    ac2.abort()
    assert.equal(await codeOf(s.recv()), 'CANCELLED')
    assert.equal(await within(saw.p, WATCHDOG, 'the handler to see the cancel'), 'CANCELLED')
  } finally {
    await close()
  }
})

test("a handler that returns ends its side; the opener's direction still open is cancelled", async () => {
  const { server, client, close } = await pair('tcp')
  try {
    server.serveStream('short', async (req, stream) => { await stream.send('only this') })
    await until(() => client.streamServers('short').length === 1, 'the stream service to be declared')
    const s = await client.openStream('short')
    // What the handler sent, then the end of its direction...
    assert.equal(String(await s.recv()), 'only this')
    assert.equal(await s.recv(), null)
    // ...and the opener's direction, which the handler left unread, is cancelled.
    // (Sends go on until the cancel, which follows the end, arrives.)
    const code = await within((async () => {
      for (;;) {
        try { await s.send('more') } catch (e) { return e.code }
        await nextTurn()
      }
    })(), WATCHDOG, 'the cancel to arrive')
    assert.equal(code, 'CANCELLED')
  } finally {
    await close()
  }
})

test('a stream dropped by the garbage collector is cancelled at the other side', async () => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc')
  const { server, client, close } = await pair('tcp')
  try {
    const saw = gate()
    server.serveStream('gc', async (req, stream) => {
      assert.equal(String(await stream.recv()), 'hello')
      saw.open(await codeOf(stream.recv()))
    })
    await until(() => client.streamServers('gc').length === 1, 'the stream service to be declared')
    await (async () => {
      const s = await client.openStream('gc')
      await s.send('hello')
    })()
    let code = null
    saw.p.then((c) => { code = c })
    await within((async () => {
      while (code === null) { gc(); await nextTurn() }
    })(), WATCHDOG, 'the collected stream to be cancelled')
    assert.equal(code, 'CANCELLED')
  } finally {
    await close()
  }
})

test('closing the endpoint ends its streams: CLOSED here, the other side sees the end', async () => {
  const { server, client, close } = await pair('tcp')
  try {
    const saw = gate()
    server.serveStream('x', async (req, stream) => { saw.open(await codeOf(stream.recv())) })
    await until(() => client.streamServers('x').length === 1, 'the stream service to be declared')
    const s = await client.openStream('x')
    const pending = codeOf(s.recv())
    await client.close()
    assert.equal(await within(pending, WATCHDOG, 'the pending recv'), 'CLOSED')
    assert.ok(['PEER_LOST', 'CLOSED', 'CANCELLED'].includes(await within(saw.p, WATCHDOG, 'the handler')))
  } finally {
    await close()
  }
})

test('toDuplex: stream/promises pipeline both ways, byte for byte', async () => {
  const { server, client, close } = await pair(LOCAL)
  try {
    server.serveStream('upper', async (req, stream) => {
      const d = stream.toDuplex()
      const upper = new Transform({ transform (chunk, enc, cb) { cb(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1')) } })
      await pipeline(d, upper, d)
    })
    await until(() => client.streamServers('upper').length === 1, 'the stream service to be declared')
    const s = await client.openStream('upper', '', { window: 4096 })
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`chunk ${i} ${'abc'.repeat(i)}\n`, 'latin1'))
    const out = []
    await within(pipeline(Readable.from(chunks), s.toDuplex(), new Writable({ write (c, e, cb) { out.push(c); cb() } })), WATCHDOG, 'the pipeline')
    assert.ok(Buffer.concat(out).equals(Buffer.from(Buffer.concat(chunks).toString('latin1').toUpperCase(), 'latin1')))
  } finally {
    await close()
  }
})

test("toDuplex: a write completes only once the core's credit let it go; destroy() cancels", async () => {
  const { server, client, close } = await pair('tcp')
  try {
    const saw = gate()
    const stall = gate()
    server.serveStream('stall', async (req, stream) => {
      await stall.p
      // What arrived before the cancel, then CANCELLED.
      const got = []
      for (;;) {
        try {
          got.push((await stream.recv()).length)
        } catch (e) {
          saw.open({ got, code: e.code })
          return
        }
      }
    }, { window: 1024 })
    server.serve('still', () => 'here')
    await until(() => client.streamServers('stall').length === 1 && client.hasServers('still'), 'the services to be declared')
    const s = await client.openStream('stall')
    const d = s.toDuplex()
    let done = 0
    const errors = []
    for (let i = 0; i < 8; i++) d.write(Buffer.alloc(4096, i), (e) => { if (e) errors.push(e.code); else done++ })
    assert.equal(String(await client.request('still')), 'here')
    // The first write took the 1 KiB window (and past it); the rest wait.
    assert.equal(done, 1)
    assert.ok(d.writableLength > 0)
    const destroyed = new Promise((resolve) => d.on('close', resolve))
    d.destroy()
    await within(destroyed, WATCHDOG, 'close')
    stall.open()
    assert.deepEqual(await within(saw.p, WATCHDOG, 'the handler to see the cancel'), { got: [4096], code: 'CANCELLED' })
    assert.equal(await codeOf(s.send('x')), 'CANCELLED')
  } finally {
    await close()
  }
})

test('a stream within one endpoint echoes and half-closes', async () => {
  const ep = new Endpoint({ name: 'local-streams' })
  try {
    ep.serveStream('loop', async (req, stream) => { for await (const c of stream) await stream.send(c) })
    const s = await ep.openStream('loop', '', { window: 8 })
    const writer = (async () => { for (let i = 0; i < 100; i++) await s.send(String(i)); s.end() })()
    const got = []
    for await (const b of s) got.push(String(b))
    await writer
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => String(i)))
  } finally {
    await ep.close()
  }
})

test('leaving a for await loop early cancels the stream', async () => {
  const { server, client, close } = await pair('tcp')
  try {
    const saw = gate()
    server.serveStream('many', async (req, stream) => {
      try {
        for (let i = 0; ; i++) await stream.send(String(i))
      } catch (e) {
        saw.open(e.code)
      }
    })
    await until(() => client.streamServers('many').length === 1, 'the stream service to be declared')
    const s = await client.openStream('many')
    for await (const b of s) {
      if (String(b) === '3') break
    }
    assert.equal(await codeOf(s.recv()), 'CANCELLED')
    assert.equal(await within(saw.p, WATCHDOG, 'the handler to see the cancel'), 'CANCELLED')
  } finally {
    await close()
  }
})
