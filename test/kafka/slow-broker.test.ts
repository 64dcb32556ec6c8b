/**
 * Faults on a real broker: a broker that answers slowly, then not at all for a while, then
 * normally again, under load and with no restart of the server.
 *
 * The broker is made slow by a TCP proxy on loopback between the server and the broker (below),
 * which holds what the broker answers for as long as the test says; the broker advertises the
 * proxy's port (startKafka's `advertisedPort`), since clients connect to the address that
 * metadata advertises, not to their bootstrap address. A proxy rather than SIGSTOP of the JVM:
 * the delay can be set per answer (a slow broker is slow, not stopped), the broker goes on
 * writing what it was sent while its answers are held (the case where an append's outcome is
 * unknown, which the EVP_LOG_* codes must tell apart from "not written"), and nothing of the
 * broker's own timing (its controller's heartbeats, the fsync of its log) is disturbed, so the
 * test measures the server, not a broker recovering from a freeze.
 *
 * An append the stall holds was sent (or may yet be: its producer's metadata and id requests are
 * held too), so it is answered EVP_LOG_OUTCOME_UNKNOWN; EVP_LOG_NOT_WRITTEN comes from a topic
 * looked up while the broker stalls. Hence a second stream, first written during the stall: its
 * events answered "not written" must not be in Kafka once the broker is back.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { stringify } from 'yaml'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { spawnServer, tempDir } from '../helpers.ts'
import { testEvent, until } from '../streams/helpers.ts'
import { kafkaServerConfig, kafkaSkipped, privateKafka } from './broker.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** How the proxy passes on what the broker answers. */
type Pace = { kind: 'normal' } | { kind: 'slow'; minMs: number; maxMs: number } | { kind: 'stalled' }

/**
 * A TCP proxy on 127.0.0.1 in front of the broker at `target`: what clients send goes through at
 * once; what the broker answers is held, chunk by chunk and in order, as long as the pace says.
 * A new pace applies to what is held too, so a stall ends with everything held delivered at
 * once, as a broker that stalled (a long GC pause, a slow disk) answers when it comes back.
 */
