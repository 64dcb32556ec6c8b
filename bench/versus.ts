/**
 * versus: the intake of this tree against the intake of another commit, both at the same time
 * on the same core. Each server gets its own load generator (both on core 1); the two servers
 * share core 0, and whatever else the machine is doing hits both alike, so the ratio of the
 * requests each one answers is the ratio of their costs per request. On this shared machine,
 * where runs of one server a few minutes apart differ by 30 % and more, an A/A run (a commit
 * against itself, 3 rounds) gave medians of 1.004 at batch 1 and 0.991 at batch 100: the
 * regression check for a change to the hot path (single rounds at batch 100 vary more).
 *
 * With `--against bare|bare-durable`, the other server is one of bench/intake's baselines
 * instead: the same measurement of the intake's cost against the limit of the machine, served
 * at once so that the host's swings (bench/intake's rounds in turn ranged 0.18–0.34 at batch
 * 100 in one run) hit both alike.
 *
 * The other commit is checked out with `git worktree add` into a temp folder, given this
 * tree's node_modules, and built there with tsc; both run `dist/cli/bin.js serve` (as their npm start does) with their
 * own bundled config, a fresh data_dir, log level warn.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { symlinkSync } from 'node:fs'
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
  serveArgs,
  serverEnv,
  spawnPinned,
  stop,
  table,
  thousands,
  track,
  UsageError,
  waitUntilAnswering,
} from './lib.ts'
import { loadFlags, loadOptions, writeBodies } from './intake.ts'

export const usage = `npm run bench -- versus [--base REV | --against bare|bare-durable] [--kafka] [--node-options OPTIONS] [--rounds N] [--duration S] [--warmup S] [--connections N] [--batches 1,100]

POST /v1/events of this tree's eventplane serve against that of another commit, both pinned to
core 0 at the same time, each loaded by its own autocannon (both on core 1). The ratio of the
requests they answer in the same window is the ratio of their costs: robust to a noisy shared
machine, where separate runs are not (take the median of the rounds). Ratio this/base above 1:
this tree is faster.

  --base REV       the commit to compare with (default HEAD: the tree's uncommitted changes
                   against the last commit; HEAD~1, a tag, a hash…)
  --against KIND   this tree's server against one of bench/intake's baselines instead of a
                   commit: bare (node:http + JSON.parse) or bare-durable (the same plus a
                   group-committed append of each body to a file). Served at once, a slower
                   or busier machine slows both alike, where bench/intake's runs in turn
                   swing with it (its ratio at batch 100 ranged 0.18–0.34 in one run here)
  --node-options OPTIONS
                   node flags for this tree's server only (NODE_OPTIONS), to measure a
                   runtime setting: --base HEAD --node-options=--max-semi-space-size=64
  --kafka          both servers on a real Kafka broker (started here, pinned to core 1 with
                   the load generators) instead of the embedded log; needs Java 17+ and Maven
  --rounds N       rounds per batch size (default 3; each starts both servers afresh)
  --duration S     measured seconds per round (default 15)
  --warmup S       warm-up seconds per round, not measured (default 5)
  --connections N  autocannon connections per server (default 10)
  --batches LIST   events per request, comma-separated (default 1,100)`

interface Options {
  base: string
  /** A baseline of bench/intake to run against instead of the base commit. */
  against: 'bare' | 'bare-durable' | undefined
  kafka: boolean
  nodeOptions: string | undefined
  rounds: number
  duration: number
  warmup: number
  connections: number
  batches: number[]
}

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { base: { type: 'string' }, against: { type: 'string' }, kafka: { type: 'boolean' }, 'node-options': { type: 'string' }, ...loadFlags } as const)
  const against = values.against
  if (against !== undefined && against !== 'bare' && against !== 'bare-durable') throw new UsageError(`--against takes bare or bare-durable, not ${against}`)
  if (against !== undefined && (values.base !== undefined || values.kafka === true)) throw new UsageError('--against runs this tree against a baseline: without --base and --kafka')
  const base = values.base ?? 'HEAD'
  const resolved = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${base}^{commit}`], { cwd: repoRoot, encoding: 'utf8' })
  if (resolved.status !== 0) throw new UsageError(`--base ${base} is not a commit of this repository`)
  const options: Options = { base: resolved.stdout.trim(), against, kafka: values.kafka === true, nodeOptions: values['node-options'], ...loadOptions(values, 3) }
  return () => inTempDir('versus', (work) => run(work, options))
}

async function run(work: string, options: Options): Promise<number> {
  console.log(machineNotes('both servers on core 0 at once, their load generators on core 1'))
  const baseName = options.against ?? 'base'
  if (options.against === undefined) console.log(`base: ${options.base.slice(0, 10)} (git worktree in a temp folder, this tree's node_modules, built with tsc)`)
  else console.log(`against: bench/${options.against === 'bare' ? 'bare-intake' : 'bare-durable'}.mjs, bench/intake's ${options.against} baseline`)
  if (options.nodeOptions !== undefined) console.log(`this tree's server runs with NODE_OPTIONS=${options.nodeOptions}`)
  console.log(`settings: ${options.rounds} rounds per batch size, ${options.warmup} s warm-up + ${options.duration} s measured, ${options.connections} connections per server`)
  const baseTree = join(work, 'base')
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' })
  if (options.against === undefined) {
    const added = git('worktree', 'add', '--detach', baseTree, options.base)
    if (added.status !== 0) throw new Error(`git worktree add failed: ${added.stderr}`)
  }
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
    if (options.against === undefined) {
      symlinkSync(join(repoRoot, 'node_modules'), join(baseTree, 'node_modules'))
      const built = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: baseTree, stdio: 'inherit' })
      if (built.status !== 0) throw new Error(`building ${options.base.slice(0, 10)} failed`)
    }
    const bodies = writeBodies(work, options.batches)
    const rows: string[][] = []
    const summary: string[] = []
    for (const batch of options.batches) {
      const body = bodies.files.get(batch)!
      const ratios: number[] = []
      for (let round = 1; round <= options.rounds; round++) {
        // Which server starts first alternates, so neither always gets the warmer start.
        const trees = round % 2 === 1 ? ([['base', baseTree], ['this', repoRoot]] as const) : ([['this', repoRoot], ['base', baseTree]] as const)
        const servers: Array<{ name: string; child: ChildProcess; url: string }> = []
        try {
          for (const [name, tree] of trees) {
            const port = await freePort()
            const url = `http://127.0.0.1:${port}`
            if (name === 'base' && options.against !== undefined) {
              const args = options.against === 'bare' ? [join(benchDir, 'bare-intake.mjs'), String(port)] : [join(benchDir, 'bare-durable.mjs'), String(port), join(work, `bodies-${batch}-${round}.bin`)]
              const child = track(spawnPinned(0, process.execPath, args, { cwd: repoRoot, env: serverEnv(), stdio: ['ignore', 'ignore', 'inherit'] }))
              servers.push({ name, child, url })
              await waitUntilAnswering(child, `${url}/`, options.against)
              continue
            }
            const child = track(
              spawnPinned(0, process.execPath, [...serveArgs(tree), '--port', String(port)], {
                cwd: tree,
                env: {
                  ...serverEnv(),
                  EVENTPLANE_DATA_DIR: join(work, `${name}-${batch}-${round}`),
                  EVENTPLANE_LOG_LEVEL: 'warn',
                  ...logEnv,
                  ...(name === 'this' && options.nodeOptions !== undefined ? { NODE_OPTIONS: options.nodeOptions } : {}),
                },
                stdio: ['ignore', 'ignore', 'inherit'],
              }),
            )
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
      summary.push(`batch ${batch}: median ratio this/${baseName} ${fixed(median(ratios), 3)} (rounds: ${ratios.map((r) => fixed(r, 3)).join(', ')})`)
    }
    console.log()
    console.log(table(['batch', 'round', `${baseName} req/s`, 'this req/s', `ratio this/${baseName}`, `errors ${baseName}/this`], rows))
    console.log()
    console.log(summary.join('\n'))
    if (options.against === undefined) {
      console.log('(both served at once on one core: a ratio of 1 means the same cost per request; A/A medians of 3 rounds were within 0.01 of 1 here, single rounds at batch 100 within 0.15)')
    } else {
      console.log(
        `(both served at once on one core, which the kernel shares between them: the ratio is that of their costs per request, except that time this server spends waiting (for its group commit) goes to the ${options.against} server; bench/intake's targets apply to this ratio at batch 100)`,
      )
    }
    return 0
  } finally {
    await kafka?.stop()
    if (options.against === undefined) git('worktree', 'remove', '--force', baseTree)
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
