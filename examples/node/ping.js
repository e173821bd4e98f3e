// Shows: ping (round-trip time) to a connected peer, the peer list, and peer events.
// Run: node examples/node/ping.js [tcp://127.0.0.1:0 | unix:///tmp/ping.sock]   (with `netchan` installed)
// Prints: the bound address, a peerUp event, three round-trip times in microseconds, the peers; exits 0.
const { Endpoint } = require('netchan')

async function main (addr) {
  const server = new Endpoint({ name: 'pong' })
  const bound = await server.listen(addr)
  console.log(`listening on ${bound}`)

  const client = new Endpoint({ name: 'ping' })
  const up = new Promise((resolve) => client.once('peerUp', resolve))
  await client.connect(bound)
  console.log(`event: peerUp ${(await up).peer}`)
  for (let i = 0; i < 3; i++) {
    const ms = await client.ping('pong')
    console.log(`rtt ${Math.round(ms * 1000)} us`)
  }
  console.log('peers:', client.peers().map((p) => `${p.name} ${p.addr}`).join(', '))
  await client.close()
  await server.close()
}

main(process.argv[2] || 'tcp://127.0.0.1:0').catch((e) => {
  console.error(`error ${e.code}: ${e.message}`)
  process.exit(1)
})
