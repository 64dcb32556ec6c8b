import type { Ajv, ValidateFunction } from 'ajv'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { compileWith, draftOf, newAjv, type SchemaDraft } from './rules-ajv.ts'
import type { SchemaSource } from './source.ts'

/** A schema ready to validate events: compiled once, kept in a bounded cache. */
export interface CompiledSchema {
  /** The URI it was asked for, e.g. `/eventplane/test/event/1.0.0`. */
  readonly uri: string
  readonly schema: JsonObject
  readonly title: string | undefined
  /** Validates an event, filling in schema defaults; every error is on `validate.errors`. */
  readonly validate: ValidateFunction
  /**
   * The same verdict, faster: stops at the first error, and counts string lengths in UTF-16
   * units when that cannot accept what `validate` refuses. Call `validate` when it says no
   * (for the errors, and because a `maxLength` may pass by code points).
   */
  readonly check: ValidateFunction
  /** Which fields the intake may fill in: only those the schema has. */
  readonly fields: SchemaFields
}

/**
 * Fields the schema declares, so enrichment only adds what the schema allows, and the
 * `maxLength` of those filled from request headers, so what is copied fits.
 */
export interface SchemaFields {
  metaId: boolean
  metaDt: boolean
  metaRequestId: boolean
  dt: boolean
  userAgent: boolean
  clientIp: boolean
  /** Longest value each header-filled field takes (Infinity when the schema sets no maxLength). */
  maxLength: { requestId: number; userAgent: number; clientIp: number }
  /**
   * Whether validating may add array items (a `default` in a tuple's `items`): an event whose
   * stored text is its own bytes must then be serialized instead. (A default filled into an
   * object adds a key, which the intake notices by counting keys.)
   */
  fillsItems: boolean
}

export interface ValidatorCache {
  /** The compiled schema at a URI path. Not-found and unreachable results are not cached. */
  get(uri: string): Promise<CompiledSchema>
  /** The compiled schema if it is already cached, without waiting. */
  peek(uri: string): CompiledSchema | undefined
  readonly size: number
  /** Estimated bytes held by the compiled schemas. */
  readonly bytes: number
}

export interface ValidatorCacheOptions {
  source: SchemaSource
  /** Compiled schemas kept (least recently used dropped first). */
  maxEntries?: number
  /** Estimated bytes the compiled schemas may hold in all (default 256 MiB). */
  maxBytes?: number
}

/**
 * What a compiled schema holds, estimated from its size as JSON: the schema, two validators
 * (the full one and the fast check) and what ajv keeps for each. Measured on the bundled and
 * Wikimedia schemas at about 10 to 20 times the JSON size.
 */
const bytesPerSchemaByte = 20
/**
 * ajv keeps every schema it compiled in its instance-wide scope (removeSchema does not free
 * that), so an instance is replaced after this many compiles: once the validators compiled with
 * an old instance are evicted, the instance and all it holds are freed.
 */
const compilesPerInstance = 20

/**
 * Compiles and caches validators by schema URI, as EventGate does, but bounded: a flood of
 * distinct URIs cannot grow memory, because only schemas that exist are cached, at most
 * `maxEntries` of them, and ajv's own cache is emptied after each compile.
 */
