/**
 * pipe: events/s of `eventplane pipe` between an NDJSON file and the embedded event log, both
 * ways, against a bare Node process that reads the same file with node:readline and
 * `JSON.parse`s each line (the limit for line-delimited JSON in Node), alternating in the same
 * run. Every side is a new process pinned to core 0 and timed from spawn to exit, so start-up
 * counts on both sides; the file is large enough that it does not decide the ratio.
 */
import { createHash, randomUUID } from 'node:crypto'
import { closeSync, createReadStream, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { testEvent } from './intake.ts'
import {
  backgroundLoadPercent,
  benchDir,
  exited,
  fixed,
  inTempDir,
  machineBusySeconds,
  machineNotes,
  median,
  parseFlags,
  positiveInt,
  reapedChildrenCpuSeconds,
  repoRoot,
  saveResults,
  seededRandom,
  serverEnv,
  spawnPinned,
  table,
  thousands,
  track,
  unpinnedWarning,
  writeBundledConfig,
} from './lib.ts'

export const usage = `npm run bench -- pipe [--rounds N] [--events N]

Writes --events (default 1,000,000) eventplane/test/event events to an NDJSON file, then for --rounds (5)
rounds, each with a fresh data_dir (an empty SQLite event log, event_log.sync normal), times
three kinds of new process, each pinned to core 0, from spawn to exit:
  file → embedded: eventplane pipe FILE embedded://datacenter1.test.event --validate
  embedded → file: eventplane pipe embedded://datacenter1.test.event file://OUT?rotate_bytes=… --no-follow
  bare:            node bench/bare-ndjson.mjs FILE (node:readline, JSON.parse per line)
rotate_bytes is above the input's size, so that OUT stays one file. A bare run goes next to
each pipe run (before it in odd rounds, after it in even ones). Prints events/s of each and the
ratios pipe/bare; targets: file → embedded ≥ 0.3, embedded → file ≥ 0.5. Every run is
checked: exit code 0, the pipe's summary line says every event read and written (none
skipped), the bare process parsed every line, and OUT is the input file byte for byte. Exits 1
when a check fails or a target is not met.`

const topic = 'datacenter1.test.event'
const targets = { in: 0.3, out: 0.5 } as const

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { rounds: { type: 'string' }, events: { type: 'string' } })
  const rounds = positiveInt(values.rounds, 'rounds', 5)
  const total = positiveInt(values.events, 'events', 1_000_000)
  return () => inTempDir('pipe', (dir) => run(dir, rounds, total))
}

/** One process run: wall time from spawn to exit, its CPU time, and what other processes used meanwhile. */
interface Timed {
  seconds: number
  code: number | string
  stdout: string
  stderr: string
  /** CPU seconds of the process (user + system, all its threads). */
  cpu: number
  /** Percent of one core used meanwhile by other processes than it and the harness. */
  other: number
}

interface Round {
  bareIn: Timed
  pipeIn: Timed
  bareOut: Timed
  pipeOut: Timed
  /** events/s by the pipe's own summary line: its work without Node's start-up and exit. */
  ownIn: number
  ownOut: number
}

