import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RecentActivity } from '../../src/intake/recent.ts'

test('recent activity: counts per bucket and stream, quiet intervals as empty buckets, a bounded window', () => {
  const recent = new RecentActivity(10_000, 3, 2)
  recent.add('a', 'accepted', 2, 100_000)
  recent.add('a', 'invalid', 1, 105_000)
  recent.add('b', 'accepted', 1, 109_999)
  recent.add('c', 'accepted', 1, 109_999) // a third stream in a bucket of at most 2: not counted
  recent.add('a', 'accepted', 1, 125_000) // after a quiet bucket
  const snapshot = recent.snapshot(125_000)
  assert.equal(snapshot.interval_s, 10)
  assert.deepEqual(
    snapshot.buckets.map((b) => [b.start, b.streams]),
    [
      [100_000, { a: { accepted: 2, invalid: 1, error: 0 }, b: { accepted: 1, invalid: 0, error: 0 } }],
      [110_000, {}],
      [120_000, { a: { accepted: 1, invalid: 0, error: 0 } }],
    ],
  )
  // Always the whole window: later, older buckets fall out; after a long quiet, all are empty.
  assert.deepEqual(recent.snapshot(131_000).buckets.map((b) => b.start), [110_000, 120_000, 130_000])
  assert.deepEqual(recent.snapshot(131_000).buckets[1]!.streams, { a: { accepted: 1, invalid: 0, error: 0 } })
  assert.deepEqual(recent.snapshot(1_000_000).buckets, [980_000, 990_000, 1_000_000].map((start) => ({ start, streams: {} })))
  // A clock set back counts in the last bucket rather than start over.
  recent.add('a', 'error', 1, 900_000)
  assert.deepEqual(recent.snapshot(900_000).buckets.at(-1)!.streams, { a: { accepted: 0, invalid: 0, error: 1 } })
})
