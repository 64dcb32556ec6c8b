/**
 * What the schema benchmarks (materialize, schema-tools) share: Wikimedia's primary schema
 * repository copied as a git checkout has it, the npm packages they compare against installed
 * into bench/.baseline/ (gitignored, never in the project's package.json), and timing a process
 * pinned to core 0 while watching how busy the other core is.
 */
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { backgroundLoadPercent, benchDir, exited, fixed, machineBusySeconds, machineNotes, pinned, repoRoot, track } from './lib.ts'

/** Wikimedia's primary schema repository, in ../shared beside the repository. */
export const fixture = fileURLToPath(new URL('../../shared/fixtures/wmf-schemas-primary', import.meta.url))

export const baselineDir = join(benchDir, '.baseline')

/** Where an installed baseline package lives. */
export function baselinePackage(name: string): string {
  return join(baselineDir, 'node_modules', name)
}

/**
 * Installs `packages` (name → exact version) into bench/.baseline/ unless they are there at
 * those versions. Packages another benchmark installed there stay. Returns why it could not.
 */
export function ensureBaseline(packages: Record<string, string>): { reason: string } | undefined {
  const version = (name: string) => {
    try {
      return (JSON.parse(readFileSync(join(baselinePackage(name), 'package.json'), 'utf8')) as { version?: string }).version
    } catch {
      return undefined
    }
  }
  const installed = () => Object.entries(packages).every(([name, wanted]) => version(name) === wanted)
  if (installed()) return undefined
  const listed = Object.entries(packages).map(([name, wanted]) => `${name} ${wanted}`).join(' and ')
  console.log(`installing ${listed} into ${relative(repoRoot, baselineDir)}/ (gitignored) …`)
  mkdirSync(baselineDir, { recursive: true })
  let dependencies: Record<string, string> = {}
  try {
    dependencies = (JSON.parse(readFileSync(join(baselineDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {}
  } catch {
    // none yet
  }
  writeFileSync(
    join(baselineDir, 'package.json'),
    JSON.stringify(
      {
        name: 'eventplane-bench-baseline',
        private: true,
        description: 'The baselines of the schema benchmarks (bench/materialize.ts, bench/schema-tools.ts). Written by the benchmarks; gitignored.',
        dependencies: { ...dependencies, ...packages },
      },
      null,
      2,
    ) + '\n',
  )
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: baselineDir,
    stdio: ['ignore', 'inherit', 'pipe'],
    encoding: 'utf8',
    timeout: 300_000,
  })
  if (npm.status !== 0 || !installed()) {
    const why = npm.error?.message ?? (npm.stderr?.trim().split('\n').slice(-5).join(' / ') || `npm exited ${npm.status}`)
    return { reason: `could not install ${listed}: ${why}` }
  }
  return undefined
}

/**
 * Copies the fixture (read-only) to `dest`, writable, and turns its pointer files (small files
 * holding the name of a sibling, e.g. `latest` holding `1.0.0.yaml`: the fixture's stand-ins for
 * the symlinks of a git checkout) into symlinks, which jsonschema-tools needs. `visit` sees
 * every other file. Returns how many pointer files it replaced.
 */
export function copyFixture(dest: string, visit: (path: string, dir: string, name: string) => void = () => {}): number {
  cpSync(fixture, dest, { recursive: true })
  chmodSync(join(dest, '.jsonschema-tools.yaml'), 0o644)
  let pointers = 0
  const walk = (dir: string) => {
    chmodSync(dir, 0o755)
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        walk(path)
        continue
      }
      if (!entry.isFile()) continue
      chmodSync(path, 0o644)
      if (lstatSync(path).size <= 64) {
        const pointee = readFileSync(path, 'utf8').trim()
        if (/^[^/\s]+\.(yaml|json)$/.test(pointee) && existsSync(join(dir, pointee)) && lstatSync(join(dir, pointee)).isFile()) {
          unlinkSync(path)
          symlinkSync(pointee, path)
          pointers++
          continue
        }
      }
      visit(path, dir, entry.name)
    }
  }
  walk(dest)
  return pointers
}

export interface Timed {
  ms: number
  code: number | string
  stdout: string
  stderr: string
}

/**
 * Times work on core 0 and keeps the busy seconds of core 1 meanwhile: other processes on the
 * machine, reported per round as "other CPU %".
 */
export class Stopwatch {
  busy = 0
  wall = 0

  /** Starts a new round of the "other CPU %" count. */
  reset(): void {
    this.busy = this.wall = 0
  }

  /** Busy % of core 1 during the timed work of this round. */
  get otherPercent(): number {
    return (this.busy / this.wall) * 100
  }

  async watched<T>(work: () => Promise<T>): Promise<T> {
    const busy = machineBusySeconds(1)
    const started = performance.now()
    try {
      return await work()
    } finally {
      this.busy += machineBusySeconds(1) - busy
      this.wall += (performance.now() - started) / 1000
    }
  }

  /** Wall time of a new process, pinned to core 0, from spawn to exit; its output kept. */
  timeProcess(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Timed> {
    const p = pinned(0, command, args)
    return this.watched(async () => {
      const started = performance.now()
      const child = track(spawn(p.command, p.args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
      let stdout = ''
      let stderr = ''
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      const code = await exited(child)
      const ms = performance.now() - started
      // The pipes may still hold the last chunks when 'exit' fires.
      await Promise.all([child.stdout!, child.stderr!].map((s) => (s.readableEnded || s.closed ? undefined : new Promise((resolve) => s.once('close', resolve)))))
      return { ms, code, stdout, stderr }
    })
  }
}

/**
 * What both schema benchmarks print first: the machine, and the load on it before the run.
 * False (after saying why) when the fixture is missing.
 */
export async function openingNotes(): Promise<boolean> {
  console.log(machineNotes('every timed process on core 0, the benchmark harness on core 1'))
  if (!existsSync(join(fixture, '.jsonschema-tools.yaml'))) {
    console.error(`the fixture is missing: ${fixture} (it lives in ../shared beside the repository)`)
    return false
  }
  const background = await backgroundLoadPercent()
  console.log(`background load before the run: ${fixed(background, 0)} % of one core used by other processes`)
  if (background > 20) console.log('WARNING: the machine is busy with other work: expect noisy numbers')
  return true
}
