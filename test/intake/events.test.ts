import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { eventually, testPlatform, type TestPlatform } from './helpers.ts'

const event = (fields: Record<string, unknown> = {}) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, ...fields })

describe('POST /v1/events: the status matrix', () => {
  let t: TestPlatform
  before(async () => {
    t = await testPlatform()
  })
  after(() => t.close())

  const post = (payload: unknown, query = '', headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/events${query}`,
      headers: { 'content-type': 'application/json', ...headers },
      payload: typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload),
    })

  test('201: every event accepted, empty body, reason phrase, events in the log', async () => {
    const response = await post([event({ test: 'one' }), event({ test: 'two' })])
    assert.equal(response.statusCode, 201)
    assert.equal(response.statusMessage, 'All 2 out of 2 events were accepted.')
    assert.equal(response.body, '')
    const stored = await t.events('datacenter1.test.event')
    assert.deepEqual(
      stored.slice(-2).map((e) => e['test']),
      ['one', 'two'],
    )
  })

  test('a single object is a batch of one', async () => {
    const response = await post(event({ test: 'single' }))
    assert.equal(response.statusCode, 201)
    assert.equal(response.statusMessage, 'All 1 out of 1 events were accepted.')
  })

  test('202: ?hasty answers before processing; any non-empty value is hasty, an empty one is not', async () => {
    const before = (await t.records('datacenter1.test.event')).length
    const hasty = await post([event({ test: 'hasty' })], '?hasty=true')
    assert.equal(hasty.statusCode, 202)
    assert.equal(hasty.statusMessage, '1 events hastily received.')
    assert.equal(hasty.body, '')
    await eventually(async () => (await t.records('datacenter1.test.event')).length === before + 1)
    assert.equal((await post([event()], '?hasty=false')).statusCode, 202)
    assert.equal((await post([event()], '?hasty=')).statusCode, 201)
  })

  test('207: some accepted, the others listed as {invalid, error} with their index', async () => {
    const response = await post([event({ test: 'ok' }), event({ test: 42 }), { $schema: '/broken/event/1.0.0', meta: { stream: 'broken.event' } }])
    assert.equal(response.statusCode, 207)
    assert.equal(response.statusMessage, '1 out of 3 events were accepted, but 2 failed (1 invalid and 1 errored).')
    const body = response.json()
    assert.equal(body.invalid.length, 1)
    assert.equal(body.invalid[0].status, 'invalid')
    assert.equal(body.invalid[0].index, 1)
    assert.equal(body.invalid[0].context.code, 'EVP_EVENT_INVALID')
    // EventGate's ajv 6 fields (dataPath, "should") beside ajv 8's instancePath.
    assert.deepEqual(body.invalid[0].context.errors[0], { keyword: 'type', dataPath: '.test', schemaPath: '#/properties/test/type', params: { type: 'string' }, message: 'should be string', instancePath: '/test' })
    assert.equal(body.invalid[0].context.errorsText, "'.test' should be string")
    assert.equal(body.invalid[0].context.message, "'.test' should be string")
    assert.equal(body.error.length, 1)
    assert.equal(body.error[0].status, 'error')
    assert.equal(body.error[0].context.code, 'EVP_SCHEMA_INVALID')
  })

  test('400: every event invalid, body {invalid} only; the event comes back with defaults filled in', async () => {
    const response = await post([event({ test_number: 'x' })])
    assert.equal(response.statusCode, 400)
    assert.equal(response.statusMessage, '1 out of 1 events were invalid and not accepted.')
    const body = response.json()
    assert.deepEqual(Object.keys(body), ['invalid'])
    assert.equal(body.invalid[0].event.test, 'default value')
  })

  test('500: none accepted and some errored on our side', async () => {
    const response = await post([{ $schema: '/broken/event/1.0.0', meta: { stream: 'broken.event' } }, event({ test: 1 })])
    assert.equal(response.statusCode, 500)
    assert.equal(response.statusMessage, '2 out of 2 events had failures and were not accepted. (1 invalid and 1 errored).')
    const body = response.json()
    assert.equal(body.error[0].context.code, 'EVP_SCHEMA_INVALID')
    assert.equal(body.invalid[0].context.code, 'EVP_EVENT_INVALID')
  })

  for (const [name, payload] of [
    ['no body', ''],
    ['an empty array', '[]'],
    ['an empty object', '{}'],
  ] as const) {
    test(`400 EVP_BODY_EMPTY for ${name}`, async () => {
      const response = await post(payload)
      assert.equal(response.statusCode, 400)
      assert.equal(response.json().code, 'EVP_BODY_EMPTY')
      assert.match(response.headers['content-type'] as string, /application\/problem\+json/)
    })
  }

  test('400 EVP_BODY_INVALID_JSON for malformed JSON (EventGate: 500)', async () => {
    const response = await post('[{"$schema": ')
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().code, 'EVP_BODY_INVALID_JSON')
  })

  test('413 EVP_BODY_TOO_LARGE over the limit (EventGate: 500)', async () => {
    const response = await post(JSON.stringify([event({ test: 'x'.repeat(5 * 1024 * 1024) })]))
    assert.equal(response.statusCode, 413)
    assert.equal(response.json().code, 'EVP_BODY_TOO_LARGE')
  })

  test('415 EVP_UNSUPPORTED_MEDIA_TYPE for other content types', async () => {
    const response = await post('<event/>', '', { 'content-type': 'application/xml' })
    assert.equal(response.statusCode, 415)
    assert.equal(response.json().code, 'EVP_UNSUPPORTED_MEDIA_TYPE')
  })

  test('text/plain (sendBeacon) and content-type parameters are accepted', async () => {
    assert.equal((await post([event()], '', { 'content-type': 'text/plain;charset=UTF-8' })).statusCode, 201)
    assert.equal((await post([event()], '', { 'content-type': 'application/json; charset=utf-8' })).statusCode, 201)
  })

  test('other methods on /v1/events are 405 with Allow (it was 404); OPTIONS gets CORS headers', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH'] as const) {
      const response = await t.app.inject({ method, url: '/v1/events' })
      assert.equal(response.statusCode, 405, method)
      assert.equal(response.json().code, 'EVP_METHOD_NOT_ALLOWED')
      assert.equal(response.headers['allow'], 'POST')
    }
    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/events',
      headers: { origin: 'https://example.org', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    })
    assert.equal(preflight.statusCode, 204)
    assert.equal(preflight.headers['access-control-allow-origin'], '*')
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/)
  })
})
