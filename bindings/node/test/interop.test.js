'use strict'
// Interop with the `netchan` CLI (Rust) and, when a Python with the netchan
// package is available, with the Python binding (msgpack payloads included).
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { netchan, addrs, run, cli, python, within, TRANSPORTS } = require('./helpers.js')
const { Endpoint } = netchan

// A missing peer program is reported as a skip with the reason; with
// NETCHAN_INTEROP_REQUIRE_ALL=1 (scripts/test.sh) the test runs and fails.
const REQUIRE_ALL = process.env.NETCHAN_INTEROP_REQUIRE_ALL === '1'
const skipUnless = (found, reason) => found || REQUIRE_ALL ? false : reason

const CLI = cli()
const cliSkip = skipUnless(CLI, 'netchan CLI not built (cargo build -p netchan-cli)')
const needCli = () => assert.ok(CLI, 'netchan CLI not built (cargo build -p netchan-cli)')

/** Starts `netchan ... --listen ADDR`; resolves with {child, addr}. */
function listening (args) {
  const child = spawn(CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const addr = within(new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      err += d
      const m = err.match(/listening on (\S+)/)
      if (m) resolve(m[1])
    })
    child.on('exit', (code) => reject(new Error(`netchan exited with ${code}: ${err}`)))
  }), 15000, 'netchan listening')
  return { child, addr, output: () => out }
}

for (const transport of TRANSPORTS) test.describe(`over ${transport}`, () => {
  test('Node requests from netchan serve --echo', { skip: cliSkip }, async () => {
    needCli()
    const { child, addr } = listening(['serve', 'echo/*', '--listen', addrs()[transport], '--echo'])
    const ep = new Endpoint({ name: 'node-req' })
    try {
      await ep.connect(await addr)
      assert.ok(await ep.waitForServers('echo/x', 5000))
      assert.equal((await ep.request('echo/x', 'from node')).toString(), 'from node')
    } finally {
      await ep.close()
      child.kill()
    }
  })

  test('Node opens a stream to netchan serve-stream --echo', { skip: cliSkip }, async () => {
    needCli()
    const { child, addr } = listening(['serve-stream', 'echo/*', '--listen', addrs()[transport], '--echo'])
    const ep = new Endpoint({ name: 'node-stream' })
    try {
      await ep.connect(await addr)
      const s = await ep.openStream('echo/x', 'first', { waitForResponder: true, openTimeoutMs: 10000 })
      await s.send('from node')
      s.end()
      const got = []
      for await (const b of s) got.push(b.toString())
      assert.equal(got.join(''), 'firstfrom node')
    } finally {
      await ep.close()
      child.kill()
    }
  })

  test('netchan stream pipes its stdin through a Node stream service', { skip: cliSkip }, async () => {
    needCli()
    const ep = new Endpoint({ name: 'node-stream-srv' })
    try {
      const addr = await ep.listen(addrs()[transport])
      ep.serveStream('upper/*', async (req, stream) => {
        for await (const b of stream) await stream.send(b.toString().toUpperCase())
      })
      const r = await run(CLI, ['stream', 'upper/cli', '--connect', addr], { input: 'hello from rust\n' })
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, 'HELLO FROM RUST\n')
    } finally {
      await ep.close()
    }
  })

  test('netchan req gets a reply from a Node service', { skip: cliSkip }, async () => {
    needCli()
    const ep = new Endpoint({ name: 'node-srv' })
    try {
      const addr = await ep.listen(addrs()[transport])
      ep.serve('greet/*', (req) => `hello ${req.text()} on ${req.path}`)
      const r = await run(CLI, ['req', 'greet/cli', 'rust', '--connect', addr])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.trim(), 'hello rust on greet/cli')
    } finally {
      await ep.close()
    }
  })

  test("netchan pub reaches a Node subscriber; netchan sub gets Node's messages", { skip: cliSkip }, async () => {
    needCli()
    const ep = new Endpoint({ name: 'node-sub' })
    let s = null
    try {
      const addr = await ep.listen(addrs()[transport])
      const sub = ep.subscribe('cli/**')
      const r = await run(CLI, ['pub', 'cli/a/b', 'payload from rust', '--connect', addr])
      assert.equal(r.code, 0, r.stderr)
      const m = await within(sub.recv(), 5000, 'message from the CLI')
      assert.equal(m.path, 'cli/a/b')
      assert.equal(m.text(), 'payload from rust')

      s = spawn(CLI, ['sub', 'node/*', '--connect', addr, '--count', '2'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      s.stdout.on('data', (d) => { out += d })
      const exited = new Promise((resolve) => s.on('exit', resolve))
      assert.ok(await ep.waitForSubscribers('node/x', 10000))
      await ep.publish('node/x', 'one')
      await ep.publish('node/y', 'two')
      assert.equal(await within(exited, 10000, 'netchan sub exit'), 0)
      assert.deepEqual(out.trim().split('\n'), ['node/x\tone', 'node/y\ttwo'])
    } finally {
      if (s && s.exitCode === null && s.signalCode === null) s.kill('SIGKILL')
      await ep.close()
    }
  })
})

const PY = python()
const pySkip = skipUnless(PY, 'no Python with netchan (run bindings/python/run-tests.sh, or set NETCHAN_PYTHON)')

test('Python publishes msgpack to Node and answers Node requests', { skip: pySkip }, async () => {
  assert.ok(PY, 'no Python with netchan (run bindings/python/run-tests.sh, or set NETCHAN_PYTHON)')
  const ep = new Endpoint({ name: 'node-py' })
  const addr = await ep.listen('tcp://127.0.0.1:0')
  const sub = ep.subscribe('py/obj')
  ep.serve('node/add', (req) => netchan.pack(req.obj().reduce((a, b) => a + b, 0)))
  const script = `
import sys, netchan
ep = netchan.Endpoint("python")
ep.connect(sys.argv[1])
assert ep.wait_for_subscribers("py/obj", 5.0)
ep.publish_obj("py/obj", {"s": "héllo", "n": [1, -2, 3.5], "b": b"\\x00\\x01", "t": True, "z": None})
print(netchan.unpack(ep.request("node/add", netchan.pack([1, 2, 39]), timeout=5.0)))
ep.close()
`
  try {
    const r = await run(PY, ['-c', script, addr], { limitMs: 30000 })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '42')
    const m = await within(sub.recv(), 5000, 'message from Python')
    assert.equal(m.sender, 'python')
    assert.deepEqual(m.obj(), { s: 'héllo', n: [1, -2, 3.5], b: Buffer.from([0, 1]), t: true, z: null })
  } finally {
    await ep.close()
  }
})
