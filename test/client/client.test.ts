/**
 * MetricsClient against a real Eventplane stream config API (in-process server on loopback):
 * what submit and submitInteraction send, what they drop and why, calls made before the
 * configs arrive, redirects, curation, and configs that cannot be fetched.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { stringify } from 'yaml'
import { memoryStore, MetricsClient, type MetricsClientOptions } from '../../packages/client/src/index.ts'
import { testPlatform, type TestPlatform } from '../intake/helpers.ts'

const metricsStream = (extra: Record<string, unknown> = {}, client: Record<string, unknown> = {}) => ({
  schema_title: 'eventplane/product_metrics/web/base',
  destination_event_service: 'eventgate-analytics-external',
  producers: { metrics_platform_client: { provide_values: ['page_title', 'performer_session_id', 'performer_pageview_id', 'mediawiki_database'], ...client } },
  ...extra,
})

const streams = {
  streams: {
    'pm.all': metricsStream({ sample: { unit: 'session', rate: 1 } }, { events: ['web.ui.'] }),
    'pm.none': metricsStream({ sample: { unit: 'pageview', rate: 0 } }),
    'pm.redirect': metricsStream({}, { stream_name: 'pm.all' }),
    'pm.redirect-nowhere': metricsStream({}, { stream_name: 'pm.missing' }),
    'pm.curated': metricsStream({}, { provide_values: ['page_namespace_id'], curation: { page_namespace_id: { equals: 0 } } }),
    'pm.internal': { ...metricsStream(), destination_event_service: 'eventgate-main' },
    'test.event': { schema_title: 'eventplane/test/event', destination_event_service: 'eventgate-analytics-external' },
  },
}

let platform: TestPlatform
let origin: string

before(async () => {
  const dir = (await import('../helpers.ts')).tempDir()
  const file = join(dir, 'streams.yaml')
  writeFileSync(file, stringify(streams))
  platform = await testPlatform({ stream_config: { source: file, watch: false } })
  origin = await platform.app.listen({ host: '127.0.0.1', port: 0 })
})
after(async () => {
  await platform?.close()
})

function client(options: Partial<MetricsClientOptions> = {}) {
  const sent: Array<Record<string, unknown>> = []
  const warnings: string[] = []
  const page: Record<string, unknown> = { page_title: 'Dark Souls', page_namespace_id: 0, mediawiki_database: 'enwiki' }
  const c = new MetricsClient({
    sink: { send: (event) => sent.push(event) },
    streamConfigsOrigin: origin,
    context: (name) => page[name],
    hostname: 'en.wikipedia.org',
    store: memoryStore(),
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  })
  return { client: c, sent, warnings, page }
}

test('client: submit sends the event with dt, meta.stream and meta.domain, and adds no context', async () => {
  const { client: c, sent } = client()
  await c.ready
  const before = Date.now()
  c.submit('test.event', { $schema: '/eventplane/test/event/1.0.0', test: 'a', dt: '1999-01-01T00:00:00Z', meta: { id: 'kept' } })
  assert.equal(sent.length, 1)
  const event = sent[0]!
  assert.deepEqual(event['meta'], { id: 'kept', stream: 'test.event', domain: 'en.wikipedia.org' })
  assert.ok(Date.parse(event['dt'] as string) >= before - 1, `dt is the call time (the caller's is overwritten): ${event['dt']}`)
  assert.equal(event['agent'], undefined)
})

test('client: submitInteraction adds the contextual attributes asked for, the agent, and the sample', async () => {
  const { client: c, sent } = client()
  await c.ready
  c.submitInteraction('pm.all', '/eventplane/product_metrics/web/base/1.0.0', 'click', { action_source: 'toolbar', $schema: 'ignored' })
  const event = sent[0]!
  assert.equal(event['$schema'], '/eventplane/product_metrics/web/base/1.0.0', '$schema always the argument')
  assert.equal(event['action'], 'click')
  assert.equal(event['action_source'], 'toolbar')
  assert.deepEqual(event['agent'], { client_platform: 'eventplane_node', client_platform_family: 'server' })
  assert.deepEqual(event['page'], { title: 'Dark Souls' })
  assert.deepEqual(event['mediawiki'], { database: 'enwiki' })
  const performer = event['performer'] as Record<string, string>
  assert.match(performer['session_id']!, /^[0-9a-f]{20}$/)
  assert.equal(performer['pageview_id'], c.identity.pageviewId)
  assert.deepEqual(event['sample'], { unit: 'session', rate: 1 })
})

test('client: calls made before the stream configs arrive are queued, then processed in order', async () => {
  const { client: c, sent } = client()
  c.submitClick('pm.all', { element_id: 'first' })
  c.submitClick('pm.all', { element_id: 'second' })
  assert.equal(sent.length, 0, 'nothing sent before the configs')
  await c.ready
  assert.deepEqual(sent.map((e) => e['element_id']), ['first', 'second'])
})

test('client: the call queue is bounded; the oldest call is dropped and counted', async () => {
  const { client: c, sent } = client({ maxQueuedCalls: 3 })
  for (let i = 0; i < 5; i++) c.submitClick('pm.all', { element_id: `e${i}` })
  await c.ready
  assert.deepEqual(sent.map((e) => e['element_id']), ['e2', 'e3', 'e4'])
  assert.equal(c.dropped.call_queue_full, 2)
})

const drops: Array<[string, (c: MetricsClient) => void, string, RegExp]> = [
  ['no $schema', (c) => c.submit('test.event', { test: 'x' }), 'no_schema', /has no \$schema/],
  ['no action', (c) => c.submitInteraction('pm.all', '/eventplane/product_metrics/web/base/1.0.0', ''), 'no_action', /needs an action/],
  ['a stream that is not configured', (c) => c.submitClick('pm.unknown'), 'unconfigured_stream', /pm.unknown is not configured/],
  ['a stream of another intake service (filtered out by the constraint)', (c) => c.submitClick('pm.internal'), 'unconfigured_stream', /not configured/],
  ['out of sample', (c) => c.submitClick('pm.none'), 'out_of_sample', /rate 0/],
  ['a redirect to a stream that is not configured', (c) => c.submitClick('pm.redirect-nowhere'), 'unconfigured_stream', /sends to pm.missing/],
  ['an event that is not an object', (c) => c.submit('test.event', [] as unknown as Record<string, unknown>), 'invalid_event', /must be an object/],
]
for (const [name, act, reason, message] of drops) {
  test(`client: dropped, counted and logged: ${name}`, async () => {
    const { client: c, sent, warnings } = client()
    await c.ready
    act(c)
    assert.equal(sent.length, 0)
    assert.equal(c.dropped[reason as keyof typeof c.dropped], 1, JSON.stringify(c.dropped))
    assert.match(warnings.join('\n'), message)
  })
}

test('client: a stream_name redirect sends to the target stream', async () => {
  const { client: c, sent } = client()
  await c.ready
  c.submitClick('pm.redirect', { element_id: 'x' })
  assert.equal((sent[0]!['meta'] as Record<string, unknown>)['stream'], 'pm.all')
})

test('client: curation rules of the stream decide, on the context values', async () => {
  const { client: c, sent, page } = client()
  await c.ready
  c.submitClick('pm.curated', { element_id: 'main' })
  page['page_namespace_id'] = 1
  c.submitClick('pm.curated', { element_id: 'talk' })
  assert.deepEqual(sent.map((e) => e['element_id']), ['main'])
  assert.equal(c.dropped.curated_out, 1)
})

test('client: isStreamInSample, getStreamConfig, getStreamNamesForEvent, and an instrument numbering its funnel', async () => {
  const { client: c, sent } = client()
  await c.ready
  assert.equal(c.isStreamInSample('pm.all'), true)
  assert.equal(c.isStreamInSample('pm.none'), false)
  assert.equal(c.isStreamInSample('pm.unknown'), false)
  const config = c.getStreamConfig('pm.all')!
  config.sample!.rate = 0
  assert.equal(c.getStreamConfig('pm.all')!.sample!.rate, 1, 'a copy')
  assert.deepEqual(c.getStreamNamesForEvent('web.ui.click'), ['pm.all'])
  assert.deepEqual(c.getStreamNamesForEvent('app.click'), [])
  const instrument = c.newInstrument('pm.all', '/eventplane/product_metrics/web/base/1.0.0', 'toolbar')
  instrument.submitInteraction('init')
  instrument.submitClick({ element_id: 'save' })
  assert.deepEqual(sent.map((e) => [e['action'], e['funnel_event_sequence_position'], e['instrument_name']]), [['init', 1, 'toolbar'], ['click', 2, 'toolbar']])
})

test('client: streamConfigs false sends every stream unsampled', () => {
  const { client: c, sent } = client({ streamConfigs: false, streamConfigsOrigin: undefined })
  c.submit('anything', { $schema: '/eventplane/test/event/1.0.0' })
  assert.equal(sent.length, 1)
})

/**
 * A real server that answers the stream config request badly `failures` times, then passes
 * requests on to the platform's API.
 */
