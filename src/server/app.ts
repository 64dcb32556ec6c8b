import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import cors from '@fastify/cors'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { frameworkErrors, htmlPolicy, installErrorHandling, requestIdOf, securityHeaders } from '../core/http.ts'
import { EventplaneError } from '../core/errors.ts'
import { hidePath } from '../core/paths.ts'
import { createServer } from 'node:http'
import { beaconRoutes, createAdmission, createIntake, createIntakeListener, intakeRoutes, proxyTrust, requestContext, type Intake } from '../intake/index.ts'
import { kafkaSecurity, openKafkaLog, openSqliteLog, type EventLog } from '../log/index.ts'
import { schemaRoutes, type DuplicateId, type SchemaRepository, type SchemaSource } from '../schemas/index.ts'
import { createValidatorCache, type ValidatorCache } from '../schemas/validator.ts'
import { openStreamConfig, streamConfigRoutes, type StreamConfig, type StreamConfigSource } from '../streamconfig/index.ts'
import { regexStreamsIn, servedStreams, streamRoutes, streamsOpenApi, topicsLookup, type ServedStream } from '../streams/index.ts'
import { createMetricsRegistry, instrumentHttp, metricsHandler, type ObserveRequest } from './metrics.ts'
import { allowedMethods } from './methods.ts'
import { clientErrorHandler, limitConnections } from './guards.ts'
import { consoleRoutes } from '../console/index.ts'
import { createAuth, type Auth } from '../auth/index.ts'
import { createRateLimiter } from './rate-limits.ts'
import { openApiDocument, openApiHtml } from './openapi.ts'
import { openSchemas, resolveBaseUris, warnDuplicateIds } from './schemas.ts'

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
  /** Producer auth and the read rules of streams and schemas (auth in the config). */
  readonly auth: Auth
  /** `$id`s that several repositories define differently, found in the background after start (and logged). */
  readonly duplicateIds: Promise<DuplicateId[]>
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
  // First: a token that cannot be read stops the start before anything is opened.
  const auth = createAuth(config.auth, { logger: logger.child({ part: 'auth' }), registry })
  if (auth.enabled && config.auth.producers.length === 0 && config.auth.public_streams.length === 0) {
    logger.warn('auth.enabled is on with no producers and no public_streams: every POST /v1/events will be refused')
  }
  const { repositories, schemas } = openSchemas(config)
  // Answers name these folders by what they are, never by where they are on this machine.
  hidePath(config.data_dir, '<data_dir>')
  if (config.event_log.path !== undefined) hidePath(dirname(config.event_log.path), '<event_log>')
  for (const repository of repositories) {
    hidePath(repository.schemaDir, `repo:${repository.name}`)
    hidePath(repository.root, `repo:${repository.name}:root`)
  }
  config.schemas.base_uris?.forEach((uri, i) => {
    if (!/^(https?:|repo:)/i.test(uri)) hidePath(uri.replace(/^file:\/\//, ''), `schemas.base_uris[${i}]`)
  })
  if (config.stream_config.source !== undefined && !/^https?:/i.test(config.stream_config.source)) hidePath(dirname(config.stream_config.source), '<stream_config>')
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
    if (hasRole(config, 'intake') || hasRole(config, 'streams')) log = await openEventLog(config, logger, registry, streamConfig)
  } catch (error) {
    await streamConfig?.close()
    throw error
  }
  const baseUris = resolveBaseUris(config, repositories)
  // In the background: start-up does not wait for every schema file to be read.
  const duplicateIds = warnDuplicateIds(repositories, baseUris, logger.child({ part: 'schemas' }), registry)
  const validators = createValidatorCache({ source: schemas, maxEntries: config.intake.validator_cache_size })
  // Streams that regex keys made before this start count against intake.max_regex_streams.
  const existingTopics = log === undefined || !hasRole(config, 'intake') ? [] : await log.topics().catch(() => [])
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
    errorEvents: {
      perSecond: config.intake.error_events_per_s,
      burst: config.intake.error_events_burst,
      maxRawChars: config.intake.error_event_max_raw_bytes,
    },
    privateFields: config.streams.redact_fields,
    eventTime: {
      maxFutureMs: config.intake.event_time.max_future_s == null ? null : config.intake.event_time.max_future_s * 1000,
      maxPastMs: config.intake.event_time.max_past_s == null ? null : config.intake.event_time.max_past_s * 1000,
    },
    maxRegexStreams: config.intake.max_regex_streams,
    dedupe: { maxIds: config.intake.dedupe.max_ids, windowMs: config.intake.dedupe.window_s * 1000 },
    existingTopics,
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
    duplicateIds,
    auth,
    async close() {
      await intake?.close()
      await streamConfig?.close()
      await log?.close()
    },
  }
}

