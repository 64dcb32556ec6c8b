import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, jsonEqual, setOwn, type JsonObject } from '../core/objects.ts'

/**
 * Flattens `allOf` into one schema, with the semantics jsonschema-tools gets from
 * json-schema-merge-allof (`ignoreAdditionalProperties: true`), so our materialized versions
 * equal Wikimedia's:
 * - `properties` are unioned, a property in several members is merged recursively;
 * - `required` becomes the sorted union; `enum` the sorted intersection;
 * - `title`, `description`, `$id`, `$schema`, `default` keep the first value (the schema's own
 *   before its `allOf` members);
 * - lower bounds take the largest value, upper bounds the smallest;
 * - `examples` are unioned;
 * - values that cannot be combined (two different `type`s, `format`s, `const`s) are an
 *   EVP_SCHEMA_MERGE_CONFLICT naming the keyword and the values.
 * The whole tree is walked, so `allOf` nested in properties, items or definitions is merged too.
 */
export function mergeAllOf(schema: JsonObject): JsonObject {
  return mergeRoot(schema, '') as JsonObject
}

type Schema = JsonObject | boolean

const propertyKeywords = ['properties', 'patternProperties', 'additionalProperties']
const groupKeywords = new Set(['properties', 'patternProperties', 'definitions', 'dependencies'])
const schemaKeywords = new Set(['additionalProperties', 'additionalItems', 'contains', 'propertyNames', 'not', 'items'])
const schemaArrayKeywords = new Set(['anyOf', 'oneOf'])
const firstWins = new Set(['$id', '$schema', '$ref', 'title', 'description', 'default', '$comment'])
const largest = new Set(['minLength', 'minimum', 'exclusiveMinimum', 'minItems', 'minProperties'])
const smallest = new Set(['maxLength', 'maximum', 'exclusiveMaximum', 'maxItems', 'maxProperties'])
/** Keywords whose array values are sets: member order does not make two values different. */
const setValued = new Set(['required', 'enum', 'type'])

function mergeRoot(schema: unknown, path: string): unknown {
  if (!isPlainObject(schema)) return schema
  return mergeSchemas(flattenAllOf(schema), path)
}

/** `[schema without allOf, ...each member flattened]`, depth first, like getAllOf. */
function flattenAllOf(schema: JsonObject): Schema[] {
  const allOf = schema['allOf']
  if (!Array.isArray(allOf)) return [schema]
  const { allOf: _ignored, ...rest } = schema
  const out: Schema[] = [rest]
  for (const member of allOf) {
    if (isPlainObject(member)) out.push(...flattenAllOf(member))
    else if (typeof member === 'boolean') out.push(member)
  }
  return out
}

function mergeSchemas(input: ReadonlyArray<unknown>, path: string): unknown {
  const defined = input.filter((s) => s !== undefined) as Schema[]
  if (defined.length === 0) return undefined
  if (defined.some((s) => s === false)) return false
  if (defined.every((s) => s === true)) return true
  const schemas = defined.filter(isPlainObject)
  if (schemas.some((s) => Array.isArray(s['allOf']))) return mergeSchemas(schemas.flatMap(flattenAllOf), path)

  const keys = unique(schemas.flatMap((s) => Object.keys(s)))
  const merged: JsonObject = {}
  if (keys.some((k) => propertyKeywords.includes(k))) Object.assign(merged, mergeProperties(schemas, path))

  for (const key of keys) {
    if (propertyKeywords.includes(key)) continue
    const values = uniqueValues(
      schemas.map((s) => s[key]).filter((v) => v !== undefined),
      key,
    )
    const at = `${path}/${key}`
    if (values.length === 1 && schemaArrayKeywords.has(key) && Array.isArray(values[0])) {
      setOwn(merged, key, (values[0] as unknown[]).map((s, i) => mergeSchemas([s], `${at}/${i}`)))
    } else if (values.length === 1 && !groupKeywords.has(key) && !schemaKeywords.has(key)) {
      setOwn(merged, key, values[0])
    } else if (key === 'pattern') {
      // Two patterns cannot become one regex; they stay side by side under allOf.
      merged['allOf'] = [...((merged['allOf'] as unknown[]) ?? []), ...values.map((pattern) => ({ pattern }))]
    } else {
      const value = resolve(key, values, at)
      if (value !== undefined) setOwn(merged, key, value)
    }
  }
  return merged
}

function resolve(key: string, values: unknown[], at: string): unknown {
  if (firstWins.has(key)) return values[0]
  if (largest.has(key)) return Math.max(...(values as number[]))
  if (smallest.has(key)) return Math.min(...(values as number[]))
  switch (key) {
    case 'type': {
      const sets = values.map((v) => (Array.isArray(v) ? v : [v]))
      const common = sets.reduce((a, b) => a.filter((t) => b.includes(t)))
      if (values.some(Array.isArray) && common.length > 0) return common.length === 1 ? common[0] : unique(common)
      return conflict(key, values, at)
    }
    case 'required':
      return unique((values as unknown[][]).flat()).sort()
    case 'enum': {
      const common = (values as unknown[][]).reduce((a, b) => a.filter((x) => b.some((y) => jsonEqual(x, y))))
      return common.length > 0 ? [...common].sort(compareScalars) : conflict(key, values, at)
    }
    case 'examples':
      return (values as unknown[][]).flat().filter((x, i, all) => all.findIndex((y) => jsonEqual(x, y)) === i)
    case 'uniqueItems':
      return values.some((v) => v === true)
    case 'multipleOf':
      return lcm(values as number[])
    case 'not':
      return { anyOf: values }
    case 'items':
      if (values.every((v) => isPlainObject(v) || typeof v === 'boolean')) return mergeSchemas(values, at)
      if (values.every(Array.isArray)) return mergeTuples(values as unknown[][], at)
      return conflict(key, values, at)
    case 'additionalItems':
    case 'contains':
    case 'propertyNames':
      return mergeSchemas(values, at)
    case 'definitions':
    case 'dependencies':
      return mergeGroup(values as JsonObject[], at)
    case 'anyOf':
    case 'oneOf':
      return mergeAlternatives(values as unknown[][], key, at)
    default:
      return conflict(key, values, at)
  }
}

