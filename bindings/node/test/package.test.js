'use strict'
// The npm package as a user gets it: the packed tarball installed offline
// with its platform's addon package into an empty project, the errors
// without one, the addon's link-time needs, the package metadata, and the
// generated types being the committed ones.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
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

const native = require(path.join(pkgDir, 'native.js'))
const platform = native.platformName()

/**
 * Stages this platform's addon package (npm/<platform>: its package.json
 * and README, the built addon, the licenses) in `dir` and packs it there;
 * returns the tarball's path.
 */
async function packPlatformPackage (dir) {
  const stage = path.join(dir, 'stage')
  fs.mkdirSync(stage, { recursive: true })
  const from = path.join(pkgDir, 'npm', platform)
  for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(from, f), path.join(stage, f))
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE']) fs.copyFileSync(path.join(pkgDir, f), path.join(stage, f))
  const addon = native.ADDONS[platform]
  fs.copyFileSync(path.join(pkgDir, addon), path.join(stage, addon))
  const packed = await run(npm, ['pack', '--silent', '--pack-destination', dir], { limitMs: 120000, cwd: stage })
  assert.equal(packed.code, 0, packed.stderr)
  return path.join(dir, `netchan-${platform}-${pkg.version}.tgz`)
}

/** A fresh empty project in target/node/<name>; returns its folder. */
function emptyProject (name) {
  const d = path.join(repo, 'target', 'node', name)
  fs.rmSync(d, { recursive: true, force: true })
  fs.mkdirSync(d, { recursive: true })
  fs.writeFileSync(path.join(d, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  return d
}

const knownPlatform = native.ADDONS[platform] !== undefined

test('npm pack installs offline into an empty project; require() and import work', { skip: !has(npm) ? 'npm not found' : !knownPlatform ? `no addon package for ${platform}` : false }, async () => {
  const packDir = path.join(repo, 'target', 'node', 'pack')
  fs.rmSync(packDir, { recursive: true, force: true })
  fs.mkdirSync(packDir, { recursive: true })
  const consumer = emptyProject('consumer')
  const packed = await run(npm, ['pack', '--silent', '--pack-destination', packDir], { limitMs: 120000, cwd: pkgDir })
  assert.equal(packed.code, 0, packed.stderr)
  const main = path.join(packDir, `netchan-${pkg.version}.tgz`)
  assert.ok(fs.existsSync(main), `npm pack wrote ${fs.readdirSync(packDir)}`)
  const addonPkg = await packPlatformPackage(packDir)
  // --offline: nothing may come from the network. The main package's only
  // dependencies are the optional addon packages; this platform's is given.
  const installed = await run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', main, addonPkg], { limitMs: 120000, cwd: consumer })
  assert.equal(installed.code, 0, installed.stderr)
  const modules = path.join(consumer, 'node_modules')
  const inst = path.join(modules, 'netchan')
  const instPkg = JSON.parse(fs.readFileSync(path.join(inst, 'package.json'), 'utf8'))
  assert.equal(instPkg.dependencies, undefined, 'no runtime dependencies but the optional addon packages')
  assert.ok(!fs.readdirSync(inst).some((f) => f.endsWith('.node')), 'the main package carries no addon')
  for (const dir of [inst, path.join(modules, `netchan-${platform}`)]) {
    for (const f of ['LICENSE-MIT', 'LICENSE-APACHE']) {
      assert.deepEqual(fs.readFileSync(path.join(dir, f)), fs.readFileSync(path.join(repo, f)), `${dir}/${f} is the repository's`)
    }
  }
  assert.deepEqual(fs.readdirSync(path.join(modules, `netchan-${platform}`)).sort(),
    ['LICENSE-APACHE', 'LICENSE-MIT', 'README.md', native.ADDONS[platform], 'package.json'].sort())
  assert.deepEqual(fs.readdirSync(modules).filter((f) => !f.startsWith('.')).sort(), ['netchan', `netchan-${platform}`])
  fs.writeFileSync(path.join(consumer, 'smoke.cjs'), SMOKE_CJS)
  fs.writeFileSync(path.join(consumer, 'smoke.mjs'), SMOKE_ESM)
  for (const [script, line] of [['smoke.cjs', 'require() smoke test: ok'], ['smoke.mjs', 'ESM import smoke test: ok']]) {
    const r = await run(process.execPath, [path.join(consumer, script)], { limitMs: 20000, cwd: consumer })
    assert.equal(r.killed, false, `${script} did not exit by itself`)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), line)
  }
})

