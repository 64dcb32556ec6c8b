import semver from 'semver'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, jsonEqual, type JsonObject } from '../core/objects.ts'
import { childPointer, renderValue } from './rules-pointer.ts'

/**
 * Stable ids of compatibility problems. Tools and tests branch on these, never on messages;
 * docs/schema-rules.md documents each one.
 */
export const compatRules = [
  'property-removed',
  'required-added',
  'required-removed',
  'enum-value-removed',
  'type-changed',
  'value-changed',
  'kind-changed',
  'keyword-removed',
  'keyword-added',
  'entry-removed',
  'max-length-reduced',
] as const

export type CompatRule = (typeof compatRules)[number]

export interface CompatProblem {
  rule: CompatRule
  /** JSON Pointer into the schema, e.g. `/properties/meta/required`. */
  path: string
  oldValue: unknown
  newValue: unknown
  /** Says what changed and why that breaks readers or writers of the older version. */
  message: string
}

export interface CompatResult {
  compatible: boolean
  problems: CompatProblem[]
}

/**
 * Which jsonschema-tools release's rule: `1.3` (1.3.0 and later) also lets `maxLength` change
 * between versions of one major; `1.2` does not. A repository's pin decides (toolsRuleFor).
 */
export type CompatRules = '1.2' | '1.3'

/** The rule of the newest jsonschema-tools release: used when a repository pins none. */
export const defaultCompatRules: CompatRules = '1.3'

export interface CompatOptions {
  /** jsonschema-tools' rule to follow (default: 1.3). */
  rules?: CompatRules
  /**
   * Also refuse keywords that a newer version adds to a node the older version already had
   * (a new `enum`, `maxLength`, `pattern`, `additionalProperties: false`, …). jsonschema-tools
   * only looks at the keys of the older schema, so it lets such narrowing through; `strict`
   * catches it. With the 1.3 rule it also refuses a smaller `maxLength` (rule
   * `max-length-reduced`), which 1.3 lets through. Default false, which matches jsonschema-tools.
   */
  strict?: boolean
}

/** The only keywords that may change freely between versions of one major (jsonschema-tools' FIELDS_ALLOWED_TO_CHANGE). */
const freeKeywords: Record<CompatRules, ReadonlySet<string>> = {
  '1.2': new Set(['$id', 'description', 'examples']),
  '1.3': new Set(['$id', 'description', 'examples', 'maxLength']),
}

/** Keywords a newer version may add without rejecting events the older one accepted. */
const annotationKeywords = new Set([
  ...freeKeywords['1.2'],
  '$schema',
  '$comment',
  'title',
  'default',
  'readOnly',
  'writeOnly',
  'deprecated',
  'properties',
  'definitions',
  '$defs',
  'required',
])

const schemaKeywords = new Set([
  'items',
  'additionalItems',
  'additionalProperties',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
])
const schemaListKeywords = new Set(['allOf', 'anyOf', 'oneOf'])
const schemaMapKeywords = new Set(['patternProperties', 'definitions', '$defs'])

const withinMajor = 'within a major version'

/**
 * Checks that `newSchema` may follow `oldSchema` within one major version, by Wikimedia's
 * rule (jsonschema-tools `schema-version-compatibility`): every key of the old schema must
 * exist in the new one with a compatible value, recursively; only `$id`, `description` and
 * `examples` may change; `required` must stay the same set (a missing list counts as empty);
 * `enum` may only grow. The net effect is that only new optional properties can be added.
 * All problems are collected, not just the first.
 *
 * @example
 * const { compatible, problems } = checkCompatibility(v1_0_0, v1_1_0)
 * if (!compatible) for (const p of problems) console.log(`${p.rule} ${p.path}: ${p.message}`)
 */
export function checkCompatibility(oldSchema: unknown, newSchema: unknown, options: CompatOptions = {}): CompatResult {
  const walker = new CompatWalker(options.strict === true, options.rules ?? defaultCompatRules)
  walker.schema(oldSchema, newSchema, '')
  return { compatible: walker.problems.length === 0, problems: walker.problems }
}

class CompatWalker {
  readonly problems: CompatProblem[] = []
  private readonly free: ReadonlySet<string>
  constructor(
    private readonly strict: boolean,
    private readonly rules: CompatRules,
  ) {
    this.free = freeKeywords[rules]
  }

  private report(rule: CompatRule, path: string, oldValue: unknown, newValue: unknown, message: string): void {
    this.problems.push({ rule, path, oldValue, newValue, message })
  }

  schema(oldNode: unknown, newNode: unknown, path: string): void {
    if (isPlainObject(oldNode) && isPlainObject(newNode)) this.schemaObject(oldNode, newNode, path)
    else this.value(oldNode, newNode, path)
  }

