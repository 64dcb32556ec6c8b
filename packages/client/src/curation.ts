/**
 * Curation: `producers.metrics_platform_client.curation` of a stream, rules an event's values
 * must pass to be sent: `{ <attribute>: { <operator>: operand, … }, … }`. Every rule of every
 * attribute must pass; a missing or null value fails. Attributes are looked up as top-level
 * fields (`action`) or, for contextual attributes, split at their first `_`
 * (`performer_edit_count` is `performer.edit_count`).
 *
 * Operators, as Wikimedia's clients name them: equals, not_equals, greater_than, less_than,
 * greater_than_or_equals, less_than_or_equals (numbers, or dates as ISO 8601 strings), in,
 * not_in (the value among a list), contains, does_not_contain (a list or string value holding
 * the operand), contains_all, contains_any (a list value and a list operand). Also accepted:
 * `not_contains` (how the JS client's docs spell does_not_contain) and `is_equals` (how the
 * Java client reads equals). An unknown operator or a malformed operand fails the event and
 * says why: a rule that cannot be checked must not let everything through.
 */
import { describe } from './sampling.ts'

export type CurationVerdict = { pass: true } | { pass: false; reason: string }

type Check = (value: unknown, operand: unknown) => boolean | string

const operators: Record<string, Check> = {
  equals: (value, operand) => same(value, operand),
  not_equals: (value, operand) => !same(value, operand),
  greater_than: (value, operand) => compare(value, operand, (a, b) => a > b),
  less_than: (value, operand) => compare(value, operand, (a, b) => a < b),
  greater_than_or_equals: (value, operand) => compare(value, operand, (a, b) => a >= b),
  less_than_or_equals: (value, operand) => compare(value, operand, (a, b) => a <= b),
  in: (value, operand) => (Array.isArray(operand) ? operand.some((o) => same(value, o)) : 'the operand must be a list'),
  not_in: (value, operand) => (Array.isArray(operand) ? !operand.some((o) => same(value, o)) : 'the operand must be a list'),
  contains: (value, operand) => holds(value, operand),
  does_not_contain: (value, operand) => {
    const found = holds(value, operand)
    return typeof found === 'string' ? found : !found
  },
  contains_all: (value, operand) => {
    if (!Array.isArray(value)) return 'the value must be a list'
    return Array.isArray(operand) ? operand.every((o) => value.some((v) => same(v, o))) : 'the operand must be a list'
  },
  contains_any: (value, operand) => {
    if (!Array.isArray(value)) return 'the value must be a list'
    return Array.isArray(operand) ? operand.some((o) => value.some((v) => same(v, o))) : 'the operand must be a list'
  },
}
const aliases: Record<string, string> = { not_contains: 'does_not_contain', is_equals: 'equals' }

/** Whether an event passes a stream's curation rules (`rules` as the stream config has it). */
export function curate(event: Record<string, unknown>, rules: unknown): CurationVerdict {
  if (rules === undefined || rules === null) return { pass: true }
  if (typeof rules !== 'object' || Array.isArray(rules)) return { pass: false, reason: `invalid curation config: it must be an object of attributes, not ${describe(rules)}` }
  for (const [attribute, checks] of Object.entries(rules)) {
    if (typeof checks !== 'object' || checks === null || Array.isArray(checks)) return { pass: false, reason: `invalid curation config for ${attribute}: it must be an object of operators, not ${describe(checks)}` }
    const value = attributeValue(event, attribute)
    for (const [name, operand] of Object.entries(checks)) {
      const check = operators[aliases[name] ?? name]
      if (check === undefined) return { pass: false, reason: `invalid curation config for ${attribute}: unknown operator ${name} (known: ${Object.keys(operators).join(', ')})` }
      if (value === undefined || value === null) return { pass: false, reason: `curated out: ${attribute} is missing` }
      const result = check(value, operand)
      if (typeof result === 'string') return { pass: false, reason: `curated out: ${attribute} ${name} ${describe(operand)}: ${result}` }
      if (!result) return { pass: false, reason: `curated out: ${attribute} ${name} ${describe(operand)} does not hold for ${describe(value)}` }
    }
  }
  return { pass: true }
}

/** A top-level field, else a contextual attribute (`<primary>_<secondary>`, split at the first `_`). */
export function attributeValue(event: Record<string, unknown>, attribute: string): unknown {
  if (Object.hasOwn(event, attribute)) return event[attribute]
  const cut = attribute.indexOf('_')
  if (cut <= 0) return undefined
  const group = event[attribute.slice(0, cut)]
  if (typeof group !== 'object' || group === null || Array.isArray(group)) return undefined
  const key = attribute.slice(cut + 1)
  return Object.hasOwn(group, key) ? (group as Record<string, unknown>)[key] : undefined
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]))
  return false
}

const isoDate = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

/** Numbers with numbers (numeric strings in the config count), dates with dates. */
function compare(value: unknown, operand: unknown, holds: (a: number, b: number) => boolean): boolean | string {
  if (typeof value === 'number') {
    const b = typeof operand === 'number' ? operand : typeof operand === 'string' && operand.trim() !== '' ? Number(operand) : Number.NaN
    return Number.isFinite(b) ? holds(value, b) : 'the operand must be a number'
  }
  if (typeof value === 'string' && isoDate.test(value)) {
    const a = Date.parse(value)
    const b = typeof operand === 'string' && isoDate.test(operand) ? Date.parse(operand) : Number.NaN
    if (Number.isNaN(a)) return 'the value is not a valid date'
    return Number.isNaN(b) ? 'the operand must be an ISO 8601 date' : holds(a, b)
  }
  return 'the value must be a number or an ISO 8601 date'
}

function holds(value: unknown, operand: unknown): boolean | string {
  if (Array.isArray(value)) return value.some((v) => same(v, operand))
  if (typeof value === 'string') return typeof operand === 'string' ? value.includes(operand) : 'the operand must be a string'
  return 'the value must be a list or a string'
}
