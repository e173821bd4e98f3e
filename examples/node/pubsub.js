// Shows: publish/subscribe between two endpoints with a wildcard pattern, a callback and `for await`.
// Run: node examples/node/pubsub.js [tcp://127.0.0.1:0 | unix:///tmp/pubsub.sock]   (with `netchan` installed)
// Prints: the bound address, then each received message as PATH<TAB>PAYLOAD; exits 0.
const { Endpoint } = require('netchan')

async function main (addr) {
  const sub = new Endpoint({ name: 'subscriber' })
  const bound = await sub.listen(addr)
  console.log(`listening on ${bound}`)
  const msgs = sub.subscribe('sensors/*/temp')

  const pub = new Endpoint({ name: 'publisher' })
  await pub.connect(bound)
  await pub.waitForSubscribers('sensors/kitchen/temp')
  await pub.publish('sensors/kitchen/temp', '21.5')
  await pub.publish('sensors/garage/temp', Buffer.from('12.0'))
  await pub.publishObj('sensors/attic/temp', { celsius: 30.5 })

  let n = 0
  for await (const m of msgs) {
    const text = m.path.includes('attic') ? JSON.stringify(m.obj()) : m.text()
    console.log(`${m.path}\t${text}`)
    if (++n === 3) break // leaving the loop unsubscribes
  }
  await pub.close()
  await sub.close()
}

main(process.argv[2] || 'tcp://127.0.0.1:0').catch((e) => {
  console.error(`error ${e.code}: ${e.message}`)
  process.exit(1)
})
