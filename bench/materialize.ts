/**
 * materialize: time to materialize every current schema (53 `current.yaml`) of the Wikimedia
 * primary schema repository fixture, as a cold CLI process (`eventplane schema materialize
 * --all`) and in a process that already loaded the code, against Wikimedia's own
 * jsonschema-tools (`materialize-all`) run the same two ways on identical copies, alternating
 * (A, B, A, B). jsonschema-tools is installed into bench/.baseline/ (gitignored), never into
 * the project's package.json.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, lstatSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import YAML from 'yaml'
import {
  benchDir,
  exited,
  fixed,
  median,
  min,
  pinned,
  positiveInt,
  repoRoot,
  saveResults,
  table,
  unpinnedWarning,
  parseFlags,
} from './lib.ts'
import { baselinePackage, copyFixture, ensureBaseline, fixture, openingNotes, Stopwatch, type Timed } from './baseline.ts'

export const usage = `npm run bench -- materialize [--runs N] [--no-baseline]

Materializes all 53 current schemas of ../shared/fixtures/wmf-schemas-primary (copied to a temp
folder for every run) N times, each time:
  1. eventplane schema materialize --all --force --quiet   (a new process: wall time, incl. Node start-up)
  2. jsonschema-tools materialize-all              (the same, Wikimedia's tool)
  3. the same materialization in a process that already loaded Eventplane's dist/schemas
  4. the same with jsonschema-tools' materializeAllSchemas()
all pinned to core 0 (taskset). Prints per-run times, the ratios eventplane / jsonschema-tools,
median and min. jsonschema-tools ${'1.3.0'} is installed on first use into bench/.baseline/.

  --runs N        runs (default 5)
  --no-baseline   time Eventplane alone (no jsonschema-tools)`

const toolsVersion = '1.3.0'
const toolsDir = baselinePackage('@wikimedia/jsonschema-tools')
/** Copies get this mtime, so a file the tools wrote has a newer one. */
const oldTime = new Date('2001-01-01T00:00:00Z')

interface Options {
  runs: number
  baseline: boolean
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { runs: { type: 'string' }, 'no-baseline': { type: 'boolean' } } as const)
  const options: Options = { runs: positiveInt(values.runs, 'runs', 5), baseline: values['no-baseline'] !== true }
  return () => run(options)
}

/** A versioned file that materializing must (re)write: `<title>/<version>.yaml`. */
interface Target {
  title: string
  /** Relative to the repository copy. */
  path: string
}

interface Row {
  run: number
  eventplaneCold: number
  toolsCold?: number
  eventplaneWarm: number
  eventplaneWarmLoad: number
  toolsWarm?: number
  /** Busy % of core 1 while the timed work ran on core 0: other processes on the machine. */
  otherPercent: number
}

