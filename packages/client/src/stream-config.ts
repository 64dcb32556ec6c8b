/**
 * Stream configs as clients get them: from Eventplane's (or MediaWiki's) stream config API,
 * `GET /w/api.php?action=streamconfigs&format=json&formatversion=2&constraints=destination_event_service=…`,
 * answered `{ streams: { <name>: config } }`. A client reads `sample` and
 * `producers.metrics_platform_client` of each.
 */
export interface MetricsPlatformClientConfig {
  /** Event name prefixes this stream takes (one or a list). */
  events?: string | string[]
  /** Contextual attributes to add to each event (see context.ts). */
  provide_values?: string[]
  /** Rules an event must pass to be sent (see curation.ts). */
  curation?: Record<string, Record<string, unknown>>
  /** Send this stream's events to another configured stream instead. */
  stream_name?: string
}

export interface StreamConfig {
  sample?: { unit?: string; rate?: number }
  producers?: { metrics_platform_client?: MetricsPlatformClientConfig; [producer: string]: unknown }
  [setting: string]: unknown
}

export type StreamConfigs = Record<string, StreamConfig>

/** Wikimedia's analytics intake service name, the constraint MediaWiki's clients ask with. */
export const defaultDestination = 'eventgate-analytics-external'

/** The URL of the stream config API of `origin` (e.g. `https://events.example.org`). */
export function streamConfigsUrl(origin: string, destination: string | undefined = defaultDestination): string {
  const base = origin.replace(/\/+$/, '')
  const constraints = destination === undefined ? '' : `&constraints=${encodeURIComponent(`destination_event_service=${destination}`)}`
  return `${base}/w/api.php?action=streamconfigs&format=json&formatversion=2${constraints}`
}

/** The stream configs in an answer of that API, or why the answer is not one. */
export function parseStreamConfigs(body: unknown): StreamConfigs | { invalid: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { invalid: 'the answer is not a JSON object' }
  const streams = (body as { streams?: unknown }).streams
  if (typeof streams !== 'object' || streams === null || Array.isArray(streams)) return { invalid: 'the answer has no "streams" object' }
  const configs: StreamConfigs = {}
  for (const [name, config] of Object.entries(streams)) {
    if (typeof config === 'object' && config !== null && !Array.isArray(config)) configs[name] = config as StreamConfig
  }
  return configs
}

/** The metrics_platform_client block of a stream config, when it is an object. */
export function clientSettings(config: StreamConfig | undefined): MetricsPlatformClientConfig {
  const block = config?.producers?.metrics_platform_client
  return typeof block === 'object' && block !== null && !Array.isArray(block) ? block : {}
}
