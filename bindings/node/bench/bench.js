'use strict'
// Benchmark (not run in CI): netchan Node publisher -> Node subscriber in
// separate processes over TCP at 8 B and 1 KiB (msgs/s), and request/reply
// latency p50/p99/p99.9 with the CPU time (user + system, process.cpuUsage) the
// client and the server process spent per 10,000 round trips, beside the
// `zeromq` npm package (PUSH/PULL, REQ/REP) when it can be loaded.
// Usage: node bench/bench.js [--zeromq DIR] [--count N] [--requests N] [--rounds N] [--latency-only]
//                            [--busy-poll US[,US...]]
//   DIR: a directory whose node_modules has `zeromq` (skip zeromq without it).
//   US: the endpoint option busyPollUs (the core's busy_poll) of the netchan
//       client and service; with several values (`0,100`) each round measures
//       request/reply once per value (default: the core's default).
// Prints one line per measurement: LIB PATTERN SIZE RESULT; with --rounds N > 1
// the medians follow, with the lowest and highest round.
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
// undefined: the endpoint's default (the core's).
const BUSY_POLLS = opt('--busy-poll', null) === null ? [undefined] : opt('--busy-poll', null).split(',').map(Number)
const BP = opt('--bp', null) // a child's busyPollUs

function loadZmq () {
  if (!ZMQ_DIR) return null
  try { return require(require.resolve('zeromq', { paths: [ZMQ_DIR] })) } catch (e) { return null }
}

function netchan () {
  return require(path.resolve(__dirname, '..'))
}

/** Endpoint options with busyPollUs `bp` (undefined: the core's default). */
function opts (name, bp) {
  return bp === undefined || bp === null ? { name } : { name, busyPollUs: Number(bp) }
}

/** CPU time (user + system) in milliseconds since `since` (a process.cpuUsage()). */
function cpuMs (since) {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
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
  const ep = new Endpoint(opts('bench-srv', BP))
  const addr = await ep.listen('tcp://127.0.0.1:0')
  ep.serve('bench/echo', (req) => req.payload)
  // `bench/cpu`: the CPU time spent since the previous call (the first one
  // marks the start of the measured requests).
  let mark = process.cpuUsage()
  ep.serve('bench/cpu', () => { const ms = cpuMs(mark); mark = process.cpuUsage(); return String(ms) })
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
  let mark = process.cpuUsage()
  for await (const [msg] of sock) {
    if (msg.length === 4 && msg.toString() === 'stop') { await sock.send('bye'); break }
    if (msg.length === 3 && msg.toString() === 'cpu') { const ms = cpuMs(mark); mark = process.cpuUsage(); await sock.send(String(ms)); continue }
    await sock.send(msg)
  }
  sock.close()
}

// ---- driver ---------------------------------------------------------------

function child (roleArgs) {
  const p = spawn(process.execPath, [__filename, ...roleArgs, ...(ZMQ_DIR ? ['--zeromq', ZMQ_DIR] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
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

/**
 * Request/reply round trips one at a time: 1,000 warm-up, then REQUESTS
 * measured. CPU time is taken over the measured ones, in this process (the
 * client) and in the server's (it reports its own).
 */
async function latency (lib, bp) {
  const srv = child(['--role', `${lib}-server`, ...(bp === undefined ? [] : ['--bp', String(bp)])])
  const addr = (await srv.line()).split(' ')[1]
  const lat = new Array(REQUESTS)
  const payload = Buffer.alloc(8, 1)
  let client, server
  if (lib === 'netchan') {
    const { Endpoint } = netchan()
    const ep = new Endpoint(opts('bench-cli', bp))
    await ep.connect(addr)
    await ep.waitForServers('bench/echo', 10000)
    await ep.waitForServers('bench/cpu', 10000)
    for (let i = 0; i < 1000; i++) await ep.request('bench/echo', payload, { timeoutMs: 5000 })
    await ep.request('bench/cpu')
    const c0 = process.cpuUsage()
    for (let i = 0; i < REQUESTS; i++) {
      const t = process.hrtime.bigint()
      await ep.request('bench/echo', payload, { timeoutMs: 5000 })
      lat[i] = Number(process.hrtime.bigint() - t) / 1000
    }
    client = cpuMs(c0)
    server = Number(await ep.request('bench/cpu'))
    await ep.waitForSubscribers('bench/stop', 5000)
    await ep.publish('bench/stop', '')
    await ep.close()
  } else {
    const zmq = loadZmq()
    const sock = new zmq.Request()
    sock.connect(addr)
    const rt = async (m) => { await sock.send(m); return (await sock.receive())[0] }
    for (let i = 0; i < 1000; i++) await rt(payload)
    await rt('cpu')
    const c0 = process.cpuUsage()
    for (let i = 0; i < REQUESTS; i++) {
      const t = process.hrtime.bigint()
      await rt(payload)
      lat[i] = Number(process.hrtime.bigint() - t) / 1000
    }
    client = cpuMs(c0)
    server = Number(String(await rt('cpu')))
    await rt('stop')
    sock.close()
  }
  await srv.exited
  lat.sort((a, b) => a - b)
  const per10k = 10000 / REQUESTS
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), p999: pct(lat, 0.999), cpuClient: client * per10k, cpuServer: server * per10k }
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
    // Each busy-poll value in turn, within the round, so that they are
    // interleaved too.
    const runs = libs.flatMap((lib) => lib === 'netchan' ? BUSY_POLLS.map((bp) => [lib, bp]) : [[lib, undefined]])
    for (const [lib, bp] of runs) {
      const r = await latency(lib, bp)
      const name = lib === 'netchan' && bp !== undefined ? `netchan bp=${bp}` : lib
      for (const k of ['p50', 'p99', 'p999', 'cpuClient', 'cpuServer']) record(`${name} ${k}`, r[k])
      record(`${name} cpuTotal`, r.cpuClient + r.cpuServer)
      const label = lib === 'netchan' ? `req/reply${bp === undefined ? '' : ` busy-poll ${bp} us`}` : 'req/rep'
      console.log(`${lib.padEnd(8)} ${label.padEnd(27)} 8 B  p50 ${r.p50.toFixed(1)} us  p99 ${r.p99.toFixed(1)} us  p99.9 ${r.p999.toFixed(1)} us  CPU per 10k round trips: client ${r.cpuClient.toFixed(0)} ms + server ${r.cpuServer.toFixed(0)} ms = ${(r.cpuClient + r.cpuServer).toFixed(0)} ms`)
    }
  }
  if (ROUNDS > 1) {
    const sorted = (v) => [...v].sort((a, b) => a - b)
    console.log(`# medians of ${ROUNDS} rounds (lowest - highest round)`)
    for (const [key, v] of Object.entries(results)) {
      const s = sorted(v)
      const m = s[Math.floor(s.length / 2)]
      const f = /p50|p99/.test(key) ? (x) => x.toFixed(1) + ' us' : /cpu/.test(key) ? (x) => x.toFixed(0) + ' ms/10k' : (x) => Math.round(x).toLocaleString('en-US') + ' msgs/s'
      console.log(`${key.padEnd(24)} ${f(m)}  (${f(s[0])} - ${f(s[s.length - 1])})`)
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
