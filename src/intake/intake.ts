import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError, type ErrorCode } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import type { AppendRecord, EventLog } from '../log/types.ts'
import type { CompiledSchema, ValidatorCache } from '../schemas/validator.ts'
import { validationErrorsText } from '../schemas/validator.ts'
import type { ResolvedStreamSettings, StreamConfigSource } from '../streamconfig/index.ts'

export interface IntakeOptions {
  validators: ValidatorCache
  /** Without one, any stream accepts any schema (as EventGate without stream_config_uri). */
  streamConfig: StreamConfigSource | undefined
  log: EventLog
  logger: Logger
  registry?: Registry
  schemaUriField?: string
  streamField?: string
  allowAbsoluteSchemaUris?: boolean
  /** http(s) base URIs under which absolute `$schema` URIs are accepted (when allowed). */
  absoluteBaseUris?: readonly string[]
  allowUnknownStreams?: boolean
  topicPrefix?: string
  errorStream?: string | null
  errorSchemaUri?: string
  emitterId?: string
}

/** What the intake knows about the request an event came in. */
export interface RequestContext {
  receivedAt: Date
  /** receivedAt as ISO-8601, filled in on first use. */
  receivedAtIso?: string
  requestId?: string | undefined
  userAgent?: string | undefined
  clientIp?: string | undefined
  /** From `?schema_uri=` / `?stream=`: filled into events that lack them. */
  defaultSchemaUri?: string | undefined
  defaultStream?: string | undefined
}

export type ItemStatus = 'invalid' | 'error'

/** One event that was not accepted, as EventGate reports it: `{status, event, context}`. */
export interface ItemResult {
  status: ItemStatus
  /** Position of the event in the batch, from 0 (our addition to EventGate's shape). */
  index?: number
  event: unknown
  context: {
    code: ErrorCode
    message: string
    /** Validator errors (ajv 8 ErrorObjects, with `instancePath`), for schema validation failures. */
    errors?: unknown[]
    errorsText?: string
    canRetry?: boolean
  }
}

export interface BatchResult {
  total: number
  accepted: number
  invalid: ItemResult[]
  error: ItemResult[]
}

export interface Intake {
  /** Validates, enriches and appends a batch; resolves when every accepted event is durable. */
  process(events: readonly unknown[], context: RequestContext): Promise<BatchResult>
  /** Waits for error events still being written. */
  close(): Promise<void>
}

/** Header values copied into events are cut to this length, as EventGate does. */
const maxHeaderLength = 400
const absoluteUri = /^[a-z][a-z0-9+.-]*:/i

/**
 * The intake pipeline (EventGate's, with Wikimedia's stream checks), per event:
 * find the schema by `$schema` → check the stream and its `schema_title` → fill in fields the
 * schema has and the event lacks (meta.id, meta.dt, meta.request_id, user agent, client IP)
 * → validate (filling schema defaults) → topic, key and timestamp → one durable append for
 * the whole batch. Producer mistakes are `invalid`; failures of ours (a schema that does
 * not compile, a schema service or log that is down) are `error`.
 */
