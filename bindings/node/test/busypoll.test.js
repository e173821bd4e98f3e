'use strict'
// Busy polling: the core's one setting (`busy_poll`), per endpoint as
// `busyPollUs`, done by the core's blocking entry point on the JS thread
// (src/exec.rs: promise_spin), not by a loop in netchan.js. A wait that
// busy-polled and got its answer within the window returns an already
// settled promise; one that did not returns a pending one. Peers run in
// worker threads (their own event loops), so they answer while this thread
// polls.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { Worker } = require('node:worker_threads')
const { netchan, pkgDir, within, run, cli } = require('./helpers.js')
const { Endpoint } = netchan

/** A window long enough that it cannot end by itself during a check (1 s). */
const LONG = 1000000

const PENDING = Symbol('pending')
/** Whether `p` was settled already when it was returned (no event-loop turn needed). */
function settledAtOnce (p) {
  // A rejection that came first counts as settled (and is handled here:
  // the caller awaits `p` itself for the outcome).
  return Promise.race([p, Promise.resolve(PENDING)]).then((v) => v !== PENDING, () => true)
}

/** The core's default for `busy_poll`, in microseconds, as `netchan settings` prints it. */
async function coreDefaultUs () {
  const r = await run(cli(), ['settings'])
  assert.equal(r.code, 0, r.stderr)
  const line = r.stdout.split('\n').find((l) => l.startsWith('busy_poll '))
  assert.ok(line, r.stdout)
  const m = /^busy_poll\s+(\d+)(us|ms|s)\s/.exec(line)
  assert.ok(m, line)
  return Number(m[1]) * { us: 1, ms: 1000, s: 1000000 }[m[2]]
}

/**
 * Runs `body` (the source of an async function of (netchan, data, post))
 * in a worker thread; resolves with {worker, message()} once it posted its
 * first message.
 */
