/**
 * The answer for events the event log did not take: which status, which reason phrase, and
 * that every such event is listed with its meta.id, so the producer can send it again as is.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { BatchResult, ItemResult } from '../../src/intake/intake.ts'
import { answerFor } from '../../src/intake/routes.ts'

const failed = (index: number, code: 'EVP_LOG_NOT_WRITTEN' | 'EVP_LOG_OUTCOME_UNKNOWN'): ItemResult => ({
  status: 'error',
  index,
  event: { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id: `id-${index}` } },
  context: { code, message: 'Kafka did not take it', canRetry: true },
})
const batch = (total: number, error: ItemResult[], accepted = total - error.length): BatchResult => ({ total, accepted, invalid: [], error })

test('none written: 503, Retry-After, "not written; send them again", each event listed with its meta.id', () => {
  const answer = answerFor(batch(3, [0, 1, 2].map((i) => failed(i, 'EVP_LOG_NOT_WRITTEN'))), 100)
  assert.equal(answer.status, 503)
  assert.equal(answer.retryAfterS, 5)
  assert.equal(answer.message, '3 out of 3 events were not written; send them again.')
  assert.deepEqual(
    answer.body!.error!.map((item) => ((item as ItemResult).event as { meta: { id: string } }).meta.id),
    ['id-0', 'id-1', 'id-2'],
  )
})

test('some of unknown outcome: the reason phrase says how many may be in the log and to keep the meta.id', () => {
  const answer = answerFor(batch(3, [failed(0, 'EVP_LOG_NOT_WRITTEN'), failed(1, 'EVP_LOG_OUTCOME_UNKNOWN'), failed(2, 'EVP_LOG_OUTCOME_UNKNOWN')]), 100)
  assert.equal(answer.status, 503)
  assert.equal(answer.message, '3 out of 3 events were not confirmed (2 may have been written); send them again with the same meta.id.')
})

test('events for healthy partitions accepted, others not: 207 listing only the others', () => {
  const answer = answerFor(batch(5, [failed(1, 'EVP_LOG_OUTCOME_UNKNOWN'), failed(3, 'EVP_LOG_NOT_WRITTEN')]), 100)
  assert.equal(answer.status, 207)
  assert.deepEqual(answer.body!.error!.map((item) => (item as ItemResult).index), [1, 3])
})

test('every event to send again is listed, past intake.max_refusals_listed (which bounds invalid events only)', () => {
  const errors = Array.from({ length: 50 }, (_, i) => failed(i, 'EVP_LOG_NOT_WRITTEN'))
  const answer = answerFor(batch(50, errors), 10)
  assert.equal(answer.body!.error!.length, 50, 'all 50 listed')
  assert.equal(answer.body!.omitted, undefined, 'nothing omitted')
})
