/**
 * `npm run attack [-- --quick] [--only NAME]… [--seed N] [--out FILE] [--dist]`: runs the
 * hostile-input suite against a live server of its own and prints one row per attack (the
 * answers seen, RSS before and after, the worst /healthz latency, good events acknowledged
 * and found in the log, the verdict), then what failed. Exits 1 when any target fails.
 */
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { backgroundLoadPercent, repoRoot, table } from '../bench/lib.ts'
import { attacks } from './attacks.ts'
import { Suite, fmtMiB, type AttackResult } from './harness.ts'

const usage = `usage: npm run attack -- [--quick] [--only NAME]… [--seed N] [--out FILE] [--dist]

Runs every attack (or the ones named) against a live Eventplane server started for the run
(its own config, stream config and SQLite log in a temp folder), and checks, per attack:
the process still answers; no 5xx but the documented retryable ones; the worst GET /healthz
(probed every 10 ms from another address) under 100 ms; RSS back within 20 % (or 15 MiB) of
its value before; every event acknowledged (201/207, or 202 with ?hasty) in the log exactly
once; no answer naming a path of the server; and the attack's own expectations.

  --quick      the short version (under a minute; short timeouts configured)
  --only NAME  run only this attack (repeatable)
  --seed N     seed of the randomized corpus (printed by every run; replays it)
  --out FILE   also write the table and the failures as Markdown
  --dist       build (npm run build), then attack the compiled dist/cli/bin.js instead of src/ through tsx

attacks:
${attacks.map((a) => `  ${a.name.padEnd(20)} ${a.group}`).join('\n')}

Exit code: 0 when every target holds, 1 when one fails, 2 on a usage error.`

function verdict(result: AttackResult): string {
  if (result.passed) return 'ok'
  const tags = [...new Set(result.failures.map((f) => f.slice(0, f.indexOf(':'))))]
  return `FAIL (${tags.join(', ')})`
}

/** The table as printed and as written to --out (Markdown). */
export function resultsTable(results: readonly AttackResult[]): string {
  return table(
    ['attack', 'answer', 'RSS before → after (MB)', 'worst /healthz (ms)', 'good events accepted / found in log', 'verdict'],
    results.map((r) => [
      r.name,
      r.answers,
      `${fmtMiB(r.rssBeforeMiB * 1048576)} → ${fmtMiB(r.rssAfterMiB * 1048576)}`,
      r.probes === 0 ? 'n/a' : String(Math.round(r.worstHealthMs)),
      r.good === undefined ? '–' : `${r.good.accepted} / ${r.good.found}`,
      verdict(r),
    ]),
    [false, false, true, true, true, false],
  )
}

/** What failed, and the notes, per attack. */
export function resultsDetails(results: readonly AttackResult[]): string {
  const lines: string[] = []
  for (const r of results) {
    if (r.passed && r.notes.length === 0) continue
    lines.push(`${r.name}: ${r.passed ? 'ok' : 'FAIL'} (${(r.ms / 1000).toFixed(1)} s; RSS peak ${r.rssPeakMiB.toFixed(0)} MB; ${r.probes} probes)`)
    for (const failure of r.failures) lines.push(`  ✗ ${failure}`)
    for (const note of r.notes) lines.push(`  · ${note}`)
  }
  return lines.join('\n')
}

async function main(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string', multiple: true },
        seed: { type: 'string' },
        out: { type: 'string' },
        dist: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`)
    return 2
  }
  if (values.help) {
    console.log(usage)
    return 0
  }
  const names = values.only ?? []
  const unknown = names.filter((n) => !attacks.some((a) => a.name === n))
  if (unknown.length > 0) {
    console.error(`no attack named ${unknown.map((n) => JSON.stringify(n)).join(', ')}\n\n${usage}`)
    return 2
  }
  let seed: number | undefined
  if (values.seed !== undefined) {
    seed = Number(values.seed)
    if (!Number.isInteger(seed) || seed < 0) {
      console.error(`--seed must be a non-negative integer, not ${JSON.stringify(values.seed)}\n\n${usage}`)
      return 2
    }
  }
  if (values.dist === true) {
    console.log('== npm run build')
    const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, stdio: 'inherit' })
    if (built.status !== 0) {
      console.error(`build failed (${built.error?.message ?? `exit ${built.status}`}); not attacking a stale dist/`)
      return 1
    }
  }
  const selected = names.length === 0 ? attacks : attacks.filter((a) => names.includes(a.name))
  const quick = values.quick === true
  const suite = new Suite({ quick, dist: values.dist === true, ...(seed === undefined ? {} : { seed }), progress: (line) => console.log(`   ${line}`) })
  const interrupted = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping the server`)
    void suite.stop().finally(() => process.exit(130))
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)

  const started = Date.now()
  // Latency and RSS targets mean little on a machine that is busy with something else: say so.
  const background = await backgroundLoadPercent(1000)
  const header = [
    `== attack${quick ? ' --quick' : ''}${names.map((n) => ` --only ${n}`).join('')} --seed ${suite.seed}`,
    `date: ${new Date().toISOString()}`,
    `machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}`,
    `background load before the run: ${background.toFixed(0)} % of one core (load average ${loadavg()[0]!.toFixed(1)})${background > 30 ? ': the machine is busy with something else, expect noisy latencies' : ''}`,
  ].join('\n')
  console.log(header)
  const results: AttackResult[] = []
  try {
    await suite.start()
    for (const attack of selected) results.push(await suite.run(attack))
  } finally {
    await suite.stop()
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1)
  const failed = results.filter((r) => !r.passed)
  const summary = `${results.length - failed.length} of ${results.length} attacks met every target (${minutes} min)${failed.length > 0 ? `; failed: ${failed.map((r) => r.name).join(', ')}` : ''}`
  const details = resultsDetails(results)
  const notes = suite.notes.map((n) => `· ${n}`).join('\n')
  console.log(`\n${resultsTable(results)}\n\n${details}${notes ? `\n\nrun:\n${notes}` : ''}\n\n${summary}`)
  if (values.out !== undefined) {
    const markdown = [
      '```',
      header,
      '```',
      '',
      resultsTable(results),
      '',
      details ? `\`\`\`\n${details}\n\`\`\`\n` : '',
      notes ? `Run notes:\n\n\`\`\`\n${notes}\n\`\`\`\n` : '',
      summary,
      '',
    ].join('\n')
    writeFileSync(values.out, markdown)
    console.log(`written to ${values.out}`)
  }
  return failed.length > 0 ? 1 : 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exitCode = 1
  },
)
