/**
 * intake: events per second that `POST /v1/events` of the compiled `eventplane serve` takes in
 * on one core (taskset -c 0): every event validated against its JSON Schema (formats included)
 * and appended durably to the SQLite event log before the 201, in batches of 1 and of 100
 * events per request. Two baselines: a bare node:http server that reads the same bodies,
 * JSON.parses them and answers 201 (bench/bare-intake.mjs), the physical limit of this machine
 * for HTTP + JSON on one core; and the same server that also appends each body to a file,
 * group-committed with the durability of our default before its 201 (bench/bare-durable.mjs),
 * the limit of a durable intake. The three run in turn (A, B, C, A, B, C) per batch size in the
 * same invocation; the result is the ratio per round and its median, set against the targets
 * of the intake issues. See ../shared/reference/bench-method.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import Database from 'better-sqlite3'
import {
  backgroundLoadPercent,
  benchDir,
  cpuSeconds,
  exited,
  fixed,
  freePort,
  hasTaskset,
  inTempDir,
  machineBusySeconds,
  machineNotes,
  median,
  nonNegative,
  peakRssKiB,
  pinned,
  positiveInt,
  repoRoot,
  saveResults,
  seededRandom,
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
  serveArgs,
  serverEnv,
  parseFlags,
} from './lib.ts'

export const usage = `npm run bench -- intake [--rounds N] [--duration S] [--warmup S] [--connections N] [--batches 1,100]

POST /v1/events of eventplane serve on one core (taskset -c 0; fresh config and empty SQLite
event log in a temp dir for every run, event_log.sync: normal, log level warn), with bodies of
1 and of 100 valid eventplane/test/event events, against two baselines: a bare node:http server that
JSON.parses the same bodies and answers 201 (bench/bare-intake.mjs), and the same server
appending each body to a file, group-committed, before its 201 (bench/bare-durable.mjs). Load
from autocannon on the other core (taskset -c 1). Per batch size it takes turns: eventplane,
bare, bare-durable, eventplane, …

  --rounds N       rounds (eventplane + bare + bare-durable) per batch size (default 2)
  --duration S     measured seconds per run (default 15)
  --warmup S       warm-up seconds per run, not measured (default 5)
  --connections N  autocannon connections (default 10)
  --batches LIST   events per request, comma-separated (default 1,100; the targets are for 1 and 100)`

const intakePath = '/v1/events'
const topic = 'datacenter1.test.event'
const errorTopic = 'datacenter1.eventplane.error.validation'
/** The baselines eventplane is measured against. */
const baselines = ['bare', 'bare-durable'] as const
type Baseline = (typeof baselines)[number]
/** The targets of the intake issues: median ratio of eventplane's rate to a baseline's, per batch size. */
const targets: Array<{ batch: number; baseline: Baseline; ratio: number; what: string }> = [
  { batch: 1, baseline: 'bare', ratio: 0.45, what: 'req/s' },
  { batch: 100, baseline: 'bare', ratio: 0.3, what: 'events/s' },
  { batch: 100, baseline: 'bare-durable', ratio: 0.5, what: 'events/s' },
]

export interface Options {
  rounds: number
  duration: number
  warmup: number
  connections: number
  batches: number[]
}

export interface LoadSummary {
  requestsPerSecond: number
  requestsTotal: number
  latencyP50: number
  latencyP99: number
  autocannonP50: number
  autocannonP99: number
  latencyAverage: number
  bytesPerSecond: number
  /** Includes timeouts. */
  errors: number
  timeouts: number
  non2xx: number
  responses2xx: number
  statusCodes: Record<string, number>
  duration: number
}

export type ServerKind = 'eventplane' | 'bare' | 'bare-durable' | 'kafka'
export const label: Record<ServerKind, string> = {
  eventplane: 'eventplane serve',
  bare: 'bare node:http',
  'bare-durable': 'bare durable (+ file append)',
  kafka: 'eventplane serve on Kafka',
}

/** The broker `kafka` servers use (bench/kafka.ts sets it); each run gets a topic namespace of its own. */
let kafkaBootstrap: string | undefined
export function useKafka(bootstrap: string): void {
  kafkaBootstrap = bootstrap
}
const namespaceOf = (dir: string) => `${basename(dir)}.`

