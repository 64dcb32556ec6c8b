import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { listen, produce, sseServer, testEvent, until } from './helpers.ts'

const texts = (received: Array<{ data: Record<string, unknown> }>) => received.map((r) => r.data['test'])

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('after a server restart, Last-Event-ID resumes with no gap and no duplicate', async () => {
  const s = await sseServer()
  try {
    const first = listen(`${s.url}/v2/stream/test.event`)
    await first.opened
    await produce(s.url, [testEvent('r1'), testEvent('r2')])
    await until(() => first.received.length === 2)
    first.close()
    await s.restart()
    await produce(s.url, [testEvent('r3'), testEvent('r4')])
    const resumed = listen(`${s.url}/v2/stream/test.event`, first.received.at(-1)!.id)
    await until(() => resumed.received.length === 2)
    await produce(s.url, [testEvent('r5')])
    await until(() => resumed.received.length === 3)
    resumed.close()
    assert.deepEqual(texts(resumed.received), ['r3', 'r4', 'r5'])
  } finally {
    await s.close()
  }
})

test('EventSource reconnects by itself after the server goes away, and sends Last-Event-ID: nothing lost, nothing twice', async () => {
  const port = await freePort()
  const s = await sseServer({ server: { port } })
  try {
    const client = listen(`${s.url}/v2/stream/test.event`)
    await client.opened
    await produce(s.url, [testEvent('x1'), testEvent('x2')])
    await until(() => client.received.length === 2)
    await s.restart() // same port: the client's retry reaches the new process
    await produce(s.url, [testEvent('x3')])
    await until(() => client.received.length === 3, 10_000, 'the event produced while the client was reconnecting')
    await produce(s.url, [testEvent('x4')])
    await until(() => client.received.length === 4)
    client.close()
    assert.deepEqual(texts(client.received), ['x1', 'x2', 'x3', 'x4'])
  } finally {
    await s.close()
  }
})

describe('errors before streaming are problem documents', () => {
  let s: Awaited<ReturnType<typeof sseServer>>
  before(async () => {
    s = await sseServer({ streams: { max_connections_per_ip: 2 } })
  })
  after(() => s.close())

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${s.url}${path}`, { headers })
  const problem = async (response: Response) => ((await response.json()) as { code: string; details?: Record<string, unknown> })

  for (const [name, path, headers, status, code] of [
    ['unknown stream', '/v2/stream/nope', {}, 400, 'EVP_STREAM_UNKNOWN'],
    ['no stream', '/v2/stream/', {}, 400, 'EVP_STREAM_UNKNOWN'],
    ['bad since', '/v2/stream/test.event?since=last%20tuesday', {}, 400, 'EVP_SINCE_INVALID'],
    ['Last-Event-ID not JSON', '/v2/stream/test.event', { 'last-event-id': '{oops' }, 400, 'EVP_LAST_EVENT_ID_INVALID'],
    ['Last-Event-ID not an array', '/v2/stream/test.event', { 'last-event-id': '{"topic":"x"}' }, 400, 'EVP_LAST_EVENT_ID_INVALID'],
    ['Last-Event-ID entry without position', '/v2/stream/test.event', { 'last-event-id': '[{"topic":"datacenter1.test.event","partition":0}]' }, 400, 'EVP_LAST_EVENT_ID_INVALID'],
    ['Last-Event-ID partition out of range', '/v2/stream/test.event', { 'last-event-id': '[{"topic":"datacenter1.test.event","partition":7,"offset":0}]' }, 400, 'EVP_LAST_EVENT_ID_INVALID'],
    ['Last-Event-ID topic of another stream', '/v2/stream/test.event', { 'last-event-id': '[{"topic":"datacenter1.other.event","partition":0,"offset":0}]' }, 404, 'EVP_TOPIC_NOT_AVAILABLE'],
    ['filter that does not parse', `/v2/stream/test.event?filter=${encodeURIComponent('meta.domain ==')}`, {}, 400, 'EVP_FILTER_INVALID'],
    ['filter too complex', `/v2/stream/test.event?filter=${encodeURIComponent(Array.from({ length: 120 }, (_, i) => `test == "${i}"`).join(' || '))}`, {}, 400, 'EVP_FILTER_INVALID'],
    ['filter too long', `/v2/stream/test.event?filter=${encodeURIComponent(`test == "${'x'.repeat(3000)}"`)}`, {}, 400, 'EVP_FILTER_INVALID'],
    ['match on a bad path', `/v2/stream/test.event?${encodeURIComponent('match[a..b]')}=1`, {}, 400, 'EVP_FILTER_INVALID'],
  ] as const) {
    test(`${name}: ${status} ${code}`, async () => {
      const response = await get(path, headers as Record<string, string>)
      assert.equal(response.status, status)
      assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/)
      const body = await problem(response)
      assert.equal(body.code, code)
      if (code === 'EVP_TOPIC_NOT_AVAILABLE') assert.deepEqual(body.details?.['availableTopics'], ['datacenter1.test.event'])
      if (code === 'EVP_STREAM_UNKNOWN') assert.ok((body.details?.['available'] as string[]).includes('test.event'))
    })
  }

  test('too many streams from one client: 429 with Retry-After, and a slot frees when one closes', async () => {
    const a = listen(`${s.url}/v2/stream/test.event`)
    const b = listen(`${s.url}/v2/stream/test.event`)
    await Promise.all([a.opened, b.opened])
    const third = await get('/v2/stream/test.event')
    assert.equal(third.status, 429)
    assert.equal(third.headers.get('retry-after'), '10')
    assert.equal((await problem(third)).code, 'EVP_TOO_MANY_CONNECTIONS')
    a.close()
    let status = 429
    for (let i = 0; i < 50 && status === 429; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      const controller = new AbortController()
      const response = await fetch(`${s.url}/v2/stream/test.event`, { signal: controller.signal })
      status = response.status
      controller.abort()
      if (status === 429) await response.text()
    }
    assert.equal(status, 200)
    b.close()
  })
})