async function run(options: Options): Promise<number> {
  if (!(await openingNotes())) return 1

  let tools = options.baseline ? ensureTools() : { reason: '--no-baseline given' }
  if ('reason' in tools) console.log(`baseline: none (${tools.reason}); Eventplane's numbers alone`)
  else console.log(`baseline: @wikimedia/jsonschema-tools ${toolsVersion} from ${relative(repoRoot, toolsDir)}`)

  const work = mkdtempSync(join(tmpdir(), 'eventplane-bench-materialize-'))
  const workers: Worker[] = []
  try {
    const template = join(work, 'template')
    const { pointers, targets } = prepareTemplate(template)
    console.log(
      `fixture: ${relative(repoRoot, fixture)} — ${targets.length} current schemas; copied for every run; ` +
        `${pointers} pointer files (the fixture's stand-ins for symlinks) made real symlinks, as a git checkout has them ` +
        `(jsonschema-tools cannot read pointer files; Eventplane reads both); logLevel: warn in the copies' .jsonschema-tools.yaml, ` +
        `so that jsonschema-tools does not log every file (Eventplane runs with --quiet)`,
    )
    const eventplaneWorker = await Worker.start('eventplane')
    workers.push(eventplaneWorker)
    let toolsWorker: Worker | undefined
    if (!('reason' in tools)) {
      try {
        toolsWorker = await Worker.start('jsonschema-tools', tools.lib)
        workers.push(toolsWorker)
      } catch (error) {
        tools = { reason: `its library did not load: ${(error as Error).message}` }
        console.log(`baseline dropped: ${tools.reason}`)
      }
    }

    const rows: Row[] = []
    /** jsonschema-tools attempts that failed and were retried on a fresh copy. */
    const toolsFailures: { run: number; how: 'CLI' | 'in-process'; error: string }[] = []
    let copies = 0
    const fresh = () => {
      const dir = join(work, `copy-${++copies}`)
      cpSync(template, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
      return dir
    }
    const remove = (dir: string) => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
    for (let i = 1; i <= options.runs; i++) {
      process.stdout.write(`run ${i}/${options.runs}: `)
      watch.reset()
      // 1 and 2: cold processes.
      const epCopy = fresh()
      const epCold = await timeProcess(process.execPath, [join(repoRoot, 'dist/cli/bin.js'), 'schema', 'materialize', '--all', '--force', '--quiet', '--repo', epCopy], epCopy)
      check('eventplane CLI', epCold, epCopy, targets)
      let toolsCold: number | undefined
      for (let attempt = 1; !('reason' in tools) && toolsCold === undefined; attempt++) {
        const toolsCopy = fresh()
        const result = await timeProcess(process.execPath, [tools.cli, 'materialize-all'], toolsCopy)
        const problem = problemOf(result, toolsCopy, targets)
        if (problem === undefined) {
          toolsCold = result.ms
          if (i === 1) compareOutputs(epCopy, toolsCopy, targets)
        } else {
          toolsFailures.push({ run: i, how: 'CLI', error: problem })
          process.stdout.write(`(jsonschema-tools CLI failed, attempt ${attempt}: ${firstLine(problem)}) `)
          if (attempt === 3) {
            tools = { reason: `jsonschema-tools materialize-all failed 3 times in a row here: ${problem}` }
            console.log(`\nbaseline dropped: ${tools.reason}`)
          }
        }
        remove(toolsCopy)
      }
      remove(epCopy)

      // 3 and 4: in processes that already loaded the code.
      const epWarmCopy = fresh()
      const epWarm = await watched(() => eventplaneWorker.materialize(epWarmCopy))
      check('eventplane in-process', { ms: epWarm.ms, code: 0, stderr: '' }, epWarmCopy, targets)
      remove(epWarmCopy)
      let toolsWarm: number | undefined
      for (let attempt = 1; !('reason' in tools) && toolsWorker !== undefined && toolsWarm === undefined; attempt++) {
        const toolsCopy = fresh()
        const worker: Worker = toolsWorker
        try {
          const result = await watched(() => worker.materialize(toolsCopy))
          const problem = problemOf({ ms: result.ms, code: 0, stderr: '' }, toolsCopy, targets)
          if (problem !== undefined) throw new Error(problem)
          toolsWarm = result.ms
        } catch (error) {
          const message = (error as Error).message
          toolsFailures.push({ run: i, how: 'in-process', error: message })
          process.stdout.write(`(jsonschema-tools in-process failed, attempt ${attempt}: ${firstLine(message)}) `)
          // Its other schemas may still be writing: stop that process and start a clean one,
          // given as many untimed runs as the one it replaces had, so that it is as warm.
          await worker.kill()
          workers.splice(workers.indexOf(worker), 1)
          if (attempt === 3) {
            tools = { reason: `jsonschema-tools in-process failed 3 times in a row: ${message}` }
            console.log(`\nbaseline dropped: ${tools.reason}`)
          } else {
            try {
              toolsWorker = await startWarmed(tools.lib, i - 1, fresh, remove)
              workers.push(toolsWorker)
            } catch (error) {
              tools = { reason: (error as Error).message }
              console.log(`\nbaseline dropped: ${tools.reason}`)
            }
          }
        }
        remove(toolsCopy)
      }
      const row: Row = {
        run: i,
        eventplaneCold: epCold.ms,
        eventplaneWarm: epWarm.ms,
        eventplaneWarmLoad: epWarm.loadMs ?? NaN,
        ...(toolsCold !== undefined ? { toolsCold } : {}),
        ...(toolsWarm !== undefined ? { toolsWarm } : {}),
        otherPercent: watch.otherPercent,
      }
      rows.push(row)
      console.log(
        `eventplane CLI ${fixed(row.eventplaneCold, 0)} ms` +
          (row.toolsCold !== undefined ? `, jsonschema-tools CLI ${fixed(row.toolsCold, 0)} ms` : '') +
          `, eventplane in-process ${fixed(row.eventplaneWarm, 0)} ms` +
          (row.toolsWarm !== undefined ? `, jsonschema-tools in-process ${fixed(row.toolsWarm, 0)} ms` : '') +
          `; other processes: core 1 ${fixed(row.otherPercent, 0)} % busy`,
      )
    }
    if (toolsFailures.length > 0) {
      console.log(
        `\nnote: jsonschema-tools failed ${toolsFailures.length} attempt(s), each retried on a fresh copy (the times above are of attempts that succeeded):\n` +
          toolsFailures.map((f) => `  run ${f.run} ${f.how}: ${firstLine(f.error)}`).join('\n') +
          (toolsFailures.every((f) => /reading 'allOf'|js\/undefined/.test(f.error))
            ? `\n  Its materializeAllSchemas() works on all schemas at once (Promise.all) and resolves $refs by reading the files on\n` +
              `  disk, so most likely a schema read a fragment's <version>.yaml while another one was rewriting it (these errors are\n` +
              `  an undefined $ref target, or an undefined value written out). Eventplane materializes one schema at a time, in\n` +
              `  dependency order.`
            : '') +
          (toolsFailures.every((f) => f.how === 'in-process') ? ' Only the in-process runs (faster, warm) failed; its CLI did not.' : ''),
      )
    }
    report(rows, targets.length, 'reason' in tools ? tools.reason : undefined, toolsFailures)
    return 0
  } finally {
    for (const worker of workers) worker.close()
    rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
}

/**
 * A new jsonschema-tools worker that has already materialized `calls` untimed copies (a warm-up
 * that fails, as that tool sometimes does in-process, means a new worker and a new warm-up).
 */
async function startWarmed(lib: string, calls: number, fresh: () => string, remove: (dir: string) => void): Promise<Worker> {
  for (let tries = 1; ; tries++) {
    const worker = await Worker.start('jsonschema-tools', lib)
    let failed: unknown
    for (let n = 0; n < calls && failed === undefined; n++) {
      const dir = fresh()
      await worker.materialize(dir).catch((error: unknown) => (failed = error))
      if (failed !== undefined) await worker.kill()
      remove(dir)
    }
    if (failed === undefined) return worker
    if (tries === 5) throw new Error(`could not warm a jsonschema-tools worker: ${(failed as Error).message}`)
  }
}

/** Installs jsonschema-tools into bench/.baseline/ when it is not there yet. */
function ensureTools(): { cli: string; lib: string } | { reason: string } {
  return ensureBaseline({ '@wikimedia/jsonschema-tools': toolsVersion }) ?? {
    cli: join(toolsDir, 'scripts/jsonschema-tools.js'),
    lib: join(toolsDir, 'lib/jsonschema-tools.js'),
  }
}

/**
 * Copies the fixture (read-only) to a writable folder, turns its pointer files into symlinks,
 * dates every file in the past, and lists the files materializing must rewrite.
 */
function prepareTemplate(dest: string): { pointers: number; targets: Target[] } {
  const targets: Target[] = []
  const pointers = copyFixture(dest, (path, dir, name) => {
    utimesSync(path, oldTime, oldTime)
    if (name !== 'current.yaml') return
    const schema = YAML.parse(readFileSync(path, 'utf8')) as { $id?: unknown }
    const version = typeof schema.$id === 'string' ? /(\d+\.\d+\.\d+)$/.exec(schema.$id)?.[1] : undefined
    if (version === undefined) throw new Error(`${path}: no version at the end of $id ${JSON.stringify(schema.$id)}`)
    targets.push({ title: relative(join(dest, 'jsonschema'), dir), path: relative(dest, join(dir, `${version}.yaml`)) })
  })
  // The fixture says logLevel: info, with which jsonschema-tools logs three lines per schema
  // (about 3 % of its CLI time here); warn makes it as quiet as `eventplane … --quiet`.
  // Eventplane ignores the key.
  const config = join(dest, '.jsonschema-tools.yaml')
  writeFileSync(config, readFileSync(config, 'utf8').replace(/^logLevel: .*$/m, 'logLevel: warn'))
  utimesSync(config, oldTime, oldTime)
  return { pointers, targets: targets.sort((a, b) => (a.title < b.title ? -1 : 1)) }
}

const watch = new Stopwatch()
const timeProcess = (command: string, args: string[], cwd: string) => watch.timeProcess(command, args, cwd)
const watched = <T>(work: () => Promise<T>) => watch.watched(work)

/** Why a run does not count (failed, or left a versioned file unwritten), or undefined. */
function problemOf(result: Pick<Timed, 'ms' | 'code' | 'stderr'>, dir: string, targets: Target[]): string | undefined {
  if (result.code !== 0) return `exit ${result.code}: ${result.stderr.trim().split('\n').slice(-3).join(' / ')}`
  const stale = targets.filter((t) => {
    try {
      const info = lstatSync(join(dir, t.path))
      return !info.isFile() || info.mtimeMs <= oldTime.getTime() + 1000
    } catch {
      return true
    }
  })
  if (stale.length > 0) return `${stale.length} of ${targets.length} versioned files not written (e.g. ${stale[0]!.path})`
  return undefined
}

function firstLine(text: string): string {
  return text.trim().split('\n', 1)[0]!.slice(0, 200)
}

function check(what: string, result: Pick<Timed, 'ms' | 'code' | 'stderr'>, dir: string, targets: Target[]): void {
  const problem = problemOf(result, dir, targets)
  if (problem !== undefined) throw new Error(`${what} failed, so there is nothing to time: ${problem}`)
}

/** Both tools must have written the same schemas; generated examples may differ (different generators). */
function compareOutputs(ours: string, theirs: string, targets: Target[]): void {
  const strip = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(strip)
      : typeof value === 'object' && value !== null
        ? Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'examples').map(([k, v]) => [k, strip(v)]))
        : value
  let identical = 0
  const differing: string[] = []
  for (const t of targets) {
    const a = readFileSync(join(ours, t.path), 'utf8')
    const b = readFileSync(join(theirs, t.path), 'utf8')
    if (a === b) identical++
    if (!isDeepStrictEqual(strip(YAML.parse(a)), strip(YAML.parse(b)))) differing.push(t.title)
  }
  console.log(
    `\noutputs compared (run 1): ${targets.length - differing.length} of ${targets.length} materialized schemas are the same as jsonschema-tools' ` +
      `apart from generated examples; ${identical} of ${targets.length} are byte-identical` +
      (differing.length ? `\nWARNING: different schemas: ${differing.join(', ')}` : ''),
  )
}

