/**
 * The contract every EventLog implementation passes (sqlite now, kafka later), the way hono runs
 * all its routers through one suite. Only the EventLog interface is used here: no peeking at
 * files or brokers. Each test opens its own log and uses fresh topic names, so the suite also
 * runs against a shared, long-lived broker.
 *
 * Requirement on `open()`: topics created by the log get `contractPartitions` partitions.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import type { ErrorCode } from '../../src/core/errors.ts'
import {
  kafkaPartition,
  type AppendRecord,
  type EventLog,
  type LogRecord,
  type Position,
  type ReadFrom,
  type ReadOptions,
} from '../../src/log/index.ts'

/** Partitions that `open()` must give every new topic. */
export const contractPartitions = 3

export interface ContractSubject {
  log: EventLog
  /** Opens the same storage again (the suite closes `log` first). Enables the durability tests. */
  reopen?: () => Promise<EventLog>
  cleanup: () => Promise<void>
}

/** Longest any single wait in the suite may take; real waits are milliseconds. */
const waitMs = 5000

/** Settles with `promise`, or fails after `ms` naming what did not happen. */
export async function within<T>(promise: Promise<T>, what: string, ms = waitMs): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Every record from `from` to the end (follow: false). */
export async function readAll(log: EventLog, from: ReadFrom, options: ReadOptions = {}): Promise<LogRecord[]> {
  const records: LogRecord[] = []
  await within(
    (async () => {
      for await (const record of log.read(from, { ...options, follow: false })) records.push(record)
    })(),
    `reading ${from.topic}/${from.partition} to the end`,
  )
  return records
}

/** The first `n` records from `from`, following the log; fails if they do not come in time. */
export async function take(log: EventLog, from: ReadFrom, n: number, what = `${n} records`): Promise<LogRecord[]> {
  const records: LogRecord[] = []
  const abort = new AbortController()
  try {
    await within(
      (async () => {
        for await (const record of log.read(from, { signal: abort.signal })) {
          records.push(record)
          if (records.length >= n) break
        }
      })(),
      what,
    )
  } finally {
    abort.abort()
  }
  return records
}

/** Asserts that `work` rejects (or throws) an error with this code. */
export async function rejectsWith(work: () => unknown, code: ErrorCode, what: string): Promise<void> {
  await assert.rejects(
    async () => {
      await work()
    },
    (error: unknown) => {
      assert.equal((error as { code?: unknown }).code, code, `${what}: got ${String(error)}`)
      return true
    },
    `${what} should fail with ${code}`,
  )
}

async function drain(iterable: AsyncIterable<LogRecord>): Promise<void> {
  for await (const record of iterable) void record
}

const bytes = (value: string | Buffer) => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value)

let topicCounter = 0
const runId = randomBytes(3).toString('hex')
/** A topic name no other test (or earlier run against the same broker) uses. */
function freshTopic(label: string): string {
  return `contract.${label}.${runId}.${++topicCounter}`
}

