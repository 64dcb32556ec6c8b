/**
 * schema-tools: checking a whole schema repository, Eventplane's way against Wikimedia's. A is
 * `eventplane schema check --all` (lint and compat in one new process); B is what a Wikimedia schema repository runs as its tests: mocha on a
 * file that calls jsonschema-tools' `tests.all()` (structure, robustness and compatibility).
 * Both read the same repository, a fresh copy each: Wikimedia's primary repository (the fixture)
 * and generated repositories of 250, 500 and 1,000 versions, alternating A, B, A, B, every
 * process pinned to core 0. jsonschema-tools and mocha are installed into bench/.baseline/
 * (gitignored), never into the project's package.json.
 */
import { cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import yaml from 'js-yaml'
import {
  fixed,
  inTempDir,
  median,
  min,
  parseFlags,
  positiveInt,
  repoRoot,
  saveResults,
  table,
  unpinnedWarning,
  UsageError,
} from './lib.ts'
import { baselineDir, baselinePackage, copyFixture, ensureBaseline, fixture, openingNotes, Stopwatch, type Timed } from './baseline.ts'

const toolsVersion = '1.3.0'
const mochaVersion = '10.8.2'
const target = 0.5

export const usage = `npm run bench -- schema-tools [--rounds N] [--sizes N,N,…]

Checks whole schema repositories, each copied afresh for every run, with both tools:
  A  eventplane schema check --all --repo COPY (lint and compat in one new process, as
     jsonschema-tools' tests.all() does both; exit 0, or 1 = findings)
  B  mocha (${mochaVersion}) on a test file calling require('@wikimedia/jsonschema-tools')
     .tests.all({ logLevel: 'warn' }) with the copy as working directory, as Wikimedia's
     schema repositories run their tests (exit code = failing tests)
alternating A, B, A, B, every process pinned to core 0 and timed from spawn to exit.
Repositories: ../shared/fixtures/wmf-schemas-primary (pointer files made symlinks), then
generated ones of N versions (titles gen/t<i>, 5 versions each, current.yaml = the last).
Prints per repository the rounds, the ratios eventplane / jsonschema-tools (target ≤ ${target}),
and how each tool's time grows with the generated sizes. jsonschema-tools ${toolsVersion} and
mocha ${mochaVersion} are installed on first use into bench/.baseline/. Exits non-zero only when a
run fails (a crash, an exit code other than 0/1 for Eventplane, or mocha running no test).

  --rounds N      rounds per repository (default 3)
  --sizes N,…     versions of the generated repositories, multiples of 5 (default 250,500,1000)`

const versionsPerTitle = 5

interface Options {
  rounds: number
  sizes: number[]
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { rounds: { type: 'string' }, sizes: { type: 'string' } } as const)
  const rounds = positiveInt(values.rounds, 'rounds', 3)
  const sizes = (values.sizes ?? '250,500,1000').split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => positiveInt(s, 'sizes', 0))
  if (sizes.some((n) => n % versionsPerTitle !== 0)) throw new UsageError(`--sizes must be multiples of ${versionsPerTitle} (${versionsPerTitle} versions per title)`)
  return () => inTempDir('schema-tools', (dir) => run(dir, { rounds, sizes: [...new Set(sizes)].sort((a, b) => a - b) }))
}

/** One repository to check: where its template is and what it holds. */
interface DataSet {
  name: string
  template: string
  /** Materialized versions (<title>/<x.y.z>.yaml). */
  versions: number
  titles: number
  /** For generated repositories: the versions asked for (the growth lines use it). */
  size?: number
  /** The tests jsonschema-tools should declare, when known (generated repositories). */
  expectedTests?: number
}

interface MochaCount {
  passing: number
  failing: number
  pending: number
}

interface Row {
  round: number
  eventplaneMs: number
  toolsMs: number
  ratio: number
  code: number | string
  /** Eventplane's own summary lines (lint, compat). */
  lintSummary: string
  compatSummary: string
  tests: MochaCount
  /** Busy % of core 1 while the timed work ran on core 0: other processes on the machine. */
  otherPercent: number
}

interface Result {
  set: DataSet
  rows: Row[]
  /** The first lines of mocha's failure list in round 1, when tests failed. */
  failures: string[]
}

/** A run that did not run: the benchmark stops and exits 1. */
class RunFailed extends Error {}

