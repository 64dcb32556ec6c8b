import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Ajv } from 'ajv'
import semver from 'semver'
import type { FromSchema } from 'json-schema-to-ts'
import { EventplaneError } from '../core/errors.ts'
import { once } from '../core/objects.ts'
import { parseYaml } from '../core/yaml.ts'
import { pointerPath } from '../core/pointer.ts'
import { defaultCompatRules, type CompatRules } from './compat.ts'

/**
 * `.jsonschema-tools.yaml`, the per-repository options file of Wikimedia's jsonschema-tools.
 * We read the same keys with the same defaults so existing repositories work unchanged.
 * Keys we do not use (logLevel, configPaths, …) are accepted and ignored.
 */
const toolsOptionsSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    schemaBasePath: { type: 'string', minLength: 1 },
    schemaBaseUris: { type: 'array', items: { type: 'string', minLength: 1 } },
    contentTypes: { type: 'array', minItems: 1, items: { type: 'string', enum: ['yaml', 'json'] } },
    currentName: { type: 'string', minLength: 1 },
    schemaVersionField: { type: 'string', minLength: 1 },
    schemaTitleField: { type: 'string', minLength: 1 },
    shouldSymlinkExtensionless: { type: 'boolean' },
    shouldSymlinkLatest: { type: 'boolean' },
    shouldDereference: { type: 'boolean' },
    shouldGitAdd: { type: 'boolean' },
    shouldGenerateExample: { type: 'boolean' },
    gitStaged: { type: 'boolean' },
    ignoreSchemas: { type: 'array', items: { type: 'string' } },
    skipSchemaTestCases: {
      type: 'object',
      additionalProperties: { type: 'array', items: { type: 'string' } },
    },
    enforcedNumericBounds: {
      anyOf: [
        { type: 'array', minItems: 2, maxItems: 2, items: { type: 'number' } },
        { type: 'boolean', const: false },
        { type: 'null' },
      ],
    },
  },
} as const

type RawToolsOptions = FromSchema<typeof toolsOptionsSchema>

export interface ToolsOptions {
  /** Absolute folder holding the `<title>/<version>.yaml` tree. */
  schemaBasePath: string
  /** Ordered base URIs for `$ref` resolution: absolute folders or http(s) URLs. */
  schemaBaseUris: string[]
  contentTypes: Array<'yaml' | 'json'>
  currentName: string
  schemaVersionField: string
  schemaTitleField: string
  shouldSymlinkExtensionless: boolean
  shouldSymlinkLatest: boolean
  shouldDereference: boolean
  shouldGitAdd: boolean
  shouldGenerateExample: boolean
  gitStaged: boolean
  ignoreSchemas: string[]
  skipSchemaTestCases: Record<string, string[]>
  enforcedNumericBounds: readonly [number, number] | false
}

export const toolsOptionsFile = '.jsonschema-tools.yaml'

// Our own schema, known to be valid: not checked against the meta-schema at every start (about 45 ms).
const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false })
const validateToolsOptions = once(() => ajv.compile<RawToolsOptions>(toolsOptionsSchema))

/**
 * Reads `<root>/.jsonschema-tools.yaml` when present. Without it, `root` itself is the schema
 * base path. Relative paths in the file are relative to `root`, as jsonschema-tools reads them
 * relative to the directory it runs in (the repository root).
 */
export function readToolsOptions(root: string): ToolsOptions {
  const file = join(root, toolsOptionsFile)
  let raw: RawToolsOptions = {}
  if (existsSync(file)) {
    const parsed = parseYaml(readFileSync(file, 'utf8'), { source: file, code: 'EVP_CONFIG_PARSE' })
    const value = parsed.value ?? {}
    const validator = validateToolsOptions()
    if (!validator(value)) {
      const error = validator.errors![0]!
      const path = pointerPath(error.instancePath)
      const at = parsed.locate(path)
      throw new EventplaneError(
        'EVP_CONFIG_INVALID',
        `${file}${at ? `:${at.line}:${at.column}` : ''}: ${path.join('.') || '(root)'} ${error.message}`,
        { details: { file, line: at?.line, key: path.join('.') } },
      )
    }
    raw = value
  }
  const schemaBasePath = resolve(root, raw.schemaBasePath ?? '.')
  const bounds = raw.enforcedNumericBounds
  return {
    schemaBasePath,
    schemaBaseUris: (raw.schemaBaseUris ?? [schemaBasePath]).map((uri) =>
      /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : resolve(root, uri),
    ),
    contentTypes: (raw.contentTypes ?? ['yaml', 'json']) as Array<'yaml' | 'json'>,
    currentName: raw.currentName ?? 'current.yaml',
    schemaVersionField: raw.schemaVersionField ?? '$id',
    schemaTitleField: raw.schemaTitleField ?? 'title',
    shouldSymlinkExtensionless: raw.shouldSymlinkExtensionless ?? true,
    shouldSymlinkLatest: raw.shouldSymlinkLatest ?? true,
    shouldDereference: raw.shouldDereference ?? true,
    shouldGitAdd: raw.shouldGitAdd ?? true,
    shouldGenerateExample: raw.shouldGenerateExample ?? false,
    gitStaged: raw.gitStaged ?? false,
    ignoreSchemas: raw.ignoreSchemas ?? [],
    skipSchemaTestCases: (raw.skipSchemaTestCases ?? {}) as Record<string, string[]>,
    enforcedNumericBounds:
      bounds === false || bounds === null
        ? false
        : bounds === undefined
          ? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]
          : [bounds[0] as number, bounds[1] as number],
  }
}

/** The jsonschema-tools rule a repository follows, and what decided it. */
export interface PinnedRules {
  rules: CompatRules
  /** `package-lock.json (1.3.0)`, `package.json (^1.2.0)`, `config`, or `default` (no pin found). */
  from: string
}

const toolsPackage = '@wikimedia/jsonschema-tools'

/**
 * The compatibility rule of the jsonschema-tools release a repository pins: the version in its
 * `package-lock.json`, else the lowest version its `package.json` range allows, else the
 * newest rule. A repository that pins 1.2 keeps 1.2's stricter rule.
 */
export function pinnedRules(root: string): PinnedRules {
  const rulesOf = (version: string): CompatRules => (semver.gte(version, '1.3.0') ? '1.3' : '1.2')
  const read = (name: string): Record<string, unknown> | undefined => {
    try {
      const value = JSON.parse(readFileSync(join(root, name), 'utf8')) as unknown
      return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
    } catch {
      return undefined
    }
  }
  const lock = read('package-lock.json')
  const locked = (lock?.['packages'] as Record<string, { version?: unknown }> | undefined)?.[`node_modules/${toolsPackage}`]?.version ??
    (lock?.['dependencies'] as Record<string, { version?: unknown }> | undefined)?.[toolsPackage]?.version
  if (typeof locked === 'string' && semver.valid(locked) !== null) return { rules: rulesOf(locked), from: `package-lock.json (${locked})` }
  const manifest = read('package.json')
  for (const field of ['devDependencies', 'dependencies']) {
    const range = (manifest?.[field] as Record<string, unknown> | undefined)?.[toolsPackage]
    const lowest = typeof range === 'string' && semver.validRange(range) !== null ? semver.minVersion(range) : null
    if (lowest !== null) return { rules: rulesOf(lowest.version), from: `package.json (${String(range)})` }
  }
  return { rules: defaultCompatRules, from: 'default' }
}
