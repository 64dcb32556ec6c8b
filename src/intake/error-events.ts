import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import type { CompiledSchema, ValidatorCache } from '../schemas/validator.ts'
import type { BatchResult, ItemResult, RequestContext } from './intake.ts'

export interface ErrorEventsOptions {
  stream: string
  schemaUri: string
  emitterId: string
  validators: ValidatorCache
  /** Writes error events through the intake (as internal events, allowed on the error stream). */
  write(events: JsonObject[], context: RequestContext): Promise<BatchResult>
  /** Reads the schema URI and the stream of a refused event. */
  schemaUriOf(event: JsonObject): unknown
  streamOf(event: JsonObject): unknown
  /** Average error events per second (0: no limit) and how many may go at once. */
  perSecond: number
  burst: number
  /** raw_event is cut to this many characters. */
  maxRawChars: number
  /** Dotted paths left out of raw_event (the producer's address and headers). */
  privateFields: readonly string[]
  logger: Logger
  registry?: Registry | undefined
  /** Whether the stream config has the error stream now; without it nothing is written, and that is said once, not per event. */
  streamConfigured?: () => boolean
}

/** How often a missing error stream is told in the log. */
const missingStreamWarningMs = 10 * 60_000

export interface ErrorEvents {
  /** Error events for refused events, written after the answer, never delaying it. */
  emit(failed: readonly ItemResult[], context: RequestContext): void
  /** Waits for error events still being written. */
  close(): Promise<void>
}

/**
 * Error events, as Wikimedia's eventgate-wikimedia makes them, but never lost silently: each is
 * made to fit the error schema before it is written (strings cut to their `maxLength`, fields
 * that still do not fit left out when the schema lets them be), their rate is bounded by a
 * token bucket so that a flood of bad events cannot turn into a flood of writes, and every one
 * is counted by outcome in `eventplane_intake_error_events_total`: written, suppressed (over
 * the rate), unfit (could not be made valid), failed (the write failed).
 */
export function createErrorEvents(options: ErrorEventsOptions): ErrorEvents {
  const log = options.logger
  const pending = new Set<Promise<unknown>>()
  const outcomes = new Counter({
    name: 'eventplane_intake_error_events_total',
    help: 'Error events for refused events, by outcome: written, suppressed (over intake.error_events_per_s), unfit (could not be made to fit the error schema), failed (the write failed), no_stream (the stream config lacks intake.error_stream).',
    labelNames: ['outcome'] as const,
    registers: options.registry ? [options.registry] : [],
  })
  const suppressed = new Counter({
    name: 'eventplane_intake_error_events_suppressed_total',
    help: 'Error events not written because they came faster than intake.error_events_per_s.',
    registers: options.registry ? [options.registry] : [],
  })
  const bucket = tokenBucket(options.perSecond, options.burst)
  let lastMissingWarning = -Infinity

  function errorEvent(item: ItemResult, context: RequestContext): JsonObject {
    const original = item.event
    const meta = isPlainObject(original) && isPlainObject(original['meta']) ? original['meta'] : {}
    const text = (value: unknown) => (typeof value === 'string' ? value : 'unknown')
    let raw: string
    try {
      raw = JSON.stringify(isPlainObject(original) ? without(original, options.privateFields) : original) ?? String(original)
    } catch {
      raw = String(original)
    }
    const event: JsonObject = {
      $schema: options.schemaUri,
      meta: {
        stream: options.stream,
        id: randomUUID(),
        uri: text(meta['uri']),
        domain: text(meta['domain']),
        request_id: context.requestId ?? text(meta['request_id']),
      },
      dt: new Date().toISOString(),
      emitter_id: options.emitterId,
      raw_event: raw.length > options.maxRawChars ? cutCodePoints(raw, options.maxRawChars) : raw,
      errored_schema_uri: isPlainObject(original) ? text(options.schemaUriOf(original)) : 'unknown',
      errored_stream_name: isPlainObject(original) ? text(options.streamOf(original)) : 'unknown',
      message: item.context.message,
      error_type: item.context.code,
    }
    return event
  }

  async function write(failed: readonly ItemResult[], context: RequestContext): Promise<void> {
    let schema: CompiledSchema
    try {
      schema = await options.validators.get(options.schemaUri)
    } catch (error) {
      outcomes.inc({ outcome: 'failed' }, failed.length)
      log.error({ err: error, schema: options.schemaUri }, 'the error schema cannot be loaded: error events are not written')
      return
    }
    const events: JsonObject[] = []
    let unfit = 0
    for (const item of failed) {
      const event = errorEvent(item, context)
      if (fitToSchema(event, schema)) events.push(event)
      else unfit++
    }
    if (unfit > 0) {
      outcomes.inc({ outcome: 'unfit' }, unfit)
      log.error({ unfit, schema: options.schemaUri }, 'error events could not be made to fit the error schema')
    }
    if (events.length === 0) return
    const result = await options.write(events, { receivedAt: new Date(), requestId: context.requestId })
    const notWritten = result.invalid.length + result.error.length
    if (result.accepted > 0) outcomes.inc({ outcome: 'written' }, result.accepted)
    if (notWritten > 0) {
      outcomes.inc({ outcome: 'failed' }, notWritten)
      const first = [...result.invalid, ...result.error][0]!
      log.error({ failed: notWritten, code: first.context.code, message: first.context.message }, 'error events could not be written')
    }
  }

  return {
    emit(failed, context) {
      // Never an error event about an error event: a broken error stream must not loop.
      const items = failed.filter((item) => !(isPlainObject(item.event) && options.streamOf(item.event) === options.stream))
      if (items.length === 0) return
      if (options.streamConfigured?.() === false) {
        outcomes.inc({ outcome: 'no_stream' }, items.length)
        const now = Date.now()
        if (now - lastMissingWarning >= missingStreamWarningMs) {
          lastMissingWarning = now
          log.warn(
            { error_stream: options.stream },
            `intake.error_stream ${options.stream} is not in the stream config: no error events are written for refused events. Add the stream (as defaults/streams.yaml has it), or set intake.error_stream: null`,
          )
        }
        return
      }
      const allowed = bucket(items.length)
      if (allowed < items.length) {
        outcomes.inc({ outcome: 'suppressed' }, items.length - allowed)
        suppressed.inc(items.length - allowed)
      }
      if (allowed === 0) return
      const work = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => write(items.slice(0, allowed), context))
        .catch((error: unknown) => {
          outcomes.inc({ outcome: 'failed' }, allowed)
          log.error({ err: error }, 'writing error events failed')
        })
        .finally(() => pending.delete(work))
      pending.add(work)
    },
    async close() {
      while (pending.size > 0) await Promise.allSettled([...pending])
    },
  }
}

