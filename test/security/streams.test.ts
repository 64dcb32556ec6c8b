/**
 * Findings 6, 7, 10, 12 and 14 of the "safe to expose" issue, on the streams side: filters and
 * history scans that held the event loop, dropped clients that kept their sockets, producers'
 * addresses published, and wrong answers to odd stream requests.
 */
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { RunningServer } from '../../src/server/index.ts'
import { eventLoopTurns, metric, securityServer, securityStreams, testEvent } from './setup.ts'

const streams = {
  ...securityStreams,
  streams: {
    ...securityStreams.streams,
    'public.event': { schema_title: 'eventplane/test/event', consumers: { eventplane_streams: { redact_fields: [] } } },
  },
}

async function produce(url: string, events: unknown[], headers: Record<string, string> = {}): Promise<void> {
  const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(events) })
  if (response.status !== 201) throw new Error(`produce answered ${response.status}: ${await response.text()}`)
}

/** The NDJSON lines of a stream until `count` events arrived (or the deadline). */
async function ndjson(url: string, count: number, timeoutMs = 5000): Promise<Array<Record<string, unknown>>> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), timeoutMs)
  const events: Array<Record<string, unknown>> = []
  try {
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: controller.signal })
    if (response.status !== 200) assert.fail(`${response.status}: ${await response.text()}`)
    let buffer = ''
    for await (const chunk of response.body!) {
      buffer += Buffer.from(chunk).toString()
      let newline
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline).trim()
        buffer = buffer.slice(newline + 1)
        if (line !== '') events.push(JSON.parse(line) as Record<string, unknown>)
        if (events.length >= count) return events
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
  return events
}

describe('stream requests', () => {
  let server: RunningServer
  before(async () => {
    server = await securityServer({}, streams)
  })
  after(() => server.close())

  test('a stream name is decoded once: %25 is 400, not 500, and %252C is not a comma', async () => {
    const percent = await fetch(`${server.url}/v2/stream/%25`)
    assert.equal(percent.status, 400)
    assert.equal(((await percent.json()) as { code: string }).code, 'EVP_STREAM_UNKNOWN')
    const comma = await fetch(`${server.url}/v2/stream/test.event%252Ctest.event`)
    assert.equal(comma.status, 400)
    const problem = (await comma.json()) as { code: string; details: { invalid: string[] } }
    assert.equal(problem.code, 'EVP_STREAM_UNKNOWN')
    assert.deepEqual(problem.details.invalid, ['test.event%2Ctest.event'])
  })

  test('a stream named a thousand times is one client (it counted as 1,000)', async () => {
    const controller = new AbortController()
    try {
      const response = await fetch(`${server.url}/v2/stream/${Array(1000).fill('test.event').join(',')}`, { signal: controller.signal })
      assert.equal(response.status, 200)
      const metrics = await (await fetch(`${server.url}/metrics`)).text()
      assert.equal(metric(metrics, 'eventplane_streams_connected_clients', { stream: 'test.event' }), 1)
    } finally {
      controller.abort()
    }
  })

  test('an Accept that allows neither SSE nor JSON is 406 EVP_NOT_ACCEPTABLE (it never happened)', async () => {
    const response = await fetch(`${server.url}/v2/stream/test.event`, { headers: { accept: 'image/png' } })
    assert.equal(response.status, 406)
    assert.equal(((await response.json()) as { code: string }).code, 'EVP_NOT_ACCEPTABLE')
    for (const accept of ['*/*', 'text/*', 'text/event-stream', 'application/json']) {
      const controller = new AbortController()
      const ok = await fetch(`${server.url}/v2/stream/test.event`, { headers: { accept }, signal: controller.signal })
      assert.equal(ok.status, 200, accept)
      assert.match(ok.headers.get('content-type') ?? '', accept === 'application/json' ? /application\/json/ : /text\/event-stream/)
      controller.abort()
    }
  })

  test("streams leave out producers' addresses and headers, even from filters, unless the stream opts in (they were public)", async () => {
    const since = Date.now() - 1000
    await produce(server.url, [testEvent('private one')], { 'user-agent': 'secret-agent/1.0' })
    await produce(server.url, [testEvent('public one', { meta: { stream: 'public.event' } })], { 'user-agent': 'public-agent/1.0' })
    const [event] = await ndjson(`${server.url}/v2/stream/test.event?since=${since}`, 1)
    assert.equal(event?.['test'], 'private one')
    assert.equal((event!['http'] as Record<string, unknown> | undefined)?.['client_ip'], undefined)
    assert.equal((event!['http'] as Record<string, unknown> | undefined)?.['request_headers'], undefined)
    // A filter sees the event as clients do: it cannot probe for the address.
    const probed = await ndjson(`${server.url}/v2/stream/test.event?since=${since}&filter=${encodeURIComponent('has(http.client_ip)')}`, 1, 1500)
    assert.deepEqual(probed, [])
    const [open] = await ndjson(`${server.url}/v2/stream/public.event?since=${since}`, 1)
    const http = open?.['http'] as { client_ip?: string; request_headers?: Record<string, string> }
    assert.equal(http.client_ip, '127.0.0.1')
    assert.equal(http.request_headers?.['user-agent'], 'public-agent/1.0')
  })

  test('a filter whose comprehensions nest three deep is refused (one froze the server for 5.8 s)', async () => {
    const filter = encodeURIComponent('test_map.all(a, test_map.all(b, test_map.all(c, true)))')
    const response = await fetch(`${server.url}/v2/stream/test.event?filter=${filter}`)
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as { code: string }).code, 'EVP_FILTER_INVALID')
  })

  test('an event a filter needs too many steps for is skipped and counted; the stream goes on', async () => {
    const since = Date.now()
    const big = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, `v${i}`]))
    await produce(server.url, [testEvent('budget big', { test_map: big }), testEvent('budget small', { test_map: { a: 'b' } })])
    const filter = encodeURIComponent('test.startsWith("budget") && test_map.all(a, test_map.all(b, true))')
    const events = await ndjson(`${server.url}/v2/stream/test.event?since=${since}&filter=${filter}`, 1)
    assert.deepEqual(
      events.map((e) => e['test']),
      ['budget small'],
    )
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.ok(metric(metrics, 'eventplane_streams_filter_over_budget_total') >= 1, 'the skipped event is counted')
  })
})