function mergeProperties(schemas: JsonObject[], path: string): JsonObject {
  const members = uniqueObjects(
    schemas.map((s) => {
      const picked: JsonObject = {}
      for (const k of propertyKeywords) if (s[k] !== undefined) picked[k] = s[k]
      return picked
    }),
  ).map((m): JsonObject => {
    const member = m as JsonObject
    return { ...member, properties: isPlainObject(member['properties']) ? { ...member['properties'] } : undefined }
  })

  // A member whose additionalProperties is a schema constrains the other members' extra properties.
  for (const member of members) {
    const extra = member['additionalProperties']
    if (!isPlainObject(extra)) continue
    const own = Object.keys(member['properties'] ?? {})
    const patterns = Object.keys(isPlainObject(member['patternProperties']) ? member['patternProperties'] : {}).map((p) => new RegExp(p))
    for (const other of members) {
      if (other === member || other['properties'] === undefined) continue
      const props = other['properties'] as JsonObject
      for (const name of Object.keys(props)) {
        if (own.includes(name) || patterns.some((p) => p.test(name))) continue
        setOwn(props, name, mergeSchemas([props[name], extra], `${path}/properties/${name}`))
      }
    }
  }

  const out: JsonObject = {}
  const additional = mergeSchemas(members.map((m) => m['additionalProperties']), `${path}/additionalProperties`)
  if (!isEmptySchema(additional)) out['additionalProperties'] = additional

  const patternGroups = members.map((m) => m['patternProperties']).filter(isPlainObject)
  const patternProperties = mergeGroup(patternGroups, `${path}/patternProperties`)
  if (!isEmptySchema(patternProperties)) out['patternProperties'] = patternProperties

  const propertyGroups = members.map((m) => m['properties']).filter(isPlainObject)
  const properties = mergeGroup(propertyGroups, `${path}/properties`)
  if (!isEmptySchema(properties)) out['properties'] = properties
  return out
}

/** Merges maps of schemas (properties, definitions, …) key by key. */
function mergeGroup(groups: JsonObject[], path: string): JsonObject {
  const out: JsonObject = {}
  for (const key of unique(groups.flatMap((g) => Object.keys(g)))) {
    const values = uniqueObjects(groups.map((g) => g[key]).filter((v) => v !== undefined))
    if (values.every(Array.isArray)) {
      setOwn(out, key, unique((values as unknown[][]).flat()).sort())
      continue
    }
    setOwn(out, key, mergeSchemas(values, `${path}/${key}`))
  }
  return out
}

function mergeTuples(tuples: unknown[][], at: string): unknown[] {
  const length = Math.max(...tuples.map((t) => t.length))
  const out: unknown[] = []
  for (let i = 0; i < length; i++) {
    const atPosition = uniqueObjects(tuples.map((t) => t[i]).filter((v) => v !== undefined))
    if (atPosition.length !== 1) conflict('items', atPosition, `${at}/${i}`)
    out.push(mergeSchemas(atPosition, `${at}/${i}`))
  }
  return out
}

/** Several anyOf/oneOf lists: every combination of one branch from each, merged; the impossible dropped. */
function mergeAlternatives(lists: unknown[][], key: string, at: string): unknown[] {
  let combinations: unknown[][] = [[]]
  for (const list of lists) combinations = combinations.flatMap((c) => list.map((branch) => [...c, branch]))
  const merged = combinations.flatMap((combination) => {
    try {
      return [mergeSchemas(combination, at)]
    } catch {
      return []
    }
  })
  const distinct = uniqueObjects(merged)
  return distinct.length > 0 ? distinct : conflict(key, lists, at)
}

function conflict(key: string, values: unknown[], at: string): never {
  throw new EventplaneError(
    'EVP_SCHEMA_MERGE_CONFLICT',
    `allOf members disagree on "${key}" at ${at}: ${values.map((v) => JSON.stringify(v)).join(' vs ')}`,
    { details: { keyword: key, at, values } },
  )
}

function isEmptySchema(value: unknown): boolean {
  return value === undefined || (isPlainObject(value) && Object.keys(value).length === 0)
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)]
}

function uniqueObjects(items: unknown[]): unknown[] {
  return items.filter((x, i) => items.findIndex((y) => jsonEqual(x, y)) === i)
}

function uniqueValues(values: unknown[], key: string): unknown[] {
  if (!setValued.has(key)) return uniqueObjects(values)
  const asSet = (v: unknown) => (Array.isArray(v) ? [...v].map((x) => JSON.stringify(x)).sort() : v)
  return values.filter((x, i) => values.findIndex((y) => jsonEqual(asSet(x), asSet(y))) === i)
}

function compareScalars(a: unknown, b: unknown): number {
  const x = typeof a === 'string' ? a : JSON.stringify(a)
  const y = typeof b === 'string' ? b : JSON.stringify(b)
  return x < y ? -1 : x > y ? 1 : 0
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

function lcm(values: number[]): number {
  let factor = 1
  let ints = values
  while (ints.some((n) => !Number.isInteger(n))) {
    ints = ints.map((n) => n * 10)
    factor *= 10
  }
  return ints.reduce((a, b) => (a * b) / gcd(a, b)) / factor
}