async function run(dir: string, rounds: number, total: number): Promise<number> {
  console.log(machineNotes('every timed process on core 0, the benchmark harness on core 1'))
  console.log(`background load before the run: ${fixed(await backgroundLoadPercent(), 0)} % of one core used by other processes`)
  const input = join(dir, 'events.ndjson')
  const written = writeEvents(input, total)
  const bin = join(repoRoot, 'dist/cli/bin.js')
  // Generous: a pipe slower than 2,000 events/s is broken, not slow.
  const timeoutMs = 60_000 + total / 2
  const bare = () => timeProcess([join(benchDir, 'bare-ndjson.mjs'), input], timeoutMs)
  const pipeIn = (configFile: string, extra: string[] = []) => timeProcess([bin, 'pipe', input, `embedded://${topic}`, '--validate', '--config', configFile, ...extra], timeoutMs)
  // Past rotate_bytes (256 MiB by default) the output file would be renamed aside and a new one
  // started: above the input's size, the copy stays one file, to compare with the input.
  const pipeOut = (configFile: string, out: string) =>
    timeProcess([bin, 'pipe', `embedded://${topic}`, `file://${out}?rotate_bytes=${Math.max(1024, 2 * written.bytes)}`, '--no-follow', '--config', configFile], timeoutMs)
  console.log(
    `input: ${thousands(total)} eventplane/test/event events (meta.id, meta.dt, dt, a 20–40 character "test" text, 2–3 test_map entries), ` +
      `${thousands(written.bytes / total)} bytes each on average, ${fixed(written.bytes / 2 ** 20, 1)} MiB of NDJSON`,
  )
  console.log(`settings: ${rounds} rounds; the bundled schemas, a fresh data_dir (empty SQLite log, event_log.sync normal) per round; the pipe's default batch (1000 events); the output file's rotate_bytes twice the input's size, so that the copy stays one file`)

  // Unmeasured: the first runs after a build read dist/ and node_modules from disk, and the
  // input file's pages may not all be cached yet.
  const warm = writeBundledConfig(join(dir, 'warm-up'))
  checkBare('warm-up bare', await bare(), total)
  const warmIn = await pipeIn(warm.configFile, ['--limit', '20000'])
  if (warmIn.code !== 0) throw new Error(`warm-up file → embedded: exit ${warmIn.code}\n${tail(warmIn.stderr)}`)
  const warmOut = await pipeOut(warm.configFile, join(dir, 'warm-up', 'out.ndjson'))
  if (warmOut.code !== 0) throw new Error(`warm-up embedded → file: exit ${warmOut.code}\n${tail(warmOut.stderr)}`)
  rmSync(join(dir, 'warm-up'), { recursive: true, force: true })

  const measured: Round[] = []
  const notes = new Set<string>()
  for (let round = 1; round <= rounds; round++) {
    const roundDir = join(dir, `round-${round}`)
    const { configFile } = writeBundledConfig(roundDir)
    const out = join(roundDir, 'out.ndjson')
    // Alternating which goes first, so that neither always follows the other's traces in the caches.
    const bareFirst = round % 2 === 1
    const pair = async (pipe: () => Promise<Timed>) => {
      const first = bareFirst ? await bare() : await pipe()
      const second = bareFirst ? await pipe() : await bare()
      return bareFirst ? { bare: first, pipe: second } : { bare: second, pipe: first }
    }
    const inward = await pair(() => pipeIn(configFile))
    const outward = await pair(() => pipeOut(configFile, out))
    checkBare(`round ${round} bare`, inward.bare, total)
    checkBare(`round ${round} bare`, outward.bare, total)
    const ownIn = checkPipe(`round ${round} file → embedded`, inward.pipe, total, notes)
    const ownOut = checkPipe(`round ${round} embedded → file`, outward.pipe, total, notes)
    const copy = await digest(out)
    if (copy.lines !== total) throw new Error(`round ${round} embedded → file: ${out} has ${copy.lines} lines, not ${total}`)
    if (copy.sha256 !== written.sha256) throw new Error(`round ${round} embedded → file: ${out} has ${total} lines but is not the input file (sha256 ${copy.sha256}, input ${written.sha256})`)
    rmSync(roundDir, { recursive: true, force: true })
    measured.push({ bareIn: inward.bare, pipeIn: inward.pipe, bareOut: outward.bare, pipeOut: outward.pipe, ownIn, ownOut })
  }

  console.log(
    `checked in every round: every process exited 0; both pipes' summary lines say ${thousands(total)} read and ${thousands(total)} written, nothing skipped, "the source ended"; ` +
      `the bare process parsed ${thousands(total)} JSON objects; the output file has ${thousands(total)} lines and is the input file byte for byte (sha256)`,
  )
  for (const note of notes) console.log(`note: ${note}`)
  console.log()

  const rate = (t: Timed) => total / t.seconds
  const startup = (t: Timed, own: number) => t.seconds - total / own
  const other = (r: Round) => {
    const runs = [r.bareIn, r.pipeIn, r.bareOut, r.pipeOut]
    return runs.reduce((sum, t) => sum + t.other * t.seconds, 0) / runs.reduce((sum, t) => sum + t.seconds, 0)
  }
  const row = (label: string, v: { bareIn: number; pipeIn: number; ratioIn: number; bareOut: number; pipeOut: number; ratioOut: number }, rest: string[]) => [
    label,
    thousands(v.bareIn),
    thousands(v.pipeIn),
    fixed(v.ratioIn, 3),
    thousands(v.bareOut),
    thousands(v.pipeOut),
    fixed(v.ratioOut, 3),
    ...rest,
  ]
  const perRound = measured.map((r) => ({
    bareIn: rate(r.bareIn),
    pipeIn: rate(r.pipeIn),
    ratioIn: rate(r.pipeIn) / rate(r.bareIn),
    bareOut: rate(r.bareOut),
    pipeOut: rate(r.pipeOut),
    ratioOut: rate(r.pipeOut) / rate(r.bareOut),
  }))
  const rows = measured.map((r, i) =>
    row(String(i + 1), perRound[i]!, [
      `${thousands(r.ownIn)} / ${thousands(r.ownOut)}`,
      `${fixed(startup(r.pipeIn, r.ownIn), 2)} / ${fixed(startup(r.pipeOut, r.ownOut), 2)}`,
      [r.bareIn, r.pipeIn, r.bareOut, r.pipeOut].map((t) => fixed((t.cpu / t.seconds) * 100, 0)).join(' / '),
      fixed(other(r), 0),
    ]),
  )
  const med = (key: keyof (typeof perRound)[number]) => median(perRound.map((v) => v[key]))
  const medians = { bareIn: med('bareIn'), pipeIn: med('pipeIn'), ratioIn: med('ratioIn'), bareOut: med('bareOut'), pipeOut: med('pipeOut'), ratioOut: med('ratioOut') }
  rows.push(
    row('median', medians, [
      `${thousands(median(measured.map((r) => r.ownIn)))} / ${thousands(median(measured.map((r) => r.ownOut)))}`,
      `${fixed(median(measured.map((r) => startup(r.pipeIn, r.ownIn))), 2)} / ${fixed(median(measured.map((r) => startup(r.pipeOut, r.ownOut))), 2)}`,
      '',
      '',
    ]),
  )
  console.log(`events/s = ${thousands(total)} events / wall time of the process from spawn to exit; ratio = pipe / bare of the same round`)
  console.log()
  console.log(
    table(
      [
        'round',
        'bare events/s',
        'file → embedded --validate events/s',
        'ratio',
        'bare events/s',
        'embedded → file events/s',
        'ratio',
        "pipe's own events/s in / out",
        'start-up + exit s in / out',
        'CPU % bare / in / bare / out',
        'other CPU %',
      ],
      rows,
    ),
  )
  const ownRatioIn = median(measured.map((r) => r.ownIn / rate(r.bareIn)))
  const ownRatioOut = median(measured.map((r) => r.ownOut / rate(r.bareOut)))
  const metIn = medians.ratioIn >= targets.in
  const metOut = medians.ratioOut >= targets.out
  console.log(`
pipe's own events/s: from its summary line (read events / the time inside the pipe), without Node's start-up, module loading and exit; start-up + exit = wall time − events / that rate
CPU %: the process's CPU time (all threads) / its wall time; under 100: it waited (for fsync, or for the core, taken by another process); other CPU %: percent of one core used by other processes during the timed runs (200 = both cores)
median ratio file → embedded --validate / bare: ${fixed(medians.ratioIn, 3)}; target ≥ ${targets.in}: ${metIn ? 'met' : 'NOT MET'}
median ratio embedded → file / bare: ${fixed(medians.ratioOut, 3)}; target ≥ ${targets.out}: ${metOut ? 'met' : 'NOT MET'}
(without the pipe's start-up and exit, its own events/s against the bare process's: median ratios ${fixed(ownRatioIn, 3)} in, ${fixed(ownRatioOut, 3)} out; not what the targets are about)${unpinnedWarning()}`)
  const results = measured.map((r) => ({ ...r, bareIn: strip(r.bareIn), pipeIn: strip(r.pipeIn), bareOut: strip(r.bareOut), pipeOut: strip(r.pipeOut) }))
  console.log(`raw results: ${saveResults('pipe', { total, bytes: written.bytes, rounds: results, medians, ownRatios: { in: ownRatioIn, out: ownRatioOut }, targets })}`)
  return metIn && metOut ? 0 : 1
}