export function createIntake(options: IntakeOptions): Intake {
  const schemaPath = options.schemaUriField ?? '$schema'
  const streamPath = options.streamField ?? 'meta.stream'
  const getSchemaUri = getter(schemaPath)
  const getStream = getter(streamPath)
  const topicPrefix = options.topicPrefix ?? ''
  const log = options.logger
  const pendingErrorEvents = new Set<Promise<unknown>>()
  const counter = new Counter({
    name: 'eventplane_intake_events_total',
    help: 'Events received by the intake, by stream, schema and outcome (accepted, invalid, error).',
    labelNames: ['stream', 'schema', 'outcome'] as const,
    registers: options.registry ? [options.registry] : [],
  })

  type Prepared = { record: AppendRecord; event: JsonObject; index?: number; stream?: string; schema?: string }
  /** Metric labels: only configured streams and schemas that exist, so labels stay bounded. */
  type Labels = { stream: string; schema: string }

  /**
   * Lookups done once per batch rather than per event (most batches use one or two schemas
   * and streams): schema URI → compiled schema, stream → settings and topic.
   */
  interface Memo {
    schemas: Map<string, { path: string; compiled: CompiledSchema }>
    streams: Map<string, { settings: ResolvedStreamSettings | undefined; topic: string }>
  }

  /** Synchronous when the schema is compiled already (nearly always); a promise otherwise. */
  function prepare(event: unknown, context: RequestContext, labels: Labels, memo: Memo): Prepared | ItemResult | Promise<Prepared | ItemResult> {
    if (!isPlainObject(event)) return fail('invalid', event, 'EVP_EVENT_NOT_OBJECT', 'an event must be a JSON object')
    let uri = getSchemaUri(event)
    if (uri === undefined && context.defaultSchemaUri !== undefined) {
      setPath(event, schemaPath, context.defaultSchemaUri)
      uri = context.defaultSchemaUri
    }
    if (typeof uri !== 'string' || uri === '') return fail('invalid', event, 'EVP_EVENT_SCHEMA_MISSING', `the event has no ${schemaPath}`)
    const known = memo.schemas.get(uri)
    if (known !== undefined) {
      labels.schema = known.path
      return finish(event, known.compiled, known.path, context, labels, memo)
    }
    const path = schemaUriPath(uri)
    if (path === undefined) {
      return fail('invalid', event, 'EVP_SCHEMA_URI_NOT_ALLOWED', `${schemaPath} ${JSON.stringify(uri)} must be a path such as /test/event/1.0.0`)
    }
    const compiled = options.validators.peek(path)
    if (compiled !== undefined) {
      memo.schemas.set(uri, { path, compiled })
      labels.schema = path
      return finish(event, compiled, path, context, labels, memo)
    }
    return options.validators.get(path).then(
      (found) => {
        memo.schemas.set(uri, { path, compiled: found })
        labels.schema = path
        return finish(event, found, path, context, labels, memo)
      },
      (error: unknown) => {
        const e = error instanceof EventplaneError ? error : new EventplaneError('EVP_INTERNAL', String(error))
        // A schema that is not there, or a URI that is not allowed, is the producer's mistake;
        // a schema service that is down or a schema that does not compile is ours.
        const producerFault = ['EVP_SCHEMA_NOT_FOUND', 'EVP_PATH_INVALID', 'EVP_SCHEMA_REF_INVALID'].includes(e.code)
        return fail(producerFault ? 'invalid' : 'error', event, producerFault && e.code !== 'EVP_SCHEMA_NOT_FOUND' ? 'EVP_SCHEMA_URI_NOT_ALLOWED' : e.code, e.message, e.canRetry)
      },
    )
  }

  function finish(event: JsonObject, compiled: CompiledSchema, path: string, context: RequestContext, labels: Labels, memo: Memo): Prepared | ItemResult {
    let stream = getStream(event)
    if (stream === undefined && context.defaultStream !== undefined) {
      setPath(event, streamPath, context.defaultStream)
      stream = context.defaultStream
    }
    if (typeof stream !== 'string' || stream === '') return fail('invalid', event, 'EVP_EVENT_STREAM_MISSING', `the event has no ${streamPath}`)

    let streamInfo = memo.streams.get(stream)
    if (streamInfo === undefined) {
      const found = options.streamConfig?.current().lookup(stream)
      streamInfo = { settings: found, topic: topicFor(stream, found) }
      memo.streams.set(stream, streamInfo)
    }
    const settings = streamInfo.settings
    if (settings !== undefined) labels.stream = stream
    if (options.streamConfig !== undefined) {
      if (settings === undefined && !options.allowUnknownStreams) {
        return fail('invalid', event, 'EVP_STREAM_NOT_ALLOWED', `stream ${JSON.stringify(stream)} is not configured`)
      }
      if (settings !== undefined && settings.schema_title !== compiled.title) {
        return fail(
          'invalid',
          event,
          'EVP_SCHEMA_NOT_ALLOWED_FOR_STREAM',
          `stream ${JSON.stringify(stream)} takes schema ${JSON.stringify(settings.schema_title)}, not ${JSON.stringify(compiled.title)} (${path})`,
        )
      }
    }

    enrich(event, compiled, context)
    if (!compiled.check(event) && !compiled.validate(event)) {
      const errors = compiled.validate.errors ?? []
      const text = validationErrorsText(errors)
      return { status: 'invalid', event, context: { code: 'EVP_EVENT_INVALID', message: text, errors: [...errors], errorsText: text } }
    }

    let key: string | null = null
    const keyFields = settings?.message_key_fields
    if (keyFields !== undefined && keyFields !== null) {
      const keyObject: JsonObject = {}
      for (const [name, fieldPath] of Object.entries(keyFields as Record<string, string>)) {
        const value = getter(fieldPath)(event)
        if (value === undefined) {
          return fail('invalid', event, 'EVP_EVENT_KEY_MISSING', `stream ${stream} keys events by ${fieldPath}, which the event lacks`)
        }
        keyObject[name] = value
      }
      key = JSON.stringify(keyObject)
    }
    const meta = event['meta']
    const dtText = isPlainObject(meta) ? meta['dt'] : undefined
    // meta.dt is nearly always the receive time we just filled in: no need to parse it back.
    const dt = dtText === context.receivedAtIso ? context.receivedAt.getTime() : typeof dtText === 'string' ? Date.parse(dtText) : NaN
    return {
      index: 0,
      stream: 'unknown',
      schema: 'unknown',
      record: {
        topic: streamInfo.topic,
        key,
        value: JSON.stringify(event),
        timestamp: Number.isFinite(dt) ? dt : context.receivedAt.getTime(),
      },
      event,
    }
  }

  const topics = new WeakMap<object, Map<string, string>>()
  const unconfiguredTopics = new Map<string, string>()
  function topicFor(stream: string, settings: { topic_prefixes?: readonly string[] | null } | undefined): string {
    const cache = settings === undefined ? unconfiguredTopics : topics.get(settings) ?? new Map<string, string>()
    if (settings !== undefined && !topics.has(settings)) topics.set(settings, cache)
    let topic = cache.get(stream)
    if (topic === undefined) {
      // Streams configured without prefixes, and legacy eventlogging_ streams, are their own topic.
      const prefixes = settings?.topic_prefixes
      topic = (settings !== undefined && prefixes == null) || stream.startsWith('eventlogging_') ? stream : topicPrefix + stream
      if (prefixes != null && !prefixes.includes(topicPrefix)) {
        log.warn(
          { stream, topic_prefix: topicPrefix, topic_prefixes: prefixes },
          "intake.topic_prefix is not one of the stream's topic_prefixes: readers of the stream's topics will not see these events",
        )
      }
      if (cache.size < 10_000) cache.set(stream, topic)
    }
    return topic
  }

  /** `$schema` as a path to look up; absolute URIs only under a configured http(s) base. */
  function schemaUriPath(uri: string): string | undefined {
    if (!absoluteUri.test(uri)) return uri.startsWith('/') ? uri : undefined
    if (!options.allowAbsoluteSchemaUris) return undefined
    for (const base of options.absoluteBaseUris ?? []) {
      const prefix = base.replace(/\/+$/, '')
      if (uri.startsWith(prefix + '/')) return uri.slice(prefix.length)
    }
    return undefined
  }

  function enrich(event: JsonObject, compiled: CompiledSchema, context: RequestContext): void {
    const f = compiled.fields
    if (f.metaId || f.metaDt || f.metaRequestId) {
      let meta = event['meta']
      if (!isPlainObject(meta)) {
        if (meta !== undefined) return // not an object: validation will say so
        meta = event['meta'] = {}
      }
      const m = meta as JsonObject
      if (f.metaId && m['id'] === undefined) m['id'] = randomUUID()
      if (f.metaDt && m['dt'] === undefined) m['dt'] = receivedIso(context)
      if (f.metaRequestId && m['request_id'] === undefined && context.requestId !== undefined) m['request_id'] = cut(context.requestId)
    }
    if (f.dt && event['dt'] === undefined) event['dt'] = receivedIso(context)
    if ((f.userAgent && context.userAgent !== undefined) || (f.clientIp && context.clientIp !== undefined)) {
      let http = event['http']
      if (http === undefined) http = event['http'] = {}
      if (!isPlainObject(http)) return
      if (f.clientIp && http['client_ip'] === undefined && context.clientIp !== undefined) http['client_ip'] = cut(context.clientIp)
      if (f.userAgent && context.userAgent !== undefined) {
        let headers = http['request_headers']
        if (headers === undefined) headers = http['request_headers'] = {}
        if (isPlainObject(headers) && headers['user-agent'] === undefined) headers['user-agent'] = cut(context.userAgent)
      }
    }
  }


  /** Error events for refused events, written after the response, never delaying it. */
  function emitErrorEvents(failed: ItemResult[], context: RequestContext): void {
    const errorStream = options.errorStream
    if (!errorStream || failed.length === 0) return
    const events = failed
      // Never an error event about an error event: a broken error stream must not loop.
      .filter((item) => !(isPlainObject(item.event) && getStream(item.event) === errorStream))
      .map((item) => errorEvent(item, errorStream, context))
    if (events.length === 0) return
    const work = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => processBatch(events, { receivedAt: new Date(), requestId: context.requestId }, false))
      .then((result) => {
        for (const item of [...result.invalid, ...result.error]) {
          log.error({ code: item.context.code, message: item.context.message }, 'an error event could not be written')
        }
      })
      .catch((error: unknown) => log.error({ err: error }, 'writing error events failed'))
      .finally(() => pendingErrorEvents.delete(work))
    pendingErrorEvents.add(work)
  }

  function errorEvent(item: ItemResult, stream: string, context: RequestContext): JsonObject {
    const original = item.event
    const meta = isPlainObject(original) && isPlainObject(original['meta']) ? original['meta'] : {}
    const text = (value: unknown) => (typeof value === 'string' ? value : 'unknown')
    let raw: string
    try {
      raw = JSON.stringify(original) ?? String(original)
    } catch {
      raw = String(original)
    }
    return {
      $schema: options.errorSchemaUri ?? '/error/1.0.0',
      meta: {
        stream,
        id: randomUUID(),
        uri: text(meta['uri']),
        domain: text(meta['domain']),
        request_id: context.requestId ?? text(meta['request_id']),
      },
      dt: new Date().toISOString(),
      emitter_id: options.emitterId ?? 'eventplane-intake',
      raw_event: raw.length > 4_000_000 ? raw.slice(0, 4_000_000) : raw,
      errored_schema_uri: isPlainObject(original) ? text(getSchemaUri(original)) : 'unknown',
      errored_stream_name: isPlainObject(original) ? text(getStream(original)) : 'unknown',
      message: item.context.message.slice(0, 65536),
      error_type: item.context.code,
    }
  }

  async function processBatch(events: readonly unknown[], context: RequestContext, withErrorEvents: boolean): Promise<BatchResult> {
    const invalid: ItemResult[] = []
    const error: ItemResult[] = []
    const prepared: Prepared[] = []
    const records: AppendRecord[] = []
    const memo: Memo = { schemas: new Map(), streams: new Map() }
    // Counted once per batch and label set; consecutive events nearly always share labels.
    const counts: Array<{ stream: string; schema: string; outcome: string; n: number }> = []
    let last: (typeof counts)[number] | undefined
    const count = (labels: Labels, outcome: string) => {
      if (last !== undefined && last.stream === labels.stream && last.schema === labels.schema && last.outcome === outcome) {
        last.n++
        return
      }
      last = counts.find((c) => c.stream === labels.stream && c.schema === labels.schema && c.outcome === outcome)
      if (last === undefined) counts.push((last = { stream: labels.stream, schema: labels.schema, outcome, n: 1 }))
      else last.n++
    }
    // Events of a batch are prepared one after another, in order, so the batch keeps its order
    // in the log; almost always the schema is compiled already and nothing is awaited.
    const labels: Labels = { stream: 'unknown', schema: 'unknown' }
    for (let index = 0; index < events.length; index++) {
      labels.stream = 'unknown'
      labels.schema = 'unknown'
      let result = prepare(events[index], context, labels, memo)
      if (result instanceof Promise) result = await result
      result.index = index
      if ('record' in result) {
        result.stream = labels.stream
        result.schema = labels.schema
        prepared.push(result)
        records.push(result.record)
      } else {
        ;(result.status === 'invalid' ? invalid : error).push(result)
        count(labels, result.status)
      }
    }
    let accepted = 0
    if (prepared.length > 0) {
      try {
        await options.log.append(records)
        accepted = prepared.length
        for (const p of prepared) count(p as Labels, 'accepted')
      } catch (cause) {
        const e = cause instanceof EventplaneError ? cause : new EventplaneError('EVP_LOG_UNAVAILABLE', String(cause), { cause })
        log.error({ err: e, code: e.code }, 'append to the event log failed')
        for (const p of prepared) {
          error.push({ status: 'error', index: p.index, event: p.event, context: { code: e.code, message: e.message, canRetry: e.canRetry } })
          count(p as Labels, 'error')
        }
      }
    }
    for (const { stream, schema, outcome, n } of counts) counter.inc({ stream, schema, outcome }, n)
    if (withErrorEvents) emitErrorEvents(invalid, context)
    return { total: events.length, accepted, invalid, error }
  }

  return {
    process: (events, context) => processBatch(events, context, true),
    async close() {
      while (pendingErrorEvents.size > 0) await Promise.allSettled([...pendingErrorEvents])
    },
  }
}

