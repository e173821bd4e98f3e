'use strict'
// Event-loop hygiene: Node exits by itself after close(), and stays alive
// exactly while something the user asked for is open or pending. Each
// "stays alive" case is shown by a child that prints `alive` from an
// unref'd timer (it fires only if something else keeps the loop running)
// and by the parent completing the pending thing only after that.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { netchan, pkgDir, addrs, proxy, follow, run, within } = require('./helpers.js')

const fixture = (f) => path.join(__dirname, 'fixtures', f)
// A bound for "exits by itself": generous for a loaded CI machine; a child
// still running then is killed and the test fails.
const EXIT_BOUND_MS = 10000

/** Runs exit-after-close.js in `mode`: it must exit 0 by itself and print how its pending request ended. */
async function exitsAfterClose (mode, pending, addr) {
  const args = [fixture('exit-after-close.js'), pkgDir, mode]
  if (addr) args.push(addr)
  const r = await run(process.execPath, args, { limitMs: EXIT_BOUND_MS })
  assert.equal(r.killed, false, `child did not exit within ${EXIT_BOUND_MS} ms; stderr: ${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split('\n'), [`pending: ${pending}`, 'closed'])
}

test('the process exits by itself after close()', () => exitsAfterClose('close', 'CLOSED'))

test('the process exits by itself after close() inside a callback', () => exitsAfterClose('close-in-callback', 'CLOSED'))

test('the process exits by itself with only a connected client and event listeners left', () => exitsAfterClose('client-only', 'PEER_LOST'))

test('the process exits by itself after close() over Unix sockets', () => exitsAfterClose('close', 'CLOSED', addrs().unix))

test('a listening endpoint keeps the process alive until closed', async () => {
  const c = follow(process.execPath, [fixture('stay-alive.js'), pkgDir])
  try {
    const addr = await within(c.line(/^tcp:/), EXIT_BOUND_MS, 'child address')
    // Its main() has returned; only the listener and its `stop` service
    // keep it running.
    await within(c.line(/^alive$/), EXIT_BOUND_MS, 'the child to outlive its main()')
    const ep = new netchan.Endpoint({ name: 'stopper' })
    await ep.connect(addr)
    assert.ok((await ep.ping('alive')) > 0)
    assert.ok(await ep.waitForServers('stop', 5000))
    assert.equal((await ep.request('stop')).toString(), 'bye')
    await ep.close()
    assert.deepEqual(await within(c.exited, EXIT_BOUND_MS, 'child exit after close'), { code: 0, signal: null })
  } finally {
    c.kill()
  }
})

test('with unref() a listening endpoint does not keep the process alive', async () => {
  const r = await run(process.execPath, [fixture('stay-alive.js'), pkgDir, 'unref'], { limitMs: EXIT_BOUND_MS })
  assert.equal(r.killed, false)
  assert.equal(r.code, 0, r.stderr)
  // It exited before its unref'd timer could fire.
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.replace(/:\d+$/, ':PORT')), ['tcp://127.0.0.1:PORT'])
})

test('with unref() subscriptions and services do not keep the process alive either', async () => {
  const r = await run(process.execPath, [fixture('stay-alive.js'), pkgDir, 'unref-all'], { limitMs: EXIT_BOUND_MS })
  assert.equal(r.killed, false, `child did not exit within ${EXIT_BOUND_MS} ms; stderr: ${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.replace(/:\d+$/, ':PORT')), ['tcp://127.0.0.1:PORT'])
})

test('ref() after unref() makes subscriptions and services keep the process alive again', async () => {
  // The child does not listen: it connects here, and a connected endpoint
  // keeps nothing alive; only its subscriptions and services can.
  const server = new netchan.Endpoint({ name: 'stopper' })
  const c = follow(process.execPath, [fixture('stay-alive.js'), pkgDir, 'unref-ref', await server.listen('tcp://127.0.0.1:0')])
  try {
    await within(c.line(/^alive$/), EXIT_BOUND_MS, 'the child to outlive its main()')
    assert.ok(await server.waitForServers('stop', 5000))
    assert.equal((await server.request('stop')).toString(), 'bye')
    assert.deepEqual(await within(c.exited, EXIT_BOUND_MS, 'child exit after close'), { code: 0, signal: null })
    assert.deepEqual(c.lines, ['connected', 'alive', 'ended: [null,null]'])
  } finally {
    c.kill()
    await server.close()
  }
})

/**
 * Runs keep-alive.js in `mode` against a server behind a proxy. `hold`:
 * wire frame kinds the proxy holds (towards the server) until the child
 * printed `alive`; `act(server)`: what completes the pending thing then.
 */
