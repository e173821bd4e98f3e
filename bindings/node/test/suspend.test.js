'use strict'
// An application's lifecycle through the core: suspend() (every link and
// listener down, everything else kept), resume() and networkChanged(), over
// real loopback sockets, with the events each one reports.
const test = require('node:test')
const assert = require('node:assert/strict')
const { netchan, addrs, within, rejectsWith, recorder, TRANSPORTS } = require('./helpers.js')
const { Endpoint } = netchan

const after = (events, from, type) => events.findIndex((e, i) => i >= from && e.type === type)

test('suspend() takes links and listeners down and keeps subscriptions, services and counters; resume() brings them back', async () => {
  const server = new Endpoint({ name: 'home' })
  const phone = new Endpoint({ name: 'phone' })
  const visitor = new Endpoint({ name: 'visitor' })
  const late = new Endpoint({ name: 'late-visitor' })
  try {
    const addr = await server.listen('tcp://127.0.0.1:0')
    server.serve('home/echo', (r) => r.payload)
    // A Unix socket (a named pipe on Windows), so that resume() listens
    // again on a name nobody else can take meanwhile (a TCP port could be).
    const phoneAddr = await phone.listen(addrs()[TRANSPORTS[1]])
    const local = phone.subscribe('local/x')
    const fromHome = phone.subscribe('to/phone')
    phone.serve('phone/echo', (r) => r.payload)
    const rec = recorder(phone)
    const homeRec = recorder(server)
    await phone.connect(addr)
    assert.ok(await phone.waitForServers('home/echo', 5000))
    assert.equal(String(await phone.request('home/echo', 'a')), 'a')
    await phone.publish('local/x', 'before')
    assert.equal((await local.recv()).text(), 'before')
    const before = phone.stats()
    assert.equal(before.total.requestsOut, 1)

    await phone.suspend()
    // The link went down (an orderly close: CLOSED at the server) and
    // `suspended` came. The core does not order the two (its link tasks
    // report the close), so neither does this test, like the C one.
    const ev = await rec.until((ev) => after(ev, 0, 'suspended') >= 0 && after(ev, 0, 'peerDown') >= 0, 'suspended and peerDown')
    const down = after(ev, 0, 'peerDown')
    assert.equal(ev[down].peer, 'home')
    const homeEv = await homeRec.until((ev) => after(ev, 0, 'peerDown') >= 0, 'peerDown at the server')
    assert.equal(homeEv[after(homeEv, 0, 'peerDown')].code, 'CLOSED')
    assert.deepEqual(phone.peers(), [])
    await phone.suspend() // idempotent: no second event
    // Its listener is closed too.
    await rejectsWith(visitor.connect(phoneAddr), 'CONNECT_REFUSED')
    // Kept: counters, subscriptions (local delivery works), services.
    const during = phone.stats()
    assert.deepEqual(during.total.requestsOut, before.total.requestsOut)
    assert.deepEqual(during.total.msgsIn, before.total.msgsIn)
    assert.deepEqual(during.subscriptions.map((s) => s.pattern).sort(), ['local/x', 'to/phone'])
    await phone.publish('local/x', 'during')
    assert.equal((await local.recv()).text(), 'during')
    await rejectsWith(phone.request('home/echo', 'b', { timeoutMs: 1000 }), 'NO_RESPONDERS')

    const from = rec.events.length
    await phone.resume()
    const ev2 = await rec.until((ev) => after(ev, from, 'resumed') >= 0 && after(ev, from, 'peerUp') >= 0, 'resumed and peerUp')
    assert.equal(ev2.slice(from).filter((e) => e.type === 'suspended').length, 0, 'one suspended event for two suspend() calls')
    assert.deepEqual(phone.peers().map((p) => p.name), ['home'])
    // The same subscriptions and services, declared again to the server.
    assert.ok(await server.waitForServers('phone/echo', 5000))
    assert.equal(String(await server.request('phone/echo', 'c')), 'c')
    assert.ok(await server.waitForSubscribers('to/phone', 5000))
    await server.publish('to/phone', 'welcome back')
    assert.equal((await within(fromHome.recv(), 10000, 'the message from home')).text(), 'welcome back')
    assert.equal(String(await phone.request('home/echo', 'd')), 'd')
    // Not counted: the request that found no responder while suspended.
    assert.equal(phone.stats().total.requestsOut, before.total.requestsOut + 1, 'counters went on from where they were')
    // Listening again at the same address.
    assert.equal((await late.connect(phoneAddr)).name, 'phone')
  } finally {
    await late.close()
    await visitor.close()
    await phone.close()
    await server.close()
  }
})

