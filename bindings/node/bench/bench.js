'use strict'
// Benchmark (not run in CI): netchan Node publisher -> Node subscriber in
// separate processes over TCP at 8 B and 1 KiB (msgs/s), and request/reply
// latency p50/p99, beside the `zeromq` npm package (PUSH/PULL, REQ/REP) when
// it can be loaded.
// Usage: node bench/bench.js [--zeromq DIR] [--count N] [--requests N] [--rounds N] [--latency-only]
//                            [--busy-poll US]
//   DIR: a directory whose node_modules has `zeromq` (skip zeromq without it).
//   US: netchan.setBusyPoll(US) in every netchan process (default: the package's).
// Prints one line per measurement: LIB PATTERN SIZE RESULT.
const { spawn } = require('node:child_process')
const path = require('node:path')

const args = process.argv.slice(2)
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt }
const role = opt('--role', null)
const COUNT = Number(opt('--count', 300000))
const REQUESTS = Number(opt('--requests', 20000))
const ZMQ_DIR = opt('--zeromq', null)
const ROUNDS = Number(opt('--rounds', 1))
const LATENCY_ONLY = args.includes('--latency-only')
const BUSY_POLL = opt('--busy-poll', null)

function loadZmq () {
  if (!ZMQ_DIR) return null
  try { return require(require.resolve('zeromq', { paths: [ZMQ_DIR] })) } catch (e) { return null }
}

function netchan () {
  const nc = require(path.resolve(__dirname, '..'))
  if (BUSY_POLL !== null) nc.setBusyPoll(Number(BUSY_POLL))
  return nc
}

// ---- child roles ----------------------------------------------------------

async function netchanSub (size, count) {
  const { Endpoint } = netchan()
  const ep = new Endpoint({ name: 'bench-sub' })
  const addr = await ep.listen('tcp://127.0.0.1:0')
  let n = 0
  let t0 = 0
  const done = new Promise((resolve) => {
    ep.subscribe('bench/data', (m) => {
      if (n === 0) t0 = process.hrtime.bigint()
      if (++n === count) resolve()
    }, { capacity: 65536 })
  })
  process.stdout.write(`ADDR ${addr}\n`)
  await done
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  process.stdout.write(`RATE ${(count - 1) / secs}\n`)
  await ep.close()
}

async function netchanPub (addr, size, count) {
  const { Endpoint } = netchan()
  const ep = new Endpoint({ name: 'bench-pub' })
  await ep.connect(addr)
  await ep.waitForSubscribers('bench/data', 10000)
  const payload = Buffer.alloc(size, 1)
  for (let i = 0; i < count; i++) await ep.publish('bench/data', payload)
  await ep.close()
}

async function netchanServer () {
  const { Endpoint } = netchan()
  const ep = new Endpoint({ name: 'bench-srv' })
  const addr = await ep.listen('tcp://127.0.0.1:0')
  ep.serve('bench/echo', (req) => req.payload)
  ep.subscribe('bench/stop', () => ep.close())
  process.stdout.write(`ADDR ${addr}\n`)
}

async function zmqPull (size, count) {
  const zmq = loadZmq()
  const sock = new zmq.Pull()
  await sock.bind('tcp://127.0.0.1:*')
  process.stdout.write(`ADDR ${sock.lastEndpoint}\n`)
  let n = 0
  let t0 = 0
  for await (const [msg] of sock) { // eslint-disable-line no-unused-vars
    if (n === 0) t0 = process.hrtime.bigint()
    if (++n === count) break
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  process.stdout.write(`RATE ${(count - 1) / secs}\n`)
  sock.close()
}

async function zmqPush (addr, size, count) {
  const zmq = loadZmq()
  const sock = new zmq.Push({ sendHighWaterMark: 100000 })
  sock.connect(addr)
  const payload = Buffer.alloc(size, 1)
  for (let i = 0; i < count; i++) await sock.send(payload)
  sock.linger = 10000
  sock.close()
}

async function zmqRep () {
  const zmq = loadZmq()
  const sock = new zmq.Reply()
  await sock.bind('tcp://127.0.0.1:*')
  process.stdout.write(`ADDR ${sock.lastEndpoint}\n`)
  for await (const [msg] of sock) {
    if (msg.length === 4 && msg.toString() === 'stop') { await sock.send('bye'); break }
    await sock.send(msg)
  }
  sock.close()
}

// ---- driver ---------------------------------------------------------------

function child (roleArgs) {
  const p = spawn(process.execPath, [__filename, ...roleArgs, ...(ZMQ_DIR ? ['--zeromq', ZMQ_DIR] : []), ...(BUSY_POLL !== null ? ['--busy-poll', BUSY_POLL] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const lines = []
  const waiters = []
  p.stdout.on('data', (d) => {
    out += d
    let i
    while ((i = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, i)); out = out.slice(i + 1)
      while (waiters.length && lines.length) waiters.shift()(lines.shift())
    }
  })
  const exited = new Promise((resolve) => p.on('exit', resolve))
  return { p, exited, line: () => lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve)) }
}

async function throughput (lib, size) {
  const sub = child(['--role', `${lib}-sub`, '--size', String(size), '--count', String(COUNT)])
  const addr = (await sub.line()).split(' ')[1]
  const pub = child(['--role', `${lib}-pub`, '--addr', addr, '--size', String(size), '--count', String(COUNT)])
  const rate = Number((await sub.line()).split(' ')[1])
  await Promise.all([pub.exited, sub.exited])
  return rate
}

function pct (sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] }