describe('history scans', () => {
  let server: RunningServer
  before(async () => {
    server = await securityServer({}, streams)
    // 50,000 events, then the one the filter looks for.
    for (let i = 0; i < 50; i++) await produce(server.url, Array.from({ length: 1000 }, (_, j) => testEvent(`fill ${i * 1000 + j}`)))
    await produce(server.url, [testEvent('marker')])
  })
  after(() => server.close())

  test('a scan of history that a filter skips lets the event loop run (it froze the server for 15 s)', async () => {
    const { result: events, turns } = await eventLoopTurns(() => ndjson(`${server.url}/v2/stream/test.event?since=0&filter=${encodeURIComponent('test == "marker"')}`, 1, 30_000))
    assert.deepEqual(
      events.map((e) => e['test']),
      ['marker'],
    )
    // The server runs in this process: without yielding, the scan of 50,000 events is one turn.
    assert.ok(turns >= 10, `the event loop ran ${turns} times while 50,000 events were scanned`)
  })
})

describe('slow clients', () => {
  let server: RunningServer
  before(async () => {
    // The kernel's socket buffers take several MB before a client that does not read holds
    // data up in the server: max_buffered_bytes counts only what waits beyond them.
    server = await securityServer({ streams: { max_buffered_bytes: 1 << 20, slow_client_grace_ms: 4000, max_connections_per_ip: 2 } }, streams)
  })
  after(() => server.close())

  test('a dropped client loses its socket after the grace and keeps its slot until then (50 sockets were held past a limit of 10)', async () => {
    const { port } = new URL(server.url)
    const socket: Socket = connect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.write(`GET /v2/stream/test.event HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`)
    // Read the headers, then never read again.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()))
    socket.pause()
    const chunk = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'x'.repeat(80)]))
    let dropped = 0
    for (let round = 0; round < 60 && dropped === 0; round++) {
      await produce(server.url, Array.from({ length: 100 }, (_, i) => testEvent(`slow ${round}.${i}`, { test_map: chunk })))
      dropped = metric(await (await fetch(`${server.url}/metrics`)).text(), 'eventplane_streams_slow_clients_dropped_total')
    }
    assert.equal(dropped, 1, 'the client that does not read is dropped')
    // Within the grace, its socket still holds one of the two slots of this address.
    const second = new AbortController()
    const third = new AbortController()
    try {
      assert.equal((await fetch(`${server.url}/v2/stream/test.event`, { signal: second.signal })).status, 200)
      const refused = await fetch(`${server.url}/v2/stream/test.event`, { signal: third.signal })
      assert.equal(refused.status, 429)
      // Then the server destroys it (a paused client does not notice), and the slot is free
      // again while the second stream is still open.
      const deadline = Date.now() + 10_000
      let freed = false
      while (!freed && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        const again = new AbortController()
        freed = (await fetch(`${server.url}/v2/stream/test.event`, { signal: again.signal })).status === 200
        again.abort()
      }
      assert.ok(freed, 'the server destroyed the socket of the dropped client, and its slot came back')
      const connections = await new Promise<number>((resolve) => server.app.server.getConnections((_error, n) => resolve(n)))
      assert.ok(connections <= 2, `the server holds ${connections} connections`)
    } finally {
      second.abort()
      third.abort()
      socket.destroy()
    }
  })
})
