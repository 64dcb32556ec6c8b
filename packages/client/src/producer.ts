/**
 * The server-side producer (MediaWiki's EventBus role) for Node.js: `send(events)` batches by
 * count and bytes (4 MiB by default, as EventBus), posts with a timeout, sends again what the
 * intake calls retryable (with backoff and jitter, the same `meta.id`), splits a batch the
 * intake finds too large, and resolves each call with its own per-event results. The queue is
 * bounded: when it is full, `send` waits (backpressure) instead of growing memory.
 *
 *   const producer = new Producer({ url: 'http://localhost:8192' })
 *   const { accepted, invalid, failed } = await producer.send([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'hello' }])
 *   await producer.close()
 */
import { backoff, byteLength, ensureId, monotonic, postBatch, type Event, type Refusal } from './intake.ts'

export interface ProducerOptions {
  /** The intake: its origin (`http://localhost:8192`) or the full events URL (`…/v1/events`). */
  url: string
  /** Most events in one request (default 1,000). */
  maxBatchEvents?: number
  /** Most bytes of JSON in one request (default 4 MiB, EventBus's and the intake's default limit). */
  maxBatchBytes?: number
  /** How long a batch that is not full waits for more events (ms; default 20). */
  lingerMs?: number
  /** Requests out at once (default 4). */
  maxInFlight?: number
  /** Events waiting to be sent before `send` waits for room (default 100,000). */
  maxQueuedEvents?: number
  /** Gives up waiting for an answer after this long, then retries (ms; default 30 s). */
  timeoutMs?: number
  /** Attempts per event before it is reported failed (default 6). */
  maxAttempts?: number
  /** First retry wait (ms; default 250, doubling, with jitter, up to `retryMaxMs`, 30 s). */
  retryBaseMs?: number
  retryMaxMs?: number
  fetch?: typeof globalThis.fetch
  /** Sent with every request (e.g. authorization, user-agent). */
  headers?: Record<string, string>
  logger?: { warn(message: string, details?: Record<string, unknown>): void }
}

/** What became of the events of one `send` call. */
export interface SendResult {
  accepted: Event[]
  /** Refused for what they are (the intake's per-event reasons): never sent again. */
  invalid: Refusal[]
  /** Retryable failures that outlasted maxAttempts (or the producer was closed). */
  failed: Refusal[]
}

interface Ticket {
  result: SendResult
  left: number
  resolve(result: SendResult): void
}

interface Entry {
  event: Event
  attempts: number
  ticket: Ticket
}

export class Producer {
  /** Running totals, for metrics. */
  readonly stats = { accepted: 0, invalid: 0, failed: 0, retried: 0, requests: 0, splits: 0 }
  readonly #url: string
  readonly #o: Required<Omit<ProducerOptions, 'url' | 'fetch' | 'headers' | 'logger'>> & Pick<ProducerOptions, 'headers' | 'logger'> & { fetch: typeof globalThis.fetch }
  #queue: Entry[] = []
  /** Events waiting for their retry time. */
  #waiting = 0
  #inFlight = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  /** After a request that failed whole (the intake down, overloaded), nothing is sent before this. */
  #pausedUntil = 0
  #pauseTimer: ReturnType<typeof setTimeout> | undefined
  #flushing = false
  #closed = false
  readonly #roomWaiters: Array<() => void> = []
  readonly #idleWaiters: Array<() => void> = []

  constructor(options: ProducerOptions) {
    if (typeof options?.url !== 'string' || !/^https?:\/\//.test(options.url)) throw new TypeError(`Producer needs the intake's http(s) URL, not ${JSON.stringify(options?.url)}`)
    this.#url = /\/v1\/events(\?|$)/.test(options.url) ? options.url : `${options.url.replace(/\/+$/, '')}/v1/events`
    this.#o = {
      maxBatchEvents: positive(options.maxBatchEvents, 1000, 'maxBatchEvents'),
      maxBatchBytes: positive(options.maxBatchBytes, 4 * 1024 * 1024, 'maxBatchBytes'),
      lingerMs: nonNegative(options.lingerMs, 20, 'lingerMs'),
      maxInFlight: positive(options.maxInFlight, 4, 'maxInFlight'),
      maxQueuedEvents: positive(options.maxQueuedEvents, 100_000, 'maxQueuedEvents'),
      timeoutMs: positive(options.timeoutMs, 30_000, 'timeoutMs'),
      maxAttempts: positive(options.maxAttempts, 6, 'maxAttempts'),
      retryBaseMs: nonNegative(options.retryBaseMs, 250, 'retryBaseMs'),
      retryMaxMs: nonNegative(options.retryMaxMs, 30_000, 'retryMaxMs'),
      fetch: options.fetch ?? globalThis.fetch,
      headers: options.headers,
      logger: options.logger,
    }
  }

