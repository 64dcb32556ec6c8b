/**
 * kafka: the intake on Apache Kafka against the intake on the embedded SQLite log, in the same
 * run. A real single-node Kafka broker (scripts/kafka/broker.ts) runs on core 1 beside the load
 * generator; each server under test runs on core 0. Per batch size (1 and 100 events per
 * request) the two alternate (embedded, Kafka, embedded, Kafka, …) exactly as bench/intake does
 * against the bare server, and the result is the ratio Kafka/embedded per pair and its median.
 * Then the latency of Server-Sent Events through each log: 100 clients, 10 events/s, from the
 * producer's 201 (and from the start of its POST) to receipt, with bench/sse's load generator.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startKafka } from '../scripts/kafka/broker.ts'
import { alternate, failures, label, loadFlags, loadOptions, logProblem, measurementTable, useKafka as intakeOnKafka, writeBodies, type Measurement, type Options as IntakeOptions } from './intake.ts'
import {
  backgroundLoadPercent,
  fixed,
  hasTaskset,
  inTempDir,
  machineNotes,
  median,
  positiveInt,
  repoRoot,
  saveResults,
  table,
  thousands,
  unpinnedWarning,
  parseFlags,
} from './lib.ts'
import { runSeries, useKafka as sseOnKafka, type Options as SseOptions, type Series } from './sse.ts'

export const usage = `npm run bench -- kafka [--rounds N] [--duration S] [--warmup S] [--connections N] [--batches 1,100] [--sse-clients N] [--sse-rate R] [--sse-seconds S] [--fanout-clients N] [--fanout-rates LIST] [--no-sse]

POST /v1/events of eventplane serve with its event log on Kafka (a real Kafka broker started
from the Maven Central jars, on core 1 with the load generator) against the same server on the
embedded SQLite log, alternating per batch size; the server under test on core 0. Then SSE
latency through each log at low load, and fan-out to many clients at climbing rates through
each log. Needs Java 17+ and Maven (see README).

  --rounds N       pairs (embedded + Kafka) per batch size (default 2)
  --duration S     measured seconds per run (default 15)
  --warmup S       warm-up seconds per run (default 5)
  --connections N  autocannon connections (default 10)
  --batches LIST   events per request (default 1,100; the target is for 100)
  --sse-clients N  SSE clients for the latency part (default 100)
  --sse-rate R     events/s produced during it (default 10)
  --sse-seconds S  seconds it lasts per log (default 10)
  --fanout-clients N   SSE clients for the fan-out part (default 1000)
  --fanout-rates LIST  events/s produced, one step of --sse-seconds each (default 50,100,200)
  --no-sse         skip both SSE parts`

/** The Kafka issue's target: Kafka-backed intake at least 0.7x the embedded one's events/s at batch 100. */
const targetRatio = 0.7
const targetBatch = 100

interface Options extends IntakeOptions {
  sse: { clients: number; rate: number; seconds: number; fanoutClients: number; fanoutRates: number[] } | undefined
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, {
    ...loadFlags,
    'sse-clients': { type: 'string' },
    'sse-rate': { type: 'string' },
    'sse-seconds': { type: 'string' },
    'fanout-clients': { type: 'string' },
    'fanout-rates': { type: 'string' },
    'no-sse': { type: 'boolean' },
  } as const)
  const options: Options = {
    ...loadOptions(values, 2),
    sse: values['no-sse']
      ? undefined
      : {
          clients: positiveInt(values['sse-clients'], 'sse-clients', 100),
          rate: positiveInt(values['sse-rate'], 'sse-rate', 10),
          seconds: positiveInt(values['sse-seconds'], 'sse-seconds', 10),
          fanoutClients: positiveInt(values['fanout-clients'], 'fanout-clients', 1000),
          fanoutRates: (values['fanout-rates'] ?? '50,100,200').split(',').map((r) => positiveInt(r.trim(), 'fanout-rates', 1)),
        },
  }
  return () => inTempDir('kafka', (work) => run(work, options))
}

async function run(work: string, options: Options): Promise<number> {
  console.log(machineNotes('server under test on core 0; load generator and the Kafka broker on core 1'))
  console.log(
    `settings: ${options.rounds} pairs per batch size, batches of ${options.batches.join(' and ')} events, ${options.warmup} s warm-up + ${options.duration} s measured per run, ` +
      `${options.connections} connections; both servers validate every event (formats included); embedded: SQLite, event_log.sync normal; ` +
      'Kafka: acks=all, idempotent producers, 1 partition per topic, a topic namespace per run (fresh topics)',
  )
  const background = await backgroundLoadPercent()
  console.log(`background load before the run: ${fixed(background, 0)} % of one core used by other processes`)

  const kafka = await startKafka({ partitions: 1, quiet: true })
  try {
    // The broker is part of the system under test, but not of the server process: it gets the
    // load generator's core, so the server's core is the same for both logs.
    if (hasTaskset()) spawnSync('taskset', ['-a', '-p', '-c', '1', String(kafka.pid)], { stdio: 'ignore' })
    console.log(`Kafka ${kafka.version} broker at ${kafka.bootstrap} (pid ${kafka.pid}${hasTaskset() ? ', pinned to core 1' : ''})`)
    intakeOnKafka(kafka.bootstrap)
    sseOnKafka(kafka.bootstrap)

    const bodies = writeBodies(work, options.batches)
    const measurements = await alternate(['eventplane', 'kafka'], options, bodies, work)

    const sse: Series[] = []
    const fanout: Series[] = []
    if (options.sse !== undefined) {
      const sseOptions: SseOptions = { clients: [options.sse.clients], baselineClients: [], rates: [options.sse.rate], step: options.sse.seconds, drainMs: 3000, baseline: false }
      for (const mode of ['shared', 'kafka'] as const) {
        sse.push(await runSeries(mode, options.sse.clients, [options.sse.rate], sseOptions, join(work, `sse-${mode}`), true))
      }
      const fanoutOptions: SseOptions = { ...sseOptions, clients: [options.sse.fanoutClients], rates: options.sse.fanoutRates }
      for (const mode of ['shared', 'kafka'] as const) {
        fanout.push(await runSeries(mode, options.sse.fanoutClients, options.sse.fanoutRates, fanoutOptions, join(work, `fanout-${mode}`), true))
      }
    }
    return report(measurements, sse, fanout, options)
  } finally {
    await kafka.stop()
  }
}

