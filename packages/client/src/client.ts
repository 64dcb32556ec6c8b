/**
 * The metrics client: Wikimedia's `mw.eventLog` / Metrics Platform `MetricsClient` API
 * (`submit`, `submitInteraction`, `submitClick`, `isStreamInSample`, `getStreamConfig`,
 * `getStreamNamesForEvent`), with the same event shape, on any intake that speaks EventGate's
 * `POST /v1/events`. Where an event is not sent (no `$schema`, a stream that is not configured,
 * out of sample, curated out, a full call queue), the logger is told why and the drop is
 * counted (`dropped`), never silent.
 *
 *   const client = new MetricsClient({ intakeUrl: 'https://events.example.org', streamConfigsOrigin: 'https://events.example.org' })
 *   client.submitClick('product_metrics.web_base', { action_source: 'toolbar', element_id: 'save' })
 */
import { addContext, requestedAttributes, type ContextProvider } from './context.ts'
import { curate } from './curation.ts'
import { Identity } from './identity.ts'
import { sampleVerdict, type SampleUnit } from './sampling.ts'
import { browserStore, type KeyValueStore } from './storage.ts'
import { clientSettings, parseStreamConfigs, streamConfigsUrl, type StreamConfig, type StreamConfigs } from './stream-config.ts'

/** What a client does with an event it sends (the transport: batching, retries, beacons). */
export interface EventSink {
  send(event: Record<string, unknown>): void
}

export interface Logger {
  warn(message: string, details?: Record<string, unknown>): void
}

/** Why events were not sent, counted. */
export type DropReason = 'no_schema' | 'no_action' | 'invalid_event' | 'unconfigured_stream' | 'out_of_sample' | 'invalid_sample' | 'curated_out' | 'call_queue_full'

/** The product metrics web base schema events of submitClick use. */
export const webBaseSchema = '/eventplane/product_metrics/web/base/1.0.0'

export interface MetricsClientOptions {
  /** Where events go. */
  sink: EventSink
  /**
   * The stream configs: the object itself, `false` for "every stream, unsampled" (MediaWiki's
   * behaviour without stream configs, on purpose only), or leave it out and give
   * `streamConfigsOrigin` to fetch them.
   */
  streamConfigs?: StreamConfigs | false
  /** Origin of the stream config API to fetch from (see streamConfigsUrl). */
  streamConfigsOrigin?: string
  /** `destination_event_service` constraint of that request (default eventgate-analytics-external; null: none). */
  destination?: string | null
  /** Contextual attribute values (see context.ts); the browser default is defaultContext(). */
  context?: ContextProvider
  /** `meta.domain` of events (default: location.hostname where there is one). */
  hostname?: string
  logger?: Logger
  /** Where ids live (default: localStorage when it works, else memory). */
  store?: KeyValueStore
  /** Idle time after which a new session starts (ms; default 30 minutes). */
  sessionTimeoutMs?: number
  /** Calls kept while the stream configs are being fetched (default 128, oldest dropped). */
  maxQueuedCalls?: number
  /** Fetches the stream configs (default: globalThis.fetch). */
  fetch?: typeof globalThis.fetch
  /** Gives up on a stream config request after this long (ms; default 10 s), then retries later. */
  streamConfigsTimeoutMs?: number
  /** First wait before fetching the stream configs again after a failure (ms; default 1 s, doubling up to 60 s). */
  streamConfigsRetryMs?: number
  now?: () => number
}

type Call = { stream: string; event: Record<string, unknown>; at: number; interaction: boolean }

export class MetricsClient {
  readonly identity: Identity
  /** Events not sent, by reason. */
  readonly dropped: Partial<Record<DropReason, number>> = {}
  readonly #options: MetricsClientOptions
  readonly #logger: Logger
  readonly #now: () => number
  #configs: StreamConfigs | false | undefined
  #queue: Call[] = []
  #fetching: Promise<void> | undefined
  #retryMs = 0
  /** Why the last fetch of the stream configs failed (undefined: it did not). */
  configsFailure: string | undefined