interface WorkerResult {
  ms: number
  loadMs?: number
  schemas?: number
  files: number
}

/** A pinned process holding one tool, materializing on request (bench/materialize-worker.mjs). */
class Worker {
  #pending: { resolve: (r: WorkerResult) => void; reject: (e: Error) => void } | undefined
  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: { type: string; message?: string } & WorkerResult) => {
      const pending = this.#pending
      this.#pending = undefined
      if (message.type === 'result') pending?.resolve(message)
      else if (message.type === 'error') pending?.reject(new Error(message.message))
    })
    child.on('exit', (code) => this.#pending?.reject(new Error(`worker exited (${code})`)))
  }

  static start(tool: 'eventplane' | 'jsonschema-tools', lib?: string): Promise<Worker> {
    const p = pinned(0, process.execPath, [join(benchDir, 'materialize-worker.mjs'), tool, ...(lib ? [lib] : [])])
    const child = spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(new Worker(child)))
      child.once('exit', (code) => reject(new Error(`the ${tool} worker exited before it was ready (${code})`)))
    })
  }

  materialize(dir: string): Promise<WorkerResult> {
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject }
      this.child.send({ dir })
    })
  }

  close(): void {
    if (this.child.connected) this.child.disconnect()
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL')
    await exited(this.child)
  }
}

