import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { quickValidate } from './quick-validate.ts'
import { compileForData, draftOf, errorsText, metaSchemaErrors, secureRuleReason, secureSchemaErrors } from './rules-ajv.ts'
import { parseSchemaId } from './rules-id.ts'
import { childPointer, renderValue } from './rules-pointer.ts'
import { walkSchemas } from './rules-walk.ts'

/**
 * Lint rules for materialized schemas. The `schema-*` ids are jsonschema-tools' robustness
 * test-case names, so a repository's `.jsonschema-tools.yaml` `skipSchemaTestCases` skips
 * the same checks here; the others are Eventplane's structure rules. Every rule is
 * documented with an example in docs/schema-rules.md.
 */
export const lintRules = {
  'schema-is-valid': { origin: 'jsonschema-tools', summary: 'valid against the draft-07 (or 2020-12) meta-schema' },
  'schema-is-secure': { origin: 'jsonschema-tools', summary: "passes ajv's json-schema-secure meta-schema" },
  'schema-snake-case-properties': { origin: 'jsonschema-tools', summary: 'property names match ^[$a-z]+[a-z0-9_]*$' },
  'schema-deterministic-types': { origin: 'jsonschema-tools', summary: 'every field has exactly one, fully known type' },
  'schema-required-properties-exist': { origin: 'jsonschema-tools', summary: 'every required name is a declared property' },
  'schema-examples-$schema-matches-schema-$id': { origin: 'jsonschema-tools', summary: 'examples name this schema' },
  'schema-examples-are-valid': { origin: 'jsonschema-tools', summary: 'every example validates against the schema' },
  'schema-enforced-numeric-bounds': { origin: 'jsonschema-tools', summary: 'numbers have minimum and maximum in bounds' },
  'title-matches-path': { origin: 'eventplane', summary: 'title equals the directory below the schema base' },
  'id-matches-title-and-version': { origin: 'eventplane', summary: '$id is /<title>/<semver>' },
  'required-common-fields': { origin: 'eventplane', summary: 'event schemas require $schema, meta and meta.stream' },
} as const

export type LintRule = keyof typeof lintRules
export type LintSeverity = 'error' | 'warning'

export interface LintFinding {
  rule: LintRule
  /** JSON Pointer into the schema. */
  path: string
  message: string
  severity: LintSeverity
}

/** `skipSchemaTestCases` of `.jsonschema-tools.yaml`: `$id` regex → rule names to skip. */
export type SkipSchemaTestCases = Readonly<Record<string, readonly string[]>>

export interface LintOptions {
  /** Directory of the schema relative to the schema base, e.g. `mediawiki/revision/create`; `title-matches-path` runs only when it is given. */
  path?: string
  /** Version from the file name (`1.2.0` for `1.2.0.yaml`); `id-matches-title-and-version` then also checks it. */
  version?: string
  /** `[minimum, maximum]` for numeric fields, or false to turn the rule off. Default: the safe-integer range. */
  enforcedNumericBounds?: readonly [number, number] | false
  skipSchemaTestCases?: SkipSchemaTestCases
  /** Run only these rules. Default: all. */
  rules?: readonly LintRule[]
}

export const defaultNumericBounds = [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER] as const

type Report = (path: string, message: string, severity?: LintSeverity) => void
type RuleCheck = (schema: JsonObject, report: Report, options: LintOptions) => void

/**
 * Lints one materialized (dereferenced, allOf-merged) schema and returns every finding,
 * in rule order. Rules that `skipSchemaTestCases` skips for the schema's `$id` are not run.
 *
 * @example
 * lintSchema(schema, { path: 'test/event', version: '1.0.0', skipSchemaTestCases })
 *   .filter((f) => f.severity === 'error')
 */
export function lintSchema(schema: unknown, options: LintOptions = {}): LintFinding[] {
  const findings: LintFinding[] = []
  if (!isPlainObject(schema)) {
    return [{ rule: 'schema-is-valid', path: '', message: 'a materialized schema must be a JSON object', severity: 'error' }]
  }
  const wanted = new Set<LintRule>(options.rules ?? (Object.keys(lintRules) as LintRule[]))
  for (const [rule, check] of Object.entries(checks) as Array<[LintRule, RuleCheck]>) {
    if (!wanted.has(rule) || shouldSkip(schema.$id, rule, options.skipSchemaTestCases)) continue
    check(
      schema,
      (path, message, severity = 'error') => findings.push({ rule, path, message, severity }),
      options,
    )
  }
  return findings
}