function worker (body, workerData) {
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads')
    const netchan = require(workerData.pkgDir)
    ;(${body})(netchan, workerData, (m) => parentPort.postMessage(m), parentPort)
      .catch((e) => parentPort.postMessage({ error: String(e && e.stack) }))
  `, { eval: true, workerData: { pkgDir, ...workerData } })
  const inbox = []
  const waiters = []
  w.on('message', (m) => { if (waiters.length) waiters.shift()(m); else inbox.push(m) })
  const message = (what) => within(new Promise((resolve) => {
    if (inbox.length) resolve(inbox.shift()); else waiters.push(resolve)
  }), 10000, what).then((m) => { if (m && m.error) throw new Error(`worker: ${m.error}`); return m })
  return { w, message }
}

test("busyPollUs is an endpoint option with the core's default (off), checked like every option", { skip: cli() ? false : 'netchan CLI not built' }, async () => {
  const eps = []
  try {
    const plain = new Endpoint({ name: 'bp-default' })
    eps.push(plain)
    const core = await coreDefaultUs()
    assert.equal(core, 0, 'the core turns busy polling off by default')
    assert.equal(plain.busyPollUs, core, "the default is the core's")
    for (const us of [0, 1, 250, LONG]) {
      const ep = new Endpoint({ name: `bp-${us}`, busyPollUs: us })
      eps.push(ep)
      assert.equal(ep.busyPollUs, us)
    }
    for (const bad of [-1, 1.5, LONG + 1, NaN, Infinity]) {
      assert.throws(() => new Endpoint({ busyPollUs: bad }), (e) => e.code === 'INVALID_ARGUMENT' && /busyPollUs/.test(e.message), String(bad))
    }
    // The process-wide setting and its 100 us default are gone: one
    // setting, the core's, on the endpoint.
    assert.equal(netchan.setBusyPoll, undefined)
    assert.equal((await import(pathToFileURL(path.join(pkgDir, 'netchan.mjs')).href)).setBusyPoll, undefined)
  } finally {
    for (const ep of eps) await ep.close()
  }
})

test('netchan.js has no poll loop of its own', () => {
  const js = fs.readFileSync(path.join(pkgDir, 'netchan.js'), 'utf8')
  assert.doesNotMatch(js, /setImmediate|busyPollMs|spinFor/)
})

test('a request busy-polls for its reply through the core: within the window it settles before request() returns; with busyPollUs 0 it waits on the event loop', async () => {
  // The server answers 20 ms after each request: long after a request's
  // first poll (a reply that came while the caller was still in its first
  // poll would settle it at once even without busy polling), well within
  // the 1 s window.
  const server = worker(`async (netchan, _, post) => {
    const ep = new netchan.Endpoint({ name: 'bp-echo', busyPollUs: 0 })
    ep.serve('later', (r) => new Promise((resolve) => setTimeout(() => resolve(r.payload), 20)))
    post(await ep.listen('tcp://127.0.0.1:0'))
  }`)
  const on = new Endpoint({ name: 'bp-on', busyPollUs: LONG })
  const off = new Endpoint({ name: 'bp-off', busyPollUs: 0 })
  try {
    const addr = await server.message('the server to listen')
    for (const ep of [on, off]) {
      await ep.connect(addr)
      assert.ok(await ep.waitForServers('later', 5000))
    }
    for (let i = 0; i < 3; i++) {
      const p = on.request('later', `on ${i}`)
      assert.equal(await settledAtOnce(p), true, `request ${i}: the reply came within the window`)
      assert.equal(String(await p), `on ${i}`)
      const q = off.request('later', `off ${i}`)
      assert.equal(await settledAtOnce(q), false, `request ${i}: no busy polling with busyPollUs 0`)
      assert.equal(String(await within(q, 10000, 'the reply')), `off ${i}`)
    }
    // An error settles within the window too, with its code.
    const nr = on.request('nobody/here', 'x', { timeoutMs: 1000 })
    assert.equal(await settledAtOnce(nr), true)
    await assert.rejects(nr, { code: 'NO_RESPONDERS' })
  } finally {
    await on.close()
    await off.close()
    await server.w.terminate()
  }
})

test('a service that answered busy-polls for the next request: a ping-pong goes on without the event loop turning; with busyPollUs 0 it turns', async () => {
  const results = {}
  for (const us of [LONG, 0]) {
    const server = new Endpoint({ name: `bp-srv-${us}`, busyPollUs: us })
    let caller
    try {
      const addr = await server.listen('tcp://127.0.0.1:0')
      // `turned` is set by a setImmediate callback: it runs only if the
      // event loop went round between two requests.
      let turned = true
      const seen = []
      server.serve('ping', (req) => {
        seen.push(turned)
        turned = false
        setImmediate(() => { turned = true })
        return req.payload
      })
      caller = worker(`async (netchan, { addr }, post) => {
        const ep = new netchan.Endpoint({ name: 'bp-caller', busyPollUs: 0 })
        await ep.connect(addr)
        await ep.waitForServers('ping', 5000)
        for (let i = 0; i < 20; i++) await ep.request('ping', String(i))
        await ep.close()
        post('done')
      }`, { addr })
      assert.equal(await caller.message('20 requests'), 'done')
      assert.equal(seen.length, 20)
      results[us] = seen.slice(1) // the first request comes after the loop idled
    } finally {
      if (caller) await caller.w.terminate()
      await server.close()
    }
  }
  assert.deepEqual(results[LONG], new Array(19).fill(false), 'with a window, each next request was taken before the event loop turned')
  assert.ok(results[0].some((t) => t), 'with busyPollUs 0 the event loop turns between requests')
})

test('subscriptions never busy-poll: a wait for the next message returns pending at once, whatever the window', async () => {
  const ep = new Endpoint({ name: 'bp-sub', busyPollUs: LONG })
  let pub
  try {
    const addr = await ep.listen('tcp://127.0.0.1:0')
    const sub = ep.subscribe('tick')
    // One message every 50 ms, each well inside the window.
    pub = worker(`async (netchan, { addr }, post) => {
      const ep = new netchan.Endpoint({ name: 'bp-ticker' })
      await ep.connect(addr)
      await ep.waitForSubscribers('tick', 5000)
      post('ready')
      let i = 0
      setInterval(() => ep.publish('tick', String(i++)), 50)
    }`, { addr })
    await pub.message('the publisher')
    for (let i = 0; i < 3; i++) {
      await within(sub.recv(), 10000, 'a tick')
      while (sub.tryRecv() !== null) { /* drain */ }
      const next = sub.recv()
      assert.equal(await settledAtOnce(next), false, 'the wait did not poll for the next message')
      await within(next, 10000, 'the next tick')
    }
  } finally {
    if (pub) await pub.w.terminate()
    await ep.close()
  }
})