async function run(work: string, options: Options): Promise<number> {
  if (!(await openingNotes())) return 1

  const tools = ensureTools()
  if ('reason' in tools) {
    console.error(`no baseline: ${tools.reason}`)
    return 1
  }
  console.log(`baseline: @wikimedia/jsonschema-tools ${toolsVersion} and mocha ${mochaVersion} from ${relative(repoRoot, baselineDir)}/`)

  // The test file of a Wikimedia schema repository (test/jsonschema/repository.test.js there),
  // outside the copies so that they hold the schemas only; NODE_PATH lets it require the
  // package by name from bench/.baseline/.
  const testFile = join(work, 'jsonschema-tools.test.cjs')
  writeFileSync(testFile, `'use strict';\nrequire('@wikimedia/jsonschema-tools').tests.all({ logLevel: 'warn' });\n`)

  const sets: DataSet[] = [prepareFixture(join(work, 'template-fixture'))]
  for (const size of options.sizes) sets.push(generate(join(work, `template-${size}`), size))
  console.log(
    `repositories: ${sets.map((s) => `${s.name} (${s.versions} versions, ${s.titles} titles)`).join(', ')}; each copied afresh for every run\n` +
      `fixture: ${relative(repoRoot, fixture)}, its pointer files (stand-ins for symlinks) made real symlinks, as a git checkout has them ` +
      `(jsonschema-tools' structure tests check that the extensionless and latest files are symlinks)`,
  )

  let copies = 0
  const fresh = (set: DataSet) => {
    const dir = join(work, `copy-${++copies}`)
    cpSync(set.template, dir, { recursive: true, verbatimSymlinks: true })
    return dir
  }
  const remove = (dir: string) => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  const bin = join(repoRoot, 'dist/cli/bin.js')
  const env = { ...process.env, NODE_PATH: join(baselineDir, 'node_modules') }

  const results: Result[] = []
  try {
    for (const set of sets) {
      console.log(`\n== ${set.name}: ${set.versions} versions, ${set.titles} titles`)
      const result: Result = { set, rows: [], failures: [] }
      results.push(result)
      for (let round = 1; round <= options.rounds; round++) {
        process.stdout.write(`round ${round}/${options.rounds}: `)
        watch.reset()
        // A: Eventplane, lint and compat in one process (it writes nothing).
        const epCopy = fresh(set)
        const check = await watch.timeProcess(process.execPath, [bin, 'schema', 'check', '--all', '--repo', epCopy], epCopy, process.env)
        checkEventplane('schema check', check, lintSummary)
        checkEventplane('schema check', check, compatSummary)
        remove(epCopy)
        // B: jsonschema-tools' tests under mocha, in a copy of their own.
        const toolsCopy = fresh(set)
        const mocha = await watch.timeProcess(
          process.execPath,
          [tools.mocha, '--no-config', '--no-package', '--reporter', 'dot', '--timeout', '60000', testFile],
          toolsCopy,
          env,
        )
        const tests = checkMocha(mocha, set)
        remove(toolsCopy)
        if (round === 1 && tests.failing > 0) result.failures = failureList(mocha.stdout)
        const row: Row = {
          round,
          eventplaneMs: check.ms,
          toolsMs: mocha.ms,
          ratio: check.ms / mocha.ms,
          code: check.code,
          lintSummary: summaryLine(check, lintSummary)!,
          compatSummary: summaryLine(check, compatSummary)!,
          tests,
          otherPercent: watch.otherPercent,
        }
        result.rows.push(row)
        console.log(
          `eventplane check ${fixed(row.eventplaneMs, 0)} ms (exit ${row.code}); ` +
            `jsonschema-tools ${fixed(row.toolsMs, 0)} ms (${testCount(tests)}); ratio ${fixed(row.ratio, 2)}; other processes: core 1 ${fixed(row.otherPercent, 0)} % busy`,
        )
      }
      const first = result.rows[0]!
      console.log(
        `checked: eventplane lint "${first.lintSummary}", compat "${first.compatSummary}"; ` +
          `jsonschema-tools ${testCount(first.tests)}` +
          (set.expectedTests !== undefined ? ` (expected ${set.expectedTests} for this layout${first.tests.passing + first.tests.failing + first.tests.pending === set.expectedTests ? '' : ': WARNING, different'})` : ''),
      )
      if (result.failures.length > 0) console.log(`jsonschema-tools' failing tests (round 1):\n${result.failures.map((l) => `  ${l}`).join('\n')}`)
    }
  } catch (error) {
    if (!(error instanceof RunFailed)) throw error
    console.error(`\n${error.message}`)
    console.error('the benchmark stops: a run that fails measures nothing')
    return 1
  }
  report(results)
  return 0
}