const regexCache = new Map<string, RegExp>()

/**
 * True when `skipSchemaTestCases` skips `rule` for a schema with this `$id`. Keys are
 * JavaScript regular expressions tested against the `$id` (a missing `$id` counts as ''),
 * unanchored, exactly as jsonschema-tools does: `fragment/http/1.2.0` also matches
 * `/fragment/http/1x2y0` and `/other/fragment/http/1.2.0`. Anchor keys (`^/…$`) to be precise.
 *
 * @example
 * shouldSkip('/mediawiki/job/1.0.0', 'schema-deterministic-types', { 'mediawiki/job/.*': ['schema-deterministic-types'] }) // true
 */
export function shouldSkip(id: unknown, rule: string, skipSchemaTestCases: SkipSchemaTestCases | undefined): boolean {
  if (skipSchemaTestCases === undefined) return false
  const subject = typeof id === 'string' ? id : ''
  for (const [pattern, rules] of Object.entries(skipSchemaTestCases)) {
    if (rules.includes(rule) && skipRegex(pattern).test(subject)) return true
  }
  return false
}

function skipRegex(pattern: string): RegExp {
  let regex = regexCache.get(pattern)
  if (regex === undefined) {
    try {
      regex = new RegExp(pattern)
    } catch (error) {
      throw new EventplaneError(
        'EVP_CONFIG_INVALID',
        `skipSchemaTestCases key ${JSON.stringify(pattern)} is not a valid regular expression`,
        { cause: error, details: { key: pattern } },
      )
    }
    regexCache.set(pattern, regex)
  }
  return regex
}

const snakeCase = /^[$a-z]+[a-z0-9_]*$/

