'use strict'
// Shared helpers for the node:test suite. Tests load the package from this
// directory (netchan.js + the built addon); run-tests.sh also installs the
// packed tarball elsewhere and smoke-tests that.
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const net = require('node:net')
const { spawn } = require('node:child_process')

const pkgDir = path.resolve(__dirname, '..')
const repo = path.resolve(pkgDir, '..', '..')
const netchan = require(pkgDir)

let seq = 0
let tmp = null
/** This test process's directory for socket files, removed when it exits. */
function tmpDir () {
  if (tmp === null) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-node-'))
    process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))
  }
  return tmp
}

/** A fresh listen address of each transport. */
function addrs () {
  const n = seq++
  return {
    tcp: 'tcp://127.0.0.1:0',
    // Windows has named pipes where other systems have Unix sockets.
    ...(process.platform === 'win32'
      ? { pipe: `pipe://netchan-test-${process.pid}-${n}` }
      : { unix: `unix://${path.join(tmpDir(), `ep${n}.sock`)}` })
  }
}

/** TCP, and this system's same-host transport. */
const TRANSPORTS = ['tcp', process.platform === 'win32' ? 'pipe' : 'unix']

/**
 * A connected pair: server listening on `transport`, client connected to it
 * (`info` is what the client's connect() resolved with).
 */
async function pair (transport, opts = {}) {
  const server = new netchan.Endpoint({ name: `srv-${seq++}`, ...opts.server })
  const addr = await server.listen(addrs()[transport])
  const client = new netchan.Endpoint({ name: `cli-${seq++}`, ...opts.client })
  const info = await client.connect(addr)
  return { server, client, addr, info, close: async () => { await client.close(); await server.close() } }
}

/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of the endpoint listening at
 * `target` (a tcp:// address), for tests that must hold or cut a link at a
 * known point instead of racing a timer:
 * - hold(kinds): from now on, frames of these wire kinds (docs/PROTOCOL.md:
 *   0x01 HELLO, 0x03 PING, 0x21 REQUEST, ...) sent towards the target, and
 *   everything after them on that connection, wait; release() sends them on
 *   in order.
 * - cut(): ends every proxied connection (both sides see the link lost).
 * - refuseWith(bytes): later connections get `bytes` instead of the target.
 */
async function proxy (target) {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(target)
  if (!m) throw new Error(`proxy: not a tcp:// address: ${target}`)
  const sockets = new Set()
  const links = new Set()
  let held = null
  let garbage = null
  const track = (s) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)) }
  const server = net.createServer((down) => {
    track(down)
    if (garbage) { down.resume(); down.end(garbage); return }
    const up = net.connect(Number(m[2]), m[1])
    track(up)
    up.on('close', () => down.destroy())
    down.on('close', () => up.destroy())
    up.pipe(down)
    const link = { up, queue: [] }
    links.add(link)
    down.on('close', () => links.delete(link))
    let buf = Buffer.alloc(0)
    down.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      // Frames: u32 length (big-endian) of what follows, then the kind.
      while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = 4 + buf.readUInt32BE(0)
        const frame = buf.subarray(0, n)
        buf = buf.subarray(n)
        if (held && (link.queue.length > 0 || held.has(frame[4]))) link.queue.push(frame)
        else up.write(frame)
      }
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    addr: `tcp://127.0.0.1:${server.address().port}`,
    hold (kinds) { held = new Set(kinds) },
    /** How many frames wait now, on all connections. */
    waiting () { let n = 0; for (const l of links) n += l.queue.length; return n },
    release () {
      held = null
      for (const l of links) { for (const f of l.queue.splice(0)) l.up.write(f) }
    },
    cut () { for (const s of sockets) s.destroy() },
    refuseWith (bytes) { garbage = bytes },
    close () {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * Spawns a process and follows its stdout line by line: `line(re)` resolves
 * with the first line matching `re` (one seen already counts), `exited`
 * with {code, signal} once it ended and its output was read. Call kill()
 * in a `finally`.
 */
function follow (cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const lines = []
  const waiters = []
  let stderr = ''
  let rest = ''
  child.stderr.on('data', (d) => { stderr += d })
  child.stdout.on('data', (d) => {
    rest += d
    let i
    while ((i = rest.indexOf('\n')) >= 0) {
      const l = rest.slice(0, i)
      rest = rest.slice(i + 1)
      lines.push(l)
      for (const w of waiters.slice()) {
        if (w.re.test(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l) }
      }
    }
  })
  // 'close', not 'exit': by then every line of its output was read.
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  return {
    child,
    exited,
    lines,
    stderr: () => stderr,
    line (re) {
      const seen = lines.find((l) => re.test(l))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve })
        exited.then(({ code, signal }) => reject(new Error(`the process exited (${code ?? signal}) before printing ${re}; stdout: ${JSON.stringify(lines)}; stderr: ${stderr}`)))
      })
    },
    kill () { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  }
}

/** Spawns a process; resolves {code, signal, stdout, stderr}; kills it after `limitMs`. */
function run (cmd, args, { limitMs = 15000, env, input, onStderr, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let killed = false
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL') }, limitMs)
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d; if (onStderr) onStderr(stderr, child) })
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, killed, child })
    })
    if (input !== undefined) child.stdin.end(input)
    else child.stdin.end()
  })
}

/** The netchan CLI, built by `cargo build -p netchan-cli`. */
function cli () {
  const p = process.env.NETCHAN_CLI || path.join(repo, 'target', 'debug', 'netchan')
  return fs.existsSync(p) ? p : null
}

/** A Python with the netchan package installed (for interop), if any. */
function python () {
  const candidates = [process.env.NETCHAN_PYTHON, path.join(repo, 'target', 'python', 'test-venv', 'bin', 'python')]
  for (const c of candidates) {
    if (c && fs.existsSync(c)) return c
  }
  return null
}

/** Rejects if `p` does not settle within `ms` (a watchdog, not a timing assertion). */
function within (p, ms, what) {
  let t
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`watchdog: ${what} did not finish within ${ms} ms`)), ms) })]).finally(() => clearTimeout(t))
}

async function rejectsWith (p, code) {
  await assert.rejects(p, (e) => {
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`)
    assert.ok(e instanceof Error)
    assert.ok(e.message.length > 0)
    return true
  })
}

/** Collects an endpoint's events; `until(pred)` resolves once pred(events) holds. */
function recorder (ep) {
  const events = []
  const waiters = []
  ep.on('event', (e) => {
    events.push(e)
    for (const w of waiters.slice()) {
      if (w.pred(events)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(events) }
    }
  })
  return {
    events,
    until (pred, what) {
      if (pred(events)) return Promise.resolve(events)
      return within(new Promise((resolve) => waiters.push({ pred, resolve })), 10000, what)
    }
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

/** Resolves once `cond()` holds, looking every millisecond; a watchdog bounds the wait. */
async function until (cond, what, ms = 5000) {
  let stop = false
  try {
    await within((async () => { while (!stop && !cond()) await new Promise((resolve) => setTimeout(resolve, 1)) })(), ms, what)
  } finally {
    stop = true
  }
}

module.exports = { netchan, pkgDir, repo, addrs, pair, proxy, follow, run, cli, python, within, rejectsWith, recorder, nextTurn, until, TRANSPORTS }