test('messages published to a dialled peer while suspended are delivered after resume(), in order', async () => {
  const server = new Endpoint({ name: 'inbox' })
  const phone = new Endpoint({ name: 'outbox' })
  try {
    const addr = await server.listen('tcp://127.0.0.1:0')
    const got = []
    let all
    const done = new Promise((resolve) => { all = resolve })
    server.subscribe('off/x', (m) => { got.push(m.text()); if (got.length === 6) all() })
    await phone.connect(addr)
    assert.ok(await phone.waitForSubscribers('off/x', 5000))
    await phone.suspend()
    assert.deepEqual(phone.peers(), [])
    // Held in the core's offline buffer for the dialled peer.
    for (let i = 0; i < 5; i++) await phone.publish('off/x', String(i))
    await phone.resume()
    await phone.publish('off/x', '5')
    await within(done, 10000, 'six messages at the server')
    assert.deepEqual(got, ['0', '1', '2', '3', '4', '5'])
  } finally {
    await phone.close()
    await server.close()
  }
})

/** A server and a phone connected to it, with the phone's events recorded. */
async function roaming () {
  const server = new Endpoint({ name: 'tower' })
  const phone = new Endpoint({ name: 'roamer' })
  const addr = await server.listen('tcp://127.0.0.1:0')
  server.serve('t/echo', (r) => r.payload)
  phone.subscribe('r/sub')
  const rec = recorder(phone)
  await phone.connect(addr)
  await rec.until((ev) => after(ev, 0, 'peerUp') >= 0, 'the first peerUp')
  return { server, phone, addr, rec, close: async () => { await phone.close(); await server.close() } }
}

test('networkChanged() drops the link and redials: peerDown with PEER_LOST, reconnecting, peerUp', async () => {
  const { phone, addr, rec, close } = await roaming()
  try {
    const from = rec.events.length
    await phone.networkChanged()
    const ev = await rec.until((ev) => after(ev, from, 'peerUp') >= 0, 'peerUp after the redial')
    const down = after(ev, from, 'peerDown')
    const again = after(ev, from, 'reconnecting')
    const up = after(ev, from, 'peerUp')
    assert.ok(down >= 0 && down < again && again < up, JSON.stringify(ev.slice(from)))
    assert.equal(ev[down].code, 'PEER_LOST')
    assert.equal(ev[again].addr, addr)
    assert.equal(ev[again].attempt, 1)
    assert.equal(ev[up].peer, 'tower')
  } finally {
    await close()
  }
})

// The core redials at once (each supervisor is told before the links go)
// and the server lets the redial in even if it still holds the old
// connection (the HELLO's instance says it is the same endpoint): no
// backoff, no NAME_IN_USE.
test('networkChanged() redials at once and stays connected: reconnecting without delay, reason "the network changed", declarations back, no NAME_IN_USE', async () => {
  const { server, phone, addr, rec, close } = await roaming()
  try {
    const from = rec.events.length
    await phone.networkChanged()
    const ev = await rec.until((ev) => after(ev, from, 'peerUp') >= 0, 'peerUp after the redial')
    const down = after(ev, from, 'peerDown')
    const again = after(ev, from, 'reconnecting')
    assert.match(ev[down].reason, /network changed/)
    assert.deepEqual(ev[again], { type: 'reconnecting', addr, attempt: 1, delayMs: 0 })
    assert.ok(await server.waitForSubscribers('r/sub', 5000))
    assert.ok(await phone.waitForServers('t/echo', 5000))
    assert.equal(String(await phone.request('t/echo', 'z')), 'z')
    const refused = rec.events.slice(from).filter((e) => e.code === 'NAME_IN_USE')
    assert.deepEqual(refused, [])
  } finally {
    await close()
  }
})

test('suspend(), resume() and networkChanged() reject with CLOSED once the endpoint is closed', async () => {
  const ep = new Endpoint({ name: 'gone' })
  await ep.close()
  await rejectsWith(ep.suspend(), 'CLOSED')
  await rejectsWith(ep.resume(), 'CLOSED')
  await rejectsWith(ep.networkChanged(), 'CLOSED')
})
