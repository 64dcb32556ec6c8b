/**
 * Records from any producer: batches written by Kafka's own Java console producer in every
 * compression codec read back exactly, and a batch that cannot be decoded stops only its own
 * partition (finding 15: one such batch used to fail every fetch of its broker, forever).
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { consoleProduce } from '../../scripts/kafka/broker.ts'
import { EventplaneError } from '../../src/core/errors.ts'
import { kafkaPartition, type EventLog, type LogRecord, type ReadFrom } from '../../src/log/index.ts'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { readAll, take, within } from '../log/contract.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

const unique = (label: string) => `${label}-${process.pid}-${Date.now()}`

const codecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const
const perBatch = 20

/**
 * The records of one console-producer batch: keyed (one null key), ASCII and UTF-8, about 2.5 KB
 * each so that a batch is over snappy-java's 32 KiB block and its framing has several blocks.
 */
function batchOf(codec: string): Array<{ key: string | null; value: string }> {
  return Array.from({ length: perBatch }, (_, i) => ({
    key: i === 7 ? null : `${codec}-key-${i}`,
    value: JSON.stringify({ codec, i, title: `Café ☕ ${i}`, text: `${codec} record ${i} `.repeat(100) }),
  }))
}

const line = (record: { key: string | null; value: string }) => `${record.key ?? '<null>'}\t${record.value}`

/** What the test compares: offset, key and value as strings. */
const shape = (records: LogRecord[]) => records.map((r) => ({ offset: r.offset, key: r.key?.toString('utf8') ?? null, value: r.value.toString('utf8') }))

/** The error `read` ends with, after the records it gave (within 5 s). */
async function readUntilError(log: EventLog, from: ReadFrom): Promise<{ records: LogRecord[]; error: unknown }> {
  const records: LogRecord[] = []
  const abort = new AbortController()
  try {
    return await within(
      (async () => {
        try {
          for await (const record of log.read(from, { signal: abort.signal })) records.push(record)
        } catch (error) {
          return { records, error }
        }
        return { records, error: undefined }
      })(),
      `an error reading ${from.topic}/${from.partition}`,
    )
  } finally {
    abort.abort()
  }
}

function assertUndecodable(error: unknown, details: { topic: string; partition: number; offset: number; lastOffset: number }): void {
  assert.ok(error instanceof EventplaneError, `an EventplaneError, not ${String(error)}`)
  assert.equal(error.code, 'EVP_LOG_RECORD_UNDECODABLE')
  assert.deepEqual(error.details, details)
}

