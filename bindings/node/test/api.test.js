'use strict'
// Every API of the Endpoint, over TCP and over Unix sockets.
const test = require('node:test')
const assert = require('node:assert/strict')
const { netchan, pair, addrs, within, TRANSPORTS } = require('./helpers.js')
const { Endpoint, codes } = netchan

async function rejectsWith (p, code) {
  await assert.rejects(p, (e) => {
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`)
    assert.ok(e instanceof Error)
    assert.ok(e.message.length > 0)
    return true
  })
}

for (const transport of TRANSPORTS) {
  test.describe(`over ${transport}`, () => {
    let p
    test.beforeEach(async () => { p = await pair(transport) })
    test.afterEach(async () => { await p.close() })

    test('listen returns the bound address; connect returns the peer', async () => {
      assert.match(p.addr, transport === 'tcp' ? /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/ : /^unix:\/\//)
      assert.deepEqual(p.client.peers().map((x) => x.name), [p.server.name])
      assert.equal(p.client.peers()[0].inbound, false)
      const info = await p.client.connect(p.addr).catch((e) => e)
      // A second connection to the same peer is refused as a duplicate.
      assert.ok(info.code === 'NAME_IN_USE' || info.name === p.server.name)
    })

    test('publish Buffer, Uint8Array, string, ArrayBuffer; subscribe with a callback', async () => {
      const got = []
      const done = new Promise((resolve) => {
        p.server.subscribe('data/*', (m) => { got.push(m); if (got.length === 4) resolve() })
      })
      assert.ok(await p.client.waitForSubscribers('data/x', 5000))
      await p.client.publish('data/buf', Buffer.from('buf'))
      await p.client.publish('data/u8', new Uint8Array([1, 2, 3]))
      await p.client.publish('data/str', 'héllo')
      await p.client.publish('data/ab', new Uint16Array([0x0201]).buffer)
      await within(done, 5000, 'delivery')
      assert.deepEqual(got.map((m) => m.path), ['data/buf', 'data/u8', 'data/str', 'data/ab'])
      assert.equal(got[0].text(), 'buf')
      assert.deepEqual([...got[1].payload], [1, 2, 3])
      assert.equal(got[2].text(), 'héllo')
      assert.equal(got[3].payload.length, 2)
      assert.ok(got.every((m) => m.sender === p.client.name))
    })

    test('for await over a subscription, in order, across batches', async () => {
      const sub = p.server.subscribe('seq/**')
      assert.ok(await p.client.waitForSubscribers('seq/a/b', 5000))
      const N = 2000
      for (let i = 0; i < N; i++) await p.client.publish(i % 2 ? 'seq/a/b' : 'seq/c', String(i))
      let i = 0
      for await (const m of sub) {
        assert.equal(m.text(), String(i))
        if (++i === N) break
      }
      // Breaking out unsubscribed it.
      assert.equal(await sub.recv(), null)
      assert.equal(p.server.stats().subscriptions.length, 0)
    })

    test('recv, tryRecv, and a large payload', async () => {
      const sub = p.server.subscribe('big')
      assert.equal(sub.tryRecv(), null)
      assert.ok(await p.client.waitForSubscribers('big', 5000))
      const big = Buffer.alloc(3 * 1024 * 1024, 7)
      await p.client.publish('big', big)
      const m = await within(sub.recv(), 5000, 'recv')
      assert.equal(m.payload.length, big.length)
      assert.ok(m.payload.equals(big))
      sub.close()
    })

    test('publishObj and msg.obj() round-trip JS values', async () => {
      const sub = p.server.subscribe('obj')
      assert.ok(await p.client.waitForSubscribers('obj', 5000))
      const v = { n: 1, neg: -300, f: 1.5, s: 'x', b: true, nil: null, arr: [1, 'two', [3]], bin: Buffer.from([0, 255]), big: 2n ** 60n }
      await p.client.publishObj('obj', v)
      const got = (await sub.recv()).obj()
      assert.deepEqual(got, { ...v, bin: Buffer.from([0, 255]) })
    })

    test('tryPublish delivers without waiting', async () => {
      const sub = p.server.subscribe('try')
      assert.ok(await p.client.waitForSubscribers('try', 5000))
      p.client.tryPublish('try', 'now')
      assert.equal((await sub.recv()).text(), 'now')
    })

    test('request/reply: sync and async handlers, msgpack, sender and deadline', async () => {
      p.server.serve('echo/*', (req) => {
        assert.equal(req.sender, p.client.name)
        assert.ok(req.remainingMs > 0 && req.remainingMs <= 2000)
        assert.equal(req.cancelled, false)
        return Buffer.concat([Buffer.from(req.path + ':'), req.payload])
      })
      p.server.serve('async', async (req) => req.text().toUpperCase())
      p.server.serve('obj', (req) => netchan.pack({ got: req.obj() }))
      p.server.serve('empty', () => undefined)
      for (const path of ['echo/a', 'async', 'obj', 'empty']) assert.ok(await p.client.waitForServers(path, 5000))
      assert.equal((await p.client.request('echo/a', 'x', { timeoutMs: 2000 })).toString(), 'echo/a:x')
      assert.equal((await p.client.request('async', 'abc')).toString(), 'ABC')
      assert.deepEqual(await p.client.requestObj('obj', [1, 2]), { got: [1, 2] })
      assert.equal((await p.client.request('empty')).length, 0)
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => p.client.request('async', `r${i}`)))
      assert.deepEqual(many.map(String), Array.from({ length: 50 }, (_, i) => `R${i}`))
    })

    test('handler errors reach the caller with their code', async () => {
      p.server.serve('throw', () => { throw new Error('sync failure') })
      p.server.serve('reject', async () => { throw new Error('async failure') })
      p.server.serve('coded', () => { const e = new Error('bad input'); e.code = 'INVALID_ARGUMENT'; throw e })
      p.server.serve('notpayload', () => 42)
      for (const path of ['throw', 'reject', 'coded', 'notpayload']) assert.ok(await p.client.waitForServers(path, 5000))
      await rejectsWith(p.client.request('throw'), 'HANDLER_ERROR')
      await rejectsWith(p.client.request('reject'), 'HANDLER_ERROR')
      await rejectsWith(p.client.request('coded'), 'INVALID_ARGUMENT')
      await rejectsWith(p.client.request('notpayload'), 'INVALID_ARGUMENT')
      const e = await p.client.request('reject').catch((x) => x)
      assert.match(e.message, /async failure/)
    })

    test('NO_RESPONDERS, TIMEOUT, waitForResponder', async () => {
      await rejectsWith(p.client.request('nobody'), 'NO_RESPONDERS')
      p.server.serve('never', () => new Promise(() => {}))
      assert.ok(await p.client.waitForServers('never', 5000))
      await rejectsWith(p.client.request('never', '', { timeoutMs: 50 }), 'TIMEOUT')
      const later = p.client.request('late', 'x', { timeoutMs: 5000, waitForResponder: true })
      p.server.serve('late', (r) => r.payload)
      assert.equal((await later).toString(), 'x')
    })

    test('AbortSignal cancels a request, and the handler sees it', async () => {
      let seen
      const cancelledSeen = new Promise((resolve) => { seen = resolve })
      p.server.serve('hang', (req) => new Promise((resolve) => {
        const t = setInterval(() => { if (req.cancelled) { clearInterval(t); seen(true); resolve('too late') } }, 5)
      }))
      assert.ok(await p.client.waitForServers('hang', 5000))
      const ac = new AbortController()
      const r = p.client.request('hang', '', { timeoutMs: 10000, signal: ac.signal })
      setTimeout(() => ac.abort(new Error('user gave up')), 20)
      await rejectsWith(r, 'CANCELLED')
      assert.equal(await within(cancelledSeen, 5000, 'handler cancellation'), true)
      // An already aborted signal rejects at once.
      await rejectsWith(p.client.request('hang', '', { signal: AbortSignal.abort() }), 'CANCELLED')
    })

    test('ping, stats, discovery', async () => {
      const rtt = await p.client.ping(p.server.name)
      assert.ok(rtt > 0 && rtt < 5000)
      const sub = p.server.subscribe('disc/*')
      const svc = p.server.serve('svc/*', () => 'ok')
      const pub = p.client.declarePublisher('disc/*')
      assert.ok(await p.client.waitForServers('svc/x', 5000))
      assert.ok(p.client.hasServers('svc/x'))
      assert.ok(!p.client.hasServers('other'))
      assert.ok(await p.client.waitForSubscribers('disc/a', 5000))
      assert.ok(p.client.hasSubscribers('disc/a'))
      assert.ok(p.client.subscribers('disc/**').includes(p.server.name))
      assert.ok(p.client.servers('svc/*').includes(p.server.name))
      assert.ok(p.client.publishers('disc/*').includes(p.client.name))
      await p.client.publish('disc/a', '12345')
      assert.equal((await sub.recv()).text(), '12345')
      const s = p.client.stats()
      assert.equal(s.name, p.client.name)
      assert.equal(s.total.msgsOut, 1)
      assert.equal(s.total.bytesOut, 5)
      assert.equal(s.peers[0].name, p.server.name)
      assert.ok(s.peers[0].rttMs > 0)
      const ss = p.server.stats()
      assert.equal(ss.subscriptions[0].pattern, 'disc/*')
      assert.equal(ss.subscriptions[0].delivered, 1)
      pub.close()
      svc.close()
      await within((async () => { while (p.client.hasServers('svc/x')) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 5000, 'withdrawal')
      assert.equal(await p.client.waitForSubscribers('nothing/here', 20), false)
    })

    test('peer events: peer, peerUp, peerDown', async () => {
      const ev = []
      const down = new Promise((resolve) => p.server.on('peerDown', resolve))
      p.server.on('peer', (e) => ev.push(e.type))
      const up = new Promise((resolve) => p.server.once('peerUp', resolve))
      const c2 = new Endpoint({ name: `c2-${transport}` })
      await c2.connect(p.addr)
      const u = await within(up, 5000, 'peerUp')
      assert.equal(u.peer, c2.name)
      await c2.close()
      const d = await within(down, 5000, 'peerDown')
      assert.equal(d.peer, c2.name)
      assert.equal(d.code, 'CLOSED')
      assert.deepEqual(ev, ['peerUp', 'peerDown'])
    })

    test('close ends subscriptions, services and pending requests', async () => {
      const sub = p.client.subscribe('x/**')
      p.server.serve('hang', () => new Promise(() => {}))
      assert.ok(await p.client.waitForServers('hang', 5000))
      const pending = p.client.request('hang', '', { timeoutMs: 10000 })
      pending.catch(() => {})
      const next = sub.recv()
      await p.client.close()
      await rejectsWith(pending, 'CLOSED')
      assert.equal(await next, null)
      assert.equal(p.client.closed, true)
      await rejectsWith(p.client.publish('x/y', ''), 'CLOSED')
      await rejectsWith(p.client.request('hang', ''), 'CLOSED')
      assert.throws(() => p.client.subscribe('x'), { code: 'CLOSED' })
      await p.client.close() // idempotent
    })

    test('server loss fails in-flight requests with PEER_LOST or CLOSED', async () => {
      p.server.serve('hang', () => new Promise(() => {}))
      assert.ok(await p.client.waitForServers('hang', 5000))
      const pending = p.client.request('hang', '', { timeoutMs: 10000 })
      setTimeout(() => p.server.close(), 20)
      const e = await pending.catch((x) => x)
      assert.ok(['PEER_LOST', 'CLOSED'].includes(e.code), e.code)
    })
  })
}

test('error codes equal the core symbolic names', async () => {
  assert.equal(codes.TIMEOUT, 'TIMEOUT')
  assert.equal(codes.NO_RESPONDERS, 'NO_RESPONDERS')
  // The same set as the ErrorCode type in netchan.d.ts: a code the core
  // adds must reach the typings too.
  const dts = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'netchan.d.ts'), 'utf8')
  const typed = dts.split('export type ErrorCode =')[1].split('\n\n')[0].match(/'[A-Z_]+'/g).map((c) => c.slice(1, -1))
  assert.deepEqual(Object.keys(codes).sort(), typed.sort())
  const ep = new Endpoint({ name: 'codes' })
  assert.throws(() => new Endpoint({ name: '' }), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new Endpoint({ overflow: 'sometimes' }), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new Endpoint({ heartbeatIntervalMs: -1 }), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => ep.subscribe('a//b'), { code: 'INVALID_PATH' })
  assert.throws(() => ep.serve('', () => ''), { code: 'INVALID_PATH' })
  assert.throws(() => ep.subscribe('x', 'not a function'), { code: 'INVALID_ARGUMENT' })
  await rejectsWith(ep.publish('bad//path', ''), 'INVALID_PATH')
  await rejectsWith(ep.publish('ok', 12), 'INVALID_ARGUMENT')
  await rejectsWith(ep.listen('http://x'), 'INVALID_ADDRESS')
  await rejectsWith(ep.connect('tcp://127.0.0.1:1'), 'CONNECT_REFUSED')
  await rejectsWith(ep.ping('nobody'), 'UNKNOWN_PEER')
  await rejectsWith(ep.request('x', '', { timeoutMs: 0 }), 'INVALID_ARGUMENT')
  await rejectsWith(ep.request('x', '', { timeoutMs: NaN }), 'INVALID_ARGUMENT')
  const bound = await ep.listen(addrs().unix)
  const other = new Endpoint({ name: 'codes2' })
  await rejectsWith(other.listen(bound), 'ADDRESS_IN_USE')
  await other.close()
  const small = new Endpoint({ name: 'small', maxFrameSize: 65536 })
  const a = await small.listen('tcp://127.0.0.1:0')
  await ep.connect(a)
  small.subscribe('big')
  assert.ok(await ep.waitForSubscribers('big', 5000))
  await rejectsWith(ep.publish('big', Buffer.alloc(200000)), 'MESSAGE_TOO_LARGE')
  await small.close()
  await ep.close()
})

test('a stalled event loop means counted drops, not unbounded memory', async () => {
  const ep = new Endpoint({ name: 'stall' })
  const got = []
  const sub = ep.subscribe('s', (m) => { got.push(m.text()) }, { capacity: 10, overflow: 'drop-newest' })
  // The event loop cannot run the callback while this loop runs: the
  // subscription's bounded queue fills and its policy drops the rest.
  // publish() completes synchronously here (local delivery never waits
  // under drop-newest), so nothing runs the callback in between.
  const sent = []
  for (let i = 0; i < 1000; i++) sent.push(ep.publish('s', String(i)))
  await Promise.all(sent)
  // Bounded: the queue holds `capacity`, plus at most one batch (<= 256)
  // already handed to the JS side; the rest was dropped and counted.
  assert.equal(ep.stats().subscriptions[0].queued, 10)
  assert.ok(sub.dropped >= 1000 - 10 - 256 && sub.dropped <= 990, String(sub.dropped))
  const kept = 1000 - sub.dropped
  await within((async () => { while (got.length < kept) await new Promise((resolve) => setImmediate(resolve)) })(), 5000, 'drain')
  // What was kept arrives once each, in publish order.
  assert.equal(got.length, kept)
  assert.ok(got.every((v, i) => i === 0 || Number(v) > Number(got[i - 1])))
  const dropped = new Promise((resolve) => ep.once('dropped', resolve))
  for (let i = 0; i < 100; i++) await ep.publish('s', 'more')
  const d = await within(dropped, 5000, 'dropped event')
  assert.equal(d.code, 'BUFFER_FULL')
  assert.ok(d.count > 0)
  await ep.close()
})

test('an exception in a callback is reported and delivery goes on', async () => {
  const ep = new Endpoint({ name: 'throws' })
  const errors = []
  ep.on('error', (e) => errors.push(e))
  const got = []
  const done = new Promise((resolve) => {
    ep.subscribe('t', (m) => {
      got.push(m.text())
      if (m.text() === 'bad') throw new Error('callback failure')
      if (m.text() === 'async-bad') return Promise.reject(new Error('async callback failure'))
      if (got.length === 4) resolve()
    })
  })
  for (const s of ['a', 'bad', 'async-bad', 'b']) await ep.publish('t', s)
  await within(done, 5000, 'delivery')
  assert.deepEqual(got, ['a', 'bad', 'async-bad', 'b'])
  assert.deepEqual(errors.map((e) => e.message), ['callback failure', 'async callback failure'])
  assert.match(errors[0].netchanSource, /subscription callback/)
  await ep.close()
})

test('without an error listener a callback exception becomes a process warning', async () => {
  const ep = new Endpoint({ name: 'warns' })
  const warned = new Promise((resolve) => process.once('warning', resolve))
  ep.subscribe('w', () => { throw new Error('warn me') })
  await ep.publish('w', '')
  const w = await within(warned, 5000, 'warning')
  assert.equal(w.code, 'NETCHAN_CALLBACK_ERROR')
  assert.match(w.message, /warn me/)
  assert.match(w.message, /api\.test\.js/) // the stack is in it
  await ep.close()
})

test('publishing into a full send buffer waits for room, losing nothing', async () => {
  // A small send buffer, a subscriber that cannot keep up (its queue blocks
  // the link while this loop runs): publish() must take its waiting path,
  // whose first poll runs on the JS thread. (Before that poll entered the
  // runtime's context, this aborted the process: "no reactor running".)
  const p = await pair('tcp', { client: { sendBuffer: 16384 }, server: { queueCapacity: 8 } })
  try {
    const n = 3000
    let next = 0
    const done = new Promise((resolve, reject) => {
      p.server.subscribe('fill/x', (m) => {
        const i = m.payload.readUInt32BE(0)
        if (i !== next) reject(new Error(`message ${i} arrived, expected ${next}`))
        if (++next === n) resolve()
      })
    })
    assert.ok(await p.client.waitForSubscribers('fill/x', 5000))
    const payload = Buffer.alloc(1024)
    for (let i = 0; i < n; i++) {
      payload.writeUInt32BE(i, 0)
      await p.client.publish('fill/x', Buffer.from(payload))
    }
    await within(done, 20000, 'every message to arrive')
  } finally {
    await p.close()
  }
})

test('setBusyPoll checks its argument and returns the previous window', () => {
  const prev = netchan.setBusyPoll(0)
  try {
    assert.equal(prev, 100, 'the default window is 100 us')
    assert.equal(netchan.setBusyPoll(1000000), 0)
    assert.equal(netchan.setBusyPoll(50), 1000000)
    for (const bad of [-1, 1.5, 1000001, NaN, '100', null, undefined]) {
      assert.throws(() => netchan.setBusyPoll(bad), (e) => e.code === 'INVALID_ARGUMENT' && /0 to 1000000/.test(e.message), String(bad))
    }
    assert.equal(netchan.setBusyPoll(0), 50, 'a refused value changes nothing')
  } finally {
    netchan.setBusyPoll(prev)
  }
})

test('busy polling keeps the event loop turning while a request waits, and stops', async () => {
  const spinning = () => process.getActiveResourcesInfo().includes('Immediate')
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve))
  const prev = netchan.setBusyPoll(1000000)
  const p = await pair('tcp')
  try {
    // Each request is answered only when the test releases it.
    const held = []
    let arrived = null
    const arrival = () => within(new Promise((resolve) => { arrived = resolve }), 10000, 'the request to reach its handler')
    const release = () => held.shift()()
    p.server.serve('slow', (req) => new Promise((resolve) => {
      held.push(() => resolve(req.payload))
      arrived()
    }))
    assert.ok(await p.client.waitForServers('slow', 5000))
    netchan.setBusyPoll(0)
    await nextTurn()
    // Off: a waiting request leaves the loop free to sleep.
    let got = arrival()
    let r = p.client.request('slow', 'a')
    await got
    await nextTurn()
    assert.equal(spinning(), false, 'busy polling is off')
    release()
    assert.equal(String(await r), 'a')
    // On: the loop keeps turning across turns while the reply is awaited.
    netchan.setBusyPoll(1000000)
    got = arrival()
    r = p.client.request('slow', 'b')
    for (let i = 0; i < 5; i++) {
      await nextTurn()
      assert.equal(spinning(), true, `turn ${i}: busy polling while the request waits`)
    }
    await got
    assert.equal(spinning(), true, 'still busy polling while the handler holds the request')
    release()
    assert.equal(String(await r), 'b')
    // Turning it off ends the current window at the next turn.
    netchan.setBusyPoll(0)
    await nextTurn()
    await nextTurn()
    assert.equal(spinning(), false, 'busy polling stopped')
  } finally {
    netchan.setBusyPoll(prev)
    await p.close()
  }
})

test('msgpack bytes are plain msgpack (what Python msgpack writes)', () => {
  const { pack, unpack } = netchan
  assert.equal(pack({ a: 1 }).toString('hex'), '81a16101')
  assert.equal(pack([true, null, -1, 1.5]).toString('hex'), '94c3c0ffcb3ff8000000000000')
  assert.equal(pack('x'.repeat(40)).subarray(0, 2).toString('hex'), 'd928')
  assert.equal(pack(Buffer.from([1])).toString('hex'), 'c40101')
  assert.equal(pack(2 ** 40).toString('hex'), 'cf0000010000000000')
  assert.deepEqual(unpack(Buffer.from('82a161cd0100a162c2', 'hex')), { a: 256, b: false })
  assert.equal(unpack(pack(-(2 ** 40))), -(2 ** 40))
  assert.equal(unpack(pack(2n ** 63n)), 2n ** 63n)
  assert.throws(() => unpack(Buffer.from('dd7fffffff', 'hex')), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => unpack(Buffer.from('a5ab', 'hex')), /truncated/)
  assert.throws(() => pack(new Date()), { code: 'INVALID_ARGUMENT' })
})
