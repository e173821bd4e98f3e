// Compiled with `tsc --strict` (run-tests.sh): the published types must let a
// TypeScript user write the quickstart without casts.
import { Endpoint, codes, type Message, type NetchanError, type NetchanEvent, type PeerEvent, type Stream, type StreamRequest } from 'netchan'
import { pipeline } from 'node:stream/promises'

async function main (addr: string): Promise<number> {
  const server = new Endpoint({ name: 'ts-server', subscribeOverflow: 'drop_oldest' })
  const bound: string = await server.listen(addr)
  server.serve('add', (req) => {
    const [a, b] = req.obj() as [number, number]
    return String(a + b)
  })
  const sub = server.subscribe('temps/*', { capacity: 100 })
  server.on('peer', (e: PeerEvent) => console.log(e.type, e.peer))

  const client = new Endpoint({ name: 'ts-client', busyPollUs: 50 })
  const window: number = client.busyPollUs
  client.on('reconnecting', (e) => console.log(e.addr, e.attempt, e.delayMs, window))
  client.on('suspended', (e) => console.log(e.type))
  client.on('event', (e: NetchanEvent) => { if (e.type === 'resumed') console.log('back') })
  await client.connect(bound)
  await client.suspend()
  await client.resume()
  await client.networkChanged()
  await client.publish('temps/kitchen', Buffer.from('21.5'))
  const reply: Buffer = await client.request('add', '', { timeoutMs: 1000, signal: AbortSignal.timeout(1000) })
  try {
    await client.request('nobody')
  } catch (e) {
    const err = e as NetchanError
    if (err.code === codes.NO_RESPONDERS) console.log('no responders')
  }
  for await (const m of sub) {
    const msg: Message = m
    console.log(msg.path, msg.text(), reply.length)
    break
  }
  const svc = server.serveStream('upper/*', async (req: StreamRequest, stream: Stream) => {
    console.log(req.path, req.sender, req.text(), req.remainingMs, stream.peer)
    for await (const chunk of stream) await stream.send(chunk.toString().toUpperCase())
  }, { maxConcurrent: 4, queue: 8, window: 65536 })
  const st: Stream = await client.openStream('upper/x', 'hi', { timeoutMs: 5000, window: 1 << 16, signal: AbortSignal.timeout(5000) })
  await st.send(new Uint8Array([104, 105]))
  st.end()
  const echoed: Buffer | null = await st.recv()
  console.log(echoed, st.path, st.remainingMs, client.streamServers('upper/**'), svc.queued)
  const st2 = await client.openStream('upper/y', { openTimeoutMs: 1000 })
  await pipeline(async function * () { yield 'a' }, st2.toDuplex(), async function (src: AsyncIterable<Buffer>) { for await (const b of src) console.log(b) })
  svc.close()
  const rtt: number = await client.ping('ts-server')
  const s = client.stats()
  console.log(rtt, s.total.msgsOut, client.peers().map((p) => p.name))
  await client.close()
  await server.close()
  return 0
}

void main('tcp://127.0.0.1:0')