function report(measurements: Measurement[], sse: Series[], fanout: Series[], options: Options): number {
  console.log('\n' + measurementTable(measurements))
  const medians = new Map<number, number>()
  const pairRows: string[][] = []
  const pairs: Array<{ batch: number; round: number; ratio: number }> = []
  for (const batch of options.batches) {
    const ratios: number[] = []
    for (let round = 1; round <= options.rounds; round++) {
      const a = measurements.find((m) => m.batch === batch && m.round === round && m.server === 'eventplane')
      const b = measurements.find((m) => m.batch === batch && m.round === round && m.server === 'kafka')
      if (a === undefined || b === undefined) continue
      const ratio = b.eventsPerSecond / a.eventsPerSecond
      ratios.push(ratio)
      pairs.push({ batch, round, ratio })
      pairRows.push([String(batch), String(round), thousands(a.eventsPerSecond), thousands(b.eventsPerSecond), fixed(ratio, 3)])
    }
    medians.set(batch, median(ratios))
    pairRows.push([String(batch), 'median', '', '', fixed(median(ratios), 3)])
  }
  console.log('\n' + table(['batch', 'pair', 'embedded events/s', 'Kafka events/s', 'ratio Kafka/embedded'], pairRows, [true, false, true, true, true]))

  if (sse.length > 0) {
    const sseRows = sse.map((s) => {
      const step = s.lowLoad!
      return [
        s.mode === 'kafka' ? 'Kafka' : 'embedded (SQLite)',
        thousands(s.clients),
        thousands(step.rate),
        fixed(step.fromAck.p50, 1),
        fixed(step.fromAck.p99, 1),
        fixed(step.fromPost.p50, 1),
        fixed(step.fromPost.p99, 1),
        `${thousands(step.received)} / ${thousands(step.expected)}`,
      ]
    })
    console.log(
      '\n' +
        table(['event log', 'SSE clients', 'events/s', 'p50 ms from 201', 'p99 ms from 201', 'p50 ms from POST', 'p99 ms from POST', 'received / expected'], sseRows),
    )
  }

  if (fanout.length > 0) {
    const fanoutRows = fanout.flatMap((s) =>
      s.steps.map((step) => [
        s.mode === 'kafka' ? 'Kafka' : 'embedded (SQLite)',
        thousands(s.clients),
        thousands(step.rate),
        thousands(step.deliveredPerSecond),
        fixed(step.fromAck.p50, 1),
        fixed(step.fromAck.p99, 1),
        fixed(step.fromPost.p99, 1),
        fixed(step.serverCpuPercent, 0),
        step.passed ? 'yes' : step.why,
      ]),
    )
    console.log(
      '\n' +
        table(
          ['event log', 'SSE clients', 'events/s in', 'delivered/s', 'p50 ms from 201', 'p99 ms from 201', 'p99 ms from POST', 'server CPU %', 'all delivered, p99 < 250 ms'],
          fanoutRows,
          [false, true, true, true, true, true, true, true, false],
        ),
    )
  }

  const lines = options.batches.map((batch) => {
    const ratio = medians.get(batch)!
    let line = `batch ${batch}: median ratio Kafka/embedded ${fixed(ratio, 3)}`
    if (batch === targetBatch) line += `; target ≥ ${targetRatio}: ${ratio >= targetRatio ? 'MET' : 'NOT MET'}`
    return line
  })
  console.log('\n' + lines.join('\n') + unpinnedWarning())
  const bad = measurements.filter((m) => failures(m.load) > 0 || logProblem(m) !== undefined)
  for (const m of bad) console.log(`WARNING: batch ${m.batch}, round ${m.round}, ${label[m.server]}: ${logProblem(m) ?? `${failures(m.load)} errors or non-201 answers`}`)
  const lost = sse.filter((s) => !s.lowLoad!.passed)
  for (const s of lost) console.log(`WARNING: SSE through ${s.mode}: ${s.lowLoad!.why}`)
  const path = saveResults('kafka', { options, measurements, pairs, medianRatios: Object.fromEntries(medians), sse, fanout })
  console.log(`raw results: ${path.slice(repoRoot.length)}`)
  return bad.length > 0 || lost.length > 0 ? 1 : 0
}