/**
 * The read rules of auth: with `auth.streams_public` false, `GET /v2/stream/{streams}` needs a
 * token whose streams include every stream asked for; with `auth.schemas_public` false, the
 * schema service and the stream config API need any valid token. Checked before the route runs.
 */
function guardReads(app: FastifyInstance, auth: Auth): void {
  if (auth.streamsPublic && auth.schemasPublic) return
  app.addHook('onRequest', async (request) => {
    const path = (request.raw.url ?? '').split('?')[0]!
    if (!auth.streamsPublic && path.startsWith('/v2/stream/')) {
      let streams: string[]
      try {
        streams = decodeURIComponent(path.slice('/v2/stream/'.length)).split(',').filter((s) => s !== '')
      } catch {
        return // a bad encoding: the route answers 400
      }
      const refusal = auth.checkRead(auth.identify(request.headers), streams)
      if (refusal !== undefined) throw refusal
    } else if (!auth.schemasPublic && (path === '/repositories' || path.startsWith('/repositories/') || path.startsWith('/v1/stream-configs') || path === '/w/api.php')) {
      const refusal = auth.checkSchemas(auth.identify(request.headers))
      if (refusal !== undefined) throw refusal
    }
  })
}

/** Streams never served over SSE: the error stream quotes refused events, unless exposed. */
function hiddenStreams(config: Readonly<Config>): string[] {
  const errorStream = config.intake.error_stream
  return errorStream && !config.streams.expose_error_stream ? [errorStream] : []
}

export type Role = 'intake' | 'streams' | 'schemas'

/** Whether this process serves a role (`server.roles`, where `all` is every one). */
export function hasRole(config: Readonly<Config>, role: Role): boolean {
  const roles = config.server.roles as readonly string[]
  return roles.includes('all') || roles.includes(role)
}

/** Whether this process serves streams: the streams role, with a log and a stream config to serve from. */
function servesStreams(platform: Platform): platform is Platform & { log: EventLog; streamConfig: StreamConfigSource } {
  return platform.streamConfig !== undefined && platform.log !== undefined && hasRole(platform.config, 'streams')
}


/** How long /readyz waits for the event log (a Kafka client retries for longer than a health check waits). */
const readyTimeoutMs = 2000

/** What `work` gives within `ms`, or undefined (also when it fails). */
function withinMs<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))
  return Promise.race([work.catch(() => undefined), late]).finally(() => clearTimeout(timer))
}

/** The event log the config names: the SQLite file, or the Kafka cluster. */
export async function openEventLog(config: Readonly<Config>, logger: Logger, registry?: Registry, streamConfig?: StreamConfigSource): Promise<EventLog> {
  const settings = config.event_log
  const topicLabel = streamConfig === undefined ? undefined : topicLabels(config, streamConfig)
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
      appendDeadlineMs: kafka.append_deadline_ms,
      maxInFlight: kafka.max_in_flight,
      // Topics made here take what the intake takes: meta.dt up to its window ahead.
      maxTimestampAheadMs: config.intake.event_time.max_future_s == null ? null : config.intake.event_time.max_future_s * 1000,
      ...(kafka.topic_namespace === undefined ? {} : { topicNamespace: kafka.topic_namespace }),
      logger: logger.child({ part: 'event-log' }),
      registry,
      ...(topicLabel === undefined ? {} : { topicLabel }),
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
    ...(topicLabel === undefined ? {} : { topicLabel }),
  })
}

