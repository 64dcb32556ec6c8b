import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { eventually, testPlatform, type TestPlatform } from './helpers.ts'

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('enrichment, topics, keys and error events', () => {
  let t: TestPlatform
  before(async () => {
    t = await testPlatform({ server: { trust_proxy: ['127.0.0.1'] } })
  })
  after(() => t.close())

  const post = (events: unknown[], headers: Record<string, string> = {}, query = '') =>
    t.app.inject({ method: 'POST', url: `/v1/events${query}`, headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(events) })
  const last = async (topic: string) => (await t.events(topic)).at(-1)!

  test('fields the schema has and the event lacks are filled in; present ones are kept', async () => {
    const before = Date.now()
    const response = await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' } }], {
      'x-request-id': 'req-123',
      'user-agent': 'ua/1.0',
      'x-client-ip': '203.0.113.9',
    })
    assert.equal(response.statusCode, 201, response.body)
    const stored = await last('datacenter1.test.event')
    const meta = stored['meta'] as Record<string, string>
    assert.match(meta['id']!, uuid)
    assert.ok(Date.parse(meta['dt']!) >= before - 1000 && Date.parse(meta['dt']!) <= Date.now() + 1000)
    assert.equal(meta['request_id'], 'req-123')
    const http = stored['http'] as { request_headers: Record<string, string>; client_ip: string }
    assert.equal(http.request_headers['user-agent'], 'ua/1.0')
    assert.equal(http.client_ip, '203.0.113.9')
    assert.equal(stored['test'], 'default value', 'schema defaults are filled in')

    await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id: 'mine', dt: '2020-01-01T00:00:00Z', request_id: 'r' }, http: { client_ip: '1.2.3.4', request_headers: { 'user-agent': 'own' } } }], {
      'x-request-id': 'other',
      'user-agent': 'ua/2.0',
    })
    const kept = await last('datacenter1.test.event')
    assert.deepEqual(kept['meta'], { stream: 'test.event', id: 'mine', dt: '2020-01-01T00:00:00Z', request_id: 'r' })
    assert.deepEqual(kept['http'], { client_ip: '1.2.3.4', request_headers: { 'user-agent': 'own' } })
  })

  test('X-Forwarded-For counts only from a trusted proxy; the socket address otherwise', async () => {
    await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' } }], { 'x-forwarded-for': '198.51.100.7' })
    assert.equal((await last('datacenter1.test.event'))['http'] && ((await last('datacenter1.test.event'))['http'] as { client_ip: string }).client_ip, '198.51.100.7')
    const untrusted = await testPlatform()
    try {
      await untrusted.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7', 'x-client-ip': '198.51.100.8' },
        payload: JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' } }]),
      })
      const stored = (await untrusted.events('datacenter1.test.event')).at(-1)!
      assert.equal((stored['http'] as { client_ip: string }).client_ip, '127.0.0.1')
    } finally {
      await untrusted.close()
    }
  })

  test('header values are cut to 400 characters', async () => {
    await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' } }], { 'user-agent': 'u'.repeat(1000) })
    const stored = await last('datacenter1.test.event')
    assert.equal((stored['http'] as { request_headers: Record<string, string> }).request_headers['user-agent']!.length, 400)
  })

  test('nothing is added that the schema does not have', async () => {
    const response = await post([{ $schema: '/open/event/1.0.0', meta: { stream: 'open.event' } }], { 'user-agent': 'ua', 'x-request-id': 'r' })
    assert.equal(response.statusCode, 201, response.body)
    const stored = await last('datacenter1.open.event')
    assert.deepEqual(Object.keys(stored).sort(), ['$schema', 'meta'])
    assert.deepEqual(Object.keys(stored['meta'] as object).sort(), ['dt', 'stream'])
  })

  test('topic is topic_prefix + stream (or the stream without prefixes); log timestamp is meta.dt', async () => {
    await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', dt: '2021-06-01T12:00:00.000Z' } }])
    const record = (await t.records('datacenter1.test.event')).at(-1)!
    assert.equal(record.timestamp, Date.parse('2021-06-01T12:00:00.000Z'))
    await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'unprefixed.event' } }])
    assert.equal((await t.records('unprefixed.event')).length, 1)
  })

  test("the key comes from the stream's message_key_fields; a missing key field is invalid", async () => {
    const example = {
      $schema: '/eventplane/mediawiki/revision/create/1.0.0',
      meta: { stream: 'mediawiki.revision-create' },
      database: 'enwiki',
      performer: { user_text: 'A', user_is_bot: false },
      page_id: 7,
      page_title: 'P',
      page_namespace: 0,
      rev_id: 1,
      rev_timestamp: '2026-01-01T00:00:00Z',
    }
    assert.equal((await post([example])).statusCode, 201)
    const record = (await t.records('datacenter1.mediawiki.revision-create')).at(-1)!
    assert.equal(record.key?.toString(), '{"wiki_id":"enwiki","page_id":7}')
  })

  test('a refused event becomes an error event on the error stream, after the answer', async () => {
    const response = await post([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', domain: 'example.org' }, test: 7 }], { 'x-request-id': 'err-req' })
    assert.equal(response.statusCode, 400)
    let errorEvent: Record<string, unknown> | undefined
    await eventually(async () => {
      errorEvent = (await t.events('datacenter1.eventplane.error.validation')).find((e) => (e['meta'] as { request_id?: string }).request_id === 'err-req')
      return errorEvent !== undefined
    })
    assert.equal(errorEvent!['$schema'], '/eventplane/error/1.0.0')
    assert.equal(errorEvent!['errored_schema_uri'], '/eventplane/test/event/1.0.0')
    assert.equal(errorEvent!['errored_stream_name'], 'test.event')
    assert.equal(errorEvent!['error_type'], 'EVP_EVENT_INVALID')
    assert.equal(errorEvent!['message'], "'.test' should be string", "EventGate's errorsText")
    assert.equal(JSON.parse(errorEvent!['raw_event'] as string).test, 7)
    assert.equal((errorEvent!['meta'] as { domain: string }).domain, 'example.org')
    assert.equal(errorEvent!['emitter_id'], 'eventplane-intake')
  })

  test('?schema_uri= and ?stream= fill in events without them (W3C reports)', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/events?schema_uri=/eventplane/test/event/1.0.0&stream=test.event',
      headers: { 'content-type': 'application/reports+json' },
      payload: JSON.stringify([{ test: 'report' }]),
    })
    assert.equal(response.statusCode, 201, response.body)
    const stored = await last('datacenter1.test.event')
    assert.equal(stored['test'], 'report')
    assert.equal(stored['$schema'], '/eventplane/test/event/1.0.0')
  })

  test('CloudEvents, one and a batch, map onto events', async () => {
    const cloudEvent = (id: string) => ({
      specversion: '1.0',
      id,
      source: '/tests',
      type: 'org.example.test',
      time: '2026-02-02T00:00:00Z',
      dataschema: '/eventplane/test/event/1.0.0',
      stream: 'test.event',
      data: { test: `cloud ${id}` },
    })
    const one = await t.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/cloudevents+json' }, payload: JSON.stringify(cloudEvent('ce-1')) })
    assert.equal(one.statusCode, 201, one.body)
    const stored = await last('datacenter1.test.event')
    assert.equal(stored['test'], 'cloud ce-1')
    assert.equal((stored['meta'] as { id: string }).id, 'ce-1')
    assert.equal(stored['dt'], '2026-02-02T00:00:00Z')
    const batch = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      payload: JSON.stringify([cloudEvent('ce-2'), cloudEvent('ce-3')]),
    })
    assert.equal(batch.statusCode, 201, batch.body)
  })

  test('GET /v1/_test/events is absent unless test_events are configured; metrics count outcomes', async () => {
    assert.equal((await t.app.inject('/v1/_test/events')).statusCode, 404)
    const metrics = (await t.app.inject('/metrics')).body
    assert.match(metrics, /eventplane_intake_events_total\{stream="test\.event",schema="\/eventplane\/test\/event\/1\.0\.0",outcome="accepted"\} \d+/)
    assert.match(metrics, /eventplane_intake_events_total\{stream="test\.event",schema="\/eventplane\/test\/event\/1\.0\.0",outcome="invalid"\} \d+/)
  })
})
