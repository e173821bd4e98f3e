'use strict'
// Runs examples/node/* as a user would (require('netchan') resolving to this
// package) over TCP and Unix sockets: each must exit 0 and print what its
// header says.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { netchan, pkgDir, repo, addrs, run, follow, within, TRANSPORTS } = require('./helpers.js')

// A node_modules/netchan that points at this package.
const modules = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-examples-'))
fs.symlinkSync(pkgDir, path.join(modules, 'netchan'), 'dir')
// Scratch directories go when this test process exits (the symlinks only:
// rmSync does not follow them into the package).
const scratches = [modules]
process.on('exit', () => { for (const d of scratches) fs.rmSync(d, { recursive: true, force: true }) })
const env = { NODE_PATH: modules }
const dir = path.join(repo, 'examples', 'node')

const expect = {
  'pubsub.js': [/^listening on /m, /^sensors\/kitchen\/temp\t21\.5$/m, /^sensors\/garage\/temp\t12\.0$/m, /^sensors\/attic\/temp\t\{"celsius":30\.5\}$/m],
  'reqrep.js': [/^reply: hello, ana \(from client\)$/m, /^fail: HANDLER_ERROR/m, /^nobody\/here: NO_RESPONDERS/m, /^slow: TIMEOUT/m],
  'stream.js': [/^listening on /m, /^HELLO\nSTREAM\nWORLD\nend$/m, /^pipeline: HELLO PIPELINE$/m],
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

/** The code block of `lang` under the README heading `heading`. */
function readmeBlock (heading, lang) {
  const readme = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8')
  const section = readme.split(`\n## ${heading}\n`)[1]
  assert.ok(section, `README has no section ${heading}`)
  const m = section.match(new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```'))
  assert.ok(m, `no ${lang} block under ${heading}`)
  return m[1]
}

/** A scratch directory whose node_modules/netchan is this package (ESM ignores NODE_PATH). */
function scratch () {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'netchan-readme-'))
  scratches.push(d)
  fs.mkdirSync(path.join(d, 'node_modules'))
  fs.symlinkSync(pkgDir, path.join(d, 'node_modules', 'netchan'), 'dir')
  return d
}

test('the README CommonJS quickstart runs and exits by itself', async () => {
  const d = scratch()
  fs.writeFileSync(path.join(d, 'quickstart.cjs'), readmeBlock('Quickstart (CommonJS)', 'js'))
  const r = await run(process.execPath, [path.join(d, 'quickstart.cjs')], { limitMs: 20000, cwd: d })
  assert.equal(r.killed, false, 'the quickstart did not exit by itself')
  assert.equal(r.code, 0, r.stderr)
  // What its comments say, in order.
  assert.deepEqual(r.stdout.trim().split('\n'), ['sensors/kitchen/temp 21.5', 'hello, ana'])
})

test('the README ESM quickstart runs: for await until stop', async () => {
  const d = scratch()
  const server = new netchan.Endpoint({ name: 'readme-server' })
  let child = null
  try {
    const addr = await server.listen('tcp://127.0.0.1:0')
    const code = readmeBlock('Quickstart (ESM)', 'js')
    assert.ok(code.includes("'tcp://127.0.0.1:7000'"))
    fs.writeFileSync(path.join(d, 'quickstart.mjs'), code.replace("'tcp://127.0.0.1:7000'", JSON.stringify(addr)))
    child = follow(process.execPath, [path.join(d, 'quickstart.mjs')], { cwd: d })
    assert.ok(await server.waitForSubscribers('sensors/kitchen/temp', 10000))
    await server.publish('sensors/kitchen/temp', '21.5')
    await server.publish('sensors/garage/temp', 'stop')
    assert.deepEqual(await within(child.exited, 20000, 'the quickstart to exit by itself'), { code: 0, signal: null }, child.stderr())
    assert.deepEqual(child.lines, ['sensors/kitchen/temp 21.5 from readme-server', 'sensors/garage/temp stop from readme-server'])
  } finally {
    if (child) child.kill()
    await server.close()
  }
})

test('the README TypeScript quickstart compiles under tsc --strict and runs', async () => {
  const d = scratch()
  const server = new netchan.Endpoint({ name: 'readme-ts-server' })
  try {
    const addr = await server.listen(addrs().unix)
    const code = readmeBlock('Quickstart (TypeScript)', 'ts')
    assert.ok(code.includes("'unix:///tmp/app.sock'"))
    // Its last line subscribes; closing after it lets the program end.
    const program = code.replace("'unix:///tmp/app.sock'", JSON.stringify(addr)) + '\nawait ep.close()\n'
    fs.writeFileSync(path.join(d, 'quickstart.mts'), program)
    fs.writeFileSync(path.join(d, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true,
        outDir: 'out',
        target: 'ES2022',
        module: 'node16',
        moduleResolution: 'node16',
        lib: ['ES2022', 'DOM'],
        types: ['node'],
        typeRoots: [path.join(pkgDir, 'node_modules', '@types')],
        skipLibCheck: false
      },
      files: ['quickstart.mts']
    }))
    const tsc = require.resolve('typescript/bin/tsc', { paths: [pkgDir] })
    const c = await run(process.execPath, [tsc, '-p', d], { limitMs: 60000, cwd: d })
    assert.equal(c.code, 0, c.stdout + c.stderr)
    // Nobody serves users/42 there.
    const r = await run(process.execPath, [path.join(d, 'out', 'quickstart.mjs')], { limitMs: 20000, cwd: d })
    assert.equal(r.killed, false, 'the quickstart did not exit by itself')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.trim().split('\n'), ['nobody serves users/42'])
  } finally {
    await server.close()
  }
})

test('the README stream snippet runs between two connected endpoints', async () => {
  const d = scratch()
  const prelude = [
    "import { Endpoint } from 'netchan'",
    "const server = new Endpoint({ name: 'server' })",
    "const client = new Endpoint({ name: 'client' })",
    `await client.connect(await server.listen(${JSON.stringify(addrs().tcp)}))`
  ].join('\n')
  const code = readmeBlock('Streams', 'js')
  fs.writeFileSync(path.join(d, 'stream.mjs'), `${prelude}\n${code}\nawait client.close()\nawait server.close()\n`)
  const r = await run(process.execPath, [path.join(d, 'stream.mjs')], { limitMs: 20000, cwd: d })
  assert.equal(r.killed, false, 'the snippet did not exit by itself')
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split('\n'), ['HELLO'])
})

test('every js and ts block of the README is run by a test here', () => {
  const readme = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8')
  const run = { js: ['Quickstart (CommonJS)', 'Quickstart (ESM)', 'Streams'], ts: ['Quickstart (TypeScript)'] }
  const found = { js: [], ts: [] }
  // Any spelling of a JS or TS fence, also above the first heading.
  const lang = { js: 'js', javascript: 'js', mjs: 'js', cjs: 'js', jsx: 'js', ts: 'ts', typescript: 'ts', mts: 'ts', tsx: 'ts' }
  readme.split('\n## ').forEach((section, i) => {
    const heading = i === 0 ? '(top)' : section.split('\n')[0]
    for (const m of section.matchAll(/^```(\w+)\s*$/gm)) if (lang[m[1]]) found[lang[m[1]]].push(heading)
  })
  assert.deepEqual(found, run)
})
