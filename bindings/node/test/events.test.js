'use strict'
// Every kind of core event reaches JS under one name, with every field, and
// the typings, the event names and the README agree with what arrives.
// (The values of every field are checked in Rust, src/events.rs:
// every_core_event_reaches_js_with_all_its_fields.)
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { netchan, pkgDir } = require('./helpers.js')
const native = require(path.join(pkgDir, 'native.js')).addon

const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

/** The fields each event interface of netchan.d.ts declares, by `type`. */
function typedEvents () {
  const dts = fs.readFileSync(path.join(pkgDir, 'netchan.d.ts'), 'utf8')
  const byType = new Map()
  for (const m of dts.matchAll(/export interface (\w+Event) \{([^}]*)\}/g)) {
    const body = m[2]
    const types = [...body.match(/type: ([^;\n]+)/)[1].matchAll(/'(\w+)'/g)].map((x) => x[1])
    const fields = [...body.matchAll(/(\w+)(\??): /g)].map((x) => ({ name: x[1], optional: x[2] === '?' }))
    for (const t of types) byType.set(t, { iface: m[1], fields })
  }
  const union = dts.match(/export type NetchanEvent = ([^\n]+)/)[1].split('|').map((s) => s.trim())
  const listened = dts.match(/export interface EndpointEvents \{([\s\S]*?)\n\}/)[1]
  return { byType, union, listened, dts }
}

test('every core event kind reaches JS under its camelCase name with all its fields, as typed and documented', () => {
  const examples = native.__eventExamples()
  assert.ok(examples.length >= 8, `${examples.length} examples`)
  const { byType, union, listened, dts } = typedEvents()
  const readme = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8')
  const kinds = new Set()
  for (const { kind, event } of examples) {
    const name = camel(kind)
    assert.equal(event.type, name, `the core's ${kind}`)
    assert.ok(!kinds.has(name), `${name} twice`)
    kinds.add(name)
    // The fields that arrived are the ones its interface declares, and
    // each field the interface requires arrived.
    const typed = byType.get(name)
    assert.ok(typed, `netchan.d.ts has no event interface with type '${name}'`)
    const { iface, fields } = typed
    assert.ok(union.includes(iface), `${iface} is missing from NetchanEvent`)
    const present = Object.keys(event).filter((k) => event[k] !== undefined)
    for (const k of present) assert.ok(fields.some((f) => f.name === k), `${name}.${k} arrives but netchan.d.ts does not declare it`)
    for (const f of fields) if (!f.optional) assert.ok(present.includes(f.name), `${name}.${f.name} is declared but did not arrive: ${JSON.stringify(event)}`)
    // It can be listened to by name, and the README names it.
    assert.match(listened, new RegExp(`\\n  ${name}: \\[`), `EndpointEvents in netchan.d.ts lacks ${name}`)
    assert.ok(readme.includes(`\`${name}\``), `README.md does not name the event ${name}`)
  }
  // No event interface is left out of the NetchanEvent union.
  for (const m of dts.matchAll(/export interface (\w+Event) \{/g)) {
    assert.ok(union.includes(m[1]), `${m[1]} is missing from NetchanEvent`)
  }
})

test('a listener for any event name starts the event stream', async () => {
  const names = native.__eventExamples().map((e) => camel(e.kind)).concat(['missed', 'peer', 'event'])
  for (const name of names) {
    const ep = new netchan.Endpoint({ name: `listens-${name}` })
    try {
      assert.equal(ep._evs, null)
      ep.on(name, () => {})
      assert.notEqual(ep._evs, null, `a '${name}' listener did not start the event stream`)
    } finally {
      await ep.close()
    }
  }
})