export interface Measurement {
  batch: number
  round: number
  server: ServerKind
  load: LoadSummary
  warmup?: LoadSummary
  eventsPerSecond: number
  cpuPercent: number
  /**
   * How busy core 0 (the server's) was, from /proc/stat: includes kernel network work in softirq,
   * which is not counted in the server's own CPU time, and anything else that ran there.
   */
  serverCoreBusyPercent: number
  /** CPU% of the load generator over the same window: near 100 means it, not the server, was the limit. */
  loadCpuPercent: number
  /** CPU% (of one core) used by everything else on the machine over the same window. */
  otherCpuPercent: number
  peakRssMiB: number
  windowS: number
  /** Eventplane and bare-durable: what the event log (or file) held after the server stopped, against what was acknowledged. */
  log?: LogAccount
}

interface LogAccount {
  /** Events in the test.event topic after the server stopped. */
  logged: number
  /** Events in the validation error topic (must be 0: only valid events are sent). */
  errorEvents: number
  /** Events answered 201: the check request, warm-up and measured run, × batch. */
  acknowledged: number
}

export interface Bodies {
  /** batch size → body file */
  files: Map<number, string>
  /** batch size → body bytes */
  bytes: Map<number, Buffer>
}

/** The load flags of the intake-style benchmarks (intake, kafka, versus). */
export const loadFlags = {
  rounds: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  connections: { type: 'string' },
  batches: { type: 'string' },
} as const

/** Options from the load flags; `rounds` defaults to `defaultRounds`. */
export function loadOptions(values: { [K in keyof typeof loadFlags]?: string }, defaultRounds: number): Options {
  const batches = (values.batches ?? '1,100').split(',').map((b) => positiveInt(b.trim(), 'batches', 1))
  if (new Set(batches).size !== batches.length) throw new UsageError(`--batches lists a size twice: ${values.batches}`)
  if (batches.some((b) => b > 10_000)) throw new UsageError('--batches: at most 10000 events per request')
  return {
    rounds: positiveInt(values.rounds, 'rounds', defaultRounds),
    duration: positiveInt(values.duration, 'duration', 15),
    warmup: nonNegative(values.warmup, 'warmup', 5),
    connections: positiveInt(values.connections, 'connections', 10),
    batches,
  }
}

export function prepare(args: string[]): () => Promise<number> {
  const options = loadOptions(parseFlags(args, loadFlags), 2)
  return () => run(options)
}

function run(options: Options): Promise<number> {
  return inTempDir('intake', (work) => runIn(work, options))
}

async function runIn(work: string, options: Options): Promise<number> {
  console.log(machineNotes())
  console.log(
    `settings: ${options.rounds} rounds per batch size, batches of ${options.batches.join(' and ')} events, ` +
      `${options.warmup} s warm-up + ${options.duration} s measured per run, ${options.connections} connections, keep-alive, ` +
      `POST ${intakePath} (content-type: application/json)`,
  )
  console.log(
    `eventplane: node ${serveArgs().map((a) => a.replace(repoRoot, '')).join(' ')} (as npm start runs it) with the bundled schemas and stream config, log level warn, a fresh data_dir (empty SQLite event log) ` +
      'for every run; every event is validated against /eventplane/test/event/1.0.0 (formats included) and appended before the 201',
  )
  console.log(
    'durability: event_log.sync: normal (the default): an acknowledged event is committed to the SQLite WAL and survives a crash of the ' +
      'process (kill -9), not necessarily a power loss; sync: full would add an fsync per group commit',
  )
  const background = await backgroundLoadPercent()
  console.log(`background load before the run: ${fixed(background, 0)} % of one core used by other processes`)
  if (background > 20) console.log('WARNING: the machine is busy with other work: expect noisy numbers (see the "other CPU %" column)')

  const bodies = writeBodies(work, options.batches)
  console.log(
    `bodies (prepared once): ${options.batches
      .map((b) => `${b} event${b === 1 ? '' : 's'} = ${thousands(bodies.bytes.get(b)!.length)} bytes`)
      .join(', ')}; eventplane/test/event events with a varying 20–40 character "test" text and 2–3 test_map entries`,
  )
  console.log(`checked: ${await checkBoth(work, bodies)}`)

  console.log(
    'bare-durable: bench/bare-durable.mjs, the bare server plus an append of each raw body (length-framed) to one file before its 201, ' +
      'group-committed as the event log is (one writev(2) for the bodies of one event-loop turn and the next), with the same durability as sync: normal',
  )
  const measurements = await alternate(['eventplane', ...baselines], options, bodies, work)
  return report(measurements, options)
}

