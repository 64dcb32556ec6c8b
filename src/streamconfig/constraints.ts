import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, setOwn, type JsonObject } from '../core/objects.ts'

/** Constraints nest at most this deep, as in EventStreamConfig. */
export const maxConstraintDepth = 10

/**
 * A partial description of settings: `{destination_event_service: 'eventgate-main'}`,
 * `{producers: {metrics_platform_client: {provide_values: ['page_id']}}}`. Built by hand or
 * parsed from the MediaWiki `constraints` parameter with {@link parseMwConstraints}.
 */
export type Constraints = Readonly<Record<string, unknown>>

/**
 * Whether `settings` contain everything in `constraints` (the `stream` constraint is handled
 * by the caller, because it is matched against the entry's key or regex).
 *
 * - Scalars compare as strings (`0.5` matches `'0.5'`), so values parsed from a query string work.
 * - A boolean setting matches `true`, `'true'`, `'1'`, `1` when true and `false`, `'false'`,
 *   `'0'`, `0`, `''` when false. (PHP only accepts `'1'` and `''`, from its string casts.)
 * - A list setting matches a constraint list that is a subset of it, or a single scalar that is
 *   one of its items. (PHP compares lists only to lists, and stops checking other constraints
 *   after the first list; we check them all.)
 * - An absent or null setting matches nothing.
 */
export function matchesConstraints(settings: unknown, constraints: Constraints, depth = maxConstraintDepth): boolean {
  if (!isPlainObject(settings)) return false
  for (const [key, expected] of Object.entries(constraints)) {
    if (!Object.hasOwn(settings, key)) return false
    if (!matchesValue(settings[key], expected, depth)) return false
  }
  return true
}

function matchesValue(actual: unknown, expected: unknown, depth: number): boolean {
  if (actual === null || actual === undefined) return false
  if (isPlainObject(expected)) return depth > 1 && isPlainObject(actual) && matchesConstraints(actual, expected, depth - 1)
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.every((item) => actual.some((have) => matchesScalar(have, item)))
  }
  if (Array.isArray(actual)) return actual.some((have) => matchesScalar(have, expected))
  return matchesScalar(actual, expected)
}

const trueWords = new Set(['true', '1'])
const falseWords = new Set(['false', '0', ''])

function matchesScalar(actual: unknown, expected: unknown): boolean {
  if (typeof expected === 'object' || typeof actual === 'object') return false
  if (typeof actual === 'boolean') return (actual ? trueWords : falseWords).has(String(expected))
  if (typeof actual === 'number' && typeof expected === 'string' && expected.trim() !== '' && Number(expected) === actual) {
    return true
  }
  return String(actual) === String(expected)
}

/** Throws EVP_BAD_REQUEST when constraints nest deeper than {@link maxConstraintDepth}. */
export function checkConstraintDepth(constraints: Constraints, depth = maxConstraintDepth): void {
  for (const value of Object.values(constraints)) {
    if (!isPlainObject(value)) continue
    if (depth <= 1) throw tooDeep()
    checkConstraintDepth(value, depth - 1)
  }
}

function tooDeep(): EventplaneError {
  return new EventplaneError('EVP_BAD_REQUEST', `constraints nest deeper than ${maxConstraintDepth} levels`, {
    details: { limit: maxConstraintDepth },
  })
}

/**
 * Parses the MediaWiki `constraints` parameter, already split on `|`, the way
 * `wfCgiToArray` + `array_merge_recursive` do: each item is `key=value`, `key[sub]=value` nests,
 * `key[]=value` appends to a list, and a key given twice becomes a list of its values.
 * Keys and values are URL-decoded once more, as PHP's `urldecode` does.
 *
 * @example
 * parseMwConstraints(['destination_event_service=eventgate-main', 'sample[unit]=session'])
 * // → {destination_event_service: 'eventgate-main', sample: {unit: 'session'}}
 */
export function parseMwConstraints(items: readonly string[]): JsonObject {
  const out: JsonObject = {}
  for (const item of items) {
    for (const bit of item.split('&')) {
      if (bit === '') continue
      const eq = bit.indexOf('=')
      const rawKey = eq === -1 ? bit : bit.slice(0, eq)
      const value = urldecode(eq === -1 ? '' : bit.slice(eq + 1))
      const path = parseKeyPath(urldecode(rawKey), bit)
      insert(out, path, value, bit)
    }
  }
  return out
}

function parseKeyPath(key: string, bit: string): Array<string | null> {
  const match = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key)
  if (match === null) throw badConstraint(bit, 'expected key=value, key[sub]=value or key[]=value')
  const path: Array<string | null> = [match[1]!]
  for (const [, part] of match[2]!.matchAll(/\[([^[\]]*)\]/g)) path.push(part === '' ? null : part!)
  if (path.length > maxConstraintDepth) throw tooDeep()
  if (path.slice(0, -1).includes(null)) throw badConstraint(bit, '[] may only come last')
  return path
}

/** `null` in a path means "append to the list here". */
function insert(target: JsonObject, path: ReadonlyArray<string | null>, value: string, bit: string): void {
  const [head, ...rest] = path as [string, ...Array<string | null>]
  const next = rest[0]
  if (next === undefined) {
    const have = own(target, head)
    if (have === undefined) setOwn(target, head, value)
    else if (typeof have === 'string') setOwn(target, head, [have, value])
    else if (Array.isArray(have)) have.push(value)
    else throw badConstraint(bit, `${head} is given both as a value and as nested keys`)
    return
  }
  if (next === null) {
    const have = own(target, head)
    if (have === undefined) setOwn(target, head, [value])
    else if (typeof have === 'string') setOwn(target, head, [have, value])
    else if (Array.isArray(have)) have.push(value)
    else throw badConstraint(bit, `${head} is given both as a list and as nested keys`)
    return
  }
  const have = own(target, head)
  if (have === undefined) {
    const child: JsonObject = {}
    setOwn(target, head, child)
    insert(child, rest, value, bit)
  } else if (isPlainObject(have)) {
    insert(have, rest, value, bit)
  } else {
    throw badConstraint(bit, `${head} is given both as a value and as nested keys`)
  }
}

// Never read through the prototype: `__proto__[x]=1` must not reach Object.prototype.
function own(target: JsonObject, key: string): unknown {
  return Object.hasOwn(target, key) ? target[key] : undefined
}

function urldecode(text: string): string {
  const plus = text.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(plus)
  } catch {
    return plus
  }
}

function badConstraint(bit: string, why: string): EventplaneError {
  return new EventplaneError('EVP_BAD_REQUEST', `invalid constraint ${JSON.stringify(bit)}: ${why}`, {
    details: { constraint: bit },
  })
}
