/**
 * Finding 2 of the "safe to expose" issue: retention followed the producer's clock, so an event
 * with an old meta.dt was deleted about a minute after its 201.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { SqliteEventLog } from '../../src/log/index.ts'
import type { TestPlatform } from '../intake/helpers.ts'
import { codes, post, securityPlatform, testEvent, tests } from './setup.ts'

describe('event time and retention', () => {
  let t: TestPlatform
  before(async () => {
    t = await securityPlatform({ event_log: { retention: { max_age_s: 604800 } }, intake: { event_time: { max_future_s: 3600, max_past_s: null } } })
  })
  after(() => t.close())

  test('an accepted event with an old meta.dt is kept max_age_s after its 201, then deleted (it was deleted at the next pass)', async (context) => {
    const log = t.platform.log as SqliteEventLog
    if (log.kind !== 'sqlite') return context.skip('the embedded log keeps append times; Kafka retention is the topics\' (docs/deploy.md)')
    const response = await post(t.app, [testEvent('from 1971', { meta: { dt: '1971-06-01T00:00:00Z' } })])
    assert.equal(response.statusCode, 201, response.body)
    const appended = Date.now()
    await log.enforceRetention(appended + 60_000)
    assert.deepEqual(await tests(t), ['from 1971'])
    const [record] = await t.records('datacenter1.test.event')
    assert.equal(record!.timestamp, Date.parse('1971-06-01T00:00:00Z'), 'the log timestamp stays meta.dt')
    await log.enforceRetention(appended + 604_800_000 + 5_000)
    assert.deepEqual(await tests(t), [])
  })

  test('meta.dt in 9999 is refused, so it cannot hold retention or reads by time (it stopped retention for good)', async () => {
    const response = await post(t.app, [testEvent('far future', { meta: { dt: '9999-01-01T00:00:00Z' } })])
    assert.equal(response.statusCode, 400)
    assert.deepEqual(codes(response.json()), ['EVP_EVENT_TIME_OUT_OF_RANGE'])
  })

  test('intake.event_time.max_past_s refuses events older than it', async () => {
    const strict = await securityPlatform({ intake: { event_time: { max_past_s: 86400 } } })
    try {
      const old = new Date(Date.now() - 2 * 86_400_000).toISOString()
      const response = await post(strict.app, [testEvent('two days ago', { meta: { dt: old } }), testEvent('now')])
      assert.equal(response.statusCode, 207, response.body)
      assert.deepEqual(codes(response.json()), ['EVP_EVENT_TIME_OUT_OF_RANGE'])
      assert.match(response.json().invalid[0].context.message, /max_past_s/)
    } finally {
      await strict.close()
    }
  })
})