/**
 * Per batch size and round, one run of each kind in turn (A, B, A, B …), each on a fresh server
 * in a folder of its own under `work`, printing a line per run as it ends.
 */
export async function alternate(kinds: readonly ServerKind[], options: Options, bodies: Bodies, work: string): Promise<Measurement[]> {
  const measurements: Measurement[] = []
  let serial = 0
  for (const batch of options.batches) {
    for (let round = 1; round <= options.rounds; round++) {
      for (const kind of kinds) {
        process.stdout.write(`batch ${batch}, round ${round}/${options.rounds}: ${label[kind]} … `)
        const m = await measure(kind, batch, round, options, bodies, join(work, `run-${++serial}`))
        measurements.push(m)
        console.log(
          `${thousands(m.load.requestsPerSecond)} req/s = ${thousands(m.eventsPerSecond)} events/s, p50 ${fixed(m.load.latencyP50, 2)} ms, ` +
            `p99 ${fixed(m.load.latencyP99, 2)} ms, server CPU ${fixed(m.cpuPercent, 0)} % (core 0 busy ${fixed(m.serverCoreBusyPercent, 0)} %), load generator CPU ${fixed(m.loadCpuPercent, 0)} %, ` +
            `other processes ${fixed(Math.max(0, m.otherCpuPercent), 0)} %, peak RSS ${fixed(m.peakRssMiB, 1)} MiB, errors+non-201 ${failures(m.load)}` +
            (m.log ? `, log ${thousands(m.log.logged)} events / ${thousands(m.log.acknowledged)} acknowledged` : ''),
        )
      }
    }
  }
  return measurements
}

// ---------------------------------------------------------------------------------------------
// Bodies and config

const words = ['page', 'edit', 'saved', 'preview', 'click', 'search', 'result', 'opened', 'link', 'banner', 'session', 'reader', 'mobile', 'desktop', 'article', 'talk', 'history', 'diff', 'watchlist', 'menu']

/** A realistic eventplane/test/event event, different for every i. */
export function testEvent(i: number, random: () => number, now: number): Record<string, unknown> {
  let text = `event ${i}:`
  while (text.length < 20 || (text.length < 40 && random() < 0.6)) {
    const word = words[Math.floor(random() * words.length)]!
    if (text.length + 1 + word.length > 40) break
    text += ` ${word}`
  }
  const map: Record<string, string> = {
    wiki: 'enwiki',
    page_id: String(1000 + Math.floor(random() * 9_000_000)),
  }
  if (random() < 0.5) map['action'] = words[Math.floor(random() * words.length)]!
  return {
    $schema: '/eventplane/test/event/1.0.0',
    meta: { stream: 'test.event', domain: 'en.wikipedia.org' },
    dt: new Date(now - i * 37).toISOString(),
    test: text,
    test_map: map,
  }
}

export function writeBodies(work: string, batches: number[]): Bodies {
  const files = new Map<number, string>()
  const bytes = new Map<number, Buffer>()
  const now = Date.now()
  for (const batch of batches) {
    // Seeded, so that every run sends the same bodies.
    const random = seededRandom(batch)
    const body = Buffer.from(JSON.stringify(Array.from({ length: batch }, (_, i) => testEvent(i, random, now))))
    const file = join(work, `body-${batch}.json`)
    writeFileSync(file, body)
    files.set(batch, file)
    bytes.set(batch, body)
  }
  return { files, bytes }
}

// ---------------------------------------------------------------------------------------------
// Servers and checks

interface Started {
  child: ChildProcess
  url: string
  configFile?: string
  logFile?: string
}

