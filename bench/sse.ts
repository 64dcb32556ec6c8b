/**
 * sse: fan-out of `GET /v2/stream/test.event` from the compiled `eventplane serve` (core 0) to
 * 1,000, 5,000 and 10,000 concurrent SSE clients held by a load generator on core 1
 * (bench/sse-load.mjs), which also produces the events. For each client count the producer
 * rate climbs a ladder until the p99 latency passes 250 ms or events go missing; the result
 * is the highest delivered events/s (over all clients) with p99 under 250 ms. The baseline is
 * the same server with `streams.reader_per_client: true` (a log reader per client, the
 * KafkaSSE design), measured in the same invocation. Also: server RSS per idle connection,
 * and latency at low load (10 events/s, 100 clients).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import {
  backgroundLoadPercent,
  benchDir,
  cpuSeconds,
  fixed,
  freePort,
  inTempDir,
  machineBusySeconds,
  machineNotes,
  pinned,
  positiveInt,
  repoRoot,
  saveResults,
  serveArgs,
  serverEnv,
  sleep,
  spawnPinned,
  stop,
  table,
  thousands,
  track,
  unpinnedWarning,
  UsageError,
  waitUntilAnswering,
  writeBundledConfig,
  parseFlags,
} from './lib.ts'

export const usage = `npm run bench -- sse [--clients 1000,5000,10000] [--baseline-clients LIST] [--rates LIST] [--step S] [--drain-ms MS] [--no-baseline] [--report FILE]

eventplane serve (dist/, core 0, fresh SQLite log per server, streams.max_connections_per_ip and server.max_connections_per_ip: 0)
against a load generator on core 1 that holds the SSE connections on raw sockets and produces
eventplane/test/event events to test.event through POST /v1/events. Per client count, the producer rate
climbs --rates (events/s, skipping rates under 5,000 deliveries/s) for --step seconds each,
until p99 (from the POST to receipt) passes 250 ms or not every client got every event within
--drain-ms after the step. The baseline (streams.reader_per_client: true, one log reader per
client as in KafkaSSE) climbs the same ladder in the same run.

  --clients LIST           concurrent clients, comma-separated (default 1000,5000,10000)
  --baseline-clients LIST  client counts for the baseline (default: the same)
  --rates LIST             producer ladder in events/s (default 1,2,5,10,20,50,100,200,500,1000,2000,5000)
  --step S                 seconds per rate (default 5)
  --drain-ms MS            wait after a step for the last deliveries (default 3000)
  --no-baseline            only eventplane's shared fan-out
  --report FILE            print the tables of a saved run (bench/results/sse-*.json) again, measuring nothing`

const targetP99Ms = 250
const stream = 'test.event'

export interface Options {
  clients: number[]
  baselineClients: number[]
  rates: number[]
  step: number
  drainMs: number
  baseline: boolean
}

export type Mode = 'shared' | 'per-client' | 'kafka'
const label: Record<Mode, string> = { shared: 'eventplane (shared reader)', 'per-client': 'baseline (reader per client)', kafka: 'eventplane on Kafka (shared reader)' }

/** The broker of the `kafka` mode (bench/kafka.ts sets it). */
let kafkaBootstrap: string | undefined
export function useKafka(bootstrap: string): void {
  kafkaBootstrap = bootstrap
}

export interface Latency {
  p50: number
  p99: number
  p999: number
}

export interface StepResult {
  clients: number
  closedClients: number
  rate: number
  produced: number
  postErrors: number
  producerFellBehind: number
  producingSeconds: number
  expected: number
  received: number
  receivedBeforeAck: number
  deliveredPerSecond: number
  fromAck: Latency
  fromPost: Latency
  maxFromAckMs: number
  loadCpuPercent: number
  serverCpuPercent: number
  serverRssMiB: number
  passed: boolean
  why: string
}

