import { backoff } from '@eventplane/client'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, setOwn, type JsonObject } from '../core/objects.ts'
import type { CompiledSchema, ValidatorCache } from '../schemas/validator.ts'
import type { Endpoint } from './endpoints.ts'
import { isPermanent, openSink, type OutItem, type Sink } from './sinks.ts'
import { describeItem, openSource, type Item } from './sources.ts'
import { loadState, saveState, type PipeState } from './state.ts'

export interface PipeOptions {
  from: { uri: string; endpoint: Endpoint }
  to: { uri: string; endpoint: Endpoint }
  config: Readonly<Config>
  /** Validate each event against its $schema (the config's schema repositories) and skip the invalid. */
  validate?: boolean
  /** A CEL expression: only events for which it is true go on. */
  filter?: string
  /** Fields to set (dotted paths) and to delete, applied in that order after the filter. */
  set?: ReadonlyArray<readonly [path: string, value: unknown]>
  drop?: readonly string[]
  /** Stop after this many events read. */
  limit?: number
  /** A malformed line stops the pipe (EVP_PIPE_LINE_MALFORMED) instead of being skipped. */
  strict?: boolean
  /** Log and SSE sources: wait for new events at the end (default true). */
  follow?: boolean
  statePath?: string
  /** Events per write (default 1000). */
  batch?: number
  /** Attempts after the first for events the destination failed to take (default 10). */
  retries?: number
  /** First wait between attempts (doubling up to 30 s, with jitter; default 500 ms). */
  retryBaseMs?: number
  /** Stops reading: the batch in hand is written (with its retries) and the state saved. */
  signal?: AbortSignal
  /** Stops at once: retries are abandoned; the state stays at the last batch written. */
  hardSignal?: AbortSignal
  /** Called about once a second while running. */
  onProgress?(progress: Progress): void
  /** Lines worth telling a person: skipped events (the first few), reconnects, rotations. */
  notice(text: string): void
}

export interface Counts {
  read: number
  written: number
  /** Left out by --filter (or the filter failed on them). */
  filtered: number
  /** Not JSON objects, or lines over the length limit. */
  malformed: number
  /** Failed --validate. */
  invalid: number
  /** Refused by the destination for what they are (an intake's invalid events, a record too large for a log). */
  refused: number
  /** Attempts made again after a destination failure. */
  retries: number
}

export interface Progress extends Counts {
  elapsedMs: number
  /** Events read per second over the last interval. */
  rate: number
  lag: { value: number; unit: 'events' | 'bytes' } | undefined
}

export interface PipeResult extends Counts {
  elapsedMs: number
  /** Why it stopped: the source ended, --limit, a signal, or an error (thrown after the state is saved). */
  stoppedBy: 'end' | 'limit' | 'signal'
  /** The state file written, if any. */
  statePath: string | undefined
}

/** The event of an item copied as text, unparsed (file and stdout destinations do not look at it). */
const unparsed: JsonObject = Object.freeze({})

/** Skipped events described on stderr before only counting them. */
const maxNotices = 20

/**
 * Moves events from a source to a destination: parse, filter, transform, validate, write in
 * batches, and only then move the saved position past them. A destination that fails is tried
 * again with backoff; when the attempts run out the pipe stops with
 * EVP_PIPE_DESTINATION_FAILED, and the state still points at the first event not written.
 *
 * @example
 * await runPipe({ from: {uri, endpoint: parseEndpoint(uri, 'source', cwd)}, to: …, config, notice: console.error })
 */
