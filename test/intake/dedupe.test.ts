/**
 * Intake-side dedupe: an event sent again with the meta.id its producer gave it is answered
 * accepted and is in the log once; ids the intake made up, other topics, and a dedupe turned
 * off keep every copy; the window is bounded by count and by time.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { AcceptedIds } from '../../src/intake/dedupe.ts'
import { testPlatform, type TestPlatform } from './helpers.ts'

let platform: TestPlatform
let off: TestPlatform
before(async () => {
  platform = await testPlatform()
  off = await testPlatform({ intake: { dedupe: { max_ids: 0 } } })
})
after(async () => {
  await platform?.close()
  await off?.close()
})

const event = (test: string, id?: string, stream = 'test.event') => ({ $schema: '/eventplane/test/event/1.0.0', meta: id === undefined ? { stream } : { stream, id }, test })
const post = (p: TestPlatform, events: unknown[]) => p.app.inject({ method: 'POST', url: '/v1/events', payload: events })
const copies = async (p: TestPlatform, topic: string, test: string) => (await p.events(topic)).filter((e) => e['test'] === test).length

test('dedupe: an event sent again with its own meta.id is answered 201 and is in the log once', async () => {
  const id = randomUUID()
  assert.equal((await post(platform, [event('again', id)])).statusCode, 201)
  assert.equal((await post(platform, [event('again', id)])).statusCode, 201)
  const mixed = await post(platform, [event('again', id), event('again-other')])
  assert.equal(mixed.statusCode, 201, 'a batch with a copy and a new event: all accepted')
  assert.equal(await copies(platform, 'datacenter1.test.event', 'again'), 1)
  assert.equal(await copies(platform, 'datacenter1.test.event', 'again-other'), 1)
  const metrics = (await platform.app.inject({ method: 'GET', url: '/metrics' })).body
  assert.match(metrics, /eventplane_intake_events_total\{stream="test\.event",schema="\/eventplane\/test\/event\/1\.0\.0",outcome="duplicate"\} 2/)
})

test('dedupe: twice in one batch, once in the log', async () => {
  const id = randomUUID()
  const answer = await post(platform, [event('twice', id), event('twice', id)])
  assert.equal(answer.statusCode, 201)
  assert.equal(await copies(platform, 'datacenter1.test.event', 'twice'), 1)
})

test('dedupe: events without meta.id are never taken for copies, nor the same id in another stream', async () => {
  await post(platform, [event('no-id'), event('no-id')])
  assert.equal(await copies(platform, 'datacenter1.test.event', 'no-id'), 2)
  const id = randomUUID()
  await post(platform, [event('other-stream', id), event('other-stream', id, 'unprefixed.event')])
  assert.equal(await copies(platform, 'datacenter1.test.event', 'other-stream'), 1)
  assert.equal(await copies(platform, 'unprefixed.event', 'other-stream'), 1)
})

test('dedupe: an invalid event does not make its id known (the fixed event is appended)', async () => {
  const id = randomUUID()
  const bad = await post(platform, [{ ...event('fixed', id), test: 42 }])
  assert.equal(bad.statusCode, 400)
  assert.equal((await post(platform, [event('fixed', id)])).statusCode, 201)
  assert.equal(await copies(platform, 'datacenter1.test.event', 'fixed'), 1)
})

test('dedupe: intake.dedupe.max_ids 0 turns it off', async () => {
  const id = randomUUID()
  await post(off, [event('off', id)])
  await post(off, [event('off', id)])
  assert.equal(await copies(off, 'datacenter1.test.event', 'off'), 2)
})

test('dedupe: ids are forgotten past max_ids (oldest first) and past the window', () => {
  let now = 0
  const ids = new AcceptedIds(3, 1000, () => now)
  const k = (id: string, topic = 't') => AcceptedIds.key(topic, id)
  for (const id of ['a', 'b', 'c', 'd']) ids.add(k(id))
  assert.deepEqual(['a', 'b', 'c', 'd'].map((id) => ids.has(k(id))), [false, true, true, true])
  assert.equal(ids.size, 3)
  now = 900
  ids.add(k('b')) // seen again: kept from now on
  now = 1500
  assert.deepEqual(['b', 'c', 'd'].map((id) => ids.has(k(id))), [true, false, false])
  ids.add(k('e'))
  assert.equal(ids.size, 2, 'old ones are dropped on the next add')
  assert.equal(ids.has(k('b', 'u')), false, 'per topic')
})
