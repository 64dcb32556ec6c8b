/**
 * One POST of a batch to an intake (`POST /v1/events`, Eventplane's or EventGate's) and what
 * its answer says about each event: accepted, invalid (the producer must change it: never sent
 * again), to be sent again (an error the intake calls retryable, 429, 5xx, no answer), or a
 * batch too large (413: split it). Shared by the browser transport and the server producer.
 */
import { uuid } from './ids.ts'

export type Event = Record<string, unknown>

/** An event the intake refused for what it is, with its reason. */
export interface Refusal {
  event: Event
  code: string
  message: string
}

export interface BatchOutcome {
  /** Events the intake took (or, with ?hasty, said it received). */
  accepted: Event[]
  /**
   * Of `accepted`, how many were in fact refused but not listed (a 207 lists at most
   * `intake.max_refusals_listed` invalid events and counts the rest in `omitted`).
   */
  omittedInvalid: number
  /** Events it refused for good. */
  invalid: Refusal[]
  /** Events to send again, as sent (same meta.id). */
  retry: Event[]
  /** The batch was too large for the intake: send its halves. */
  tooLarge: boolean
  /** How long the intake asked to wait (Retry-After), ms. */
  retryAfterMs: number | undefined
  /** What happened, for logs: `HTTP 207`, `network error: …`. */
  summary: string
}

export interface PostOptions {
  fetch: typeof globalThis.fetch
  timeoutMs: number
  /** fetch's keepalive: the request may outlive the page (browsers cap such bodies at 64 KB). */
  keepalive?: boolean
  headers?: Record<string, string>
  /** The events as JSON already (each serialized once, to measure it): `[e1,e2,…]`. */
  body?: string
}

/** Codes of refusals that the same event may get past later (Eventplane's; EventGate says `canRetry`). */
const retryableCodes = new Set(['EVP_LOG_NOT_WRITTEN', 'EVP_LOG_FULL', 'EVP_LOG_OUTCOME_UNKNOWN', 'EVP_LOG_CLOSED', 'EVP_LOG_UNAVAILABLE', 'EVP_OVERLOADED'])

/** Sends `events` as one JSON array and sorts them by the answer. Never throws. */
export async function postBatch(url: string, events: Event[], options: PostOptions): Promise<BatchOutcome> {
  const outcome: BatchOutcome = { accepted: [], omittedInvalid: 0, invalid: [], retry: [], tooLarge: false, retryAfterMs: undefined, summary: '' }
  let response: Response
  let text: string
  try {
    response = await options.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...options.headers },
      body: options.body ?? JSON.stringify(events),
      keepalive: options.keepalive ?? false,
      signal: AbortSignal.timeout(options.timeoutMs),
    })
    text = await response.text()
  } catch (error) {
    outcome.retry = events
    outcome.summary = `no answer: ${(error as Error).message}`
    return outcome
  }
  const status = response.status
  outcome.summary = `HTTP ${status}`
  outcome.retryAfterMs = retryAfter(response.headers.get('retry-after'))
  if (status === 201 || status === 202 || status === 204) {
    outcome.accepted = events
    return outcome
  }
  if (status === 413 && events.length > 1) {
    outcome.tooLarge = true
    return outcome
  }
  if (status === 207 || status === 400 || status === 500 || status === 503) {
    const body = parseJson(text) as { invalid?: unknown; error?: unknown } | undefined
    if (typeof body === 'object' && body !== null && (Array.isArray(body.invalid) || Array.isArray(body.error))) {
      sortItems(events, body, status, outcome)
      return outcome
    }
  }
  if (status === 429 || status === 408 || status >= 500) {
    outcome.retry = events
    return outcome
  }
  // Any other answer (400 without per-event results, 401, 403, 404, 413 for one event, 415):
  // sending the same again cannot help.
  const problem = parseJson(text) as { code?: unknown; detail?: unknown; title?: unknown } | undefined
  const code = typeof problem?.code === 'string' ? problem.code : `HTTP_${status}`
  const message = typeof problem?.detail === 'string' ? problem.detail : typeof problem?.title === 'string' ? problem.title : `the intake answered HTTP ${status}`
  outcome.invalid = events.map((event) => ({ event, code, message }))
  return outcome
}

