/**
 * Duplicates: a producer sends events again with the same meta.id (after an unconfirmed write);
 * every reader, live or replaying or resuming, gets each id once (src/streams/dedupe.ts).
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { afterEach, describe, test } from 'node:test'
import { RecentIds } from '../../src/streams/dedupe.ts'
import { listen as open, produce, sseServer, testEvent, until, type Received } from './helpers.ts'

describe('RecentIds', () => {
  test('an id seen among the window records before is a duplicate; further back it is not', () => {
    const recent = new RecentIds(3, 0)
    assert.equal(recent.check('a', 0), false, 'first copy')
    assert.equal(recent.check('b', 1), false, 'another id')
    assert.equal(recent.check('a', 2), true, '2 records later: a duplicate')
    assert.equal(recent.check('a', 3), true, '3 records later: still within the window')
    assert.equal(recent.check(undefined, 4), false, 'records without an id are never duplicates')
    assert.equal(recent.check('a', 5), false, '5 records after the first copy: outside the window, a new first copy')
    assert.equal(recent.check('a', 6), true, 'and its own duplicate')
  })

  test('before(to) gives a reader starting at `to` the ids of the window records before it', () => {
    const recent = new RecentIds(2, 0, 4)
    for (const [offset, id] of ['a', 'b', 'c', 'd'].entries()) recent.check(id, offset)
    assert.equal(recent.covers(1), true, 'it has seen everything from offset 0')
    const reader = recent.before(3)
    assert.equal(reader.check('a', 3), false, 'a is 3 records back from offset 3: outside a window of 2')
    assert.equal(reader.check('b', 4), false, 'b at offset 1 is 3 records back from offset 4')
    const again = recent.before(3)
    assert.equal(again.check('c', 3), true, 'c at offset 2 is within the window of offset 3')
    assert.equal(again.check('d', 4), false, 'd (offset 3) is not known to a reader that starts at 3')
  })

  test('memory stays bounded: ids further back than it keeps are forgotten', () => {
    const recent = new RecentIds(100, 0, 200)
    for (let offset = 0; offset < 100_000; offset++) recent.check(`id-${offset}`, offset)
    assert.ok(recent.size <= 201, `${recent.size} ids kept`)
    assert.equal(recent.covers(100_000 - 300), false, 'offsets before what it keeps are not covered')
  })
})

// The intake's own dedupe (intake.dedupe) would keep the copies out of the log: these tests are
// about readers, which must drop copies that reach the log anyway (another intake process, an
// unconfirmed write that Kafka committed).
const partitioned = { event_log: { topic_partitions: { 'datacenter1.test.event': 3 } }, intake: { dedupe: { max_ids: 0 } } }
const ids = (received: Received[]) => received.map((r) => (r.data['meta'] as { id: string }).id)

/** Clients of the current test, closed after it whatever happens (an open one would keep the file running). */
let clients: Array<{ close(): void }> = []
const listen = (url: string, lastEventId?: string) => {
  const client = open(url, lastEventId)
  clients.push(client)
  return client
}

describe('events sent again with the same meta.id are streamed once', () => {
  afterEach(() => {
    for (const client of clients) client.close()
    clients = []
  })

  test('live, replayed from the start, and resumed between the copies: each id once; the copies share a partition', async () => {
    const s = await sseServer(partitioned)
    try {
      const live = listen(`${s.url}/v2/stream/test.event`)
      await live.opened
      const events = Array.from({ length: 30 }, (_, i) => testEvent(`e${i}`, 'test.event', { meta: { id: randomUUID() } }))
      await produce(s.url, events)
      await until(() => live.received.length >= 30, 10_000, 'the first copies streamed')
      const resumeAt = live.received[9]!.id
      // The producer did not hear back and sends everything again (some twice more).
      await produce(s.url, events)
      await produce(s.url, events.slice(0, 5))
      await produce(s.url, [testEvent('last', 'test.event', { meta: { id: randomUUID() } })])
      await until(() => live.received.some((r) => r.data['test'] === 'last'), 10_000, 'the last event streamed')
      live.close()
      assert.deepEqual(new Set(ids(live.received)).size, 31, 'live: 31 distinct ids')
      assert.equal(live.received.length, 31, `live: ${live.received.length} events for 31 ids`)

      const replay = listen(`${s.url}/v2/stream/test.event?since=0`)
      await until(() => replay.received.some((r) => r.data['test'] === 'last'), 10_000, 'the replay reached the last event')
      replay.close()
      assert.equal(replay.received.length, 31, `replay: ${replay.received.length} events for 31 ids`)

      const resumed = listen(`${s.url}/v2/stream/test.event`, resumeAt)
      await until(() => resumed.received.some((r) => r.data['test'] === 'last'), 10_000, 'the resumed client reached the last event')
      resumed.close()
      const before = new Set(ids(live.received.slice(0, 10)))
      assert.equal(
        ids(resumed.received).filter((id) => before.has(id)).length,
        0,
        'a client resuming after the 10th event gets none of the first ten again (their copies are after where it resumes)',
      )
      assert.equal(resumed.received.length, 21, `resumed: ${resumed.received.length} events (20 of the first batch, and the last)`)
      const skipped = /eventplane_streams_duplicates_skipped_total(?:\{[^}]*\})? (\d+)/.exec(await (await fetch(`${s.url}/metrics`)).text())
      assert.ok(Number(skipped?.[1] ?? 0) > 0, `the copies were in the log and the readers skipped them: ${skipped?.[0] ?? 'no counter'}`)
    } finally {
      await s.close()
    }
  })

  test('with streams.dedupe_window 0 every copy is streamed, each in the partition of its first copy', async () => {
    const s = await sseServer({ ...partitioned, streams: { dedupe_window: 0 } })
    try {
      const events = Array.from({ length: 20 }, (_, i) => testEvent(`e${i}`, 'test.event', { meta: { id: randomUUID() } }))
      await produce(s.url, events)
      await produce(s.url, [...events].reverse())
      const replay = listen(`${s.url}/v2/stream/test.event?since=0`)
      await until(() => replay.received.length >= 40, 10_000, 'both copies of every event')
      replay.close()
      const partitions = new Map<string, Set<number>>()
      for (const r of replay.received) {
        const meta = r.data['meta'] as { id: string; partition: number }
        partitions.set(meta.id, (partitions.get(meta.id) ?? new Set()).add(meta.partition))
      }
      assert.equal(partitions.size, 20, 'twenty ids')
      for (const [id, found] of partitions) assert.equal(found.size, 1, `both copies of ${id} are in one partition, not ${[...found].join(', ')}`)
      assert.ok(new Set([...partitions.values()].map((p) => [...p][0])).size > 1, 'keyless events still spread over the partitions')
    } finally {
      await s.close()
    }
  })
})
