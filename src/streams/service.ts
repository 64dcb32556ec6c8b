import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { acceptRanges, clientKey, securityHeaders } from '../core/http.ts'
import type { EventLog } from '../log/types.ts'
import type { StreamConfigSource } from '../streamconfig/index.ts'
import { StreamClient, type Assignment, type Format, type IdMode } from './client.ts'
import { regexStream, regexStreamsIn, servedStreams, topicsLookup, type ServedStream } from './exposure.ts'
import { compileFilter, type FilterLimits } from './filter.ts'
import { Hub, type Redaction } from './hub.ts'
import { parseLast, parseLastEventId, parseSince } from './positions.ts'

export interface StreamServiceOptions {
  log: EventLog
  streamConfig: StreamConfigSource
  logger: Logger
  registry?: Registry
  /** Streams served; null or absent: every configured stream and alias. */
  allowed?: readonly string[] | null
  idMode?: IdMode
  heartbeatIntervalMs?: number
  retryMs?: number
  /** 0: no limit. */
  maxConnectionsPerIp?: number
  maxBufferedBytes?: number
  filterLimits?: FilterLimits
  /** Distinct streams one request may name (default 100). */
  maxStreamsPerRequest?: number
  /** How long an ended stream may take to flush before its socket is destroyed (default 2 s). */
  closeGraceMs?: number
  /** Dotted paths left out of every event unless its stream sets consumers.eventplane_streams.redact_fields. */
  redactFields?: readonly string[]
  /** Streams never served (the error stream, unless exposed). */
  hidden?: readonly string[]
  /** One log reader per client instead of one shared per partition (the KafkaSSE design; a benchmark baseline: no dedupe, as KafkaSSE has none). */
  readerPerClient?: boolean
  /** Records back in a partition within which a repeated meta.id is a duplicate, not streamed (dedupe.ts; default 10,000; 0: off). */
  dedupeWindow?: number
}

type Query = Record<string, string | string[] | undefined>

/**
 * `GET /v2/stream/{streams}`: EventStreams. Events of every topic of the streams asked for,
 * merged into one Server-Sent Events response (or NDJSON with `Accept: application/json`),
 * from `?since=` or `Last-Event-ID`, through an optional server-side filter.
 */