async function startServer(kind: ServerKind, dir: string): Promise<Started> {
  const port = await freePort()
  let args: string[]
  let files: { configFile: string; logFile: string } | undefined
  if (kind === 'eventplane' || kind === 'kafka') {
    if (kind === 'kafka' && kafkaBootstrap === undefined) throw new Error('no Kafka broker: call useKafka() first')
    files = writeBundledConfig(
      dir,
      kind === 'kafka' ? { event_log: { backend: 'kafka', kafka: { brokers: [kafkaBootstrap], topic_namespace: namespaceOf(dir) } } } : {},
    )
    args = [...serveArgs(), '--config', files.configFile, '--port', String(port)]
  } else if (kind === 'bare-durable') {
    mkdirSync(dir, { recursive: true })
    files = { configFile: '', logFile: join(dir, 'bodies.bin') }
    args = [join(benchDir, 'bare-durable.mjs'), String(port), files.logFile]
  } else {
    args = [join(benchDir, 'bare-intake.mjs'), String(port)]
  }
  const child = track(spawnPinned(0, process.execPath, args, { cwd: repoRoot, env: serverEnv(), stdio: ['ignore', 'ignore', 'inherit'] }))
  const base = `http://127.0.0.1:${port}`
  // Any answer means it listens; GET writes nothing.
  await waitUntilAnswering(child, `${base}/`, label[kind])
  return { child, url: base + intakePath, ...files }
}

async function post(url: string, body: Buffer | string): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(10_000),
  })
  return { status: response.status, text: await response.text() }
}

async function expect201(kind: ServerKind, url: string, body: Buffer, batch: number): Promise<void> {
  const { status, text } = await post(url, body)
  if (status !== 201) throw new Error(`${label[kind]} answered ${status}, not 201, to the body of ${batch} event(s): ${text.slice(0, 500)}`)
}

/** Events in bare-durable's file: its length-framed bodies, each an array of events (or one event). */
function countFramedEvents(file: string): number {
  const bytes = readFileSync(file)
  let events = 0
  for (let at = 0; at < bytes.length; ) {
    if (at + 4 > bytes.length) throw new Error(`${file}: a length cut off at byte ${at}`)
    const length = bytes.readUInt32LE(at)
    if (at + 4 + length > bytes.length) throw new Error(`${file}: a body cut off at byte ${at}`)
    const body = JSON.parse(bytes.toString('utf8', at + 4, at + 4 + length)) as unknown
    events += Array.isArray(body) ? body.length : 1
    at += 4 + length
  }
  return events
}

/** Events per topic in an event log file, read after its server stopped (read-only). */
function countEvents(logFile: string): Map<string, number> {
  let db: Database.Database
  try {
    db = new Database(logFile, { readonly: true, fileMustExist: true })
  } catch (error) {
    throw new Error(`cannot open the event log ${logFile}: ${(error as Error).message}`)
  }
  try {
    const rows = db
      .prepare('SELECT p.topic AS topic, coalesce(sum(b.count), 0) AS events FROM partitions p LEFT JOIN batches b ON b.part_id = p.id GROUP BY p.topic')
      .all() as { topic: string; events: number }[]
    return new Map(rows.map((r) => [r.topic, r.events]))
  } catch (error) {
    throw new Error(`cannot count the events in ${logFile} (has the log's table layout changed? see src/log/sqlite-schema.ts): ${(error as Error).message}`)
  } finally {
    db.close()
  }
}

/** Events per topic in Kafka under a topic namespace (all partitions, earliest to latest). */
async function countKafkaEvents(namespace: string): Promise<Map<string, number>> {
  const { openKafkaLog } = await import('../src/log/kafka.ts')
  const log = await openKafkaLog({ brokers: [kafkaBootstrap!], topicNamespace: namespace, createTopics: false })
  try {
    const counts = new Map<string, number>()
    for (const name of await log.topics()) {
      let events = 0
      for (let partition = 0; partition < (await log.partitions(name)); partition++) events += (await log.latest(name, partition)) - (await log.earliest(name, partition))
      counts.set(name, events)
    }
    return counts
  } finally {
    await log.close()
  }
}

