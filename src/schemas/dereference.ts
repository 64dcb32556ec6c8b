import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, setOwn, type JsonObject } from '../core/objects.ts'
import { childPointer, pointerSegments } from '../core/pointer.ts'
import type { SchemaSource } from './source.ts'

export interface DereferenceOptions {
  source: SchemaSource
  /** Name of the document in error messages (its file or URI). */
  location?: string
  signal?: AbortSignal
}

interface Document {
  key: string
  value: unknown
}

/**
 * Inlines every `$ref` in a schema, as jsonschema-tools does before publishing a version:
 * - `/title/1.0.0#/pointer` is looked up through the schema source (ordered base URIs);
 * - `#/pointer`, `./#/pointer` point into the document the `$ref` is written in;
 * - keys written beside a `$ref` win over the keys of its target (JSON Schema "extended" refs,
 *   which is how `description` overrides a referenced fragment's);
 * - `$ref`s inside `examples` are resolved too (`$schema: {$ref: '#/$id'}`).
 * A cycle is an error (EVP_SCHEMA_REF_CYCLE) rather than an infinite schema.
 */
export async function dereference(schema: JsonObject, options: DereferenceOptions): Promise<JsonObject> {
  const root: Document = { key: options.location ?? '(schema)', value: schema }
  const result = await walk(schema, root, [], '')
  return result as JsonObject

  async function walk(value: unknown, doc: Document, stack: readonly string[], at: string): Promise<unknown> {
    if (Array.isArray(value)) {
      const out: unknown[] = []
      for (let i = 0; i < value.length; i++) out.push(await walk(value[i], doc, stack, childPointer(at, i)))
      return out
    }
    if (!isPlainObject(value)) return value
    const ref = value['$ref']
    if (typeof ref === 'string') return resolveRef(value, ref, doc, stack, at)
    const out: JsonObject = {}
    for (const [key, child] of Object.entries(value)) setOwn(out, key, await walk(child, doc, stack, childPointer(at, key)))
    return out
  }

  async function resolveRef(node: JsonObject, ref: string, doc: Document, stack: readonly string[], at: string): Promise<unknown> {
    const hash = ref.indexOf('#')
    const documentPart = hash === -1 ? ref : ref.slice(0, hash)
    const pointer = hash === -1 ? '' : ref.slice(hash + 1)
    let target: Document
    if (documentPart === '' || documentPart === '.' || documentPart === './') {
      target = doc
    } else if (documentPart.startsWith('/')) {
      try {
        const loaded = await options.source.get(documentPart, options.signal)
        target = { key: documentPart, value: loaded.schema }
      } catch (error) {
        if (error instanceof EventplaneError && error.code === 'EVP_SCHEMA_NOT_FOUND') {
          throw new EventplaneError('EVP_SCHEMA_REF_NOT_FOUND', `${doc.key} at ${at || '/'}: $ref ${ref} points to no schema (${error.message})`, {
            cause: error,
            details: { ref, document: doc.key, at },
          })
        }
        throw error
      }
    } else {
      throw new EventplaneError(
        'EVP_SCHEMA_REF_INVALID',
        `${doc.key} at ${at || '/'}: $ref ${JSON.stringify(ref)} must start with / (a schema URI) or # (a pointer in this document)`,
        { details: { ref, document: doc.key, at } },
      )
    }
    const id = `${target.key}#${pointer}`
    if (stack.includes(id)) {
      throw new EventplaneError('EVP_SCHEMA_REF_CYCLE', `$ref cycle: ${[...stack, id].join(' -> ')}`, {
        details: { cycle: [...stack, id] },
      })
    }
    const found = evaluatePointer(target.value, pointer)
    if (!found.ok) {
      throw new EventplaneError('EVP_SCHEMA_REF_NOT_FOUND', `${doc.key} at ${at || '/'}: $ref ${ref}: ${target.key} has nothing at #${pointer}`, {
        details: { ref, document: doc.key, at },
      })
    }
    const resolved = await walk(found.value, target, [...stack, id], pointer)
    const siblings = Object.keys(node).filter((key) => key !== '$ref')
    if (siblings.length === 0 || !isPlainObject(resolved)) return resolved
    const merged: JsonObject = {}
    for (const key of siblings) setOwn(merged, key, await walk(node[key], doc, stack, childPointer(at, key)))
    for (const [key, value] of Object.entries(resolved)) if (!Object.hasOwn(merged, key)) setOwn(merged, key, value)
    return merged
  }
}

/** RFC 6901 JSON Pointer evaluation (`/properties/a~1b/0`). */
export function evaluatePointer(value: unknown, pointer: string): { ok: true; value: unknown } | { ok: false } {
  if (pointer === '' || pointer === '/') return { ok: true, value }
  if (!pointer.startsWith('/')) return { ok: false }
  let current = value
  // A pointer in a URI fragment may be percent-encoded.
  for (const token of pointerSegments(decodeURIComponent(pointer))) {
    if (Array.isArray(current) && /^\d+$/.test(token) && Number(token) < current.length) current = current[Number(token)]
    else if (isPlainObject(current) && Object.hasOwn(current, token)) current = current[token]
    else return { ok: false }
  }
  return { ok: true, value: current }
}

