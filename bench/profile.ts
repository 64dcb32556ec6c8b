/**
 * profile: where the intake's time goes, per event. Runs `eventplane serve` (compiled, pinned to
 * core 0) under `node --cpu-prof`, loads it as bench/intake does (same bodies, autocannon on
 * core 1), and sorts the samples of the measured window into the parts of the pipeline: what a
 * bare node:http + JSON.parse server does too, and what is ours. Each part is printed as a
 * share of the samples and in microseconds per event (the share of the window's time divided
 * by the events taken in it). The profiler slows the server down (about a fifth here), evenly
 * enough that the shares hold; the absolute numbers are those of a profiled server.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeBodies } from './intake.ts'
import {
  benchDir,
  exited,
  fixed,
  freePort,
  inTempDir,
  machineNotes,
  nonNegative,
  parseFlags,
  pinned,
  positiveInt,
  repoRoot,
  serveArgs,
  serverEnv,
  spawnPinned,
  stop,
  table,
  thousands,
  track,
  writeBundledConfig,
  waitUntilAnswering,
} from './lib.ts'

export const usage = `npm run bench -- profile [--batch N] [--duration S] [--warmup S] [--connections N] [--top N]

Profiles eventplane serve (node --cpu-prof, core 0) under the intake benchmark's load
(autocannon on core 1, bench/intake's bodies) and prints where the time of the measured window
went, per event: body parsing, validation, enrichment, splicing, the event log's JavaScript,
SQLite, HTTP, metrics, garbage collection, idle time. Then the functions with the most time of
their own.

  --batch N        events per request (default 100)
  --duration S     measured seconds (default 15)
  --warmup S       warm-up seconds, not counted (default 5)
  --connections N  autocannon connections (default 10)
  --top N          functions listed by their own time (default 20)`

interface Options {
  batch: number
  duration: number
  warmup: number
  connections: number
  top: number
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { batch: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, connections: { type: 'string' }, top: { type: 'string' } } as const)
  const options: Options = {
    batch: positiveInt(values.batch, 'batch', 100),
    duration: positiveInt(values.duration, 'duration', 15),
    warmup: nonNegative(values.warmup, 'warmup', 5),
    connections: positiveInt(values.connections, 'connections', 10),
    top: positiveInt(values.top, 'top', 20),
  }
  return () => inTempDir('profile', (work) => run(work, options))
}

/** A frame of a V8 CPU profile. */
interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface Profile {
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const file = (frame: CallFrame, path: string) => frame.url.endsWith(path)

/**
 * The parts, tried from a sample's leaf frame up: the first part of ours that a frame belongs
 * to takes the sample (a node builtin called from our code counts as ours: `Buffer.byteLength`
 * in the log is the log's). Samples with no frame of ours go to node's parts.
 */
const ours: Array<[string, (frame: CallFrame) => boolean]> = [
  ['SQLite: insert and commit (native, in the transaction body)', (f) => file(f, 'better-sqlite3/lib/methods/transaction.js') || (file(f, 'log/sqlite.js') && f.functionName === '' && isWriteGroup(f))],
  ['event log: encoding the batch', (f) => file(f, 'log/batch.js')],
  ['event log: append bookkeeping (JS)', (f) => /\/log\/(sqlite|validate|partitioner)\.js$/.test(f.url)],
  ['metrics (prom-client)', (f) => f.url.includes('prom-client') || file(f, 'server/metrics.js')],
  ['intake: locating and splicing the event text', (f) => file(f, 'intake/splice.js')],
  ['intake: enrichment (meta.id, times)', (f) => f.functionName === 'enrich' || f.functionName === 'receivedIso' || f.functionName === 'randomUUID'],
  ['intake: validation (ajv)', (f) => (f.url === '' && /^validate\d+$/.test(f.functionName)) || f.url.includes('/schemas/') || f.url.includes('/ajv')],
  ['body: UTF-8 decode, JSON.parse, depth check (bare does this)', (f) => file(f, 'intake/body.js')],
  ['HTTP: reading the body, writing the answer (bare does this)', (f) => file(f, 'intake/listener.js') || file(f, 'core/http.js')],
  ['intake: the rest of the pipeline (lookups, checks, results)', (f) => f.url.includes('/intake/') || f.url.includes('/core/')],
]
const theirs: Array<[string, (frame: CallFrame) => boolean]> = [
  ['idle (waiting for requests or the group commit)', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['node: http, sockets, timers (bare does this)', (f) => f.url.startsWith('node:') || /^write(Latin1|Utf8|v)String$|^writev$/.test(f.functionName)],
  ['V8 and native code without a JS frame', (f) => f.functionName === '(program)'],
]

// The body of the log's writeGroup transaction is an anonymous function in log/sqlite.js: it
// is told apart by the line it starts on, found once per profile (see `categorize`).
let writeGroupLines = new Set<number>()
function isWriteGroup(frame: CallFrame): boolean {
  return writeGroupLines.has(frame.lineNumber)
}

/** Samples per part, and per function (own time), within [from, to] (profile microseconds). */
export function categorize(profile: Profile, from: number, to: number) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // An anonymous function of log/sqlite.js called by better-sqlite3's transaction wrapper is the transaction body.
  writeGroupLines = new Set()
  for (const n of profile.nodes) {
    if (!file(n.callFrame, 'log/sqlite.js') || n.callFrame.functionName !== '') continue
    const up = parent.get(n.id)
    if (up !== undefined && file(byId.get(up)!.callFrame, 'better-sqlite3/lib/methods/transaction.js')) writeGroupLines.add(n.callFrame.lineNumber)
  }
  const parts = new Map<string, number>()
  const self = new Map<string, number>()
  let samples = 0
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!
    if (t < from || t > to) continue
    samples++
    const leaf = profile.samples[i]!
    const leafFrame = byId.get(leaf)!.callFrame
    const where = `${leafFrame.functionName || '(anonymous)'} ${leafFrame.url.split('/').slice(-2).join('/')}${leafFrame.url === '' ? '' : `:${leafFrame.lineNumber + 1}`}`
    self.set(where, (self.get(where) ?? 0) + 1)
    let part: string | undefined
    for (const rules of [ours, theirs]) {
      for (let id: number | undefined = leaf; id !== undefined && part === undefined; id = parent.get(id)) {
        const frame = byId.get(id)!.callFrame
        part = rules.find(([, test]) => test(frame))?.[0]
      }
      if (part !== undefined) break
    }
    part ??= 'other'
    parts.set(part, (parts.get(part) ?? 0) + 1)
  }
  return { samples, parts, self }
}

