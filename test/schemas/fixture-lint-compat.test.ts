import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { before, describe, it } from 'node:test'
import type { JsonObject } from '../../src/core/objects.ts'
import { parseYaml } from '../../src/core/yaml.ts'
import { checkVersionSeries, type VersionPairResult } from '../../src/schemas/compat.ts'
import { lintSchema, shouldSkip, type LintRule, type SkipSchemaTestCases } from '../../src/schemas/lint.ts'
import { fixtureRepo, fixtureSkipped } from '../helpers.ts'

/**
 * Runs our jsonschema-tools rules over Wikimedia's primary schema repository and checks that
 * they agree with the repository: its CI passes with its `skipSchemaTestCases`, so a rule of
 * ours may fail only where that list skips it, and every entry of the list should be needed.
 */

const repository = fixtureRepo
const base = join(repository, 'jsonschema')

const robustnessRules = [
  'schema-is-valid',
  'schema-is-secure',
  'schema-snake-case-properties',
  'schema-deterministic-types',
  'schema-required-properties-exist',
  'schema-examples-$schema-matches-schema-$id',
  'schema-examples-are-valid',
  'schema-enforced-numeric-bounds',
] as const satisfies readonly LintRule[]
const structureRules = ['title-matches-path', 'id-matches-title-and-version', 'required-common-fields'] as const satisfies readonly LintRule[]
const compatibilityRule = 'schema-version-compatibility'

/**
 * Where our verdict differs from the repository's and we keep it, with the reason. Empty for
 * the jsonschema-tools rules: they agree everywhere.
 */
const robustnessDisagreements: ReadonlyArray<{ id: string; rule: LintRule; reason: string }> = []

/** Our structure rules are not jsonschema-tools rules, so the repository has no skips for them. */
const structureExceptions: ReadonlyArray<{ id: string; rule: LintRule; reason: string }> = [
  {
    id: '/webrequest/1.0.0',
    rule: 'id-matches-title-and-version',
    reason:
      'development/webrequest 1.0.0 has title development/webrequest but $id /webrequest/1.0.0; jsonschema-tools checks title against directory only, and the skip list addresses the schema by that $id',
  },
  {
    id: '/test/event/0.0.2',
    rule: 'required-common-fields',
    reason: 'test/event 0.0.x predate fragment/common: $schema and meta are declared but not required',
  },
  {
    id: '/test/event/0.0.3',
    rule: 'required-common-fields',
    reason: 'test/event 0.0.x predate fragment/common: $schema and meta are declared but not required',
  },
]

interface Materialized {
  title: string
  version: string
  schema: JsonObject
}

function loadRepository(): { skip: SkipSchemaTestCases; bounds: [number, number] | false | undefined; schemas: Materialized[] } {
  const configFile = join(repository, '.jsonschema-tools.yaml')
  const config = parseYaml(readFileSync(configFile, 'utf8'), { source: configFile, code: 'EVP_CONFIG_PARSE' }).value as {
    skipSchemaTestCases?: SkipSchemaTestCases
    enforcedNumericBounds?: [number, number] | false
  }
  const schemas: Materialized[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (/^\d+\.\d+\.\d+\.yaml$/.test(entry)) {
        const schema = parseYaml(readFileSync(path, 'utf8'), { source: path, code: 'EVP_SCHEMA_PARSE' }).value as JsonObject
        schemas.push({ title: relative(base, dir), version: entry.slice(0, -'.yaml'.length), schema })
      }
    }
  }
  walk(base)
  return { skip: config.skipSchemaTestCases ?? {}, bounds: config.enforcedNumericBounds, schemas }
}

