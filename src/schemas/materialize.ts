import jsyaml from 'js-yaml'
import { isPlainObject, setOwn, type JsonObject } from '../core/objects.ts'
import { dereference } from './dereference.ts'
import { generateExample } from './example.ts'
import { mergeAllOf } from './merge-allof.ts'
import type { SchemaSource } from './source.ts'

export interface MaterializeOptions {
  source: SchemaSource
  shouldDereference?: boolean
  /** `[min, max]` added to every number/integer field that lacks them; false to skip. */
  enforcedNumericBounds?: readonly [number, number] | false
  shouldGenerateExample?: boolean
  /** The schema's file, for error messages. */
  location?: string
  signal?: AbortSignal
}

export interface Materialized {
  schema: JsonObject
  /** True when the example was generated because the schema had none. */
  generatedExample: boolean
}

/**
 * Turns a hand-edited `current.yaml` into the self-contained version that gets published:
 * `$ref`s inlined, `allOf` merged, numeric bounds enforced, an example added when asked.
 */
export async function materializeSchema(schema: JsonObject, options: MaterializeOptions): Promise<Materialized> {
  let out = schema
  if (options.shouldDereference !== false) {
    out = await dereference(out, {
      source: options.source,
      ...(options.location !== undefined ? { location: options.location } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    })
    const ownExamples = out['examples']
    out = mergeAllOf(out)
    // The published examples are the schema's own: those of the fragments merged in at the
    // root would not be events of this schema (nested fragments keep theirs, as in jsonschema-tools).
    if (ownExamples === undefined) delete out['examples']
    else out['examples'] = ownExamples
  }
  const bounds = options.enforcedNumericBounds ?? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]
  if (bounds !== false) out = enforceNumericBounds(out, bounds)
  let generatedExample = false
  if (options.shouldGenerateExample && !(Array.isArray(out['examples']) && out['examples'].length > 0)) {
    const example = generateExample(out)
    if (example !== undefined) {
      out = { ...out, examples: [example] }
      generatedExample = true
    }
  }
  return { schema: out, generatedExample }
}

/** Subschema keywords walked when enforcing bounds (the keywords json-schema-traverse visits). */
const schemaValued = ['additionalItems', 'items', 'contains', 'additionalProperties', 'propertyNames', 'not', 'if', 'then', 'else']
const schemaArrays = ['items', 'allOf', 'anyOf', 'oneOf']
const schemaMaps = ['$defs', 'definitions', 'properties', 'patternProperties', 'dependencies']

/**
 * Gives every `number`/`integer` field that lacks one a `minimum` and `maximum` from
 * `bounds`, so values survive systems with 64-bit floats (JavaScript, Hive's double). Bounds
 * already written are kept even when outside the range, as jsonschema-tools keeps them; the
 * `schema-enforced-numeric-bounds` lint rule reports those.
 */
export function enforceNumericBounds(schema: JsonObject, bounds: readonly [number, number]): JsonObject {
  const [min, max] = bounds
  const visit = (node: unknown): unknown => {
    if (!isPlainObject(node)) return node
    const out: JsonObject = { ...node }
    if (out['type'] === 'number' || out['type'] === 'integer') {
      if (typeof out['minimum'] !== 'number') out['minimum'] = min
      if (typeof out['maximum'] !== 'number') out['maximum'] = max
    }
    for (const key of schemaValued) if (isPlainObject(out[key])) out[key] = visit(out[key])
    for (const key of schemaArrays) if (Array.isArray(out[key])) out[key] = (out[key] as unknown[]).map(visit)
    for (const key of schemaMaps) {
      const map = out[key]
      if (!isPlainObject(map)) continue
      const next: JsonObject = {}
      for (const [name, child] of Object.entries(map)) setOwn(next, name, visit(child))
      out[key] = next
    }
    return out
  }
  return visit(schema) as JsonObject
}

/** Key order of published files, as jsonschema-tools writes them: these first, then the rest alphabetically. */
const keyOrder = ['title', 'description', '$id', '$schema', 'type', 'additionalProperties', 'required', 'properties', 'allOf', 'examples']
const keyRank = new Map(keyOrder.map((key, i) => [key, i]))

export function compareSchemaKeys(a: string, b: string): number {
  const ra = keyRank.get(a)
  const rb = keyRank.get(b)
  if (ra !== undefined && rb !== undefined) return ra - rb
  if (ra !== undefined) return -1
  if (rb !== undefined) return 1
  return a.localeCompare(b)
}

export function sortSchemaKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortSchemaKeys)
  if (!isPlainObject(value)) return value
  const out: JsonObject = {}
  for (const key of Object.keys(value).sort(compareSchemaKeys)) setOwn(out, key, sortSchemaKeys(value[key]))
  return out
}

export type ContentType = 'yaml' | 'json'

/**
 * Serializes a schema the way published versions are written. YAML goes through js-yaml 3's
 * dumper with jsonschema-tools' key order, so a version we publish is byte for byte what
 * jsonschema-tools writes (52 of the 53 latest versions of Wikimedia's primary repository; the
 * other differs only in YAML anchors) and existing repositories see no formatting churn. It
 * is also 3x faster than the yaml package's stringify here (docs/decisions.md).
 */
export function serializeSchema(schema: unknown, contentType: ContentType): string {
  if (contentType === 'json') return JSON.stringify(sortSchemaKeys(schema), null, 2)
  return jsyaml.safeDump(schema, { sortKeys: compareSchemaKeys, noRefs: true })
}