/** Installs jsonschema-tools and mocha into bench/.baseline/ when they are not there yet. */
function ensureTools(): { mocha: string; lib: string } | { reason: string } {
  return ensureBaseline({ '@wikimedia/jsonschema-tools': toolsVersion, mocha: mochaVersion }) ?? {
    mocha: join(baselinePackage('mocha'), 'bin/mocha.js'),
    lib: join(baselinePackage('@wikimedia/jsonschema-tools'), 'index.js'),
  }
}

/** The fixture, as a git checkout has it (copyFixture), with its versions and titles counted. */
function prepareFixture(dest: string): DataSet {
  let versions = 0
  const titles = new Set<string>()
  copyFixture(dest, (_path, dir, name) => {
    if (!/^\d+\.\d+\.\d+\.yaml$/.test(name)) return
    versions++
    titles.add(relative(join(dest, 'jsonschema'), dir))
  })
  return { name: 'wmf-schemas-primary (fixture)', template: dest, versions, titles: titles.size }
}

/**
 * A repository of `size` versions in jsonschema-tools' layout: titles gen/t<i>, each with
 * versions 1.0.0 … 1.4.0 (each adding one optional string property, so every pair is
 * compatible), the extensionless and latest symlinks jsonschema-tools' materialize writes, and
 * current.yaml equal to the last version. Every version is a lint-clean Wikimedia-style event
 * schema (the common fields of fragment/common inline) with one valid example.
 */
function generate(dest: string, size: number): DataSet {
  const titles = size / versionsPerTitle
  mkdirSync(dest, { recursive: true })
  writeFileSync(join(dest, '.jsonschema-tools.yaml'), yaml.safeDump({ schemaBasePath: './jsonschema/', contentTypes: ['yaml'] }))
  for (let t = 0; t < titles; t++) {
    const title = `gen/t${t}`
    const dir = join(dest, 'jsonschema', title)
    mkdirSync(dir, { recursive: true })
    let last = ''
    for (let k = 0; k < versionsPerTitle; k++) {
      const version = `1.${k}.0`
      // js-yaml, as jsonschema-tools writes them: it quotes the example's dt, which a YAML 1.1
      // reader (jsonschema-tools' js-yaml 3) would otherwise read as a timestamp, not a string.
      last = yaml.safeDump(generatedSchema(title, t, k), { lineWidth: -1 })
      writeFileSync(join(dir, `${version}.yaml`), last)
      symlinkSync(`${version}.yaml`, join(dir, version))
    }
    const latest = `1.${versionsPerTitle - 1}.0.yaml`
    symlinkSync(latest, join(dir, 'latest'))
    symlinkSync(latest, join(dir, 'latest.yaml'))
    writeFileSync(join(dir, 'current.yaml'), last)
  }
  return { name: `generated ${size}`, template: dest, versions: size, titles, size, expectedTests: titles * expectedTestsPerTitle() }
}

/**
 * The tests jsonschema-tools 1.3.0 declares for one generated title (5 versions + current.yaml,
 * yaml only, symlinks on): structure 7 per title + 6 per version; robustness 8 per version and
 * 2 for current.yaml; compatibility 1 per consecutive pair.
 */
function expectedTestsPerTitle(): number {
  const v = versionsPerTitle
  return 7 + 6 * v + (8 * v + 2) + (v - 1)
}

function generatedSchema(title: string, t: number, k: number): Record<string, unknown> {
  const id = `/${title}/1.${k}.0`
  const fields: Record<string, unknown> = {}
  const example: Record<string, unknown> = {
    $schema: id,
    meta: { dt: '2024-01-01T00:00:00Z', stream: `gen.t${t}`, domain: 'example.org', id: '12345678-1234-5678-1234-567812345678' },
  }
  for (let j = 0; j <= k; j++) {
    fields[`field_${j}`] = { description: `Field ${j} of ${title}, added in version 1.${j}.0`, type: 'string', maxLength: 1024 }
    example[`field_${j}`] = `value ${j}`
  }
  return {
    title,
    description: `Generated event schema ${t} for the schema-tools benchmark (version 1.${k}.0 adds field_${k})`,
    $id: id,
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    required: ['$schema', 'meta'],
    properties: {
      $schema: {
        description: "A URI identifying the JSONSchema for this event. This should match an schema's $id in a schema repository. E.g. /schema/title/1.0.0",
        type: 'string',
      },
      meta: {
        type: 'object',
        required: ['dt', 'stream'],
        properties: {
          domain: { description: 'Domain the event or entity pertains to', type: 'string', minLength: 1 },
          dt: { description: 'UTC event datetime, in ISO-8601 format', type: 'string', format: 'date-time', maxLength: 128 },
          id: { description: 'Unique ID of this event', type: 'string' },
          request_id: { description: 'Unique ID of the request that caused the event', type: 'string' },
          stream: { description: 'Name of the stream/queue/dataset that this event belongs in', type: 'string', minLength: 1, maxLength: 512 },
          uri: { description: 'Unique URI identifying the event or entity', type: 'string', format: 'uri-reference', maxLength: 8192 },
        },
      },
      ...fields,
    },
    examples: [example],
  }
}