/**
 * Before anything is measured: Eventplane answers 201 to both bodies, the events are really in
 * the log (read back with `eventplane log tail`, then counted), one event with a bad date-time is
 * refused (so formats are validated); both baselines answer 201 to the bodies and 400 to text
 * that is not JSON, and bare-durable's file then holds exactly the events of the bodies. Runs on
 * instances of their own, which are then thrown away.
 */
async function checkBoth(work: string, bodies: Bodies): Promise<string> {
  const batches = [...bodies.bytes.keys()]
  const expectedEvents = batches.reduce((a, b) => a + b, 0)
  const server = await startServer('eventplane', join(work, 'check'))
  let tailed: Record<string, unknown>
  let invalidStatus: number
  try {
    for (const batch of batches) await expect201('eventplane', server.url, bodies.bytes.get(batch)!, batch)
    const first = JSON.parse(bodies.bytes.get(batches[0]!)!.toString('utf8')) as Record<string, unknown>[]
    const bad = { ...first[0], dt: 'yesterday at noon' }
    invalidStatus = (await post(server.url, JSON.stringify([bad]))).status
    if (invalidStatus !== 400) {
      throw new Error(`eventplane answered ${invalidStatus} to an event whose dt is not a date-time; expected 400 (are formats validated?)`)
    }
    const tail = spawnSync(
      process.execPath,
      [join(repoRoot, 'dist/cli/bin.js'), 'log', 'tail', topic, '--from-beginning', '--no-follow', '--max', '1', '--config', server.configFile!],
      { cwd: repoRoot, env: serverEnv(), encoding: 'utf8', timeout: 20_000 },
    )
    const line = tail.stdout?.split('\n')[0] ?? ''
    try {
      tailed = JSON.parse(line) as Record<string, unknown>
    } catch {
      throw new Error(`eventplane log tail ${topic} printed no event (exit ${tail.status ?? tail.error?.message}): ${(tail.stdout + tail.stderr).slice(0, 500)}`)
    }
    const meta = tailed['meta'] as Record<string, unknown> | undefined
    if (tailed['test'] !== first[0]!['test'] || typeof meta?.['id'] !== 'string' || typeof meta['dt'] !== 'string') {
      throw new Error(`the first event in the log is not the first event posted (with meta.id and meta.dt filled in): ${line.slice(0, 500)}`)
    }
  } finally {
    await stop(server.child)
  }
  const counts = countEvents(server.logFile!)
  if ((counts.get(topic) ?? 0) !== expectedEvents || (counts.get(errorTopic) ?? 0) !== 1) {
    throw new Error(
      `after posting ${batches.join(' + ')} valid events and 1 invalid one, the event log holds ${counts.get(topic) ?? 0} events in ${topic} ` +
        `and ${counts.get(errorTopic) ?? 0} in ${errorTopic}; expected ${expectedEvents} and 1`,
    )
  }
  rmSync(join(work, 'check'), { recursive: true, force: true })

  for (const kind of baselines) {
    const bare = await startServer(kind, join(work, `check-${kind}`))
    try {
      for (const batch of batches) await expect201(kind, bare.url, bodies.bytes.get(batch)!, batch)
      const { status } = await post(bare.url, 'not json')
      if (status !== 400) throw new Error(`${label[kind]} answered ${status}, not 400, to a body that is not JSON`)
    } finally {
      await stop(bare.child)
    }
    const held = bare.logFile === undefined ? expectedEvents : countFramedEvents(bare.logFile)
    if (held !== expectedEvents) throw new Error(`after ${batches.join(' + ')} events were posted, ${label[kind]}'s file holds ${held} events`)
  }
  return (
    `eventplane answers 201 to the bodies of ${batches.join(' and ')} events, and 400 to an event with dt "yesterday at noon" (formats are validated); ` +
    `afterwards its log holds exactly the ${expectedEvents} events in ${topic} (the first read back with "eventplane log tail", meta.id and meta.dt filled in) ` +
    `and 1 error event in ${errorTopic}; both baselines answer 201 to the same bodies and 400 to "not json", and bare-durable's file then holds exactly the ${expectedEvents} events`
  )
}

// ---------------------------------------------------------------------------------------------
// One run