async function slowProxy() {
  let pace: Pace = { kind: 'normal' }
  const delay = () => (pace.kind === 'normal' ? 0 : pace.kind === 'stalled' ? Infinity : pace.minMs + Math.random() * (pace.maxMs - pace.minMs))
  const links = new Set<{ repace(): void; close(): void }>()
  const proxy = {
    target: 0,
    port: 0,
    pace(next: Pace) {
      pace = next
      for (const link of links) link.repace()
    },
    close() {
      server.close()
      for (const link of links) link.close()
    },
  }
  const server = createServer((client: Socket) => {
    const broker = connect(proxy.target, '127.0.0.1')
    const held: Array<{ chunk: Buffer; arrived: number; due: number }> = []
    let timer: NodeJS.Timeout | undefined
    let brokerEnded = false
    const pump = () => {
      clearTimeout(timer)
      timer = undefined
      const now = Date.now()
      while (held.length > 0 && held[0]!.due <= now) client.write(held.shift()!.chunk)
      if (held.length > 0 && held[0]!.due !== Infinity) timer = setTimeout(pump, held[0]!.due - now)
      else if (held.length === 0 && brokerEnded) client.end()
    }
    const link = {
      repace() {
        for (const h of held) h.due = h.arrived + delay()
        pump()
      },
      close() {
        clearTimeout(timer)
        client.destroy()
        broker.destroy()
        links.delete(link)
      },
    }
    links.add(link)
    client.pipe(broker)
    broker.on('data', (chunk: Buffer) => {
      const now = Date.now()
      held.push({ chunk, arrived: now, due: now + delay() })
      if (held.length === 1) pump()
    })
    broker.on('end', () => {
      brokerEnded = true
      pump()
    })
    client.on('close', link.close)
    client.on('error', link.close)
    broker.on('error', link.close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.port = (server.address() as { port: number }).port
  return proxy
}

const phases = ['normal', 'slow', 'stalled', 'recovered'] as const
type Phase = (typeof phases)[number]

interface Answer {
  stream: string
  ids: string[]
  started: number
  ended: number
  /** 0: no answer (the message is in body). */
  status: number
  body: string
}

interface ErrorItem {
  event: { meta?: { id?: unknown } }
  context: { code: string; canRetry: boolean }
}

const requestTimeoutMs = 2_000
const appendDeadlineMs = 4_000
const slow = { minMs: 200, maxMs: 500 }
const stallMs = 10_000
/** The codes of a 503 for events the log did not take, all retryable (docs/errors.md). */
const retryableCodes = ['EVP_LOG_NOT_WRITTEN', 'EVP_LOG_OUTCOME_UNKNOWN', 'EVP_LOG_UNAVAILABLE']

/** Nearest-rank percentile of `values`, in ms. */
function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

describe('the broker answers slowly, stalls, and comes back', { skip: kafkaSkipped, timeout: 150_000 }, () => {
  const answers: Answer[] = []
  const started: Partial<Record<Phase, number>> = {}
  const healthz: Array<{ status: number; ms: number }> = []
  const inLog = new Map<string, number>()
  let cleanup: () => Promise<void> = async () => {}

  // One scenario, observed by the tests below: 4 producers post 1 to 3 events per request (each
  // with its own meta.id) the whole time, while the broker is at full speed, then answers
  // 200-500 ms late, then holds every answer for 10 s (past the append deadline), then is at
  // full speed again; /healthz is probed through the stall. A fifth producer starts with the
  // stall, on a stream whose topic does not exist yet (looking it up is what the stall holds).
  // Then both topics are read back.
  before(async () => {
    const proxy = await slowProxy()
    const kafka = await privateKafka({ partitions: 1, advertisedPort: proxy.port })
    proxy.target = kafka.ports.port
    const dir = tempDir()
    const brokers = [`127.0.0.1:${proxy.port}`]
    const config = kafkaServerConfig(dir, { brokers, request_timeout_ms: requestTimeoutMs, append_deadline_ms: appendDeadlineMs }, 'error')
    // A second stream, whose topic is first written while the broker stalls.
    writeFileSync(
      join(dir, 'streams.yaml'),
      stringify({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'test.event': { schema_title: 'eventplane/test/event' }, 'test.late': { schema_title: 'eventplane/test/event' } } }),
    )
    const server = await spawnServer(['--config', config])
    let running = true
    let producers: Array<Promise<void>> = []
    cleanup = async () => {
      running = false
      proxy.pace({ kind: 'normal' })
      await Promise.allSettled(producers)
      server.child.kill('SIGTERM')
      proxy.close()
      await kafka.stop()
    }
    const post = async (ids: string[], stream: string): Promise<Answer> => {
      const body = JSON.stringify(ids.map((id) => testEvent(id, stream, { meta: { id } })))
      const answer: Answer = { stream, ids, started: Date.now(), ended: 0, status: 0, body: '' }
      try {
        const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(15_000) })
        answer.body = await response.text()
        answer.status = response.status
      } catch (error) {
        answer.body = `no answer: ${(error as Error).message}`
      }
      answer.ended = Date.now()
      return answer
    }
    const producer = async (name: string, stream = 'test.event') => {
      for (let n = 0; running; n++) {
        const answer = await post(Array.from({ length: 1 + (n % 3) }, (_, i) => `${name}-${n}-${i}`), stream)
        answers.push(answer)
        if (answer.status !== 201) await sleep(50)
      }
    }
    // The first append makes the topic (seconds, on a busy machine): done before the phases.
    for (let n = 0; (await post([`warm-up-${n}`], 'test.event')).status !== 201; n++) {
      if (n === 30) throw new Error('the intake did not accept a first event (and make its topic) within 30 attempts')
      await sleep(500)
    }
    const enter = (phase: Phase, pace: Pace) => {
      proxy.pace(pace)
      started[phase] = Date.now()
    }
    enter('normal', { kind: 'normal' })
    producers = ['w0', 'w1', 'w2', 'w3'].map((name) => producer(name))
    await until(() => ackedIds().length >= 40, 20_000, '40 events accepted with the broker at full speed')

    enter('slow', { kind: 'slow', ...slow })
    await sleep(6_000)
    await until(() => within('slow').length >= 20, 20_000, '20 requests answered while the broker was slow')

    enter('stalled', { kind: 'stalled' })
    producers.push(producer('late', 'test.late'))
    const stallEnds = Date.now() + stallMs
    while (Date.now() < stallEnds) {
      const t0 = Date.now()
      const response = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined)
      healthz.push({ status: response?.status ?? 0, ms: Date.now() - t0 })
      await response?.arrayBuffer()
      await sleep(200)
    }
    await until(() => within('stalled').length >= 8, 20_000, '8 requests answered while the broker stalled')

    enter('recovered', { kind: 'normal' })
    await until(
      () => Date.now() - started.recovered! > appendDeadlineMs + 2_000 && ackedIds(since('recovered')).length >= 40,
      30_000,
      `40 events accepted after the stall, and ${appendDeadlineMs + 2_000} ms passed`,
    )
    running = false
    await Promise.all(producers)

    const log = await openKafkaLog({ brokers })
    try {
      for (const topic of ['datacenter1.test.event', 'datacenter1.test.late']) {
        for await (const record of log.read({ topic, partition: 0, offset: 0 }, { follow: false })) {
          const id = (JSON.parse(record.value.toString()) as { meta: { id: string } }).meta.id
          inLog.set(id, (inLog.get(id) ?? 0) + 1)
        }
      }
    } finally {
      await log.close()
    }
  })
  after(() => cleanup())

  /** Requests that started and were answered within the phase. */
  const within = (phase: Phase) => {
    const from = started[phase]
    const next = started[phases[phases.indexOf(phase) + 1] as Phase]
    return from === undefined ? [] : answers.filter((a) => a.started >= from && (next === undefined || a.ended <= next))
  }
  /** Requests that started at or after the phase began. */
  const since = (phase: Phase) => answers.filter((a) => a.started >= started[phase]!)
  const ackedIds = (from: Answer[] = answers) => from.filter((a) => a.status === 201).flatMap((a) => a.ids)
  const items = (answer: Answer) => (JSON.parse(answer.body) as { error: ErrorItem[] }).error
  const latency = (from: Answer[]) => {
    const ms = from.map((a) => a.ended - a.started)
    return `p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms, max ${Math.max(...ms)} ms (${ms.length} requests)`
  }

  test('with the broker at full speed, and slow within the timeouts (200-500 ms per answer), every request got 201', (t) => {
    for (const phase of ['normal', 'slow'] as const) {
      const answered = within(phase)
      assert.ok(answered.length >= 10, `${answered.length} requests answered in phase ${phase}`)
      for (const answer of answered) assert.equal(answer.status, 201, `${phase}: ${answer.ids.join(',')} got ${answer.status}: ${answer.body}`)
      t.diagnostic(`${phase}: ${latency(answered)}`)
    }
    // Every answer of the slow phase waited for at least one produce answer held by the proxy.
    const fastest = Math.min(...within('slow').map((a) => a.ended - a.started))
    assert.ok(fastest >= slow.minMs - 5, `the fastest request of the slow phase took ${fastest} ms: the proxy is not in the path`)
  })

  test('stalled past the append deadline: 503 with a retryable code for every event, by the deadline, never another status', (t) => {
    const byCode = new Map<string, number>()
    for (const answer of answers) {
      if (answer.status === 201) continue
      assert.equal(answer.status, 503, `${answer.ids.join(',')}: not 201 means 503, got ${answer.status}: ${answer.body}`)
      const body = JSON.parse(answer.body) as { invalid: unknown[]; error: ErrorItem[] }
      assert.deepEqual(body.invalid, [])
      assert.deepEqual(body.error.map((item) => item.event.meta?.id), answer.ids, 'each event of the request is answered, with its meta.id')
      for (const item of body.error) {
        assert.ok(retryableCodes.includes(item.context.code), `${answer.ids.join(',')}: ${item.context.code}`)
        assert.equal(item.context.canRetry, true)
        byCode.set(item.context.code, (byCode.get(item.context.code) ?? 0) + 1)
      }
    }
    const stalled = within('stalled')
    assert.ok(stalled.length >= 8, `${stalled.length} requests answered during the stall`)
    for (const answer of stalled) assert.equal(answer.status, 503, `during the stall ${answer.ids.join(',')} got ${answer.status}`)
    const slowest = Math.max(...stalled.map((a) => a.ended - a.started))
    assert.ok(slowest < appendDeadlineMs + 3_000, `a request waited ${slowest} ms during the stall: answered by the append deadline (${appendDeadlineMs} ms)`)
    t.diagnostic(`stalled: ${latency(stalled)}; events answered 503 by code: ${JSON.stringify(Object.fromEntries(byCode))}`)
  })

  test('/healthz stayed fast while the broker stalled: the process was not stuck', (t) => {
    assert.ok(healthz.length >= 10, `${healthz.length} probes`)
    for (const probe of healthz) assert.equal(probe.status, 200, `a /healthz probe got ${probe.status} after ${probe.ms} ms`)
    const ms = healthz.map((p) => p.ms)
    assert.ok(Math.max(...ms) < 1_000, `the slowest /healthz took ${Math.max(...ms)} ms`)
    t.diagnostic(`/healthz during the stall: p50 ${percentile(ms, 0.5)} ms, max ${Math.max(...ms)} ms (${ms.length} probes)`)
  })

  test('the intake recovered by itself: 201s again once the broker was back, with no restart of the server', (t) => {
    const recovered = since('recovered')
    assert.ok(ackedIds(recovered).length >= 40, `${ackedIds(recovered).length} events accepted after the stall`)
    // What was held is delivered when the stall ends: one append deadline later nothing of the
    // stall is left, and every request is accepted.
    const settled = recovered.filter((a) => a.started >= started.recovered! + appendDeadlineMs)
    assert.ok(settled.length >= 10, `${settled.length} requests started one append deadline after the stall`)
    for (const answer of settled) assert.equal(answer.status, 201, `${answer.ids.join(',')} got ${answer.status}: ${answer.body}`)
    const first = recovered.find((a) => a.status === 201)!
    t.diagnostic(`recovered: first 201 ${first.ended - started.recovered!} ms after the stall ended; ${latency(recovered)}`)
    t.diagnostic(`recovered, one append deadline on: ${latency(settled)}`)
  })

  test('never a 201 for an unappended event: every acknowledged event is in Kafka, once; no event twice', (t) => {
    const acked = ackedIds()
    const lost = acked.filter((id) => inLog.get(id) === undefined)
    const twice = [...inLog].filter(([, n]) => n > 1).map(([id]) => id)
    const refused = answers.filter((a) => a.status !== 201)
    t.diagnostic(
      `${answers.length} requests tried: ${answers.length - refused.length} answered 201, ${refused.length} 503; ` +
        `${acked.length} events acknowledged, ${lost.length} acknowledged lost, ${twice.length} duplicates; ${inLog.size} events in Kafka`,
    )
    assert.deepEqual(lost, [], 'acknowledged events missing from Kafka')
    assert.deepEqual(twice, [], 'events in Kafka more than once')
  })

  test('an event answered EVP_LOG_NOT_WRITTEN is not in Kafka (an EVP_LOG_OUTCOME_UNKNOWN one may be)', (t) => {
    const outcome = { notWritten: 0, notWrittenInLog: [] as string[], unknown: 0, unknownInLog: 0 }
    for (const answer of answers.filter((a) => a.status === 503)) {
      for (const item of items(answer)) {
        const id = String(item.event.meta?.id)
        if (item.context.code === 'EVP_LOG_NOT_WRITTEN') {
          outcome.notWritten++
          if (inLog.has(id)) outcome.notWrittenInLog.push(id)
        } else if (item.context.code === 'EVP_LOG_OUTCOME_UNKNOWN') {
          outcome.unknown++
          if (inLog.has(id)) outcome.unknownInLog++
        }
      }
    }
    t.diagnostic(
      `EVP_LOG_NOT_WRITTEN: ${outcome.notWritten} events, ${outcome.notWrittenInLog.length} of them in Kafka; ` +
        `EVP_LOG_OUTCOME_UNKNOWN: ${outcome.unknown} events, ${outcome.unknownInLog} of them in Kafka`,
    )
    assert.ok(outcome.notWritten > 0, 'some events (of test.late, whose topic was looked up during the stall) were answered EVP_LOG_NOT_WRITTEN')
    assert.deepEqual(outcome.notWrittenInLog, [], 'events answered "not written" that are in Kafka')
  })
})
