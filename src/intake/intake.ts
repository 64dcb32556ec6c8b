import { randomUUID } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError, type ErrorCode } from '../core/errors.ts'
import { withoutPaths } from '../core/paths.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { sliceMs } from '../core/slice.ts'
import type { AppendRecord, EventLog } from '../log/types.ts'
import { maxTimestamp } from '../log/validate.ts'
import type { CompiledSchema, ValidatorCache } from '../schemas/validator.ts'
import { eventGateErrors, eventGateErrorsText } from '../schemas/ajv6.ts'
import { isValidStreamName, type ResolvedStreamSettings, type StreamConfigSource } from '../streamconfig/index.ts'
import { AcceptedIds } from './dedupe.ts'
import { createErrorEvents, cutCodePoints } from './error-events.ts'
import { RecentActivity, type RecentCounts, type RecentOutcome } from './recent.ts'
import { Added, locateEvents, splicedEvent } from './splice.ts'

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
  /** Error events per second on average (0: no limit), at most `burst` at once; raw_event cut to `maxRawChars`. */
  errorEvents?: { perSecond: number; burst: number; maxRawChars: number }
  /** Dotted paths left out of the refused event quoted in an error event (producers' address and headers). */
  privateFields?: readonly string[]
  /**
   * The window of `meta.dt`, the event log timestamp, around the receive time (null: no bound
   * on that side; times before 1970 are always refused, as Kafka refuses them).
   */
  eventTime?: { maxFutureMs: number | null; maxPastMs: number | null }
  /** Distinct streams `/regex/` keys may make (each is a topic); default 1000. */
  maxRegexStreams?: number
  /** Producer-given meta.ids remembered to drop events sent again (dedupe.ts); maxIds 0: off. */
  dedupe?: { maxIds: number; windowMs: number }
  /** Topics in the log at start: streams made through regex keys among them count against the limit. */
  existingTopics?: readonly string[]
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
  /**
   * The JSON text the events were parsed from, unchanged (not CloudEvents, which are mapped):
   * accepted events are then stored as their own text with the enriched fields spliced in.
   */
  text?: string | undefined
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
    /** Validator errors, for schema validation failures: ajv 8's, with EventGate's (ajv 6) `dataPath` and wording (src/schemas/ajv6.ts). */
    errors?: unknown[]
    errorsText?: string
    canRetry?: boolean
  }
}

export interface BatchResult {
  total: number
  accepted: number
  /** Every refused event (answers list only the first `intake.max_refusals_listed`). */
  invalid: ItemResult[]
  error: ItemResult[]
}

export interface Intake {
  /** Validates, enriches and appends a batch; resolves when every accepted event is durable. */
  process(events: readonly unknown[], context: RequestContext): Promise<BatchResult>
  /** Events by stream and outcome over the last five minutes, in 10-second buckets. */
  recent(): RecentCounts
  /** Waits for error events still being written. */
  close(): Promise<void>
}