export function createValidatorCache(options: ValidatorCacheOptions): ValidatorCache {
  const maxEntries = options.maxEntries ?? 1000
  const maxBytes = options.maxBytes ?? 256 * 1024 * 1024
  const cache = new Map<string, Promise<CompiledSchema>>()
  const ready = new Map<string, CompiledSchema>()
  const sizes = new Map<string, number>()
  let bytes = 0
  const instances = new Map<string, { ajv: Ajv; compiles: number }>()
  const ajvFor = (draft: SchemaDraft, mode: 'full' | 'fast' | 'fast-units') => {
    const key = `${draft} ${mode}`
    let instance = instances.get(key)
    if (instance === undefined || instance.compiles >= compilesPerInstance) {
      instance = { ajv: newAjv(draft, mode === 'full', true, mode !== 'fast-units'), compiles: 0 }
      instances.set(key, instance)
    }
    instance.compiles++
    return instance.ajv
  }
  const forget = (uri: string) => {
    cache.delete(uri)
    ready.delete(uri)
    bytes -= sizes.get(uri) ?? 0
    sizes.delete(uri)
  }

  const compile = async (uri: string): Promise<CompiledSchema> => {
    const { schema } = await options.source.get(uri)
    const draft = draftOf(schema)
    let validate: ValidateFunction
    let check: ValidateFunction
    try {
      validate = compileWith(ajvFor(draft, 'full'), schema)
      // Counting UTF-16 units instead of code points can only make a string look longer, so
      // it is safe for maxLength (a refusal is checked again) but not for a minLength above 1.
      check = compileWith(ajvFor(draft, hasMinLengthAbove1(schema) ? 'fast' : 'fast-units'), schema)
    } catch (error) {
      throw new EventplaneError('EVP_SCHEMA_INVALID', `schema ${uri} does not compile: ${(error as Error).message}`, {
        cause: error,
        details: { uri },
      })
    }
    return {
      uri,
      schema,
      title: typeof schema['title'] === 'string' ? schema['title'] : undefined,
      validate,
      check,
      fields: schemaFields(schema),
    }
  }

  return {
    get(uri) {
      const hit = cache.get(uri)
      if (hit !== undefined) {
        // Most recently used last; a Map keeps insertion order.
        cache.delete(uri)
        cache.set(uri, hit)
        return hit
      }
      const pending = compile(uri)
      cache.set(uri, pending)
      pending.then(
        (compiled) => {
          if (cache.get(uri) !== pending) return
          ready.set(uri, compiled)
          const size = JSON.stringify(compiled.schema).length * bytesPerSchemaByte
          sizes.set(uri, size)
          bytes += size
          // Least recently used first, but never the one just compiled.
          for (const oldest of cache.keys()) {
            if (bytes <= maxBytes || oldest === uri) break
            forget(oldest)
          }
        },
        () => {},
      )
      pending.catch((error: unknown) => {
        // A schema that is missing now may be published later, and a remote that failed may
        // recover: only compile failures (a bad schema stays bad) stay cached.
        if (!(error instanceof EventplaneError && error.code === 'EVP_SCHEMA_INVALID') && cache.get(uri) === pending) forget(uri)
      })
      if (cache.size > maxEntries) forget(cache.keys().next().value!)
      return pending
    },
    peek(uri) {
      const hit = ready.get(uri)
      if (hit !== undefined) {
        const entry = cache.get(uri)!
        cache.delete(uri)
        cache.set(uri, entry)
      }
      return hit
    },
    get size() {
      return cache.size
    },
    get bytes() {
      return bytes
    },
  }
}

function hasMinLengthAbove1(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasMinLengthAbove1)
  if (!isPlainObject(value)) return false
  for (const [key, child] of Object.entries(value)) {
    if (key === 'minLength' && typeof child === 'number' && child > 1) return true
    if (key !== 'examples' && key !== 'default' && key !== 'enum' && key !== 'const' && hasMinLengthAbove1(child)) return true
  }
  return false
}

function property(schema: unknown, ...path: string[]): JsonObject | undefined {
  let node = schema
  for (const name of path) {
    const properties = isPlainObject(node) ? node['properties'] : undefined
    node = isPlainObject(properties) ? properties[name] : undefined
  }
  return isPlainObject(node) ? node : undefined
}

/** Which enrichable fields a schema has; a header map counts when it is an object. */
export function schemaFields(schema: JsonObject): SchemaFields {
  const title = typeof schema['title'] === 'string' ? schema['title'] : ''
  const headers = property(schema, 'http', 'request_headers')
  const maxLength = (field: JsonObject | undefined) => (typeof field?.['maxLength'] === 'number' ? field['maxLength'] : Infinity)
  const headerValues = headers === undefined ? undefined : (property(headers, 'user-agent') ?? (isPlainObject(headers['additionalProperties']) ? headers['additionalProperties'] : undefined))
  return {
    maxLength: {
      requestId: maxLength(property(schema, 'meta', 'request_id')),
      userAgent: maxLength(headerValues),
      clientIp: maxLength(property(schema, 'http', 'client_ip')),
    },
    metaId: property(schema, 'meta', 'id') !== undefined,
    metaDt: property(schema, 'meta', 'dt') !== undefined,
    metaRequestId: property(schema, 'meta', 'request_id') !== undefined,
    // Legacy EventLogging schemas take their event time from the intake (as EventGate does).
    dt: title.startsWith('analytics/legacy/') && property(schema, 'dt') !== undefined,
    userAgent: headers !== undefined && (headers['type'] === 'object' || property(headers, 'user-agent') !== undefined),
    clientIp: property(schema, 'http', 'client_ip') !== undefined,
    // Also true where the words merely appear (a property named "items", examples): only ever a missed shortcut.
    fillsItems: hasItemDefaults(JSON.stringify(schema)),
  }
}

function hasItemDefaults(json: string): boolean {
  return json.includes('"default"') && (json.includes('"items":[') || json.includes('"prefixItems"'))
}