export async function streamRoutes(app: FastifyInstance, options: StreamServiceOptions): Promise<void> {
  const hidden = options.hidden ?? []
  const redact = redaction(options.streamConfig, options.allowed, hidden, options.redactFields ?? ['http.client_ip', 'http.request_headers'])
  // Streams made through /regex/ keys are served once their topics exist: a name not found is
  // looked up in the log's topics as of this request (requests that came in before a look-up
  // began share it), so a stream written a moment ago is found.
  const existingTopics = topicsLookup(options.log, Infinity)
  const registers = options.registry ? [options.registry] : []
  const duplicates = new Counter({
    name: 'eventplane_streams_duplicates_skipped_total',
    help: 'Records not streamed because they repeat the meta.id of a record shortly before them in their partition (an event its producer sent again), counted once per record followed.',
    registers,
  })
  const dedupe = { window: options.dedupeWindow ?? 10_000, onDuplicate: () => duplicates.inc() }
  const hub = new Hub(options.log, options.logger, redact, dedupe)
  const clients = new Set<StreamClient>()
  const perIp = new Map<string, number>()
  const idMode = options.idMode ?? 'both'
  const maxPerIp = options.maxConnectionsPerIp ?? 10
  const limits = options.filterLimits ?? { maxLength: 2000, maxNodes: 200, maxNesting: 2, budget: 100_000 }
  const maxStreams = options.maxStreamsPerRequest ?? 100
  const connected = new Gauge({ name: 'eventplane_streams_connected_clients', help: 'Clients connected, by stream.', labelNames: ['stream'] as const, registers })
  const connections = new Counter({ name: 'eventplane_streams_connections_total', help: 'Connections opened, by stream.', labelNames: ['stream'] as const, registers })
  const sent = new Counter({ name: 'eventplane_streams_events_sent_total', help: 'Events sent to clients (after filters).', registers })
  const dropped = new Counter({ name: 'eventplane_streams_slow_clients_dropped_total', help: 'Clients disconnected because they read too slowly.', registers })
  const filterErrors = new Counter({ name: 'eventplane_streams_filter_errors_total', help: 'Events a filter failed on (skipped).', registers })
  const overBudget = new Counter({
    name: 'eventplane_streams_filter_over_budget_total',
    help: 'Events a filter needed more than streams.filter_budget evaluation steps for (skipped).',
    registers,
  })
  const hubs = new Set<Hub>([hub])
  new Gauge({
    name: 'eventplane_streams_log_readers',
    help: 'Live readers of the log per topic (one per partition followed; one per client and partition with streams.reader_per_client).',
    labelNames: ['topic'],
    registers,
    collect() {
      const counts = new Map<string, number>()
      for (const h of hubs) h.countReaders(counts)
      this.reset()
      for (const [topic, readers] of counts) this.set({ topic }, readers)
    },
  })

  const heartbeat = setInterval(() => {
    const now = Date.now()
    const interval = options.heartbeatIntervalMs ?? 15000
    for (const client of clients) if (now - client.lastWrite >= interval) client.heartbeat(now)
  }, Math.max(10, Math.min(1000, (options.heartbeatIntervalMs ?? 15000) / 2)))
  heartbeat.unref()

  // Streams never end by themselves: end them when the server stops, so it can stop.
  app.addHook('preClose', (done) => {
    clearInterval(heartbeat)
    for (const client of [...clients]) client.close()
    hub.close()
    done()
  })

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const arrived = Date.now()
    // The router has decoded the path once: a name is not decoded again (`%252C` is the name
    // `%2C`, not a comma), and a name given twice is one stream.
    const names = [
      ...new Set(
        ((request.params as { '*'?: string })['*'] ?? '')
          .split(',')
          .map((n) => n.trim())
          .filter((n) => n !== ''),
      ),
    ]
    const served = servedStreams(options.streamConfig.current(), options.allowed, hidden)
    if (names.length === 0) {
      throw new EventplaneError('EVP_STREAM_UNKNOWN', 'name at least one stream: /v2/stream/{stream}[,{stream}…]', { details: { available: [...served.keys()].sort() } })
    }
    if (names.length > maxStreams) {
      throw new EventplaneError('EVP_BAD_REQUEST', `${names.length} streams named; one request may name at most ${maxStreams} (streams.max_streams_per_request)`, { details: { limit: maxStreams } })
    }
    const made = new Map<string, ServedStream>()
    const notNamed = names.filter((n) => !served.has(n))
    if (notNamed.length > 0) {
      const existing = await existingTopics(arrived)
      for (const name of notNamed) {
        const stream = regexStream(options.streamConfig.current(), name, options.allowed, hidden, existing)
        if (stream !== undefined) made.set(name, stream)
      }
    }
    const unknown = notNamed.filter((n) => !made.has(n))
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 10).map((n) => (n.length > 100 ? `${n.slice(0, 100)}…` : n))
      throw new EventplaneError('EVP_STREAM_UNKNOWN', `invalid streams: ${shown.join(',')}${unknown.length > shown.length ? ` and ${unknown.length - shown.length} more` : ''}`, {
        details: { invalid: shown, available: [...served.keys()].sort() },
      })
    }
    const format = negotiate(request.headers.accept)
    const streams = names.map((n) => served.get(n) ?? made.get(n)!)
    const query = request.query as Query
    const since = parseSince(single(query['since']))
    const last = parseLast(single(query['last']), since)
    const filter = compileFilter(
      {
        expression: single(query['filter']),
        matches: matchParams(query),
        includeCanary: single(query['canary']) === 'include',
      },
      limits,
    )
    const topics = [...new Set(streams.flatMap((s) => s.topics))]
    const lastEventId = parseLastEventId(single(request.headers['last-event-id']), new Set(topics))
    const assignments = await assign(options.log, topics, since, last, lastEventId)

    const ip = clientKey(request.ip)
    const open = perIp.get(ip) ?? 0
    if (maxPerIp > 0 && open >= maxPerIp) {
      reply.header('retry-after', '10')
      throw new EventplaneError('EVP_TOO_MANY_CONNECTIONS', `${ip} has ${open} streams open; the limit is ${maxPerIp}`, { details: { limit: maxPerIp } })
    }
    // The slot is the socket's: it is given back when the socket is gone, not when the stream
    // ends, so a dropped client that keeps its socket open still counts.
    perIp.set(ip, open + 1)
    request.socket.once('close', () => {
      const left = (perIp.get(ip) ?? 1) - 1
      if (left <= 0) perIp.delete(ip)
      else perIp.set(ip, left)
    })

    const headers: Record<string, string | number | string[]> = { ...securityHeaders }
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value as string
    headers['content-type'] = format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/json; charset=utf-8'
    headers['cache-control'] = 'no-cache, no-transform'
    headers['x-accel-buffering'] = 'no'
    headers['x-request-id'] = request.id
    // A stream ends only when it must (shutdown, an error, a slow client): the connection goes with it.
    headers['connection'] = 'close'
    reply.hijack()
    const response = reply.raw
    response.writeHead(200, headers)
    response.flushHeaders()
    response.socket?.setNoDelay(true)
    if (format === 'sse') response.write(`:ok\n\nretry: ${options.retryMs ?? 2000}\n\n`)
    else response.write('\n')

    const streamLabels = [...new Set(streams.map((s) => s.label))]
    const clientHub = options.readerPerClient === true ? new Hub(options.log, options.logger, redact, { window: 0 }) : hub
    hubs.add(clientHub)
    const client = new StreamClient({
      log: options.log,
      hub: clientHub,
      response,
      assignments,
      format,
      idMode,
      filter,
      maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
      closeGraceMs: options.closeGraceMs ?? 2000,
      hooks: {
        onDelivered: (n) => sent.inc(n),
        onFilterError: () => filterErrors.inc(),
        onFilterOverBudget: () => overBudget.inc(),
        onSlowClient: () => dropped.inc(),
        onClose: () => {
          if (clientHub !== hub) {
            clientHub.close()
            hubs.delete(clientHub)
          }
          clients.delete(client)
          for (const stream of streamLabels) connected.dec({ stream })
          request.log.debug({ streams: names, ip }, 'stream closed')
        },
      },
    })
    clients.add(client)
    for (const stream of streamLabels) {
      connected.inc({ stream })
      connections.inc({ stream })
    }
    request.log.debug({ streams: names, ip, since, last, resumed: lastEventId !== undefined, filter: filter.key }, 'stream opened')
    request.raw.on('close', () => client.close())
    response.on('close', () => client.close())
    client.start().catch((error: unknown) => client.fail(error))
  }
  app.get('/v2/stream', handler)
  app.get('/v2/stream/*', handler)
}

