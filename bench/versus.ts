/**
 * versus: the intake of this tree against the intake of another commit, both at the same time
 * on the same core. Each server gets its own load generator (both on core 1); the two servers
 * share core 0, and whatever else the machine is doing hits both alike, so the ratio of the
 * requests each one answers is the ratio of their costs per request. On this shared machine,
 * where runs of one server a few minutes apart differ by 30 % and more, an A/A run (a commit
 * against itself, 3 rounds) gave medians of 1.004 at batch 1 and 0.991 at batch 100: the
 * regression check for a change to the hot path (single rounds at batch 100 vary more).
 *
 * The other commit is checked out with `git worktree add` into a temp folder, given this
 * tree's node_modules, and built there with tsc; both run `dist/cli/bin.js serve` with their
 * own bundled config, a fresh data_dir, log level warn.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startKafka, type KafkaBroker } from '../scripts/kafka/broker.ts'
import {
  benchDir,
  fixed,
  freePort,
  hasTaskset,
  inTempDir,
  machineNotes,
  median,
  parseFlags,
  pinned,
  repoRoot,
  serverEnv,
  spawnPinned,
  stop,
  table,
  thousands,
  track,
  UsageError,
  waitUntilAnswering,
} from './lib.ts'
import { loadFlags, loadOptions } from './intake.ts'

export const usage = `npm run bench -- versus [--base REV] [--kafka] [--rounds N] [--duration S] [--warmup S] [--connections N] [--batches 1,100]

POST /v1/events of this tree's eventplane serve against that of another commit, both pinned to
core 0 at the same time, each loaded by its own autocannon (both on core 1). The ratio of the
requests they answer in the same window is the ratio of their costs: robust to a noisy shared
machine, where separate runs are not (take the median of the rounds). Ratio this/base above 1:
this tree is faster.

  --base REV       the commit to compare with (default HEAD: the tree's uncommitted changes
                   against the last commit; HEAD~1, a tag, a hash…)
  --kafka          both servers on a real Kafka broker (started here, pinned to core 1 with
                   the load generators) instead of the embedded log; needs Java 17+ and Maven
  --rounds N       rounds per batch size (default 3; each starts both servers afresh)
  --duration S     measured seconds per round (default 15)
  --warmup S       warm-up seconds per round, not measured (default 5)
  --connections N  autocannon connections per server (default 10)
  --batches LIST   events per request, comma-separated (default 1,100)`

interface Options {
  base: string
  kafka: boolean
  rounds: number
  duration: number
  warmup: number
  connections: number
  batches: number[]
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { base: { type: 'string' }, kafka: { type: 'boolean' }, ...loadFlags } as const)
  const base = values.base ?? 'HEAD'
  const resolved = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${base}^{commit}`], { cwd: repoRoot, encoding: 'utf8' })
  if (resolved.status !== 0) throw new UsageError(`--base ${base} is not a commit of this repository`)
  const options: Options = { base: resolved.stdout.trim(), kafka: values.kafka === true, ...loadOptions(values, 3) }
  return () => inTempDir('versus', (work) => run(work, options))
}

/** A eventplane/test/event event like bench/intake's: a varying text and a few map entries. */
function event(i: number) {
  return { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `versus event number ${i} of the batch`, test_map: { a: `v${i}`, b: 'w' } }
}

