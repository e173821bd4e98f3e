'use strict'
// Event-loop hygiene: Node exits by itself after close(), and stays alive
// while a listener is open.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { netchan, pkgDir, addrs, run, within } = require('./helpers.js')

const fixture = (f) => path.join(__dirname, 'fixtures', f)
// A bound for "exits by itself": generous for a loaded CI machine; a child
// still running then is killed and the test fails.
const EXIT_BOUND_MS = 10000

for (const mode of ['close', 'close-in-callback', 'client-only']) {
  test(`the process exits by itself after close() (${mode})`, async () => {
    const r = await run(process.execPath, [fixture('exit-after-close.js'), pkgDir, mode], { limitMs: EXIT_BOUND_MS })
    assert.equal(r.killed, false, `child did not exit within ${EXIT_BOUND_MS} ms; stderr: ${r.stderr}`)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /pending: (CLOSED|PEER_LOST)/)
    assert.match(r.stdout, /closed/)
  })
}

test('the process exits by itself after close() over Unix sockets', async () => {
  const r = await run(process.execPath, [fixture('exit-after-close.js'), pkgDir, 'close', addrs().unix], { limitMs: EXIT_BOUND_MS })
  assert.equal(r.killed, false)
  assert.equal(r.code, 0, r.stderr)
})

test('a listening endpoint keeps the process alive until closed', async () => {
  const child = spawn(process.execPath, [fixture('stay-alive.js'), pkgDir], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  try {
    const addr = await within(new Promise((resolve) => {
      let out = ''
      child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(out.trim()) })
    }), EXIT_BOUND_MS, 'child address')
    const ep = new netchan.Endpoint({ name: 'stopper' })
    await ep.connect(addr)
    // The child's main() returned long ago; it answers because its
    // listener keeps it alive.
    assert.ok((await ep.ping('alive')) > 0)
    assert.equal(child.exitCode, null)
    assert.ok(await ep.waitForServers('stop', 5000))
    assert.equal((await ep.request('stop')).toString(), 'bye')
    await ep.close()
    assert.equal(await within(exited, EXIT_BOUND_MS, 'child exit after close'), 0)
  } finally {
    child.kill('SIGKILL')
  }
})

test('with unref() a listening endpoint does not keep the process alive', async () => {
  const r = await run(process.execPath, [fixture('stay-alive.js'), pkgDir, 'unref'], { limitMs: EXIT_BOUND_MS })
  assert.equal(r.killed, false)
  assert.equal(r.code, 0, r.stderr)
})


test('a pending request keeps the process alive until its reply', async () => {
  const server = new netchan.Endpoint({ name: 'slow-server' })
  const addr = await server.listen(addrs().tcp)
  server.serve('slow', () => new Promise((resolve) => setTimeout(() => resolve('late'), 300)))
  try {
    const r = await run(process.execPath, [fixture('pending-request.js'), pkgDir, addr], { limitMs: EXIT_BOUND_MS })
    assert.equal(r.killed, false, `child did not exit; stderr: ${r.stderr}`)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'reply: late')
  } finally {
    await server.close()
  }
})

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
