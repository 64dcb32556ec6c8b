import { createRequire } from 'node:module'
import { Ajv, type AnySchemaObject, type ErrorObject, type Options as AjvOptions, type ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { isPlainObject } from '../core/objects.ts'
import { walkSchemas } from './rules-walk.ts'

/**
 * The ajv instances behind the lint rules `schema-is-valid`, `schema-is-secure` and
 * `schema-examples-are-valid`. Options are lenient (`strict: false`) because the rules judge
 * schemas as jsonschema-tools does, not by ajv 8's stricter authoring checks.
 */

const require = createRequire(import.meta.url)
const draft07MetaSchema = require('ajv/lib/refs/json-schema-draft-07.json') as AnySchemaObject
// ajv 8's own copy of ajv's "secure schema" meta-schema: pattern and format need maxLength,
// patternProperties needs propertyNames.maxLength, uniqueItems on objects needs maxItems.
const secureMetaSchema = require('ajv/lib/refs/json-schema-secure.json') as AnySchemaObject

const addFormats = formats.default
const draft07Id = 'http://json-schema.org/draft-07/schema'

export type SchemaDraft = 'draft-07' | '2020-12'

/** Materialized WMF schemas say draft-07 (often with https); anything naming 2020-12 uses that draft. */
export function draftOf(schema: unknown): SchemaDraft {
  const uri = isPlainObject(schema) && typeof schema.$schema === 'string' ? schema.$schema : ''
  return /json-schema\.org\/draft\/2020-12\/schema/.test(uri) ? '2020-12' : 'draft-07'
}

/**
 * An ajv instance for one draft, with formats, that accepts draft-07's https meta-schema URI.
 * `useDefaults` fills schema defaults into validated data (the intake wants that; lint does not).
 */
export function newAjv(draft: SchemaDraft, allErrors: boolean, useDefaults = false, unicode = true, extra: AjvOptions = {}): Ajv {
  const options: AjvOptions = { ...extra, strict: false, allErrors, logger: false, useDefaults, unicode }
  const ajv = draft === '2020-12' ? new Ajv2020(options) : new Ajv(options)
  if (draft === 'draft-07') {
    // Both http and https name draft-07; ajv only knows the http id, so register the https
    // one too instead of letting `$schema: https://…` fail as an unknown meta-schema.
    ajv.addMetaSchema({ ...draft07MetaSchema, $id: 'https://json-schema.org/draft-07/schema' })
  }
  addFormats(ajv)
  // The full date and time checks are the costliest part of validating an event (two
  // date-times per event, about 0.8 µs each), and their inputs repeat: meta.dt is the same
  // for every event of a request. Same verdicts, remembered.
  for (const name of ['date-time', 'date', 'time'] as const) {
    const format = fullFormats[name] as { validate: (value: string) => boolean; compare?: (a: string, b: string) => number | undefined }
    // Repeated values (meta.dt of every event of a request) are remembered; a new date-time in
    // the form toISOString writes is checked by a parser that says yes only where the full check
    // says yes, which decides the rest.
    const check = format.validate
    const validate = remembered(name === 'date-time' ? (value: string) => canonicalUtcDateTime(value) ?? check(value) : check)
    ajv.addFormat(name, { type: 'string', validate, ...(format.compare ? { compare: format.compare } : {}) })
  }
  return ajv
}

const daysInMonth = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * True when `value` is a valid date-time in the form toISOString writes (`2026-11-30T16:02:34Z`,
 * with or without a fraction of a second); undefined for anything else, valid or not (another
 * offset, a lower-case t, a leap second), which the full check decides. Never true where
 * ajv-formats' full `date-time` says false (test/schemas/date-time.test.ts compares them).
 */
export function canonicalUtcDateTime(value: string): true | undefined {
  const n = value.length
  if (n < 20 || value.charCodeAt(n - 1) !== 90 || value.charCodeAt(4) !== 45 || value.charCodeAt(7) !== 45 || value.charCodeAt(10) !== 84 || value.charCodeAt(13) !== 58 || value.charCodeAt(16) !== 58) {
    return undefined
  }
  if (n > 20) {
    if (value.charCodeAt(19) !== 46 || n === 21) return undefined
    for (let i = 20; i < n - 1; i++) if (digit(value, i) < 0) return undefined
  }
  const year = digit(value, 0) * 1000 + digit(value, 1) * 100 + digit(value, 2) * 10 + digit(value, 3)
  const month = digit(value, 5) * 10 + digit(value, 6)
  const day = digit(value, 8) * 10 + digit(value, 9)
  const hour = digit(value, 11) * 10 + digit(value, 12)
  const minute = digit(value, 14) * 10 + digit(value, 15)
  const second = digit(value, 17) * 10 + digit(value, 18)
  // A non-digit counts -10,000, which no sum of the other digits lifts back to 0 or more.
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return undefined
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= (month === 2 && leap ? 29 : daysInMonth[month - 1]!) ? true : undefined
}

function digit(value: string, at: number): number {
  const d = value.charCodeAt(at) - 48
  return d >= 0 && d <= 9 ? d : -10_000
}

/** Remembers the verdicts of a string check, for the last few thousand distinct inputs. */
function remembered(check: (value: string) => boolean): (value: string) => boolean {
  const verdicts = new Map<string, boolean>()
  return (value) => {
    let verdict = verdicts.get(value)
    if (verdict === undefined) {
      verdict = check(value)
      if (verdicts.size >= 4096) verdicts.clear()
      if (value.length <= 64) verdicts.set(value, verdict)
    }
    return verdict
  }
}

/**
 * A validator compiled to check a schema's examples runs a few times: ajv's code optimisation,
 * a second meta-schema check (a rule of its own does that) and inlined references cost more to
 * compile than they save (measured on Wikimedia's primary repository: 440 ms → 270 ms for its
 * 83 versions, warm).
 */
const compileOnce: AjvOptions = { validateSchema: false, inlineRefs: false, code: { optimize: false } }

// Built on first use: importing the lint rules should not cost four ajv instances.
const instances = new Map<string, Ajv>()
function ajvFor(draft: SchemaDraft, purpose: 'meta' | 'data'): Ajv {
  const key = `${draft} ${purpose}`
  let ajv = instances.get(key)
  if (ajv === undefined) {
    ajv = newAjv(draft, purpose === 'meta', false, true, purpose === 'meta' ? {} : compileOnce)
    instances.set(key, ajv)
  }
  return ajv
}

let validateSecure: ValidateFunction | undefined

/** Errors of the schema against its draft's meta-schema; empty when valid. */
export function metaSchemaErrors(schema: unknown): ErrorObject[] {
  const draft = draftOf(schema)
  const ajv = ajvFor(draft, 'meta')
  const validate =
    draft === '2020-12' ? ajv.getSchema('https://json-schema.org/draft/2020-12/schema')! : ajv.getSchema(draft07Id)!
  return validate(schema) ? [] : [...(validate.errors ?? [])]
}

/** Errors of the schema against ajv's json-schema-secure meta-schema; empty when secure. */
export function secureSchemaErrors(schema: unknown): ErrorObject[] {
  validateSecure ??= ajvFor('draft-07', 'meta').compile(secureMetaSchema)
  return validateSecure(schema) ? [] : [...(validateSecure.errors ?? [])]
}

/** Description of the secure meta-schema's rule for a keyword, e.g. why `pattern` needs `maxLength`. */
export function secureRuleReason(keyword: string): string | undefined {
  const dependencies = secureMetaSchema.dependencies as Record<string, { description?: string }> | undefined
  return dependencies?.[keyword]?.description
}

/**
 * Compiles a schema for validating data. The root `$id` is left out so the same schema can
 * be compiled again (ajv refuses a second schema with a known id), and the compiled function
 * is dropped from ajv's cache afterwards so linting many schemas does not grow memory.
 *
 * Materialized schemas keep the `$id` of every fragment they inlined, often twice (two
 * fields of the same entity type), which ajv 8 refuses as ambiguous. With no `$ref` left
 * those ids name nothing, so they are dropped too; a schema that still has a `$ref` keeps them.
 */
export function compileForData(schema: Record<string, unknown>): ValidateFunction {
  return compileWith(ajvFor(draftOf(schema), 'data'), schema)
}

/** Compiles `schema` (see compileForData for the `$id` handling) and leaves nothing in ajv's cache. */
export function compileWith(ajv: Ajv, schema: Record<string, unknown>): ValidateFunction {
  const { $id: _id, ...withoutId } = schema
  const compiled = hasRef(withoutId) ? withoutId : withoutNestedIds(withoutId)
  try {
    return ajv.compile(compiled)
  } finally {
    ajv.removeSchema(compiled)
  }
}

function hasRef(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasRef)
  if (!isPlainObject(value)) return false
  return Object.entries(value).some(([key, child]) => (key === '$ref' && typeof child === 'string') || hasRef(child))
}

function withoutNestedIds(schema: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(schema)
  walkSchemas(copy, (node, path) => {
    if (path !== '' && typeof node.$id === 'string') delete node.$id
  })
  return copy
}

export function errorsText(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((error) => `${error.instancePath || '(root)'} ${error.message ?? error.keyword}`).join('; ')
}