export function eventLogContract(name: string, open: () => Promise<ContractSubject>): void {
  interface Context {
    /** The log in use (replaced by `reopen`). */
    log: EventLog
    reopen?: () => Promise<EventLog>
    topic: (label: string) => string
  }

  function check(title: string, body: (context: Context) => Promise<void>, options: { durability?: boolean } = {}) {
    test(title, async (t) => {
      const subject = await open()
      const context: Context = { log: subject.log, topic: freshTopic }
      if (subject.reopen !== undefined) {
        const reopen = subject.reopen
        context.reopen = async () => {
          await context.log.close()
          context.log = await reopen()
          return context.log
        }
      }
      try {
        if (options.durability === true && context.reopen === undefined) {
          t.skip(`${name} cannot be reopened`)
          return
        }
        await body(context)
      } finally {
        await context.log.close().catch(() => undefined)
        await subject.cleanup()
      }
    })
  }

  describe(`EventLog contract: ${name}`, () => {
    describe('append and read', () => {
      check('a round trip keeps values, keys and timestamps byte for byte', async ({ log, topic }) => {
        const t = topic('roundtrip')
        const big = randomBytes(300_000)
        const records: AppendRecord[] = [
          { topic: t, partition: 0, key: 'k1', value: 'plain text', timestamp: 1_700_000_000_000 },
          { topic: t, partition: 0, key: Buffer.from([0xff, 0x00]), value: Buffer.from([0, 1, 2, 0xfe, 0xff]), timestamp: 1 },
          { topic: t, partition: 0, key: null, value: '', timestamp: 0 },
          { topic: t, partition: 0, key: '', value: 'ünïcödé ✓ 😀', timestamp: 2 ** 40 },
          { topic: t, partition: 0, value: big },
        ]
        const before = Date.now()
        const positions = await log.append(records)
        const after = Date.now()
        assert.deepEqual(
          positions,
          records.map((_, offset) => ({ topic: t, partition: 0, offset })),
        )
        const read = await readAll(log, { topic: t, partition: 0, offset: 0 })
        assert.equal(read.length, records.length)
        read.forEach((record, i) => {
          const sent = records[i]!
          assert.equal(record.topic, t)
          assert.equal(record.partition, 0)
          assert.equal(record.offset, i)
          assert.ok(Buffer.isBuffer(record.value), 'values are Buffers')
          assert.ok(record.value.equals(bytes(sent.value)), `value ${i} differs`)
          if (sent.key === null || sent.key === undefined) assert.equal(record.key, null, `key ${i} should be null`)
          else assert.ok(record.key !== null && record.key.equals(bytes(sent.key)), `key ${i} differs`)
        })
        assert.deepEqual(
          read.slice(0, 4).map((r) => r.timestamp),
          [1_700_000_000_000, 1, 0, 2 ** 40],
        )
        assert.ok(read[4]!.timestamp >= before && read[4]!.timestamp <= after, 'a missing timestamp is the append time')
        assert.equal(read[3]!.key!.length, 0, 'an empty key stays an empty key, not null')
        const [next] = await log.append([{ topic: t, partition: 0, value: 'more' }])
        assert.equal(next!.offset, records.length)
      })

      check('offsets run from 0 without gaps in each partition; latest is the next offset', async ({ log, topic }) => {
        const t = topic('offsets')
        const counts = [0, 0, 0]
        for (let round = 0; round < 4; round++) {
          const plan = [0, 1, 2, 0]
          const positions = await log.append(plan.map((partition) => ({ topic: t, partition, value: `r${round}` })))
          positions.forEach((position, i) => {
            assert.equal(position.partition, plan[i])
            assert.equal(position.offset, counts[plan[i]!]!++)
          })
        }
        for (let p = 0; p < contractPartitions; p++) {
          assert.equal(await log.earliest(t, p), 0)
          assert.equal(await log.latest(t, p), counts[p])
          const records = await readAll(log, { topic: t, partition: p, offset: 0 })
          assert.deepEqual(
            records.map((r) => r.offset),
            [...Array(counts[p]).keys()],
          )
        }
      })

      check('positions come back in the order of the records', async ({ log, topic }) => {
        const [a, b] = [topic('order-a'), topic('order-b')]
        const records: AppendRecord[] = Array.from({ length: 24 }, (_, i) => ({
          topic: i % 3 === 0 ? b : a,
          ...(i % 4 === 0 ? { partition: i % contractPartitions } : {}),
          ...(i % 4 === 1 ? { key: `key-${i}` } : {}),
          value: `v${i}`,
        }))
        const positions = await log.append(records)
        assert.equal(positions.length, records.length)
        for (const [i, position] of positions.entries()) {
          assert.equal(position.topic, records[i]!.topic)
          if (records[i]!.partition !== undefined) assert.equal(position.partition, records[i]!.partition)
          const [record] = await take(log, position, 1, `the record at ${JSON.stringify(position)}`)
          assert.equal(record!.value.toString(), `v${i}`, `position ${i} points at another record`)
        }
      })

      check('a key always lands in partition toPositive(murmur2(key)) % partitions', async ({ log, topic }) => {
        const t = topic('keys')
        // Hashes from Kafka's UtilsTest.testMurmur2, so that a murmur2 shared by the log and this
        // suite cannot be wrong in agreement.
        const kafkaHashes: Array<[string, number]> = [
          ['21', -973932308],
          ['foobar', -790332482],
          ['a-little-bit-long-string', -985981536],
          ['a-little-bit-longer-string', -1486304829],
          ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
          ['abc', 479470107],
        ]
        const pinned = await log.append(kafkaHashes.map(([key]) => ({ topic: t, key, value: key })))
        kafkaHashes.forEach(([key, hash], i) => {
          assert.equal(pinned[i]!.partition, (hash & 0x7fffffff) % contractPartitions, `key ${key}`)
        })

        const keys = ['21', 'foobar', 'abc', 'a-little-bit-long-string', ...Array.from({ length: 20 }, (_, i) => `user-${i}`)]
        const expected = keys.map((key) => kafkaPartition(key, contractPartitions))
        assert.ok(new Set(expected).size > 1, 'the keys spread over several partitions')
        const together = await log.append(keys.map((key) => ({ topic: t, key, value: key })))
        const alone = await Promise.all(keys.map((key) => log.append([{ topic: t, key, value: key }])))
        const asBuffer = await log.append(keys.map((key) => ({ topic: t, key: Buffer.from(key), value: key })))
        keys.forEach((key, i) => {
          assert.equal(together[i]!.partition, expected[i], `key ${key} in one append`)
          assert.equal(alone[i]![0]!.partition, expected[i], `key ${key} alone`)
          assert.equal(asBuffer[i]!.partition, expected[i], `key ${key} as a Buffer`)
        })
      })

      check('keyless records of one append share a partition; later appends use others', async ({ log, topic }) => {
        const t = topic('sticky')
        const used = new Set<number>()
        for (let call = 0; call < 3 * contractPartitions; call++) {
          const records: AppendRecord[] = Array.from({ length: 5 }, (_, i) => ({ topic: t, value: `c${call}-${i}` }))
          // Keyed and pinned records in between do not break the keyless ones' stickiness.
          records.splice(2, 0, { topic: t, key: 'foobar', value: 'keyed' }, { topic: t, partition: 0, value: 'pinned' })
          const positions = await log.append(records)
          const keyless = positions.filter((_, i) => records[i]!.key === undefined && records[i]!.partition === undefined)
          assert.equal(keyless.length, 5)
          assert.equal(new Set(keyless.map((p) => p.partition)).size, 1, `call ${call} spread its keyless records`)
          used.add(keyless[0]!.partition)
        }
        assert.ok(used.size > 1, `every keyless append went to partition ${[...used].join()}`)
      })

      check('concurrent appends are all acknowledged, each record at its own offset', async ({ log, topic }) => {
        const t = topic('concurrent')
        const calls = Array.from({ length: 300 }, (_, call) =>
          Array.from({ length: 1 + (call % 3) }, (_, i) => ({
            topic: t,
            ...(call % 2 === 0 ? { key: `k${call % 17}` } : {}),
            value: `${call}.${i}`,
          })),
        )
        const results = await within(Promise.all(calls.map((records) => log.append(records))), '300 concurrent appends')
        const seen = new Map<string, string>()
        results.forEach((positions, call) =>
          positions.forEach((position, i) => {
            const where = `${position.partition}:${position.offset}`
            assert.ok(!seen.has(where), `${where} given twice`)
            seen.set(where, `${call}.${i}`)
          }),
        )
        let total = 0
        for (let p = 0; p < contractPartitions; p++) {
          const records = await readAll(log, { topic: t, partition: p, offset: 0 })
          assert.deepEqual(
            records.map((r) => r.offset),
            [...records.keys()],
            `partition ${p} has gaps`,
          )
          for (const record of records) assert.equal(record.value.toString(), seen.get(`${p}:${record.offset}`))
          total += records.length
        }
        assert.equal(total, seen.size)
      })

      check('appending nothing resolves to no positions', async ({ log }) => {
        assert.deepEqual(await log.append([]), [])
      })
    })

    describe('read', () => {
      check('starts at an offset or at the first record at or after a timestamp', async ({ log, topic }) => {
        const t = topic('from')
        // Two appends, so that the start falls inside a batch and on a batch boundary.
        for (const half of [0, 5]) {
          await log.append(
            Array.from({ length: 5 }, (_, i) => ({ topic: t, partition: 1, value: `v${half + i}`, timestamp: 1000 + (half + i) * 10 })),
          )
        }
        const offsets = async (from: ReadFrom) => (await readAll(log, from)).map((r) => r.offset)
        assert.deepEqual(await offsets({ topic: t, partition: 1, offset: 3 }), [3, 4, 5, 6, 7, 8, 9])
        assert.deepEqual(await offsets({ topic: t, partition: 1, offset: 5 }), [5, 6, 7, 8, 9])
        assert.deepEqual(await offsets({ topic: t, partition: 1, offset: 10 }), [])
        assert.deepEqual(await offsets({ topic: t, partition: 1, timestamp: 0 }), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        assert.deepEqual(await offsets({ topic: t, partition: 1, timestamp: 1045 }), [5, 6, 7, 8, 9])
        assert.deepEqual(await offsets({ topic: t, partition: 1, timestamp: 1030 }), [3, 4, 5, 6, 7, 8, 9])
        assert.deepEqual(await offsets({ topic: t, partition: 1, timestamp: 1091 }), [])
        assert.deepEqual(await offsets({ topic: t, partition: 0, offset: 0 }), [], 'other partitions are empty')
      })

      check('hands out small batchSize pages in order', async ({ log, topic }) => {
        const t = topic('pages')
        for (let i = 0; i < 5; i++) {
          await log.append(Array.from({ length: 40 }, (_, j) => ({ topic: t, partition: 0, value: `${i * 40 + j}` })))
        }
        const records = await readAll(log, { topic: t, partition: 0, offset: 7 }, { batchSize: 3 })
        assert.deepEqual(
          records.map((r) => Number(r.value.toString())),
          Array.from({ length: 193 }, (_, i) => i + 7),
        )
      })

      check('a reader that starts past the end waits there for the next record', async ({ log, topic }) => {
        const t = topic('past-end')
        await log.append([1, 2, 3].map((i) => ({ topic: t, partition: 2, value: `old${i}` })))
        const reading = take(log, { topic: t, partition: 2, offset: 1000 }, 1, 'the next record after the end')
        // Where a reader stands is not observable through the interface: give it time to look up
        // the end (on Kafka, a ListOffsets round trip, slow on a loaded machine) before appending.
        await new Promise((resolve) => setTimeout(resolve, 500))
        await log.append([{ topic: t, partition: 2, value: 'new' }])
        const [record] = await reading
        assert.equal(record!.offset, 3)
        assert.equal(record!.value.toString(), 'new')
      })

      check('a following reader is woken by new appends', async ({ log, topic }) => {
        const t = topic('follow')
        await log.append([{ topic: t, partition: 0, value: 'first' }])
        const got: string[] = []
        const abort = new AbortController()
        let caughtUp!: () => void
        const waiting = new Promise<void>((resolve) => (caughtUp = resolve))
        const reader = (async () => {
          for await (const record of log.read({ topic: t, partition: 0, offset: 0 }, { signal: abort.signal })) {
            got.push(record.value.toString())
            if (got.length === 1) caughtUp()
            if (got.length === 4) break
          }
        })()
        await within(waiting, 'the reader to read the first record')
        await new Promise((resolve) => setTimeout(resolve, 30))
        await log.append([{ topic: t, partition: 0, value: 'second' }])
        await new Promise((resolve) => setTimeout(resolve, 30))
        await log.append([{ topic: t, partition: 0, value: 'third' }, { topic: t, partition: 0, value: 'fourth' }])
        await within(reader, 'the reader to see three new records')
        abort.abort()
        assert.deepEqual(got, ['first', 'second', 'third', 'fourth'])
      })

      check('follow: false ends at the end', async ({ log, topic }) => {
        const t = topic('nofollow')
        await log.append([1, 2, 3, 4].map((i) => ({ topic: t, partition: 1, value: `${i}` })))
        const records = await readAll(log, { topic: t, partition: 1, offset: 0 })
        assert.equal(records.length, 4)
        assert.deepEqual(await readAll(log, { topic: t, partition: 2, offset: 0 }), [], 'an empty partition ends at once')
      })

      check('aborting ends a waiting reader without an error', async ({ log, topic }) => {
        const t = topic('abort')
        await log.append([{ topic: t, partition: 0, value: 'only' }])
        const abort = new AbortController()
        const got: string[] = []
        let caughtUp!: () => void
        const waiting = new Promise<void>((resolve) => (caughtUp = resolve))
        const reader = (async () => {
          for await (const record of log.read({ topic: t, partition: 0, offset: 0 }, { signal: abort.signal })) {
            got.push(record.value.toString())
            caughtUp()
          }
        })()
        // Aborted once it has read the one record and waits for more (a fixed sleep was too
        // short for Kafka on a loaded machine).
        await within(waiting, 'the reader to read the record')
        abort.abort()
        await within(reader, 'the reader to end after abort')
        assert.deepEqual(got, ['only'])

        const aborted = AbortSignal.abort()
        const none: LogRecord[] = []
        await within(
          (async () => {
            for await (const record of log.read({ topic: t, partition: 0, offset: 0 }, { signal: aborted })) none.push(record)
          })(),
          'a reader with an aborted signal to end',
        )
        assert.deepEqual(none, [])
      })

      check('breaking out of a loop over read() releases it', async ({ log, topic }) => {
        const t = topic('break')
        await log.append([1, 2, 3].map((i) => ({ topic: t, partition: 0, value: `${i}` })))
        for (let round = 0; round < 3; round++) {
          const [record] = await take(log, { topic: t, partition: 0, offset: round }, 1)
          assert.equal(record!.offset, round)
        }
        await log.append([{ topic: t, partition: 0, value: '4' }])
        assert.equal(await log.latest(t, 0), 4)
      })
    })

    describe('offsets', () => {
      check('offsetsForTimes finds the first record at or after a time, also when time goes back', async ({ log, topic }) => {
        const stamps = [1000, 3000, 2000, 5000, 4000]
        const single = topic('times-single')
        const oneBatch = topic('times-batch')
        for (const timestamp of stamps) await log.append([{ topic: single, partition: 0, value: `${timestamp}`, timestamp }])
        await log.append(stamps.map((timestamp) => ({ topic: oneBatch, partition: 0, value: `${timestamp}`, timestamp })))
        await log.append([{ topic: single, partition: 1, value: 'early', timestamp: 100 }])
        const cases: Array<[number, number]> = [
          [0, 0],
          [1000, 0],
          [1001, 1],
          [2500, 1],
          [3000, 1],
          [3001, 3],
          [4500, 3],
          [5000, 3],
          [5001, 5],
        ]
        for (const t of [single, oneBatch]) {
          for (const [time, offset] of cases) {
            const result = await log.offsetsForTimes(t, time)
            assert.equal(result.length, contractPartitions)
            const byPartition = [...result].sort((x, y) => x.partition - y.partition)
            assert.deepEqual(
              byPartition.map((r) => r.topic),
              Array(contractPartitions).fill(t),
            )
            assert.equal(byPartition[0]!.offset, offset, `${t} at ${time}`)
            const first = (await readAll(log, { topic: t, partition: 0, timestamp: time }))[0]
            assert.equal(first?.offset ?? 5, offset, `read from ${time} in ${t}`)
          }
        }
        const later = await log.offsetsForTimes(single, 500)
        const byPartition = [...later].sort((x, y) => x.partition - y.partition)
        assert.deepEqual(
          byPartition.map((r) => r.offset),
          [0, 1, 0],
          'after the last record: the end offset; an empty partition: 0',
        )
      })

      check('earliest and latest of a new topic are 0, and new topics get their partitions', async ({ log, topic }) => {
        const t = topic('fresh')
        assert.equal(await log.partitions(t), contractPartitions)
        for (let p = 0; p < contractPartitions; p++) {
          assert.equal(await log.earliest(t, p), 0)
          assert.equal(await log.latest(t, p), 0)
        }
        assert.ok((await log.topics()).includes(t), 'partitions() created the topic')
      })

      check('topics are separate, and topics() lists every one', async ({ log, topic }) => {
        const [a, b] = [topic('sep-a'), topic('sep-b')]
        await log.append([{ topic: a, partition: 0, value: 'a0' }, { topic: a, partition: 0, value: 'a1' }])
        await log.append([{ topic: b, partition: 0, value: 'b0' }])
        assert.equal(await log.latest(a, 0), 2)
        assert.equal(await log.latest(b, 0), 1)
        assert.deepEqual(
          (await readAll(log, { topic: b, partition: 0, offset: 0 })).map((r) => r.value.toString()),
          ['b0'],
        )
        const topics = await log.topics()
        assert.ok(topics.includes(a) && topics.includes(b), `topics() gave ${topics.join()}`)
        assert.equal(await log.partitions(a), contractPartitions)
      })
    })

    describe('errors', () => {
      check('invalid topics, partitions, offsets and records fail with EVP_LOG_INVALID_ARGUMENT', async ({ log, topic }) => {
        const code = 'EVP_LOG_INVALID_ARGUMENT'
        const badTopics = ['', '.', '..', 'has space', 'slash/x', 'x'.repeat(250), 'ümlaut', 'colon:x']
        for (const bad of badTopics) {
          const what = `topic ${JSON.stringify(bad)}`
          await rejectsWith(() => log.append([{ topic: bad, value: 'x' }]), code, `append to ${what}`)
          await rejectsWith(() => log.partitions(bad), code, `partitions of ${what}`)
          await rejectsWith(() => log.earliest(bad, 0), code, `earliest of ${what}`)
          await rejectsWith(() => log.latest(bad, 0), code, `latest of ${what}`)
          await rejectsWith(() => log.offsetsForTimes(bad, 0), code, `offsetsForTimes of ${what}`)
          await rejectsWith(() => drain(log.read({ topic: bad, partition: 0, offset: 0 }, { follow: false })), code, `read of ${what}`)
        }
        const t = topic('invalid')
        const longest = `${t}.${'x'.repeat(249)}`.slice(0, 249)
        assert.equal(await log.partitions(longest), contractPartitions, '249 characters are fine')
        for (const partition of [-1, contractPartitions, 1.5, Number.NaN]) {
          const what = `partition ${partition}`
          await rejectsWith(() => log.append([{ topic: t, partition, value: 'x' }]), code, `append to ${what}`)
          await rejectsWith(() => log.earliest(t, partition), code, `earliest of ${what}`)
          await rejectsWith(() => log.latest(t, partition), code, `latest of ${what}`)
          await rejectsWith(() => drain(log.read({ topic: t, partition, offset: 0 }, { follow: false })), code, `read of ${what}`)
        }
        for (const offset of [-1, 1.5, Number.NaN]) {
          await rejectsWith(() => drain(log.read({ topic: t, partition: 0, offset }, { follow: false })), code, `read at offset ${offset}`)
        }
        for (const timestamp of [-1, Number.NaN]) {
          await rejectsWith(() => log.offsetsForTimes(t, timestamp), code, `offsetsForTimes at ${timestamp}`)
          await rejectsWith(() => drain(log.read({ topic: t, partition: 0, timestamp }, { follow: false })), code, `read at time ${timestamp}`)
        }
        const badRecords = [
          { topic: t, value: 42 },
          { topic: t, value: null },
          { topic: t, value: 'x', key: 7 },
          { topic: t, value: 'x', timestamp: -5 },
          { topic: t, value: 'x', timestamp: 1.5 },
        ] as unknown as AppendRecord[]
        for (const bad of badRecords) {
          await rejectsWith(
            () => log.append([{ topic: t, partition: 0, value: 'good' }, bad]),
            code,
            `append of ${JSON.stringify(bad)}`,
          )
        }
        assert.equal(await log.latest(t, 0), 0, 'an append with an invalid record appends nothing')
      })

      check('after close every call fails with EVP_LOG_CLOSED, and appends made before close are kept', async (context) => {
        const { log, topic } = context
        const t = topic('close')
        const pending = log.append([{ topic: t, partition: 0, value: 'just in time' }])
        await log.close()
        const [position] = await within(pending, 'an append made before close to be acknowledged')
        assert.deepEqual(position, { topic: t, partition: 0, offset: 0 })
        const code = 'EVP_LOG_CLOSED'
        await rejectsWith(() => log.append([{ topic: t, value: 'late' }]), code, 'append')
        await rejectsWith(() => drain(log.read({ topic: t, partition: 0, offset: 0 })), code, 'read')
        await rejectsWith(() => log.partitions(t), code, 'partitions')
        await rejectsWith(() => log.topics(), code, 'topics')
        await rejectsWith(() => log.earliest(t, 0), code, 'earliest')
        await rejectsWith(() => log.latest(t, 0), code, 'latest')
        await rejectsWith(() => log.offsetsForTimes(t, 0), code, 'offsetsForTimes')
        await log.close()
        if (context.reopen !== undefined) {
          const again = await context.reopen()
          assert.deepEqual(
            (await readAll(again, { topic: t, partition: 0, offset: 0 })).map((r) => r.value.toString()),
            ['just in time'],
          )
        }
      })

      check('close ends a waiting reader without an error', async ({ log, topic }) => {
        const t = topic('close-reader')
        await log.partitions(t)
        const reader = drain(log.read({ topic: t, partition: 0, offset: 0 }))
        await new Promise((resolve) => setTimeout(resolve, 50))
        await log.close()
        await within(reader, 'the reader to end after close')
      })
    })

    describe('durability', () => {
      check(
        'records, offsets and partitioning survive closing and opening again',
        async (context) => {
          const t = context.topic('durable')
          const sent: Position[] = []
          for (let i = 0; i < 5; i++) {
            sent.push(
              ...(await context.log.append([
                { topic: t, key: `key-${i}`, value: `keyed ${i}`, timestamp: 1000 + i },
                { topic: t, partition: 2, value: Buffer.from([i, 0, 255]), timestamp: 2000 + i },
              ])),
            )
          }
          const before = await Promise.all([0, 1, 2].map((p) => readAll(context.log, { topic: t, partition: p, offset: 0 })))
          const log = await context.reopen!()
          const after = await Promise.all([0, 1, 2].map((p) => readAll(log, { topic: t, partition: p, offset: 0 })))
          assert.deepEqual(after, before)
          assert.equal(after.flat().length, sent.length)
          assert.ok((await log.topics()).includes(t))
          assert.equal(await log.partitions(t), contractPartitions)
          for (let p = 0; p < contractPartitions; p++) assert.equal(await log.latest(t, p), before[p]!.length)
          const [next] = await log.append([{ topic: t, key: 'key-0', value: 'after reopen' }])
          assert.equal(next!.partition, kafkaPartition('key-0', contractPartitions))
          assert.equal(next!.offset, before[next!.partition]!.length, 'offsets continue where they were')
        },
        { durability: true },
      )
    })
  })
}
