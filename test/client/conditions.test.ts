/**
 * Bad conditions for the producer and the transport, against real HTTP servers on loopback that
 * answer as a failing intake would: down, 5xx, 429 with Retry-After, 413 for a batch, an
 * EventGate-style 400 without indexes. Nothing is dropped whole, retries keep meta.id, and
 * every drop is counted. Also the legacy capsule.
 */
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { BrowserTransport, capsule, memoryStore, MetricsClient, Producer } from '../../packages/client/src/index.ts'
import { eventually, testPlatform } from '../intake/helpers.ts'

const servers: Server[] = []
after(() => {
  for (const server of servers) {
    server.closeAllConnections()
    server.close()
  }
})

type Handler = (events: Array<Record<string, unknown>>, response: ServerResponse, request: IncomingMessage) => void

/** A real intake stand-in: reads each POSTed batch, remembers it, and lets `handler` answer. */
async function intake(handler: Handler) {
  const batches: Array<Array<Record<string, unknown>>> = []
  /** Bytes of each request body. */
  const sizes: number[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      sizes.push(body.length)
      const events = JSON.parse(body.toString()) as Array<Record<string, unknown>>
      batches.push(events)
      handler(events, response, request)
    })
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, batches, sizes }
}

const event = (i: number) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `c${i}` })
const idOf = (e: Record<string, unknown>) => (e['meta'] as { id: string }).id

test('producer: 429 with Retry-After, then 503, then 201: accepted after waiting as asked, with the same meta.ids', async () => {
  const times: number[] = []
  const server = await intake((_events, response) => {
    times.push(Date.now())
    if (times.length === 1) return response.writeHead(429, { 'retry-after': '1' }).end()
    if (times.length === 2) return response.writeHead(503).end()
    response.writeHead(201).end()
  })
  const producer = new Producer({ url: server.url, retryBaseMs: 10 })
  const result = await producer.send([event(1), event(2)])
  assert.equal(result.accepted.length, 2)
  assert.equal(server.batches.length, 3)
  assert.ok(times[1]! - times[0]! >= 950, `waited for Retry-After: ${times[1]! - times[0]!} ms`)
  assert.deepEqual(server.batches[2]!.map(idOf), server.batches[0]!.map(idOf), 'the same meta.ids every time')
})

test('producer: a batch answered 413 is sent again in halves, never dropped', async () => {
  const server = await intake((events, response) => response.writeHead(events.length > 3 ? 413 : 201).end())
  const producer = new Producer({ url: server.url, maxBatchEvents: 10 })
  const result = await producer.send(Array.from({ length: 10 }, (_, i) => event(i)))
  assert.equal(result.accepted.length, 10)
  assert.ok(producer.stats.splits >= 1)
  assert.ok(server.batches.slice(-3).every((b) => b.length <= 3))
})