async function keptAlive (mode, { hold, act }, done) {
  const server = new netchan.Endpoint({ name: 'keeper' })
  const px = await proxy(await server.listen('tcp://127.0.0.1:0'))
  server.serve('echo', (r) => r.payload)
  // Sends once the child printed `alive` (stream-recv).
  const later = { open: null }
  const alive = new Promise((resolve) => { later.open = resolve })
  server.serveStream('later', async (req, stream) => { await alive; await stream.send('x'); await stream.recv() })
  if (hold) px.hold(hold)
  const c = follow(process.execPath, [fixture('keep-alive.js'), pkgDir, px.addr, mode])
  try {
    await within(c.line(/^alive$/), EXIT_BOUND_MS, 'the child to outlive its main()')
    later.open()
    if (hold) px.release()
    if (act) await act(server)
    assert.deepEqual(await within(c.exited, EXIT_BOUND_MS, 'the child to exit by itself'), { code: 0, signal: null }, c.stderr())
    assert.deepEqual(c.lines, ['alive', done])
  } finally {
    c.kill()
    await px.close()
    await server.close()
  }
}

test('a subscription keeps the process alive until it is closed', () => keptAlive('subscription', {
  act: async (server) => {
    assert.ok(await server.waitForSubscribers('stop', 5000))
    await server.publish('stop', 'now')
  }
}, 'message: now'))

test('a service keeps the process alive until it is closed', () => keptAlive('service', {
  act: async (server) => {
    assert.ok(await server.waitForServers('stop', 5000))
    assert.equal(String(await server.request('stop', 'now')), 'bye')
  }
}, 'request: now'))

test('a stream service keeps the process alive until it is closed', () => keptAlive('stream-service', {
  act: async (server) => {
    await within((async () => { while (server.streamServers('stop').length === 0) await new Promise((resolve) => setImmediate(resolve)) })(), EXIT_BOUND_MS, 'the stream service to be declared')
    const s = await server.openStream('stop', 'now')
    assert.equal(await s.recv(), null)
  }
}, 'stream: now'))

test('a pending stream recv keeps the process alive until a message arrives', () => keptAlive('stream-recv', {}, 'stream recv: x'))

// Wire frame kinds (docs/PROTOCOL.md).
const HELLO = 0x01
const PING = 0x03
const REQUEST = 0x21

test('a pending request keeps the process alive until its reply', () => keptAlive('request', { hold: [REQUEST] }, 'reply: x'))

test('after unref() a pending request still keeps the process alive until its reply', () => keptAlive('request-unref', { hold: [REQUEST] }, 'reply: x'))

test('a pending connect keeps the process alive until it completes', () => keptAlive('connect', { hold: [HELLO] }, 'connected: keeper'))

test('a pending ping keeps the process alive until its pong', () => keptAlive('ping', { hold: [PING] }, 'pong: true'))

for (const close of [true, false]) {
  test(`endpoints on a worker thread and the main thread work together (worker ${close ? 'closes' : 'exits with it open'})`, async () => {
    const { Worker } = require('node:worker_threads')
    const main = new netchan.Endpoint({ name: 'main' })
    const addr = await main.listen(addrs().tcp)
    main.serve('main/echo', (req) => req.payload)
    const w = new Worker(fixture('worker.js'), { workerData: { pkgDir, addr, close } })
    const messages = []
    let wake
    w.on('message', (m) => { messages.push(m); if (wake) wake() })
    const next = () => messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve) => { wake = () => { wake = null; resolve(messages.shift()) } })
    const exited = new Promise((resolve) => w.on('exit', resolve))
    try {
      const first = await within(next(), EXIT_BOUND_MS, 'worker replies')
      assert.equal(first.error, undefined, first.error)
      assert.deepEqual(first.replies, Array.from({ length: 200 }, (_, i) => `w${i}`))
      assert.ok(await main.waitForSubscribers('to/worker', 5000))
      await main.publish('to/worker', 'hello worker')
      assert.deepEqual(await within(next(), EXIT_BOUND_MS, 'worker message'), { got: 'hello worker' })
      if (!close) await w.terminate()
      assert.equal(typeof await within(exited, EXIT_BOUND_MS, 'worker exit'), 'number')
      // The main thread's bridge is unaffected by the worker's teardown.
      const c = new netchan.Endpoint({ name: 'after-worker' })
      await c.connect(addr)
      assert.equal(String(await c.request('main/echo', 'still here')), 'still here')
      await c.close()
    } finally {
      await w.terminate()
      await main.close()
    }
  })
}