/** Writes `total` valid eventplane/test/event events, one JSON text per line; their size and sha256. */
function writeEvents(path: string, total: number): { bytes: number; sha256: string } {
  const random = seededRandom(total)
  const now = Date.now()
  const hash = createHash('sha256')
  let bytes = 0
  const fd = openSync(path, 'w')
  try {
    for (let from = 0; from < total; from += 10_000) {
      const lines: string[] = []
      for (let i = from; i < Math.min(total, from + 10_000); i++) {
        const event = testEvent(i, random, now)
        // As an intake would have stored them: an id, and received a little after they happened.
        event['meta'] = { ...(event['meta'] as object), id: randomUUID(), dt: new Date(now - i * 37 + 120).toISOString() }
        lines.push(JSON.stringify(event))
      }
      const chunk = Buffer.from(lines.join('\n') + '\n', 'utf8')
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at)
      hash.update(chunk)
      bytes += chunk.length
    }
  } finally {
    closeSync(fd)
  }
  return { bytes, sha256: hash.digest('hex') }
}

/** `node args` pinned to core 0 with its output collected, timed from spawn to exit; killed after `timeoutMs`. */
async function timeProcess(args: string[], timeoutMs: number): Promise<Timed> {
  const machine = machineBusySeconds()
  const children = reapedChildrenCpuSeconds()
  const self = process.cpuUsage()
  const started = performance.now()
  const child = track(spawnPinned(0, process.execPath, args, { env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, timeoutMs)
  const code = await exited(child)
  const seconds = (performance.now() - started) / 1000
  const cpu = reapedChildrenCpuSeconds() - children
  const harness = process.cpuUsage(self)
  // Tick counting makes this ±1–2 %: a slightly negative value means none.
  const other = Math.max(0, ((machineBusySeconds() - machine - cpu - (harness.user + harness.system) / 1e6) / seconds) * 100)
  const result = { seconds, code, cpu, other }
  clearTimeout(timer)
  await closed
  if (timedOut) throw new Error(`${args.map((a) => a.replace(repoRoot, '')).join(' ')}: still running after ${timeoutMs / 1000} s, killed\n${tail(stderr)}`)
  return { ...result, stdout, stderr }
}

function checkBare(what: string, run: Timed, total: number): void {
  if (run.code !== 0) throw new Error(`${what}: exit ${run.code}\n${tail(run.stderr)}`)
  if (run.stdout.trim() !== String(total)) throw new Error(`${what}: parsed ${JSON.stringify(run.stdout.trim())} JSON objects, not ${total}`)
}

/**
 * Checks a pipe run: exit 0 and a summary line saying every event read and written, nothing
 * skipped ("pipe: 1,000 read, 1,000 written in 0.4 s (2,500 events/s): the source ended").
 * Returns the events/s the summary gives. Other lines on stderr are collected in `notes`.
 */
function checkPipe(what: string, run: Timed, total: number, notes: Set<string>): number {
  const fail = (why: string) => new Error(`${what}: ${why}\n${tail(run.stderr)}`)
  if (run.code !== 0) throw fail(`exit ${run.code}`)
  const lines = run.stderr.split('\n').filter((l) => l.trim() !== '')
  const summary = lines.map((l) => /^pipe: (.+) in [\d.]+ s \(([\d,]+) events\/s\): (.+)$/.exec(l)).find((m) => m !== null)
  if (summary === undefined) throw fail('no summary line ("pipe: … read, … written in …") on stderr')
  const counts = Object.fromEntries(
    summary[1]!.split(', ').map((part) => {
      const [n = '', key = part] = part.split(' ')
      return [key, Number(n.replace(/,/g, ''))]
    }),
  )
  const expected = { read: total, written: total }
  if (JSON.stringify(counts) !== JSON.stringify(expected)) throw fail(`the summary says ${summary[1]}, not ${thousands(total)} read and ${thousands(total)} written with nothing skipped`)
  if (summary[3] !== 'the source ended') throw fail(`the pipe stopped because ${summary[3]}`)
  for (const line of lines) if (!line.startsWith('pipe: ')) notes.add(`${what.replace(/^round \d+ /, '')} wrote on stderr: ${line}`)
  return Number(summary[2]!.replace(/,/g, ''))
}

/** Lines (LF) and sha256 of a file. */
async function digest(path: string): Promise<{ lines: number; sha256: string }> {
  const hash = createHash('sha256')
  let lines = 0
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk)
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
  }
  return { lines, sha256: hash.digest('hex') }
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-5).join('\n')
}

function strip(t: Timed): Omit<Timed, 'stdout' | 'stderr'> {
  return { seconds: t.seconds, code: t.code, cpu: t.cpu, other: t.other }
}
