/**
 * schema-get: requests per second of a GET of a cached, versioned schema
 * (`/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0.yaml` from the bundled config), served
 * by the compiled `eventplane serve` on one core, against a bare node:http responder that
 * answers every request with the same bytes and headers (bench/bare-server.mjs). The two run
 * alternately (A, B, A, B) in the same invocation; the result is the ratio per pair and its
 * median. See ../shared/reference/bench-method.md.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  backgroundLoadPercent,
  benchDir,
  cpuSeconds,
  exited,
  fixed,
  freePort,
  hasTaskset,
  machineBusySeconds,
  machineNotes,
  median,
  nonNegative,
  peakRssKiB,
  pinned,
  positiveInt,
  repoRoot,
  saveResults,
  sleep,
  spawnPinned,
  stop,
  table,
  thousands,
  unpinnedWarning,
  waitUntilAnswering,
  parseFlags,
  serveArgs,
} from './lib.ts'

export const usage = `npm run bench -- schema-get [--rounds N] [--duration S] [--warmup S] [--connections N]

GET ${'/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0.yaml'} (bundled config) on one core
(taskset -c 0), load from autocannon on the other core (taskset -c 1), against a bare node:http
server sending the same bytes and headers. Alternates eventplane, bare, eventplane, bare, …

  --rounds N       pairs (eventplane + bare) to run (default 3)
  --duration S     measured seconds per run (default 15)
  --warmup S       warm-up seconds per run, not measured (default 5)
  --connections N  autocannon connections (default 10)`

const schemaPath = '/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0.yaml'
const schemaFile = join(repoRoot, 'defaults/schemas/jsonschema/eventplane/test/event/1.0.0.yaml')
/** Response headers copied from the real response to the bare server. */
const copiedHeaders = ['content-type', 'etag', 'cache-control', 'vary']

interface Options {
  rounds: number
  duration: number
  warmup: number
  connections: number
}

interface LoadSummary {
  requestsPerSecond: number
  requestsTotal: number
  latencyP50: number
  latencyP99: number
  autocannonP50: number
  autocannonP99: number
  latencyAverage: number
  bytesPerSecond: number
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

interface Measurement {
  round: number
  server: ServerKind
  load: LoadSummary
  warmup?: LoadSummary
  cpuPercent: number
  /** CPU% of the load generator over the same window: near 100 means it, not the server, was the limit. */
  loadCpuPercent: number
  /** CPU% (of one core) used by everything else on the machine over the same window. */
  otherCpuPercent: number
  peakRssMiB: number
  windowS: number
}

type ServerKind = 'eventplane' | 'bare'
const label: Record<ServerKind, string> = { eventplane: 'eventplane serve', bare: 'bare node:http' }

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, {
        rounds: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string' },
      } as const)
  const options: Options = {
    rounds: positiveInt(values.rounds, 'rounds', 3),
    duration: positiveInt(values.duration, 'duration', 15),
    warmup: nonNegative(values.warmup, 'warmup', 5),
    connections: positiveInt(values.connections, 'connections', 10),
  }
  return () => run(options)
}