  private schemaObject(oldNode: JsonObject, newNode: JsonObject, path: string): void {
    for (const key of Object.keys(oldNode)) {
      if (key === 'maxLength' && this.strict && this.rules === '1.3') this.maxLength(oldNode[key], newNode[key], childPointer(path, key))
      if (this.free.has(key) || key === 'required') continue
      const at = childPointer(path, key)
      const oldValue = oldNode[key]
      if (!Object.hasOwn(newNode, key)) {
        if (key === 'properties' && isPlainObject(oldValue)) {
          for (const name of Object.keys(oldValue)) this.propertyRemoved(childPointer(at, name), oldValue[name])
        } else {
          this.report(
            'keyword-removed',
            at,
            oldValue,
            undefined,
            `keyword "${key}" (${renderValue(oldValue)}) was removed at ${at || '/'}; ${withinMajor} every keyword of the older schema must stay with the same value`,
          )
        }
        continue
      }
      const newValue = newNode[key]
      if (key === 'type') this.type(oldValue, newValue, at)
      else if (key === 'enum') this.enum(oldValue, newValue, at)
      else if (key === 'properties') this.schemaMap(oldValue, newValue, at, 'property-removed')
      else if (schemaMapKeywords.has(key)) this.schemaMap(oldValue, newValue, at, 'entry-removed')
      else if (schemaListKeywords.has(key)) this.schemaList(oldValue, newValue, at)
      else if (schemaKeywords.has(key)) {
        if (Array.isArray(oldValue) && Array.isArray(newValue)) this.schemaList(oldValue, newValue, at)
        else this.schema(oldValue, newValue, at)
      } else this.value(oldValue, newValue, at)
    }
    if (Object.hasOwn(oldNode, 'required') || Object.hasOwn(newNode, 'required')) {
      this.required(oldNode.required, newNode.required, childPointer(path, 'required'))
    }
    if (this.strict) {
      for (const key of Object.keys(newNode)) {
        if (Object.hasOwn(oldNode, key) || annotationKeywords.has(key)) continue
        const at = childPointer(path, key)
        this.report(
          'keyword-added',
          at,
          undefined,
          newNode[key],
          `keyword "${key}" (${renderValue(newNode[key])}) was added at ${at}; it can reject events that the older version accepted`,
        )
      }
    }
  }

  /** Strict, with the 1.3 rule: a smaller maxLength rejects strings the older version took. */
  private maxLength(oldValue: unknown, newValue: unknown, at: string): void {
    if (typeof oldValue !== 'number' || typeof newValue !== 'number' || newValue >= oldValue) return
    this.report(
      'max-length-reduced',
      at,
      oldValue,
      newValue,
      `maxLength at ${at} went down from ${oldValue} to ${newValue}; strings the older version accepted may be rejected (jsonschema-tools 1.3 allows any maxLength change; --strict does not allow a smaller one)`,
    )
  }

  private propertyRemoved(at: string, oldValue: unknown): void {
    this.report(
      'property-removed',
      at,
      oldValue,
      undefined,
      `property ${at} was removed; ${withinMajor} only new optional properties may be added, and consumers of the older version still read this one`,
    )
  }

  private type(oldValue: unknown, newValue: unknown, at: string): void {
    const oldTypes = typeSet(oldValue)
    const newTypes = typeSet(newValue)
    if (oldTypes === undefined || newTypes === undefined) return this.value(oldValue, newValue, at)
    if (oldTypes.length === newTypes.length && oldTypes.every((t) => newTypes.includes(t))) return
    this.report(
      'type-changed',
      at,
      oldValue,
      newValue,
      `type at ${at} changed from ${renderValue(oldValue)} to ${renderValue(newValue)}; a field keeps its type ${withinMajor}, because stored data and consumers depend on it`,
    )
  }

  private enum(oldValue: unknown, newValue: unknown, at: string): void {
    if (!Array.isArray(oldValue) || !Array.isArray(newValue)) return this.value(oldValue, newValue, at)
    for (const item of oldValue) {
      if (newValue.some((candidate) => jsonEqual(candidate, item))) continue
      this.report(
        'enum-value-removed',
        at,
        oldValue,
        newValue,
        `enum value ${renderValue(item)} was removed at ${at}; events that use it would be rejected. Enums may only grow ${withinMajor}`,
      )
    }
  }

