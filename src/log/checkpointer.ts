import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'

/**
 * Moves SQLite's WAL checkpoints off the event loop. A checkpoint copies the WAL into the
 * database file and, with `synchronous = NORMAL`, syncs that file: done by the writing
 * connection (SQLite's default, every 1000 pages) it stalls appends for milliseconds and
 * halved append throughput here (docs/decisions.md). A worker thread with its own
 * connection runs PASSIVE checkpoints on a timer instead; they never block the writer, and
 * the writer keeps a far larger automatic checkpoint only as a backstop.
 *
 * A checkpoint that fails (a full disk: the database file cannot grow) leaves the WAL as it
 * was, and appends go on into the WAL while it has room; the next checkpoint retries. Only the
 * first failure of a run, and the first checkpoint that works after it, are reported.
 */
export interface Checkpointer {
  /** Stops the timer, runs a last checkpoint that empties the WAL, closes the connection. */
  stop(): Promise<void>
}

// The worker is CommonJS source run with `eval`, so the same code serves tsx and compiled runs.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.module)
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs })
let failing
const run = (mode) => {
  try {
    const [row] = db.pragma('wal_checkpoint(' + mode + ')')
    if (failing !== undefined) parentPort.postMessage({ recovered: { failures: failing.failures, failingMs: Date.now() - failing.since } })
    failing = undefined
    return row
  } catch (error) {
    const message = String(error && error.message || error)
    if (failing === undefined || failing.message !== message) parentPort.postMessage({ error: message })
    failing = { message, failures: (failing ? failing.failures : 0) + 1, since: failing ? failing.since : Date.now() }
  }
}
const timer = setInterval(() => run('PASSIVE'), workerData.intervalMs)
parentPort.on('message', (message) => {
  if (message !== 'stop') return
  clearInterval(timer)
  run('TRUNCATE')
  db.close()
  parentPort.postMessage({ stopped: true })
})
`

export function startCheckpointer(options: { path: string; intervalMs: number; busyTimeoutMs: number; logger?: Logger | undefined }): Checkpointer {
  const require = createRequire(import.meta.url)
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: { module: require.resolve('better-sqlite3'), path: options.path, intervalMs: options.intervalMs, busyTimeoutMs: options.busyTimeoutMs },
  })
  worker.unref()
  let stopped: Promise<void> | undefined
  worker.on('message', (message: { error?: string; recovered?: { failures: number; failingMs: number } }) => {
    if (message.error !== undefined) options.logger?.warn({ error: message.error }, 'WAL checkpoint failed; checkpoints are retried, and logged again when one works')
    if (message.recovered !== undefined) options.logger?.info(message.recovered, 'WAL checkpoints work again')
  })
  worker.on('error', (error) => options.logger?.error({ err: error }, 'the checkpoint worker failed'))
  return {
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        const done = () => resolve()
        worker.once('exit', done)
        worker.once('message', (message: { stopped?: boolean }) => {
          if (message.stopped) void worker.terminate().then(done, done)
        })
        worker.postMessage('stop')
        // A worker that cannot finish (a stuck lock) must not hold up shutdown forever.
        setTimeout(() => void worker.terminate().then(done, done), 5000).unref()
      })
      return stopped
    },
  }
}
