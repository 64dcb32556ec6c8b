import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { buildApp, openPlatform, type OpenPlatformOptions, type Platform } from './app.ts'
import { startMetricsListener } from './metrics.ts'
import { planCanaries, sendCanaries } from '../canary/index.ts'

export interface RunningServer {
  app: FastifyInstance
  platform: Platform
  /** Where it listens, e.g. http://127.0.0.1:8192 */
  url: string
  /** Where /metrics is served when it has a listener of its own (server.metrics.port). */
  metricsUrl: string | undefined
  /** Stops accepting connections, lets requests in flight finish, closes everything. */
  close(): Promise<void>
}

/** Opens the platform and listens on `server.host:server.port`. */
export async function startServer(config: Readonly<Config>, options: OpenPlatformOptions = {}): Promise<RunningServer> {
  const platform = await openPlatform(config, options)
  let app: FastifyInstance
  let metrics: Awaited<ReturnType<typeof startMetricsListener>> | undefined
  try {
    app = await buildApp(platform)
    await app.listen({ host: config.server.host, port: config.server.port }).catch((error: unknown) => {
      throw listenFailed(error, config.server.host, config.server.port, 'server.port, --port or PORT', 'server.host, --host or HOST')
    })
    const { port: metricsPort, host: metricsHost } = config.server.metrics
    if (metricsPort !== null) {
      const host = metricsHost ?? config.server.host
      metrics = await startMetricsListener(platform.registry, host, metricsPort, {
        headersTimeout: config.server.headers_timeout_ms,
        requestTimeout: Math.max(config.server.request_timeout_ms, config.server.headers_timeout_ms),
      }).catch((error: unknown) => {
        throw listenFailed(error, host, metricsPort, 'server.metrics.port', 'server.metrics.host')
      })
    }
  } catch (error) {
    await platform.close()
    throw error
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.server.port
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host
  let closing: Promise<void> | undefined
  const url = `http://${host}:${port}`
  const canaries = scheduleCanaries(platform, url)
  return {
    app,
    platform,
    url,
    metricsUrl: metrics?.url,
    close() {
      clearInterval(canaries)
      closing ??= (async () => {
        // Keep-alive connections whose last request finishes during the drain become idle
        // after fastify's one sweep of idle connections; sweep until the server has closed.
        const sweep = setInterval(() => app.server.closeIdleConnections(), 50)
        try {
          await Promise.all([app.close(), metrics?.close()])
        } finally {
          clearInterval(sweep)
          await platform.close()
        }
      })()
      return closing
    },
  }
}

/** Why a listener could not start, said so that a person can act on it (EVP_LISTEN_FAILED). */
function listenFailed(error: unknown, host: string, port: number, portSetting: string, hostSetting: string): unknown {
  const code = (error as NodeJS.ErrnoException).code
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  const why: Record<string, string> = {
    EADDRINUSE: `${where} is in use: another eventplane serve, or another program, listens there. Stop it, or choose another port (${portSetting})`,
    EACCES: `listening on ${where} is not permitted (ports below 1024 need privileges). Choose a port from 1024 up (${portSetting})`,
    EADDRNOTAVAIL: `${host} is not an address of this machine. Use 127.0.0.1, 0.0.0.0 or one of its addresses (${hostSetting})`,
  }
  if (code === undefined || why[code] === undefined) return error
  return new EventplaneError('EVP_LISTEN_FAILED', `cannot listen: ${why[code]}`, { cause: error, details: { host, port, errno: code } })
}

/**
 * Signals for a server process: SIGTERM/SIGINT drain and exit (forced after the configured
 * timeout), SIGHUP reloads the stream config without a restart.
 */
export function handleSignals(server: RunningServer, timeoutMs: number): () => void {
  const log = server.platform.logger
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down: draining requests')
    const force = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown timed out; exiting')
      process.exit(1)
    }, timeoutMs)
    force.unref()
    server.close().then(
      () => {
        log.info('stopped')
        process.exitCode = 0
      },
      (error: unknown) => {
        log.error({ err: error }, 'error while shutting down')
        process.exitCode = 1
      },
    )
  }
  const reload = () => {
    log.info('SIGHUP: reloading stream config and auth tokens')
    void server.platform.streamConfig?.reload()
    server.platform.auth.reload()
  }
  const onTerm = () => stop('SIGTERM')
  const onInt = () => stop('SIGINT')
  process.once('SIGTERM', onTerm)
  process.once('SIGINT', onInt)
  process.on('SIGHUP', reload)
  return () => {
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    process.off('SIGHUP', reload)
  }
}

/**
 * Canary events every `canary.interval_s` from a process with the intake role (the first one
 * interval after the start, so that a restart loop does not flood streams with canaries).
 * Several intake processes each send theirs: "at least once an interval", as Wikimedia's job.
 */
function scheduleCanaries(platform: Platform, url: string): ReturnType<typeof setInterval> | undefined {
  const { config, streamConfig, intake, logger } = platform
  if (config.canary.interval_s === 0 || intake === undefined || streamConfig === undefined) return undefined
  const log = logger.child({ part: 'canary' })
  // A host of 0.0.0.0 or :: listens everywhere; the process reaches itself on loopback.
  const self = url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:')
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    planCanaries(streamConfig.current(), platform.schemas)
      .then((plans) => sendCanaries(plans, { defaultUrl: self, destinations: config.canary.destinations }))
      .then(
        (results) => {
          const sent = results.filter((r) => r.outcome === 'sent').length
          for (const result of results) if (result.outcome !== 'sent') log.warn({ stream: result.stream, outcome: result.outcome, detail: result.detail }, 'a stream got no canary')
          log.info({ sent, streams: results.length }, 'canary events sent')
        },
        (error: unknown) => log.error({ err: error }, 'canary events failed'),
      )
      .finally(() => (running = false))
  }, config.canary.interval_s * 1000)
  timer.unref()
  return timer
}
