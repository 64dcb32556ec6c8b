/**
 * `eventplane pipe` with kafka:// on the real broker, as destination and as source: a file
 * through a 3-partition topic and back (every event once, each partition in order), resuming
 * from a state file, and mirrored into the embedded log with keys and times kept.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { openKafkaLog, openSqliteLog } from '../../src/log/index.ts'
import { cli, tempDir, writeBundledConfig } from '../helpers.ts'
import { readLines, readState, testEvents, writeLines } from '../pipe/helpers.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

describe('pipe to and from Kafka', { skip: kafkaSkipped }, () => {
  test('file → kafka:// → file, resumed in three runs: every event exactly once', async () => {
    const dir = tempDir()
    const config = writeBundledConfig(dir, { event_log: { partitions: 3 } })
    const run = (...args: string[]) => cli(['pipe', ...args, '--config', config], { cwd: dir })
    const broker = await kafkaBootstrap()
    const topic = `pipe-${process.pid}-${Date.now()}`
    const lines = testEvents(900)
    const input = writeLines(join(dir, 'in.ndjson'), lines)

    const produced = await run(input, `kafka://${broker}/${topic}`, '--batch', '200')
    assert.equal(produced.code, 0, produced.stderr)
    assert.match(produced.stderr, /pipe: 900 read, 900 written/)
    const log = await openKafkaLog({ brokers: [broker], createTopics: false })
    try {
      assert.equal(await log.partitions(topic), 3, 'the pipe made the topic with event_log.partitions of the config')
      let total = 0
      for (let p = 0; p < 3; p++) total += await log.latest(topic, p)
      assert.equal(total, 900)
    } finally {
      await log.close()
    }

    const out = join(dir, 'out.ndjson')
    const state = join(dir, 'kafka.state')
    for (const limit of ['250', '250']) {
      const r = await run(`kafka://${broker}/${topic}?from=earliest`, out, '--limit', limit, '--state', state, '--no-follow')
      assert.equal(r.code, 0, r.stderr)
    }
    const offsets = readState(state).source['offsets'] as Record<string, number>
    assert.equal(Object.values(offsets).reduce((a, b) => a + b, 0), 500)
    const rest = await run(`kafka://${broker}/${topic}?from=earliest`, out, '--state', state, '--no-follow')
    assert.equal(rest.code, 0, rest.stderr)
    assert.match(rest.stderr, /pipe: 400 read, 400 written/)
    const back = readLines(out)
    assert.equal(back.length, 900)
    assert.deepEqual([...back].sort(), [...lines].sort(), 'each event once, as it was sent')
    // Within a partition (one meta.id lands in one partition) the order is the file's.
    const order = new Map(lines.map((l, i) => [l, i]))
    const byPartition = new Map<number, number[]>()
    const { kafkaPartition } = await import('../../src/log/index.ts')
    for (const l of back) {
      const id = (JSON.parse(l) as { meta: { id: string } }).meta.id
      const p = kafkaPartition(Buffer.from(id), 3)
      byPartition.set(p, [...(byPartition.get(p) ?? []), order.get(l)!])
    }
    for (const seen of byPartition.values()) assert.deepEqual(seen, [...seen].sort((a, b) => a - b))

    // Kafka → embedded keeps each record's time.
    const mirrored = await run(`kafka://${broker}/${topic}`, 'embedded://mirror', '--no-follow')
    assert.equal(mirrored.code, 0, mirrored.stderr)
    const embedded = await openSqliteLog({ path: join(dir, 'data', 'events.sqlite') })
    try {
      const times = new Set<number>()
      let count = 0
      for (let partition = 0; partition < 3; partition++) {
        for await (const record of embedded.read({ topic: 'mirror', partition, offset: 0 }, { follow: false })) {
          const dt = Date.parse((JSON.parse(record.value.toString('utf8')) as { meta: { dt: string } }).meta.dt)
          assert.equal(record.timestamp, dt)
          times.add(record.timestamp)
          count++
        }
      }
      assert.ok(times.size > 1)
      assert.equal(count, 900)
    } finally {
      await embedded.close()
    }
  })
})
