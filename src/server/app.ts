import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import cors from '@fastify/cors'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { frameworkErrors, installErrorHandling } from '../core/http.ts'
import { EventplaneError } from '../core/errors.ts'
import { createServer } from 'node:http'
import { createIntake, createIntakeListener, intakeRoutes, type Intake } from '../intake/index.ts'
import { openKafkaLog, openSqliteLog, type EventLog, type KafkaLogOptions } from '../log/index.ts'
import { createSchemaSource, openRepository, schemaRoutes, type SchemaRepository, type SchemaSource } from '../schemas/index.ts'
import { createValidatorCache, type ValidatorCache } from '../schemas/validator.ts'
import { openStreamConfig, streamConfigRoutes, type StreamConfig, type StreamConfigSource } from '../streamconfig/index.ts'
import { servedStreams, streamRoutes, streamsOpenApi } from '../streams/index.ts'
import { createMetricsRegistry, instrumentHttp, type ObserveRequest } from './metrics.ts'
import { openApiDocument, openApiHtml } from './openapi.ts'

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
  /** The event log: opened only for the intake and streams roles. */
  readonly log: EventLog | undefined
  /** The intake: only with the intake role. */
  readonly intake: Intake | undefined
  /** Compiled schemas of the intake (bounded). */
  readonly validators: ValidatorCache
  /** Closes what the platform opened: pending error events, the stream config, the log. */
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
  if (streamConfig === undefined) logger.warn('no stream_config.source configured: the stream config API is off, and any stream is accepted')
  let log: EventLog | undefined
  try {
    if (hasRole(config, 'intake') || hasRole(config, 'streams')) log = await openEventLog(config, logger, registry)
  } catch (error) {
    await streamConfig?.close()
    throw error
  }
  const baseUris = resolveBaseUris(config, repositories)
  const validators = createValidatorCache({ source: schemas, maxEntries: config.intake.validator_cache_size })
  const intake = log === undefined || !hasRole(config, 'intake') ? undefined : createIntake({
    validators,
    streamConfig,
    log,
    logger: logger.child({ part: 'intake' }),
    registry,
    schemaUriField: config.intake.schema_uri_field,
    streamField: config.intake.stream_field,
    allowAbsoluteSchemaUris: config.intake.allow_absolute_schema_uris,
    absoluteBaseUris: baseUris.filter((uri) => /^https?:\/\//i.test(uri)),
    allowUnknownStreams: config.intake.allow_unknown_streams,
    topicPrefix: config.intake.topic_prefix,
    errorStream: config.intake.error_stream,
    errorSchemaUri: config.intake.error_schema_uri,
    emitterId: config.intake.emitter_id,
  })
  return {
    config,
    logger,
    registry,
    repositories,
    schemas,
    streamConfig,
    log,
    intake,
    validators,
    async close() {
      await intake?.close()
      await streamConfig?.close()
      await log?.close()
    },
  }
}

export type Role = 'intake' | 'streams' | 'schemas'

/** Whether this process serves a role (`server.roles`, where `all` is every one). */
export function hasRole(config: Readonly<Config>, role: Role): boolean {
  const roles = config.server.roles as readonly string[]
  return roles.includes('all') || roles.includes(role)
}

