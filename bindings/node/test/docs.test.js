'use strict'
// The README's promises each name the test that proves it, in brackets:
// [`test name`] (several: [`a`, `b`]). Each name must be a test of this
// suite (test/*.test.js), a Rust test of the addon (src/*.rs), or a test
// file of the repository (`tests/interop/run.py`).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { pkgDir, repo } = require('./helpers.js')

test('every test the README names exists', () => {
  const readme = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8').replace(/\s*\n\s*/g, ' ')
  const named = new Set()
  for (const m of readme.matchAll(/\[(`[^\]]+`)\]/g)) {
    for (const n of m[1].matchAll(/`([^`]+)`/g)) named.add(n[1])
  }
  assert.ok(named.size >= 40, `${named.size} names found`)
  const tdir = path.join(pkgDir, 'test')
  const js = fs.readdirSync(tdir).filter((f) => f.endsWith('.test.js')).map((f) => fs.readFileSync(path.join(tdir, f), 'utf8'))
  const sdir = path.join(pkgDir, 'src')
  const rs = fs.readdirSync(sdir).filter((f) => f.endsWith('.rs')).map((f) => fs.readFileSync(path.join(sdir, f), 'utf8'))
  // A test's name as written in its call: test('...', test("...", test(`...`.
  const defined = new Set()
  for (const src of js) {
    for (const m of src.matchAll(/\btest\(\s*(['"`])((?:\\.|(?!\1).)*)\1/g)) defined.add(m[2].replace(/\\(.)/g, '$1'))
  }
  for (const src of rs) {
    for (const m of src.matchAll(/#\[test\]\s*fn (\w+)/g)) defined.add(m[1])
  }
  const missing = [...named].filter((n) => !defined.has(n) && !(n.includes('/') && fs.existsSync(path.join(repo, n))))
  assert.deepEqual(missing, [], 'README names tests that do not exist')
})
