import { realpathSync } from 'node:fs'
import { EventplaneError } from '../core/errors.ts'
import { parseSchemaText, readLimited, resolveInFolder, tooLarge } from './files.ts'

/** A schema document found by URI, and where it came from. */
export interface LoadedSchema {
  /** The URI asked for, without fragment, e.g. `/eventplane/test/event/1.0.0`. */
  uri: string
  /** File path or URL it was read from. */
  location: string
  schema: Record<string, unknown>
}

/**
 * Finds schema documents by URI (`/title/1.2.0`, `/title/latest`) against ordered base URIs:
 * local folders and remote schema services. Never fetches an arbitrary URL: only URIs that
 * are paths (starting with `/`) are accepted, and they are appended to configured bases.
 */
export interface SchemaSource {
  get(uri: string, signal?: AbortSignal): Promise<LoadedSchema>
}

export interface SchemaSourceOptions {
  /** Absolute folders, `file://` URLs or http(s) base URLs, tried in order. */
  baseUris: readonly string[]
  /** Timeout of one remote request. */
  timeoutMs?: number
  /** Largest schema document accepted, local or remote. */
  maxBytes?: number
  /** Documents kept in memory (least recently used are dropped first). */
  cacheSize?: number
  /** Estimated bytes the kept documents may hold in all (default 64 MiB). */
  cacheBytes?: number
  userAgent?: string
  /** Reads and parses a file of a folder base (default: read it from disk each time it is not cached). */
  readFile?: (path: string) => Promise<Record<string, unknown>>
}

type Base = { kind: 'folder'; folder: string; label: string } | { kind: 'http'; url: string; label: string }

export function createSchemaSource(options: SchemaSourceOptions): SchemaSource {
  const timeoutMs = options.timeoutMs ?? 5000
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024
  const cacheSize = options.cacheSize ?? 1000
  const cacheBytes = options.cacheBytes ?? 64 * 1024 * 1024
  const bases = options.baseUris.map(toBase)
  const cache = new Map<string, Promise<LoadedSchema>>()
  // A parsed document takes a few times its JSON size in memory.
  const sizes = new Map<string, number>()
  let bytes = 0
  const forget = (path: string) => {
    cache.delete(path)
    bytes -= sizes.get(path) ?? 0
    sizes.delete(path)
  }

  async function load(uri: string, signal?: AbortSignal): Promise<LoadedSchema> {
    const failures: EventplaneError[] = []
    for (const base of bases) {
      try {
        const found = base.kind === 'folder' ? await fromFolder(base.folder, uri, maxBytes, options.readFile) : await fromHttp(base.url, uri)
        if (found !== undefined) return found
      } catch (error) {
        if (!(error instanceof EventplaneError) || !error.canRetry) throw error
        failures.push(error) // a remote base is down: a later base may still have it
      }
    }
    if (failures.length > 0) throw failures[0]!
    throw new EventplaneError('EVP_SCHEMA_NOT_FOUND', `no schema at ${uri} under ${bases.map((b) => b.label).join(', ') || '(no base URIs)'}${renamedHint(uri)}`, {
      details: { uri },
    })

    async function fromHttp(baseUrl: string, path: string): Promise<LoadedSchema | undefined> {
      const url = baseUrl.replace(/\/+$/, '') + path
      const timeout = AbortSignal.timeout(timeoutMs)
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout
      let response: Response
      try {
        response = await fetch(url, {
          signal: combined,
          redirect: 'error',
          headers: { accept: 'application/json, application/yaml;q=0.9, text/yaml;q=0.8', 'user-agent': options.userAgent ?? 'eventplane' },
        })
      } catch (error) {
        if (timeout.aborted) {
          throw new EventplaneError('EVP_SCHEMA_REMOTE_TIMEOUT', `${url} did not answer within ${timeoutMs} ms`, {
            cause: error,
            details: { url, timeoutMs },
          })
        }
        throw new EventplaneError('EVP_SCHEMA_REMOTE_UNAVAILABLE', `${url}: ${describeFetchError(error)}`, {
          cause: error,
          details: { url },
        })
      }
      if (response.status === 404 || response.status === 410) {
        await response.body?.cancel()
        return undefined
      }
      if (!response.ok) {
        await response.body?.cancel()
        throw new EventplaneError('EVP_SCHEMA_REMOTE_UNAVAILABLE', `${url} answered HTTP ${response.status}`, {
          details: { url, status: response.status },
        })
      }
      const text = await readBody(response, url, maxBytes, timeout)
      return { uri: path, location: url, schema: parseSchemaText(text, url) }
    }
  }

  return {
    async get(uri, signal) {
      const path = checkUri(uri)
      const cached = cache.get(path)
      if (cached !== undefined) {
        cache.delete(path)
        cache.set(path, cached)
        return cached
      }
      const pending = load(path, signal)
      cache.set(path, pending)
      pending.then(
        (loaded) => {
          if (cache.get(path) !== pending) return
          const size = JSON.stringify(loaded.schema).length * 4
          sizes.set(path, size)
          bytes += size
          for (const oldest of cache.keys()) {
            if (bytes <= cacheBytes || oldest === path) break
            forget(oldest)
          }
        },
        // Failures are not cached: a remote service that was down may be back next time.
        () => {
          if (cache.get(path) === pending) forget(path)
        },
      )
      if (cache.size > cacheSize) forget(cache.keys().next().value!)
      return pending
    },
  }
}