/** SASL (password from the environment) and TLS (PEM files) settings of the Kafka clients. */
function kafkaSecurity(kafka: Readonly<Config>['event_log']['kafka']): { sasl?: KafkaLogOptions['sasl']; tls?: KafkaLogOptions['tls'] } {
  const security: { sasl?: KafkaLogOptions['sasl']; tls?: KafkaLogOptions['tls'] } = {}
  if (kafka.sasl !== undefined) {
    const name = kafka.sasl.password_env
    const password = process.env[name]
    if (password === undefined || password === '') {
      throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.sasl: the password is read from the environment variable ${name}, which is not set`, {
        details: { key: 'event_log.kafka.sasl.password_env' },
      })
    }
    security.sasl = { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password }
  }
  if (kafka.tls !== undefined) {
    const read = (key: 'ca_file' | 'cert_file' | 'key_file') => {
      const file = kafka.tls![key]
      if (file === undefined) return undefined
      try {
        return readFileSync(file)
      } catch (error) {
        throw new EventplaneError('EVP_CONFIG_INVALID', `event_log.kafka.tls.${key}: cannot read ${file}: ${(error as Error).message}`, { details: { key: `event_log.kafka.tls.${key}` } })
      }
    }
    const [ca, cert, key] = [read('ca_file'), read('cert_file'), read('key_file')]
    security.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(kafka.tls.server_name ? { servername: kafka.tls.server_name } : {}) }
  }
  return security
}

/** How long /readyz waits for the event log (a Kafka client retries for longer than a health check waits). */
const readyTimeoutMs = 2000

/** Whether `work` succeeds within `ms`. */
function answersWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  return Promise.race([work.then(() => true, () => false), late]).finally(() => clearTimeout(timer))
}

/** The event log the config names: the SQLite file, or the Kafka cluster. */
export async function openEventLog(config: Readonly<Config>, logger: Logger, registry?: Registry): Promise<EventLog> {
  const settings = config.event_log
  if (settings.backend === 'kafka') {
    const kafka = settings.kafka
    if (kafka.brokers === undefined) {
      throw new EventplaneError('EVP_CONFIG_INVALID', 'event_log.backend is kafka but event_log.kafka.brokers is not set: list the bootstrap brokers (host:port), or set EVENTPLANE_KAFKA_BROKERS', {
        details: { key: 'event_log.kafka.brokers' },
      })
    }
    return openKafkaLog({
      brokers: kafka.brokers,
      ...kafkaSecurity(kafka),
      clientId: kafka.client_id,
      defaultPartitions: settings.partitions,
      topicPartitions: settings.topic_partitions as Record<string, number>,
      replicationFactor: kafka.replication_factor,
      createTopics: kafka.create_topics,
      requestTimeoutMs: kafka.request_timeout_ms,
      maxInFlight: kafka.max_in_flight,
      ...(kafka.topic_namespace === undefined ? {} : { topicNamespace: kafka.topic_namespace }),
      logger: logger.child({ part: 'event-log' }),
      registry,
    })
  }
  const path = settings.path!
  mkdirSync(dirname(path), { recursive: true })
  return openSqliteLog({
    path,
    defaultPartitions: settings.partitions,
    topicPartitions: settings.topic_partitions as Record<string, number>,
    retention: {
      ...(settings.retention.max_age_s ? { maxAgeMs: settings.retention.max_age_s * 1000 } : {}),
      ...(settings.retention.max_bytes ? { maxBytes: settings.retention.max_bytes } : {}),
    },
    sync: settings.sync,
    logger: logger.child({ part: 'event-log' }),
    registry,
  })
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
  const observed: { observe?: ObserveRequest } = {}
  const newRequestId = requestIds()
  const intake = platform.intake
  const intakeListener = intake === undefined ? undefined : createIntakeListener({
    intake,
    maxBodyBytes: config.intake.max_body_bytes,
    maxDepth: config.intake.max_depth,
    schemaUriQueryParam: config.intake.schema_uri_query_param,
    streamQueryParam: config.intake.stream_query_param,
    trustProxy: config.server.trust_proxy as boolean | string[],
    corsOrigins: config.server.cors.origins,
    logger: logger.child({ part: 'intake' }),
    newRequestId,
    observe: (status, seconds) => observed.observe?.('POST', '/v1/events', status, seconds),
  })
  const app = Fastify({
    // POST /v1/events is answered before fastify sees it (intake/listener.ts): the hot path.
    serverFactory: (handler) =>
      createServer((request, response) => {
        if (intakeListener === undefined || !intakeListener(request, response)) handler(request, response)
      }),
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: newRequestId,
    frameworkErrors,
    trustProxy: config.server.trust_proxy as boolean | string[],
    // Requests for schemas and configs are small; a large body is a mistake or an attack.
    bodyLimit: 1024 * 1024,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
  })
  installErrorHandling(app)
  observed.observe = instrumentHttp(app, registry)
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

  const origins = config.server.cors.origins
  if (origins.length > 0) {
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      allowedHeaders: ['accept', 'content-type', 'x-requested-with', 'x-request-id', 'last-event-id', 'if-none-match'],
      exposedHeaders: ['x-request-id', 'etag'],
      maxAge: config.server.cors.max_age_s,
    })
  }
  if (intake !== undefined) {
    await app.register(intakeRoutes, {
      intake,
      maxBodyBytes: config.intake.max_body_bytes,
      maxDepth: config.intake.max_depth,
      schemaUriQueryParam: config.intake.schema_uri_query_param,
      streamQueryParam: config.intake.stream_query_param,
      trustClientIpHeader: config.server.trust_proxy !== false,
      testEvents: config.intake.test_events,
    })
  }
  if (hasRole(config, 'schemas')) {
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
  }
  if (platform.streamConfig !== undefined && platform.log !== undefined && hasRole(config, 'streams')) {
    await app.register(streamRoutes, {
      log: platform.log,
      streamConfig: platform.streamConfig,
      logger: logger.child({ part: 'streams' }),
      registry,
      allowed: config.streams.allowed as string[] | null,
      idMode: config.streams.event_id,
      heartbeatIntervalMs: config.streams.heartbeat_interval_s * 1000,
      retryMs: config.streams.retry_ms,
      maxConnectionsPerIp: config.streams.max_connections_per_ip,
      maxBufferedBytes: config.streams.max_buffered_bytes,
      filterLimits: { maxLength: config.streams.max_filter_length, maxNodes: config.streams.max_filter_nodes },
      readerPerClient: config.streams.reader_per_client,
    })
  }

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const checks = {
      schemas: platform.repositories.length > 0,
      stream_config: platform.streamConfig !== undefined,
      ...(platform.log === undefined
        ? {}
        : {
            event_log: await answersWithin(platform.log.topics(), readyTimeoutMs),
          }),
    }
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
  const specs = apiDocuments(platform)
  // EventGate's conventions: `/?spec` is the OpenAPI document, `/?doc` a page describing it.
  app.get('/', async (request, reply) => {
    const query = request.query as Record<string, unknown>
    if ('spec' in query) return reply.type('application/json; charset=utf-8').send((await specs()).json)
    if ('doc' in query) return reply.type('text/html; charset=utf-8').send((await specs()).html)
    return reply.type('application/json; charset=utf-8').send(index(platform))
  })
  return app
}

/**
 * The OpenAPI document and its page, with one path per served stream: rebuilt when the stream
 * config changes (one build per generation, shared by concurrent requests).
 */
function apiDocuments(platform: Platform): () => Promise<{ json: string; html: string }> {
  const build = async (config: StreamConfig | undefined) => {
    let streamPaths: Record<string, unknown> = {}
    if (config !== undefined) {
      const described = await streamsOpenApi(servedStreams(config, platform.config.streams.allowed as string[] | null), platform.schemas)
      for (const failure of described.failures) {
        platform.logger.warn(failure, 'a stream is described in /?spec without its schema')
      }
      streamPaths = described.paths
    }
    const document = openApiDocument(packageJson.version, streamPaths)
    return { json: JSON.stringify(document), html: openApiHtml(document) }
  }
  const byGeneration = new WeakMap<StreamConfig, Promise<{ json: string; html: string }>>()
  let without: Promise<{ json: string; html: string }> | undefined
  return () => {
    const config = platform.streamConfig?.current()
    if (config === undefined) return (without ??= build(undefined))
    let hit = byGeneration.get(config)
    if (hit === undefined) byGeneration.set(config, (hit = build(config)))
    return hit
  }
}

function index(platform: Platform) {
  const { config } = platform
  const streams = platform.streamConfig !== undefined && platform.log !== undefined && hasRole(config, 'streams')
  return {
    name: packageJson.name,
    version: packageJson.version,
    roles: config.server.roles,
    endpoints: {
      ...(platform.intake === undefined ? {} : { events: '/v1/events' }),
      api: '/?spec',
      api_docs: '/?doc',
      ...(hasRole(config, 'schemas')
        ? {
            schemas: '/repositories',
            ...Object.fromEntries(platform.repositories.map((r) => [`schemas:${r.name}`, `/repositories/${r.name}/jsonschema/`])),
            ...(platform.streamConfig
              ? { stream_configs: '/v1/stream-configs', stream_configs_mediawiki: '/w/api.php?action=streamconfigs&format=json' }
              : {}),
          }
        : {}),
      ...(streams ? { streams: '/v2/stream/{streams}', stream_viewer: '/v2/ui' } : {}),
      health: '/healthz',
      ready: '/readyz',
      metrics: '/metrics',
      info: '/_info',
    },
  }
}