  constructor(options: MetricsClientOptions) {
    this.#options = options
    this.#logger = options.logger ?? consoleLogger
    this.#now = options.now ?? Date.now
    this.identity = new Identity({ store: options.store ?? browserStore(), sessionTimeoutMs: options.sessionTimeoutMs, now: this.#now })
    if (options.streamConfigs !== undefined) this.#configs = options.streamConfigs
    else if (options.streamConfigsOrigin !== undefined) this.#fetching = this.#fetchConfigs(options.streamConfigsOrigin)
    else throw new TypeError('MetricsClient needs streamConfigs or streamConfigsOrigin')
  }

  /** Resolves once the stream configs are there, or once the first attempt to fetch them failed (they are fetched again later). */
  get ready(): Promise<void> {
    return this.#fetching ?? Promise.resolve()
  }

  /** Sends an event of `stream` as it is (plus `dt`, `meta.stream`, `meta.domain`): reference §1.3. */
  submit(stream: string, event: Record<string, unknown>): void {
    if (!this.#valid(stream, event)) return
    this.#call({ stream, event: { ...event }, at: this.#now(), interaction: false })
  }

  /**
   * An interaction event: `{ action, ...data, $schema }` with the contextual attributes the
   * stream asks for and its `sample` setting, then as submit.
   */
  submitInteraction(stream: string, schemaId: string, action: string, data: Record<string, unknown> = {}): void {
    if (typeof action !== 'string' || action === '') return this.#drop('no_action', stream, 'submitInteraction needs an action')
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return this.#drop('invalid_event', stream, 'the interaction data must be an object')
    const event = { action, ...data, $schema: schemaId }
    if (!this.#valid(stream, event)) return
    this.#call({ stream, event, at: this.#now(), interaction: true })
  }

  /** submitInteraction with the web base schema and action `click`. */
  submitClick(stream: string, data: Record<string, unknown> = {}): void {
    this.submitInteraction(stream, webBaseSchema, 'click', data)
  }

  /** Whether events of `stream` are in sample for this client now (false: not configured, or configs not here yet). */
  isStreamInSample(stream: string): boolean {
    const config = this.getStreamConfig(stream)
    return config !== undefined && sampleVerdict(config.sample, (unit) => this.#id(unit)).in
  }

  /** A copy of a stream's config (undefined: not configured, or not fetched yet). */
  getStreamConfig(stream: string): StreamConfig | undefined {
    if (this.#configs === false) return {}
    const config = this.#configs?.[stream]
    return config === undefined ? undefined : (JSON.parse(JSON.stringify(config)) as StreamConfig)
  }

  /** Streams whose `producers.metrics_platform_client.events` has a prefix of `eventName`. */
  getStreamNamesForEvent(eventName: string): string[] {
    if (this.#configs === undefined || this.#configs === false) return []
    return Object.entries(this.#configs)
      .filter(([, config]) => {
        const events = clientSettings(config).events
        const prefixes = Array.isArray(events) ? events : typeof events === 'string' ? [events] : []
        return prefixes.some((prefix) => typeof prefix === 'string' && eventName.startsWith(prefix))
      })
      .map(([name]) => name)
  }

  /** An instrument: interactions of one stream and schema, numbered in its funnel from 1. */
  newInstrument(stream: string, schemaId: string, instrumentName?: string): Instrument {
    return new Instrument(this, stream, schemaId, instrumentName)
  }

  #valid(stream: string, event: Record<string, unknown>): boolean {
    if (typeof stream !== 'string' || stream === '') {
      this.#drop('invalid_event', String(stream), 'the stream name must be a non-empty string')
      return false
    }
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      this.#drop('invalid_event', stream, 'the event must be an object')
      return false
    }
    if (typeof event['$schema'] !== 'string' || event['$schema'] === '') {
      this.#drop('no_schema', stream, 'the event has no $schema')
      return false
    }
    return true
  }

  #call(call: Call): void {
    if (this.#configs !== undefined) return this.#process(call)
    const max = this.#options.maxQueuedCalls ?? 128
    if (this.#queue.length >= max) {
      const oldest = this.#queue.shift()!
      this.#drop('call_queue_full', oldest.stream, `more than ${max} calls came before the stream configs: the oldest was dropped`)
    }
    this.#queue.push(call)
  }

  #process(call: Call): void {
    const configs = this.#configs
    let stream = call.stream
    let config: StreamConfig | undefined = configs === false ? {} : configs?.[stream]
    if (config === undefined) return this.#drop('unconfigured_stream', stream, `stream ${stream} is not configured`)
    const verdict = sampleVerdict(config.sample, (unit) => this.#id(unit))
    if (!verdict.in) return this.#drop(verdict.reason.startsWith('invalid') ? 'invalid_sample' : 'out_of_sample', stream, verdict.reason)
    const settings = clientSettings(config)
    // A redirect: events of this stream go to another configured one (reference §1.3, step 5).
    if (typeof settings.stream_name === 'string' && settings.stream_name !== '' && settings.stream_name !== stream) {
      const target = configs === false ? {} : configs?.[settings.stream_name]
      if (target === undefined) return this.#drop('unconfigured_stream', stream, `stream ${stream} sends to ${settings.stream_name}, which is not configured`)
      stream = settings.stream_name
      config = target
    }
    const event = call.event
    if (call.interaction) {
      const requested = requestedAttributes(settings.provide_values)
      if (requested.ignored.length > 0) this.#logger.warn(`stream ${call.stream}: provide_values entries that are not attribute names were ignored`, { ignored: requested.ignored })
      addContext(event, requested.names, (name) => this.#attribute(name))
      if (verdict.sample !== undefined) event['sample'] = { ...verdict.sample }
    }
    const curated = curate(event, settings.curation)
    if (!curated.pass) return this.#drop('curated_out', stream, curated.reason)
    const meta = typeof event['meta'] === 'object' && event['meta'] !== null && !Array.isArray(event['meta']) ? (event['meta'] as Record<string, unknown>) : {}
    meta['stream'] = stream
    const domain = this.#options.hostname ?? (globalThis as { location?: { hostname?: string } }).location?.hostname
    if (typeof domain === 'string' && domain !== '') meta['domain'] = domain
    event['meta'] = meta
    // client_dt marks a migrated legacy event, whose dt the intake sets (reference §1.3, step 6).
    if ('client_dt' in event) delete event['dt']
    else event['dt'] = new Date(call.at).toISOString()
    this.#options.sink.send(event)
  }

  #id(unit: SampleUnit): string {
    return unit === 'pageview' ? this.identity.pageviewId : unit === 'session' ? this.identity.sessionId : this.identity.deviceId
  }

  #attribute(name: string): unknown {
    if (name === 'performer_session_id') return this.identity.sessionId
    if (name === 'performer_pageview_id') return this.identity.pageviewId
    const value = this.#options.context?.(name)
    if (value !== undefined) return value
    const browser = (globalThis as { document?: unknown }).document !== undefined
    if (name === 'agent_client_platform') return browser ? 'mediawiki_js' : 'eventplane_node'
    if (name === 'agent_client_platform_family') return browser ? 'desktop_browser' : 'server'
    return undefined
  }

  #drop(reason: DropReason, stream: string, message: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
    this.#logger.warn(`event of ${stream} not sent: ${message}`, { stream, reason })
  }

  async #fetchConfigs(origin: string): Promise<void> {
    const fetch = this.#options.fetch ?? globalThis.fetch
    const destination = this.#options.destination === null ? undefined : (this.#options.destination ?? undefined)
    const url = streamConfigsUrl(origin, destination)
    let failure: string
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(this.#options.streamConfigsTimeoutMs ?? 10_000), headers: { accept: 'application/json' } })
      if (response.ok) {
        const parsed = parseStreamConfigs(await response.json().catch(() => undefined))
        if (!('invalid' in parsed)) {
          this.#configs = parsed as StreamConfigs
          this.configsFailure = undefined
          this.#drain()
          return
        }
        failure = `${url} answered something else than stream configs (${(parsed as { invalid: string }).invalid})`
      } else failure = `${url} answered HTTP ${response.status}`
    } catch (error) {
      failure = `${url} could not be fetched: ${(error as Error).message}`
    }
    // Calls stay queued (bounded, the oldest dropped and counted) while the configs are
    // fetched again, with backoff: a config API that is down for a while loses nothing.
    this.configsFailure = failure
    this.#retryMs = Math.min(this.#retryMs === 0 ? (this.#options.streamConfigsRetryMs ?? 1000) : this.#retryMs * 2, 60_000)
    this.#logger.warn(`stream configs: ${failure}; ${this.#queue.length} calls wait, trying again in ${this.#retryMs} ms`)
    const timer = setTimeout(() => {
      this.#fetching = this.#fetchConfigs(origin)
    }, this.#retryMs)
    ;(timer as { unref?: () => void }).unref?.()
  }

  #drain(): void {
    const queue = this.#queue
    this.#queue = []
    for (const call of queue) this.#process(call)
  }
}

/** submitInteraction bound to one stream and schema, with funnel positions from 1. */
export class Instrument {
  #position = 0
  readonly #client: MetricsClient
  readonly #stream: string
  readonly #schemaId: string
  readonly #name: string | undefined

  constructor(client: MetricsClient, stream: string, schemaId: string, name?: string) {
    this.#client = client
    this.#stream = stream
    this.#schemaId = schemaId
    this.#name = name
  }

  submitInteraction(action: string, data: Record<string, unknown> = {}): void {
    const event: Record<string, unknown> = { ...data, funnel_event_sequence_position: ++this.#position }
    if (this.#name !== undefined) event['instrument_name'] = this.#name
    this.#client.submitInteraction(this.#stream, this.#schemaId, action, event)
  }

  submitClick(data: Record<string, unknown> = {}): void {
    this.submitInteraction('click', data)
  }

  isStreamInSample(): boolean {
    return this.#client.isStreamInSample(this.#stream)
  }
}

/** Warnings to the console, prefixed: the default wherever no logger is given (drops are never silent). */
export const consoleLogger: Logger = {
  warn: (message, details) => (globalThis as { console?: { warn(...args: unknown[]): void } }).console?.warn(`[eventplane] ${message}`, details ?? ''),
}