function report(rows: Row[], schemas: number, noBaseline: string | undefined, toolsFailures: unknown[]): void {
  const withTools = noBaseline === undefined && rows.every((r) => r.toolsCold !== undefined && r.toolsWarm !== undefined)
  const ms = (v: number | undefined) => (v === undefined ? 'n/a' : fixed(v, 0))
  const ratio = (a: number, b: number | undefined) => (b === undefined ? 'n/a' : fixed(a / b, 2))
  const column = (f: (r: Row) => number | undefined) => rows.map(f).filter((v): v is number => v !== undefined)
  console.log(`\nmaterialize all ${schemas} current schemas of wmf-schemas-primary, ms (wall time); ratio = eventplane / jsonschema-tools, below 1 = eventplane faster\n`)
  if (withTools) {
    const coldRatios = rows.map((r) => r.eventplaneCold / r.toolsCold!)
    const warmRatios = rows.map((r) => r.eventplaneWarm / r.toolsWarm!)
    console.log(
      table(
        ['run', 'eventplane CLI', 'jsonschema-tools CLI', 'ratio', 'eventplane in-process', 'jsonschema-tools in-process', 'ratio', 'other CPU %'],
        [
          ...rows.map((r) => [
            String(r.run),
            ms(r.eventplaneCold),
            ms(r.toolsCold),
            ratio(r.eventplaneCold, r.toolsCold),
            ms(r.eventplaneWarm),
            ms(r.toolsWarm),
            ratio(r.eventplaneWarm, r.toolsWarm),
            fixed(r.otherPercent, 0),
          ]),
          [
            'median',
            ms(median(column((r) => r.eventplaneCold))),
            ms(median(column((r) => r.toolsCold))),
            fixed(median(coldRatios), 2),
            ms(median(column((r) => r.eventplaneWarm))),
            ms(median(column((r) => r.toolsWarm))),
            fixed(median(warmRatios), 2),
            '',
          ],
          ['min', ms(min(column((r) => r.eventplaneCold))), ms(min(column((r) => r.toolsCold))), '', ms(min(column((r) => r.eventplaneWarm))), ms(min(column((r) => r.toolsWarm))), '', ''],
        ],
        [false, true, true, true, true, true, true, true],
      ),
    )
    console.log(
      `\nmedian ratio eventplane / jsonschema-tools: CLI ${fixed(median(coldRatios), 2)}, in-process ${fixed(median(warmRatios), 2)} ` +
        `(the median row's ratio is the median of the per-run ratios)`,
    )
  } else {
    if (noBaseline !== undefined) console.log(`no baseline: ${noBaseline}\n`)
    console.log(
      table(
        ['run', 'eventplane CLI', 'eventplane in-process', 'other CPU %'],
        [
          ...rows.map((r) => [String(r.run), ms(r.eventplaneCold), ms(r.eventplaneWarm), fixed(r.otherPercent, 0)]),
          ['median', ms(median(column((r) => r.eventplaneCold))), ms(median(column((r) => r.eventplaneWarm))), ''],
          ['min', ms(min(column((r) => r.eventplaneCold))), ms(min(column((r) => r.eventplaneWarm))), ''],
        ],
        [false, true, true, true],
      ),
    )
  }
  console.log(
    `\neventplane in-process: of the median ${fixed(median(column((r) => r.eventplaneWarm)), 0)} ms, ` +
      `${fixed(median(column((r) => r.eventplaneWarmLoad)), 0)} ms (median) go to finding and parsing the current.yaml files; ` +
      `run 1 in-process includes first-call costs (lazy loading, cold JIT)`,
  )
  if (unpinnedWarning()) console.log(unpinnedWarning())
  console.log(
    `other CPU %: how busy core 1 was during the timed work, which ran on core 0 (the harness itself is on core 1 but idle then): ` +
      `other processes on this shared machine${rows.some((r) => r.otherPercent > 20) ? '. WARNING: over 20 % in some runs: those numbers are disturbed' : ''}`,
  )
  console.log(`raw results: ${relative(repoRoot, saveResults('materialize', { schemas, rows, toolsFailures, baseline: noBaseline ?? `@wikimedia/jsonschema-tools ${toolsVersion}` }))}`)
}
