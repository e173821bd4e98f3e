'use strict'
// Shared helpers for the node:test suite. Tests load the package from this
// directory (netchan.js + the built addon); run-tests.sh also installs the
// packed tarball elsewhere and smoke-tests that.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')

const pkgDir = path.resolve(__dirname, '..')
const repo = path.resolve(pkgDir, '..', '..')
const netchan = require(pkgDir)

let seq = 0
/** A fresh listen address of each transport. */
function addrs () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-node-'))
  return {
    tcp: 'tcp://127.0.0.1:0',
    unix: `unix://${path.join(dir, `ep${seq++}.sock`)}`
  }
}

const TRANSPORTS = ['tcp', 'unix']

/** A connected pair: server listening on `transport`, client connected to it. */
async function pair (transport, opts = {}) {
  const server = new netchan.Endpoint({ name: `srv-${seq++}`, ...opts.server })
  const addr = await server.listen(addrs()[transport])
  const client = new netchan.Endpoint({ name: `cli-${seq++}`, ...opts.client })
  await client.connect(addr)
  return { server, client, addr, close: async () => { await client.close(); await server.close() } }
}

/** Spawns a process; resolves {code, signal, stdout, stderr}; kills it after `limitMs`. */
function run (cmd, args, { limitMs = 15000, env, input, onStderr } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
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

module.exports = { netchan, pkgDir, repo, addrs, pair, run, cli, python, within, TRANSPORTS }