export async function runPipe(options: PipeOptions): Promise<PipeResult> {
  const started = performance.now()
  const batchSize = options.batch ?? 1000
  const retries = options.retries ?? 10
  const retryBaseMs = options.retryBaseMs ?? 500
  const signal = options.signal ?? new AbortController().signal
  const hardSignal = options.hardSignal ?? new AbortController().signal
  const counts: Counts = { read: 0, written: 0, filtered: 0, malformed: 0, invalid: 0, refused: 0, retries: 0 }
  const saved = options.statePath === undefined ? undefined : loadState(options.statePath, options.from.uri, options.to.uri)
  // CEL and ajv are loaded only when asked for: a plain copy starts faster without them.
  const filter =
    options.filter === undefined
      ? undefined
      : (await import('../streams/filter.ts')).compileFilter({ expression: options.filter, includeCanary: true }, { maxLength: 10_000, maxNodes: 1000, maxNesting: 3, budget: 1_000_000 })
  const transforms = [...(options.set ?? []).map(([path, value]) => setter(path, value)), ...(options.drop ?? []).map(dropper)]
  const validator = options.validate === true ? await schemaValidator(options.config) : undefined
  // Records of the embedded log are JSON objects already (the intake and pipe write nothing
  // else): to a file or stdout, with nothing to look at in them, their text is copied unparsed.
  const copyText =
    options.from.endpoint.scheme === 'embedded' &&
    filter === undefined &&
    transforms.length === 0 &&
    validator === undefined &&
    (options.to.endpoint.scheme === 'file' || options.to.endpoint.scheme === 'stdout')
  let notices = 0
  const skip = (item: Item, kind: string, why: string) => {
    if (notices < maxNotices) options.notice(`${describeItem(item)}: ${kind}: ${why}`)
    else if (notices === maxNotices) options.notice(`more skipped events are counted, not described`)
    notices++
  }

  const source = await openSource(options.from.endpoint, { config: options.config, saved: saved?.source, follow: options.follow ?? true, notice: options.notice })
  let sink: Sink
  try {
    if (options.statePath !== undefined && !source.resumable) throw new EventplaneError('EVP_CLI_USAGE', `${source.label} cannot be resumed: leave out --state`)
    sink = await openSink(options.to.endpoint, options.config, saved?.sink, options.notice)
  } catch (error) {
    await source.close()
    throw error
  }

  const totals = { ...(saved?.totals ?? {}) }
  let lastSave = performance.now()
  const save = () => {
    if (options.statePath === undefined) return
    const state: PipeState = {
      version: 1,
      from: options.from.uri,
      to: options.to.uri,
      source: source.position(),
      sink: sink.position(),
      totals: Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, (totals[k] ?? 0) + v])),
      updated: new Date().toISOString(),
    }
    saveState(options.statePath, state)
    lastSave = performance.now()
  }

  let lastProgress = { at: started, read: 0 }
  const progressTimer =
    options.onProgress === undefined
      ? undefined
      : setInterval(() => {
          const now = performance.now()
          const rate = ((counts.read - lastProgress.read) * 1000) / Math.max(1, now - lastProgress.at)
          lastProgress = { at: now, read: counts.read }
          source.lag().then(
            (lag) => options.onProgress?.({ ...counts, elapsedMs: now - started, rate, lag }),
            () => options.onProgress?.({ ...counts, elapsedMs: now - started, rate, lag: undefined }),
          )
        }, 1000)
  progressTimer?.unref()

  let stoppedBy: PipeResult['stoppedBy'] = 'end'
  try {
    for (;;) {
      if (options.limit !== undefined && counts.read >= options.limit) {
        stoppedBy = 'limit'
        break
      }
      const max = options.limit === undefined ? batchSize : Math.min(batchSize, options.limit - counts.read)
      const items = await source.next(max, signal)
      if (items === undefined) {
        if (signal.aborted) stoppedBy = 'signal'
        break
      }
      counts.read += items.length
      const out: OutItem[] = []
      let handled = items.length
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!
        if (copyText) {
          out.push({ text: item.text!, event: unparsed })
          continue
        }
        const parsed = parse(item)
        if (typeof parsed === 'string') {
          if (options.strict === true) {
            handled = i
            counts.read -= items.length - i
            await write(out)
            for (let j = 0; j < handled; j++) source.commit(items[j]!)
            save()
            throw new EventplaneError('EVP_PIPE_LINE_MALFORMED', `${source.label}, ${describeItem(item)}: ${parsed} (--strict stops here; the state points at this event)`, { details: { where: describeItem(item) } })
          }
          counts.malformed++
          skip(item, 'malformed', parsed)
          continue
        }
        const event = parsed
        // What is written is this text: the event as read or transformed, without the schema
        // defaults that validation fills into `event`.
        let text = item.text!
        if (filter !== undefined) {
          const verdict = filter.test(event)
          if (verdict !== 'pass') {
            counts.filtered++
            if (verdict !== 'skip') skip(item, 'filtered out', verdict === 'error' ? 'the filter failed on this event' : 'the filter took too long on this event')
            continue
          }
        }
        if (transforms.length > 0) {
          for (const transform of transforms) transform(event)
          text = JSON.stringify(event)
        }
        if (validator !== undefined) {
          const why = await validator(event)
          if (why !== undefined) {
            counts.invalid++
            skip(item, 'invalid', why)
            continue
          }
        }
        const o: OutItem = { text, event }
        if (item.key !== undefined) o.key = item.key
        if (item.timestamp !== undefined) o.timestamp = item.timestamp
        out.push(o)
      }
      await write(out)
      for (let j = 0; j < handled; j++) source.commit(items[j]!)
      if (sink.wantsRotation) {
        save()
        sink.rotate()
        save()
      } else if (performance.now() - lastSave >= 1000) save()
    }
  } catch (error) {
    if (hardSignal.aborted && !(error instanceof EventplaneError && error.code === 'EVP_PIPE_LINE_MALFORMED')) stoppedBy = 'signal'
    else throw error
  } finally {
    if (progressTimer !== undefined) clearInterval(progressTimer)
    try {
      // A pipe that failed before reading anything leaves no state file behind to trip over.
      if (saved !== undefined || counts.read > 0) save()
    } finally {
      await Promise.allSettled([source.close(), sink.close()])
    }
  }
  return { ...counts, elapsedMs: performance.now() - started, stoppedBy, statePath: options.statePath }

  /** Writes the batch, again and again for what the destination failed to take, up to `retries` more times. */
  async function write(items: OutItem[]): Promise<void> {
    let pending = items
    for (let attempt = 0; pending.length > 0; attempt++) {
      let why: string
      let askedMs: number | undefined
      try {
        const result = await sink.write(pending)
        counts.written += pending.length - result.retry.length - result.refused.length - (result.unlisted ?? 0)
        counts.refused += result.refused.length + (result.unlisted ?? 0)
        for (const refusal of result.refused) {
          if (notices < maxNotices) options.notice(`${sink.label} refused an event: ${refusal.code} ${refusal.message}`)
          notices++
        }
        pending = result.retry
        if (pending.length === 0) return
        why = result.reason ?? 'the destination asked to send again'
        askedMs = result.retryAfterMs
      } catch (error) {
        if (isPermanent(error)) throw error
        why = (error as Error).message
      }
      if (attempt >= retries) {
        throw new EventplaneError('EVP_PIPE_DESTINATION_FAILED', `${sink.label}: ${pending.length} events not written after ${retries + 1} attempts (last: ${why}); the state points at the first of them`)
      }
      const waitMs = backoff(attempt + 1, retryBaseMs, 30_000, askedMs)
      options.notice(`${sink.label}: ${why}; trying ${pending.length} events again in ${(waitMs / 1000).toFixed(1)} s`)
      counts.retries++
      await sleep(waitMs, hardSignal)
      if (hardSignal.aborted) throw new EventplaneError('EVP_PIPE_DESTINATION_FAILED', `stopped while waiting to write ${pending.length} events to ${sink.label}`)
    }
  }
}

