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

