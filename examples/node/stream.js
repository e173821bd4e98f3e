// Shows: a bidirectional stream. The client sends lines and ends its side; the server answers each line in upper case, then ends its side; then the same through Node's stream.pipeline.
// Run: node examples/node/stream.js [tcp://127.0.0.1:0 | unix:///tmp/stream.sock]   (with `netchan` installed)
// Prints: the bound address, each answer (HELLO, STREAM, WORLD), `end`, then `pipeline: HELLO PIPELINE`; exits 0.
const { Endpoint } = require('netchan')
const { Readable, Writable } = require('node:stream')
const { pipeline } = require('node:stream/promises')

async function main (addr) {
  const server = new Endpoint({ name: 'stream-server' })
  const bound = await server.listen(addr)
  console.log(`listening on ${bound}`)
  server.serveStream('upper/*', async (req, stream) => {
    for await (const line of stream) await stream.send(line.toString().toUpperCase())
    // Returning ends the server's side.
  })

  const client = new Endpoint({ name: 'stream-client' })
  await client.connect(bound)
  const stream = await client.openStream('upper/demo', '', { waitForResponder: true, timeoutMs: 10000 })
  for (const line of ['hello', 'stream', 'world']) await stream.send(line)
  stream.end()
  for await (const answer of stream) console.log(answer.toString())
  console.log('end')

  // The same stream as a Node Duplex: a write completes once the server's window took it.
  const piped = await client.openStream('upper/pipe')
  const out = []
  await pipeline(Readable.from(['hello ', 'pipeline']), piped.toDuplex(), new Writable({
    write (chunk, encoding, cb) { out.push(chunk); cb() }
  }))
  console.log(`pipeline: ${Buffer.concat(out).toString()}`)

  await client.close()
  await server.close()
}

main(process.argv[2] || 'tcp://127.0.0.1:0').catch((e) => {
  console.error(`error ${e.code}: ${e.message}`)
  process.exit(1)
})