async function run(options: Options): Promise<number> {
  console.log(machineNotes())
  console.log(
    `settings: ${options.rounds} pairs, ${options.warmup} s warm-up + ${options.duration} s measured per run, ` +
      `${options.connections} connections, keep-alive, GET ${schemaPath}`,
  )
  const background = await backgroundLoadPercent()
  console.log(`background load before the run: ${fixed(background, 0)} % of one core used by other processes`)
  if (background > 20) console.log('WARNING: the machine is busy with other work: expect noisy numbers (see the "other CPU %" column)')
  const expected = readFileSync(schemaFile)
  const work = mkdtempSync(join(tmpdir(), 'eventplane-bench-'))
  try {
    // One real response first: it must be a 200 with the file's bytes, and its headers are what
    // the bare server sends.
    const probe = await startServer('eventplane', undefined)
    let headers: Record<string, string>
    try {
      headers = await checkResponse(probe.url, expected, undefined)
    } finally {
      await stop(probe.child)
    }
    console.log(`checked: eventplane answers 200 with the ${expected.length} bytes of ${schemaFile.slice(repoRoot.length)}`)
    console.log(`headers copied to the bare server: ${JSON.stringify(headers)}`)
    const bodyFile = join(work, 'body')
    writeFileSync(bodyFile, expected)
    const bare = { bodyFile, headers }

    const measurements: Measurement[] = []
    for (let round = 1; round <= options.rounds; round++) {
      for (const kind of ['eventplane', 'bare'] as const) {
        process.stdout.write(`round ${round}/${options.rounds}: ${label[kind]} … `)
        const m = await measure(kind, round, options, expected, kind === 'bare' ? bare : undefined)
        measurements.push(m)
        console.log(
          `${thousands(m.load.requestsPerSecond)} req/s, p50 ${fixed(m.load.latencyP50, 2)} ms, p99 ${fixed(m.load.latencyP99, 2)} ms, ` +
            `server CPU ${fixed(m.cpuPercent, 0)} %, load generator CPU ${fixed(m.loadCpuPercent, 0)} %, other processes ${fixed(Math.max(0, m.otherCpuPercent), 0)} %, peak RSS ${fixed(m.peakRssMiB, 1)} MiB`,
        )
      }
    }
    report(measurements, options)
    return measurements.some((m) => failures(m.load) > 0) ? 1 : 0
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

interface Started {
  child: ChildProcess
  url: string
}

async function startServer(kind: ServerKind, bare: { bodyFile: string; headers: Record<string, string> } | undefined): Promise<Started> {
  const port = await freePort()
  const args =
    kind === 'eventplane'
      ? [...serveArgs(), '--port', String(port)]
      : [join(benchDir, 'bare-server.mjs'), String(port), bare!.bodyFile, JSON.stringify(bare!.headers)]
  const child = spawnPinned(0, process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, EVENTPLANE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}${schemaPath}`
  await waitUntilAnswering(child, url, label[kind])
  return { child, url }
}

/** The response must be 200 with exactly the schema file's bytes (and, for the bare server, the same headers). */
async function checkResponse(url: string, expected: Buffer, headers: Record<string, string> | undefined): Promise<Record<string, string>> {
  const response = await fetch(url)
  const body = Buffer.from(await response.arrayBuffer())
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}, not 200: ${body.toString('utf8').slice(0, 300)}`)
  if (!body.equals(expected)) throw new Error(`${url} answered ${body.length} bytes that differ from ${schemaFile} (${expected.length} bytes)`)
  const got = Object.fromEntries(copiedHeaders.flatMap((h) => (response.headers.has(h) ? [[h, response.headers.get(h)!]] : [])))
  if (headers !== undefined && JSON.stringify(got) !== JSON.stringify(headers)) {
    throw new Error(`${url} headers ${JSON.stringify(got)} differ from the real response's ${JSON.stringify(headers)}`)
  }
  return got
}

async function measure(
  kind: ServerKind,
  round: number,
  options: Options,
  expected: Buffer,
  bare: { bodyFile: string; headers: Record<string, string> } | undefined,
): Promise<Measurement> {
  const server = await startServer(kind, bare)
  const pid = server.child.pid!
  try {
    await checkResponse(server.url, expected, bare?.headers)
    const p = pinned(1, process.execPath, [
      join(benchDir, 'load.mjs'),
      server.url,
      String(options.connections),
      String(options.warmup),
      String(options.duration),
    ])
    const load = spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let warmup: LoadSummary | undefined
    type Snapshot = { cpu: number; loadCpu: number; machine: number; self: number; at: number }
    const snapshot = (): Snapshot => {
      const self = process.cpuUsage()
      return { cpu: cpuSeconds(pid), loadCpu: cpuSeconds(load.pid!), machine: machineBusySeconds(), self: (self.user + self.system) / 1e6, at: performance.now() }
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
    // The last IPC message may be read just after the exit is seen.
    await Promise.race([endSeen, sleep(2000)])
    if (code !== 0 || start === undefined || end === undefined) throw new Error(`load generator failed (exit ${code})`)
    const windowS = (end.at - start.at) / 1000
    return {
      round,
      server: kind,
      load: end.result,
      ...(warmup ? { warmup } : {}),
      cpuPercent: ((end.cpu - start.cpu) / windowS) * 100,
      loadCpuPercent: ((end.loadCpu - start.loadCpu) / windowS) * 100,
      otherCpuPercent: ((end.machine - start.machine - (end.cpu - start.cpu) - (end.loadCpu - start.loadCpu) - (end.self - start.self)) / windowS) * 100,
      peakRssMiB: peakRssKiB(pid) / 1024,
      windowS,
    }
  } finally {
    await stop(server.child)
  }
}

function failures(load: LoadSummary): number {
  return load.errors + load.timeouts + load.non2xx
}

function report(measurements: Measurement[], options: Options): void {
  const rows = measurements.map((m) => [
    String(m.round),
    label[m.server],
    thousands(m.load.requestsPerSecond),
    fixed(m.load.latencyP50, 2),
    fixed(m.load.latencyP99, 2),
    fixed(m.cpuPercent, 0),
    fixed(m.peakRssMiB, 1),
    fixed(m.loadCpuPercent, 0),
    // Tick counting makes this ±1–2 %: a slightly negative value means none.
    fixed(Math.max(0, m.otherCpuPercent), 0),
    String(failures(m.load)),
  ])
  console.log(
    '\n' +
      table(
        ['round', 'server', 'req/s', 'p50 ms', 'p99 ms', 'server CPU %', 'server peak RSS MiB', 'load gen CPU %', 'other CPU %', 'errors+non-2xx'],
        rows,
        [false, false, true, true, true, true, true, true, true, true],
      ),
  )

  const pairs: { round: number; eventplane: number; bare: number; ratio: number }[] = []
  for (let round = 1; round <= options.rounds; round++) {
    const a = measurements.find((m) => m.round === round && m.server === 'eventplane')
    const b = measurements.find((m) => m.round === round && m.server === 'bare')
    if (a && b) pairs.push({ round, eventplane: a.load.requestsPerSecond, bare: b.load.requestsPerSecond, ratio: a.load.requestsPerSecond / b.load.requestsPerSecond })
  }
  const medianRatio = median(pairs.map((p) => p.ratio))
  console.log(
    '\n' +
      table(
        ['pair', 'eventplane req/s', 'bare req/s', 'ratio eventplane/bare'],
        [
          ...pairs.map((p) => [String(p.round), thousands(p.eventplane), thousands(p.bare), fixed(p.ratio, 3)]),
          ['median', thousands(median(pairs.map((p) => p.eventplane))), thousands(median(pairs.map((p) => p.bare))), fixed(medianRatio, 3)],
        ],
        [false, true, true, true],
      ),
  )
  console.log(
    `\nmedian ratio eventplane/bare: ${fixed(medianRatio, 3)} (eventplane serves ${fixed(medianRatio * 100, 1)} % of the bare responder's req/s${hasTaskset() ? ' on one core' : ''})` +
      unpinnedWarning(),
  )
  const bad = measurements.filter((m) => failures(m.load) > 0)
  if (bad.length > 0) console.log(`WARNING: ${bad.length} run(s) had errors, timeouts or non-2xx responses: those numbers are not valid`)
  const lowCpu = measurements.filter((m) => m.cpuPercent < 90)
  const busy = measurements.filter((m) => m.otherCpuPercent > 20)
  if (busy.length > 0) console.log(`WARNING: other processes used over 20 % of a core during ${busy.length} run(s): those numbers are disturbed`)
  const busyGenerator = measurements.filter((m) => m.loadCpuPercent > 90)
  if (busyGenerator.length > 0) {
    console.log(
      `note: the load generator was over 90 % busy in ${busyGenerator.length} run(s) (${[...new Set(busyGenerator.map((m) => label[m.server]))].join(', ')}): ` +
        `there one autocannon process on one core is about as fast as the server, so that req/s is a floor of what the server can do`,
    )
  }
  if (lowCpu.length > 0) console.log(`note: ${lowCpu.length} run(s) kept the server core under 90 % busy: the load generator may have been the limit`)
  console.log(`raw results: ${saveResults('schema-get', { options, measurements, pairs, medianRatio }).slice(repoRoot.length)}`)
}