/** Every partition of every topic, starting from Last-Event-ID where it names one, else `since` or `last`, else the end. */
async function assign(log: EventLog, topics: string[], since: number | undefined, last: number | undefined, lastEventId: ReturnType<typeof parseLastEventId>): Promise<Assignment[]> {
  const named = new Map((lastEventId ?? []).map((p) => [`${p.topic}\0${p.partition}`, p]))
  const assignments: Assignment[] = []
  for (const topic of topics) {
    const partitions = await log.partitions(topic)
    for (const position of lastEventId ?? []) {
      if (position.topic === topic && position.partition >= partitions) {
        throw new EventplaneError('EVP_LAST_EVENT_ID_INVALID', `Last-Event-ID names partition ${position.partition} of ${topic}, which has ${partitions}`)
      }
    }
    for (let partition = 0; partition < partitions; partition++) {
      const position = named.get(`${topic}\0${partition}`)
      const start: Assignment['start'] =
        position !== undefined
          ? position.offset !== undefined
            ? position.offset < 0
              ? { kind: 'latest' }
              : { kind: 'offset', offset: position.offset }
            : { kind: 'timestamp', timestamp: position.timestamp! }
          : since !== undefined
            ? { kind: 'timestamp', timestamp: since }
            : last !== undefined
              ? { kind: 'back', count: last }
              : { kind: 'latest' }
      assignments.push({ topic, partition, start })
    }
  }
  return assignments
}

