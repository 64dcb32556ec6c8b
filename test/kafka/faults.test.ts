/**
 * Faults on a real broker: the broker stops under load and comes back (same address, same data).
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { stringify } from 'yaml'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { bundledSchemas, spawnServer, tempDir } from '../helpers.ts'
import { listen, testEvent, until } from '../streams/helpers.ts'
import { kafkaSkipped, privateKafka } from './broker.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('the broker stops under load: 503 and retryable for what was not appended, never a 201; intake and SSE recover by themselves, nothing lost', { skip: kafkaSkipped, timeout: 180_000 }, async () => {
  const dir = tempDir()
  const dataDir = join(dir, 'kafka-data')
  let kafka = await privateKafka({ partitions: 1, logDir: dataDir })
  const streams = join(dir, 'streams.yaml')
  writeFileSync(streams, stringify({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'test.event': { schema_title: 'test/event' } } }))
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: streams, watch: false },
      data_dir: join(dir, 'data'),
      event_log: { backend: 'kafka', kafka: { brokers: [kafka.bootstrap], request_timeout_ms: 2000 } },
      log: { level: 'error' },
    }),
  )
  const server = await spawnServer(['--config', config])
  const client = listen(`${server.url}/v2/stream/test.event`)
  let running = true
  let producers: Array<Promise<void>> = []
  try {
    await client.opened

    // Producers: one event per request, each with its own text; every answer is kept.
    const answers = new Map<string, { status: number; body: string }>()
    let serial = 0
    const producer = async () => {
      while (running) {
        const text = `ev-${serial++}`
        const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(testEvent(text)) })
        answers.set(text, { status: response.status, body: await response.text() })
        if (response.status !== 201) await sleep(50)
      }
    }
    producers = Array.from({ length: 4 }, producer)
    const acked = () => [...answers].filter(([, a]) => a.status === 201).map(([text]) => text)

    await until(() => acked().length >= 50, 15_000, '50 events accepted before the fault')
    await kafka.stop()
    await until(() => [...answers.values()].filter((a) => a.status === 503).length >= 5, 30_000, '503 answers while the broker is down')
    const duringOutage = [...answers.values()].filter((a) => a.status !== 201)
    kafka = await privateKafka({ partitions: 1, logDir: dataDir, ports: kafka.ports })
    const ackedBefore = acked().length
    await until(() => acked().length >= ackedBefore + 50, 60_000, 'the intake to accept events again after the broker returned')
    running = false
    await Promise.all(producers)

    // Every answer that was not 201 was a retryable 503 naming the log.
    const failures = [...answers.values()].filter((a) => a.status !== 201)
    assert.ok(duringOutage.length > 0)
    for (const failure of failures) {
      assert.equal(failure.status, 503, `not 201 means 503: ${failure.body}`)
      const body = JSON.parse(failure.body) as { invalid: unknown[]; error: Array<{ context: { code: string; canRetry: boolean } }> }
      assert.deepEqual(body.invalid, [])
      assert.ok(['EVP_LOG_UNAVAILABLE', 'EVP_LOG_CLOSED'].includes(body.error[0]!.context.code), body.error[0]!.context.code)
      assert.equal(body.error[0]!.context.canRetry, true)
    }

    // The log holds every acknowledged event exactly once.
    const log = await openKafkaLog({ brokers: [kafka.bootstrap] })
    const inLog = new Map<string, number>()
    try {
      for await (const record of log.read({ topic: 'datacenter1.test.event', partition: 0, offset: 0 }, { follow: false })) {
        const text = (JSON.parse(record.value.toString()) as { test: string }).test
        inLog.set(text, (inLog.get(text) ?? 0) + 1)
      }
    } finally {
      await log.close()
    }
    const ackedTexts = acked()
    for (const text of ackedTexts) assert.equal(inLog.get(text), 1, `${text} got a 201 and must be in the log once`)

    // The SSE client waited (or reconnected with Last-Event-ID): every acknowledged event, none twice.
    await until(() => ackedTexts.every((text) => client.received.some((r) => r.data['test'] === text)), 30_000, 'the SSE client to get every acknowledged event')
    const offsets = client.received.map((r) => (r.data['meta'] as { offset: number }).offset)
    assert.equal(new Set(offsets).size, offsets.length, 'no event twice')
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'in log order')
    console.log(`faults: ${ackedTexts.length} accepted, ${failures.length} answered 503, ${inLog.size} in the log, ${client.received.length} streamed`)
  } finally {
    running = false
    await Promise.allSettled(producers)
    client.close()
    server.child.kill('SIGTERM')
    await kafka.stop()
  }
})