/** How many of `n` may go now: a bucket of `burst` tokens refilled at `perSecond` (0: no limit). */
export function tokenBucket(perSecond: number, burst: number): (n: number) => number {
  if (perSecond <= 0) return (n) => n
  let tokens = burst
  let last = performance.now()
  return (n) => {
    const now = performance.now()
    tokens = Math.min(burst, tokens + ((now - last) / 1000) * perSecond)
    last = now
    const take = Math.min(n, Math.floor(tokens))
    tokens -= take
    return take
  }
}

/**
 * Makes an event fit a schema it was built for but whose content came from outside: strings
 * are cut to their `maxLength`, then properties that still fail and that the schema does not
 * require are left out. Returns whether the event now validates.
 */
export function fitToSchema(event: JsonObject, compiled: CompiledSchema): boolean {
  cutStrings(event, compiled.schema)
  for (let round = 0; round < 4; round++) {
    if (compiled.validate(event)) return true
    let changed = false
    for (const error of compiled.validate.errors ?? []) {
      const path = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      if (error.keyword === 'additionalProperties') path.push(String((error.params as { additionalProperty?: unknown }).additionalProperty))
      if (path.length > 0 && leaveOut(event, compiled.schema, path)) changed = true
    }
    if (!changed) return false
  }
  return compiled.validate(event)
}

function cutStrings(value: JsonObject, schema: unknown): void {
  const properties = isPlainObject(schema) && isPlainObject(schema['properties']) ? schema['properties'] : undefined
  if (properties === undefined) return
  for (const key of Object.keys(value)) {
    const sub = properties[key]
    if (!isPlainObject(sub)) continue
    const v = value[key]
    const max = sub['maxLength']
    if (typeof v === 'string' && typeof max === 'number' && v.length > max) value[key] = cutCodePoints(v, max)
    else if (isPlainObject(v)) cutStrings(v, sub)
  }
}

/** Deletes the property at `path` unless its parent schema requires it; whether it did. */
function leaveOut(event: JsonObject, schema: unknown, path: string[]): boolean {
  let node: unknown = event
  let nodeSchema: unknown = schema
  for (const part of path.slice(0, -1)) {
    if (!isPlainObject(node)) return false
    node = node[part]
    const properties = isPlainObject(nodeSchema) ? nodeSchema['properties'] : undefined
    nodeSchema = isPlainObject(properties) ? properties[part] : undefined
  }
  const key = path[path.length - 1]!
  if (!isPlainObject(node) || !Object.hasOwn(node, key)) return false
  const required = isPlainObject(nodeSchema) && Array.isArray(nodeSchema['required']) ? nodeSchema['required'] : []
  if (required.includes(key)) return false
  delete node[key]
  return true
}

/** At most `max` UTF-16 units, without splitting a surrogate pair (so at most `max` code points). */
export function cutCodePoints(value: string, max: number): string {
  if (value.length <= max) return value
  const code = value.charCodeAt(max - 1)
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max)
}

/** A copy of `event` without the values at the dotted `paths` (copied only along those paths). */
export function without(event: JsonObject, paths: readonly string[]): JsonObject {
  let out = event
  for (const path of paths) {
    const parts = path.split('.')
    let source: unknown = out
    for (const part of parts.slice(0, -1)) source = isPlainObject(source) ? source[part] : undefined
    if (!isPlainObject(source) || !Object.hasOwn(source, parts[parts.length - 1]!)) continue
    if (out === event) out = { ...event }
    let target = out
    for (const part of parts.slice(0, -1)) {
      const copy = { ...(target[part] as JsonObject) }
      target[part] = copy
      target = copy
    }
    delete target[parts[parts.length - 1]!]
  }
  return out
}