function toBase(uri: string): Base {
  if (/^https?:\/\//i.test(uri)) return { kind: 'http', url: uri, label: uri }
  const path = uri.startsWith('file://') ? new URL(uri).pathname : uri
  let folder: string
  try {
    folder = realpathSync(path)
  } catch (error) {
    throw new EventplaneError('EVP_CONFIG_INVALID', `schema base ${uri} does not exist`, { cause: error, details: { uri } })
  }
  return { kind: 'folder', folder, label: folder }
}

/** Only relative URI paths are looked up; the fragment is not part of the document's URI. */
function checkUri(uri: string): string {
  const path = uri.split('#')[0]!
  if (!path.startsWith('/') || path.startsWith('//')) {
    throw new EventplaneError('EVP_SCHEMA_REF_INVALID', `schema URI ${JSON.stringify(uri)} must be a path such as /title/1.0.0`, {
      details: { uri },
    })
  }
  return path
}

async function fromFolder(folder: string, uri: string, maxBytes: number, readFile?: (path: string) => Promise<Record<string, unknown>>): Promise<LoadedSchema | undefined> {
  const relative = uri.slice(1)
  const hasExtension = /\.(ya?ml|json)$/.test(relative)
  for (const candidate of hasExtension ? [relative] : [relative, `${relative}.yaml`, `${relative}.json`]) {
    const entry = await resolveInFolder(folder, candidate)
    if (entry === undefined || entry.isDirectory) continue
    if (readFile !== undefined) return { uri, location: entry.real, schema: await readFile(entry.real) }
    const text = (await readLimited(entry.real, maxBytes)).toString('utf8')
    return { uri, location: entry.real, schema: parseSchemaText(text, entry.real) }
  }
  return undefined
}

async function readBody(response: Response, url: string, maxBytes: number, timeout: AbortSignal): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN)
  if (declared > maxBytes) {
    await response.body?.cancel()
    throw tooLarge(url, declared, maxBytes)
  }
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for await (const chunk of response.body ?? []) {
      total += chunk.byteLength
      if (total > maxBytes) throw tooLarge(url, total, maxBytes)
      chunks.push(chunk)
    }
  } catch (error) {
    if (error instanceof EventplaneError) throw error
    if (timeout.aborted) {
      throw new EventplaneError('EVP_SCHEMA_REMOTE_TIMEOUT', `${url} did not finish sending within the timeout`, { cause: error })
    }
    throw new EventplaneError('EVP_SCHEMA_REMOTE_UNAVAILABLE', `${url}: ${describeFetchError(error)}`, { cause: error })
  }
  return Buffer.concat(chunks).toString('utf8')
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (error as Error).message
}

/**
 * Titles the bundled repository had before it moved to a namespace of its own (docs/decisions.md,
 * "Bundled schemas have titles of their own"): a producer still sending the old URI is told the new one.
 */
const renamedBundledTitles: Record<string, string> = {
  'test/event': 'eventplane/test/event',
  error: 'eventplane/error',
  'mediawiki/page/delete': 'eventplane/mediawiki/page/delete',
  'mediawiki/recentchange': 'eventplane/mediawiki/recentchange',
  'mediawiki/revision/create': 'eventplane/mediawiki/revision/create',
  'analytics/product_metrics/web/base': 'eventplane/product_metrics/web/base',
  'analytics/legacy/test': 'analytics/legacy/eventplanetest',
}

/** `; the bundled test/event 1.0.0 is now /eventplane/test/event/1.0.0` for a URI of an old bundled title, else ''. */
function renamedHint(uri: string): string {
  const match = /^\/(.+)\/(1\.0\.0)$/.exec(uri)
  if (match === null || !Object.hasOwn(renamedBundledTitles, match[1]!)) return ''
  return `; the bundled ${match[1]} ${match[2]} is now /${renamedBundledTitles[match[1]!]}/${match[2]}`
}
