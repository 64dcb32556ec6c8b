/**
 * `npm run bench -- <name> [flags]`: builds (so the compiled server and CLI are what is
 * measured), then runs one benchmark, which prints a table. With no name, or --help, lists them.
 * Benchmarks are not part of `npm test`.
 */
import { spawnSync } from 'node:child_process'
import { hasTaskset, repoRoot, UsageError, type Benchmark } from './lib.ts'

const benchmarks: { name: string; summary: string; load: () => Promise<Benchmark> }[] = [
  {
    name: 'schema-get',
    summary: 'req/s of a cached versioned schema GET on one core, against a bare node:http responder',
    load: () => import('./schema-get.ts'),
  },
  {
    name: 'intake',
    summary: 'events/s of POST /v1/events (validated, durably appended) at batches of 1 and 100 on one core, against a bare node:http + JSON.parse server',
    load: () => import('./intake.ts'),
  },
  {
    name: 'versus',
    summary: 'POST /v1/events of this tree against another commit (--base), both on one core at once: the ratio of their costs, robust to a noisy machine',
    load: () => import('./versus.ts'),
  },
  {
    name: 'append',
    summary: "the durable append per event, in process: the SQLite log's appendEach against encoding, a bare SQLite insert of the same batches and a raw write(2)",
    load: () => import('./append.ts'),
  },
  {
    name: 'profile',
    summary: 'where the intake spends its time, per event: eventplane serve under --cpu-prof with the intake benchmark\'s load, by part of the pipeline',
    load: () => import('./profile.ts'),
  },
  {
    name: 'sse',
    summary: 'SSE fan-out to 1k/5k/10k clients: delivered events/s at p99 < 250 ms, idle memory per connection, against a log reader per client (KafkaSSE)',
    load: () => import('./sse.ts'),
  },
  {
    name: 'kafka',
    summary: 'events/s of POST /v1/events with the event log on a real Kafka broker, against the embedded SQLite log; SSE latency through each',
    load: () => import('./kafka.ts'),
  },
  {
    name: 'failover',
    summary: 'a 3-node Kafka cluster loses a leader (kill -9, SIGTERM) or 2 of 3 brokers under load: acknowledged, lost, duplicates seen, answer times, /readyz, SSE latency on healthy partitions',
    load: () => import('./failover.ts'),
  },
  {
    name: 'producer',
    summary: "events/s that @eventplane/client's Producer gets into a local intake, against a raw fetch loop posting the same batches",
    load: () => import('./producer.ts'),
  },
  {
    name: 'pipe',
    summary: 'events/s of eventplane pipe from an NDJSON file into the embedded log (--validate) and back out, against a bare node:readline + JSON.parse process',
    load: () => import('./pipe.ts'),
  },
  {
    name: 'materialize',
    summary: 'time to materialize the 53 schemas of the WMF primary fixture, against jsonschema-tools',
    load: () => import('./materialize.ts'),
  },
  {
    name: 'schema-tools',
    summary: "schema lint + compat of whole repositories (WMF primary fixture, generated 250/500/1000 versions), against jsonschema-tools' tests under mocha",
    load: () => import('./schema-tools.ts'),
  },
]

function list(): string {
  const width = Math.max(...benchmarks.map((b) => b.name.length))
  return `usage: npm run bench -- <name> [--no-build] [flags]   (npm run bench -- <name> --help for its flags)

benchmarks:
${benchmarks.map((b) => `  ${b.name.padEnd(width)}  ${b.summary}`).join('\n')}

--no-build  skip "npm run build" (only when dist/ is known to be current)`
}

async function main(argv: string[]): Promise<number> {
  const build = !argv.includes('--no-build')
  const given = argv.filter((a) => a !== '--no-build')
  const name = given[0] !== undefined && !given[0].startsWith('-') ? given[0] : undefined
  const args = given.slice(name === undefined ? 0 : 1)
  if (name === undefined) {
    const asked = given.length === 0 || given.includes('--help') || given.includes('-h')
    ;(asked ? console.log : console.error)(list())
    return asked ? 0 : 2
  }
  const benchmark = benchmarks.find((b) => b.name === name)
  if (benchmark === undefined) {
    console.error(`no benchmark named ${JSON.stringify(name)}\n\n${list()}`)
    return 2
  }
  const module = await benchmark.load()
  if (args.includes('--help') || args.includes('-h')) {
    console.log(module.usage)
    return 0
  }
  let start: () => Promise<number>
  try {
    start = module.prepare(args)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`${error.message}\n\n${module.usage}`)
    return 2
  }
  if (build) {
    console.log('== npm run build')
    const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, stdio: 'inherit' })
    if (built.status !== 0) {
      console.error(`build failed (${built.error?.message ?? `exit ${built.status}`}); not benchmarking a stale dist/`)
      return 1
    }
  }
  // The harness itself (spawning, IPC, reading /proc) stays off core 0, where what is measured runs.
  if (hasTaskset()) spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
  console.log(`== bench ${name} ${args.join(' ')}`.trimEnd())
  return start()
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
