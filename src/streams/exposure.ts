import type { ResolvedStreamSettings, StreamConfig } from '../streamconfig/index.ts'

/** A stream that can be read over SSE, under its name or one of its aliases. */
export interface ServedStream {
  /** The name it is asked for (the stream, or an alias). */
  name: string
  /** The stream's own name. */
  stream: string
  topics: readonly string[]
  settings: ResolvedStreamSettings
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
      if (!served.has(name)) served.set(name, { name, stream: key, topics, settings })
    }
  }
  byAllowed.set(allowedKey, served)
  return served
}
