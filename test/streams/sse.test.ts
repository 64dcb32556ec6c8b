import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { listen, produce, sseServer, testEvent, until } from './helpers.ts'

const texts = (received: Array<{ data: Record<string, unknown> }>) => received.map((r) => r.data['test'])

describe('GET /v2/stream/{streams} with a real EventSource client', () => {
  let s: Awaited<ReturnType<typeof sseServer>>
  before(async () => {
    s = await sseServer({ streams: { heartbeat_interval_s: 0.2, max_connections_per_ip: 50 } })
  })
  after(() => s.close())

  test('live events arrive with meta.topic, meta.partition, meta.offset and an id one past them', async () => {
    const client = listen(`${s.url}/v2/stream/test.event`)
    await client.opened
    await produce(s.url, [testEvent('live 1'), testEvent('live 2')])
    await until(() => client.received.length === 2, 5000, 'two events')
    client.close()
    const [first, second] = client.received
    assert.deepEqual(texts(client.received), ['live 1', 'live 2'])
    const meta = first!.data['meta'] as Record<string, unknown>
    assert.equal(meta['topic'], 'datacenter1.test.event')
    assert.equal(meta['partition'], 0)
    assert.equal(typeof meta['offset'], 'number')
    const id = JSON.parse(second!.id) as Array<{ topic: string; partition: number; offset: number; timestamp: number }>
    assert.equal(id.length, 1)
    assert.equal(id[0]!.offset, ((second!.data['meta'] as { offset: number }).offset) + 1)
    assert.equal(id[0]!.timestamp, Date.parse((second!.data['meta'] as { dt: string }).dt) + 1)
  })

  test('after a disconnect, Last-Event-ID resumes with exactly the events after the last one seen', async () => {
    const first = listen(`${s.url}/v2/stream/test.event`)
    await first.opened
    await produce(s.url, [testEvent('a1'), testEvent('a2'), testEvent('a3')])
    await until(() => first.received.length === 3)
    first.close()
    // Many events in the same millisecond: ids by offset make the resume exact.
    await produce(s.url, Array.from({ length: 50 }, (_, i) => testEvent(`b${i}`)))
    const resumed = listen(`${s.url}/v2/stream/test.event`, first.received.at(-1)!.id)
    await resumed.opened
    await until(() => resumed.received.length === 50, 5000, 'the 50 missed events')
    await produce(s.url, [testEvent('c1')])
    await until(() => resumed.received.length === 51)
    resumed.close()
    assert.deepEqual(texts(resumed.received), [...Array.from({ length: 50 }, (_, i) => `b${i}`), 'c1'])
  })

  test('since= replays from a time (epoch ms or ISO-8601), then follows live', async () => {
    const before = Date.now() - 1
    await produce(s.url, [testEvent('since 1', 'other.event'), testEvent('since 2', 'other.event')])
    for (const since of [String(before), new Date(before).toISOString()]) {
      const client = listen(`${s.url}/v2/stream/other.event?since=${encodeURIComponent(since)}`)
      await until(() => client.received.length === 2, 5000, `replay since ${since}`)
      client.close()
      assert.deepEqual(texts(client.received).sort(), ['since 1', 'since 2'])
    }
  })

  test('last=N starts N events back in each partition, then follows live; a bad last is refused with its code', async () => {
    await produce(s.url, Array.from({ length: 5 }, (_, i) => testEvent(`last ${i}`)))
    const client = listen(`${s.url}/v2/stream/test.event?last=2`)
    await until(() => client.received.length === 2, 5000, 'the last two events')
    await produce(s.url, [testEvent('last live')])
    await until(() => client.received.length === 3, 5000, 'the live event')
    client.close()
    assert.deepEqual(texts(client.received), ['last 3', 'last 4', 'last live'])
    for (const query of ['last=0', 'last=abc', 'last=10001', 'last=-1', 'last=1.5', `last=2&since=${Date.now()}`]) {
      const response = await fetch(`${s.url}/v2/stream/test.event?${query}`)
      assert.equal(response.status, 400, query)
      assert.equal(((await response.json()) as { code: string }).code, 'EVP_LAST_INVALID', query)
    }
  })

  test('two streams (and an alias) merge into one response whose id covers every partition', async () => {
    const client = listen(`${s.url}/v2/stream/test-alias,other.event`)
    await client.opened
    await produce(s.url, [testEvent('merged test'), testEvent('merged other', 'other.event')])
    await until(() => client.received.length === 2)
    client.close()
    assert.deepEqual(texts(client.received).sort(), ['merged other', 'merged test'])
    const id = JSON.parse(client.received[1]!.id) as Array<{ topic: string; partition: number }>
    assert.deepEqual(
      id.map((p) => `${p.topic}/${p.partition}`).sort(),
      ['datacenter1.other.event/0', 'datacenter1.other.event/1', 'datacenter1.test.event/0'],
    )
  })

  test('Accept: application/json gives NDJSON without ids', async () => {
    await produce(s.url, [testEvent('ndjson', 'mediawiki.recentchange'.replace('mediawiki.recentchange', 'test.event'))])
    const controller = new AbortController()
    const response = await fetch(`${s.url}/v2/stream/test.event?since=0`, { headers: { accept: 'application/json' }, signal: controller.signal })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /application\/json/)
    const reader = response.body!.getReader()
    let text = ''
    while (!text.includes('"ndjson"')) text += new TextDecoder().decode((await reader.read()).value)
    controller.abort()
    const lines = text.split('\n').filter((l) => l !== '')
    assert.ok(lines.every((l) => JSON.parse(l)['$schema'] === '/eventplane/test/event/1.0.0'))
    assert.doesNotMatch(text, /^id:/m)
  })

  test('filters: CEL over the event, match[field]=value, canaries left out unless asked for', async () => {
    const cel = listen(`${s.url}/v2/stream/test.event?filter=${encodeURIComponent('test.startsWith("keep") && meta.domain == "en.wikipedia.org"')}`)
    const match = listen(`${s.url}/v2/stream/test.event?match[meta.domain]=de.wikipedia.org`)
    const canaries = listen(`${s.url}/v2/stream/test.event?canary=include&filter=${encodeURIComponent('test.startsWith("f-")')}`)
    const plain = listen(`${s.url}/v2/stream/test.event?filter=${encodeURIComponent('test.startsWith("f-")')}`)
    await Promise.all([cel.opened, match.opened, canaries.opened, plain.opened])
    await produce(s.url, [
      testEvent('keep 1', 'test.event', { meta: { domain: 'en.wikipedia.org' } }),
      testEvent('drop 1', 'test.event', { meta: { domain: 'en.wikipedia.org' } }),
      testEvent('keep 2', 'test.event', { meta: { domain: 'de.wikipedia.org' } }),
      testEvent('f-canary', 'test.event', { meta: { domain: 'canary' } }),
      testEvent('f-real', 'test.event', { meta: { domain: 'en.wikipedia.org' } }),
    ])
    await until(() => cel.received.length >= 1 && match.received.length >= 1 && canaries.received.length >= 2 && plain.received.length >= 1)
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (const c of [cel, match, canaries, plain]) c.close()
    assert.deepEqual(texts(cel.received), ['keep 1'])
    assert.deepEqual(texts(match.received), ['keep 2'])
    assert.deepEqual(texts(canaries.received), ['f-canary', 'f-real'])
    assert.deepEqual(texts(plain.received), ['f-real'])
  })

  test('a filter that fails on an event skips that event and is counted', async () => {
    const client = listen(`${s.url}/v2/stream/test.event?filter=${encodeURIComponent('test_map.k == "v"')}`)
    await client.opened
    await produce(s.url, [testEvent('no map'), testEvent('with map', 'test.event', { test_map: { k: 'v' } })])
    await until(() => client.received.length === 1)
    client.close()
    assert.deepEqual(texts(client.received), ['with map'])
    const metrics = await (await fetch(`${s.url}/metrics`)).text()
    assert.match(metrics, /eventplane_streams_filter_errors_total [1-9]/)
  })

  test('idle streams get heartbeat comments and a retry hint', async () => {
    const controller = new AbortController()
    const response = await fetch(`${s.url}/v2/stream/mediawiki.recentchange`, { signal: controller.signal })
    const reader = response.body!.getReader()
    let text = ''
    const deadline = Date.now() + 3000
    while (!/\n:\n\n/.test(text.slice(4)) && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value)
    controller.abort()
    assert.ok(text.startsWith(':ok\n\nretry: '), text)
    assert.match(text, /\n:\n\n/)
  })

  test('every live client shares one reader per partition', async () => {
    const clients = Array.from({ length: 20 }, () => listen(`${s.url}/v2/stream/test.event`))
    await Promise.all(clients.map((c) => c.opened))
    await produce(s.url, [testEvent('fan-out')])
    await until(() => clients.every((c) => c.received.length === 1))
    const metrics = await (await fetch(`${s.url}/metrics`)).text()
    assert.match(metrics, /eventplane_streams_connected_clients\{stream="test\.event"\} 2\d/)
    assert.match(metrics, /^eventplane_streams_log_readers\{topic="datacenter1\.test\.event"\} 1$/m, 'one reader for the one partition of datacenter1.test.event')
    for (const c of clients) c.close()
  })

  test('with streams.reader_per_client (the benchmark baseline) every client reads on its own, and gets the same events', async () => {
    const baseline = await sseServer({ streams: { reader_per_client: true } })
    try {
      const clients = Array.from({ length: 5 }, () => listen(`${baseline.url}/v2/stream/test.event`))
      await Promise.all(clients.map((c) => c.opened))
      await produce(baseline.url, [testEvent('one'), testEvent('two')])
      await until(() => clients.every((c) => c.received.length === 2))
      for (const c of clients) assert.deepEqual(c.received.map((r) => r.data['test']), ['one', 'two'])
      assert.match(await (await fetch(`${baseline.url}/metrics`)).text(), /^eventplane_streams_log_readers\{topic="datacenter1\.test\.event"\} 5$/m)
      for (const c of clients) c.close()
    } finally {
      await baseline.close()
    }
  })

  test('a client that does not read is disconnected; the others are not slowed', async () => {
    const small = await sseServer({ streams: { max_buffered_bytes: 256 * 1024 } })
    try {
      const reader = listen(`${small.url}/v2/stream/test.event`)
      await reader.opened
      const { port } = new URL(small.url)
      const socket = connect(Number(port), '127.0.0.1')
      socket.write('GET /v2/stream/test.event HTTP/1.1\r\nHost: localhost\r\n\r\n')
      await new Promise((resolve) => socket.once('data', resolve))
      socket.pause() // reads nothing more: the server's buffer for it fills up
      // About 25 MB: more than the kernel's socket buffers hold for the client that reads nothing.
      const map = { a: 'x'.repeat(4000), b: 'y'.repeat(4000), c: 'z'.repeat(4000) }
      let dropped = false
      for (let i = 0; i < 70 && !dropped; i++) {
        await produce(small.url, Array.from({ length: 30 }, (_, j) => testEvent(`${i}-${j}`, 'test.event', { test_map: map })))
        dropped = /eventplane_streams_slow_clients_dropped_total [1-9]/.test(await (await fetch(`${small.url}/metrics`)).text())
      }
      assert.ok(dropped, 'the client that does not read was dropped')
      const sentCount = (await small.server.platform.log!.latest('datacenter1.test.event', 0))
      await until(() => reader.received.length === sentCount, 10_000, `the reading client got everything (got ${reader.received.length} of ${sentCount}, errors ${reader.errors.join()})`)
      reader.close()
      socket.destroy()
    } finally {
      await small.close()
    }
  })
})
