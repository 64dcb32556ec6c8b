/**
 * Broker failover under load, end to end, on a real multi-node cluster: 2 intake processes and
 * 1 streams process (each `eventplane serve --role …`), producers that send every retryable
 * answer again as it was answered (same meta.id), an SSE consumer, and a /readyz poller. A
 * fault (a leader killed, a leader shut down, 2 of 3 brokers killed) comes and goes; then the
 * log is read back from Kafka. Used by test/kafka/failover.test.ts (short, light) and by
 * `npm run bench -- failover` (longer, heavier), which print and check the same numbers.
 */
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Admin } from '@platformatic/kafka'
import { stringify } from 'yaml'
import type { KafkaCluster } from '../../scripts/kafka/broker.ts'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { bundledSchemas, spawnServer } from '../helpers.ts'
import { listen } from '../streams/helpers.ts'

export type Scenario = 'leader-kill' | 'leader-term' | 'two-down'

export const scenarios: Record<Scenario, string> = {
  'leader-kill': 'the leader of partition 0 is killed (kill -9), then started again',
  'leader-term': 'the leader of partition 0 is shut down (SIGTERM), then started again',
  'two-down': '2 of 3 brokers are killed (kill -9), leader of partition 0 among them, then both started again',
}

export interface FailoverOptions {
  cluster: KafkaCluster
  scenario: Scenario
  /** A folder for configs and data. */
  dir: string
  /** New events per second, over all producers (default 50). */
  rate?: number
  /** Events per request (default 1). */
  batch?: number
  /** Scales the most requests outstanding at once (50 per producer; default 4). */
  producers?: number
  /**
   * Seconds of load before anything is measured (default 0): servers and brokers that have just
   * started are slow for a while (JIT), which would make the "before" baseline meaningless. Its
   * answers and events still count for lost, duplicates and answer times.
   */
  warmupS?: number
  /** Seconds of load before the fault (after the warm-up), with the fault, and after recovery (default 5, 8, 6). */
  beforeS?: number
  outageS?: number
  afterS?: number
  /** event_log.kafka.append_deadline_ms of the intakes (default 3000). */
  appendDeadlineMs?: number
  /** Progress lines. */
  say?: (line: string) => void
  /** Told of each server process started (a benchmark kills them when interrupted). */
  track?: (child: ChildProcess) => void
}

export interface FailoverResult {
  scenario: Scenario
  /** Distinct events the producers were told were accepted (201, or accepted in a 207). */
  acknowledged: number
  /** Distinct events (by meta.id) found in Kafka afterwards, and records in all. */
  inKafka: number
  recordsInKafka: number
  /** Acknowledged events not in Kafka (must be 0). */
  lost: number
  /** Acknowledged events the SSE consumer never got, and where the first few are in Kafka. */
  notStreamed: number
  notStreamedDetail: string[]
  /** Events the SSE consumer got more than once (extra copies; target 0). */
  duplicatesSeen: number
  /** Requests, and the answers that were not 201: by status and, per event, by code. */
  requests: number
  non201: Record<string, number>
  /** Longest stretch without any 201, from the fault on (ms). */
  longestWithout201Ms: number
  /** p99 and max of the time to any answer (ms). */
  p99AnswerMs: number
  maxAnswerMs: number
  /**
   * Answers that took longer than the deadline + 1 s: how many, and when they were sent (ms
   * from the fault); and the slowest /healthz answer of the intakes while they waited (an intake
   * that answers /healthz slowly too is short of CPU, not waiting for Kafka).
   */
  lateAnswers: { count: number; sentAt: number[]; slowestHealthzMs: number }
  /**
   * From the fault to the first not-ready /readyz of an intake; how long it stayed not ready;
   * and when it was ready again relative to the brokers being back (negative: before, as when
   * leadership moved on) (ms; undefined: it did not change).
   */
  readyDownMs: number | undefined
  notReadyMs: number | undefined
  readyUpMs: number | undefined
  /**
   * SSE latency (from the 201 to receipt, as the producer and the consumer, one process, saw
   * them; negative when the event came first) on partitions whose leader stayed up, p99: before
   * the fault (after the warm-up), and during it. From the 201, not from the POST: appends to every partition wait
   * while Kafka drops a dead follower from the in-sync replicas; this is about the read path.
   */
  healthyPartitions: number[]
  sseBeforeP99Ms: number | undefined
  sseOutageP99Ms: number | undefined
  appendDeadlineMs: number
  /**
   * Second by second from the start of the load (`second` counts from the fault): events
   * acknowledged then, answers that were not 201, and SSE latency from the 201 (p99 and max,
   * per partition), for reading a run after the fact (the bench saves it with the results).
   */
  timeline: Array<{ second: number; acknowledged: number; non201Answers: number; sse: Record<number, { p99: number; max: number }> }>
}

