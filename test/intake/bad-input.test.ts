import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { testPlatform, type TestPlatform } from './helpers.ts'

const valid = (test = 'ok') => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test })

describe('bad input: the right status and code, the server stays up, valid events of the batch are accepted', () => {
  let t: TestPlatform
  before(async () => {
    t = await testPlatform()
  })
  after(() => t.close())

  const post = (payload: string | Buffer, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json', ...headers }, payload })
  const stillUp = async () => assert.equal((await post(JSON.stringify([valid('after')]))).statusCode, 201)

  test('invalid JSON', async () => {
    const response = await post('{"$schema": "/eventplane/test/event/1.0.0", meta: }')
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().code, 'EVP_BODY_INVALID_JSON')
    await stillUp()
  })

  test('JSON nested 100,000 deep', async () => {
    const response = await post('['.repeat(100_000) + ']'.repeat(100_000))
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().code, 'EVP_BODY_TOO_DEEP')
    const deepObject = await post(JSON.stringify([valid()]).slice(0, -1) + ',' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + ']')
    assert.equal(deepObject.json().code, 'EVP_BODY_TOO_DEEP')
    await stillUp()
  })

  test('a 10 MB body', async () => {
    const response = await post(JSON.stringify([valid('x'.repeat(10 * 1024 * 1024))]))
    assert.equal(response.statusCode, 413)
    assert.equal(response.json().code, 'EVP_BODY_TOO_LARGE')
    await stillUp()
  })

  test('items that are not objects are invalid; the objects beside them are accepted', async () => {
    const response = await post(JSON.stringify([valid('a'), 42, 'text', null, [], valid('b')]))
    assert.equal(response.statusCode, 207)
    const invalid = response.json().invalid as Array<{ index: number; context: { code: string } }>
    assert.deepEqual(
      invalid.map((i) => [i.index, i.context.code]),
      [
        [1, 'EVP_EVENT_NOT_OBJECT'],
        [2, 'EVP_EVENT_NOT_OBJECT'],
        [3, 'EVP_EVENT_NOT_OBJECT'],
        [4, 'EVP_EVENT_NOT_OBJECT'],
      ],
    )
    const stored = await t.events('datacenter1.test.event')
    assert.deepEqual(
      stored.slice(-2).map((e) => e['test']),
      ['a', 'b'],
    )
  })

  test('__proto__ and constructor keys pollute nothing', async () => {
    const payload = `[{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"test.event","__proto__":{"polluted":1}},"__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":3}}},${JSON.stringify(valid('beside'))}]`
    const response = await post(payload)
    assert.equal(response.statusCode, 207)
    assert.equal(response.json().invalid[0].context.code, 'EVP_EVENT_INVALID')
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false)
    // With a schema that takes any field, the keys are stored as plain data.
    const open = await post(`[{"$schema":"/open/event/1.0.0","meta":{"stream":"open.event"},"__proto__":{"polluted":4},"constructor":{"prototype":{"x":1}}}]`)
    assert.equal(open.statusCode, 201, open.body)
    const stored = (await t.records('datacenter1.open.event')).at(-1)!.value.toString()
    assert.match(stored, /"__proto__":\{"polluted":4\}/)
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
    await stillUp()
  })

  for (const uri of ['/../../../etc/passwd', '/eventplane/test/event/%2e%2e/%2e%2e/1.0.0', 'file:///etc/passwd', 'http://169.254.169.254/latest/meta-data/', 'eventplane/test/event/1.0.0']) {
    test(`$schema ${uri} is refused without reading anything`, async () => {
      const response = await post(JSON.stringify([{ $schema: uri, meta: { stream: 'test.event' } }, valid('beside')]))
      assert.equal(response.statusCode, 207)
      const item = response.json().invalid[0]
      assert.equal(item.status, 'invalid')
      assert.equal(item.context.code, 'EVP_SCHEMA_URI_NOT_ALLOWED')
    })
  }

  test('a schema that does not exist is invalid with EVP_SCHEMA_NOT_FOUND', async () => {
    const response = await post(JSON.stringify([{ $schema: '/eventplane/test/event/9.9.9', meta: { stream: 'test.event' } }]))
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().invalid[0].context.code, 'EVP_SCHEMA_NOT_FOUND')
  })

  test('a URI of a title the bundled repository had before its own namespace names the new one', async () => {
    const response = await post(JSON.stringify([{ $schema: '/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'x' }]))
    assert.equal(response.statusCode, 400)
    const { context } = response.json().invalid[0]
    assert.equal(context.code, 'EVP_SCHEMA_NOT_FOUND')
    assert.match(context.message, /no schema at \/test\/event\/1\.0\.0 .*; the bundled test\/event 1\.0\.0 is now \/eventplane\/test\/event\/1\.0\.0$/)
  })

  test('a schema that fails to compile is an error of ours, and valid events beside it are accepted', async () => {
    const response = await post(JSON.stringify([{ $schema: '/broken/event/1.0.0', meta: { stream: 'broken.event' } }, valid('beside')]))
    assert.equal(response.statusCode, 207)
    assert.equal(response.json().error[0].context.code, 'EVP_SCHEMA_INVALID')
    await stillUp()
  })

  test('invalid UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from('[{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"test.event"},"test":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]')])
    const response = await post(bytes)
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().code, 'EVP_BODY_INVALID_UTF8')
    await stillUp()
  })

  test('a stream that is not configured, or takes another schema, is refused', async () => {
    const response = await post(
      JSON.stringify([
        { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'nope.stream' } },
        { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'mediawiki.revision-create' } },
        { $schema: '/eventplane/test/event/1.0.0' },
        { meta: { stream: 'test.event' } },
      ]),
    )
    assert.equal(response.statusCode, 400)
    assert.deepEqual(
      response.json().invalid.map((i: { context: { code: string } }) => i.context.code),
      ['EVP_STREAM_NOT_ALLOWED', 'EVP_SCHEMA_NOT_ALLOWED_FOR_STREAM', 'EVP_EVENT_STREAM_MISSING', 'EVP_EVENT_SCHEMA_MISSING'],
    )
  })

  test('a flood of distinct unknown schema URIs keeps memory bounded', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    await t.platform.intake!.close() // error events of earlier tests written
    gc()
    const heapBefore = process.memoryUsage().heapUsed
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 500 }, (_, i) => ({ $schema: `/flood/${round}/${i}/1.0.0`, meta: { stream: 'test.event' } }))
      const response = await post(JSON.stringify(batch))
      assert.equal(response.statusCode, 400)
      assert.equal(response.json().invalid[0].context.code, 'EVP_SCHEMA_NOT_FOUND')
    }
    // Not-found results are not cached: only schemas that exist are compiled and kept.
    assert.ok(t.platform.validators.size <= 5, `validator cache holds ${t.platform.validators.size}`)
    await t.platform.intake!.close() // the 10,000 error events written
    gc()
    const grown = process.memoryUsage().heapUsed - heapBefore
    // 10,000 distinct URIs: nothing of them is kept (not-found results are not cached).
    assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB`)
    await stillUp()
  })
})