export async function measure(kind: ServerKind, batch: number, round: number, options: Options, bodies: Bodies, dir: string): Promise<Measurement> {
  const server = await startServer(kind, dir)
  const pid = server.child.pid!
  let measurement: Omit<Measurement, 'log'>
  try {
    // Every run starts with one checked request: a run of errors is worth nothing.
    await expect201(kind, server.url, bodies.bytes.get(batch)!, batch)
    const request = { method: 'POST', bodyFile: bodies.files.get(batch)!, headers: { 'content-type': 'application/json' } }
    const p = pinned(1, process.execPath, [
      join(benchDir, 'load.mjs'),
      server.url,
      String(options.connections),
      String(options.warmup),
      String(options.duration),
      JSON.stringify(request),
    ])
    const load = track(spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    const limitS = options.warmup + options.duration + 60
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      load.kill('SIGKILL')
    }, limitS * 1000)
    let warmup: LoadSummary | undefined
    type Snapshot = { cpu: number; loadCpu: number; machine: number; core0: number; self: number; at: number }
    const snapshot = (): Snapshot => {
      const self = process.cpuUsage()
      return {
        cpu: cpuSeconds(pid),
        loadCpu: cpuSeconds(load.pid!),
        machine: machineBusySeconds(),
        core0: machineBusySeconds(0),
        self: (self.user + self.system) / 1e6,
        at: performance.now(),
      }
    }
    let start: Snapshot | undefined
    let end: (Snapshot & { result: LoadSummary }) | undefined
    let ended: () => void = () => {}
    const endSeen = new Promise<void>((resolve) => (ended = resolve))
    load.on('message', (message: { type: string; result?: LoadSummary }) => {
      if (message.type === 'warmup-done') warmup = message.result
      else if (message.type === 'measure-start') start = snapshot()
      else if (message.type === 'measure-end') {
        end = { ...snapshot(), result: message.result! }
        ended()
      }
    })
    const code = await exited(load)
    clearTimeout(timer)
    if (timedOut) throw new Error(`load generator still running after ${limitS} s; killed`)
    // The last IPC message may be read just after the exit is seen.
    await Promise.race([endSeen, sleep(2000)])
    if (code !== 0 || start === undefined || end === undefined) throw new Error(`load generator failed (exit ${code})`)
    const windowS = (end.at - start.at) / 1000
    measurement = {
      batch,
      round,
      server: kind,
      load: end.result,
      ...(warmup ? { warmup } : {}),
      eventsPerSecond: end.result.requestsPerSecond * batch,
      cpuPercent: ((end.cpu - start.cpu) / windowS) * 100,
      serverCoreBusyPercent: ((end.core0 - start.core0) / windowS) * 100,
      loadCpuPercent: ((end.loadCpu - start.loadCpu) / windowS) * 100,
      otherCpuPercent: ((end.machine - start.machine - (end.cpu - start.cpu) - (end.loadCpu - start.loadCpu) - (end.self - start.self)) / windowS) * 100,
      peakRssMiB: peakRssKiB(pid) / 1024,
      windowS,
    }
  } finally {
    await stop(server.child)
  }
  if (kind === 'bare') {
    rmSync(dir, { recursive: true, force: true })
    return measurement
  }
  // The server stopped (eventplane drains and closes its log on SIGTERM): count what the log holds.
  const counts =
    kind === 'kafka' ? await countKafkaEvents(namespaceOf(dir)) : kind === 'bare-durable' ? new Map([[topic, countFramedEvents(server.logFile!)]]) : countEvents(server.logFile!)
  const created = (s: LoadSummary | undefined) => s?.statusCodes['201'] ?? 0
  const log: LogAccount = {
    logged: counts.get(topic) ?? 0,
    errorEvents: counts.get(errorTopic) ?? 0,
    acknowledged: (1 + created(measurement.warmup) + created(measurement.load)) * batch,
  }
  rmSync(dir, { recursive: true, force: true })
  return { ...measurement, log }
}

/** Errors (timeouts included) and responses other than 201 during the measured run. */
export function failures(load: LoadSummary): number {
  const other = Object.entries(load.statusCodes).reduce((sum, [code, count]) => sum + (code === '201' ? 0 : count), 0)
  return load.errors + other
}