async function run(work: string, options: Options): Promise<number> {
  console.log(machineNotes())
  console.log(`settings: batches of ${options.batch}, ${options.connections} connections, ${options.warmup} s warm-up + ${options.duration} s measured, node --cpu-prof on the server`)
  const bodies = writeBodies(work, [options.batch])
  const { configFile } = writeBundledConfig(join(work, 'server'))
  const port = await freePort()
  const profiles = join(work, 'cpuprof')
  const server = track(
    spawnPinned(0, process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profiles}`, ...serveArgs(), '--config', configFile, '--port', String(port)], {
      cwd: repoRoot,
      env: serverEnv(),
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  )
  const url = `http://127.0.0.1:${port}`
  await waitUntilAnswering(server, `${url}/healthz`, 'eventplane serve')
  const request = { method: 'POST', bodyFile: bodies.files.get(options.batch)!, headers: { 'content-type': 'application/json' } }
  const p = pinned(1, process.execPath, [join(benchDir, 'load.mjs'), `${url}/v1/events`, String(options.connections), String(options.warmup), String(options.duration), JSON.stringify(request)])
  const load = track(spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  let started = 0
  let ended = 0
  let result: { requestsPerSecond: number; statusCodes: Record<string, number> } | undefined
  load.on('message', (m: { type: string; result?: typeof result }) => {
    if (m.type === 'measure-start') started = performance.now()
    if (m.type === 'measure-end') {
      ended = performance.now()
      result = m.result
    }
  })
  await exited(load)
  await stop(server, 20_000)
  const exitedAt = performance.now()
  if (result === undefined || started === 0) throw new Error('the load generator did not report a measured run')
  const other = Object.entries(result.statusCodes).filter(([code]) => code !== '201')
  if (other.length > 0) throw new Error(`answers other than 201 under load: ${JSON.stringify(result.statusCodes)}`)
  const main = readdirSync(profiles).find((name) => /\.0\.\d+\.cpuprofile$/.test(name))
  if (main === undefined) throw new Error(`no profile of the main thread in ${profiles}: ${readdirSync(profiles).join(', ')}`)
  const profile = JSON.parse(readFileSync(join(profiles, main), 'utf8')) as Profile
  // The profile ends when the server exits: the measured window is placed back from there.
  const from = profile.endTime - (exitedAt - started) * 1000
  const to = profile.endTime - (exitedAt - ended) * 1000
  const { samples, parts, self } = categorize(profile, from, to)
  const eventsPerSecond = result.requestsPerSecond * options.batch
  const usPerEvent = 1e6 / eventsPerSecond
  console.log(`measured: ${thousands(result.requestsPerSecond)} req/s = ${thousands(eventsPerSecond)} events/s under the profiler, so ${fixed(usPerEvent, 2)} µs of the core per event; ${thousands(samples)} samples in the window`)
  console.log()
  const sorted = [...parts].sort((a, b) => b[1] - a[1])
  console.log(table(['part', 'share', 'µs/event'], sorted.map(([part, n]) => [part, `${fixed((100 * n) / samples, 1)} %`, fixed((n / samples) * usPerEvent, 2)]), [false, true, true]))
  console.log()
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, options.top)
  console.log(table(['function (own time)', 'share', 'µs/event'], top.map(([where, n]) => [where, `${fixed((100 * n) / samples, 1)} %`, fixed((n / samples) * usPerEvent, 2)]), [false, true, true]))
  return 0
}