async function latency (lib) {
  const srv = child(['--role', `${lib}-server`])
  const addr = (await srv.line()).split(' ')[1]
  const lat = []
  const payload = Buffer.alloc(8, 1)
  if (lib === 'netchan') {
    const { Endpoint } = netchan()
    const ep = new Endpoint({ name: 'bench-cli' })
    await ep.connect(addr)
    await ep.waitForServers('bench/echo', 10000)
    for (let i = 0; i < REQUESTS + 1000; i++) {
      const t = process.hrtime.bigint()
      await ep.request('bench/echo', payload, { timeoutMs: 5000 })
      if (i >= 1000) lat.push(Number(process.hrtime.bigint() - t) / 1000)
    }
    await ep.waitForSubscribers('bench/stop', 5000)
    await ep.publish('bench/stop', '')
    await ep.close()
  } else {
    const zmq = loadZmq()
    const sock = new zmq.Request()
    sock.connect(addr)
    for (let i = 0; i < REQUESTS + 1000; i++) {
      const t = process.hrtime.bigint()
      await sock.send(payload)
      await sock.receive()
      if (i >= 1000) lat.push(Number(process.hrtime.bigint() - t) / 1000)
    }
    await sock.send('stop'); await sock.receive()
    sock.close()
  }
  await srv.exited
  lat.sort((a, b) => a - b)
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99) }
}

async function main () {
  if (role) {
    const size = Number(opt('--size', 8))
    const addr = opt('--addr', null)
    const roles = {
      'netchan-sub': () => netchanSub(size, COUNT),
      'netchan-pub': () => netchanPub(addr, size, COUNT),
      'netchan-server': () => netchanServer(),
      'zeromq-sub': () => zmqPull(size, COUNT),
      'zeromq-pub': () => zmqPush(addr, size, COUNT),
      'zeromq-server': () => zmqRep()
    }
    return roles[role]()
  }
  const libs = ['netchan']
  const zmq = loadZmq()
  if (zmq) libs.push('zeromq')
  else console.log('# zeromq not loaded (pass --zeromq DIR with zeromq installed under DIR/node_modules)')
  console.log(`# node ${process.version}, ${require('node:os').cpus().length} cores, ${COUNT} messages per run, ${REQUESTS} requests${zmq ? ', zeromq ' + require(require.resolve('zeromq/package.json', { paths: [ZMQ_DIR] })).version : ''}`)
  // Rounds interleave the libraries so that load from elsewhere on the
  // machine falls on both alike; with several rounds the medians follow.
  const results = {}
  const record = (key, v) => { (results[key] = results[key] || []).push(v) }
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`# round ${round}`)
    for (const size of LATENCY_ONLY ? [] : [8, 1024]) {
      for (const lib of libs) {
        const r = await throughput(lib, size)
        record(`${lib} ${size}`, r)
        console.log(`${lib.padEnd(8)} ${lib === 'zeromq' ? 'push/pull' : 'pub/sub  '} ${String(size).padStart(5)} B  ${Math.round(r).toLocaleString('en-US').padStart(10)} msgs/s`)
      }
    }
    for (const lib of libs) {
      const { p50, p99 } = await latency(lib)
      record(`${lib} p50`, p50)
      record(`${lib} p99`, p99)
      console.log(`${lib.padEnd(8)} ${lib === 'zeromq' ? 'req/rep  ' : 'req/reply'}     8 B  p50 ${p50.toFixed(1)} us  p99 ${p99.toFixed(1)} us`)
    }
  }
  if (ROUNDS > 1) {
    const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
    console.log(`# medians of ${ROUNDS} rounds`)
    for (const [key, v] of Object.entries(results)) {
      const m = median(v)
      console.log(`${key.padEnd(14)} ${key.endsWith('p50') || key.endsWith('p99') ? m.toFixed(1) + ' us' : Math.round(m).toLocaleString('en-US') + ' msgs/s'}`)
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
