/**
 * Helpers shared by the benchmarks: pinning to a core, reading a process's CPU time and peak
 * memory from /proc, child processes, medians and the tables the benchmarks print.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import yaml from 'js-yaml'

/** The repository root (the folder holding package.json). */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url))
export const benchDir = fileURLToPath(new URL('.', import.meta.url))

let tasksetChecked: boolean | undefined
/** Whether `taskset` (util-linux) can pin processes here; warns loudly, once, when it cannot. */
export function hasTaskset(): boolean {
  if (tasksetChecked === undefined) {
    const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    tasksetChecked = probe.status === 0
    if (!tasksetChecked) {
      const line = '!'.repeat(78)
      console.error(
        `${line}\n!! WARNING: taskset is not available (${probe.error?.message ?? `exit ${probe.status}`}).\n` +
          `!! Running UNPINNED: server and load generator share the cores, so "per core" numbers\n` +
          `!! are not what they say and the results are noisier. Install util-linux for real numbers.\n${line}`,
      )
    }
  }
  return tasksetChecked
}

/** `command args` pinned to one core with taskset, or unpinned when taskset is missing. */
export function pinned(core: number, command: string, args: string[]): { command: string; args: string[] } {
  return hasTaskset() ? { command: 'taskset', args: ['-c', String(core), command, ...args] } : { command, args }
}

/** Spawns `command args` pinned to `core` (taskset execs, so the child's pid is the pinned process). */
export function spawnPinned(core: number, command: string, args: string[], options: SpawnOptions): ChildProcess {
  const p = pinned(core, command, args)
  return spawn(p.command, p.args, options)
}

/** Resolves with the exit code (or signal name) when the child exits. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode)
  if (child.signalCode !== null) return Promise.resolve(child.signalCode)
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
}

/** SIGTERM, then SIGKILL if the child has not exited after `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited(child)
  clearTimeout(timer)
}

let clockTicks: number | undefined
/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
    const value = Number(out.stdout?.trim())
    clockTicks = out.status === 0 && value > 0 ? value : 100
  }
  return clockTicks
}

/** CPU time (user + system, all threads) a process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces), starting at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / clockTicksPerSecond()
}

/**
 * CPU time (user + system) of this process's children that have exited and been waited for, in
 * seconds (cutime + cstime of /proc/self/stat): read before and after a child that runs alone,
 * the difference is exactly that child's CPU, though it is gone by then.
 */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[13]) + Number(fields[14])) / clockTicksPerSecond()
}

/**
 * CPU time spent busy (anything but idle and iowait) since boot, in seconds: all cores, or
 * one core when `core` is given.
 */
export function machineBusySeconds(core?: number): number {
  const name = core === undefined ? 'cpu' : `cpu${core}`
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(name + ' '))
  if (line === undefined) return NaN
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is counted in user)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number)
  return (user + nice + system + irq + softirq + steal) / clockTicksPerSecond()
}

/**
 * How busy the machine is without us: percent of one core used by other processes over
 * `ms` (200 = both cores of a 2-core machine). Benchmarks print it: a shared machine running
 * someone's test suite gives noisy numbers.
 */
export async function backgroundLoadPercent(ms = 2000): Promise<number> {
  const before = machineBusySeconds()
  const self = process.cpuUsage()
  await sleep(ms)
  const used = process.cpuUsage(self)
  // Tick counting makes this ±1–2 %: a slightly negative value means none.
  return Math.max(0, ((machineBusySeconds() - before - (used.user + used.system) / 1e6) / (ms / 1000)) * 100)
}

/** The closing warning of an unpinned run (empty when taskset pinned everything). */
export function unpinnedWarning(): string {
  return hasTaskset() ? '' : '\nWARNING: UNPINNED run (taskset missing): these are not the one-core numbers this benchmark is meant to give'
}

/** Peak resident set size (VmHWM) of a running process, in KiB. */
export function peakRssKiB(pid: number): number {
  return statusKiB(pid, 'VmHWM')
}

/** Resident set size now (VmRSS) of a running process, in KiB. */
export function rssKiB(pid: number): number {
  return statusKiB(pid, 'VmRSS')
}

function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)
  return match ? Number(match[1]) : NaN
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A small seeded generator (mulberry32): reproducible bodies and corpora, fast enough to call per field. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export function median(values: readonly number[]): number {
  const sorted = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function min(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v))
  return finite.length ? Math.min(...finite) : NaN
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

/** Thousands with a thin separator, e.g. 12 345. */
export function thousands(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US').replace(/,/g, ' ') : 'n/a'
}

/** A Markdown table (so BENCHMARKS.md can hold it exactly as printed); `right` columns are numbers. */
export function table(headers: string[], rows: string[][], right: boolean[] = headers.map((_, i) => i > 0)): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const cell = (text: string, i: number) => (right[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!))
  const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (right[i] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`
  return [line(headers), rule, ...rows.map(line)].join('\n')
}

/** Node version, CPU model and count, pinning: the lines every benchmark prints first. */
export function machineNotes(pinning = 'system under test on core 0, load generator on core 1'): string {
  const list = cpus()
  const model = list[0]?.model.trim() ?? 'unknown CPU'
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() ?? ''
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown'
  const dirty = git('status', '--porcelain', '--', 'src', 'package.json', 'package-lock.json') !== ''
  return [
    `date: ${new Date().toISOString()}`,
    `code: git ${head}${dirty ? ' + uncommitted changes in src/ or the package files (what dist/ was built from)' : ''}`,
    `machine: ${list.length} cores (${model}), Node ${process.version}, ${process.platform} ${process.arch}`,
    `pinning: ${hasTaskset() ? `taskset (${pinning})` : 'NONE (taskset missing)'}`,
  ].join('\n')
}

/** Writes the raw numbers of a run to bench/results/ (gitignored) and returns the path. */
export function saveResults(name: string, data: unknown): string {
  const dir = join(benchDir, 'results')
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true })
  const path = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n')
  return path
}

/** A positive integer flag value, or the default. */
export function positiveInt(value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, not ${JSON.stringify(value)}`)
  return n
}

