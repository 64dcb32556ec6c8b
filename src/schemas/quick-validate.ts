import { fullFormats } from 'ajv-formats/dist/formats.js'
import { isPlainObject, jsonEqual } from '../core/objects.ts'

/**
 * Whether `data` is valid against a draft-07 `schema`, by walking the schema instead of
 * compiling it: for checking a schema's examples once (lint), where compiling a validator with
 * ajv costs a hundred times more than using it. Answers `true` only where ajv would; anything it
 * is not sure of (a `$ref`, a keyword or format it does not know) is `undefined`, and a `false`
 * is for ajv to confirm and explain. test/schemas/quick-validate.test.ts compares it with ajv.
 */
export function quickValidate(schema: unknown, data: unknown): boolean | undefined {
  try {
    return valid(schema, data)
  } catch (error) {
    // Not sure, or nested too deep for the stack: ajv decides (and says why, if it cannot).
    if (error === unsure || error instanceof RangeError) return undefined
    throw error
  }
}

const unsure = Symbol('unsure')

/** Keywords that say nothing about validity (in draft-07, as ajv reads it). */
const annotations = new Set(['$schema', '$id', '$comment', 'title', 'description', 'default', 'examples', 'readOnly', 'writeOnly', 'definitions', '$defs', 'contentMediaType', 'contentEncoding'])
/** Keywords that are read together with another one. */
const companions = new Set(['then', 'else', 'additionalItems'])

type Check = (schema: Record<string, unknown>, data: unknown, value: unknown) => boolean

const regexes = new Map<string, RegExp>()
function regex(pattern: unknown): RegExp {
  if (typeof pattern !== 'string') throw unsure
  let compiled = regexes.get(pattern)
  if (compiled === undefined) {
    try {
      compiled = new RegExp(pattern, 'u')
    } catch {
      throw unsure
    }
    if (regexes.size > 1000) regexes.clear()
    regexes.set(pattern, compiled)
  }
  return compiled
}

function typeMatches(type: unknown, data: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof data === 'string'
    case 'number':
      return typeof data === 'number' && Number.isFinite(data)
    case 'integer':
      return typeof data === 'number' && Number.isInteger(data)
    case 'boolean':
      return typeof data === 'boolean'
    case 'null':
      return data === null
    case 'array':
      return Array.isArray(data)
    case 'object':
      return isPlainObject(data)
    default:
      throw unsure
  }
}

/** String length as ajv counts it (code points). */
function length(text: string): number {
  let n = 0
  for (const _ of text) n++
  return n
}

const number = (value: unknown): number => {
  if (typeof value !== 'number') throw unsure
  return value
}

