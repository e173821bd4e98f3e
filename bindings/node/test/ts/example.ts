// Compiled with `tsc --strict` (run-tests.sh): the published types must let a
// TypeScript user write the quickstart without casts.
import { Endpoint, codes, type Message, type NetchanError, type NetchanEvent, type PeerEvent } from 'netchan'

async function main (addr: string): Promise<number> {
  const server = new Endpoint({ name: 'ts-server', overflow: 'drop-oldest' })
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
  const rtt: number = await client.ping('ts-server')
  const s = client.stats()
  console.log(rtt, s.total.msgsOut, client.peers().map((p) => p.name))
  await client.close()
  await server.close()
  return 0
}

void main('tcp://127.0.0.1:0')