  private required(oldValue: unknown, newValue: unknown, at: string): void {
    const oldNames = oldValue ?? []
    const newNames = newValue ?? []
    if (!Array.isArray(oldNames) || !Array.isArray(newNames)) return this.value(oldValue, newValue, at)
    for (const name of newNames) {
      if (oldNames.includes(name)) continue
      this.report(
        'required-added',
        at,
        oldValue,
        newValue,
        `property ${renderValue(name)} became required at ${at}; events valid under the older version may lack it. ${capitalize(withinMajor)} the required list must stay the same, so add the property as optional`,
      )
    }
    for (const name of oldNames) {
      if (newNames.includes(name)) continue
      this.report(
        'required-removed',
        at,
        oldValue,
        newValue,
        `property ${renderValue(name)} is no longer required at ${at}; consumers of the older version rely on it being present. ${capitalize(withinMajor)} the required list must stay the same`,
      )
    }
  }

  private schemaMap(oldValue: unknown, newValue: unknown, at: string, removedRule: CompatRule): void {
    if (!isPlainObject(oldValue) || !isPlainObject(newValue)) return this.value(oldValue, newValue, at)
    for (const name of Object.keys(oldValue)) {
      const entry = childPointer(at, name)
      if (!Object.hasOwn(newValue, name)) {
        if (removedRule === 'property-removed') this.propertyRemoved(entry, oldValue[name])
        else this.entryRemoved(entry, oldValue[name])
      } else this.schema(oldValue[name], newValue[name], entry)
    }
  }

  private schemaList(oldValue: unknown, newValue: unknown, at: string): void {
    if (!Array.isArray(oldValue) || !Array.isArray(newValue)) return this.value(oldValue, newValue, at)
    oldValue.forEach((item, index) => {
      const entry = childPointer(at, index)
      if (index >= newValue.length) this.entryRemoved(entry, item)
      else this.schema(item, newValue[index], entry)
    })
  }

  private entryRemoved(at: string, oldValue: unknown): void {
    this.report(
      'entry-removed',
      at,
      oldValue,
      undefined,
      `${at} was removed; lists and maps of subschemas may only grow ${withinMajor}`,
    )
  }

  private freeList(): string {
    return this.rules === '1.3' ? '$id, description, examples and maxLength' : '$id, description and examples'
  }

  private value(oldValue: unknown, newValue: unknown, at: string): void {
    if (jsonEqual(oldValue, newValue)) return
    const oldKind = kindOf(oldValue)
    const newKind = kindOf(newValue)
    if (oldKind !== newKind) {
      this.report(
        'kind-changed',
        at,
        oldValue,
        newValue,
        `${at || 'the schema'} changed from ${article(oldKind)} (${renderValue(oldValue)}) to ${article(newKind)} (${renderValue(newValue)}); only ${this.freeList()} may change ${withinMajor}`,
      )
      return
    }
    this.report(
      'value-changed',
      at,
      oldValue,
      newValue,
      `${at || 'the schema'} changed from ${renderValue(oldValue)} to ${renderValue(newValue)}; only ${this.freeList()} may change ${withinMajor}`,
    )
  }
}

function typeSet(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value) && value.every((t) => typeof t === 'string')) return [...new Set(value as string[])]
  return undefined
}

function kindOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

function article(kind: string): string {
  return /^[aeiou]/.test(kind) ? `an ${kind}` : `a ${kind}`
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}

export interface SchemaVersion {
  /** Semantic version, e.g. `1.2.0` (from the file name or the `$id`). */
  version: string
  schema: unknown
}

export interface VersionPairResult {
  major: number
  from: string
  to: string
  result: CompatResult
}

/**
 * Checks each consecutive pair of versions of one schema title within the same major, the
 * way jsonschema-tools does: versions are sorted by semver, a new major starts a new chain
 * and is never compared with the previous one.
 *
 * @example
 * checkVersionSeries([{ version: '1.0.0', schema: a }, { version: '1.1.0', schema: b }, { version: '2.0.0', schema: c }])
 * // → one result, 1.0.0 → 1.1.0
 */
export function checkVersionSeries(
  versions: readonly SchemaVersion[],
  options: CompatOptions = {},
): VersionPairResult[] {
  for (const { version } of versions) {
    if (semver.valid(version) === null) {
      throw new EventplaneError('EVP_SCHEMA_VERSION_INVALID', `${JSON.stringify(version)} is not a semantic version`, {
        details: { version },
      })
    }
  }
  const sorted = [...versions].sort((a, b) => semver.compare(a.version, b.version))
  const results: VersionPairResult[] = []
  for (let i = 1; i < sorted.length; i++) {
    const older = sorted[i - 1]!
    const newer = sorted[i]!
    const major = semver.major(newer.version)
    if (semver.major(older.version) !== major) continue
    results.push({
      major,
      from: older.version,
      to: newer.version,
      result: checkCompatibility(older.schema, newer.schema, options),
    })
  }
  return results
}