async function run(work: string, options: Options): Promise<number> {
  console.log(machineNotes('both servers on core 0 at once, their load generators on core 1'))
  console.log(`base: ${options.base.slice(0, 10)} (git worktree in a temp folder, this tree's node_modules, built with tsc)`)
  console.log(`settings: ${options.rounds} rounds per batch size, ${options.warmup} s warm-up + ${options.duration} s measured, ${options.connections} connections per server`)
  const baseTree = join(work, 'base')
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' })
  const added = git('worktree', 'add', '--detach', baseTree, options.base)
  if (added.status !== 0) throw new Error(`git worktree add failed: ${added.stderr}`)
  let kafka: KafkaBroker | undefined
  try {
    /** The event log both servers use: the embedded one in a folder each, or one Kafka broker. */
    let logEnv: Record<string, string> = {}
    if (options.kafka) {
      kafka = await startKafka({ partitions: 1, quiet: true })
      if (hasTaskset()) spawnSync('taskset', ['-a', '-p', '-c', '1', String(kafka.pid)], { stdio: 'ignore' })
      console.log(`event log: Kafka ${kafka.version} broker at ${kafka.bootstrap}${hasTaskset() ? ', pinned to core 1' : ''}; both servers produce to its topics`)
      logEnv = { EVENTPLANE_EVENT_LOG: 'kafka', EVENTPLANE_KAFKA_BROKERS: kafka.bootstrap }
    }
    symlinkSync(join(repoRoot, 'node_modules'), join(baseTree, 'node_modules'))
    const built = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: baseTree, stdio: 'inherit' })
    if (built.status !== 0) throw new Error(`building ${options.base.slice(0, 10)} failed`)
    const rows: string[][] = []
    const summary: string[] = []
    for (const batch of options.batches) {
      const body = join(work, `body-${batch}.json`)
      writeFileSync(body, JSON.stringify(Array.from({ length: batch }, (_, i) => event(i))))
      const ratios: number[] = []
      for (let round = 1; round <= options.rounds; round++) {
        // Which server starts first alternates, so neither always gets the warmer start.
        const trees = round % 2 === 1 ? ([['base', baseTree], ['this', repoRoot]] as const) : ([['this', repoRoot], ['base', baseTree]] as const)
        const servers: Array<{ name: string; child: ChildProcess; url: string }> = []
        try {
          for (const [name, tree] of trees) {
            const port = await freePort()
            const child = track(
              spawnPinned(0, process.execPath, [join(tree, 'dist/cli/bin.js'), 'serve', '--port', String(port)], {
                cwd: tree,
                env: { ...serverEnv(), EVENTPLANE_DATA_DIR: join(work, `${name}-${batch}-${round}`), EVENTPLANE_LOG_LEVEL: 'warn', ...logEnv },
                stdio: ['ignore', 'ignore', 'inherit'],
              }),
            )
            const url = `http://127.0.0.1:${port}`
            servers.push({ name, child, url })
            await waitUntilAnswering(child, `${url}/healthz`, `${name} server`)
          }
          const answered = await Promise.all(servers.map((server) => load(server.url, body, options)))
          const byName = new Map(servers.map((server, i) => [server.name, answered[i]!]))
          const thisTree = byName.get('this')!
          const baseTree = byName.get('base')!
          const ratio = thisTree.requests / baseTree.requests
          ratios.push(ratio)
          rows.push([String(batch), String(round), thousands(baseTree.requests / options.duration), thousands(thisTree.requests / options.duration), fixed(ratio, 3), `${baseTree.errors}/${thisTree.errors}`])
        } finally {
          for (const server of servers) await stop(server.child)
        }
      }
      summary.push(`batch ${batch}: median ratio this/base ${fixed(median(ratios), 3)} (rounds: ${ratios.map((r) => fixed(r, 3)).join(', ')})`)
    }
    console.log()
    console.log(table(['batch', 'round', 'base req/s', 'this req/s', 'ratio this/base', 'errors base/this'], rows))
    console.log()
    console.log(summary.join('\n'))
    console.log('(both served at once on one core: a ratio of 1 means the same cost per request; A/A medians of 3 rounds were within 0.01 of 1 here, single rounds at batch 100 within 0.15)')
    return 0
  } finally {
    await kafka?.stop()
    git('worktree', 'remove', '--force', baseTree)
  }
}

/** Runs bench/load.mjs on core 1 against `url`; resolves with the requests answered 201 in the measured window. */
function load(url: string, bodyFile: string, options: Options): Promise<{ requests: number; errors: number }> {
  const request = { method: 'POST', bodyFile, headers: { 'content-type': 'application/json' } }
  const p = pinned(1, process.execPath, [join(benchDir, 'load.mjs'), `${url}/v1/events`, String(options.connections), String(options.warmup), String(options.duration), JSON.stringify(request)])
  const child = track(spawn(p.command, p.args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  return new Promise((resolve, reject) => {
    child.on('message', (message: { type: string; result?: { responses2xx?: number; non2xx?: number; errors?: number } }) => {
      if (message.type !== 'measure-end' || message.result === undefined) return
      const result = message.result
      resolve({ requests: result.responses2xx ?? 0, errors: (result.non2xx ?? 0) + (result.errors ?? 0) })
    })
    child.once('exit', (code) => reject(new Error(`the load generator exited (${code}) before the end of its run`)))
  })
}