export interface Series {
  mode: Mode
  clients: number
  connectMs: number
  idleBytesPerClient: number
  serverRssIdleMiB: number
  steps: StepResult[]
  lowLoad?: StepResult
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, {
        clients: { type: 'string' },
        'baseline-clients': { type: 'string' },
        rates: { type: 'string' },
        step: { type: 'string' },
        'drain-ms': { type: 'string' },
        'no-baseline': { type: 'boolean' },
        report: { type: 'string' },
      } as const)
  if (values.report !== undefined) {
    const file = values.report
    return async () => {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { options: Options; series: Series[]; machine: string }
      console.log(`${saved.machine}\n(reprinted from ${file})`)
      return report(saved.series, saved.options, file)
    }
  }
  const list = (text: string, name: string) => text.split(',').map((v) => positiveInt(v.trim(), name, 1))
  const clients = list(values.clients ?? '1000,5000,10000', 'clients')
  if (clients.some((c) => c > 15_000)) throw new UsageError('--clients: at most 15000 (file descriptors and loopback ports)')
  const options: Options = {
    clients,
    baselineClients: values['baseline-clients'] === undefined ? clients : list(values['baseline-clients'], 'baseline-clients'),
    rates: list(values.rates ?? '1,2,5,10,20,50,100,200,500,1000,2000,5000', 'rates').sort((a, b) => a - b),
    step: positiveInt(values.step, 'step', 5),
    drainMs: positiveInt(values['drain-ms'], 'drain-ms', 3000),
    baseline: values['no-baseline'] !== true,
  }
  return () => inTempDir('sse', (dir) => run(dir, options))
}

async function run(dir: string, options: Options): Promise<number> {
  console.log(machineNotes())
  console.log(
    `settings: clients ${options.clients.join(', ')}; rates ${options.rates.join(', ')} events/s, ${options.step} s per rate + up to ${options.drainMs} ms drain; ` +
      `pass = p99 (POST start → receipt) < ${targetP99Ms} ms, every client got every event, the producer kept its rate`,
  )
  const background = await backgroundLoadPercent()
  console.log(`background load before the run: ${fixed(background, 0)} % of one core used by other processes`)
  if (background > 20) console.log('WARNING: the machine is busy with other work: expect noisy numbers')

  const series: Series[] = []
  let serial = 0
  const modes: Mode[] = options.baseline ? ['shared', 'per-client'] : ['shared']
  // Low load first, for both designs: 100 clients, 10 events/s.
  for (const mode of modes) {
    const s = await runSeries(mode, 100, [10], { ...options, step: Math.max(options.step, 10) }, join(dir, `run-${++serial}`), true)
    series.push(s)
  }
  for (const clients of options.clients) {
    for (const mode of modes) {
      if (mode === 'per-client' && !options.baselineClients.includes(clients)) continue
      series.push(await runSeries(mode, clients, options.rates, options, join(dir, `run-${++serial}`), false))
    }
  }
  return report(series, options)
}

