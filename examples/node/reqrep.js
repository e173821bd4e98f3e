// Shows: request/reply with an async handler, a handler error, "no responders", and an aborted request.
// Run: node examples/node/reqrep.js [tcp://127.0.0.1:0 | unix:///tmp/reqrep.sock]   (with `netchan` installed)
// Prints: the bound address, the reply, then three error codes (HANDLER_ERROR, NO_RESPONDERS, TIMEOUT from an AbortSignal.timeout()); exits 0.
const { Endpoint } = require('netchan')

async function main (addr) {
  const server = new Endpoint({ name: 'server' })
  const bound = await server.listen(addr)
  console.log(`listening on ${bound}`)
  server.serve('greet/*', async (req) => `hello, ${req.path.split('/')[1]} (from ${req.sender})`)
  server.serve('fail', () => { throw new Error('this handler always fails') })
  server.serve('slow', () => new Promise(() => {})) // never answers

  const client = new Endpoint({ name: 'client' })
  await client.connect(bound)
  const reply = await client.request('greet/ana', '', { timeoutMs: 2000 })
  console.log(`reply: ${reply.toString()}`)
  for (const [path, opts] of [['fail', {}], ['nobody/here', {}], ['slow', { signal: AbortSignal.timeout(100) }]]) {
    try {
      await client.request(path, '', { timeoutMs: 2000, ...opts })
    } catch (e) {
      console.log(`${path}: ${e.code} (${e.message})`)
    }
  }
  await client.close()
  await server.close()
}

main(process.argv[2] || 'tcp://127.0.0.1:0').catch((e) => {
  console.error(`error ${e.code}: ${e.message}`)
  process.exit(1)
})