const watch = new Stopwatch()

/**
 * The closing lines of `eventplane schema check` (its lint part, "83 schema versions of 53 titles checked: 7
 * errors, 1 warnings", and its compat part, "15 version pairs compared …: 0 incompatible").
 */
const lintSummary = /\d+ schema versions?\b.*\bchecked\b/
const compatSummary = /\d+ version pairs?\b.*\bcompared\b/

/**
 * Eventplane's schema check exits 0 (clean) or 1 (findings); anything else is a failed run,
 * and so is an exit without the closing summary (Node exits 1 on an uncaught error too).
 */
function checkEventplane(what: string, result: Timed, summary: RegExp): void {
  const problem =
    result.code !== 0 && result.code !== 1
      ? `exit ${result.code}`
      : summaryLine(result, summary) === undefined
        ? `exit ${result.code} without its closing summary line (${summary.source}): a crash? (or a new wording: update the pattern in bench/schema-tools.ts)`
        : undefined
  if (problem === undefined) return
  throw new RunFailed(
    `eventplane ${what} failed: ${problem}; its stderr:\n${result.stderr.trim() || '(empty)'}` +
      (result.stdout.trim() ? `\nits stdout (last lines):\n${lastLines(result.stdout, 20)}` : ''),
  )
}

/**
 * Mocha's exit code is the number of failing tests (at most 255); the dot reporter's summary
 * says how many passed, failed and were skipped. No summary, no test, or an exit code that does
 * not match the failures is a crash.
 */
function checkMocha(result: Timed, set: DataSet): MochaCount {
  const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}\\b`, 'm').exec(result.stdout)?.[1] ?? NaN)
  const tests = { passing: count('passing'), failing: count('failing') || 0, pending: count('pending') || 0 }
  const problem =
    typeof result.code !== 'number'
      ? `killed by ${result.code}`
      : Number.isNaN(tests.passing)
        ? `no "N passing" summary (exit ${result.code})`
        : result.code !== Math.min(tests.failing, 255)
          ? `exit ${result.code} but ${tests.failing} failing`
          : tests.passing + tests.failing + tests.pending < set.versions
            ? `only ${tests.passing + tests.failing + tests.pending} tests for ${set.versions} versions: it did not test the copy's schemas`
            : undefined
  if (problem === undefined) return tests
  throw new RunFailed(`jsonschema-tools' tests under mocha failed to run: ${problem}; its stderr:\n${result.stderr.trim() || '(empty)'}\nits stdout (last lines):\n${lastLines(result.stdout, 20)}`)
}

/**
 * The failing tests in mocha's failure list: the title ("  1) Schema …", nested describes on the
 * following lines, the test's own ending with ":") and the first line of its error.
 */
function failureList(stdout: string): string[] {
  const lines = stdout.split('\n')
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+\d+\) /.test(lines[i]!)) continue
    const title: string[] = []
    let j = i
    for (; j < lines.length; j++) {
      const line = lines[j]!.trim()
      if (line === '') continue
      title.push(line)
      if (line.endsWith(':')) break
    }
    const error = lines.slice(j + 1).find((l) => l.trim() !== '')?.trim() ?? ''
    out.push(`${title.join(' › ').replace(/:$/, '')} — ${error.slice(0, 200)}`)
    i = j
  }
  return out.slice(0, 20).concat(out.length > 20 ? [`… and ${out.length - 20} more`] : [])
}

/** The line of `result`'s output matching `pattern` (Eventplane's closing summary). */
function summaryLine(result: Timed, pattern: RegExp): string | undefined {
  return `${result.stdout}\n${result.stderr}`.split('\n').find((l) => pattern.test(l))?.trim()
}

function testCount(tests: MochaCount): string {
  return `${tests.passing + tests.failing + tests.pending} tests: ${tests.passing} passing, ${tests.failing} failing, ${tests.pending} pending`
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n')
}

