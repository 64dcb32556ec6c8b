import { createHash } from 'node:crypto'
import { deepFreeze, setOwn, type JsonObject } from '../core/objects.ts'
import { checkConstraintDepth, matchesConstraints, type Constraints } from './constraints.ts'
import { escapeRegExp, isValidStreamName, type StreamKey } from './keys.ts'
import type { ResolvedStreamSettings, StreamSettings } from './schema.ts'

/** One entry of `streams:`, in file order, with `defaults:` merged in. */
export interface StreamEntry {
  readonly key: StreamKey
  /** Merged settings as written; `stream` and `topics` are not computed here. Frozen. */
  readonly settings: Readonly<StreamSettings>
  /** What a listing shows for the entry: `stream` is the key, `topics` computed for the key. */
  readonly listed: ResolvedStreamSettings
}

/** A concrete stream name resolved to the entry that configures it. */
export interface StreamResolution {
  /** The name or `/regex/` key of the entry that matched. */
  readonly key: string
  readonly settings: ResolvedStreamSettings
}

export interface StreamConfigInit {
  /** File path or URL the config came from. */
  source: string
  entries: ReadonlyArray<{ key: StreamKey; settings: StreamSettings }>
  /** Counts successful loads of one source that changed the content; 1 for the first. */
  generation?: number
  /** Epoch milliseconds. */
  loadedAt?: number
}

// Bounds the per-generation cache of concrete names, which request input can fill.
const maxCachedNames = 10_000

/**
 * A loaded, validated, immutable stream config: lookups by concrete stream name (exact key
 * first, then the first matching `/regex/` in file order) with `stream` and `topics` computed
 * for the name asked for. Lookups of concrete names are cached for the life of the object,
 * which is one config generation.
 *
 * @example
 * config.lookup('mediawiki.job.foo')?.topics // ['datacenter1.mediawiki.job.foo']
 * config.get(['test.event', 'nope'], { canary_events_enabled: false }) // { 'test.event': {…} }
 */
export class StreamConfig {
  readonly source: string
  readonly generation: number
  readonly loadedAt: number
  /** A strong entity tag of the content (quoted), the same for the same settings. */
  readonly etag: string
  readonly entries: readonly StreamEntry[]
  readonly #byName: ReadonlyMap<string, StreamEntry>
  readonly #regexEntries: readonly StreamEntry[]
  readonly #cache = new Map<string, StreamResolution | null>()

  constructor(init: StreamConfigInit) {
    this.source = init.source
    this.generation = init.generation ?? 1
    this.loadedAt = init.loadedAt ?? Date.now()
    const entries = init.entries.map(({ key, settings }): StreamEntry => {
      const frozen = deepFreeze(settings)
      // deepFreeze would freeze the RegExp too, and a frozen RegExp throws once lastIndex is written.
      const listed = resolved(frozen, key.key, topicsFor(frozen, key, key.key))
      return Object.freeze({ key: Object.freeze(key), settings: frozen, listed })
    })
    this.entries = Object.freeze(entries)
    this.#byName = new Map(entries.map((entry) => [entry.key.key, entry]))
    this.#regexEntries = entries.filter((entry) => entry.key.kind === 'regex')
    const hash = createHash('sha256')
    for (const entry of entries) hash.update(JSON.stringify([entry.key.key, entry.settings])).update('\n')
    this.etag = `"sc-${hash.digest('base64url').slice(0, 32)}"`
    Object.freeze(this)
  }

  /** Number of entries (names and regexes) in the config. */
  get size(): number {
    return this.entries.length
  }