/**
 * Metric labels of topics: a topic of a stream configured by name is itself; the topic of a
 * stream made through a /regex/ key is labelled `<prefix><regex key>`, as the intake labels the
 * stream, so request input cannot add series.
 */
function topicLabels(config: Readonly<Config>, streamConfig: StreamConfigSource): (topic: string) => string {
  const prefix = config.intake.topic_prefix
  let labels = new Map<string, string>()
  let generation: StreamConfig | undefined
  return (topic) => {
    if (streamConfig.current() !== generation) {
      generation = streamConfig.current()
      labels = new Map()
    }
    let label = labels.get(topic)
    if (label === undefined) {
      const stream = topic.startsWith(prefix) ? topic.slice(prefix.length) : topic
      const found = streamConfig.current().resolve(stream)
      label = found === undefined ? 'other' : found.key === stream ? topic : `${topic.slice(0, topic.length - stream.length)}${found.key}`
      if (labels.size < 10_000) labels.set(topic, label)
    }
    return label
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


/**
 * The HTTP application for a platform: the schema service, the stream config API, health,
 * metrics. Tests call this and use `app.inject`; `serve` adds listening and signals.
 */
export async function buildApp(platform: Platform): Promise<FastifyInstance> {
  const { config, logger, registry } = platform
  const observed: { observe?: ObserveRequest } = {}
  const newRequestId = requestIds()
  const intake = platform.intake
  const trustProxy = config.server.trust_proxy as boolean | string[]
  const trusted = proxyTrust(trustProxy)
  const admission = createAdmission({ auth: platform.auth, streamField: config.intake.stream_field, rate: createRateLimiter(config.rate_limits, { registry }).take })
  const intakeListener = intake === undefined ? undefined : createIntakeListener({
    intake,
    maxBodyBytes: config.intake.max_body_bytes,
    limits: { maxDepth: config.intake.max_depth, maxEvents: config.intake.max_events_per_request },
    maxListed: config.intake.max_refusals_listed,
    maxPendingBodyBytes: config.intake.max_pending_body_bytes,
    schemaUriQueryParam: config.intake.schema_uri_query_param,
    streamQueryParam: config.intake.stream_query_param,
    trustProxy,
    corsOrigins: config.server.cors.origins,
    logger: logger.child({ part: 'intake' }),
    newRequestId,
    observe: (status, seconds) => observed.observe?.('POST', '/v1/events', status, seconds),
    admission,
  })
  const metricsApart = config.server.metrics.port !== null
  const app = Fastify({
    // POST /v1/events is answered before fastify sees it (intake/listener.ts): the hot path.
    serverFactory: (handler) => {
      const server = createServer(
        {
          headersTimeout: config.server.headers_timeout_ms,
          requestTimeout: Math.max(config.server.request_timeout_ms, config.server.headers_timeout_ms),
          keepAliveTimeout: config.server.keep_alive_timeout_ms,
          // How often node looks for requests past their timeouts (default 30 s, longer than them).
          connectionsCheckingInterval: Math.min(1000, config.server.headers_timeout_ms),
        },
        (request, response) => {
          if (refusedConnection(request, response)) return
          if (intakeListener === undefined || !intakeListener(request, response)) handler(request, response)
        },
      )
      const refusedConnection = limitConnections(server, {
        maxConnections: config.server.max_connections,
        maxPerIp: config.server.max_connections_per_ip,
        exempt: (address) => trusted(address, 0),
        logger,
        registry,
      })
      return server
    },
    clientErrorHandler,
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // X-Request-ID, when given, cut to a length fit to echo and log (requestIdOf).
    requestIdHeader: false,
    genReqId: (request) => requestIdOf(request.headers['x-request-id']) ?? newRequestId(),
    frameworkErrors,
    trustProxy,
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
    for (const [name, value] of Object.entries(securityHeaders)) {
      if (reply.hasHeader(name)) continue
      // Our HTML pages (/?doc, schema listings) style themselves inline and load nothing else.
      const html = name === 'content-security-policy' && String(reply.getHeader('content-type') ?? '').startsWith('text/html')
      reply.header(name, html ? htmlPolicy : value)
    }
    done()
  })
  const addMethodNotAllowed = allowedMethods(app)
  guardReads(app, platform.auth)

  const origins = config.server.cors.origins
  if (origins.length > 0) {
    const corsOptions = {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      allowedHeaders: ['accept', 'authorization', 'content-type', 'x-api-key', 'x-requested-with', 'x-request-id', 'last-event-id', 'if-none-match'],
      exposedHeaders: ['x-request-id', 'etag'],
      maxAge: config.server.cors.max_age_s,
    }
    // /metrics is for the operator's scraper, never for scripts on other sites.
    await app.register(cors, () => (request: FastifyRequest, callback: (error: Error | null, options: typeof corsOptions | { origin: false }) => void) => {
      callback(null, request.url === '/metrics' || request.url.startsWith('/metrics?') ? { origin: false } : corsOptions)
    })
  }
  if (intake !== undefined) {
    await app.register(intakeRoutes, {
      intake,
      maxBodyBytes: config.intake.max_body_bytes,
      limits: { maxDepth: config.intake.max_depth, maxEvents: config.intake.max_events_per_request },
      maxListed: config.intake.max_refusals_listed,
      schemaUriQueryParam: config.intake.schema_uri_query_param,
      streamQueryParam: config.intake.stream_query_param,
      trusted: (address) => trusted(address, 0),
      testEvents: config.intake.test_events,
      admission,
    })
    if (config.intake.beacon.enabled) {
      await app.register(beaconRoutes, {
        intake,
        admission,
        schemas: config.intake.beacon.schemas,
        maxUrlLength: config.intake.beacon.max_url_length,
        contextOf: (request) => requestContext(request, { trusted: (address) => trusted(address, 0), schemaUriQueryParam: null, streamQueryParam: null }),
        registry,
        logger: logger.child({ part: 'beacon' }),
      })
    }
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
  if (servesStreams(platform)) {
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
      filterLimits: {
        maxLength: config.streams.max_filter_length,
        maxNodes: config.streams.max_filter_nodes,
        maxNesting: config.streams.max_filter_nesting,
        budget: config.streams.filter_budget,
      },
      readerPerClient: config.streams.reader_per_client,
      maxStreamsPerRequest: config.streams.max_streams_per_request,
      closeGraceMs: config.streams.slow_client_grace_ms,
      redactFields: config.streams.redact_fields,
      dedupeWindow: config.streams.dedupe_window,
      hidden: hiddenStreams(config),
    })
  }

  app.get('/healthz', async () => ({ status: 'ok' }))
  // Ready means able to do the work of this process's roles: an intake that cannot write, or
  // streams that cannot read, are taken out of rotation; `reason` says why.
  const writes = hasRole(config, 'intake')
  const reads = hasRole(config, 'streams')
  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, boolean> = {
      schemas: platform.repositories.length > 0,
      stream_config: platform.streamConfig !== undefined,
    }
    let reason: string | undefined
    if (platform.log !== undefined) {
      const health = await withinMs(platform.log.health(), readyTimeoutMs)
      if (health === undefined) {
        checks['event_log'] = false
        reason = `the event log did not answer within ${readyTimeoutMs} ms`
      } else {
        if (writes) checks['event_log_writable'] = health.writable
        if (reads) checks['event_log_readable'] = health.readable
        checks['event_log'] = (!writes || health.writable) && (!reads || health.readable)
        if (!checks['event_log']) reason = health.reason
      }
    }
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks, ...(reason === undefined ? {} : { reason }) })
  })
  if (!metricsApart) app.get('/metrics', metricsHandler(registry))
  app.get('/_info', async () => ({
    name: packageJson.name,
    version: packageJson.version,
    description: packageJson.description,
  }))
  app.get('/robots.txt', async (_request, reply) => reply.type('text/plain').send('User-agent: *\nDisallow: /\n'))
  addMethodNotAllowed()
  const specs = apiDocuments(platform)
  // EventGate's conventions: `/?spec` is the OpenAPI document, `/?doc` a page describing it.
  const consoleUi = consoleRoutes(app, { streams: servesStreams(platform) })
  app.get('/', async (request, reply) => {
    const query = request.query as Record<string, unknown>
    if ('spec' in query) return reply.type('application/json; charset=utf-8').send((await specs()).json)
    if ('doc' in query) return reply.type('text/html; charset=utf-8').send((await specs()).html)
    // A browser gets the console; API clients, the JSON index of endpoints.
    const page = consoleUi.consolePage(request, reply)
    if (page !== undefined) return page
    return reply.type('application/json; charset=utf-8').header('vary', 'Accept').send(index(platform))
  })
  return app
}

