import { isPlainObject, type JsonObject } from '../core/objects.ts'

/**
 * Builds one example event for a materialized schema that has none
 * (`shouldGenerateExample: true`). jsonschema-tools fills examples with random lorem-ipsum,
 * so its output changes on every run; ours is deterministic (the same schema always gives the
 * same example) so that materializing twice gives the same file. Every property gets a value
 * where one can be made; a required one that cannot (a `pattern` none of our candidates
 * match, for example) makes the result undefined.
 */
export function generateExample(schema: JsonObject): unknown {
  try {
    return valueFor(schema, schema, 0, '')
  } catch (error) {
    if (error === cannotGenerate) return undefined
    throw error
  }
}

const cannotGenerate = Symbol('cannot generate')
const sampleTime = '2026-01-01T00:00:00Z'

function valueFor(schema: unknown, root: JsonObject, depth: number, name: string): unknown {
  if (depth > 32 || !isPlainObject(schema)) throw cannotGenerate
  if ('const' in schema) return schema['const']
  if (Array.isArray(schema['examples']) && schema['examples'].length > 0 && depth > 0) return schema['examples'][0]
  if (schema['default'] !== undefined) return schema['default']
  if (Array.isArray(schema['enum']) && schema['enum'].length > 0) return schema['enum'][0]
  const types = Array.isArray(schema['type']) ? schema['type'] : [schema['type'] ?? inferType(schema)]
  const type = types.find((t) => t !== 'null') ?? types[0]
  switch (type) {
    case 'object':
      return objectFor(schema, root, depth)
    case 'array': {
      const minItems = typeof schema['minItems'] === 'number' ? schema['minItems'] : 0
      if (minItems === 0 || !isPlainObject(schema['items'])) return []
      return Array.from({ length: minItems }, () => valueFor(schema['items'], root, depth + 1, name))
    }
    case 'string':
      return stringFor(schema, root, name)
    case 'integer':
    case 'number':
      return numberFor(schema, type === 'integer')
    case 'boolean':
      return false
    case 'null':
      return null
    default:
      throw cannotGenerate
  }
}

function inferType(schema: JsonObject): string | undefined {
  if (isPlainObject(schema['properties'])) return 'object'
  if (schema['items'] !== undefined) return 'array'
  return undefined
}

function objectFor(schema: JsonObject, root: JsonObject, depth: number): JsonObject {
  const out: JsonObject = {}
  const properties = isPlainObject(schema['properties']) ? schema['properties'] : {}
  const required = Array.isArray(schema['required']) ? (schema['required'] as string[]) : []
  for (const key of Object.keys(properties).sort()) {
    try {
      out[key] = valueFor(properties[key], root, depth + 1, key)
    } catch (error) {
      if (error !== cannotGenerate || required.includes(key)) throw error
    }
  }
  return out
}

function stringFor(schema: JsonObject, root: JsonObject, name: string): string {
  const candidates: string[] = []
  if (name === '$schema' && typeof root['$id'] === 'string') candidates.push(root['$id'])
  switch (schema['format']) {
    case 'date-time':
      candidates.push(sampleTime)
      break
    case 'date':
      candidates.push('2026-01-01')
      break
    case 'time':
      candidates.push('00:00:00Z')
      break
    case 'uri':
    case 'uri-reference':
    case 'iri':
    case 'iri-reference':
      candidates.push('https://example.org/')
      break
    case 'uuid':
      candidates.push('00000000-0000-4000-8000-000000000000')
      break
    case 'email':
      candidates.push('someone@example.org')
      break
    case 'hostname':
      candidates.push('example.org')
      break
    case 'ipv4':
      candidates.push('192.0.2.1')
      break
    case 'ipv6':
      candidates.push('2001:db8::1')
      break
  }
  if (name === 'stream') candidates.push('example.stream')
  if (name === 'domain') candidates.push('example.org')
  const minLength = typeof schema['minLength'] === 'number' ? schema['minLength'] : 0
  const maxLength = typeof schema['maxLength'] === 'number' ? schema['maxLength'] : Infinity
  candidates.push(name.replace(/[^a-z0-9_]/gi, '') || 'example', 'example', 'a', '0', '', 'x'.repeat(minLength))
  const pattern = typeof schema['pattern'] === 'string' ? safeRegExp(schema['pattern']) : undefined
  const found = candidates.find(
    (c) => c.length >= minLength && c.length <= maxLength && (pattern === undefined || pattern.test(c)),
  )
  if (found === undefined) throw cannotGenerate
  return found
}

function numberFor(schema: JsonObject, integer: boolean): number {
  const min = typeof schema['minimum'] === 'number' ? schema['minimum'] : undefined
  const max = typeof schema['maximum'] === 'number' ? schema['maximum'] : undefined
  let value = min !== undefined && min > 0 ? min : max !== undefined && max < 0 ? max : 0
  if (typeof schema['exclusiveMinimum'] === 'number' && value <= schema['exclusiveMinimum']) value = schema['exclusiveMinimum'] + 1
  if (typeof schema['exclusiveMaximum'] === 'number' && value >= schema['exclusiveMaximum']) value = schema['exclusiveMaximum'] - 1
  if (typeof schema['multipleOf'] === 'number' && value % schema['multipleOf'] !== 0) {
    value = Math.ceil(value / schema['multipleOf']) * schema['multipleOf']
  }
  return integer ? Math.ceil(value) : value
}

function safeRegExp(source: string): RegExp | undefined {
  try {
    return new RegExp(source, 'u')
  } catch {
    return undefined
  }
}