test('without its addon package, require() names the platform and the missing package', { skip: !has(npm) ? 'npm not found' : !knownPlatform ? `no addon package for ${platform}` : false }, async () => {
  const packDir = path.join(repo, 'target', 'node', 'pack-main')
  fs.rmSync(packDir, { recursive: true, force: true })
  fs.mkdirSync(packDir, { recursive: true })
  const consumer = emptyProject('consumer-no-addon')
  const packed = await run(npm, ['pack', '--silent', '--pack-destination', packDir], { limitMs: 120000, cwd: pkgDir })
  assert.equal(packed.code, 0, packed.stderr)
  // As with --omit=optional: npm installs the main package alone.
  const installed = await run(npm, ['install', '--offline', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error', path.join(packDir, `netchan-${pkg.version}.tgz`)], { limitMs: 120000, cwd: consumer })
  assert.equal(installed.code, 0, installed.stderr)
  const r = await run(process.execPath, ['-e', "try { require('netchan') } catch (e) { console.log(e.code); console.log(e.message) }"], { limitMs: 20000, cwd: consumer })
  assert.equal(r.code, 0, r.stderr)
  const [code, message] = r.stdout.trim().split('\n')
  assert.equal(code, 'ADDON_NOT_INSTALLED')
  assert.match(message, new RegExp(`addon for ${platform} is not installed: the package netchan-${platform} is missing`))
})

test('on a platform without an addon, require() names it and the platforms that have one', async () => {
  // A machine netchan has no addon for, as Node would report it.
  const code = "Object.defineProperty(process, 'arch', { value: 'riscv64' }); Object.defineProperty(process, 'platform', { value: 'freebsd' });" +
    "try { require('./netchan.js') } catch (e) { console.log(e.code); console.log(e.message) }"
  const r = await run(process.execPath, ['-e', code], { limitMs: 20000, cwd: pkgDir })
  assert.equal(r.code, 0, r.stderr)
  const [errCode, message] = r.stdout.trim().split('\n')
  assert.equal(errCode, 'UNSUPPORTED_PLATFORM')
  assert.match(message, /no native addon for this platform \(freebsd-riscv64, Node v[0-9.]+\); prebuilt addons exist for linux-x64-gnu, linux-arm64-gnu, win32-x64\./)
})

test('NETCHAN_NATIVE_PATH loads the addon it names, on any platform', { skip: !knownPlatform ? `no addon built for ${platform}` : false }, async () => {
  // A platform netchan has no addon for: the path wins before the platform
  // is looked at.
  const code = "Object.defineProperty(process, 'arch', { value: 'riscv64' }); Object.defineProperty(process, 'platform', { value: 'freebsd' });" +
    "console.log(require('./netchan.js').codes.TIMEOUT)"
  const env = { ...process.env, NETCHAN_NATIVE_PATH: path.join(pkgDir, native.ADDONS[platform]) }
  const r = await run(process.execPath, ['-e', code], { limitMs: 20000, cwd: pkgDir, env })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'TIMEOUT')
})

test('a NETCHAN_NATIVE_PATH that does not load is ADDON_NOT_LOADED, naming the path', async () => {
  const missing = path.join(os.tmpdir(), 'no-such-dir', 'netchan.node')
  const code = "try { require('./netchan.js') } catch (e) { console.log(e.code); console.log(e.message) }"
  const r = await run(process.execPath, ['-e', code], { limitMs: 20000, cwd: pkgDir, env: { ...process.env, NETCHAN_NATIVE_PATH: missing } })
  assert.equal(r.code, 0, r.stderr)
  const [errCode, message] = r.stdout.trim().split('\n')
  assert.equal(errCode, 'ADDON_NOT_LOADED')
  assert.ok(message.startsWith(`NETCHAN_NATIVE_PATH=${missing} could not be loaded`), message)
})

test('package.json names one optional package per napi target, each with its npm/ folder', () => {
  // x86_64-unknown-linux-gnu -> linux-x64-gnu; x86_64-pc-windows-gnu -> win32-x64
  // (one Windows build, so its name carries no toolchain).
  const name = (triple) => {
    const [arch, , os, abi] = triple.split('-')
    const a = { x86_64: 'x64', aarch64: 'arm64' }[arch]
    const o = { linux: 'linux', windows: 'win32' }[os]
    assert.ok(a && o, `unexpected target ${triple}`)
    return [o, a, ...(o === 'linux' ? [abi] : [])].join('-')
  }
  const platforms = pkg.napi.targets.map(name)
  assert.deepEqual(pkg.optionalDependencies, Object.fromEntries(platforms.map((p) => [`netchan-${p}`, pkg.version])))
  assert.deepEqual(Object.keys(native.ADDONS).sort(), [...platforms].sort())
  assert.deepEqual(fs.readdirSync(path.join(pkgDir, 'npm')).sort(), [...platforms].sort())
  for (const p of platforms) {
    const sub = JSON.parse(fs.readFileSync(path.join(pkgDir, 'npm', p, 'package.json'), 'utf8'))
    const [os, cpu, libc] = p.split('-')
    assert.equal(sub.name, `netchan-${p}`)
    assert.equal(sub.version, pkg.version)
    assert.equal(sub.license, pkg.license)
    assert.equal(sub.main, native.ADDONS[p])
    assert.deepEqual(sub.os, [os])
    assert.deepEqual(sub.cpu, [cpu])
    assert.deepEqual(sub.libc, libc ? ['glibc'] : undefined)
    assert.ok(sub.files.includes(native.ADDONS[p]) && sub.files.includes('LICENSE-MIT') && sub.files.includes('LICENSE-APACHE'))
  }
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

test('index.d.ts is what napi build generated', { skip: gitCheckout ? false : 'not a git checkout' }, async () => {
  // run-tests.sh builds before this suite; the build rewrites the file (and
  // writes no index.js: native.js is the loader).
  const r = await run('git', ['-C', repo, 'diff', '--exit-code', '--', 'bindings/node/index.d.ts'])
  assert.equal(r.code, 0, `the generated file differs from the committed one:\n${r.stdout}`)
  assert.ok(!fs.existsSync(path.join(pkgDir, 'index.js')), 'napi build wrote index.js: build with --no-js')
})
