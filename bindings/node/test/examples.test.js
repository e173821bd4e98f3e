'use strict'
// Runs examples/node/* as a user would (require('netchan') resolving to this
// package) over TCP and Unix sockets: each must exit 0 and print what its
// header says.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pkgDir, repo, addrs, run, TRANSPORTS } = require('./helpers.js')

// A node_modules/netchan that points at this package.
const modules = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-examples-'))
fs.symlinkSync(pkgDir, path.join(modules, 'netchan'), 'dir')
const env = { NODE_PATH: modules }
const dir = path.join(repo, 'examples', 'node')

const expect = {
  'pubsub.js': [/^listening on /m, /^sensors\/kitchen\/temp\t21\.5$/m, /^sensors\/garage\/temp\t12\.0$/m, /^sensors\/attic\/temp\t\{"celsius":30\.5\}$/m],
  'reqrep.js': [/^reply: hello, ana \(from client\)$/m, /^fail: HANDLER_ERROR/m, /^nobody\/here: NO_RESPONDERS/m, /^slow: CANCELLED/m],
  'ping.js': [/^event: peerUp pong$/m, /^rtt \d+ us$/m, /^peers: pong /m]
}

test('every example has the three header lines', () => {
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.js'))) {
    const lines = fs.readFileSync(path.join(dir, f), 'utf8').split('\n')
    assert.match(lines[0], /^\/\/ Shows: /, f)
    assert.match(lines[1], /^\/\/ Run: /, f)
    assert.match(lines[2], /^\/\/ Prints: /, f)
    assert.ok(expect[f], `${f} is not exercised by this test`)
  }
})

for (const [file, patterns] of Object.entries(expect)) {
  for (const transport of TRANSPORTS) {
    test(`examples/node/${file} (${transport})`, async () => {
      const r = await run(process.execPath, [path.join(dir, file), addrs()[transport]], { env, limitMs: 20000 })
      assert.equal(r.killed, false, 'example did not exit by itself')
      assert.equal(r.code, 0, r.stderr)
      for (const p of patterns) assert.match(r.stdout, p)
    })
  }
}