/**
 * Per-event results of a 207/400/500/503: listed `invalid` items are refused, listed `error`
 * items are sent again when retryable. Events listed nowhere were accepted in a 207, and
 * refused otherwise (none was accepted): past `max_refusals_listed` the intake lists refused
 * events no more, only counts them in `omitted` (every retryable one is always listed).
 */
function sortItems(events: Event[], body: { invalid?: unknown; error?: unknown; omitted?: unknown }, status: number, outcome: BatchOutcome): void {
  const fate = new Array<'accepted' | 'invalid' | 'retry'>(events.length).fill('accepted')
  const refusals = new Map<number, Refusal>()
  const place = (items: unknown, group: 'invalid' | 'error') => {
    if (!Array.isArray(items)) return
    for (const item of items as Array<{ index?: unknown; event?: unknown; context?: { code?: unknown; message?: unknown; canRetry?: unknown } }>) {
      const index = typeof item?.index === 'number' ? item.index : findIndex(events, item?.event)
      if (index === undefined || index < 0 || index >= events.length) continue
      const code = typeof item.context?.code === 'string' ? item.context.code : group === 'invalid' ? 'invalid' : 'error'
      const retryable = group === 'error' && (item.context?.canRetry === true || retryableCodes.has(code) || (item.context?.canRetry === undefined && status >= 500))
      fate[index] = retryable ? 'retry' : 'invalid'
      refusals.set(index, { event: events[index]!, code, message: typeof item.context?.message === 'string' ? item.context.message : code })
    }
  }
  place(body.invalid, 'invalid')
  place(body.error, 'error')
  const omitted = (body.omitted as { invalid?: unknown } | undefined)?.invalid
  if (status === 207) outcome.omittedInvalid = typeof omitted === 'number' && omitted > 0 ? omitted : 0
  events.forEach((event, index) => {
    if (fate[index] === 'accepted' && status !== 207) outcome.invalid.push({ event, code: 'omitted', message: 'refused; not listed in the answer (past intake.max_refusals_listed)' })
    else if (fate[index] === 'accepted') outcome.accepted.push(event)
    else if (fate[index] === 'retry') outcome.retry.push(event)
    else outcome.invalid.push(refusals.get(index)!)
  })
}

/** EventGate lists no index: an item is matched to its event by meta.id, when both have one. */
function findIndex(events: Event[], event: unknown): number | undefined {
  const id = (event as { meta?: { id?: unknown } } | undefined)?.meta?.id
  if (typeof id !== 'string') return undefined
  const index = events.findIndex((e) => (e['meta'] as { id?: unknown } | undefined)?.id === id)
  return index < 0 ? undefined : index
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Retry-After in seconds or as an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

/**
 * The wait before attempt `attempt` (from 1) of a retry: exponential from `baseMs`, capped at
 * `maxMs`, with full jitter (uniform over [half, whole]) so that many clients failing together
 * do not come back together; never below what the intake asked for.
 */
export function backoff(attempt: number, baseMs: number, maxMs: number, askedMs?: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  const wait = ceiling / 2 + Math.random() * (ceiling / 2)
  return Math.max(wait, askedMs ?? 0)
}

/**
 * Milliseconds from a clock that only moves forward (performance.now), for retry waits: the
 * wall clock may be set back or forward (a user fixing it, NTP), and a wait measured on it would
 * then last hours, or nothing. Stored queues are stamped with the wall clock, which other pages
 * share.
 */
export function monotonic(): number {
  const performance = (globalThis as { performance?: { now?: () => number } }).performance
  return typeof performance?.now === 'function' ? performance.now() : Date.now()
}

/** A meta.id for an event that has none, so that a retry is recognised as the same event. */
export function ensureId(event: Event): Event {
  const meta = event['meta']
  if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) {
    if (typeof (meta as { id?: unknown }).id !== 'string') (meta as Record<string, unknown>)['id'] = uuid()
  } else event['meta'] = { id: uuid() }
  return event
}

const encoder = new TextEncoder()

/** UTF-8 bytes of a string (ASCII text, most events, is measured without encoding it). */
export function byteLength(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return encoder.encode(text).length
  return text.length
}