/** The log must hold every acknowledged event (more is fine: requests cut off at the end of warm-up and run). */
export function logProblem(m: Measurement): string | undefined {
  if (m.log === undefined) return undefined
  if (m.log.logged < m.log.acknowledged) return `the log holds ${m.log.logged} events but ${m.log.acknowledged} were acknowledged`
  if (m.log.errorEvents > 0) return `${m.log.errorEvents} validation error events: some events were refused`
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Report

/** One row per run: the table both bench/intake and bench/kafka print first. */
export function measurementTable(measurements: Measurement[]): string {
  const rows = measurements.map((m) => [
    String(m.batch),
    String(m.round),
    label[m.server],
    thousands(m.load.requestsPerSecond),
    thousands(m.eventsPerSecond),
    fixed(m.load.latencyP50, 2),
    fixed(m.load.latencyP99, 2),
    fixed(m.cpuPercent, 0),
    fixed(m.peakRssMiB, 1),
    fixed(m.loadCpuPercent, 0),
    // Tick counting makes this ±1–2 %: a slightly negative value means none.
    fixed(Math.max(0, m.otherCpuPercent), 0),
    String(failures(m.load)),
  ])
  return table(
    ['batch', 'round', 'server', 'req/s', 'events/s', 'p50 ms', 'p99 ms', 'server CPU %', 'server peak RSS MiB', 'load gen CPU %', 'other CPU %', 'errors+non-201'],
    rows,
    [true, false, false, true, true, true, true, true, true, true, true, true],
  )
}

function report(measurements: Measurement[], options: Options): number {
  console.log('\n' + measurementTable(measurements))

  /** One round of one batch size: eventplane and each baseline, and eventplane's rate as a share of theirs. */
  type Round = { batch: number; round: number; eventplane: Measurement; base: Record<Baseline, Measurement>; ratio: Record<Baseline, number> }
  const rounds: Round[] = []
  for (const batch of options.batches) {
    for (let round = 1; round <= options.rounds; round++) {
      const find = (server: ServerKind) => measurements.find((m) => m.batch === batch && m.round === round && m.server === server)
      const eventplane = find('eventplane')
      const base = Object.fromEntries(baselines.map((b) => [b, find(b)])) as Record<Baseline, Measurement | undefined>
      if (eventplane === undefined || baselines.some((b) => base[b] === undefined)) continue
      const ratio = Object.fromEntries(baselines.map((b) => [b, eventplane.load.requestsPerSecond / base[b]!.load.requestsPerSecond])) as Record<Baseline, number>
      rounds.push({ batch, round, eventplane, base: base as Record<Baseline, Measurement>, ratio })
    }
  }
  const medians = new Map<string, number>()
  const key = (batch: number, baseline: Baseline) => `${batch} ${baseline}`
  const pairRows: string[][] = []
  for (const batch of options.batches) {
    const of = rounds.filter((p) => p.batch === batch)
    for (const b of baselines) medians.set(key(batch, b), median(of.map((p) => p.ratio[b])))
    for (const p of of) {
      pairRows.push([
        String(batch),
        String(p.round),
        thousands(p.eventplane.eventsPerSecond),
        ...baselines.map((b) => thousands(p.base[b].eventsPerSecond)),
        ...baselines.map((b) => fixed(p.ratio[b], 3)),
      ])
    }
    pairRows.push([
      String(batch),
      'median',
      thousands(median(of.map((p) => p.eventplane.eventsPerSecond))),
      ...baselines.map((b) => thousands(median(of.map((p) => p.base[b].eventsPerSecond)))),
      ...baselines.map((b) => fixed(medians.get(key(batch, b))!, 3)),
    ])
  }
  console.log(
    '\n' +
      table(
        ['batch', 'round', 'eventplane events/s', 'bare events/s', 'bare-durable events/s', 'ratio eventplane/bare', 'ratio eventplane/bare-durable'],
        pairRows,
        [true, false, true, true, true, true, true],
      ),
  )

  const logRows = options.batches.map((batch) => {
    const runs = measurements.filter((m) => m.batch === batch && m.server === 'eventplane' && m.log !== undefined)
    const logged = runs.reduce((a, m) => a + m.log!.logged, 0)
    const acknowledged = runs.reduce((a, m) => a + m.log!.acknowledged, 0)
    const errorEvents = runs.reduce((a, m) => a + m.log!.errorEvents, 0)
    const bad = runs.filter((m) => logProblem(m) !== undefined).length
    return [String(batch), String(runs.length), thousands(acknowledged), thousands(logged), thousands(logged - acknowledged), String(errorEvents), bad === 0 ? 'ok' : `${bad} run(s) short`]
  })
  console.log(
    '\n' +
      table(['batch', 'eventplane runs', 'events acknowledged (201)', 'events in the log', 'log − acknowledged', 'error events', 'log check'], logRows, [true, true, true, true, true, true, false]),
  )
  console.log(
    '\nevents acknowledged: 201 responses × batch, counted by autocannon over warm-up and measured run, plus the check request of each run; ' +
      'the log is read after the server stopped. The log may hold more: requests cut off when autocannon stops (at most connections × batch per stop) were processed but never answered.',
  )

  const lines: string[] = []
  for (const batch of options.batches) {
    for (const b of baselines) {
      const ratio = medians.get(key(batch, b))!
      const target = targets.find((t) => t.batch === batch && t.baseline === b)
      const what = target?.what ?? 'req/s'
      let line = `batch ${batch}: median ratio eventplane/${b} ${fixed(ratio, 3)} (eventplane takes ${fixed(ratio * 100, 1)} % of ${label[b]}'s ${what}${hasTaskset() ? ' on one core' : ''})`
      if (target !== undefined) line += `; target ≥ ${target.ratio}: ${ratio >= target.ratio ? 'MET' : 'NOT MET'}`
      lines.push(line)
    }
  }
  console.log('\n' + lines.join('\n') + unpinnedWarning())
  console.log(
    "(the intake issues' targets: at batch 100, ≥ 0.5x bare-durable's events/s and ≥ 0.3x bare's; at batch 1, ≥ 0.45x bare's req/s; Wikimedia's EventGate reaches about 0.1x of bare on both)",
  )

  const bad = measurements.filter((m) => failures(m.load) > 0)
  if (bad.length > 0) console.log(`WARNING: ${bad.length} run(s) had errors, timeouts or responses other than 201: those numbers are not valid, and neither is a target verdict built on them`)
  const short = measurements.filter((m) => logProblem(m) !== undefined)
  for (const m of short) console.log(`WARNING: batch ${m.batch}, round ${m.round}: ${logProblem(m)}`)
  const busy = measurements.filter((m) => m.otherCpuPercent > 20)
  if (busy.length > 0) console.log(`WARNING: other processes used over 20 % of a core during ${busy.length} run(s): those numbers are disturbed`)
  const busyGenerator = measurements.filter((m) => m.loadCpuPercent > 90)
  if (busyGenerator.length > 0) {
    console.log(
      `note: the load generator was over 90 % busy in ${busyGenerator.length} run(s) (${[...new Set(busyGenerator.map((m) => `${label[m.server]} batch ${m.batch}`))].join(', ')}): ` +
        `there one autocannon process on one core is about as fast as the server, so that req/s is a floor of what the server can do`,
    )
  }
  const lowCpu = measurements.filter((m) => m.cpuPercent < 90)
  if (lowCpu.length > 0) {
    const coreBusy = lowCpu.filter((m) => m.serverCoreBusyPercent >= 95).length
    console.log(
      `note: the server used under 90 % of its core in ${lowCpu.length} run(s) (${[...new Set(lowCpu.map((m) => `${label[m.server]} batch ${m.batch}`))].join(', ')}); ` +
        `in ${coreBusy} of them core 0 was still ≥ 95 % busy (kernel network work in softirq is not counted as the server's CPU time, and other processes may have run there); ` +
        `where it was not, the load generator (or waiting on the disk) may have been the limit`,
    )
  }
  const medianRatios = Object.fromEntries(medians)
  const path = saveResults('intake', { options, measurements, rounds: rounds.map((p) => ({ batch: p.batch, round: p.round, ratio: p.ratio })), medianRatios, targets })
  console.log(`raw results: ${path.slice(repoRoot.length)}`)
  return bad.length > 0 || short.length > 0 ? 1 : 0
}
