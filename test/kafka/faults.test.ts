/**
 * Faults on a real broker: the broker stops under load and comes back (same address, same data).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { spawnServer, tempDir } from '../helpers.ts'
import { listen, testEvent, until, type Received } from '../streams/helpers.ts'
import { kafkaServerConfig, kafkaSkipped, privateKafka } from './broker.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('the broker stops under load and comes back', { skip: kafkaSkipped, timeout: 180_000 }, () => {
  const answers = new Map<string, { status: number; body: string; at: number }>()
  const inLog = new Map<string, number>()
  let received: Received[] = []
  let stoppedAt = 0
  let pendingWhileDown = 0
  let restartedAt = 0
  const readiness: Array<{ when: string; status: number; ms: number; body: string }> = []
  let cleanup: () => Promise<void> = async () => {}

  // One scenario, observed by the tests below: producers post one event per request the whole
  // time; the broker stops (SIGTERM) once 50 events are in, and starts again (same address, same
  // data) once the intake has answered 503 five times; the producers go on until 50 more are in.
  before(async () => {
    const dir = tempDir()
    const dataDir = join(dir, 'kafka-data')
    let kafka = await privateKafka({ partitions: 1, logDir: dataDir })
    const config = kafkaServerConfig(dir, { brokers: [kafka.bootstrap], request_timeout_ms: 2000 }, 'error')
    const server = await spawnServer(['--config', config])
    const client = listen(`${server.url}/v2/stream/test.event`)
    let running = true
    let producers: Array<Promise<void>> = []
    cleanup = async () => {
      running = false
      await Promise.allSettled(producers)
      client.close()
      server.child.kill('SIGTERM')
      await kafka.stop()
    }
    await client.opened
    let serial = 0
    const producer = async () => {
      while (running) {
        const text = `ev-${serial++}`
        const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(testEvent(text)) })
        answers.set(text, { status: response.status, body: await response.text(), at: Date.now() })
        if (response.status !== 201) await sleep(50)
      }
    }
    producers = Array.from({ length: 4 }, producer)
    await until(() => acked().length >= 50, 15_000, '50 events accepted before the fault')
    await kafka.stop()
    stoppedAt = Date.now()
    await until(() => [...answers.values()].filter((a) => a.status === 503).length >= 5, 30_000, '503 answers while the broker is down')
    const ready = async (when: string) => {
      const started = Date.now()
      const response = await fetch(`${server.url}/readyz`)
      readiness.push({ when, status: response.status, ms: Date.now() - started, body: await response.text() })
    }
    await ready('down')
    // Requests waiting for Kafka show in /metrics before they are answered.
    for (let i = 0; i < 20 && pendingWhileDown === 0; i++) {
      const metrics = await (await fetch(`${server.url}/metrics`)).text()
      pendingWhileDown = Number(/^eventplane_log_pending_records (\d+)/m.exec(metrics)?.[1] ?? 0)
      if (pendingWhileDown === 0) await sleep(100)
    }
    kafka = await privateKafka({ partitions: 1, logDir: dataDir, ports: kafka.ports })
    restartedAt = Date.now()
    const ackedBefore = acked().length
    await until(() => acked().length >= ackedBefore + 50, 60_000, 'the intake to accept events again after the broker returned')
    running = false
    await Promise.all(producers)
    // Readers retry a failed partition with backoff (at most 5 s): readiness comes back with them.
    const back = Date.now()
    for (;;) {
      await ready('back')
      if (readiness.at(-1)!.status === 200 || Date.now() - back > 15_000) break
      readiness.pop()
      await sleep(200)
    }
    readiness.at(-1)!.ms = Date.now() - back

    const log = await openKafkaLog({ brokers: [kafka.bootstrap] })
    try {
      for await (const record of log.read({ topic: 'datacenter1.test.event', partition: 0, offset: 0 }, { follow: false })) {
        const text = (JSON.parse(record.value.toString()) as { test: string }).test
        inLog.set(text, (inLog.get(text) ?? 0) + 1)
      }
    } finally {
      await log.close()
    }
    await until(() => acked().every((text) => client.received.some((r) => r.data['test'] === text)), 30_000, 'the SSE client to get every acknowledged event')
    received = client.received
  })
  after(() => cleanup())

  const acked = () => [...answers].filter(([, a]) => a.status === 201).map(([text]) => text)

  test('every event the intake could not append got a 503 with a retryable code, none another status', () => {
    const failures = [...answers.values()].filter((a) => a.status !== 201)
    assert.ok(failures.length >= 5)
    for (const failure of failures) {
      assert.equal(failure.status, 503, `not 201 means 503: ${failure.body}`)
      const body = JSON.parse(failure.body) as { invalid: unknown[]; error: Array<{ context: { code: string; canRetry: boolean } }> }
      assert.deepEqual(body.invalid, [])
      assert.ok(['EVP_LOG_NOT_WRITTEN', 'EVP_LOG_OUTCOME_UNKNOWN', 'EVP_LOG_CLOSED'].includes(body.error[0]!.context.code), body.error[0]!.context.code)
      assert.equal(body.error[0]!.context.canRetry, true)
    }
  })

  test('an event answered EVP_LOG_NOT_WRITTEN is not in Kafka; each answer names the meta.id the intake gave it', () => {
    let notWritten = 0
    for (const [text, answer] of answers) {
      if (answer.status !== 503) continue
      const item = (JSON.parse(answer.body) as { error: Array<{ event: { meta?: { id?: unknown } }; context: { code: string } }> }).error[0]!
      assert.match(String(item.event.meta?.id), /^[0-9a-f-]{36}$/, `the answer for ${text} carries its meta.id`)
      if (item.context.code !== 'EVP_LOG_NOT_WRITTEN') continue
      notWritten++
      assert.equal(inLog.get(text), undefined, `${text} was answered "not written" and must not be in the log`)
    }
    assert.ok(notWritten > 0, 'some events were answered EVP_LOG_NOT_WRITTEN while the broker was away')
  })

  test('never a 201 for an unappended event: every acknowledged event is in Kafka, once', (t) => {
    const lost = acked().filter((text) => inLog.get(text) === undefined).length
    const twice = [...inLog.values()].filter((n) => n > 1).length
    t.diagnostic(`${answers.size} requests tried (one event each): ${acked().length} answered 201, ${answers.size - acked().length} 503; the broker stopped once and came back; acknowledged lost ${lost}, stored twice ${twice}; ${inLog.size} events in Kafka, ${received.length} streamed`)
    for (const text of acked()) assert.equal(inLog.get(text), 1, `${text} got a 201 and must be in the log once`)
  })

  test('records waiting for the broker show in eventplane_log_pending_records', () => {
    assert.ok(pendingWhileDown > 0, `the gauge showed ${pendingWhileDown} while requests waited`)
  })

  test('the intake recovered by itself: 201s again after the broker returned, with no restart of the server', () => {
    const afterRestart = [...answers.values()].filter((a) => a.status === 201 && a.at > restartedAt)
    assert.ok(afterRestart.length >= 50, `${afterRestart.length} events accepted after the restart`)
    assert.ok(restartedAt > stoppedAt)
  })

  test('/readyz says not ready while the broker is away (within its 2 s timeout), and ready when it is back', () => {
    const down = readiness.find((r) => r.when === 'down')!
    const back = readiness.find((r) => r.when === 'back')!
    assert.equal(down.status, 503, down.body)
    assert.ok(down.ms < 4000, `answered in ${down.ms} ms`)
    assert.match(down.body, /"event_log_writable":false/, 'the intake says it cannot write')
    assert.equal(back.status, 200, `ready again within 15 s of the intake taking events again: ${back.body}`)
  })

  test('the SSE client waited through the outage and got every acknowledged event, in order, none twice', () => {
    const offsets = received.map((r) => (r.data['meta'] as { offset: number }).offset)
    assert.equal(new Set(offsets).size, offsets.length, 'no event twice')
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'in log order')
    for (const text of acked()) assert.ok(received.some((r) => r.data['test'] === text), `${text} was streamed`)
  })
})
