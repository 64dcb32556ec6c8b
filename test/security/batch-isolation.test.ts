/**
 * Findings 1, 3 and 4 of the "safe to expose" issue: one bad event must never hurt another,
 * values copied from headers must never make a valid event invalid, and error events must
 * never vanish.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createValidatorCache } from '../../src/schemas/validator.ts'
import { createSchemaSource } from '../../src/schemas/source.ts'
import { bundledSchemas } from '../helpers.ts'
import { eventually, type TestPlatform } from '../intake/helpers.ts'
import { codes, metric, post, random, securityPlatform, testEvent, tests } from './setup.ts'

const errorTopic = 'datacenter1.eventplane.error.validation'
// A name the regex key takes (at most 249 characters) whose topic, with its prefix, is too long.
const longStream = `test.event.${'a'.repeat(238)}`

describe('one bad event never hurts another', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform()
  })
  after(() => t.close())

  test('a schema-valid event the log would refuse is refused alone; its neighbours are accepted (the batch was lost with 500)', async () => {
    const response = await post(t.app, [
      testEvent('good 1'),
      testEvent('before 1970', { meta: { dt: '1969-12-31T23:59:59Z' } }),
      testEvent('good 2'),
      testEvent('topic too long', { meta: { stream: longStream } }),
      testEvent('year 9999', { meta: { dt: '9999-01-01T00:00:00Z' } }),
      testEvent('good 3'),
    ])
    assert.equal(response.statusCode, 207, response.body)
    const body = response.json()
    assert.deepEqual(codes(body), ['EVP_EVENT_TIME_OUT_OF_RANGE', 'EVP_STREAM_NAME_INVALID', 'EVP_EVENT_TIME_OUT_OF_RANGE'])
    assert.deepEqual(
      body.invalid.map((i: { index: number }) => i.index),
      [1, 3, 4],
    )
    assert.deepEqual(body.error, [])
    assert.deepEqual(await tests(t), ['good 1', 'good 2', 'good 3'])
    // Each refusal made an error event.
    await t.platform.intake!.close()
    const errors = await t.events(errorTopic)
    assert.deepEqual(
      errors.map((e) => e['error_type']),
      ['EVP_EVENT_TIME_OUT_OF_RANGE', 'EVP_STREAM_NAME_INVALID', 'EVP_EVENT_TIME_OUT_OF_RANGE'],
    )
  })

  test('with ?hasty the good events of such a batch are in the log after the 202 (they were lost silently)', async () => {
    const response = await post(t.app, [testEvent('hasty good 1'), testEvent('hasty 1969', { meta: { dt: '1969-01-01T00:00:00Z' } }), testEvent('hasty good 2')], {
      url: '/v1/events?hasty=true',
    })
    assert.equal(response.statusCode, 202)
    await eventually(async () => (await tests(t)).includes('hasty good 2'))
    const all = await tests(t)
    assert.ok(all.includes('hasty good 1') && !all.includes('hasty 1969'), all.join(', '))
  })

  test('meta.dt may be up to intake.event_time.max_future_s ahead, and is the log timestamp', async () => {
    const soon = new Date(Date.now() + 30 * 60_000).toISOString()
    const late = new Date(Date.now() + 2 * 3600_000).toISOString()
    const response = await post(t.app, [testEvent('in 30 minutes', { meta: { dt: soon } }), testEvent('in 2 hours', { meta: { dt: late } })])
    assert.equal(response.statusCode, 207, response.body)
    assert.deepEqual(codes(response.json()), ['EVP_EVENT_TIME_OUT_OF_RANGE'])
    const record = (await t.records('datacenter1.test.event')).find((r) => r.value.toString().includes('in 30 minutes'))
    assert.equal(record?.timestamp, Date.parse(soon))
  })

  test('a random mix of good and bad events: every good one is in the log, once, and every answer says why for the rest', async () => {
    const seed = Number(process.env['EVENTPLANE_TEST_SEED'] ?? Date.now() % 100_000)
    const rand = random(seed)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!
    const bad: Array<(n: string) => unknown> = [
      (n) => testEvent(n, { meta: { dt: '1969-07-20T20:17:00Z' } }),
      (n) => testEvent(n, { meta: { dt: '9999-12-31T23:59:59Z' } }),
      (n) => testEvent(n, { meta: { stream: `test.event.${'x'.repeat(240 + Math.floor(rand() * 100))}` } }),
      (n) => testEvent(n, { meta: { stream: 'not.configured' } }),
      (n) => ({ ...testEvent(n), test: 42 }),
      (n) => ({ ...testEvent(n), $schema: `/eventplane/test/event/1.0.0#${n}` }),
      (n) => ({ ...testEvent(n), $schema: '/eventplane/test/event/1.0.0?x=1' }),
      (n) => testEvent(n, { meta: { stream: 'eventplane.error.validation' } }),
      () => 'not an object',
      () => [1, 2, 3],
      (n) => testEvent(n, { meta: { dt: 'yesterday' } }),
    ]
    const expected = new Set<string>()
    for (let round = 0; round < 25; round++) {
      const batch: unknown[] = []
      const size = 1 + Math.floor(rand() * 40)
      let good = 0
      for (let i = 0; i < size; i++) {
        const name = `r${round}-${i}`
        if (rand() < 0.5) {
          batch.push(rand() < 0.3 ? testEvent(name, { meta: { stream: `test.event.mix${Math.floor(rand() * 3)}` } }) : testEvent(name))
          expected.add(name)
          good++
        } else {
          batch.push(pick(bad)(name))
        }
      }
      const hasty = rand() < 0.2
      const response = await post(t.app, batch, { url: hasty ? '/v1/events?hasty=1' : '/v1/events' })
      if (hasty) {
        assert.equal(response.statusCode, 202)
        continue
      }
      const status = good === size ? 201 : good === 0 ? 400 : 207
      assert.equal(response.statusCode, status, `seed ${seed}, round ${round}: ${response.body.slice(0, 500)}`)
      if (status !== 201) {
        const body = response.json()
        assert.equal(body.invalid.length, size - good, `seed ${seed}, round ${round}`)
        for (const item of body.invalid) assert.ok(typeof item.index === 'number' && typeof item.context.code === 'string', JSON.stringify(item).slice(0, 300))
      }
    }
    const topics = ['datacenter1.test.event', 'datacenter1.test.event.mix0', 'datacenter1.test.event.mix1', 'datacenter1.test.event.mix2']
    let found: string[] = []
    await eventually(async () => {
      found = (await Promise.all(topics.map((topic) => tests(t, topic)))).flat().filter((name) => /^r\d+-\d+$/.test(name))
      return found.length >= expected.size
    }, 10_000)
    assert.equal(found.length, new Set(found).size, `seed ${seed}: an event is in the log twice`)
    assert.deepEqual(new Set(found), expected, `seed ${seed}`)
  })
})

describe('values from headers never make an event invalid', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform()
  })
  after(() => t.close())

  test('an X-Request-ID longer than meta.request_id takes is cut to its maxLength (every event was refused)', async () => {
    const id = 'r'.repeat(1000)
    const response = await post(t.app, [testEvent('long request id')], { headers: { 'x-request-id': id } })
    assert.equal(response.statusCode, 201, response.body)
    const [event] = await t.events('datacenter1.test.event')
    assert.equal((event!['meta'] as { request_id: string }).request_id, 'r'.repeat(128))
  })

  test('a user agent longer than its field takes is cut, not refused', async () => {
    const response = await post(t.app, [testEvent('long agent')], { headers: { 'user-agent': 'u'.repeat(10_000) } })
    assert.equal(response.statusCode, 201, response.body)
  })
})

describe('error events always fit their schema, or are counted', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform()
  })
  after(() => t.close())

  test('refused events with a bad meta.uri, an empty domain, a 2,000-character $schema, a 300-character stream or request id still get error events (they were dropped)', async () => {
    const response = await post(
      t.app,
      [
        { ...testEvent('bad uri', { meta: { uri: 'not a uri %%% \\ ^', domain: '' } }), test: 1 },
        { ...testEvent('long schema'), $schema: `/eventplane/test/event/${'9'.repeat(2000)}` },
        testEvent('long stream', { meta: { stream: `s${'t'.repeat(300)}` } }),
        { ...testEvent('no domain', { meta: { domain: '' } }), test: [] },
      ],
      { headers: { 'x-request-id': 'q'.repeat(400) } },
    )
    assert.equal(response.statusCode, 400, response.body)
    await t.platform.intake!.close()
    const errors = await t.events(errorTopic)
    assert.equal(errors.length, 4, JSON.stringify(errors))
    const source = createSchemaSource({ baseUris: [bundledSchemas + '/jsonschema'] })
    const errorSchema = await createValidatorCache({ source }).get('/eventplane/error/1.0.0')
    for (const event of errors) {
      // As stored (the log adds nothing): valid against the error schema.
      assert.ok(errorSchema.validate(structuredClone(event)), JSON.stringify(errorSchema.validate.errors))
      assert.ok(String(event['raw_event']).length <= 65536, 'raw_event is bounded')
    }
    const metrics = (await t.app.inject('/metrics')).body
    assert.equal(metric(metrics, 'eventplane_intake_error_events_total', { outcome: 'written' }), 4)
    assert.equal(metric(metrics, 'eventplane_intake_error_events_total', { outcome: 'unfit' }), 0)
  })

  test('raw_event leaves out the producer address and headers the intake filled in', async () => {
    const response = await post(t.app, [{ ...testEvent('private', { meta: { domain: 'private.example' } }), test: 7 }], { headers: { 'user-agent': 'secret-agent/1.0' } })
    assert.equal(response.statusCode, 400)
    // The answer to the producer shows the event as processed; the error stream must not.
    await t.platform.intake!.close()
    const raws = (await t.events(errorTopic)).map((e) => String(e['raw_event']))
    const raw = raws.find((r) => r.includes('private.example'))
    assert.ok(raw !== undefined, raws.join('\n'))
    assert.doesNotMatch(raw, /client_ip|secret-agent/)
  })

  test('the error stream takes events from the intake only (anyone could post forged error events)', async () => {
    const forged = {
      $schema: '/eventplane/error/1.0.0',
      meta: { stream: 'eventplane.error.validation' },
      emitter_id: 'eventplane-intake',
      message: 'forged',
    }
    const response = await post(t.app, [forged])
    assert.equal(response.statusCode, 400)
    assert.deepEqual(codes(response.json()), ['EVP_STREAM_INTERNAL'])
    await t.platform.intake!.close()
    assert.ok(!(await t.events(errorTopic)).some((e) => e['message'] === 'forged'), 'the forged event is not in the error stream')
  })
})

describe('error events are rate-limited, and what is not written is counted', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform({ intake: { error_events_per_s: 1, error_events_burst: 5 } })
  })
  after(() => t.close())

  test('50 refused events make 5 error events and count 45 suppressed (a flood of bad events was a flood of writes)', async () => {
    const response = await post(
      t.app,
      Array.from({ length: 50 }, (_, i) => ({ ...testEvent(`bad ${i}`), test: i })),
    )
    assert.equal(response.statusCode, 400)
    assert.equal(response.json().invalid.length, 50)
    await t.platform.intake!.close()
    assert.equal((await t.events(errorTopic)).length, 5)
    const metrics = (await t.app.inject('/metrics')).body
    assert.equal(metric(metrics, 'eventplane_intake_error_events_suppressed_total'), 45)
    assert.equal(metric(metrics, 'eventplane_intake_error_events_total', { outcome: 'suppressed' }), 45)
  })
})
