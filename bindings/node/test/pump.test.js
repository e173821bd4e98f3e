'use strict'
// The receive pump is the core's queue and its readiness hook, nothing
// more (src/recv.rs): `take` is the core's try_recv_many, `wait` its
// poll_recv_many. The core's queue has one waiter at a time.
const test = require('node:test')
const assert = require('node:assert/strict')
const { netchan, within } = require('./helpers.js')
const { Endpoint } = netchan

test("a take while a wait is pending returns null and leaves the core's one waiter to the wait", async () => {
  const ep = new Endpoint({ name: 'pump' })
  try {
    const sub = ep.subscribe('p')
    const n = sub._n
    const w = n.wait(16)
    // Were this a try_recv_many on the empty queue, it would replace the
    // wait's waker and the wait would never hear of the next message.
    assert.equal(n.take(16), null)
    await ep.publish('p', 'x')
    assert.equal(n.take(16), null, 'the message is the pending wait\'s')
    const b = await within(w, 10000, 'the pending wait to get the message')
    assert.equal(b.data.toString(), 'x')
    // With no wait pending, take gets what is queued, up to max, in order.
    for (let i = 0; i < 5; i++) await ep.publish('p', String(i))
    const t = n.take(3)
    assert.deepEqual([...t.ends], [1, 2, 3])
    assert.equal(t.data.toString(), '012')
    assert.equal(n.take(16).data.toString(), '34')
    assert.equal(n.take(16), null)
    // Closing ends a pending wait with null.
    const last = n.wait(16)
    sub.close()
    assert.equal(await within(last, 10000, 'the wait to end'), null)
  } finally {
    await ep.close()
  }
})
