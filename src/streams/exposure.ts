import type { EventLog } from '../log/types.ts'
import type { ResolvedStreamSettings, StreamConfig } from '../streamconfig/index.ts'

/** A stream that can be read over SSE, under its name or one of its aliases. */
export interface ServedStream {
  /** The name it is asked for (the stream, or an alias). */
  name: string
  /** The stream's own name. */
  stream: string
  topics: readonly string[]
  settings: ResolvedStreamSettings
  /** For metrics: the stream, or the `/regex/` key of a stream made through one (bounded labels). */
  label: string
}

const cache = new WeakMap<StreamConfig, Map<string, Map<string, ServedStream>>>()

/**
 * The streams EventStreams would serve: every configured stream that is not a `/regex/` key
 * and has topics, under its name and each of its `stream_aliases`, limited to `allowed`
 * when given, never the `hidden` ones (the error stream, unless exposed). Computed once per
 * stream config generation.
 */
export function servedStreams(config: StreamConfig, allowed: readonly string[] | null | undefined, hidden: readonly string[] = []): Map<string, ServedStream> {
  const allowedKey = (allowed === null || allowed === undefined ? '*' : allowed.join('\n')) + '\0' + hidden.join('\n')
  let byAllowed = cache.get(config)
  if (byAllowed === undefined) cache.set(config, (byAllowed = new Map()))
  const hit = byAllowed.get(allowedKey)
  if (hit !== undefined) return hit
  const allow = allowed === null || allowed === undefined ? undefined : new Set(allowed)
  const served = new Map<string, ServedStream>()
  for (const [key, settings] of Object.entries(config.get())) {
    if (key.startsWith('/') || hidden.includes(key)) continue
    const topics = Array.isArray(settings.topics) ? settings.topics.filter((t) => typeof t === 'string' && !t.startsWith('/')) : []
    if (topics.length === 0) continue
    const aliases = Array.isArray(settings.stream_aliases) ? (settings.stream_aliases as string[]) : []
    for (const name of [key, ...aliases]) {
      if (allow !== undefined && !allow.has(name)) continue
      if (!served.has(name)) served.set(name, { name, stream: key, topics, settings, label: key })
    }
  }
  byAllowed.set(allowedKey, served)
  return served
}

/**
 * A stream made through a `/regex/` key, as the intake makes them: served like a named stream
 * (allowed, not hidden) once the log has its topics, so that what can be written can be read,
 * and a reader naming streams cannot make topics. `existing` is the log's topics; the stream
 * is served with those of its topics that exist.
 */
export function regexStream(
  config: StreamConfig,
  name: string,
  allowed: readonly string[] | null | undefined,
  hidden: readonly string[],
  existing: ReadonlySet<string>,
): ServedStream | undefined {
  if (hidden.includes(name)) return undefined
  const found = config.resolve(name)
  if (found === undefined || !found.key.startsWith('/')) return undefined
  if (allowed !== null && allowed !== undefined && !allowed.includes(name) && !allowed.includes(found.key)) return undefined
  const settings = found.settings
  const topics = Array.isArray(settings.topics) ? settings.topics.filter((t): t is string => typeof t === 'string' && !t.startsWith('/') && existing.has(t)) : []
  if (topics.length === 0) return undefined
  return { name, stream: name, topics, settings, label: found.key }
}

/**
 * The streams made through `/regex/` keys whose topics are among `topics` (the log's): each
 * topic without one of the configured topic prefixes is looked up. For the list of streams a
 * server offers (/?spec, the viewer).
 */
export function regexStreamsIn(
  config: StreamConfig,
  topics: ReadonlySet<string>,
  allowed: readonly string[] | null | undefined,
  hidden: readonly string[],
): Map<string, ServedStream> {
  const prefixes = new Set([''])
  for (const settings of Object.values(config.get())) {
    if (Array.isArray(settings.topic_prefixes)) for (const p of settings.topic_prefixes) if (typeof p === 'string') prefixes.add(p)
  }
  const found = new Map<string, ServedStream>()
  for (const topic of topics) {
    for (const prefix of prefixes) {
      if (!topic.startsWith(prefix) || topic.length === prefix.length) continue
      const name = topic.slice(prefix.length)
      if (found.has(name)) continue
      const stream = regexStream(config, name, allowed, hidden, topics)
      if (stream !== undefined && stream.topics.includes(topic)) found.set(name, stream)
    }
  }
  return found
}

/**
 * The log's topics as a set, looked up again once the last look-up is older than `maxAgeMs`, or
 * began before `since` (a caller that must see topics made before it asked); callers in between
 * share one look-up, and a failed one counts as no topics. What serving streams made through
 * `/regex/` keys needs, without a metadata request per reader.
 */
export function topicsLookup(log: Pick<EventLog, 'topics'>, maxAgeMs: number): (since?: number) => Promise<Set<string>> {
  let last: { at: number; topics: Promise<Set<string>> } | undefined
  return (since = -Infinity) => {
    if (last === undefined || last.at < since || Date.now() - last.at > maxAgeMs) {
      last = { at: Date.now(), topics: log.topics().then((t) => new Set(t), () => new Set<string>()) }
    }
    return last.topics
  }
}
