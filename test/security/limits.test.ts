/**
 * Findings 5, 8 and 9 of the "safe to expose" issue: bounded work per request, and memory and
 * metric series that request input cannot grow.
 */
import assert from 'node:assert/strict'
import { runInNewContext } from 'node:vm'
import v8 from 'node:v8'
import { after, before, describe, test } from 'node:test'
import { createValidatorCache } from '../../src/schemas/validator.ts'
import type { SchemaSource } from '../../src/schemas/source.ts'
import type { TestPlatform } from '../intake/helpers.ts'
import { codes, eventLoopTurns, metric, post, securityPlatform, testEvent, tests } from './setup.ts'

describe('bounded work per request', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform()
  })
  after(() => t.close())

  test('a 4 MiB body of 2 million items is 413 EVP_TOO_MANY_EVENTS before it is parsed (it blocked the server for a minute)', async () => {
    const body = `[${'1,'.repeat(2_000_000)}1]`
    const response = await post(t.app, body)
    assert.equal(response.statusCode, 413)
    assert.equal(response.json().code, 'EVP_TOO_MANY_EVENTS')
    assert.equal(response.json().details.limit, 10_000)
  })

  test('1.4 million {} with ?schema_uri&stream are 413 too (they were all accepted)', async () => {
    const body = `[${'{},'.repeat(1_390_000)}{}]`
    const response = await post(t.app, body, { url: '/v1/events?schema_uri=/eventplane/test/event/1.0.0&stream=test.event' })
    assert.equal(response.statusCode, 413)
    assert.equal(response.json().code, 'EVP_TOO_MANY_EVENTS')
    assert.deepEqual(await tests(t), [])
  })

  test('commas inside strings are not items, and exactly the limit is processed', async () => {
    const events = Array.from({ length: 10_000 }, (_, i) => testEvent(i < 5 ? ','.repeat(4000) : `e${i}`))
    const response = await post(t.app, events)
    assert.equal(response.statusCode, 201, response.body.slice(0, 300))
  })

  test('a batch of 10,000 refused events lists 100 of them and counts the rest (the answer was 276 MB)', async () => {
    const events = Array.from({ length: 10_000 }, (_, i) => ({ ...testEvent(`bad ${i}`), test: i }))
    const response = await post(t.app, events)
    assert.equal(response.statusCode, 400)
    const body = response.json()
    assert.equal(body.invalid.length, 100)
    assert.deepEqual(body.omitted, { invalid: 9_900, error: 0 })
    assert.deepEqual(
      body.invalid.slice(0, 3).map((i: { index: number }) => i.index),
      [0, 1, 2],
    )
    assert.equal(response.statusMessage, '10000 out of 10000 events were invalid and not accepted.')
    assert.ok(response.body.length < 200_000, `the answer is ${response.body.length} bytes`)
  })

  test('an event that fails in ten thousand places lists 20 of its errors', async () => {
    const response = await post(t.app, [{ ...testEvent('many errors'), test_map: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])) }])
    assert.equal(response.statusCode, 400)
    const [item] = response.json().invalid
    assert.equal(item.context.errors.length, 20)
    assert.match(item.context.message, /and 9980 more$/)
  })

  test('a large batch lets the event loop run while it is processed (it held it for the whole batch)', async () => {
    const events = Array.from({ length: 10_000 }, (_, i) => testEvent(`loop ${i}`, { test_map: Object.fromEntries(Array.from({ length: 20 }, (_, j) => [`k${j}`, `v${j}`])) }))
    const { result, turns } = await eventLoopTurns(() => t.platform.intake!.process(events, { receivedAt: new Date() }))
    assert.equal(result.accepted, 10_000)
    // Another request gets a turn every ~10 ms of work; without yielding there is at most one.
    assert.ok(turns >= 5, `the event loop ran ${turns} times during the batch`)
  })
})

describe('$schema fragments and queries', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform()
  })
  after(() => t.close())

  test('an empty fragment is the schema itself; any other fragment or a query is refused before any cache or label (each compiled the schema again)', async () => {
    const fine = await post(t.app, [{ ...testEvent('empty fragment'), $schema: '/eventplane/test/event/1.0.0#' }])
    assert.equal(fine.statusCode, 201, fine.body)
    // Refusals make error events, whose schema is compiled once.
    await post(t.app, [{ ...testEvent('refused'), test: 1 }])
    await t.platform.intake!.close()
    const sizeBefore = t.platform.validators.size
    for (let i = 0; i < 200; i++) {
      const fragment = `x${i}`.repeat(i === 0 ? 500_000 : 1)
      const response = await post(t.app, [
        { ...testEvent(`fragment ${i}`), $schema: `/eventplane/test/event/1.0.0#${fragment}` },
        { ...testEvent(`query ${i}`), $schema: `/eventplane/test/event/1.0.0?v=${i}` },
      ])
      assert.equal(response.statusCode, 400)
      assert.deepEqual(codes(response.json()), ['EVP_SCHEMA_URI_NOT_ALLOWED', 'EVP_SCHEMA_URI_NOT_ALLOWED'])
      // The answer echoes the events (bounded by the body) but quotes the long value cut short.
      assert.ok(response.body.length < 2.1 * (fragment.length + 1000), `the answer is ${response.body.length} bytes`)
    }
    assert.equal(t.platform.validators.size, sizeBefore)
    const metrics = await t.app.inject('/metrics')
    assert.equal(metrics.statusCode, 200)
    assert.doesNotMatch(metrics.body, /schema="[^"]*[#?]/)
  })
})