test('producer: an intake that is down fails the events after maxAttempts, and says why', async () => {
  const server = await intake((_e, response) => response.writeHead(201).end())
  const url = server.url
  servers.pop()!.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  const producer = new Producer({ url, maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 20 })
  const result = await producer.send([event(1)])
  assert.equal(result.failed.length, 1)
  assert.equal(result.failed[0]!.code, 'retries_exhausted')
  assert.match(result.failed[0]!.message, /after 3 attempts \(last: no answer/)
})

test('producer: an EventGate 400 lists invalid events without indexes: matched by meta.id, only those refused', async () => {
  const server = await intake((events, response) => {
    const invalid = events.filter((e) => e['test'] === 'c1').map((e) => ({ status: 'invalid', event: e, context: { message: "'.test' should be string" } }))
    response.writeHead(207, { 'content-type': 'application/json' }).end(JSON.stringify({ invalid, error: [] }))
  })
  const producer = new Producer({ url: server.url })
  const result = await producer.send([event(0), event(1), event(2)])
  assert.deepEqual(result.invalid.map((r) => r.event['test']), ['c1'])
  assert.equal(result.invalid[0]!.message, "'.test' should be string")
  assert.deepEqual(result.accepted.map((e) => e['test']), ['c0', 'c2'])
})

test('transport: retries 5xx, drops and counts invalid events, keeps the queue bounded (oldest dropped and counted)', async () => {
  let calls = 0
  const server = await intake((events, response) => {
    calls++
    if (calls === 1) return response.writeHead(500).end()
    const invalid = events.flatMap((e, index) => (e['test'] === 'c3' ? [{ status: 'invalid', index, event: e, context: { code: 'EVP_EVENT_INVALID', message: 'no' } }] : []))
    response.writeHead(invalid.length > 0 ? 207 : 201, { 'content-type': 'application/json' }).end(invalid.length > 0 ? JSON.stringify({ invalid, error: [] }) : '')
  })
  const warnings: string[] = []
  const transport = new BrowserTransport({ url: server.url, hasty: false, store: memoryStore(), maxQueuedEvents: 5, retryBaseMs: 20, retryMaxMs: 40, flushIntervalMs: 60_000, maxBatchEvents: 100, logger: { warn: (m) => warnings.push(m) } })
  for (let i = 0; i < 7; i++) transport.send(event(i))
  assert.equal(transport.queued, 5)
  assert.equal(transport.dropped.queue_full, 2)
  await transport.flush() // 500: waits for its retry
  assert.equal(transport.queued, 5)
  const deadline = Date.now() + 5000
  while (transport.queued > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(transport.queued, 0)
  assert.equal(transport.stats.accepted, 4)
  assert.equal(transport.dropped.invalid, 1)
  assert.deepEqual(server.batches[1]!.map(idOf), server.batches[0]!.map(idOf), 'the retry keeps the meta.ids')
  assert.deepEqual(server.batches[0]!.map((e) => e['test']), ['c2', 'c3', 'c4', 'c5', 'c6'], 'the oldest two were the ones dropped')
  assert.match(warnings.join('\n'), /oldest were dropped[^]*trying again[^]*refused an event of test.event: EVP_EVENT_INVALID/)
  transport.close()
})

test('legacy: the EventCapsule, the eventlogging_ stream, and the reasons a call is refused', () => {
  const made = capsule('NavigationTiming', { responseStart: 120 }, { schemas: { NavigationTiming: '1.0.0', Custom: '/analytics/legacy/custom/2.1.0' }, wiki: 'enwiki', webHost: 'en.wikipedia.org', now: () => 0 })
  assert.deepEqual(made, {
    stream: 'eventlogging_NavigationTiming',
    event: { $schema: '/analytics/legacy/navigationtiming/1.0.0', event: { responseStart: 120 }, schema: 'NavigationTiming', client_dt: '1970-01-01T00:00:00.000Z', webHost: 'en.wikipedia.org', wiki: 'enwiki' },
  })
  const custom = capsule('Custom', {}, { schemas: { Custom: '/analytics/legacy/custom/2.1.0' } })
  assert.equal('event' in custom && custom.event['$schema'], '/analytics/legacy/custom/2.1.0')
  assert.match((capsule('Unknown', {}, { schemas: {} }) as { invalid: string }).invalid, /not one of the migrated schemas configured \(none\)/)
  assert.match((capsule('Bad name!', {}, { schemas: {} }) as { invalid: string }).invalid, /legacy schema name/)
  assert.match((capsule('NavigationTiming', [1], { schemas: { NavigationTiming: '1.0.0' } }) as { invalid: string }).invalid, /must be an object/)
})

test('storage: localStorage that throws (private mode, full) falls back to memory; unreadable storage too', async () => {
  const { browserStore } = await import('../../packages/client/src/index.ts')
  const g = globalThis as { localStorage?: unknown }
  try {
    g.localStorage = { getItem: () => null, setItem: () => { throw new Error('QuotaExceededError') }, removeItem: () => undefined }
    const full = browserStore()
    assert.equal(full.persistent, false, 'a storage that refuses every write is not used')
    assert.equal(full.set('k', 'v'), true)
    assert.equal(full.get('k'), 'v')
    let writes = 0
    const items = new Map<string, string>()
    g.localStorage = {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => {
        if (++writes > 2) throw new Error('QuotaExceededError')
        items.set(k, v)
      },
      removeItem: (k: string) => void items.delete(k),
    }
    const filling = browserStore()
    assert.equal(filling.persistent, true)
    assert.equal(filling.set('a', '1'), true)
    assert.equal(filling.set('b', '2'), false, 'full now: reported')
    assert.equal(filling.get('b'), '2', 'and kept in memory')
    Object.defineProperty(g, 'localStorage', { configurable: true, get: () => { throw new Error('SecurityError') } })
    assert.equal(browserStore().persistent, false)
  } finally {
    Object.defineProperty(g, 'localStorage', { configurable: true, writable: true, value: undefined })
    delete g.localStorage
  }
})

test('identity: a new session after 30 idle minutes, and when the clock jumps back or forward by more', async () => {
  const { Identity } = await import('../../packages/client/src/index.ts')
  let now = 1_000_000_000
  const store = memoryStore()
  const identity = new Identity({ store, now: () => now })
  const first = identity.sessionId
  now += 29 * 60_000
  assert.equal(identity.sessionId, first, 'activity keeps it')
  now += 29 * 60_000
  assert.equal(identity.sessionId, first)
  now += 31 * 60_000
  const second = identity.sessionId
  assert.notEqual(second, first, 'idle for 31 minutes')
  assert.equal(new Identity({ store, now: () => now }).sessionId, second, 'kept in storage for the next page')
  now -= 24 * 3600_000
  assert.notEqual(identity.sessionId, second, 'a clock set back a day starts a new session')
  assert.equal(identity.deviceId, new Identity({ store }).deviceId, 'the device id is kept')
})

test('transport: a page that submits 10,000 events in a loop keeps at most maxQueuedEvents, and counts the rest', () => {
  const warnings: string[] = []
  const transport = new BrowserTransport({ url: 'http://127.0.0.1:9', store: memoryStore(), flushIntervalMs: 60_000, maxBatchEvents: 100_000, maxBatchBytes: 60_000_000, logger: { warn: (m) => warnings.push(m) } })
  for (let i = 0; i < 10_000; i++) transport.send(event(i))
  assert.equal(transport.queued, 1000)
  assert.equal(transport.dropped.queue_full, 9000)
  assert.ok(warnings.length > 0 && /oldest were dropped/.test(warnings[0]!))
  transport.close()
})

test('producer: an event that cannot be serialized (a cycle, a BigInt) is refused alone; the rest of the call goes', async () => {
  const server = await intake((_events, response) => response.writeHead(201).end())
  const producer = new Producer({ url: server.url })
  const cyclic: Record<string, unknown> = event(1)
  cyclic['self'] = cyclic
  const result = await producer.send([event(0), cyclic, { ...event(2), big: 1n }, event(3)])
  assert.deepEqual(result.accepted.map((e) => e['test']), ['c0', 'c3'])
  assert.deepEqual(result.invalid.map((r) => r.code), ['not_serializable', 'not_serializable'])
  assert.deepEqual(server.batches.flat().map((e) => e['test']), ['c0', 'c3'])
})

test('producer: batches cut at maxBatchBytes counted in UTF-8 bytes, in order; an event larger than the limit goes alone', async () => {
  const server = await intake((_events, response) => response.writeHead(201).end())
  const producer = new Producer({ url: server.url, maxBatchBytes: 2000, lingerMs: 0, maxInFlight: 1 })
  // 300 characters of text, 100 of them 2 or 3 bytes long in UTF-8: ~560 bytes as JSON, 3 per batch.
  const text = (i: number) => `${i}:${'é€'.repeat(50)}${'x'.repeat(200)}`
  const events = Array.from({ length: 21 }, (_, i) => ({ ...event(i), text: i === 10 ? 'y'.repeat(5000) : text(i) }))
  const result = await producer.send(events)
  await producer.close()
  assert.equal(result.accepted.length, 21)
  assert.deepEqual(server.batches.flat().map((e) => e['test']), events.map((e) => e.test), 'every event once, in order')
  const alone = server.batches.findIndex((batch) => batch.some((e) => e['test'] === 'c10'))
  assert.equal(server.batches[alone]!.length, 1, 'the 5,000-byte event is sent alone')
  server.sizes.forEach((size, i) => {
    if (i !== alone) assert.ok(size <= 2000, `request ${i} has ${size} bytes, over maxBatchBytes 2000`)
  })
  // Each batch is as full as the limit allows: the next event would not have fitted.
  for (let i = 0; i + 1 < server.batches.length; i++) {
    const next = Buffer.byteLength(JSON.stringify(server.batches[i + 1]![0]))
    assert.ok(server.sizes[i]! + next + 1 > 2000, `request ${i} (${server.sizes[i]} bytes) had room for the next event (${next} bytes)`)
  }
})

test('clock skew: a client clock days ahead or years behind: events accepted by a real intake, dt the client time, meta.dt the intake time', async () => {
  const platform = await testPlatform()
  try {
    const url = await platform.app.listen({ host: '127.0.0.1', port: 0 })
    for (const [name, skew] of [['3 days ahead', 3 * 86_400_000], ['2 years behind', -2 * 365 * 86_400_000]] as const) {
      const transport = new BrowserTransport({ url, store: memoryStore(), flushIntervalMs: 10, logger: { warn() {} } })
      const client = new MetricsClient({ sink: transport, streamConfigs: { 'test.event': {} }, store: memoryStore(), hostname: 'example.org', now: () => Date.now() + skew })
      client.submit('test.event', { $schema: '/eventplane/test/event/1.0.0', test: `skew ${name}` })
      await eventually(async () => (await platform.events('datacenter1.test.event')).some((e) => e['test'] === `skew ${name}`), 5000)
      const stored = (await platform.events('datacenter1.test.event')).find((e) => e['test'] === `skew ${name}`)!
      assert.ok(Math.abs(Date.parse(stored['dt'] as string) - (Date.now() + skew)) < 60_000, `${name}: dt is the client's time: ${stored['dt']}`)
      const metaDt = Date.parse((stored['meta'] as { dt: string }).dt)
      assert.ok(Math.abs(metaDt - Date.now()) < 60_000, `${name}: meta.dt is the intake's receive time: ${(stored['meta'] as { dt: string }).dt}`)
      assert.deepEqual(transport.dropped, {}, name)
      transport.close()
    }
  } finally {
    await platform.close()
  }
})

test('clock skew: the wall clock set back a day during a retry wait does not hold up the retry (transport and producer)', async () => {
  let answers = 0
  const server = await intake((_events, response) => response.writeHead(++answers % 2 === 1 ? 503 : 201).end())
  let wall = Date.now()
  const transport = new BrowserTransport({ url: server.url, store: memoryStore(), retryBaseMs: 50, retryMaxMs: 100, flushIntervalMs: 10, now: () => wall, logger: { warn() {} } })
  transport.send(event(1))
  await eventually(() => server.batches.length === 1, 3000)
  wall -= 86_400_000
  await eventually(() => server.batches.length === 2 && transport.queued === 0, 3000)
  transport.close()
  // The producer pauses every batch after one failed whole; its pause is timed the same way.
  const realNow = Date.now
  try {
    const producer = new Producer({ url: server.url, retryBaseMs: 50, retryMaxMs: 100, lingerMs: 0 })
    const sent = producer.send([event(2)])
    await eventually(() => server.batches.length === 3, 3000)
    Date.now = () => realNow() - 86_400_000
    const result = await Promise.race([sent, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 3000))])
    assert.equal(result?.accepted.length, 1, 'the producer sent again within seconds')
    await producer.close()
  } finally {
    Date.now = realNow
  }
})