let lastIsoMs = -1
let lastIso = ''

/** The receive time as ISO-8601, computed once per request (and once per millisecond). */
function receivedIso(context: RequestContext): string {
  if (context.receivedAtIso === undefined) {
    const ms = context.receivedAt.getTime()
    if (ms !== lastIsoMs) {
      lastIsoMs = ms
      lastIso = context.receivedAt.toISOString()
    }
    context.receivedAtIso = lastIso
  }
  return context.receivedAtIso
}

function fail(status: ItemStatus, event: unknown, code: ErrorCode, message: string, canRetry?: boolean): ItemResult {
  return { status, event, context: canRetry ? { code, message, canRetry } : { code, message } }
}

function cut(value: string): string {
  return value.length > maxHeaderLength ? value.slice(0, maxHeaderLength) : value
}

/** A reader for a dotted path (`meta.stream`); `$schema` and other plain keys read directly. */
function getter(path: string): (event: JsonObject) => unknown {
  const parts = path.split('.')
  if (parts.length === 1) return (event) => (Object.hasOwn(event, path) ? event[path] : undefined)
  return (event) => {
    let node: unknown = event
    for (const part of parts) {
      if (!isPlainObject(node) || !Object.hasOwn(node, part)) return undefined
      node = node[part]
    }
    return node
  }
}

function setPath(event: JsonObject, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = event
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    if (next === undefined) node = node[part] = {}
    else if (isPlainObject(next)) node = next
    else return
  }
  node[parts.at(-1)!] = value
}