  /**
   * Queues events (each gets a `meta.id` if it has none, when first taken into a batch, kept
   * across retries) and resolves when every one of them is settled. Waits first while the
   * queue is full.
   */
  async send(events: Event | Event[]): Promise<SendResult> {
    const list = Array.isArray(events) ? events : [events]
    const result: SendResult = { accepted: [], invalid: [], failed: [] }
    if (this.#closed) {
      for (const event of list) result.failed.push({ event, code: 'closed', message: 'the producer is closed' })
      return result
    }
    if (list.length === 0) return result
    while (this.#queue.length + this.#waiting >= this.#o.maxQueuedEvents) await new Promise<void>((resolve) => this.#roomWaiters.push(resolve))
    return new Promise<SendResult>((resolve) => {
      const ticket: Ticket = { result, left: list.length, resolve }
      for (const event of list) {
        if (typeof event !== 'object' || event === null || Array.isArray(event)) {
          this.#settle({ event: event as Event, attempts: 0, ticket }, 'invalid', { code: 'not_an_object', message: 'an event must be a JSON object' })
          continue
        }
        this.#queue.push({ event, attempts: 0, ticket })
      }
      this.#schedule()
    })
  }

  /** Sends everything queued now (not waiting for full batches) and resolves once all of it is settled. */
  async flush(): Promise<void> {
    this.#flushing = true
    this.#pump()
    while (this.#queue.length + this.#waiting + this.#inFlight > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve))
    this.#flushing = false
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    await this.flush()
    this.#closed = true
  }

  #schedule(): void {
    if (this.#flushing || this.#queue.length >= this.#o.maxBatchEvents) return this.#pump()
    if (this.#timer === undefined && this.#queue.length > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.#pump(true)
      }, this.#o.lingerMs)
    }
  }



  /** Starts requests while there is room in flight and a batch to send (a partial one when `lingered` or flushing). */
  #pump(lingered = false): void {
    const paused = this.#pausedUntil - monotonic()
    if (paused > 0) {
      if (this.#pauseTimer === undefined) {
        this.#pauseTimer = setTimeout(() => {
          this.#pauseTimer = undefined
          this.#pump(true)
        }, paused)
      }
      return
    }
    while (this.#inFlight < this.#o.maxInFlight && this.#queue.length > 0) {
      // Full by count now; by bytes it is known only once the batch is serialized, below (a
      // few huge events wait for lingerMs at most).
      if (this.#queue.length < this.#o.maxBatchEvents && !lingered && !this.#flushing) break
      const taken = this.#take()
      if (taken === undefined) continue
      this.#releaseRoom()
      void this.#post(taken.batch, taken.body)
    }
    if (this.#queue.length > 0 && this.#inFlight < this.#o.maxInFlight) this.#schedule()
  }

  /**
   * Takes the next batch off the queue with its JSON body: up to maxBatchEvents events,
   * serialized together in one call (serializing them one by one costs 2.5 times as much, and
   * this is most of the producer's own CPU). Only when that body is over maxBatchBytes, or an
   * event cannot be serialized, are events serialized one by one: to cut the batch at the limit
   * (the rest stays queued, in order) and to refuse the culprit alone. Undefined when every
   * event taken was refused.
   */
  #take(): { batch: Entry[]; body: string } | undefined {
    const batch = this.#queue.splice(0, Math.min(this.#queue.length, this.#o.maxBatchEvents))
    // Ids are given here, not in send(): the work is spread over the run (a send of 100,000
    // events would otherwise hold up the first requests); once given, an id stays.
    for (const entry of batch) ensureId(entry.event)
    try {
      const body = JSON.stringify(batch.map((entry) => entry.event))
      // A UTF-16 code unit is at most 3 bytes of UTF-8: most bodies are known to fit unmeasured.
      if (batch.length === 1 || body.length * 3 <= this.#o.maxBatchBytes || byteLength(body) <= this.#o.maxBatchBytes) return { batch, body }
    } catch {
      // One of them cannot be serialized: found below.
    }
    const kept: Entry[] = []
    const parts: string[] = []
    let bytes = 2
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!
      let json: string
      try {
        json = JSON.stringify(entry.event)
      } catch (error) {
        this.#settle(entry, 'invalid', { code: 'not_serializable', message: `the event cannot be serialized to JSON: ${(error as Error).message}` })
        continue
      }
      const size = byteLength(json) + 1
      if (kept.length > 0 && bytes + size > this.#o.maxBatchBytes) {
        this.#queue.unshift(...batch.slice(i))
        break
      }
      kept.push(entry)
      parts.push(json)
      bytes += size
    }
    return kept.length === 0 ? undefined : { batch: kept, body: `[${parts.join(',')}]` }
  }

  async #post(batch: Entry[], body: string): Promise<void> {
    this.#inFlight++
    this.stats.requests++
    for (const entry of batch) entry.attempts++
    const events = batch.map((entry) => entry.event)
    const outcome = await postBatch(this.#url, events, { fetch: this.#o.fetch, timeoutMs: this.#o.timeoutMs, headers: this.#o.headers, body })
    this.#inFlight--
    // Refused but not listed in a 207 (past intake.max_refusals_listed): counted, not known one by one.
    if (outcome.omittedInvalid > 0) this.stats.invalid += outcome.omittedInvalid
    if (outcome.accepted.length === batch.length) {
      // All of it taken (the common case): the next request goes out first, then the results
      // are settled, without per-event maps.
      this.#pump(this.#flushing)
      for (const entry of batch) this.#settle(entry, 'accepted')
    } else if (outcome.tooLarge) {
      // Halves go back to the front, in order: the split costs no attempt.
      this.stats.splits++
      for (const entry of batch) entry.attempts--
      const half = Math.ceil(batch.length / 2)
      this.#queue.unshift(...batch)
      this.#o.maxBatchEvents = Math.max(1, Math.min(this.#o.maxBatchEvents, half))
      this.#o.logger?.warn(`the intake found a batch of ${batch.length} events too large; sending at most ${this.#o.maxBatchEvents} at a time`)
    } else {
      const entryOf = new Map(batch.map((entry) => [entry.event, entry]))
      for (const event of outcome.accepted) this.#settle(entryOf.get(event)!, 'accepted')
      for (const refusal of outcome.invalid) this.#settle(entryOf.get(refusal.event)!, 'invalid', refusal)
      const again = outcome.retry.map((event) => entryOf.get(event)!)
      const spent = again.filter((entry) => entry.attempts >= this.#o.maxAttempts)
      for (const entry of spent) this.#settle(entry, 'failed', { code: 'retries_exhausted', message: `not accepted after ${entry.attempts} attempts (last: ${outcome.summary})` })
      const retry = again.filter((entry) => entry.attempts < this.#o.maxAttempts)
      if (retry.length > 0) {
        this.stats.retried += retry.length
        const wait = backoff(Math.min(...retry.map((e) => e.attempts)), this.#o.retryBaseMs, this.#o.retryMaxMs, outcome.retryAfterMs)
        // The whole batch failed (no answer, 429, 5xx): the intake is down or overloaded, and
        // every other batch would fail the same way; all of them wait, not only this one.
        if (retry.length === batch.length) this.#pausedUntil = Math.max(this.#pausedUntil, monotonic() + wait)
        this.#waiting += retry.length
        setTimeout(() => {
          this.#waiting -= retry.length
          this.#queue.unshift(...retry)
          this.#pump(true)
        }, wait)
      }
    }
    this.#pump(this.#flushing)
    this.#maybeIdle()
  }

  #settle(entry: Entry, fate: 'accepted' | 'invalid' | 'failed', refusal?: { code: string; message: string }): void {
    const { ticket } = entry
    if (fate === 'accepted') {
      ticket.result.accepted.push(entry.event)
      this.stats.accepted++
    } else {
      ticket.result[fate].push({ event: entry.event, code: refusal!.code, message: refusal!.message })
      this.stats[fate]++
    }
    if (--ticket.left === 0) ticket.resolve(ticket.result)
  }

  #releaseRoom(): void {
    while (this.#roomWaiters.length > 0 && this.#queue.length + this.#waiting < this.#o.maxQueuedEvents) this.#roomWaiters.shift()!()
  }

  #maybeIdle(): void {
    this.#releaseRoom()
    if (this.#queue.length + this.#waiting + this.#inFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve()
  }
}


function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`Producer: ${name} must be a positive integer, not ${value}`)
  return value
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`Producer: ${name} must be a number of at least 0, not ${value}`)
  return value
}
