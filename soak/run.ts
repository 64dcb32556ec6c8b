/**
 * `npm run soak`: builds, then runs the soak (soak/soak.ts) on the compiled server and prints a
 * line per sample and the checks. Exits 1 when a check fails, 2 on a usage mistake.
 */
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { hasTaskset, inTempDir, parseFlags, positiveInt, repoRoot, UsageError } from '../bench/lib.ts'
import { runSoak } from './soak.ts'

const usage = `npm run soak -- [--minutes 10] [--rate 200] [--clients 1000] [--groups 10] [--sample-s S]
                    [--warmup-s S] [--reload-s 30] [--gets-per-s 20] [--no-pin] [--node-options O] [--json FILE]

Runs the compiled eventplane serve (as npm start does: bundled schemas and stream config, the
embedded SQLite log in a temporary folder) under a mixed load, and checks it held:

  intake    --rate events/s through POST /v1/events, in requests of 1 to 20 events, plus one
            invalid event every 2 s (must be answered 400)
  streams   --clients SSE clients, connected before the first event, each filtering one of
            --groups groups on the server (half a CEL filter, half match[meta.domain])
  reads     --gets-per-s schema and stream config GETs (must be answered 200)
  reloads   every --reload-s, the stream config rewritten and SIGHUP sent: a stream added, or,
            every fourth edit, a file that does not parse (the last good config must stay)

Every --sample-s (default: a twelfth of the run, at most 10 s) it prints the server's RSS and
CPU, its event-loop delay p99, p99 latencies of intake requests, GETs and SSE deliveries (from
the POST to receipt) and the counts. At the end it checks:

  - RSS growth after --warmup-s (default: a tenth of the run, at most 60 s) under 10 %: the
    highest RSS in the last third of the samples after warm-up against the highest before it
    (RSS is a saw, V8's young generation grown under load and given back now and then; memory
    that grows makes new highs at the end);
  - event-loop delay p99 under 50 ms in every sample after warm-up;
  - every acknowledged event exactly once in the log (the SQLite file, after the server stopped)
    and in a full SSE replay (?since=0);
  - every SSE client got every event of its filter, once, and nothing else;
  - every answer as expected, every reload loaded or refused as it should be, exit 0 on SIGTERM.

The server runs on core 0 and the load on core 1 (taskset), unless --no-pin.
The 1-minute version runs in npm test (test/soak/soak.test.ts).

  --minutes M    minutes of load (default 10; fractions allowed, at least 0.5)
  --node-options O  more node flags for the server, after npm start's (e.g. --trace-gc)
  --json FILE    also write the samples, totals and checks as JSON`

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage)
    return 0
  }
  const flags = parseFlags(argv, {
    minutes: { type: 'string' },
    rate: { type: 'string' },
    clients: { type: 'string' },
    groups: { type: 'string' },
    'sample-s': { type: 'string' },
    'warmup-s': { type: 'string' },
    'reload-s': { type: 'string' },
    'gets-per-s': { type: 'string' },
    'no-pin': { type: 'boolean' },
    'node-options': { type: 'string' },
    json: { type: 'string' },
  })
  const minutes = flags.minutes === undefined ? 10 : Number(flags.minutes)
  if (!Number.isFinite(minutes) || minutes < 0.5) throw new UsageError(`--minutes must be a number of at least 0.5, not ${flags.minutes}`)
  const seconds = Math.round(minutes * 60)
  const pin = !flags['no-pin'] && hasTaskset()

  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('npm run build failed')

  return inTempDir('soak', async (dir) => {
    const report = await runSoak({
      seconds,
      warmupSeconds: positiveInt(flags['warmup-s'], 'warmup-s', Math.min(60, Math.round(seconds / 10))),
      rssGrowthLimit: 0.1,
      sampleSeconds: positiveInt(flags['sample-s'], 'sample-s', Math.max(2, Math.min(10, Math.round(seconds / 12)))),
      rate: positiveInt(flags.rate, 'rate', 200),
      clients: positiveInt(flags.clients, 'clients', 1000),
      groups: positiveInt(flags.groups, 'groups', 10),
      reloadEverySeconds: positiveInt(flags['reload-s'], 'reload-s', 30),
      getsPerSecond: positiveInt(flags['gets-per-s'], 'gets-per-s', 20),
      server: 'dist',
      nodeOptions: flags['node-options']?.split(/\s+/).filter((o) => o !== '') ?? [],
      pin,
      dir,
      say: (line) => console.log(line),
    })
    console.log('')
    for (const check of report.checks) console.log(`${check.ok ? 'ok  ' : 'FAIL'}  ${check.name}: ${check.detail}`)
    console.log(`\n${Object.entries(report.totals).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`).join(', ')}`)
    if (!pin) console.log('\nunpinned: server and load share the cores')
    if (flags.json !== undefined) writeFileSync(flags.json, `${JSON.stringify(report, null, 2)}\n`)
    return report.ok ? 0 : 1
  })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${usage}`)
      process.exit(2)
    }
    console.error(error)
    process.exit(1)
  },
)