const checks: Record<string, Check> = {
  type: (_s, data, type) => (Array.isArray(type) ? type.some((t) => typeMatches(t, data)) : typeMatches(type, data)),
  enum: (_s, data, values) => {
    if (!Array.isArray(values)) throw unsure
    return values.some((v) => jsonEqual(v, data))
  },
  const: (_s, data, value) => jsonEqual(value, data),
  // Numbers
  minimum: (_s, data, limit) => typeof data !== 'number' || data >= number(limit),
  maximum: (_s, data, limit) => typeof data !== 'number' || data <= number(limit),
  exclusiveMinimum: (_s, data, limit) => typeof data !== 'number' || data > number(limit),
  exclusiveMaximum: (_s, data, limit) => typeof data !== 'number' || data < number(limit),
  multipleOf: (_s, data, factor) => {
    if (typeof data !== 'number') return true
    // ajv compares the quotient with parseInt of it: beyond safe integers they disagree.
    const quotient = data / number(factor)
    if (Number.isInteger(quotient) && !Number.isSafeInteger(quotient)) throw unsure
    return Number.isInteger(quotient)
  },
  // Strings
  minLength: (_s, data, limit) => typeof data !== 'string' || length(data) >= number(limit),
  maxLength: (_s, data, limit) => typeof data !== 'string' || length(data) <= number(limit),
  pattern: (_s, data, pattern) => typeof data !== 'string' || regex(pattern).test(data),
  format: (_s, data, name) => {
    if (typeof name !== 'string' || !Object.hasOwn(fullFormats, name)) throw unsure
    const format = (fullFormats as Record<string, unknown>)[name]
    if (format instanceof RegExp) return typeof data !== 'string' || format.test(data)
    if (typeof format === 'function') return typeof data !== 'string' || Boolean(format(data))
    if (isPlainObject(format)) {
      const type = format['type'] ?? 'string'
      if (type === 'number' ? typeof data !== 'number' : typeof data !== 'string') return true
      const validate = format['validate']
      if (validate instanceof RegExp) return validate.test(String(data))
      if (typeof validate === 'function') return Boolean(validate(data))
    }
    throw unsure
  },
  // Arrays
  minItems: (_s, data, limit) => !Array.isArray(data) || data.length >= number(limit),
  maxItems: (_s, data, limit) => !Array.isArray(data) || data.length <= number(limit),
  uniqueItems: (_s, data, unique) => !Array.isArray(data) || unique !== true || data.every((item, i) => data.findIndex((other) => jsonEqual(other, item)) === i),
  items: (schema, data, items) => {
    if (!Array.isArray(data)) return true
    if (!Array.isArray(items)) return data.every((item) => valid(items, item))
    if (!items.every((itemSchema, i) => i >= data.length || valid(itemSchema, data[i]))) return false
    const rest = schema['additionalItems']
    return rest === undefined || data.slice(items.length).every((item) => valid(rest, item))
  },
  contains: (_s, data, contains) => !Array.isArray(data) || data.some((item) => valid(contains, item)),
  // Objects
  required: (_s, data, names) => {
    if (!isPlainObject(data)) return true
    if (!Array.isArray(names)) throw unsure
    return names.every((name) => typeof name === 'string' && Object.hasOwn(data, name))
  },
  properties: (_s, data, properties) => {
    if (!isPlainObject(data)) return true
    if (!isPlainObject(properties)) throw unsure
    return Object.entries(properties).every(([name, property]) => !Object.hasOwn(data, name) || valid(property, data[name]))
  },
  patternProperties: (_s, data, patterns) => {
    if (!isPlainObject(data)) return true
    if (!isPlainObject(patterns)) throw unsure
    return Object.entries(patterns).every(([pattern, property]) => Object.keys(data).every((name) => !regex(pattern).test(name) || valid(property, data[name])))
  },
  additionalProperties: (schema, data, additional) => {
    if (!isPlainObject(data)) return true
    const declared = isPlainObject(schema['properties']) ? schema['properties'] : {}
    const patterns = isPlainObject(schema['patternProperties']) ? Object.keys(schema['patternProperties']).map(regex) : []
    return Object.keys(data).every((name) => Object.hasOwn(declared, name) || patterns.some((p) => p.test(name)) || valid(additional, data[name]))
  },
  propertyNames: (_s, data, names) => !isPlainObject(data) || Object.keys(data).every((name) => valid(names, name)),
  minProperties: (_s, data, limit) => !isPlainObject(data) || Object.keys(data).length >= number(limit),
  maxProperties: (_s, data, limit) => !isPlainObject(data) || Object.keys(data).length <= number(limit),
  dependencies: (_s, data, dependencies) => {
    if (!isPlainObject(data)) return true
    if (!isPlainObject(dependencies)) throw unsure
    return Object.entries(dependencies).every(([name, dependency]) => {
      if (!Object.hasOwn(data, name)) return true
      if (Array.isArray(dependency)) return dependency.every((other) => typeof other === 'string' && Object.hasOwn(data, other))
      return valid(dependency, data)
    })
  },
  // Combinations
  allOf: (_s, data, schemas) => list(schemas).every((s) => valid(s, data)),
  anyOf: (_s, data, schemas) => list(schemas).some((s) => valid(s, data)),
  oneOf: (_s, data, schemas) => list(schemas).filter((s) => valid(s, data)).length === 1,
  not: (_s, data, schema) => !valid(schema, data),
  if: (schema, data, condition) => {
    const branch = valid(condition, data) ? schema['then'] : schema['else']
    return branch === undefined || valid(branch, data)
  },
}

function list(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw unsure
  return value
}

function valid(schema: unknown, data: unknown): boolean {
  if (schema === true) return true
  if (schema === false) return false
  if (!isPlainObject(schema)) throw unsure
  for (const [keyword, value] of Object.entries(schema)) {
    if (annotations.has(keyword) || companions.has(keyword)) continue
    const check = checks[keyword]
    if (check === undefined) throw unsure // $ref, or a keyword this walk does not know
    if (!check(schema, data, value)) return false
  }
  return true
}