/** A number flag value ≥ 0, or the default. */
export function nonNegative(value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, not ${JSON.stringify(value)}`)
  return n
}

/** Bad command-line input: run.ts prints the message and the usage, and exits 2. */
export class UsageError extends Error {}

/** What each benchmark module exports. */
export interface Benchmark {
  usage: string
  /** Checks the flags (throwing UsageError) and returns the run, which resolves with an exit code. */
  prepare(args: string[]): () => Promise<number>
}

// Children still running are killed when a benchmark is interrupted or fails, and its temp
// folder (configs, event logs) is removed.
const live = new Set<ChildProcess>()

/** Registers a child to be killed when the benchmark ends, however it ends. */
export function track(child: ChildProcess): ChildProcess {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

function killAll(): void {
  for (const child of live) child.kill('SIGKILL')
}

/** Runs `work` in a fresh temp folder; on return, failure or Ctrl-C the tracked children are killed and the folder removed. */
export async function inTempDir(name: string, work: (dir: string) => Promise<number>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), `eventplane-bench-${name}-`))
  const interrupted = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping the servers and the load generator`)
    killAll()
    rmSync(dir, { recursive: true, force: true })
    process.exit(130)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  process.once('exit', killAll)
  try {
    return await work(dir)
  } finally {
    killAll()
    process.off('SIGINT', interrupted)
    process.off('SIGTERM', interrupted)
    process.off('exit', killAll)
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The bundled config (defaults/eventplane.yaml) with its paths made absolute, a data_dir of its
 * own, log level warn and event_log.sync: normal spelled out, then `overrides` (merged one
 * level deep). Returns the config file's path and the event log's.
 */
export function writeBundledConfig(dir: string, overrides: Record<string, Record<string, unknown>> = {}): { configFile: string; logFile: string } {
  mkdirSync(dir, { recursive: true })
  const bundled = yaml.safeLoad(readFileSync(join(repoRoot, 'defaults/eventplane.yaml'), 'utf8')) as Record<string, Record<string, unknown>>
  const defaults = join(repoRoot, 'defaults')
  const repositories = (bundled['schemas']?.['repositories'] as { name: string; path: string }[] | undefined) ?? []
  const config: Record<string, unknown> = {
    ...bundled,
    data_dir: join(dir, 'data'),
    log: { ...bundled['log'], level: 'warn' },
    schemas: { ...bundled['schemas'], repositories: repositories.map((r) => ({ ...r, path: join(defaults, r.path) })) },
    stream_config: { ...bundled['stream_config'], source: join(defaults, String(bundled['stream_config']?.['source'] ?? './streams.yaml')) },
    event_log: { ...bundled['event_log'], sync: 'normal' },
  }
  for (const [key, value] of Object.entries(overrides)) config[key] = { ...(config[key] as object | undefined), ...value }
  const configFile = join(dir, 'eventplane.yaml')
  writeFileSync(configFile, yaml.safeDump(config))
  return { configFile, logFile: join(dir, 'data', 'events.sqlite') }
}

/**
 * The arguments of node that run `eventplane serve` as `npm start` runs it in `tree`: the node
 * flags of its package.json `start` script (`--max-semi-space-size`, docs/decisions.md), then
 * its compiled CLI and `serve`. Benchmarks measure the server as users start it.
 */
export function serveArgs(tree = repoRoot): string[] {
  const start = (JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')) as { scripts?: { start?: string } }).scripts?.start ?? ''
  const words = start.trim().split(/\s+/)
  const bin = words.indexOf('dist/cli/bin.js')
  if (words[0] !== 'node' || bin === -1 || words[bin + 1] !== 'serve') throw new Error(`package.json's start script in ${tree} is not "node [flags] dist/cli/bin.js serve …": ${start}`)
  return [...words.slice(1, bin), join(tree, 'dist/cli/bin.js'), 'serve']
}

/** The environment of servers under test, without variables that would override their config. */
export function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith('EVENTPLANE_') || name === 'PORT' || name === 'HOST') delete env[name]
  return env
}

/** Waits (at most 20 s) until `url` answers anything; stops the child and throws when it does not. */
export async function waitUntilAnswering(child: ChildProcess, url: string, name: string): Promise<void> {
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited before answering (${child.exitCode ?? child.signalCode})`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      return
    } catch {
      if (Date.now() > deadline) {
        await stop(child)
        throw new Error(`${name} did not answer on ${url} within 20 s`)
      }
      await sleep(50)
    }
  }
}

type FlagSpec = Record<string, { type: 'string' } | { type: 'boolean' }>

/** A benchmark's flags (no positionals); a mistake is a UsageError, which prints the usage. */
export function parseFlags<O extends FlagSpec>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}