function matchParams(query: Query): Array<[string, string]> {
  const matches: Array<[string, string]> = []
  for (const [key, value] of Object.entries(query)) {
    const m = /^match\[(.+)\]$/.exec(key)
    if (m === null) continue
    const last = single(value)
    if (last === undefined) throw new EventplaneError('EVP_FILTER_INVALID', `${key} needs a value`)
    matches.push([m[1]!, last])
  }
  return matches
}

/**
 * SSE unless the client asks for JSON (NDJSON); 406 when `Accept` allows neither. EventStreams
 * answers SSE to anything, which a client asking for, say, only images cannot read.
 */
function negotiate(accept: string | undefined): Format {
  if (accept === undefined || accept.trim() === '') return 'sse'
  let sse = 0
  let json = 0
  for (const { range: type, q } of acceptRanges(accept)) {
    if (type === 'text/event-stream' || type === 'text/*' || type === '*/*') sse = Math.max(sse, type === 'text/event-stream' ? q + 1 : q)
    if (type === 'application/json' || type === 'application/x-ndjson' || type === 'application/*') json = Math.max(json, type === 'application/*' ? q : q + 1)
  }
  if (sse === 0 && json === 0) {
    throw new EventplaneError('EVP_NOT_ACCEPTABLE', `Accept ${JSON.stringify(accept.slice(0, 200))} allows neither text/event-stream nor application/json`)
  }
  // KafkaSSE's rule: JSON only when it is asked for and the event stream is not.
  return json > sse ? 'ndjson' : 'sse'
}

/**
 * Which paths each topic's events lose: the stream's `consumers.eventplane_streams.redact_fields`
 * when it sets one, else `defaults`. Worked out once per topic and stream config generation.
 */
function redaction(streamConfig: StreamConfigSource, allowed: readonly string[] | null | undefined, hidden: readonly string[], defaults: readonly string[]): Redaction {
  let generation: object | undefined
  let byTopic = new Map<string, readonly (readonly string[])[]>()
  const split = (paths: readonly string[]) => paths.map((path) => path.split('.'))
  const fallback = split(defaults)
  const fieldsOf = (served: ServedStream) => {
    const consumers = served.settings['consumers'] as { eventplane_streams?: { redact_fields?: unknown } } | undefined
    const own = consumers?.eventplane_streams?.redact_fields
    return Array.isArray(own) ? split(own.filter((f): f is string => typeof f === 'string')) : fallback
  }
  return (topic) => {
    const config = streamConfig.current()
    if (config !== generation) {
      generation = config
      byTopic = new Map()
      for (const served of servedStreams(config, allowed, hidden).values()) {
        const fields = fieldsOf(served)
        for (const t of served.topics) byTopic.set(t, fields)
      }
    }
    let fields = byTopic.get(topic)
    if (fields === undefined) {
      // A topic of a stream made through a /regex/ key: that entry's fields.
      const [made] = regexStreamsIn(config, new Set([topic]), allowed, hidden).values()
      fields = made === undefined ? fallback : fieldsOf(made)
      if (byTopic.size < 100_000) byTopic.set(topic, fields)
    }
    return fields
  }
}

function single(value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[value.length - 1] : value
  return one === '' ? undefined : one
}

export type { ServedStream }
