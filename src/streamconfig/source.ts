import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import { EventplaneError, toEventplaneError } from '../core/errors.ts'
import type { StreamConfig } from './config.ts'
import { defaultFetchTimeoutMs, parseStreamConfig, readStreamConfigText } from './load.ts'

export interface OpenStreamConfigOptions {
  /** An absolute file path or an http(s) URL. */
  source: string
  /** Reload a file when it changes (default true). Ignored for URLs. */
  watch?: boolean
  /** Fetch a URL again this often (default 60). Ignored for files. */
  refreshIntervalS?: number
  /** Timeout of one fetch of a URL (default 10 s). */
  timeoutMs?: number
  /** Quiet period after a file change before reloading (default 100 ms). */
  debounceMs?: number
  logger: Logger
  /** Metrics `eventplane_stream_config_*` are registered here and removed by close(). */
  registry: Registry
}

export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean; readonly config: StreamConfig }
  | { readonly ok: false; readonly error: EventplaneError; readonly config: StreamConfig }

/**
 * A stream config that stays current: a local YAML file reloaded when it changes, or a URL
 * fetched on an interval. A reload that fails keeps the last good config.
 */
export interface StreamConfigSource {
  readonly source: string
  /** The config in use; frozen. Take it once per request so that one request sees one generation. */
  current(): StreamConfig
  /** Loads the source again now (the server calls this on SIGHUP). Never rejects. */
  reload(): Promise<ReloadResult>
  /** Stops watching and fetching; waits for a reload in progress. */
  close(): Promise<void>
}

/**
 * Loads the stream config and keeps it current. A config that cannot be loaded at start is a
 * thrown error (EVP_STREAM_CONFIG_*); later failures are logged with their code, counted in
 * `eventplane_stream_config_reloads_total{result="error"}` and leave the last good config in use.
 *
 * @example
 * const streams = await openStreamConfig({ source: '/etc/eventplane/streams.yaml', logger, registry })
 * process.on('SIGHUP', () => void streams.reload())
 * streams.current().lookup('test.event')
 */
export async function openStreamConfig(options: OpenStreamConfigOptions): Promise<StreamConfigSource> {
  const { source, logger, registry } = options
  const isUrl = /^https?:\/\//i.test(source)
  const timeoutMs = options.timeoutMs ?? defaultFetchTimeoutMs
  const closing = new AbortController()
  const log = logger.child({ component: 'stream-config', source })

  const read = () => readStreamConfigText(source, { timeoutMs, signal: closing.signal })
  const firstText = await read()
  let textHash = sha256(firstText)
  let generation = 1
  let config = parseStreamConfig(firstText, { source, generation })
  log.info({ generation, streams: config.size }, 'stream config loaded')

  const metrics = createMetrics(registry)
  metrics.lastSuccess.set(1)
  metrics.loadedAt.set(config.loadedAt / 1000)
  metrics.streams.set(config.size)

  async function load(): Promise<ReloadResult> {
    try {
      const text = await read()
      const hash = sha256(text)
      let changed = false
      if (hash !== textHash) {
        const next = parseStreamConfig(text, { source, generation: generation + 1 })
        textHash = hash
        // Only new settings make a new generation: a comment edit keeps ETags valid.
        if (next.etag !== config.etag) {
          generation += 1
          config = next
          changed = true
        }
      }
      metrics.reloads.inc({ result: 'ok' })
      metrics.lastSuccess.set(1)
      metrics.loadedAt.set(config.loadedAt / 1000)
      metrics.streams.set(config.size)
      if (changed) log.info({ generation, streams: config.size }, 'stream config reloaded')
      else log.debug({ generation }, 'stream config unchanged')
      return { ok: true, changed, config }
    } catch (thrown) {
      const error = toEventplaneError(thrown, 'EVP_STREAM_CONFIG_UNAVAILABLE')
      if (closed) return { ok: false, error, config }
      metrics.reloads.inc({ result: 'error' })
      metrics.lastSuccess.set(0)
      const what = `stream config reload failed, keeping generation ${generation}: ${error.message}`
      log.error({ err: error, code: error.code, generation }, what)
      return { ok: false, error, config }
    }
  }

  // At most one load runs; calls during it share one follow-up load, which sees the newest file.
  let running: Promise<ReloadResult> | undefined
  let queued: Promise<ReloadResult> | undefined
  let closed = false
  function reload(): Promise<ReloadResult> {
    if (closed) {
      const error = new EventplaneError('EVP_STREAM_CONFIG_UNAVAILABLE', `stream config source ${source} is closed`)
      return Promise.resolve({ ok: false, error, config })
    }
    if (running === undefined) {
      running = load().finally(() => {
        running = undefined
      })
      return running
    }
    queued ??= running.then(() => {
      queued = undefined
      return reload()
    })
    return queued
  }

  let watcher: FSWatcher | undefined
  let debounce: NodeJS.Timeout | undefined
  let interval: NodeJS.Timeout | undefined
  if (isUrl) {
    const everyMs = Math.max(1, options.refreshIntervalS ?? 60) * 1000
    interval = setInterval(() => void reload(), everyMs)
    interval.unref()
  } else if (options.watch ?? true) {
    const file = source.startsWith('file:') ? fileURLToPath(source) : source
    const name = basename(file)
    const debounceMs = options.debounceMs ?? 100
    // The folder is watched, not the file: editors and config managers replace a file by
    // renaming a new one over it, which ends a watch on the old inode. Kubernetes ConfigMaps
    // swap a `..data` symlink instead, hence the `..` names.
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name && !changed.startsWith('..')) return
      clearTimeout(debounce)
      debounce = setTimeout(() => void reload(), debounceMs)
      debounce.unref()
    })
    watcher.on('error', (error) => log.error({ err: error }, 'stream config watch failed; use reload() or restart'))
  }

  return {
    source,
    current: () => config,
    reload,
    async close() {
      if (closed) return
      closed = true
      watcher?.close()
      clearTimeout(debounce)
      clearInterval(interval)
      closing.abort()
      await queued
      await running
      metrics.remove()
    },
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

const metricNames = [
  'eventplane_stream_config_reloads_total',
  'eventplane_stream_config_last_reload_success',
  'eventplane_stream_config_loaded_timestamp_seconds',
  'eventplane_stream_config_streams',
] as const

function createMetrics(registry: Registry) {
  const registers = [registry]
  const reloads = new Counter({
    name: metricNames[0],
    help: 'Reloads of the stream config after the first load, by result (ok, error).',
    labelNames: ['result'] as const,
    registers,
  })
  reloads.inc({ result: 'ok' }, 0)
  reloads.inc({ result: 'error' }, 0)
  const lastSuccess = new Gauge({
    name: metricNames[1],
    help: '1 when the last load of the stream config succeeded, 0 when it failed and an older config is in use.',
    registers,
  })
  const loadedAt = new Gauge({
    name: metricNames[2],
    help: 'Unix time at which the stream config in use was loaded.',
    registers,
  })
  const streams = new Gauge({
    name: metricNames[3],
    help: 'Entries (stream names and regexes) in the stream config in use.',
    registers,
  })
  return {
    reloads,
    lastSuccess,
    loadedAt,
    streams,
    remove() {
      for (const name of metricNames) registry.removeSingleMetric(name)
    },
  }
}