describe('streams made through /regex/ keys', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform({ intake: { max_regex_streams: 5 } })
  })
  after(() => t.close())

  test('are bounded by intake.max_regex_streams and labelled by their key (413k topics and series were made in 50 s)', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `test.event.flood${i}`)
    const response = await post(
      t.app,
      names.map((stream) => testEvent(stream, { meta: { stream } })),
    )
    assert.equal(response.statusCode, 207, response.body)
    assert.deepEqual(codes(response.json()), ['EVP_STREAM_LIMIT_REACHED', 'EVP_STREAM_LIMIT_REACHED', 'EVP_STREAM_LIMIT_REACHED'])
    // Streams made already keep taking events.
    assert.equal((await post(t.app, [testEvent('again', { meta: { stream: 'test.event.flood0' } })])).statusCode, 201)
    const topics = (await t.platform.log!.topics()).filter((topic) => topic.includes('flood'))
    assert.equal(topics.length, 5)
    const metrics = (await t.app.inject('/metrics')).body
    assert.doesNotMatch(metrics.split('\n').filter((line) => line.startsWith('eventplane_intake_')).join('\n'), /flood/)
    // The log counts records by topic, a regex stream's under its key too.
    assert.doesNotMatch(metrics, /flood/)
    assert.equal(metric(metrics, 'eventplane_log_appended_records_total', { topic: 'datacenter1./^test\\\\.event\\\\..+$/' }), 6)
    // (Prometheus escapes the backslashes of a label value.)
    assert.equal(metric(metrics, 'eventplane_intake_events_total', { stream: '/^test\\\\.event\\\\..+$/', outcome: 'accepted' }), 6)
  })

  test('the count survives a restart: the streams already in the log are counted', async () => {
    const { platform } = t
    const { buildApp, openPlatform } = await import('../../src/server/index.ts')
    const { pino } = await import('pino')
    await t.app.close()
    await platform.close()
    const again = await openPlatform(platform.config, { logger: pino({ level: 'silent' }) })
    const app = await buildApp(again)
    try {
      const response = await post(app, [testEvent('old', { meta: { stream: 'test.event.flood1' } }), testEvent('new', { meta: { stream: 'test.event.flood7' } })])
      assert.equal(response.statusCode, 207, response.body)
      assert.deepEqual(codes(response.json()), ['EVP_STREAM_LIMIT_REACHED'])
    } finally {
      await app.close()
      await again.close()
      t.close = async () => {}
    }
  })
})

describe('the validator cache', () => {
  test('frees what it evicts: compiling thousands of schemas through a small cache keeps memory bounded (ajv kept ~47 KB per compile)', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const schema = {
      title: 'churn/event',
      $schema: 'https://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`field_${i}`, { type: 'string', maxLength: 100, description: `field ${i} `.repeat(5) }])),
    }
    const source: SchemaSource = { get: async (uri) => ({ uri, location: uri, schema: { ...structuredClone(schema), $id: uri } }) }
    const cache = createValidatorCache({ source, maxEntries: 20 })
    for (let i = 0; i < 100; i++) await cache.get(`/churn/${i}/1.0.0`)
    gc()
    const warm = process.memoryUsage().heapUsed
    for (let i = 100; i < 1100; i++) await cache.get(`/churn/${i}/1.0.0`)
    gc()
    const grown = process.memoryUsage().heapUsed - warm
    assert.equal(cache.size, 20)
    // 1,000 more compiles at ~30 KB each would be ~30 MB if evictions kept them.
    assert.ok(grown < 12 * 1024 * 1024, `the heap grew ${(grown / 1048576).toFixed(1)} MB over 1,000 compiles through a cache of 20`)
  })

  test('is bounded in bytes as well as entries', async () => {
    const big = { title: 'big/event', type: 'object', description: 'x'.repeat(100_000) }
    const source: SchemaSource = { get: async (uri) => ({ uri, location: uri, schema: { ...big, $id: uri } }) }
    const cache = createValidatorCache({ source, maxEntries: 1000, maxBytes: 10 * 1024 * 1024 })
    for (let i = 0; i < 20; i++) await cache.get(`/big/${i}/1.0.0`)
    assert.ok(cache.bytes <= 10 * 1024 * 1024, `${cache.bytes} bytes held`)
    assert.ok(cache.size < 20 && cache.size >= 1, `${cache.size} entries`)
  })
})

describe('bodies being received', () => {
  test('a client that goes away mid-body gives its bytes back to intake.max_pending_body_bytes', async () => {
    const { connect } = await import('node:net')
    const { securityServer } = await import('./setup.ts')
    const server = await securityServer({ intake: { max_pending_body_bytes: 1048576, max_body_bytes: 1048576 } })
    try {
      const { port } = new URL(server.url)
      // Three bodies of 700,000 declared bytes, each abandoned: were they still counted, the
      // fourth would be refused with 503 EVP_OVERLOADED.
      for (let i = 0; i < 3; i++) {
        const socket = connect(Number(port), '127.0.0.1')
        await new Promise((resolve) => socket.once('connect', resolve))
        socket.write(`POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 700000\r\n\r\n[${' '.repeat(1000)}`)
        await new Promise((resolve) => setTimeout(resolve, 200))
        socket.destroy()
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      const event = JSON.stringify([testEvent('after the abandoned bodies')])
      const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: event + ' '.repeat(700_000 - event.length) })
      assert.equal(response.status, 201, await response.text())
    } finally {
      await server.close()
    }
  })
})
