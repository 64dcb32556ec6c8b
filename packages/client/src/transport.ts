/**
 * The browser transport: events are queued (in `localStorage` when it works, so they survive
 * reloads and offline periods), sent in batches (every 5 s, or at 50 events, or 60 KB) with
 * `fetch(…, { keepalive: true })`, and with `navigator.sendBeacon` when the page is hidden or
 * goes away. Network errors, 5xx and 429 are retried with backoff and jitter, with the same
 * `meta.id`; events the intake refuses as invalid are dropped and counted, never sent again.
 * The queue is bounded by count and bytes: past either, the oldest events are dropped and
 * counted (`dropped`), never silently.
 *
 * Each page keeps its own queue under its own key, with a heartbeat; a page that starts adopts
 * the queues of pages that are gone (their heartbeat stale), so a reload sends what the last
 * page could not. Two pages that adopt the same queue at once send its events twice; the
 * intake's dedupe by `meta.id` drops the copy.
 */
import { backoff, byteLength, ensureId, monotonic, postBatch, type Event } from './intake.ts'
import { randomId } from './ids.ts'
import { browserStore, type KeyValueStore } from './storage.ts'
import { consoleLogger } from './client.ts'

export interface BrowserTransportOptions {
  /** The intake: its origin or its full events URL. */
  url: string
  /** Ask the intake to answer at once (202) and validate afterwards (default true, as MediaWiki). */
  hasty?: boolean
  /** A batch is sent at this many events (default 50)… */
  maxBatchEvents?: number
  /** …or this many bytes (default 60,000: under the 64 KB browsers allow a keepalive request or a beacon)… */
  maxBatchBytes?: number
  /** …or this long after its first event (ms; default 5,000). */
  flushIntervalMs?: number
  /** Most events kept waiting (default 1,000); past it the oldest are dropped and counted. */
  maxQueuedEvents?: number
  /** Most bytes kept waiting (default 1,000,000; localStorage holds about 5 MB an origin). */
  maxQueuedBytes?: number
  /** First retry wait (ms; default 1,000, doubling with jitter up to `retryMaxMs`, 5 minutes). */
  retryBaseMs?: number
  retryMaxMs?: number
  /** A request gives up after this long, then is retried (ms; default 10,000). */
  timeoutMs?: number
  store?: KeyValueStore
  fetch?: typeof globalThis.fetch
  /** navigator.sendBeacon, or a stand-in; false when the browser would not queue the request. */
  beacon?: (url: string, body: string) => boolean
  logger?: { warn(message: string, details?: Record<string, unknown>): void }
  /** Where pagehide and visibilitychange come from (default: globalThis, the window). */
  target?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>
  /** A queue unchanged this long belongs to a page that is gone (ms; default 10,000). */
  staleQueueMs?: number
  now?: () => number
}

export type TransportDropReason = 'queue_full' | 'invalid' | 'too_large'

interface Queued {
  event: Event
  bytes: number
  attempts: number
  /** In a request now: not dropped to make room (it may be in the log already). */
  sending?: boolean
}

const prefix = 'eventplane:queue:'
const indexKey = 'eventplane:queues'