/** Header values copied into events are cut to this length, as EventGate does (and to the field's maxLength). */
const maxHeaderLength = 400
const absoluteUri = /^[a-z][a-z0-9+.-]*:/i
/** Longest `$schema` looked up: longer is a mistake or an attack, never a schema. */
const maxSchemaUriLength = 1024
/** Validator errors kept per refused event (an event can fail in as many places as it has values). */
const maxErrorsPerEvent = 20
/** Events longer than this (in UTF-16 units) are checked against the log's record size limit. */
const largeEventChars = 1 << 20
/** Enriched values copied from request headers, which the schema may refuse (bits of `Added`). */
const fromHeaders = Added.requestId | Added.clientIp | Added.userAgent

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
  const maxFutureMs = options.eventTime?.maxFutureMs ?? null
  const maxPastMs = options.eventTime?.maxPastMs ?? null
  const maxRegexStreams = options.maxRegexStreams ?? 1000
  const dedupe = options.dedupe === undefined || options.dedupe.maxIds === 0 ? undefined : new AcceptedIds(options.dedupe.maxIds, options.dedupe.windowMs)
  const errorStream = options.errorStream || undefined
  const counter = new Counter({
    name: 'eventplane_intake_events_total',
    help: 'Events received by the intake, by stream (a /regex/ key for the streams it makes), schema and outcome (accepted, duplicate: sent again with a meta.id appended lately, answered accepted and not appended twice; invalid; error).',
    labelNames: ['stream', 'schema', 'outcome'] as const,
    registers: options.registry ? [options.registry] : [],
  })
  const activity = new RecentActivity()
  const errorEvents =
    errorStream === undefined
      ? undefined
      : createErrorEvents({
          stream: errorStream,
          schemaUri: options.errorSchemaUri ?? '/eventplane/error/1.0.0',
          emitterId: options.emitterId ?? 'eventplane-intake',
          validators: options.validators,
          // Error events are Eventplane's own: the only events the error stream takes.
          write: (events, context) => processBatch(events, context, true),
          schemaUriOf: getSchemaUri,
          streamOf: getStream,
          perSecond: options.errorEvents?.perSecond ?? 100,
          burst: options.errorEvents?.burst ?? 1000,
          maxRawChars: options.errorEvents?.maxRawChars ?? 65536,
          privateFields: options.privateFields ?? ['http.client_ip', 'http.request_headers'],
          logger: log,
          registry: options.registry,
          ...(options.streamConfig === undefined || options.allowUnknownStreams === true
            ? {}
            : { streamConfigured: () => options.streamConfig!.current().resolve(errorStream) !== undefined }),
        })

  /** Streams made through regex keys so far (each is a topic), bounded by maxRegexStreams. */
  const regexStreams = new Set<string>()
  if (options.existingTopics !== undefined && options.streamConfig !== undefined) {
    const config = options.streamConfig.current()
    for (const topic of options.existingTopics) {
      const stream = topic.startsWith(topicPrefix) ? topic.slice(topicPrefix.length) : topic
      const found = config.resolve(stream)
      if (found !== undefined && found.key !== stream && regexStreams.size < maxRegexStreams) regexStreams.add(stream)
    }
  }

  /** givenId: the meta.id the producer gave; with dedupe on, replaced by its dedupe key before the append. */
  type Prepared = { record: AppendRecord; event: JsonObject; index?: number; stream?: string; schema?: string; givenId?: string }
  /** Metric labels: only configured streams (a regex stream by its key) and schemas that exist, so labels stay bounded. */
  type Labels = { stream: string; schema: string }

  /**
   * Lookups done once per batch rather than per event (most batches use one or two schemas
   * and streams): schema URI → compiled schema, stream → settings, label and topic.
   */
  interface Memo {
    schemas: Map<string, { path: string; compiled: CompiledSchema }>
    streams: Map<string, StreamInfo | ItemResult>
    /** The batch is Eventplane's own (error events). */
    internal: boolean
    /** Events in the batch. */
    count: number
    /** Where each event is in context.text (locateEvents), found on first use; null when it cannot be. */
    located?: Int32Array | null
    /** JSON of the values enrichment copies into each event of the request (splicedEvent). */
    quoted?: Map<string, string>
  }
  interface StreamInfo {
    settings: ResolvedStreamSettings | undefined
    /** The stream's label: its name, or the regex key that configures it. */
    label: string | undefined
    topic: string
    /** Made through a regex key and not counted yet. */
    newRegexStream: boolean
  }

  /** Synchronous when the schema is compiled already (nearly always); a promise otherwise. */
  function prepare(event: unknown, index: number, context: RequestContext, labels: Labels, memo: Memo): Prepared | ItemResult | Promise<Prepared | ItemResult> {
    if (!isPlainObject(event)) return fail('invalid', event, 'EVP_EVENT_NOT_OBJECT', 'an event must be a JSON object')
    let uri = getSchemaUri(event)
    // Set when the event is changed other than by enrichment: its text is then serialized anew.
    let changed = false
    if (uri === undefined && context.defaultSchemaUri !== undefined) {
      setPath(event, schemaPath, context.defaultSchemaUri)
      uri = context.defaultSchemaUri
      changed = true
    }
    if (typeof uri !== 'string' || uri === '') return fail('invalid', event, 'EVP_EVENT_SCHEMA_MISSING', `the event has no ${schemaPath}`)
    const known = memo.schemas.get(uri)
    if (known !== undefined) {
      labels.schema = known.path
      return finish(event, index, changed, known.compiled, known.path, context, labels, memo)
    }
    const path = schemaUriPath(uri)
    if (path === undefined) {
      return fail('invalid', event, 'EVP_SCHEMA_URI_NOT_ALLOWED', `${schemaPath} ${describeUri(uri)} must be a path such as /eventplane/test/event/1.0.0, without query or fragment, at most ${maxSchemaUriLength} characters`)
    }
    const compiled = options.validators.peek(path)
    if (compiled !== undefined) {
      memo.schemas.set(uri, { path, compiled })
      labels.schema = path
      return finish(event, index, changed, compiled, path, context, labels, memo)
    }
    return options.validators.get(path).then(
      (found) => {
        memo.schemas.set(uri, { path, compiled: found })
        labels.schema = path
        return finish(event, index, changed, found, path, context, labels, memo)
      },
      (error: unknown) => {
        const e = error instanceof EventplaneError ? error : new EventplaneError('EVP_INTERNAL', String(error))
        // A schema that is not there, or a URI that is not allowed, is the producer's mistake;
        // a schema service that is down or a schema that does not compile is ours.
        const producerFault = ['EVP_SCHEMA_NOT_FOUND', 'EVP_PATH_INVALID', 'EVP_SCHEMA_REF_INVALID'].includes(e.code)
        return fail(producerFault ? 'invalid' : 'error', event, producerFault && e.code !== 'EVP_SCHEMA_NOT_FOUND' ? 'EVP_SCHEMA_URI_NOT_ALLOWED' : e.code, withoutPaths(e.message), e.canRetry)
      },
    )
  }

  /** The stream's settings, label and topic, or why no event may go to it. */
  function streamInfo(stream: string, internal: boolean): StreamInfo | ItemResult {
    if (stream === errorStream && !internal) {
      return fail('invalid', undefined, 'EVP_STREAM_INTERNAL', `stream ${JSON.stringify(stream)} takes error events from the intake only`)
    }
    const found = options.streamConfig?.current().resolve(stream)
    if (found === undefined && !isValidStreamName(stream)) {
      return fail('invalid', undefined, 'EVP_STREAM_NAME_INVALID', `stream ${describeUri(stream)} is not a stream name: 1 to 249 of [A-Za-z0-9_.-]`)
    }
    if (options.streamConfig !== undefined && found === undefined && !options.allowUnknownStreams) {
      return fail('invalid', undefined, 'EVP_STREAM_NOT_ALLOWED', `stream ${describeUri(stream)} is not configured`)
    }
    const viaRegex = found !== undefined && found.key !== stream
    const topic = topicFor(stream, found?.settings)
    const bad = options.log.checkRecord({ topic, value: '' })
    if (bad !== undefined) {
      return fail('invalid', undefined, 'EVP_STREAM_NAME_INVALID', `stream ${describeUri(stream)} would be stored in topic ${describeUri(topic)}, which the event log cannot have: ${bad.message}`)
    }
    const newRegexStream = viaRegex && !regexStreams.has(stream)
    if (newRegexStream && regexStreams.size >= maxRegexStreams) {
      return fail(
        'invalid',
        undefined,
        'EVP_STREAM_LIMIT_REACHED',
        `stream ${stream} would be made through the regex key ${found.key}, and ${maxRegexStreams} streams made that way exist already (intake.max_regex_streams): configure it by name`,
      )
    }
    return { settings: found?.settings, label: found?.key, topic, newRegexStream }
  }

  function finish(event: JsonObject, index: number, changed: boolean, compiled: CompiledSchema, path: string, context: RequestContext, labels: Labels, memo: Memo): Prepared | ItemResult {
    let stream = getStream(event)
    if (stream === undefined && context.defaultStream !== undefined) {
      setPath(event, streamPath, context.defaultStream)
      stream = context.defaultStream
      changed = true
    }
    if (typeof stream !== 'string' || stream === '') return fail('invalid', event, 'EVP_EVENT_STREAM_MISSING', `the event has no ${streamPath}`)

    let info = memo.streams.get(stream)
    if (info === undefined) memo.streams.set(stream, (info = streamInfo(stream, memo.internal)))
    if ('status' in info) return { ...info, event }
    const settings = info.settings
    if (info.label !== undefined) labels.stream = info.label
    if (options.streamConfig !== undefined && settings !== undefined && settings.schema_title !== compiled.title) {
      return fail(
        'invalid',
        event,
        'EVP_SCHEMA_NOT_ALLOWED_FOR_STREAM',
        `stream ${JSON.stringify(stream)} takes schema ${JSON.stringify(settings.schema_title)}, not ${JSON.stringify(compiled.title)} (${path})`,
      )
    }

    const givenMeta = event['meta']
    const givenId = isPlainObject(givenMeta) && typeof givenMeta['id'] === 'string' ? givenMeta['id'] : undefined
    const enriched = enrich(event, compiled, context)
    if (!compiled.check(event) && !compiled.validate(event)) {
      // A value copied from a header that the schema refuses (a pattern, a format) is left out
      // rather than refuse the producer's event for it.
      changed = true
      if ((enriched & fromHeaders) === 0 || !dropEnriched(event, enriched, compiled.validate.errors ?? []) || !compiled.validate(event)) {
        const all = compiled.validate.errors ?? []
        const errors = eventGateErrors(all.length > maxErrorsPerEvent ? all.slice(0, maxErrorsPerEvent) : all, event)
        const text = eventGateErrorsText(errors) + (all.length > errors.length ? `, and ${all.length - errors.length} more` : '')
        return { status: 'invalid', event, context: { code: 'EVP_EVENT_INVALID', message: text, errors, errorsText: text } }
      }
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
    let timestamp = context.receivedAt.getTime()
    // meta.dt is nearly always the receive time just filled in: no need to parse it back.
    if (dtText !== context.receivedAtIso && typeof dtText === 'string') {
      const dt = Date.parse(dtText)
      if (Number.isFinite(dt)) {
        const outside = outsideWindow(dt, timestamp)
        if (outside !== undefined) return fail('invalid', event, 'EVP_EVENT_TIME_OUT_OF_RANGE', `meta.dt ${JSON.stringify(dtText)} is ${outside}`)
        timestamp = dt
      }
    }
    // The producer's text with the enriched fields spliced in, where it means what was validated.
    let value: string | undefined
    // (Error events are made by the intake: never spliced into the text of the request that caused them.)
    if (context.text !== undefined && !memo.internal && !changed && !compiled.fields.fillsItems) {
      if (memo.located === undefined) memo.located = locateEvents(context.text, memo.count) ?? null
      if (memo.located !== null) value = splicedEvent(context.text, memo.located, index, event, enriched, (memo.quoted ??= new Map()))
    }
    const record: AppendRecord = { topic: info.topic, key, value: value ?? JSON.stringify(event), timestamp }
    // A keyless event sent again (same meta.id) lands in the partition of its first attempt,
    // where readers drop the second copy (streams/dedupe.ts).
    if (key === null && isPlainObject(meta) && typeof meta['id'] === 'string') record.affinity = meta['id']
    // The topic was checked with the stream, the timestamp with the window; what is left is the
    // size, which no log refuses below 1 Mi characters (3 MiB): only larger events are checked.
    if (record.value.length > largeEventChars) {
      const refused = options.log.checkRecord(record)
      if (refused !== undefined) return fail('invalid', event, 'EVP_EVENT_TOO_LARGE', `the event cannot be stored: ${refused.message}`)
    }
    if (info.newRegexStream) {
      regexStreams.add(stream)
      info.newRegexStream = false
    }
    return { index: 0, stream: 'unknown', schema: 'unknown', record, event, givenId }
  }

  /** Why a meta.dt is outside the window, or undefined. */
  function outsideWindow(dt: number, now: number): string | undefined {
    if (dt < 0) return 'before 1970; the event log takes times from 1970-01-01T00:00:00Z on'
    if (maxFutureMs !== null && dt - now > maxFutureMs) return `more than ${maxFutureMs / 1000} s ahead of the server's clock (intake.event_time.max_future_s)`
    if (maxPastMs !== null && now - dt > maxPastMs) return `more than ${maxPastMs / 1000} s in the past (intake.event_time.max_past_s)`
    if (dt > maxTimestamp) return 'past the largest time the event log takes'
    return undefined
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

  /**
   * `$schema` as a path to look up; absolute URIs only under a configured http(s) base. An
   * empty fragment (`/x/1.0.0#`) is dropped; any other fragment, and any query, is refused,
   * so that one schema is one cache entry and one metric label, whatever producers append.
   */
  function schemaUriPath(raw: string): string | undefined {
    if (raw.length > maxSchemaUriLength || raw.includes('?')) return undefined
    const hash = raw.indexOf('#')
    if (hash !== -1 && hash !== raw.length - 1) return undefined
    const uri = hash === -1 ? raw : raw.slice(0, hash)
    if (!absoluteUri.test(uri)) return uri.startsWith('/') ? uri : undefined
    if (!options.allowAbsoluteSchemaUris) return undefined
    for (const base of options.absoluteBaseUris ?? []) {
      const prefix = base.replace(/\/+$/, '')
      if (uri.startsWith(prefix + '/')) return uri.slice(prefix.length)
    }
    return undefined
  }

  /** Fills in fields the schema has and the event lacks; returns which (a bit set of `Added`). */
  function enrich(event: JsonObject, compiled: CompiledSchema, context: RequestContext): number {
    const f = compiled.fields
    let added = 0
    if (f.metaId || f.metaDt || f.metaRequestId) {
      let meta = event['meta']
      if (!isPlainObject(meta)) {
        if (meta !== undefined) return added // not an object: validation will say so
        meta = event['meta'] = {}
        added |= Added.meta
      }
      const m = meta as JsonObject
      if (f.metaId && m['id'] === undefined) {
        m['id'] = randomUUID()
        added |= Added.metaId
      }
      if (f.metaDt && m['dt'] === undefined) {
        m['dt'] = receivedIso(context)
        added |= Added.metaDt
      }
      if (f.metaRequestId && m['request_id'] === undefined && context.requestId !== undefined) {
        m['request_id'] = cut(context.requestId, f.maxLength.requestId)
        added |= Added.requestId
      }
    }
    if (f.dt && event['dt'] === undefined) {
      event['dt'] = receivedIso(context)
      added |= Added.dt
    }
    if ((f.userAgent && context.userAgent !== undefined) || (f.clientIp && context.clientIp !== undefined)) {
      let http = event['http']
      if (http === undefined) {
        http = event['http'] = {}
        added |= Added.http
      }
      if (!isPlainObject(http)) return added
      if (f.clientIp && http['client_ip'] === undefined && context.clientIp !== undefined) {
        http['client_ip'] = cut(context.clientIp, f.maxLength.clientIp)
        added |= Added.clientIp
      }
      if (f.userAgent && context.userAgent !== undefined) {
        let headers = http['request_headers']
        if (headers === undefined) {
          headers = http['request_headers'] = {}
          added |= Added.headers
        }
        if (isPlainObject(headers) && headers['user-agent'] === undefined) {
          headers['user-agent'] = cut(context.userAgent, f.maxLength.userAgent)
          added |= Added.userAgent
        }
      }
    }
    return added
  }

  /** Leaves out the header values the validator refused; whether there was any. */
  function dropEnriched(event: JsonObject, enriched: number, errors: readonly { instancePath: string }[]): boolean {
    let dropped = false
    const http = isPlainObject(event['http']) ? event['http'] : undefined
    for (const { instancePath } of errors) {
      if (enriched & Added.requestId && instancePath === '/meta/request_id') {
        delete (event['meta'] as JsonObject)['request_id']
        dropped = true
      } else if (enriched & Added.clientIp && instancePath === '/http/client_ip' && http !== undefined) {
        delete http['client_ip']
        dropped = true
      } else if (enriched & Added.userAgent && instancePath === '/http/request_headers/user-agent' && isPlainObject(http?.['request_headers'])) {
        delete http['request_headers']['user-agent']
        dropped = true
      }
    }
    return dropped
  }

  async function processBatch(events: readonly unknown[], context: RequestContext, internal: boolean): Promise<BatchResult> {
    const invalid: ItemResult[] = []
    const error: ItemResult[] = []
    const prepared: Prepared[] = []
    const memo: Memo = { schemas: new Map(), streams: new Map(), internal, count: events.length }
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
    // in the log; almost always the schema is compiled already and nothing is awaited. A large
    // batch lets the event loop run every few milliseconds, so other requests go on meanwhile.
    const labels: Labels = { stream: 'unknown', schema: 'unknown' }
    let sliceStart = performance.now()
    for (let index = 0; index < events.length; index++) {
      if ((index & 7) === 7 && performance.now() - sliceStart > sliceMs) {
        await nextTurn()
        sliceStart = performance.now()
      }
      labels.stream = 'unknown'
      labels.schema = 'unknown'
      let result = prepare(events[index], index, context, labels, memo)
      if (result instanceof Promise) result = await result
      result.index = index
      if ('record' in result) {
        result.stream = labels.stream
        result.schema = labels.schema
        prepared.push(result)
      } else {
        ;(result.status === 'invalid' ? invalid : error).push(result)
        count(labels, result.status)
      }
    }
    let accepted = 0
    if (dedupe !== undefined && prepared.length > 0) {
      // Sent before (or twice in this batch) with the same producer-given meta.id: accepted, not appended again.
      const inBatch = new Set<string>()
      const fresh: Prepared[] = []
      for (const p of prepared) {
        if (p.givenId !== undefined) {
          const key = (p.givenId = AcceptedIds.key(p.record.topic, p.givenId))
          if (dedupe.has(key) || inBatch.has(key)) {
            accepted++
            count(p as Labels, 'duplicate')
            continue
          }
          inBatch.add(key)
        }
        fresh.push(p)
      }
      prepared.length = 0
      prepared.push(...fresh)
    }
    if (prepared.length > 0) {
      const failures = await append(prepared)
      for (let i = 0; i < prepared.length; i++) {
        const p = prepared[i]!
        const failure = failures?.[i]
        if (failure === undefined) {
          accepted++
          count(p as Labels, 'accepted')
          // givenId is the dedupe key by now (topic and id).
          if (p.givenId !== undefined) dedupe?.add(p.givenId)
          continue
        }
        // The log refusing a record is the record's fault (the producer's); any other failure is ours.
        const status: ItemStatus = failure.code === 'EVP_LOG_INVALID_ARGUMENT' ? 'invalid' : 'error'
        const item: ItemResult = { status, index: p.index, event: p.event, context: { code: failure.code, message: withoutPaths(failure.message) } }
        if (status === 'error') item.context.canRetry = failure.canRetry
        ;(status === 'invalid' ? invalid : error).push(item)
        count(p as Labels, status)
      }
      if (failures !== undefined && (error.length > 1 || invalid.length > 1)) {
        const byIndex = (a: ItemResult, b: ItemResult) => (a.index ?? 0) - (b.index ?? 0)
        error.sort(byIndex)
        invalid.sort(byIndex)
      }
    }
    for (const { stream, schema, outcome, n } of counts) {
      counter.inc({ stream, schema, outcome }, n)
      if (outcome !== 'duplicate') activity.add(stream, outcome as RecentOutcome, n)
    }
    if (!internal) errorEvents?.emit(invalid, context)
    return { total: events.length, accepted, invalid, error }
  }

  /**
   * Appends the prepared events in one call; returns undefined when all are durable, else the
   * failure of each. Everything the log refuses for what a record is was checked in `finish`;
   * should it refuse a batch for a record anyway, each record is appended on its own, so that
   * one refusal fails only its own event.
   */
  async function append(prepared: Prepared[]): Promise<Array<EventplaneError | undefined> | undefined> {
    const records: AppendRecord[] = new Array(prepared.length)
    for (let i = 0; i < prepared.length; i++) records[i] = prepared[i]!.record
    let failures: Array<EventplaneError | undefined> | undefined
    try {
      const outcomes = await options.log.appendEach(records)
      for (let i = 0; i < outcomes.length; i++) {
        const outcome = outcomes[i]
        if (outcome instanceof EventplaneError) (failures ??= new Array(outcomes.length))[i] = outcome
      }
    } catch (cause) {
      const e = asLogError(cause)
      failures = prepared.map(() => e)
    }
    if (failures === undefined) return undefined
    const refused = failures.every((f) => f?.code === 'EVP_LOG_INVALID_ARGUMENT')
    if (!refused || prepared.length === 1) {
      const first = failures.find((f) => f !== undefined)!
      // The event log logs what went wrong with Kafka (once per outage); here only what the
      // request lost, without the error's whole chain: an outage fails hundreds of requests a second.
      log.warn({ code: first.code, reason: first.message, failed: failures.filter((f) => f !== undefined).length, records: prepared.length }, 'the event log did not take every event of a request')
      return failures
    }
    log.warn({ err: failures[0], records: prepared.length }, 'the event log refused a batch; appending its records one by one')
    const outcomes = await Promise.allSettled(records.map((record) => options.log.appendEach([record])))
    return outcomes.map((outcome) => {
      if (outcome.status === 'rejected') return asLogError(outcome.reason)
      const [only] = outcome.value
      return only instanceof EventplaneError ? only : undefined
    })
  }

  return {
    process: (events, context) => processBatch(events, context, false),
    recent: () => activity.snapshot(),
    async close() {
      await errorEvents?.close()
    },
  }
}

function asLogError(cause: unknown): EventplaneError {
  return cause instanceof EventplaneError ? cause : new EventplaneError('EVP_LOG_NOT_WRITTEN', String(cause), { cause })
}

/** A value from a request, quoted in a message: cut, so a 4 MiB name does not make a 4 MiB answer. */
function describeUri(value: string): string {
  return JSON.stringify(value.length > 200 ? `${cutCodePoints(value, 200)}…` : value)
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

function cut(value: string, maxLength: number): string {
  const max = Math.min(maxHeaderLength, maxLength)
  return value.length > max ? cutCodePoints(value, max) : value
}

/**
 * The streams the events of a request name (at `streamPath`, else the request's default
 * stream), for the auth check before any event is taken. Events without a stream name none:
 * the intake refuses them on their own.
 */
export function eventStreams(events: readonly unknown[], streamPath: string, defaultStream: string | undefined): Set<string> {
  const read = getter(streamPath)
  const streams = new Set<string>()
  for (const event of events) {
    const stream = isPlainObject(event) ? read(event) : undefined
    if (typeof stream === 'string') streams.add(stream)
    else if (stream === undefined && defaultStream !== undefined) streams.add(defaultStream)
  }
  return streams
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
