'use strict'
// The npm package as a user gets it: the packed tarball installed offline
// into an empty project, the addon's link-time needs, the package metadata,
// and the generated files being the committed ones.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { pkgDir, repo, run } = require('./helpers.js')

const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

function has (cmd) {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' })
    return true
  } catch (_) {
    return false
  }
}

const SMOKE_CJS = `
const { Endpoint, codes } = require('netchan')
;(async () => {
  const a = new Endpoint({ name: 'smoke-a' })
  const addr = await a.listen('tcp://127.0.0.1:0')
  a.serve('echo', (r) => r.payload)
  const b = new Endpoint({ name: 'smoke-b' })
  await b.connect(addr)
  await b.waitForServers('echo', 5000)
  const r = (await b.request('echo', 'ok')).toString()
  const e = await b.request('none').catch((x) => x.code)
  await b.close(); await a.close()
  if (r !== 'ok' || e !== codes.NO_RESPONDERS) throw new Error(\`smoke failed: \${r} \${e}\`)
  console.log('require() smoke test: ok')
})()
`

const SMOKE_ESM = `
import { Endpoint } from 'netchan'
import netchan from 'netchan'
const a = new Endpoint({ name: 'esm-a' })
const addr = await a.listen('tcp://127.0.0.1:0')
const sub = a.subscribe('t')
const b = new netchan.Endpoint({ name: 'esm-b' })
await b.connect(addr)
await b.waitForSubscribers('t', 5000)
await b.publishObj('t', { esm: true })
for await (const m of sub) { if (!m.obj().esm) throw new Error('bad message'); break }
await b.close(); await a.close()
console.log('ESM import smoke test: ok')
`

test('npm pack installs offline into an empty project; require() and import work', { skip: has(npm) ? false : 'npm not found' }, async () => {
  const work = path.join(repo, 'target', 'node')
  const packDir = path.join(work, 'pack')
  const consumer = path.join(work, 'consumer')
  for (const d of [packDir, consumer]) {
    fs.rmSync(d, { recursive: true, force: true })
    fs.mkdirSync(d, { recursive: true })
  }
  const packed = await run(npm, ['pack', '--silent', '--pack-destination', packDir], { limitMs: 120000, cwd: pkgDir })
  assert.equal(packed.code, 0, packed.stderr)
  const tarballs = fs.readdirSync(packDir).filter((f) => /^netchan-.*\.tgz$/.test(f))
  assert.deepEqual(tarballs, [`netchan-${pkg.version}.tgz`])
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  // --offline: nothing may come from the network. The package has no
  // runtime dependencies; the addon for this platform is in the tarball.
  const installed = await run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(packDir, tarballs[0])], { limitMs: 120000, cwd: consumer })
  assert.equal(installed.code, 0, installed.stderr)
  const inst = path.join(consumer, 'node_modules', 'netchan')
  const instPkg = JSON.parse(fs.readFileSync(path.join(inst, 'package.json'), 'utf8'))
  assert.equal(instPkg.dependencies, undefined, 'no runtime dependencies')
  assert.ok(fs.readdirSync(inst).some((f) => /^netchan\..*\.node$/.test(f)), 'the addon is in the package')
  assert.deepEqual(fs.readdirSync(path.join(consumer, 'node_modules')).filter((f) => !f.startsWith('.')), ['netchan'])
  fs.writeFileSync(path.join(consumer, 'smoke.cjs'), SMOKE_CJS)
  fs.writeFileSync(path.join(consumer, 'smoke.mjs'), SMOKE_ESM)
  for (const [script, line] of [['smoke.cjs', 'require() smoke test: ok'], ['smoke.mjs', 'ESM import smoke test: ok']]) {
    const r = await run(process.execPath, [path.join(consumer, script)], { limitMs: 20000, cwd: consumer })
    assert.equal(r.killed, false, `${script} did not exit by itself`)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), line)
  }
})

test('package.json names one optional package per napi target', () => {
  // x86_64-unknown-linux-gnu -> netchan-linux-x64-gnu, as napi names them.
  const name = (triple) => {
    const [arch, , os, abi] = triple.split('-')
    const a = { x86_64: 'x64', aarch64: 'arm64' }[arch]
    const o = { linux: 'linux', darwin: 'darwin', windows: 'win32' }[os]
    assert.ok(a && o, `unexpected target ${triple}`)
    return ['netchan', o, a, ...(abi ? [abi] : [])].join('-')
  }
  const expected = Object.fromEntries(pkg.napi.targets.map((t) => [name(t), pkg.version]))
  assert.deepEqual(pkg.optionalDependencies, expected)
  assert.equal(pkg.napi.binaryName, 'netchan')
})

const linuxX64 = process.platform === 'linux' && process.arch === 'x64'
const readelf = has('readelf') && has('objdump')

test('the Linux addon links only the C libraries, and only glibc 2.17 symbols when built portable', { skip: !linuxX64 ? 'not Linux x64' : !readelf ? 'readelf/objdump not found' : false }, () => {
  const addon = path.join(pkgDir, 'netchan.linux-x64-gnu.node')
  assert.ok(fs.existsSync(addon), 'the addon is built')
  // run-tests.sh says which build it made.
  const portable = process.env.NETCHAN_NODE_PORTABLE === '1'
  const needed = execFileSync('readelf', ['-d', addon], { encoding: 'utf8' }).match(/\(NEEDED\).*\[(.+)\]/g).map((l) => l.match(/\[(.+)\]/)[1])
  const allowed = new Set(['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'ld-linux-x86-64.so.2'])
  // A build with the system linker also takes libgcc_s (unwinding).
  if (!portable) allowed.add('libgcc_s.so.1')
  assert.deepEqual(needed.filter((n) => !allowed.has(n)), [], `needs ${needed.join(', ')}`)
  const versions = [...new Set(execFileSync('objdump', ['-T', addon], { encoding: 'utf8' }).match(/GLIBC_[0-9.]+/g))].map((v) => v.slice(6))
  const cmp = (a, b) => { const x = a.split('.').map(Number); const y = b.split('.').map(Number); return x[0] - y[0] || (x[1] || 0) - (y[1] || 0) }
  const highest = versions.sort(cmp).pop()
  const limit = portable ? '2.17' : process.report.getReport().header.glibcVersionRuntime
  assert.ok(cmp(highest, limit) <= 0, `needs glibc ${highest}, more than ${limit}`)
})

const gitCheckout = has('git') && fs.existsSync(path.join(repo, '.git'))

test('index.js and index.d.ts are what napi build generated', { skip: gitCheckout ? false : 'not a git checkout' }, async () => {
  // run-tests.sh builds before this suite; the build rewrites both files.
  const r = await run('git', ['-C', repo, 'diff', '--exit-code', '--', 'bindings/node/index.js', 'bindings/node/index.d.ts'])
  assert.equal(r.code, 0, `the generated files differ from the committed ones:\n${r.stdout}`)
})
