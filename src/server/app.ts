import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { frameworkErrors, installErrorHandling } from '../core/http.ts'
import { EventplaneError } from '../core/errors.ts'
import { createSchemaSource, openRepository, schemaRoutes, type SchemaRepository, type SchemaSource } from '../schemas/index.ts'
import { openStreamConfig, streamConfigRoutes, type StreamConfigSource } from '../streamconfig/index.ts'
import { createMetricsRegistry, instrumentHttp } from './metrics.ts'

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  name: string
  version: string
  description: string
}

/** Everything a running Eventplane holds open, built from one config. */
export interface Platform {
  readonly config: Readonly<Config>
  readonly logger: Logger
  readonly registry: Registry
  readonly repositories: readonly SchemaRepository[]
  /** Looks schemas up by URI across `schemas.base_uris` (what the intake validates against). */
  readonly schemas: SchemaSource
  readonly streamConfig: StreamConfigSource | undefined
  close(): Promise<void>
}

export interface OpenPlatformOptions {
  logger?: Logger
  registry?: Registry
}

/** Opens schema repositories and the stream config named by the config. Fails fast on bad input. */
export async function openPlatform(config: Readonly<Config>, options: OpenPlatformOptions = {}): Promise<Platform> {
  const logger = options.logger ?? pino({ level: config.log.level, base: { service: 'eventplane' } })
  const registry = options.registry ?? createMetricsRegistry()
  const repositories = config.schemas.repositories.map((r) =>
    openRepository(r.path, { name: r.name, maxFileBytes: config.schemas.max_file_bytes }),
  )
  const schemas = createSchemaSource({
    baseUris: resolveBaseUris(config, repositories),
    timeoutMs: config.schemas.remote_timeout_ms,
    maxBytes: config.schemas.max_file_bytes,
    userAgent: `eventplane/${packageJson.version}`,
  })
  const source = config.stream_config.source
  const streamConfig =
    source === undefined
      ? undefined
      : await openStreamConfig({
          source,
          watch: config.stream_config.watch,
          refreshIntervalS: config.stream_config.refresh_interval_s,
          logger: logger.child({ part: 'stream-config' }),
          registry,
        })
  if (streamConfig === undefined) logger.warn('no stream_config.source configured: the stream config API is off')
  return {
    config,
    logger,
    registry,
    repositories,
    schemas,
    streamConfig,
    async close() {
      await streamConfig?.close()
    },
  }
}

/**
 * Request ids for requests that bring no X-Request-ID: unique per process start and cheap
 * (a random prefix and a counter, rather than a UUID per request).
 */
function requestIds(): () => string {
  const prefix = randomUUID().slice(0, 8)
  let counter = 0
  return () => `${prefix}-${(++counter).toString(36)}`
}

/** `schemas.base_uris` with `repo:<name>` replaced by that repository's schema folder; by default, every repository. */
function resolveBaseUris(config: Readonly<Config>, repositories: readonly SchemaRepository[]): string[] {
  const configured = config.schemas.base_uris
  if (configured === undefined) return repositories.map((r) => r.schemaDir)
  return configured.map((uri) => {
    if (!uri.startsWith('repo:')) return uri
    const repository = repositories.find((r) => r.name === uri.slice('repo:'.length))
    if (repository === undefined) {
      throw new EventplaneError('EVP_CONFIG_INVALID', `schemas.base_uris: ${uri} names no repository in schemas.repositories`, {
        details: { key: 'schemas.base_uris' },
      })
    }
    return repository.schemaDir
  })
}

/**
 * The HTTP application for a platform: the schema service, the stream config API, health,
 * metrics. Tests call this and use `app.inject`; `serve` adds listening and signals.
 */
export async function buildApp(platform: Platform): Promise<FastifyInstance> {
  const { config, logger, registry } = platform
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: requestIds(),
    frameworkErrors,
    // Requests for schemas and configs are small; a large body is a mistake or an attack.
    bodyLimit: 1024 * 1024,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
  })
  installErrorHandling(app)
  instrumentHttp(app, registry)
  app.addHook('onResponse', (request, reply, done) => {
    const level = reply.statusCode >= 500 ? 'warn' : 'debug'
    if ((request.log as Logger).isLevelEnabled(level)) {
      request.log[level]({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request')
    }
    done()
  })
  app.addHook('onSend', (request, reply, _payload, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  await app.register(schemaRoutes, {
    repositories: platform.repositories,
    cacheMaxAgeS: config.schemas.cache_max_age_s,
  })
  if (platform.streamConfig !== undefined) {
    await app.register(streamConfigRoutes, {
      source: platform.streamConfig,
      cacheMaxAgeS: config.stream_config.cache_max_age_s,
    })
  }

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const checks = { schemas: platform.repositories.length > 0, stream_config: platform.streamConfig !== undefined }
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks })
  })
  app.get('/metrics', async (_request, reply) => {
    return reply.type(registry.contentType).header('cache-control', 'no-store').send(await registry.metrics())
  })
  app.get('/_info', async () => ({
    name: packageJson.name,
    version: packageJson.version,
    description: packageJson.description,
  }))
  app.get('/robots.txt', async (_request, reply) => reply.type('text/plain').send('User-agent: *\nDisallow: /\n'))
  app.get('/', async (_request, reply) => reply.type('application/json; charset=utf-8').send(index(platform)))
  return app
}

function index(platform: Platform) {
  return {
    name: packageJson.name,
    version: packageJson.version,
    endpoints: {
      schemas: '/repositories',
      ...Object.fromEntries(platform.repositories.map((r) => [`schemas:${r.name}`, `/repositories/${r.name}/jsonschema/`])),
      ...(platform.streamConfig
        ? { stream_configs: '/v1/stream-configs', stream_configs_mediawiki: '/w/api.php?action=streamconfigs&format=json' }
        : {}),
      health: '/healthz',
      ready: '/readyz',
      metrics: '/metrics',
      info: '/_info',
    },
  }
}