async function flakyServer(failures: number, bad: (res: ServerResponse) => void): Promise<{ origin: string; server: Server; requests: () => number }> {
  let requests = 0
  const server = createServer((req, res) => {
    if (requests++ < failures) return bad(res)
    void fetch(`${origin}${req.url}`).then(async (answer) => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text()))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests: () => requests }
}

const badAnswers: Array<[string, (res: ServerResponse) => void, RegExp]> = [
  ['HTTP 500', (res) => res.writeHead(500).end('{}'), /answered HTTP 500/],
  ['garbage', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>'), /not a JSON object/],
  ['JSON without streams', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"error":"x"}'), /no "streams" object/],
  ['no answer within the timeout', () => undefined, /could not be fetched/],
]
for (const [name, bad, message] of badAnswers) {
  test(`client: stream configs answered with ${name}, twice: calls wait, the configs are fetched again with backoff, nothing is lost`, async () => {
    const flaky = await flakyServer(2, bad)
    try {
      const { client: c, sent, warnings } = client({ streamConfigsOrigin: flaky.origin, streamConfigsTimeoutMs: 300, streamConfigsRetryMs: 50 })
      c.submitClick('pm.all', { element_id: 'before' })
      await c.ready
      assert.equal(sent.length, 0)
      assert.match(c.configsFailure ?? '', message)
      c.submitClick('pm.all', { element_id: 'during' })
      const deadline = Date.now() + 5000
      while (sent.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(sent.map((e) => e['element_id']), ['before', 'during'])
      assert.equal(flaky.requests(), 3, 'two failures, then the configs')
      assert.match(warnings.join('\n'), /trying again in 50 ms[^]*trying again in 100 ms/)
      assert.equal(c.configsFailure, undefined)
    } finally {
      flaky.server.closeAllConnections()
      flaky.server.close()
    }
  })
}