export async function runSeries(mode: Mode, clients: number, rates: number[], options: Options, dir: string, lowLoad: boolean): Promise<Series> {
  const port = await freePort()
  const { configFile } = writeBundledConfig(dir, {
    streams: { max_connections_per_ip: 0, reader_per_client: mode === 'per-client' },
    // Every client connects from 127.0.0.1: no per-address caps (server.max_connections_per_ip is 256 by default).
    server: { port, max_connections_per_ip: 0 },
    ...(mode === 'kafka' ? { event_log: { backend: 'kafka', kafka: { brokers: [kafkaBootstrap], topic_namespace: `${basename(dir)}.` } } } : {}),
  })
  const server = track(
    spawnPinned(0, process.execPath, [...serveArgs(), '--config', configFile], {
      cwd: repoRoot,
      env: serverEnv(),
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  )
  const base = `http://127.0.0.1:${port}`
  await waitUntilAnswering(server, `${base}/healthz`, label[mode])
  const p = pinned(1, process.execPath, [join(benchDir, 'sse-load.mjs'), '127.0.0.1', String(port), stream])
  const load = track(spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const ask = command(load)
  try {
    // Warm up the server's code paths with a few clients and events, then measure idle memory.
    process.stdout.write(`${label[mode]}, ${clients} clients: warming up … `)
    await ask({ cmd: 'connect', count: 10 })
    await ask({ cmd: 'step', rate: 200, seconds: 1, drainMs: 1000 })
    await ask({ cmd: 'disconnect' })
    await sleep(1500)
    const rssBefore = rssBytes(server.pid!)
    const connected = (await ask({ cmd: 'connect', count: clients })) as { connected: number; ms: number }
    await sleep(2000)
    const rssIdle = rssBytes(server.pid!)
    const idleBytesPerClient = (rssIdle - rssBefore) / connected.connected
    console.log(`${connected.connected} connected in ${fixed(connected.ms / 1000, 1)} s, idle RSS ${fixed(rssIdle / 2 ** 20, 0)} MiB (${fixed(idleBytesPerClient / 1024, 1)} KiB per connection)`)
    const steps: StepResult[] = []
    const floor = lowLoad ? 0 : 5000 / clients
    // Climb the ladder to the first failure, then narrow down between the last pass and it.
    const ladder = rates.filter((r, i, all) => r >= floor || all[i + 1] === undefined || all[i + 1]! > floor)
    let lastPass: number | undefined
    let refinements = lowLoad ? 0 : 2
    for (let i = 0, rate = ladder[0]!; ; ) {
      const step = await measureStep(server, ask, rate, options, clients)
      steps.push(step)
      console.log(
        `  ${String(rate).padStart(5)} events/s → ${thousands(step.deliveredPerSecond).padStart(9)} delivered/s, p50 ${fixed(step.fromPost.p50, 1)} ms, p99 ${fixed(step.fromPost.p99, 1)} ms ` +
          `(from the 201: p50 ${fixed(step.fromAck.p50, 1)}, p99 ${fixed(step.fromAck.p99, 1)}), server CPU ${fixed(step.serverCpuPercent, 0)} %, load CPU ${fixed(step.loadCpuPercent, 0)} %` +
          (step.why ? `  STOP: ${step.why}` : ''),
      )
      let next: number | undefined
      if (step.passed) {
        lastPass = rate
        const failed = steps.filter((s) => !s.passed && s.rate > rate).sort((a, b) => a.rate - b.rate)[0]
        next = failed === undefined ? ladder[++i] : refinements-- > 0 ? Math.round(Math.sqrt(rate * failed.rate)) : undefined
      } else if (lastPass !== undefined && refinements-- > 0) next = Math.round(Math.sqrt(lastPass * rate))
      if (next === undefined || steps.some((s) => s.rate === next)) break
      rate = next
    }
    return {
      mode,
      clients,
      connectMs: connected.ms,
      idleBytesPerClient,
      serverRssIdleMiB: rssIdle / 2 ** 20,
      steps,
      ...(lowLoad ? { lowLoad: steps[0] } : {}),
    }
  } finally {
    load.disconnect()
    await stop(load, 2000)
    await stop(server)
  }
}

async function measureStep(server: ChildProcess, ask: ReturnType<typeof command>, rate: number, options: Options, clients: number): Promise<StepResult> {
  const cpu0 = cpuSeconds(server.pid!)
  const t0 = Date.now()
  const result = (await ask({ cmd: 'step', rate, seconds: options.step, drainMs: options.drainMs })) as Omit<StepResult, 'serverCpuPercent' | 'serverRssMiB' | 'passed' | 'why'>
  const serverCpuPercent = ((cpuSeconds(server.pid!) - cpu0) / ((Date.now() - t0) / 1000)) * 100
  const why = verdict(result, rate, options.step, clients)
  return { ...result, serverCpuPercent, serverRssMiB: rssBytes(server.pid!) / 2 ** 20, passed: why === '', why }
}

function verdict(step: Omit<StepResult, 'serverCpuPercent' | 'serverRssMiB' | 'passed' | 'why'>, rate: number, seconds: number, clients: number): string {
  if (step.postErrors > 0) return `${step.postErrors} events not accepted`
  if (step.produced < rate * seconds * 0.98) return `the producer sent ${step.produced} of ${rate * seconds} events`
  if (step.closedClients > 0) return `${step.closedClients} clients were disconnected`
  if (step.clients < clients) return `${clients - step.clients} clients not connected`
  if (step.received < step.expected) return `${thousands(step.expected - step.received)} of ${thousands(step.expected)} deliveries missing after the drain`
  if (!(step.fromPost.p99 < targetP99Ms)) return `p99 ${fixed(step.fromPost.p99, 0)} ms ≥ ${targetP99Ms} ms`
  return ''
}

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) * 1024 : NaN
}

function command(child: ChildProcess): (message: Record<string, unknown>) => Promise<Record<string, unknown>> {
  return (message) =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the load generator exited (${code})`))
      child.once('exit', onExit)
      child.once('message', (reply: Record<string, unknown>) => {
        child.off('exit', onExit)
        if (reply['ok'] === true) resolve(reply)
        else reject(new Error(`the load generator failed: ${String(reply['error'])}`))
      })
      child.send(message)
    })
}

function best(s: Series | undefined): StepResult | undefined {
  return s?.steps.filter((step) => step.passed).sort((a, b) => b.deliveredPerSecond - a.deliveredPerSecond)[0]
}

/** Prints the tables and the verdicts; saves the raw results unless they come from `savedPath`. */
function report(series: Series[], options: Options, savedPath?: string): number {
  const path = savedPath ?? saveResults('sse', { options, series, machine: machineNotes(), busySeconds: machineBusySeconds() })
  console.log('\n### Every step\n')
  const rows: string[][] = []
  for (const s of series) {
    for (const step of s.steps) {
      rows.push([
        s.mode === 'shared' ? 'eventplane' : 'baseline',
        thousands(s.clients),
        thousands(step.rate),
        thousands(step.deliveredPerSecond),
        fixed(step.fromPost.p50, 1),
        fixed(step.fromPost.p99, 1),
        fixed(step.fromAck.p50, 1),
        fixed(step.fromAck.p99, 1),
        fixed(step.serverCpuPercent, 0),
        fixed(step.loadCpuPercent, 0),
        fixed(step.serverRssMiB, 0),
        step.passed ? 'yes' : step.why,
      ])
    }
  }
  console.log(
    table(
      ['server', 'clients', 'events/s in', 'delivered/s', 'p50 ms', 'p99 ms', 'p50 from 201', 'p99 from 201', 'server CPU %', 'load CPU %', 'server RSS MiB', 'passed'],
      rows,
      [false, true, true, true, true, true, true, true, true, true, true, false],
    ),
  )

  console.log('\n### Summary\n')
  const summary: string[][] = []
  let met = true
  const checks: string[] = []
  for (const clients of options.clients) {
    const shared = series.find((s) => s.mode === 'shared' && s.clients === clients && s.lowLoad === undefined)
    const baseline = series.find((s) => s.mode === 'per-client' && s.clients === clients && s.lowLoad === undefined)
    const a = best(shared)
    const b = best(baseline)
    const ratio = a && b ? a.deliveredPerSecond / b.deliveredPerSecond : NaN
    summary.push([
      thousands(clients),
      a ? thousands(a.deliveredPerSecond) : 'none passed',
      a ? fixed(a.fromPost.p99, 1) : 'n/a',
      b ? thousands(b.deliveredPerSecond) : baseline ? 'none passed' : 'not run',
      b ? fixed(b.fromPost.p99, 1) : 'n/a',
      fixed(ratio, 1),
      shared ? fixed(shared.idleBytesPerClient / 1024, 1) : 'n/a',
    ])
    if (baseline !== undefined) {
      const ok = Number.isFinite(ratio) ? ratio >= 5 : a !== undefined && b === undefined
      checks.push(`${clients} clients: ${Number.isFinite(ratio) ? `${fixed(ratio, 1)}x the baseline` : b === undefined ? 'the baseline passed no rate' : 'eventplane passed no rate'} (target ≥ 5x): ${ok ? 'met' : 'NOT MET'}`)
      met &&= ok
    }
  }
  console.log(
    table(['clients', 'eventplane delivered/s', 'p99 ms', 'baseline delivered/s', 'baseline p99 ms', 'ratio', 'idle KiB/conn'], summary, [true, true, true, true, true, true, true]),
  )
  const low = series.filter((s) => s.lowLoad !== undefined)
  for (const s of low) {
    console.log(
      `\nlow load (${s.clients} clients, ${s.lowLoad!.rate} events/s), ${label[s.mode]}: p50 ${fixed(s.lowLoad!.fromPost.p50, 1)} ms, p99 ${fixed(s.lowLoad!.fromPost.p99, 1)} ms ` +
        `(from the 201: p50 ${fixed(s.lowLoad!.fromAck.p50, 1)} ms, p99 ${fixed(s.lowLoad!.fromAck.p99, 1)} ms), ${s.lowLoad!.passed ? 'every event delivered' : s.lowLoad!.why}`,
    )
  }
  const largest = series.find((s) => s.mode === 'shared' && s.clients === Math.max(...options.clients) && s.lowLoad === undefined)
  const held = largest !== undefined && largest.steps.some((step) => step.passed)
  checks.unshift(`${thousands(Math.max(...options.clients))} clients held by one process with p99 < ${targetP99Ms} ms: ${held ? 'met' : 'NOT MET'}`)
  const idle = largest?.idleBytesPerClient ?? NaN
  checks.push(`idle connection ${fixed(idle / 1024, 1)} KiB of server RSS (target < 20 KB = 19.5 KiB): ${idle < 20_000 ? 'met' : 'NOT MET'}`)
  met &&= held && idle < 20_000
  console.log(`\ntargets:\n${checks.map((c) => `- ${c}`).join('\n')}`)
  console.log(
    '\nlatency: from the start of the POST that carried the event to its receipt by a client (the 201 columns: from the 201 the producer got; receipts before the 201 count as 0 ms). ' +
      'delivered/s: events received over all clients per second of producing.',
  )
  console.log(`raw results: ${path}${unpinnedWarning()}`)
  return met ? 0 : 1
}