  /**
   * Finds the entry for a stream: the entry keyed by exactly `name` (which may be a `/regex/`
   * key itself), else the first regex entry that matches. Names that are not valid stream
   * names match no regex.
   */
  resolve(name: string): StreamResolution | undefined {
    const cached = this.#cache.get(name)
    if (cached !== undefined) return cached ?? undefined
    const found = this.#find(name)
    if (this.#cache.size >= maxCachedNames) this.#cache.clear()
    this.#cache.set(name, found ?? null)
    return found
  }

  /** The settings of one stream, or undefined when no entry configures it. Fast; cached. */
  lookup(name: string): ResolvedStreamSettings | undefined {
    return this.resolve(name)?.settings
  }

  /**
   * EventStreamConfig's `get`: without targets, every entry keyed by its name or regex; with
   * targets, each one that resolves, keyed by the name asked for. Entries are then kept only
   * when they match `constraints` (see {@link matchesConstraints}); a `stream` constraint
   * matches an entry whose key equals it or whose regex matches it.
   */
  get(targets?: readonly string[], constraints?: Constraints): Record<string, ResolvedStreamSettings> {
    if (constraints !== undefined) checkConstraintDepth(constraints)
    const out: Record<string, ResolvedStreamSettings> = {}
    const pairs: Iterable<readonly [string, StreamEntry, ResolvedStreamSettings]> =
      targets === undefined
        ? this.entries.map((entry) => [entry.key.key, entry, entry.listed] as const)
        : this.#targets(targets)
    for (const [name, entry, settings] of pairs) {
      if (constraints !== undefined && !entryMatches(entry, settings, constraints)) continue
      setOwn(out as JsonObject, name, settings)
    }
    return out
  }

  *#targets(targets: readonly string[]): Iterable<readonly [string, StreamEntry, ResolvedStreamSettings]> {
    for (const name of targets) {
      const found = this.resolve(name)
      if (found !== undefined) yield [name, this.#byName.get(found.key)!, found.settings] as const
    }
  }

  #find(name: string): StreamResolution | undefined {
    const exact = this.#byName.get(name)
    if (exact !== undefined) return Object.freeze({ key: name, settings: exact.listed })
    if (!isValidStreamName(name)) return undefined
    for (const entry of this.#regexEntries) {
      if (entry.key.kind === 'regex' && entry.key.regex.test(name)) {
        const settings = resolved(entry.settings, name, topicsFor(entry.settings, entry.key, name))
        return Object.freeze({ key: entry.key.key, settings })
      }
    }
    return undefined
  }
}

function resolved(settings: Readonly<StreamSettings>, stream: string, topics: readonly string[]): ResolvedStreamSettings {
  const out: JsonObject = { ...settings }
  setOwn(out, 'stream', stream)
  setOwn(out, 'topics', Object.freeze([...topics]))
  return Object.freeze(out) as ResolvedStreamSettings
}

const regexString = /^\/.+\/$/

/**
 * `topics` if set, else prefix + name for each of `topic_prefixes`, else `[name]`. Listing a
 * regex entry gives one regex over the prefixed topics, `/^(datacenter1\.)pattern/`, as
 * EventStreamConfig does. Explicit topics that are a single `/regex/` describe a regex entry
 * as a whole (that is what action=streamconfigs returns for one), so a concrete name under
 * that entry gets computed topics instead.
 */
function topicsFor(settings: Readonly<StreamSettings>, key: StreamKey, name: string): readonly string[] {
  const explicit = settings.topics
  const concreteUnderRegex = key.kind === 'regex' && name !== key.key
  if (explicit !== undefined && !(concreteUnderRegex && explicit.length === 1 && regexString.test(explicit[0]!))) {
    return explicit
  }
  const prefixes = settings.topic_prefixes
  if (prefixes === null || prefixes === undefined) return [name]
  if (key.kind === 'regex' && name === key.key) {
    const anchored = key.pattern.startsWith('^')
    const rest = anchored ? key.pattern.slice(1) : key.pattern
    return [`/${anchored ? '^' : ''}(${prefixes.map(escapeRegExp).join('|')})${rest}/`]
  }
  return prefixes.map((prefix) => prefix + name)
}

function entryMatches(entry: StreamEntry, settings: ResolvedStreamSettings, constraints: Constraints): boolean {
  if (Object.hasOwn(constraints, 'stream')) {
    const wanted = constraints['stream']
    const names = Array.isArray(wanted) ? wanted : [wanted]
    if (!names.every((name) => typeof name === 'string' && keyMatches(entry.key, name))) return false
    const { stream: _stream, ...rest } = constraints
    return matchesConstraints(settings, rest)
  }
  return matchesConstraints(settings, constraints)
}

function keyMatches(key: StreamKey, name: string): boolean {
  return key.key === name || (key.kind === 'regex' && key.regex.test(name))
}
