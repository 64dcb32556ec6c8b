/**
 * Scale-out on a real broker: two intake processes (one per datacenter prefix) and two streams
 * processes, each `eventplane serve --role …` as its own process, share one Kafka cluster.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { stringify } from 'yaml'
import { bundledSchemas, spawnServer, tempDir } from '../helpers.ts'
import { listen, produce, testEvent, until, type Received } from '../streams/helpers.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

const texts = (received: Received[]) => received.map((r) => r.data['test'])

describe('scale-out: 2 intake and 2 streams processes on one Kafka cluster', { skip: kafkaSkipped }, () => {
  const children: ChildProcess[] = []
  let intakes: string[] = []
  let streams: string[] = []

  before(async () => {
    const dir = tempDir()
    const streamConfig = join(dir, 'streams.yaml')
    // Multi-datacenter as at Wikimedia: each intake writes its own prefix, streams read both.
    writeFileSync(streamConfig, stringify({ defaults: { topic_prefixes: ['eqiad.', 'codfw.'] }, streams: { 'test.event': { schema_title: 'eventplane/test/event' } } }))
    const brokers = [await kafkaBootstrap()]
    const namespace = `scale-${process.pid}-${Date.now()}.`
    const config = (name: string, prefix: string) => {
      const file = join(dir, `${name}.yaml`)
      writeFileSync(
        file,
        stringify({
          schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
          stream_config: { source: streamConfig, watch: false },
          data_dir: join(dir, name),
          intake: { topic_prefix: prefix },
          event_log: { backend: 'kafka', partitions: 3, kafka: { brokers, topic_namespace: namespace } },
          log: { level: 'warn' },
        }),
      )
      return file
    }
    const started = await Promise.all([
      spawnServer(['--config', config('intake-eqiad', 'eqiad.'), '--role', 'intake']),
      spawnServer(['--config', config('intake-codfw', 'codfw.'), '--role', 'intake']),
      spawnServer(['--config', config('streams-1', 'eqiad.'), '--role', 'streams']),
      spawnServer(['--config', config('streams-2', 'eqiad.'), '--role', 'streams']),
    ])
    children.push(...started.map((s) => s.child))
    intakes = started.slice(0, 2).map((s) => s.url)
    streams = started.slice(2).map((s) => s.url)
  })

  after(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve()
            child.once('exit', () => resolve())
            child.kill('SIGTERM')
          }),
      ),
    )
  })

  test('the roles split: intakes do not stream, streams processes do not take events', async () => {
    assert.equal((await fetch(`${intakes[0]}/v2/stream/test.event`)).status, 404)
    const refused = await fetch(`${streams[0]}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(testEvent('nope')) })
    assert.equal(refused.status, 404)
  })

  test('events posted to either intake reach the SSE clients of both streams processes, from both datacenter topics', async () => {
    const clients = streams.flatMap((url) => [listen(`${url}/v2/stream/test.event`), listen(`${url}/v2/stream/test.event`)])
    await Promise.all(clients.map((c) => c.opened))
    const sent: string[] = []
    for (let i = 0; i < 20; i++) {
      const text = `e${i}`
      sent.push(text)
      await produce(intakes[i % 2]!, [testEvent(text)])
    }
    await until(() => clients.every((c) => c.received.length >= 20), 15_000, 'every client to get all 20 events')
    for (const client of clients) {
      assert.deepEqual([...texts(client.received)].sort(), [...sent].sort(), 'every event once, none twice')
      const topics = new Set(client.received.map((r) => (r.data['meta'] as { topic: string }).topic))
      assert.deepEqual([...topics].sort(), ['codfw.test.event', 'eqiad.test.event'])
      client.close()
    }
  })

  test('a Last-Event-ID from one streams process resumes on the other with no gap and no duplicate', async () => {
    const first = listen(`${streams[0]}/v2/stream/test.event`)
    await first.opened
    const batchA = Array.from({ length: 12 }, (_, i) => `a${i}`)
    for (let i = 0; i < batchA.length; i++) await produce(intakes[i % 2]!, [testEvent(batchA[i]!)])
    await until(() => first.received.length === batchA.length, 15_000, 'the first 12 events on streams process 1')
    first.close()
    const lastId = first.received.at(-1)!.id
    const parsed = JSON.parse(lastId) as Array<{ topic: string; partition: number }>
    assert.ok(parsed.some((p) => p.topic === 'eqiad.test.event') && parsed.some((p) => p.topic === 'codfw.test.event'), `the id names both topics: ${lastId}`)

    const batchB = Array.from({ length: 12 }, (_, i) => `b${i}`)
    for (let i = 0; i < batchB.length; i++) await produce(intakes[i % 2]!, [testEvent(batchB[i]!)])
    const resumed = listen(`${streams[1]}/v2/stream/test.event`, lastId)
    await until(() => resumed.received.length >= batchB.length, 15_000, 'the 12 later events on streams process 2')
    await new Promise((resolve) => setTimeout(resolve, 300))
    resumed.close()
    assert.deepEqual([...texts(resumed.received)].sort(), [...batchB].sort(), 'exactly the events after the last one seen')
  })
})
