import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { bundledSchemas, openWrittenLog, repoRoot, spawnServer, tempDir, testEventLog } from '../helpers.ts'

/** `eventplane serve` as its own process, so it can be killed with SIGKILL. */
const serve = (config: string) => spawnServer(['--config', config], { EVENTPLANE_LOG_LEVEL: 'warn' })

test('kill -9 with requests in flight: every event that got a 201 is in the log exactly once', async (t) => {
  const dir = tempDir()
  const config = join(dir, 'eventplane.yaml')
  const eventLog = await testEventLog()
  writeFileSync(
    config,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: join(repoRoot, 'defaults/streams.yaml'), watch: false },
      data_dir: join(dir, 'data'),
      intake: { error_stream: null },
      event_log: eventLog,
    }),
  )
  const { child, url } = await serve(config)
  const acknowledged = new Set<string>()
  let sent = 0
  let requests = 0
  let answered = 0
  let stop = false
  // 16 producers posting as fast as they can, half of them batches of 3 and half of 50 (so the
  // server, not this process, is busy); each event carries its own id.
  const producer = async (worker: number) => {
    for (let n = 0; !stop; n++) {
      const ids = Array.from({ length: worker % 2 === 0 ? 3 : 50 }, (_, i) => `w${worker}-${n}-${i}`)
      const body = JSON.stringify(ids.map((id) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id } })))
      sent += ids.length
      requests++
      try {
        const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        answered++
        if (response.status === 201) ids.forEach((id) => acknowledged.add(id))
      } catch {
        return // the server is gone
      }
    }
  }
  const producers = Array.from({ length: 16 }, (_, i) => producer(i))
  const deadline = Date.now() + 15_000
  while (acknowledged.size < 3000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit')
  // The producers are still posting, and two requests have sent half of their body: the kill
  // lands with requests in flight, some of them certainly unanswered.
  const halfSent = await Promise.all([0, 1].map(() => startedRequest(url)))
  child.kill('SIGKILL')
  stop = true
  await Promise.all([exited, ...producers])
  const cut = (await Promise.all(halfSent.map((request) => request.closed))).filter((answer) => answer === '').length
  requests += halfSent.length
  assert.equal(cut, halfSent.length, 'the kill closed the half-sent requests without an answer')
  assert.ok(acknowledged.size >= 300, `only ${acknowledged.size} events were acknowledged before the kill`)
  assert.ok(sent >= acknowledged.size)

  const log = await openWrittenLog(join(dir, 'data'), eventLog)
  try {
    const seen = new Map<string, number>()
    const partitions = await log.partitions('datacenter1.test.event')
    for (let partition = 0; partition < partitions; partition++) {
      for await (const record of log.read({ topic: 'datacenter1.test.event', partition, offset: 0 }, { follow: false })) {
        const id = (JSON.parse(record.value.toString()) as { meta: { id: string } }).meta.id
        seen.set(id, (seen.get(id) ?? 0) + 1)
      }
    }
    const missing = [...acknowledged].filter((id) => !seen.has(id))
    const duplicated = [...seen].filter(([, count]) => count > 1)
    t.diagnostic(
      `${eventLog['backend'] === 'kafka' ? 'Kafka' : 'embedded'}: ${requests} requests tried, ${answered} answered, ${requests - answered} cut by the kill (${cut} of them half-sent on purpose); ` +
        `${acknowledged.size} events acknowledged, ${missing.length} of them lost, ${duplicated.length} stored twice; ${seen.size - acknowledged.size} stored without a 201 (in flight at the kill)`,
    )
    assert.deepEqual(missing, [], `${missing.length} acknowledged events are missing`)
    assert.deepEqual(duplicated, [], 'no event is stored twice')
  } finally {
    await log.close()
  }
})

/** A POST /v1/events whose headers and first half of the body are sent; `closed` resolves with what the server answered when the connection ends. */
async function startedRequest(url: string): Promise<{ closed: Promise<string> }> {
  const { hostname, port } = new URL(url)
  const body = JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id: `half-${Math.random()}` } }])
  const socket = connect(Number(port), hostname)
  await once(socket, 'connect')
  let answer = ''
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()))
  // A reset is the expected end: 'close' follows it.
  socket.on('error', () => {})
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(answer)))
  socket.write(`POST /v1/events HTTP/1.1\r\nHost: ${hostname}:${port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, body.length >> 1)}`)
  return { closed }
}