/**
 * The OpenAPI document and its page, with one path per served stream: the named ones, and those
 * made through `/regex/` keys whose topics are in the log (looked up at most every 2 s). Rebuilt
 * when the stream config or that set of streams changes; one build shared by concurrent requests.
 */
function apiDocuments(platform: Platform): () => Promise<{ json: string; html: string }> {
  type Documents = { json: string; html: string }
  const allowed = platform.config.streams.allowed as string[] | null
  const hidden = hiddenStreams(platform.config)
  const build = async (config: StreamConfig | undefined, made: ReadonlyMap<string, ServedStream>) => {
    let streamPaths: Record<string, unknown> = {}
    if (config !== undefined) {
      const described = await streamsOpenApi(new Map([...servedStreams(config, allowed, hidden), ...made]), platform.schemas)
      for (const failure of described.failures) {
        platform.logger.warn(failure, 'a stream is described in /?spec without its schema')
      }
      streamPaths = described.paths
    }
    const document = openApiDocument(packageJson.version, streamPaths)
    return { json: JSON.stringify(document), html: openApiHtml(document) }
  }
  const bySignature = new WeakMap<StreamConfig, Map<string, Promise<Documents>>>()
  let without: Promise<Documents> | undefined
  const logTopics = platform.log === undefined || !hasRole(platform.config, 'streams') ? () => Promise.resolve(new Set<string>()) : topicsLookup(platform.log, 2000)
  return async () => {
    const config = platform.streamConfig?.current()
    if (config === undefined) return (without ??= build(undefined, new Map()))
    const made = regexStreamsIn(config, await logTopics(), allowed, hidden)
    const signature = [...made.keys()].sort().join('\n')
    let builds = bySignature.get(config)
    if (builds === undefined) bySignature.set(config, (builds = new Map()))
    let hit = builds.get(signature)
    if (hit === undefined) {
      if (builds.size >= 16) builds.clear()
      builds.set(signature, (hit = build(config, made)))
    }
    return hit
  }
}

function index(platform: Platform) {
  const { config } = platform
  const streams = servesStreams(platform)
  return {
    name: packageJson.name,
    version: packageJson.version,
    roles: config.server.roles,
    endpoints: {
      ...(platform.intake === undefined ? {} : { events: '/v1/events', intake_recent: '/v1/intake/recent' }),
      console: '/ (Accept: text/html)',
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
    // Where refused events go, and whether they can be read here (the console's intake page
    // follows it when it is served: streams.expose_error_stream).
    ...(platform.intake !== undefined && config.intake.error_stream
      ? { error_stream: { name: config.intake.error_stream, served: streams && config.streams.expose_error_stream } }
      : {}),
  }
}
