'use strict'
// TLS from Node (docs/SECURITY.md): certificates made by `netchan cert`,
// given as paths or Buffers; mutual TLS over tls://127.0.0.1; a client
// without a certificate refused with CLIENT_CERT_REQUIRED; bad settings
// named; plaintext beyond this host refused unless `insecure`; access
// rules, TLS settings and shared keys replaced at run time.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { netchan, cli, within, rejectsWith } = require('./helpers.js')
const { Endpoint } = netchan

const WATCHDOG = 20000

/** A directory with a CA and `server` and `client` certificates, removed after the test. */
function certs (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-node-tls-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const name of ['server', 'client']) {
    execFileSync(cli(), ['cert', name, '--dir', dir], { timeout: 30000 })
  }
  return (f) => path.join(dir, f)
}

test('mutual TLS carries requests and refuses a client without a certificate', { skip: !cli() && 'the netchan CLI is not built' }, async (t) => {
  const f = certs(t)
  const server = new Endpoint({
    name: 'server',
    // A Buffer is the PEM itself; a string a path.
    tls: { cert: fs.readFileSync(f('server.pem')), key: f('server-key.pem'), ca: f('ca.pem'), clientAuth: 'required' }
  })
  const client = new Endpoint({ name: 'client', tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client-key.pem') } })
  const anonymous = new Endpoint({ name: 'node-tls-anon', tls: { ca: fs.readFileSync(f('ca.pem')) } })
  t.after(async () => { await Promise.all([server.close(), client.close(), anonymous.close()]) })
  server.serve('echo', (req) => req.payload)
  const addr = await server.listen('tls://127.0.0.1:0')
  assert.match(addr, /^tls:\/\/127\.0\.0\.1:\d+$/)
  const peer = await within(client.connect(addr), WATCHDOG, 'connect')
  assert.match(peer.addr, /^tls:\/\//)
  // Each side shows what the other proved.
  assert.equal(peer.identity, 'cert:server')
  assert.deepEqual(server.peers().map((p) => p.identity), ['cert:client'])
  assert.equal(server.stats().peers[0].identity, 'cert:client')
  const reply = await within(client.request('echo', 'over tls'), WATCHDOG, 'request')
  assert.equal(reply.toString(), 'over tls')
  await rejectsWith(within(anonymous.connect(addr), WATCHDOG, 'refused connect'), 'CLIENT_CERT_REQUIRED')
})

test('bad TLS settings are INVALID_ARGUMENT naming the setting', () => {
  assert.throws(() => new Endpoint({ tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } }),
    (e) => e.code === 'INVALID_ARGUMENT' && e.message.includes('/nonexistent/cert.pem'))
  assert.throws(() => new Endpoint({ tls: { clientAuth: 'sometimes' } }),
    (e) => e.code === 'INVALID_ARGUMENT' && e.message.includes('tls.client_auth'))
  assert.throws(() => new Endpoint({ settings: { 'no.such.setting': 1 } }), (e) => e.code === 'INVALID_ARGUMENT')
})

test('plaintext beyond this host is refused unless insecure', async (t) => {
  const plain = new Endpoint({ name: 'node-plain' })
  const open = new Endpoint({ name: 'node-open', insecure: true })
  const byName = new Endpoint({ name: 'node-open2', settings: { insecure: true, send_buffer: '1MiB' } })
  t.after(async () => { await Promise.all([plain.close(), open.close(), byName.close()]) })
  await rejectsWith(plain.listen('tcp://0.0.0.0:0'), 'PLAINTEXT_REFUSED')
  assert.match(await open.listen('tcp://0.0.0.0:0'), /^tcp:\/\/0\.0\.0\.0:\d+$/)
  await byName.listen('tcp://0.0.0.0:0')
})

test('access rules change at run time', async (t) => {
  // Over loopback TCP without keys a peer is `anonymous` (docs/SECURITY.md).
  const server = new Endpoint({ name: 'node-acl-server' })
  const client = new Endpoint({ name: 'node-acl-client' })
  t.after(async () => { await Promise.all([server.close(), client.close()]) })
  server.serve('echo/*', (req) => req.payload)
  const denied = new Promise((resolve) => server.on('denied', resolve))
  await within(client.connect(await server.listen('tcp://127.0.0.1:0')), WATCHDOG, 'connect')
  server.setAcl('allow anonymous request echo/public\n')
  assert.equal((await within(client.request('echo/public', 'hi'), WATCHDOG, 'allowed')).toString(), 'hi')
  await rejectsWith(within(client.request('echo/secret', 'hi'), WATCHDOG, 'denied'), 'PERMISSION_DENIED')
  const e = await within(denied, WATCHDOG, 'denied event')
  assert.deepEqual([e.peer, e.identity, e.action, e.path], ['node-acl-client', 'anonymous', 'request', 'echo/secret'])
  assert.equal(server.stats().total.denied, 1)
  // Bad rules are an error naming the line; the rules in use stay.
  assert.throws(() => server.setAcl('allow anonymous shout **'), (err) => err.code === 'INVALID_ARGUMENT' && err.message.includes('line 1'))
  await rejectsWith(within(client.request('echo/secret', 'hi'), WATCHDOG, 'still denied'), 'PERMISSION_DENIED')
  server.reloadKeys()
  server.setAcl(null)
  assert.equal((await within(client.request('echo/secret', 'ok'), WATCHDOG, 'no rules')).toString(), 'ok')
  assert.deepEqual(server.failedAttempts(), [])
})

test('TLS settings and shared keys are replaced at run time', { skip: !cli() && 'the netchan CLI is not built' }, async (t) => {
  const f = certs(t)
  // Named as its certificate was issued: peers accept only that name.
  const server = new Endpoint({ name: 'server' })
  const eps = [server]
  t.after(async () => { await Promise.all(eps.map((e) => e.close())) })
  await assert.rejects(server.listen('tls://127.0.0.1:0')) // no TLS settings yet
  server.setTls({ cert: f('server.pem'), key: fs.readFileSync(f('server-key.pem')) })
  const addr = await server.listen('tls://127.0.0.1:0')
  const c1 = new Endpoint({ name: 'node-rt-c1', tls: { ca: f('ca.pem') } })
  eps.push(c1)
  assert.equal((await within(c1.connect(addr), WATCHDOG, 'connect')).identity, 'cert:server')
  // A certificate that is not there: refused, named; the settings stay.
  assert.throws(() => server.setTls({ cert: f('nope.pem'), key: f('server-key.pem') }), (e) => e.code === 'INVALID_ARGUMENT' && e.message.includes('nope.pem'))
  assert.throws(() => server.setTls({ certificate: f('server.pem') }), { code: 'INVALID_ARGUMENT' })
  const c2 = new Endpoint({ name: 'node-rt-c2', tls: { ca: f('ca.pem') } })
  eps.push(c2)
  await within(c2.connect(addr), WATCHDOG, 'connect after a refused replacement')
  server.setTls(null) // removed: a new tls:// listener is refused
  await assert.rejects(server.listen('tls://127.0.0.1:0'))

  const keys = f('app.keys')
  execFileSync(cli(), ['keygen', 'rt1', '--out', keys], { timeout: 30000 })
  const keyed = new Endpoint({ name: 'node-psk-server' })
  eps.push(keyed)
  keyed.setSharedKeys(keys)
  const kaddr = await keyed.listen('tcp://127.0.0.1:0')
  const plain = new Endpoint({ name: 'node-psk-plain' })
  const withKey = new Endpoint({ name: 'node-psk-keyed', settings: { psk: keys } })
  eps.push(plain, withKey)
  await assert.rejects(within(plain.connect(kaddr), WATCHDOG, 'refused connect'))
  assert.equal((await within(withKey.connect(kaddr), WATCHDOG, 'keyed connect')).identity, 'key:rt1')
  assert.throws(() => keyed.setSharedKeys(f('missing.keys')), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => keyed.setSharedKeys(42), { code: 'INVALID_ARGUMENT' })
  keyed.setSharedKeys(null)
  const plain2 = new Endpoint({ name: 'node-psk-plain2' })
  eps.push(plain2)
  await within(plain2.connect(kaddr), WATCHDOG, 'connect without keys')
})
