import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/index.ts'
import { buildApp, openPlatform, type OpenPlatformOptions, type Platform } from './app.ts'
import { startMetricsListener } from './metrics.ts'

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
    await app.listen({ host: config.server.host, port: config.server.port })
    const { port: metricsPort, host: metricsHost } = config.server.metrics
    if (metricsPort !== null) {
      metrics = await startMetricsListener(platform.registry, metricsHost ?? config.server.host, metricsPort, {
        headersTimeout: config.server.headers_timeout_ms,
        requestTimeout: Math.max(config.server.request_timeout_ms, config.server.headers_timeout_ms),
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
  return {
    app,
    platform,
    url: `http://${host}:${port}`,
    metricsUrl: metrics?.url,
    close() {
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
    log.info('SIGHUP: reloading stream config')
    void server.platform.streamConfig?.reload()
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
