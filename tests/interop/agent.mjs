// Shows: the interop agent contract (tests/interop/README.md), in Node.
// Run: node tests/interop/agent.mjs sub tcp://127.0.0.1:0 'x/**' 1
// Prints: READY <addr>, then MSG/OK/ERR/SMSG/SAW lines as the contract says; exits 0.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { Endpoint } = require(path.join(here, '..', '..', 'bindings', 'node'))

function fnv1a64 (buf) {
  let h = 0xcbf29ce484222325n
  for (const b of buf) {
    h ^= BigInt(b)
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn
  }
  return h.toString(16).padStart(16, '0')
}

function payload (spec) {
  if (spec.startsWith('hex:')) return Buffer.from(spec.slice(4), 'hex')
  if (spec.startsWith('gen:')) {
    const n = Number(spec.slice(4))
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = i % 251
    return b
  }
  throw new Error(`bad payload spec ${spec}`)
}

const say = (line) => process.stdout.write(line + '\n')

// The typed value every agent with msgpack helpers publishes.
const OBJ = { int: -3, big: 2 ** 40, str: 'h\u00e9llo', list: [1, 2.5, true, null], bytes: Buffer.from([0x00, 0xff]), map: { a: 1 } }

// Canonical JSON of a decoded value: sorted keys, bytes as {"$bytes": hex}.
function canon (v) {
  const fix = (x) => {
    if (x instanceof Uint8Array) return { $bytes: Buffer.from(x).toString('hex') }
    if (typeof x === 'bigint') return Number(x)
    if (x instanceof Map) x = Object.fromEntries(x)
    if (Array.isArray(x)) return x.map(fix)
    if (x && typeof x === 'object') {
      const out = {}
      for (const k of Object.keys(x).sort()) out[k] = fix(x[k])
      return out
    }
    return x
  }
  return JSON.stringify(fix(v))
}
const [cmd, addr, ...rest] = process.argv.slice(2)
// Settings by name from NETCHAN_SETTINGS (`KEY=VALUE` lines): the matrix's
// TLS cells pass certificates this way to every language.
const settings = {}
for (const line of (process.env.NETCHAN_SETTINGS || '').split('\n')) {
  const i = line.indexOf('=')
  if (i > 0) settings[line.slice(0, i)] = line.slice(i + 1)
}
const ep = new Endpoint({ name: `node-agent-${process.pid}`, settings })

if (cmd === 'sub') {
  const [pattern, count] = [rest[0], Number(rest[1])]
  const sub = ep.subscribe(pattern)
  say(`READY ${await ep.listen(addr)}`)
  for (let i = 0; i < count; i++) {
    const m = await sub.recv()
    say(`MSG ${m.path} ${m.payload.length} ${fnv1a64(m.payload)}`)
  }
} else if (cmd === 'pub') {
  const [p, ...specs] = rest
  await ep.connect(addr)
  if (!(await ep.waitForSubscribers(p, 10000))) {
    say('ERR TIMEOUT no subscriber')
    process.exit(1)
  }
  for (const s of specs) await ep.publish(p, payload(s))
  say('DONE')
} else if (cmd === 'subobj') {
  const sub = ep.subscribe(rest[0])
  say(`READY ${await ep.listen(addr)}`)
  const m = await sub.recv()
  say('OBJ ' + canon(m.obj()))
} else if (cmd === 'pubobj') {
  await ep.connect(addr)
  if (!(await ep.waitForSubscribers(rest[0], 10000))) {
    say('ERR TIMEOUT no subscriber')
    process.exit(1)
  }
  await ep.publishObj(rest[0], OBJ)
  say('DONE ' + canon(OBJ))
} else if (cmd === 'serve') {
  ep.serve('echo', (req) => req.payload)
  ep.serve('fail', () => { throw new Error('boom') })
  say(`READY ${await ep.listen(addr)}`)
  setInterval(() => {}, 1 << 30) // until the harness ends it
} else if (cmd === 'req') {
  const [p, spec] = rest
  try {
    // A refused connection is an answer too (the TLS refusal cells).
    await ep.connect(addr)
    const r = await ep.request(p, payload(spec), { timeoutMs: 10000 })
    say(`OK ${r.length} ${fnv1a64(r)}`)
  } catch (e) {
    say(`ERR ${e.code} ${e.message}`)
  }
} else if (cmd === 'sserve') {
  ep.serveStream('secho', async (req, s) => {
    if (req.payload.length > 0) await s.send(req.payload)
    for await (const m of s) await s.send(m)
  })
  ep.serveStream('scancel', async (req, s) => {
    await s.send('hello')
    s.cancel()
  })
  ep.serveStream('swatch', async (req, s) => {
    let n = 0
    let end = 'END'
    try {
      while ((await s.recv()) !== null) n++
    } catch (e) {
      end = e.code
    }
    say(`SAW ${end} ${n}`)
  })
  say(`READY ${await ep.listen(addr)}`)
  setInterval(() => {}, 1 << 30) // until the harness ends it
} else if (cmd === 'sopen') {
  const [p, ...more] = rest
  const cancel = more[0] === '--cancel'
  const specs = cancel ? more.slice(1) : more
  await ep.connect(addr)
  try {
    const s = await ep.openStream(p)
    for (const spec of specs) await s.send(payload(spec))
    if (cancel) {
      s.cancel()
      say('CANCELLED')
    } else {
      s.end()
      for (;;) {
        const m = await s.recv()
        if (m === null) break
        say(`SMSG ${m.length} ${fnv1a64(m)}`)
      }
      say('SEND')
    }
  } catch (e) {
    say(`ERR ${e.code} ${e.message}`)
  }
} else {
  process.exit(2)
}
if (cmd !== 'serve' && cmd !== 'sserve') await ep.close()