describe('lint and compatibility on the Wikimedia primary schema repository', { skip: fixtureSkipped }, () => {
  let skip: SkipSchemaTestCases
  let schemas: Materialized[]
  /** `$id rule` for every jsonschema-tools rule that fails on a schema. */
  let robustnessFailures: string[]
  let structureFailures: string[]
  let pairs: Array<VersionPairResult & { id: string }>

  before(() => {
    const loaded = loadRepository()
    skip = loaded.skip
    schemas = loaded.schemas
    robustnessFailures = []
    structureFailures = []
    for (const { title, version, schema } of schemas) {
      const findings = lintSchema(schema, {
        path: title,
        version,
        rules: [...robustnessRules, ...structureRules],
        ...(loaded.bounds === undefined ? {} : { enforcedNumericBounds: loaded.bounds }),
      }).filter((f) => f.severity === 'error')
      for (const rule of new Set(findings.map((f) => f.rule))) {
        const entry = `${String(schema.$id)} ${rule}`
        if ((robustnessRules as readonly string[]).includes(rule)) robustnessFailures.push(entry)
        else structureFailures.push(entry)
      }
    }
    const byTitle = new Map<string, Materialized[]>()
    for (const m of schemas) byTitle.set(m.title, [...(byTitle.get(m.title) ?? []), m])
    pairs = [...byTitle.values()].flatMap((versions) =>
      checkVersionSeries(versions).map((pair) => ({
        ...pair,
        // jsonschema-tools looks up the skip list with the newer schema's $id.
        id: String(versions.find((v) => v.version === pair.to)!.schema.$id),
      })),
    )
  })

  it('reads every materialized version', () => {
    assert.equal(schemas.length, 83)
    assert.equal(new Set(schemas.map((s) => s.title)).size, 53)
    assert.equal(pairs.length, 15)
  })

  it('fails a jsonschema-tools rule only where skipSchemaTestCases skips it', () => {
    const unexplained = robustnessFailures.filter((entry) => {
      const [id, rule] = entry.split(' ') as [string, LintRule]
      return !shouldSkip(id, rule, skip) && !robustnessDisagreements.some((d) => d.id === id && d.rule === rule)
    })
    assert.deepEqual(unexplained, [])
  })

  it('fails exactly the skipped rules that the repository needed to skip', () => {
    assert.deepEqual(robustnessFailures.sort(), [
      '/change-prop/continue/1.0.0 schema-deterministic-types',
      '/change-prop/retry/1.0.0 schema-deterministic-types',
      '/mediawiki/job/1.0.0 schema-deterministic-types',
      '/mediawiki/page/properties-change/1.0.0 schema-deterministic-types',
      '/mediawiki/recentchange/1.0.0 schema-deterministic-types',
      '/mediawiki/recentchange/1.0.1 schema-deterministic-types',
      '/webrequest/1.0.0 schema-deterministic-types',
      '/webrequest/1.0.0 schema-enforced-numeric-bounds',
    ])
  })

  it('finds a failure behind every entry of the skip list', () => {
    const unused: string[] = []
    for (const [pattern, rules] of Object.entries(skip)) {
      for (const rule of rules) {
        const single = { [pattern]: [rule] }
        const used =
          rule === compatibilityRule
            ? pairs.some((p) => !p.result.compatible && shouldSkip(p.id, rule, single))
            : robustnessFailures.some((entry) => {
                const [id, failed] = entry.split(' ')
                return failed === rule && shouldSkip(id, rule, single)
              })
        if (!used) unused.push(`${pattern} ${rule}`)
      }
    }
    assert.deepEqual(unused, [])
  })

  it('finds consecutive versions within a major compatible, except where the repository skips the check', () => {
    const unexplained = pairs.filter((p) => !p.result.compatible && !shouldSkip(p.id, compatibilityRule, skip))
    assert.deepEqual(
      unexplained.map((p) => `${p.id}: ${p.result.problems.map((q) => q.message).join('; ')}`),
      [],
    )
  })

  it('explains the breaks the repository skips', () => {
    const breaks = pairs
      .filter((p) => !p.result.compatible)
      .flatMap((p) => p.result.problems.map((q) => `${p.id} ${q.rule} ${q.path}`))
    assert.deepEqual(breaks.sort(), [
      '/fragment/http/1.2.0 property-removed /properties/http/properties/client_ip',
      '/fragment/mediawiki/state/change/page/1.2.0 required-removed /required',
      '/mediawiki/client/error/1.1.0 property-removed /properties/http/properties/client_ip',
      '/mediawiki/page/change/1.2.0 required-removed /required',
    ])
  })

  it('passes our structure rules except where listed, with a reason', () => {
    const expected = structureExceptions.map((e) => `${e.id} ${e.rule}`)
    assert.deepEqual(structureFailures.sort(), expected.sort())
    for (const e of structureExceptions) assert.ok(e.reason.length > 0)
  })
})