function report(results: Result[]): void {
  const ms = (v: number) => fixed(v, 0)
  console.log('\nschema lint + compat (eventplane schema check --all) of whole repositories, ms (wall time from spawn to exit); ratio = eventplane / jsonschema-tools, below 1 = eventplane faster')
  const summary: { name: string; medianRatio: number; minRatio: number; met: boolean }[] = []
  for (const { set, rows } of results) {
    const ratios = rows.map((r) => r.ratio)
    const column = (f: (r: Row) => number) => rows.map(f)
    const medianRatio = median(ratios)
    console.log(`\n### ${set.name}: ${set.versions} versions, ${set.titles} titles; jsonschema-tools ran ${testCount(rows[0]!.tests)}\n`)
    console.log(
      table(
        ['round', 'eventplane schema check', 'jsonschema-tools tests', 'ratio', 'other CPU %'],
        [
          ...rows.map((r) => [String(r.round), ms(r.eventplaneMs), ms(r.toolsMs), fixed(r.ratio, 2), fixed(r.otherPercent, 0)]),
          [
            'median',
            ms(median(column((r) => r.eventplaneMs))),
            ms(median(column((r) => r.toolsMs))),
            fixed(medianRatio, 2),
            '',
          ],
          ['min', ms(min(column((r) => r.eventplaneMs))), ms(min(column((r) => r.toolsMs))), fixed(min(ratios), 2), ''],
        ],
        [false, true, true, true, true],
      ),
    )
    const met = medianRatio <= target
    summary.push({ name: set.name, medianRatio, minRatio: min(ratios), met })
    console.log(`\nratio eventplane / jsonschema-tools: median ${fixed(medianRatio, 2)}, min ${fixed(min(ratios), 2)} (the median row's ratio is the median of the per-round ratios)`)
    console.log(`target: eventplane ≤ ${target} × jsonschema-tools: ${met ? 'met' : 'not met'} (median ratio ${fixed(medianRatio, 2)})`)
  }

  const generated = results.filter((r) => r.set.size !== undefined)
  const growth: Record<string, unknown> = {}
  if (generated.length > 0) {
    console.log(
      '\ngrowth over the generated repositories (median times; growth = (time at the largest / time at the smallest) / (largest / smallest size): ' +
        '≈1 linear, ≈ the size ratio quadratic, below 1 while fixed costs such as Node start-up dominate; marginal = the time each further version adds):',
    )
    for (const [name, pick] of [
      ['eventplane', (r: Row) => r.eventplaneMs],
      ['jsonschema-tools', (r: Row) => r.toolsMs],
    ] as const) {
      const points = generated.map((r) => ({ size: r.set.size!, ms: median(r.rows.map(pick)) }))
      const first = points[0]!
      const last = points[points.length - 1]!
      const factor = points.length > 1 ? last.ms / first.ms / (last.size / first.size) : NaN
      growth[name] = { points, factor, marginalMsPerVersion: points.length > 1 ? (last.ms - first.ms) / (last.size - first.size) : NaN }
      console.log(
        `  ${name}: ${points.map((p) => `${p.size} versions ${ms(p.ms)} ms (${fixed(p.ms / p.size, 2)} ms/version)`).join(', ')}` +
          (points.length > 1
            ? `; growth ${fixed(factor, 2)} (${fixed(last.size / first.size, 1)}× the versions, ${fixed(last.ms / first.ms, 1)}× the time); ` +
              `marginal ${fixed((last.ms - first.ms) / (last.size - first.size), 2)} ms/version from ${first.size} to ${last.size}`
            : '; one size only: no growth'),
      )
    }
  }
  if (unpinnedWarning()) console.log(unpinnedWarning())
  const disturbed = results.some((r) => r.rows.some((row) => row.otherPercent > 20))
  console.log(
    `\nother CPU %: how busy core 1 was during the timed work, which ran on core 0 (the harness itself is on core 1 but idle then): ` +
      `other processes on this shared machine${disturbed ? '. WARNING: over 20 % in some rounds: those numbers are disturbed' : ''}`,
  )
  console.log(
    `raw results: ${relative(
      repoRoot,
      saveResults('schema-tools', {
        baseline: `@wikimedia/jsonschema-tools ${toolsVersion} tests.all() under mocha ${mochaVersion}`,
        target,
        sets: results.map((r) => ({ ...r.set, template: undefined, rows: r.rows, failures: r.failures })),
        summary,
        growth,
      }),
    )}`,
  )
}