interface Item {
  /** The event as it will be sent: first without meta.id, then as the intake answered it. */
  event: Record<string, unknown>
  test: string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function p99(values: number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]
}

/** The node leading each partition of the topic now (by metadata from the live nodes). */
async function leaders(cluster: KafkaCluster, topic: string): Promise<number[]> {
  const admin = new Admin({ clientId: 'failover-probe', bootstrapBrokers: cluster.nodes.filter((n) => n.running).map((n) => n.bootstrap), retries: 2 })
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
    return metadata.topics.get(topic)!.partitions.map((p) => p.leader)
  } finally {
    await admin.close()
  }
}

/** Waits until every partition of the topic has all `replicas` in sync again. */
async function fullyReplicated(cluster: KafkaCluster, topic: string, replicas: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const admin = new Admin({ clientId: 'failover-probe', bootstrapBrokers: cluster.brokers, retries: 1 })
    try {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
      if (metadata.topics.get(topic)!.partitions.every((p) => p.isr.length >= replicas && p.leader >= 0)) return
    } catch {
      // not yet
    } finally {
      await admin.close()
    }
    if (Date.now() > deadline) throw new Error(`${topic} did not get all ${replicas} replicas in sync within ${timeoutMs} ms`)
    await sleep(500)
  }
}

export async function runFailover(options: FailoverOptions): Promise<FailoverResult> {
  const { cluster, scenario, dir } = options
  const rate = options.rate ?? 50
  const batch = options.batch ?? 1
  const producerCount = options.producers ?? 4
  const warmupS = options.warmupS ?? 0
  const beforeS = options.beforeS ?? 5
  const outageS = options.outageS ?? 8
  const afterS = options.afterS ?? 6
  const appendDeadlineMs = options.appendDeadlineMs ?? 3000
  const say = options.say ?? (() => {})
  const namespace = `failover-${scenario}-${process.pid}-${Date.now()}.`
  const topic = `${namespace}datacenter1.test.event`

  const streamsFile = join(dir, `${scenario}-stream-config.yaml`)
  writeFileSync(streamsFile, stringify({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'test.event': { schema_title: 'eventplane/test/event' } } }))
  const config = (name: string) => {
    const file = join(dir, `${scenario}-${name}.yaml`)
    writeFileSync(
      file,
      stringify({
        schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
        stream_config: { source: streamsFile, watch: false },
        data_dir: join(dir, `${scenario}-${name}`),
        event_log: {
          backend: 'kafka',
          partitions: 3,
          kafka: { brokers: cluster.brokers, topic_namespace: namespace, replication_factor: 3, append_deadline_ms: appendDeadlineMs, request_timeout_ms: 5000 },
        },
        log: { level: 'error' },
        // The load comes from one address, over as many connections as requests outstanding.
        server: { max_connections_per_ip: 0 },
      }),
    )
    return file
  }
  const children: ChildProcess[] = []
  const stopAll = () =>
    Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.once('exit', () => resolve())
            child.kill('SIGKILL')
          }),
      ),
    )
  try {
    const servers = await Promise.all([
      spawnServer(['--config', config('intake-1'), '--role', 'intake']),
      spawnServer(['--config', config('intake-2'), '--role', 'intake']),
      spawnServer(['--config', config('streams-server'), '--role', 'streams']),
    ])
    children.push(...servers.map((s) => s.child))
    for (const child of children) options.track?.(child)
    const intakes = servers.slice(0, 2).map((s) => s.url)
    const streamsUrl = servers[2]!.url
    // The first event makes the topic (3 partitions, 3 replicas).
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(`${intakes[0]}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'warm-up' }) })
      if (response.status === 201) break
      if (attempt === 20) throw new Error(`the first event was answered ${response.status}: ${await response.text()}`)
      await sleep(500)
    }
    await fullyReplicated(cluster, topic, 3, 30_000)

    // ---- the consumer ----
    const received: Array<{ id: string; test: string; partition: number; offset: number; at: number }> = []
    // From a time before the load, not from "now": a live start is where the server looked, a
    // moment after the connection opened, and the first events could come before it.
    const client = listen(`${streamsUrl}/v2/stream/test.event?since=${Date.now() - 1000}`)
    client.source.addEventListener('message', (event) => {
      const data = JSON.parse(event.data) as { test: string; meta: { id: string; partition: number; offset: number } }
      received.push({ id: data.meta.id, test: data.test, partition: data.meta.partition, offset: data.meta.offset, at: Date.now() })
    })
    await client.opened

    // ---- the producers ----
    const ackedAt = new Map<string, number>()
    const idOf = new Map<string, string>()
    const answers: Array<{ at: number; ms: number; status: number }> = []
    const non201: Record<string, number> = {}
    /** Answers' retryable events, each answer's sent again together once its Retry-After has passed. */
    const retries: Array<{ items: Item[]; retryAt: number }> = []
    let serial = 0
    let running = true
    // Open loop, as many independent producers are: a request leaves on schedule whether or not
    // earlier ones were answered (up to `maxOutstanding`), so a slow answer for one partition
    // does not hold up events for the others. Retries leave when their Retry-After has passed.
    const maxOutstanding = 50 * producerCount
    let outstanding = 0
    const send = async (items: Item[], url: string) => {
      outstanding++
      const started = Date.now()
      let status = 0
      let body: { error?: Array<{ index: number; event: Record<string, unknown>; context: { code: string; canRetry?: boolean } }>; invalid?: Array<{ index: number }> } = {}
      let retryAfterMs = 1000
      try {
        const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(items.map((i) => i.event)) })
        status = response.status
        const text = await response.text()
        if (text !== '') body = JSON.parse(text) as typeof body
        retryAfterMs = Math.min(5000, 1000 * Number(response.headers.get('retry-after') ?? 1))
      } catch {
        status = 0
      } finally {
        outstanding--
      }
      const at = Date.now()
      answers.push({ at, ms: at - started, status })
      if (status !== 201) non201[`HTTP ${status}`] = (non201[`HTTP ${status}`] ?? 0) + 1
      const failed = new Set<number>()
      const again: Item[] = []
      for (const item of body.error ?? []) {
        failed.add(item.index)
        non201[item.context.code] = (non201[item.context.code] ?? 0) + 1
        const original = items[item.index]!
        // Sent again as answered: with the meta.id (and meta.dt) the intake gave it.
        if (item.context.canRetry === true) again.push({ event: item.event, test: original.test })
      }
      for (const item of body.invalid ?? []) failed.add(item.index)
      if (again.length > 0) retries.push({ items: again, retryAt: at + retryAfterMs })
      if (status === 0 || status === 429) retries.push({ items, retryAt: at + 1000 })
      else if (status === 201 || status === 207) {
        items.forEach((item, index) => {
          if (failed.has(index) || ackedAt.has(item.test)) return
          ackedAt.set(item.test, at)
        })
      }
    }
    const inFlight = new Set<Promise<void>>()
    const launch = (items: Item[]) => {
      const request = send(items, intakes[serial % intakes.length]!)
      inFlight.add(request)
      void request.finally(() => inFlight.delete(request))
    }
    const interval = (1000 * batch) / rate
    const loop = (async () => {
      let next = Date.now()
      while (running || retries.length > 0 || inFlight.size > 0) {
        const now = Date.now()
        for (let i = retries.length - 1; i >= 0; i--) {
          if (retries[i]!.retryAt <= now && outstanding < maxOutstanding) launch(retries.splice(i, 1)[0]!.items)
        }
        if (running && now >= next && outstanding < maxOutstanding) {
          launch(
            Array.from({ length: batch }, () => {
              const test = `fo-${serial++}`
              return { test, event: { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test } }
            }),
          )
          next += interval
          if (next < now - 1000) next = now // fell behind (the machine is busy): do not burst
        }
        await sleep(Math.max(1, Math.min(20, next - Date.now())))
      }
    })()
    const readiness: Array<{ at: number; ready: boolean; ms: number }> = []
    /** /healthz of every intake: its answer time is the process's own delay (CPU, event loop), nothing else. */
    const health: Array<{ at: number; ms: number }> = []
    let polling = true
    const poller = (async () => {
      while (polling) {
        const started = Date.now()
        try {
          const response = await fetch(`${intakes[0]}/readyz`, { signal: AbortSignal.timeout(3000) })
          await response.text()
          readiness.push({ at: Date.now(), ready: response.status === 200, ms: Date.now() - started })
        } catch {
          readiness.push({ at: Date.now(), ready: false, ms: Date.now() - started })
        }
        await Promise.all(
          intakes.map(async (intake) => {
            const pinged = Date.now()
            try {
              await (await fetch(`${intake}/healthz`, { signal: AbortSignal.timeout(10_000) })).text()
            } catch {
              // counted by its time
            }
            health.push({ at: Date.now(), ms: Date.now() - pinged })
          }),
        )
        await sleep(200)
      }
    })()

    await sleep(warmupS * 1000)
    const measuredFrom = Date.now()
    await sleep(beforeS * 1000)
    const before = await leaders(cluster, topic)
    const victim = before[0]!
    const killed = scenario === 'two-down' ? [victim, cluster.nodes.map((n) => n.id).find((id) => id !== victim)!] : [victim]
    const healthyPartitions = scenario === 'two-down' ? [] : before.flatMap((leader, partition) => (killed.includes(leader) ? [] : [partition]))
    say(`${scenario}: leaders ${before.join(', ')}; stopping node ${killed.join(' and ')}`)
    const faultAt = Date.now()
    await Promise.all(killed.map((id) => cluster.node(id).kill(scenario === 'leader-term' ? 'SIGTERM' : 'SIGKILL')))
    await sleep(Math.max(0, outageS * 1000 - (Date.now() - faultAt)))
    const restartAt = Date.now()
    say(`${scenario}: starting node ${killed.join(' and ')} again`)
    await Promise.all(killed.map((id) => cluster.node(id).start()))
    const recoveredAt = Date.now()
    say(`${scenario}: back after ${recoveredAt - restartAt} ms`)
    await sleep(afterS * 1000)
    running = false
    // Requests still out are answered (or the deadline passes) within a minute; the timer must
    // not keep the process alive a minute after the run.
    let drained: NodeJS.Timeout | undefined
    await Promise.race([loop, new Promise((resolve) => (drained = setTimeout(resolve, 60_000)))])
    clearTimeout(drained)
    polling = false
    await poller
    await fullyReplicated(cluster, topic, 3, 60_000)
    // Every acknowledged event reaches the consumer (or 30 s pass).
    const streamDeadline = Date.now() + 30_000
    const streamedTests = () => new Set(received.map((r) => r.test))
    while (Date.now() < streamDeadline) {
      const seen = streamedTests()
      if ([...ackedAt.keys()].every((test) => seen.has(test))) break
      await sleep(200)
    }
    await sleep(1000) // copies that would come after the originals
    client.close()

    // ---- what is in Kafka ----
    const log = await openKafkaLog({ brokers: cluster.brokers, topicNamespace: namespace, clientId: 'failover-check' })
    const inKafka = new Map<string, number>()
    const positions = new Map<string, string[]>()
    let recordsInKafka = 0
    try {
      for (let partition = 0; partition < 3; partition++) {
        for await (const record of log.read({ topic: 'datacenter1.test.event', partition, offset: 0 }, { follow: false })) {
          const event = JSON.parse(record.value.toString('utf8')) as { test: string; meta: { id: string } }
          if (event.test === 'warm-up') continue
          recordsInKafka++
          inKafka.set(event.test, (inKafka.get(event.test) ?? 0) + 1)
          positions.set(event.test, [...(positions.get(event.test) ?? []), `${partition}/${record.offset}`])
          idOf.set(event.test, event.meta.id)
        }
      }
    } finally {
      await log.close()
    }
    const seenCount = new Map<string, number>()
    for (const r of received) seenCount.set(r.id, (seenCount.get(r.id) ?? 0) + 1)
    const duplicatesSeen = [...seenCount.values()].reduce((sum, n) => sum + n - 1, 0)
    const streamed = streamedTests()

    // ---- timings ----
    let longestWithout201Ms = 0
    let last201 = faultAt
    for (const answer of [...answers].sort((a, b) => a.at - b.at)) {
      if (answer.at < faultAt || answer.status !== 201) continue
      longestWithout201Ms = Math.max(longestWithout201Ms, answer.at - last201)
      last201 = answer.at
    }
    const down = readiness.find((r) => r.at >= faultAt && !r.ready)
    const up = down === undefined ? undefined : readiness.find((r) => r.at >= down.at && r.ready)
    const firstReceipt = new Map<string, { at: number; partition: number }>()
    for (const r of received) if (!firstReceipt.has(r.test)) firstReceipt.set(r.test, { at: r.at, partition: r.partition })
    const latencies = (from: number, to: number, partitions: number[] | undefined) => {
      const out: number[] = []
      for (const [test, at] of ackedAt) {
        if (at < from || at >= to) continue
        const receipt = firstReceipt.get(test)
        if (receipt === undefined || (partitions !== undefined && !partitions.includes(receipt.partition))) continue
        // Negative when the event reached the consumer before its 201 reached the producer.
        out.push(receipt.at - at)
      }
      return out
    }
    const durations = answers.map((a) => a.ms)
    const seconds = new Map<number, { acknowledged: number; non201Answers: number; sse: Map<number, number[]> }>()
    const second = (at: number) => {
      const s = Math.floor((at - faultAt) / 1000)
      let entry = seconds.get(s)
      if (entry === undefined) seconds.set(s, (entry = { acknowledged: 0, non201Answers: 0, sse: new Map() }))
      return entry
    }
    for (const answer of answers) if (answer.status !== 201) second(answer.at).non201Answers++
    for (const [test, at] of ackedAt) {
      const entry = second(at)
      entry.acknowledged++
      const receipt = firstReceipt.get(test)
      if (receipt === undefined) continue
      const list = entry.sse.get(receipt.partition)
      if (list === undefined) entry.sse.set(receipt.partition, [receipt.at - at])
      else list.push(receipt.at - at)
    }
    const timeline = [...seconds]
      .sort((a, b) => a[0] - b[0])
      .map(([s, e]) => ({
        second: s,
        acknowledged: e.acknowledged,
        non201Answers: e.non201Answers,
        sse: Object.fromEntries([...e.sse].sort((a, b) => a[0] - b[0]).map(([partition, values]) => [partition, { p99: p99(values)!, max: Math.max(...values) }])),
      }))
    return {
      scenario,
      acknowledged: ackedAt.size,
      inKafka: inKafka.size,
      recordsInKafka,
      lost: [...ackedAt.keys()].filter((test) => !inKafka.has(test)).length,
      notStreamed: [...ackedAt.keys()].filter((test) => !streamed.has(test)).length,
      notStreamedDetail: [...ackedAt.keys()]
        .filter((test) => !streamed.has(test))
        .slice(0, 5)
        .map((test) => {
          const at = positions.get(test) ?? []
          const [partition, offset] = (at[0] ?? '-1/-1').split('/').map(Number) as [number, number]
          const near = received.filter((r) => r.partition === partition && Math.abs(r.offset - offset) <= 3).map((r) => r.offset)
          return `${test} (${idOf.get(test)}) at ${at.join(' and ')}; acknowledged ${ackedAt.get(test)! - faultAt} ms after the fault; the consumer got offsets ${near.join(',')} of partition ${partition}`
        }),
      duplicatesSeen,
      requests: answers.length,
      non201,
      longestWithout201Ms,
      p99AnswerMs: p99(durations) ?? 0,
      maxAnswerMs: Math.max(0, ...durations),
      lateAnswers: (() => {
        const late = answers.filter((a) => a.ms > appendDeadlineMs + 1000)
        const during = (at: number) => late.some((a) => at >= a.at - a.ms && at <= a.at)
        const slowestHealthzMs = Math.max(0, ...health.filter((r) => during(r.at)).map((r) => r.ms))
        return { count: late.length, sentAt: late.slice(0, 10).map((a) => a.at - a.ms - faultAt), slowestHealthzMs }
      })(),
      readyDownMs: down === undefined ? undefined : down.at - faultAt,
      notReadyMs: up === undefined || down === undefined ? undefined : up.at - down.at,
      readyUpMs: up === undefined ? undefined : up.at - recoveredAt,
      healthyPartitions,
      sseBeforeP99Ms: p99(latencies(measuredFrom, faultAt, healthyPartitions.length > 0 ? healthyPartitions : undefined)),
      sseOutageP99Ms: healthyPartitions.length === 0 ? undefined : p99(latencies(faultAt, restartAt, healthyPartitions)),
      appendDeadlineMs,
      timeline,
    }
  } finally {
    await stopAll()
  }
}

/** The result as rows of `what | value | target`, for a table. */
export function resultRows(r: FailoverResult): Array<[string, string, string]> {
  const ms = (v: number | undefined) => (v === undefined ? '–' : `${Math.round(v)} ms`)
  const codes = Object.entries(r.non201)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ')
  return [
    ['acknowledged (201)', String(r.acknowledged), ''],
    ['in Kafka (distinct / records)', `${r.inKafka} / ${r.recordsInKafka}`, ''],
    ['lost (acknowledged, not in Kafka)', String(r.lost), '0'],
    ['acknowledged, not streamed', String(r.notStreamed), '0'],
    ['duplicates seen by the SSE consumer', String(r.duplicatesSeen), '0'],
    ['requests; non-201 answers by code', `${r.requests}; ${codes === '' ? 'none' : codes}`, ''],
    ['longest time without a 201', ms(r.longestWithout201Ms), ''],
    ['p99 / max time to any answer', `${ms(r.p99AnswerMs)} / ${ms(r.maxAnswerMs)}`, `p99 < ${r.appendDeadlineMs + 1000} ms`],
    [
      'answers over the deadline + 1 s (slowest /healthz meanwhile)',
      r.lateAnswers.count === 0 ? '0' : `${r.lateAnswers.count} (${ms(r.lateAnswers.slowestHealthzMs)})`,
      '',
    ],
    ['/readyz: fault → not ready; not ready for; ready again vs. brokers back', `${ms(r.readyDownMs)}; ${ms(r.notReadyMs)}; ${r.readyUpMs === undefined ? '–' : `${r.readyUpMs >= 0 ? '+' : ''}${Math.round(r.readyUpMs)} ms`}`, ''],
    [
      `SSE p99 from the 201, healthy partitions (${r.healthyPartitions.join(', ') || 'none'}): before / during`,
      `${ms(r.sseBeforeP99Ms)} / ${ms(r.sseOutageP99Ms)}`,
      r.sseBeforeP99Ms === undefined ? '' : `during ≤ 2 × before`,
    ],
  ]
}