const checks: Record<LintRule, RuleCheck> = {
  'schema-is-valid'(schema, report) {
    const draft = draftOf(schema)
    for (const error of metaSchemaErrors(schema)) {
      const detail = error.params && Object.keys(error.params).length > 0 ? ` (${renderValue(error.params)})` : ''
      report(error.instancePath, `${error.instancePath || '/'} ${error.message ?? error.keyword}${detail}; the schema does not match the ${draft} meta-schema`)
    }
  },

  'schema-is-secure'(schema, report) {
    const errors = secureSchemaErrors(schema)
    const seen = new Set<string>()
    for (const error of errors) {
      // The security rules are the meta-schema's `dependencies`; the other errors (anyOf,
      // type, if) only echo a failure already reported by one of them.
      const keyword = /^#\/dependencies\/([^/]+)\//.exec(error.schemaPath)?.[1]
      if (keyword === undefined || error.keyword !== 'required') continue
      const missing = (error.params as { missingProperty?: string }).missingProperty ?? 'a limit'
      const reason = secureRuleReason(keyword)
      const message = `${error.instancePath || '/'} uses "${keyword}" without "${missing}"${reason ? `; needed to ${reason}` : ''}`
      if (seen.has(message)) continue
      seen.add(message)
      report(error.instancePath, message)
    }
    if (errors.length > 0 && seen.size === 0) {
      report('', `the schema fails the json-schema-secure meta-schema: ${errorsText(errors)}`)
    }
  },

  'schema-snake-case-properties'(schema, report) {
    // jsonschema-tools looks through properties and allOf only, not items or maps.
    const visit = (node: unknown, path: string): void => {
      if (!isPlainObject(node)) return
      if (Array.isArray(node.allOf)) node.allOf.forEach((sub, i) => visit(sub, childPointer(path, 'allOf', i)))
      if (!isPlainObject(node.properties)) return
      for (const name of Object.keys(node.properties)) {
        const at = childPointer(path, 'properties', name)
        if (!snakeCase.test(name)) {
          report(at, `property name ${JSON.stringify(name)} at ${at} is not snake_case (${snakeCase.source}); downstream tables use the names as column names`)
        }
        visit(node.properties[name], at)
      }
    }
    visit(schema, '')
  },

  'schema-deterministic-types'(schema, fail) {
    const visit = (node: unknown, path: string): void => {
      if (!isPlainObject(node)) return
      if (Array.isArray(node.type)) {
        fail(childPointer(path, 'type'), `${path || '/'} has the union type ${renderValue(node.type)}; each field must have exactly one type`)
      }
      if (Array.isArray(node.enum) && node.enum.includes(null)) {
        fail(childPointer(path, 'enum'), `${path || '/'} has null in its enum; a field that may be null has no single type`)
      }
      if (node.type === 'array') {
        if (!isPlainObject(node.items) || !node.items.type) {
          fail(path, `array ${path || '/'} must give its items a type (items.type)`)
        } else {
          visit(node.items, childPointer(path, 'items'))
        }
      }
      if (node.type === 'object') {
        const hasSchema = Boolean(node.properties) || Boolean(node.oneOf) || Boolean(node.allOf)
        if (!hasSchema && !isPlainObject(node.additionalProperties)) {
          fail(path, `object ${path || '/'} must specify properties, or additionalProperties as a schema for a map; otherwise its values have no known type`)
        }
        if (isPlainObject(node.additionalProperties)) visit(node.additionalProperties, childPointer(path, 'additionalProperties'))
      }
      if (isPlainObject(node.properties)) {
        for (const name of Object.keys(node.properties)) {
          const at = childPointer(path, 'properties', name)
          const property = node.properties[name]
          if (!isPlainObject(property) || !property.type) fail(at, `property ${at} has no type`)
          visit(property, at)
        }
      }
      if (Array.isArray(node.allOf)) node.allOf.forEach((sub, i) => visit(sub, childPointer(path, 'allOf', i)))
      if (Array.isArray(node.oneOf) && node.oneOf.length > 0) oneOf(node.oneOf, childPointer(path, 'oneOf'))
    }
    const oneOf = (branches: unknown[], path: string): void => {
      const typeOf = (branch: unknown): unknown => (isPlainObject(branch) ? branch.type : undefined)
      const requiredOf = (branch: unknown): unknown[] =>
        isPlainObject(branch) && Array.isArray(branch.required) ? branch.required : []
      const type = typeOf(branches[0])
      if (!branches.every((branch) => typeOf(branch) === type)) {
        fail(path, `oneOf at ${path} mixes types ${renderValue(branches.map(typeOf))}; every branch must have the same type`)
      } else if (type === 'object') {
        const shape = requiredOf(branches[0])
        const same = (other: unknown[]): boolean =>
          shape.every((name) => other.includes(name)) && other.every((name) => shape.includes(name))
        if (!branches.every((branch) => same(requiredOf(branch)))) {
          fail(path, `oneOf at ${path} has object branches with different required properties; every branch must require the same ones`)
        }
      }
      branches.forEach((branch, i) => visit(branch, childPointer(path, i)))
    }
    visit(schema, '')
  },

  'schema-required-properties-exist'(schema, report) {
    const visit = (node: unknown, path: string): void => {
      if (!isPlainObject(node)) return
      const properties = isPlainObject(node.properties) ? node.properties : undefined
      if (Array.isArray(node.required) && node.required.length > 0) {
        const at = childPointer(path, 'required')
        if (properties === undefined) {
          report(at, `${at} lists ${renderValue(node.required)} but ${path || '/'} has no properties`)
        } else {
          for (const name of node.required) {
            if (typeof name === 'string' && isPlainObject(properties[name])) continue
            report(at, `${renderValue(name)} is required at ${at} but ${childPointer(path, 'properties', String(name))} does not exist`)
          }
        }
      }
      for (const name of Object.keys(properties ?? {})) visit(properties![name], childPointer(path, 'properties', name))
    }
    visit(schema, '')
  },

  'schema-examples-$schema-matches-schema-$id'(schema, report) {
    if (!Array.isArray(schema.examples) || !isPlainObject(schema.properties) || !Object.hasOwn(schema.properties, '$schema')) return
    schema.examples.forEach((example, i) => {
      const actual = isPlainObject(example) ? example.$schema : undefined
      if (actual === schema.$id) return
      report(
        childPointer('', 'examples', i, '$schema'),
        `example ${i} has $schema ${renderValue(actual)} but the schema's $id is ${renderValue(schema.$id)}; an example must name the schema it belongs to`,
      )
    })
  },

  'schema-examples-are-valid'(schema, report) {
    if (!Object.hasOwn(schema, 'examples')) {
      if (!isFragment(schema)) {
        report('', 'the schema has no examples; canary events and documentation take the first example', 'warning')
      }
      return
    }
    if (!Array.isArray(schema.examples)) return
    // Most examples are valid, and a walk of the schema says so at a fraction of the cost of
    // compiling it; ajv decides (and explains) the rest.
    const { $id: _id, examples, ...rules } = schema
    if (examples.every((example) => quickValidate(rules, example) === true)) return
    let validate
    try {
      validate = compileForData(schema)
    } catch (error) {
      report('', `the schema cannot be compiled to check its examples: ${(error as Error).message}`)
      return
    }
    examples.forEach((example, i) => {
      if (validate(example)) return
      report(childPointer('', 'examples', i), `example ${i} does not validate against the schema: ${errorsText(validate.errors)}`)
    })
  },

  'schema-enforced-numeric-bounds'(schema, report, options) {
    const bounds = options.enforcedNumericBounds ?? defaultNumericBounds
    if (bounds === false) return
    const [min, max] = bounds
    walkSchemas(schema, (node, path) => {
      if (node.type !== 'number' && node.type !== 'integer') return
      const field = path || '/'
      if (typeof node.minimum !== 'number') {
        report(field, `numeric field ${field} has no minimum; numeric fields need minimum and maximum within [${min}, ${max}]`)
      } else if (node.minimum < min) {
        report(childPointer(path, 'minimum'), `numeric field ${field} has minimum ${node.minimum}, below the enforced bound ${min}`)
      }
      if (typeof node.maximum !== 'number') {
        report(field, `numeric field ${field} has no maximum; numeric fields need minimum and maximum within [${min}, ${max}]`)
      } else if (node.maximum > max) {
        report(childPointer(path, 'maximum'), `numeric field ${field} has maximum ${node.maximum}, above the enforced bound ${max}`)
      }
    })
  },

  'title-matches-path'(schema, report, options) {
    if (options.path === undefined) return
    const expected = options.path.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '')
    if (schema.title === expected) return
    report('/title', `title ${renderValue(schema.title)} does not match the schema's directory ${JSON.stringify(expected)}; the title is the path below the schema base`)
  },

  'id-matches-title-and-version'(schema, report, options) {
    const parts = parseSchemaId(schema.$id)
    const title = typeof schema.title === 'string' ? schema.title : '<title>'
    if (parts === undefined) {
      report('/$id', `$id ${renderValue(schema.$id)} is not of the form /${title}/<semver>`)
      return
    }
    if (parts.title !== schema.title) {
      report('/$id', `$id ${renderValue(schema.$id)} names the title ${JSON.stringify(parts.title)} but the schema's title is ${renderValue(schema.title)}`)
    }
    if (options.version !== undefined && parts.version !== options.version) {
      report('/$id', `$id ${renderValue(schema.$id)} has version ${parts.version} but the file is version ${options.version}`)
    }
  },

  'required-common-fields'(schema, fail) {
    // Fragments are pieces merged into event schemas through allOf; the event schemas that
    // include them are checked, the fragments themselves are not.
    if (isFragment(schema)) return
    const properties = isPlainObject(schema.properties) ? schema.properties : {}
    const required = Array.isArray(schema.required) ? schema.required : []
    for (const name of ['$schema', 'meta']) {
      const at = childPointer('', 'properties', name)
      if (!isPlainObject(properties[name])) fail(at, `event schemas need a ${name} property (${at}); intake uses it to ${name === '$schema' ? 'find the schema' : 'route the event'}`)
      else if (!required.includes(name)) fail('/required', `event schemas must require ${JSON.stringify(name)}`)
    }
    const meta = properties.meta
    if (isPlainObject(meta)) {
      const metaProperties = isPlainObject(meta.properties) ? meta.properties : {}
      const metaRequired = Array.isArray(meta.required) ? meta.required : []
      if (!isPlainObject(metaProperties.stream)) fail('/properties/meta/properties/stream', 'event schemas need meta.stream, the stream an event belongs to')
      else if (!metaRequired.includes('stream')) fail('/properties/meta/required', 'event schemas must require meta.stream')
    }
  },
}

function isFragment(schema: JsonObject): boolean {
  return typeof schema.title === 'string' && schema.title.startsWith('fragment/')
}