describe('Kafka records from any producer', { skip: kafkaSkipped }, () => {
  test("batches of Kafka's Java console producer in every codec read back exactly, each codec one batch", async () => {
    const brokers = [await kafkaBootstrap()]
    const ns = `${unique('codecs')}.`
    const log = await openKafkaLog({ brokers, topicNamespace: ns, defaultPartitions: 1 })
    try {
      assert.equal(await log.partitions('java'), 1)
      // One batch per codec, one after the other in the same partition.
      const expected: Array<{ offset: number; key: string | null; value: string }> = []
      for (const codec of codecs) {
        const batch = batchOf(codec)
        await consoleProduce({ bootstrap: brokers[0]!, topic: `${ns}java`, compression: codec, lines: batch.map(line) })
        expected.push(...batch.map((record, i) => ({ offset: expected.length + i, ...record })))
      }
      assert.equal(await log.latest('java', 0), codecs.length * perBatch)

      assert.deepEqual(shape(await readAll(log, { topic: 'java', partition: 0, offset: 0 })), expected)
      // From inside a compressed batch: the records before the offset asked for are left out.
      const snappyAt = codecs.indexOf('snappy') * perBatch
      assert.deepEqual(shape(await readAll(log, { topic: 'java', partition: 0, offset: snappyAt + 5 })), expected.slice(snappyAt + 5))

      // The batches are what the test says: a log that cannot read codec X stops exactly at the
      // one batch of X, all its records at once, after reading the batches before it.
      for (const codec of codecs) {
        if (codec === 'none') continue
        const blind = await openKafkaLog({ brokers, topicNamespace: ns, unsupportedCodecs: [codec] })
        try {
          const at = codecs.indexOf(codec) * perBatch
          const { records, error } = await readUntilError(blind, { topic: 'java', partition: 0, offset: 0 })
          assert.deepEqual(shape(records), expected.slice(0, at), `the batches before the ${codec} one`)
          assertUndecodable(error, { topic: 'java', partition: 0, offset: at, lastOffset: at + perBatch - 1 })
        } finally {
          await blind.close()
        }
      }
    } finally {
      await log.close()
    }
  })

  test('an undecodable batch stops only the readers of its partition; the rest of the same fetch loop goes on', async () => {
    const brokers = [await kafkaBootstrap()]
    const ns = `${unique('undecodable')}.`
    const registry = new Registry()
    const logLines: Array<Record<string, unknown>> = []
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>)
          done()
        },
      }),
    )
    // This log reads no snappy: the console producer's snappy batch is, for it, undecodable.
    const log = await openKafkaLog({ brokers, topicNamespace: ns, defaultPartitions: 2, unsupportedCodecs: ['snappy'], registry, logger })
    try {
      assert.equal(await log.partitions('mixed'), 2)
      // Partition 0: offsets 0-2 from the log, 3-7 one snappy batch from Java, 8-9 from the log.
      await log.append([0, 1, 2].map((i) => ({ topic: 'mixed', partition: 0, key: `before-${i}`, value: `before ${i}` })))
      const keys = Array.from({ length: 200 }, (_, i) => `java-${i}`).filter((key) => kafkaPartition(key, 2) === 0).slice(0, 5)
      await consoleProduce({ bootstrap: brokers[0]!, topic: `${ns}mixed`, compression: 'snappy', lines: keys.map((key) => `${key}\tsnappy ${key}`) })
      await log.append([8, 9].map((i) => ({ topic: 'mixed', partition: 0, key: `after-${i}`, value: `after ${i}` })))
      assert.equal(await log.latest('mixed', 0), 10, 'the snappy batch landed in partition 0')
      // Partition 1 has a record already: the first fetch of both partitions answers both.
      await log.append([{ topic: 'mixed', partition: 1, value: 'healthy 0' }])

      const healthy = log.read({ topic: 'mixed', partition: 1, offset: 0 })[Symbol.asyncIterator]()
      const stopped = readUntilError(log, { topic: 'mixed', partition: 0, offset: 0 })
      const past = take(log, { topic: 'mixed', partition: 0, offset: 8 }, 2, 'the records after the undecodable batch')
      assert.equal((await within(healthy.next(), 'the first healthy record')).value?.value.toString(), 'healthy 0')

      const { records, error } = await stopped
      assert.deepEqual(
        records.map((r) => [r.offset, r.value.toString()]),
        [[0, 'before 0'], [1, 'before 1'], [2, 'before 2']],
        'the records before the batch come first',
      )
      assertUndecodable(error, { topic: 'mixed', partition: 0, offset: 3, lastOffset: 7 })
      assert.deepEqual((await past).map((r) => [r.offset, r.value.toString()]), [[8, 'after 8'], [9, 'after 9']], 'a reader past the batch reads on')

      // The other partition of the same fetch loop keeps delivering, without a stall.
      const appended = Date.now()
      await log.append([{ topic: 'mixed', partition: 1, value: 'healthy 1' }])
      assert.equal((await within(healthy.next(), 'a record appended after the failure', 2000)).value?.value.toString(), 'healthy 1')
      assert.ok(Date.now() - appended < 2000)
      await healthy.return?.()

      // A new reader fails fast again, from the batch's first offset or from inside it.
      for (const offset of [3, 5]) {
        const started = Date.now()
        const again = await readUntilError(log, { topic: 'mixed', partition: 0, offset })
        assert.deepEqual(again.records, [])
        assertUndecodable(again.error, { topic: 'mixed', partition: 0, offset: 3, lastOffset: 7 })
        assert.ok(Date.now() - started < 2000, `failed in ${Date.now() - started} ms`)
      }

      // Counted and logged once for the batch, however many readers met it.
      const counted = await registry.getSingleMetric('eventplane_log_undecodable_batches_total')?.get()
      assert.deepEqual(counted?.values.map((v) => [v.labels, v.value]), [[{ topic: 'mixed' }, 1]])
      const logged = logLines.filter((l) => l['offset'] === 3)
      assert.equal(logged.length, 1, JSON.stringify(logLines))
      assert.equal(logged[0]!['level'], 50)
      assert.deepEqual([logged[0]!['topic'], logged[0]!['partition'], logged[0]!['codec']], ['mixed', 0, 'snappy'])
    } finally {
      await log.close()
    }
    assert.equal(registry.getSingleMetric('eventplane_log_undecodable_batches_total'), undefined, 'close removes the metric')
  })
})