export class BrowserTransport {
  /** Events dropped, by reason. */
  readonly dropped: Partial<Record<TransportDropReason, number>> = {}
  /** Events the intake took (or, hasty, received), and beacons the browser took. */
  readonly stats = { accepted: 0, beaconed: 0, retried: 0, requests: 0, adopted: 0 }
  readonly #o: Required<Omit<BrowserTransportOptions, 'url' | 'hasty' | 'store' | 'fetch' | 'beacon' | 'logger' | 'target'>>
  readonly #url: string
  readonly #store: KeyValueStore
  readonly #fetch: typeof globalThis.fetch | undefined
  readonly #beacon: ((url: string, body: string) => boolean) | undefined
  readonly #logger: BrowserTransportOptions['logger']
  readonly #target: BrowserTransportOptions['target']
  readonly #key = `${prefix}${randomId()}`
  #queue: Queued[] = []
  #bytes = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #retryAt = 0
  #attempt = 0
  #sending: Promise<void> | undefined
  #hidden = false
  /** The page is going away: what beacons cannot take stays in storage, marked for the next page to adopt at once. */
  readonly #onHide = () => {
    this.#beaconAll()
    this.#closing = true
    this.#persist()
  }
  /** Back from the back-forward cache: the page lives again. */
  readonly #onShow = () => {
    this.#closing = false
    this.#persist()
  }
  #closing = false
  /** Back online: what waits for a retry goes now. */
  readonly #onOnline = () => {
    this.#retryAt = 0
    this.#attempt = 0
    clearTimeout(this.#timer)
    this.#timer = undefined
    void this.flush()
  }
  readonly #onVisibility = () => {
    const hidden = (globalThis as { document?: { visibilityState?: string } }).document?.visibilityState === 'hidden'
    this.#hidden = hidden
    if (hidden) this.#beaconAll()
  }

  constructor(options: BrowserTransportOptions) {
    const base = options.url.replace(/\/+$/, '')
    const url = /\/v1\/events(\?|$)/.test(base) ? base : `${base}/v1/events`
    this.#url = options.hasty === false || /[?&]hasty=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}hasty=true`
    this.#o = {
      maxBatchEvents: options.maxBatchEvents ?? 50,
      maxBatchBytes: options.maxBatchBytes ?? 60_000,
      flushIntervalMs: options.flushIntervalMs ?? 5000,
      maxQueuedEvents: options.maxQueuedEvents ?? 1000,
      maxQueuedBytes: options.maxQueuedBytes ?? 1_000_000,
      retryBaseMs: options.retryBaseMs ?? 1000,
      retryMaxMs: options.retryMaxMs ?? 300_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      staleQueueMs: options.staleQueueMs ?? 10_000,
      now: options.now ?? Date.now,
    }
    this.#store = options.store ?? browserStore()
    this.#fetch = options.fetch ?? (typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : undefined)
    const navigator = (globalThis as { navigator?: { sendBeacon?: (url: string, body: string) => boolean } }).navigator
    this.#beacon = options.beacon ?? (typeof navigator?.sendBeacon === 'function' ? (url, body) => navigator.sendBeacon!(url, body) : undefined)
    this.#logger = options.logger ?? consoleLogger
    this.#target = options.target ?? (typeof (globalThis as { addEventListener?: unknown }).addEventListener === 'function' ? (globalThis as unknown as EventTarget) : undefined)
    this.#target?.addEventListener('pagehide', this.#onHide)
    this.#target?.addEventListener('pageshow', this.#onShow)
    this.#target?.addEventListener('online', this.#onOnline)
    this.#target?.addEventListener('visibilitychange', this.#onVisibility)
    this.#adopt()
  }

  /** Events waiting to be sent. */
  get queued(): number {
    return this.#queue.length
  }

  /** Queues an event (it gets a meta.id if it has none, kept across retries). */
  send(event: Event): void {
    ensureId(event)
    let text: string
    try {
      text = JSON.stringify(event)
    } catch {
      return this.#drop('invalid', 1, 'an event could not be serialized to JSON')
    }
    const bytes = byteLength(text) + 1
    if (bytes > this.#o.maxBatchBytes) return this.#drop('too_large', 1, `an event of ${bytes} bytes is larger than a batch may be (${this.#o.maxBatchBytes})`)
    this.#queue.push({ event, bytes, attempts: 0 })
    this.#bytes += bytes
    this.#trim()
    this.#persistSoon()
    // A hidden page may never run a timer again: it sends at once.
    if (this.#hidden) return this.#beaconAll()
    if (this.#queue.length >= this.#o.maxBatchEvents || this.#bytes >= this.#o.maxBatchBytes) void this.flush()
    else this.#arm(this.#o.flushIntervalMs)
  }

  /** Sends what is queued now, batch by batch; resolves when the queue is empty or a batch must wait for a retry. */
  flush(): Promise<void> {
    this.#sending ??= this.#sendAll().finally(() => (this.#sending = undefined))
    return this.#sending
  }

  /** Stops listening to the page; what is queued stays in storage for the next page. */
  close(): void {
    clearTimeout(this.#timer)
    this.#target?.removeEventListener('pagehide', this.#onHide)
    this.#target?.removeEventListener('pageshow', this.#onShow)
    this.#target?.removeEventListener('online', this.#onOnline)
    this.#target?.removeEventListener('visibilitychange', this.#onVisibility)
  }

  async #sendAll(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    while (this.#queue.length > 0) {
      const wait = this.#retryAt - monotonic()
      if (wait > 0) return this.#arm(wait)
      if (this.#fetch === undefined) return this.#beaconAll()
      const batch = this.#take()
      this.stats.requests++
      for (const q of batch) {
        q.attempts++
        q.sending = true
      }
      const outcome = await postBatch(
        this.#url,
        batch.map((q) => q.event),
        // text/plain: no CORS preflight (the intake takes it as JSON, as EventGate does).
        { fetch: this.#fetch, timeoutMs: this.#o.timeoutMs, keepalive: true, headers: { 'content-type': 'text/plain;charset=UTF-8' } },
      )
      for (const q of batch) q.sending = false
      const byEvent = new Map(batch.map((q) => [q.event, q]))
      const done = new Set<Queued>()
      if (outcome.tooLarge) {
        this.#o.maxBatchEvents = Math.max(1, Math.ceil(batch.length / 2))
        this.#logger?.warn(`the intake found a batch of ${batch.length} events too large; sending at most ${this.#o.maxBatchEvents} at a time`)
        continue
      }
      for (const event of outcome.accepted) done.add(byEvent.get(event)!)
      this.stats.accepted += outcome.accepted.length - outcome.omittedInvalid
      if (outcome.omittedInvalid > 0) this.#drop('invalid', outcome.omittedInvalid, 'events were refused (not listed in the answer)')
      for (const refusal of outcome.invalid) {
        done.add(byEvent.get(refusal.event)!)
        this.#drop('invalid', 1, `the intake refused an event of ${streamOf(refusal.event)}: ${refusal.code}: ${refusal.message}`)
      }
      this.#remove(done)
      if (outcome.retry.length > 0) {
        this.stats.retried += outcome.retry.length
        this.#attempt++
        const wait = backoff(this.#attempt, this.#o.retryBaseMs, this.#o.retryMaxMs, outcome.retryAfterMs)
        this.#retryAt = monotonic() + wait
        this.#logger?.warn(`sending ${outcome.retry.length} events failed (${outcome.summary}); trying again in ${Math.round(wait)} ms`)
        return this.#arm(wait)
      }
      this.#attempt = 0
    }
  }

  /** The next batch from the front of the queue, within the count and byte limits. */
  #take(): Queued[] {
    let bytes = 2
    let count = 0
    while (count < this.#queue.length && count < this.#o.maxBatchEvents && (count === 0 || bytes + this.#queue[count]!.bytes <= this.#o.maxBatchBytes)) bytes += this.#queue[count++]!.bytes
    return this.#queue.slice(0, count)
  }

  /** The page is going away or hidden: everything queued leaves by beacon, batch by batch. */
  #beaconAll(): void {
    // Offline, a beacon is accepted and then lost: the events wait in storage instead.
    if (this.#beacon === undefined || (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false) return
    while (this.#queue.length > 0) {
      const batch = this.#take()
      let taken = false
      try {
        taken = this.#beacon(this.#url, JSON.stringify(batch.map((q) => q.event)))
      } catch {
        taken = false
      }
      // Refused (too much queued by the browser, a blocked URL): the events stay, for the next page.
      if (!taken) break
      this.stats.beaconed += batch.length
      this.#remove(new Set(batch))
    }
  }

  #remove(done: Set<Queued>): void {
    if (done.size === 0) return
    this.#queue = this.#queue.filter((q) => !done.has(q))
    this.#bytes = this.#queue.reduce((n, q) => n + q.bytes, 0)
    this.#persistSoon()
  }

  /** Past the bounds, the oldest events go (counted). */
  #trim(): void {
    let dropped = 0
    while (this.#queue.length > 0 && (this.#queue.length > this.#o.maxQueuedEvents || this.#bytes > this.#o.maxQueuedBytes)) {
      const oldest = this.#queue.findIndex((q) => !q.sending)
      if (oldest < 0) break
      this.#bytes -= this.#queue.splice(oldest, 1)[0]!.bytes
      dropped++
    }
    if (dropped > 0) this.#drop('queue_full', dropped, `more than ${this.#o.maxQueuedEvents} events or ${this.#o.maxQueuedBytes} bytes were waiting: the oldest were dropped`)
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.flush()
    }, ms)
  }

  /**
   * Saves the queue once the code that changed it is done (a page that submits 10,000 events in
   * a loop writes storage once, not 10,000 times); a page going away saves at once.
   */
  #persistSoon(): void {
    if (this.#persistQueued || !this.#store.persistent) return
    this.#persistQueued = true
    queueMicrotask(() => {
      this.#persistQueued = false
      this.#persist()
    })
  }

  #persistQueued = false

  #persist(): void {
    if (!this.#store.persistent) return
    if (this.#queue.length === 0 && !this.#closing) {
      this.#store.remove(this.#key)
      return
    }
    const ok = this.#store.set(this.#key, JSON.stringify({ at: this.#o.now(), closed: this.#closing, events: this.#queue.map((q) => q.event) }))
    if (!ok) this.#logger?.warn('the event queue could not be saved (storage full or unavailable): events kept in memory only')
    const index = readIndex(this.#store)
    if (!index.includes(this.#key)) this.#store.set(indexKey, JSON.stringify([...index, this.#key]))
  }

  /** Takes over the queues of pages that are gone (their last write older than staleQueueMs). */
  #adopt(): void {
    if (!this.#store.persistent) return
    const now = this.#o.now()
    const keep: string[] = []
    for (const key of readIndex(this.#store)) {
      const text = this.#store.get(key)
      let saved: { at?: unknown; closed?: unknown; events?: unknown } | undefined
      try {
        saved = text === undefined ? undefined : (JSON.parse(text) as typeof saved)
      } catch {
        saved = undefined
      }
      if (saved === undefined || !Array.isArray(saved.events)) {
        this.#store.remove(key)
        continue
      }
      if (saved.closed !== true && typeof saved.at === 'number' && now - saved.at < this.#o.staleQueueMs) {
        keep.push(key)
        continue
      }
      for (const event of saved.events) {
        if (typeof event !== 'object' || event === null || Array.isArray(event)) continue
        const bytes = byteLength(JSON.stringify(event)) + 1
        this.#queue.push({ event: event as Event, bytes, attempts: 0 })
        this.#bytes += bytes
        this.stats.adopted++
      }
      this.#store.remove(key)
    }
    this.#store.set(indexKey, JSON.stringify(keep))
    if (this.#queue.length > 0) {
      this.#trim()
      this.#persist()
      void this.flush()
    }
  }

  #drop(reason: TransportDropReason, count: number, message: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + count
    this.#logger?.warn(message, { reason, count })
  }
}

function readIndex(store: KeyValueStore): string[] {
  try {
    const value = JSON.parse(store.get(indexKey) ?? '[]') as unknown
    return Array.isArray(value) ? value.filter((k): k is string => typeof k === 'string' && k.startsWith(prefix)) : []
  } catch {
    return []
  }
}

function streamOf(event: Event): string {
  const stream = (event['meta'] as { stream?: unknown } | undefined)?.stream
  return typeof stream === 'string' ? stream : 'an unknown stream'
}