/** The event, or why it is not one. */
function parse(item: Item): JsonObject | string {
  if (item.text === undefined) return item.problem ?? 'no text'
  let value: unknown
  try {
    value = JSON.parse(item.text)
  } catch (error) {
    return `not JSON: ${(error as Error).message}`
  }
  return isPlainObject(value) ? value : `not a JSON object, but ${Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`}`
}

function pathOf(path: string): string[] {
  const parts = path.split('.')
  if (parts.some((p) => p === '')) throw new EventplaneError('EVP_CLI_USAGE', `${JSON.stringify(path)} is not a dotted field path such as meta.domain`)
  return parts
}

/** `--set a.b=value`: sets the field, making objects on the way. */
function setter(path: string, value: unknown): (event: JsonObject) => void {
  const parts = pathOf(path)
  const last = parts.pop()!
  return (event) => {
    let target = event
    for (const part of parts) {
      const next = Object.hasOwn(target, part) ? target[part] : undefined
      if (isPlainObject(next)) target = next
      else {
        const made: JsonObject = {}
        setOwn(target, part, made)
        target = made
      }
    }
    setOwn(target, last, structuredClone(value))
  }
}

/** `--drop a.b`: deletes the field where it exists. */
function dropper(path: string): (event: JsonObject) => void {
  const parts = pathOf(path)
  const last = parts.pop()!
  return (event) => {
    let target: unknown = event
    for (const part of parts) {
      if (!isPlainObject(target) || !Object.hasOwn(target, part)) return
      target = target[part]
    }
    if (isPlainObject(target) && Object.hasOwn(target, last)) delete target[last]
  }
}

/**
 * --validate: each event against the schema its `$schema` names, found in the config's schema
 * repositories (or remote base URIs) as the intake finds it. The verdict is the schema's only;
 * stream config (which stream takes which schema) is the intake's business.
 */
async function schemaValidator(config: Readonly<Config>): Promise<(event: JsonObject) => Promise<string | undefined>> {
  const [{ createValidatorCache }, { openSchemas }, { eventGateErrors, eventGateErrorsText }] = await Promise.all([
    import('../schemas/validator.ts'),
    import('../server/schemas.ts'),
    import('../schemas/ajv6.ts'),
  ])
  const cache: ValidatorCache = createValidatorCache({ source: openSchemas(config).schemas, maxEntries: config.intake.validator_cache_size })
  const httpBases = (config.schemas.base_uris ?? []).filter((b) => /^https?:\/\//.test(b)).map((b) => b.replace(/\/+$/, ''))
  const known = new Map<string, CompiledSchema | string>()
  return async (event) => {
    const uri = event['$schema']
    if (typeof uri !== 'string' || uri === '') return 'the event has no $schema'
    let compiled = known.get(uri)
    if (compiled === undefined) {
      compiled = await compile(uri)
      if (known.size >= 1000) known.clear()
      known.set(uri, compiled)
    }
    if (typeof compiled === 'string') return compiled
    if (compiled.check(event) || compiled.validate(event)) return undefined
    return eventGateErrorsText(eventGateErrors(compiled.validate.errors ?? [], event))
  }

  async function compile(uri: string): Promise<CompiledSchema | string> {
    let path = uri.endsWith('#') ? uri.slice(0, -1) : uri
    if (!path.startsWith('/')) {
      const base = httpBases.find((b) => path.startsWith(b + '/'))
      if (base === undefined) return `$schema ${uri} is neither a path such as /eventplane/test/event/1.0.0 nor under a configured base URI`
      path = path.slice(base.length)
    }
    try {
      return await cache.get(path)
    } catch (error) {
      if (error instanceof EventplaneError && !error.canRetry) return `$schema ${uri}: ${error.message}`
      throw error
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
