import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isEventplaneError } from '../../src/core/errors.ts'
import type { JsonObject } from '../../src/core/objects.ts'
import { checkCompatibility, checkVersionSeries, compatRules, type CompatRule, type CompatRules } from '../../src/schemas/compat.ts'

/** Version 1.0.0 of a schema that every case below evolves. */
function base(): JsonObject {
  return {
    title: 'test/evolution',
    description: 'A schema that the cases below evolve.',
    $id: '/test/evolution/1.0.0',
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    additionalProperties: false,
    required: ['$schema', 'meta'],
    properties: {
      $schema: { type: 'string', description: 'The schema of this event.' },
      meta: {
        type: 'object',
        required: ['stream'],
        properties: {
          stream: { type: 'string', minLength: 1 },
          domain: { type: 'string', minLength: 1 },
          dt: { type: 'string', format: 'date-time', maxLength: 128 },
        },
      },
      action: { type: 'string', enum: ['create', 'delete'] },
      kind: { type: 'string' },
      name: { type: 'string', maxLength: 255, pattern: '^[a-z]+$', default: 'anonymous' },
      uri: { type: 'string', format: 'uri-reference', maxLength: 8192 },
      count: { type: 'integer', minimum: 0, maximum: 100 },
      tags: { type: 'array', items: { type: 'string' } },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      target: {
        type: 'object',
        properties: { id: { type: 'integer' } },
      },
      choice: {
        type: 'object',
        oneOf: [
          { type: 'object', required: ['a'], properties: { a: { type: 'string' } } },
          { type: 'object', required: ['a'], properties: { a: { type: 'string' }, b: { type: 'string' } } },
        ],
      },
      description: { type: 'string', description: 'A property that happens to be named like a keyword.' },
      'a/b': { type: 'string' },
    },
    examples: [{ $schema: '/test/evolution/1.0.0', meta: { stream: 'test.evolution' } }],
  }
}

type Mutation = (schema: JsonObject) => void
const at = (schema: JsonObject, ...path: string[]): JsonObject =>
  path.reduce<JsonObject>((node, key) => node[key] as JsonObject, schema)

interface Case {
  name: string
  /** Turns a copy of `base()` into the newer version. */
  change: Mutation
  /** Turns a copy of `base()` into the older version (default: base as is). */
  before?: Mutation
  strict?: boolean
  /** jsonschema-tools release whose rule applies (default: 1.3, the library's default). */
  rules?: CompatRules
  compatible: boolean
  /** Every expected problem, as `rule path`, in any order. */
  problems?: string[]
}

const cases: Case[] = [
  { name: 'identical schemas', change: () => {}, compatible: true },
  {
    name: 'add an optional property',
    change: (s) => (at(s, 'properties').comment = { type: 'string' }),
    compatible: true,
  },
  {
    name: 'add an optional nested property',
    change: (s) => (at(s, 'properties', 'meta', 'properties').request_id = { type: 'string' }),
    compatible: true,
  },
  {
    name: 'add a required property',
    change: (s) => {
      at(s, 'properties').dt = { type: 'string', format: 'date-time', maxLength: 128 }
      ;(s.required as string[]).push('dt')
    },
    compatible: false,
    problems: ['required-added /required'],
  },
  {
    name: 'make an existing optional property required',
    change: (s) => (at(s, 'properties', 'meta').required = ['stream', 'domain']),
    compatible: false,
    problems: ['required-added /properties/meta/required'],
  },
  {
    name: 'add required where the object had no required list',
    change: (s) => (at(s, 'properties', 'target').required = ['id']),
    compatible: false,
    problems: ['required-added /properties/target/required'],
  },
  {
    name: 'remove an entry from required',
    change: (s) => (at(s, 'properties', 'meta').required = []),
    compatible: false,
    problems: ['required-removed /properties/meta/required'],
  },
  {
    name: 'remove the whole required list',
    change: (s) => delete s.required,
    compatible: false,
    problems: ['required-removed /required', 'required-removed /required'],
  },
  {
    name: 'reorder required',
    change: (s) => (s.required = ['meta', '$schema']),
    compatible: true,
  },
  {
    name: 'remove a property',
    change: (s) => delete at(s, 'properties').name,
    compatible: false,
    problems: ['property-removed /properties/name'],
  },
  {
    name: 'remove a nested property',
    change: (s) => delete at(s, 'properties', 'meta', 'properties').domain,
    compatible: false,
    problems: ['property-removed /properties/meta/properties/domain'],
  },
  {
    name: 'remove a property named like a free keyword (jsonschema-tools would skip it by name)',
    change: (s) => delete at(s, 'properties').description,
    compatible: false,
    problems: ['property-removed /properties/description'],
  },
  {
    name: 'remove a property whose name needs JSON Pointer escaping',
    change: (s) => delete at(s, 'properties')['a/b'],
    compatible: false,
    problems: ['property-removed /properties/a~1b'],
  },
  {
    name: 'remove all properties of a nested object',
    change: (s) => delete at(s, 'properties', 'target').properties,
    compatible: false,
    problems: ['property-removed /properties/target/properties/id'],
  },
  {
    name: 'change a type',
    change: (s) => (at(s, 'properties', 'kind').type = 'integer'),
    compatible: false,
    problems: ['type-changed /properties/kind/type'],
  },
  {
    name: 'make a type nullable with a union',
    change: (s) => (at(s, 'properties', 'kind').type = ['string', 'null']),
    compatible: false,
    problems: ['type-changed /properties/kind/type'],
  },
  {
    name: 'change the type of array items',
    change: (s) => (at(s, 'properties', 'tags', 'items').type = 'integer'),
    compatible: false,
    problems: ['type-changed /properties/tags/items/type'],
  },
  {
    name: 'change items from one schema to a tuple',
    change: (s) => (at(s, 'properties', 'tags').items = [{ type: 'string' }]),
    compatible: false,
    problems: ['kind-changed /properties/tags/items'],
  },
  {
    name: 'change the value type of a map',
    change: (s) => (at(s, 'properties', 'headers', 'additionalProperties').type = 'integer'),
    compatible: false,
    problems: ['type-changed /properties/headers/additionalProperties/type'],
  },
  {
    name: 'change additionalProperties from false to a schema',
    change: (s) => (s.additionalProperties = { type: 'string' }),
    compatible: false,
    problems: ['kind-changed /additionalProperties'],
  },
  {
    name: 'change additionalProperties from false to true',
    change: (s) => (s.additionalProperties = true),
    compatible: false,
    problems: ['value-changed /additionalProperties'],
  },
  {
    name: 'drop additionalProperties',
    change: (s) => delete s.additionalProperties,
    compatible: false,
    problems: ['keyword-removed /additionalProperties'],
  },
  {
    name: 'grow an enum',
    change: (s) => (at(s, 'properties', 'action').enum = ['create', 'delete', 'move']),
    compatible: true,
  },
  {
    name: 'reorder an enum',
    change: (s) => (at(s, 'properties', 'action').enum = ['delete', 'create']),
    compatible: true,
  },
  {
    name: 'shrink an enum',
    change: (s) => (at(s, 'properties', 'action').enum = ['create', 'move']),
    compatible: false,
    problems: ['enum-value-removed /properties/action/enum'],
  },
  {
    name: 'drop an enum',
    change: (s) => delete at(s, 'properties', 'action').enum,
    compatible: false,
    problems: ['keyword-removed /properties/action/enum'],
  },
  {
    name: 'add an enum to an existing property (allowed by the jsonschema-tools rule)',
    change: (s) => (at(s, 'properties', 'kind').enum = ['a', 'b']),
    compatible: true,
  },
  {
    name: 'add an enum to an existing property, strict',
    change: (s) => (at(s, 'properties', 'kind').enum = ['a', 'b']),
    strict: true,
    compatible: false,
    problems: ['keyword-added /properties/kind/enum'],
  },
  {
    name: 'add maxLength to an existing property, strict',
    change: (s) => (at(s, 'properties', 'kind').maxLength = 10),
    strict: true,
    compatible: false,
    problems: ['keyword-added /properties/kind/maxLength'],
  },
  {
    name: 'add an optional property, strict',
    change: (s) => (at(s, 'properties').comment = { type: 'string', maxLength: 10 }),
    strict: true,
    compatible: true,
  },
  {
    name: 'change descriptions at the root and deep down',
    change: (s) => {
      s.description = 'Reworded.'
      at(s, 'properties', '$schema').description = 'Reworded too.'
      at(s, 'properties', 'meta', 'properties', 'dt').description = 'Added.'
    },
    compatible: true,
  },
  {
    name: 'change $id',
    change: (s) => (s.$id = '/test/evolution/1.1.0'),
    compatible: true,
  },
  {
    name: 'change examples',
    change: (s) => (s.examples = [{ $schema: '/test/evolution/1.1.0', meta: { stream: 'other' } }]),
    compatible: true,
  },
  {
    name: 'change the title',
    change: (s) => (s.title = 'test/evolved'),
    compatible: false,
    problems: ['value-changed /title'],
  },
  // maxLength: fixed within a major by jsonschema-tools 1.2, free since 1.3 (FIELDS_ALLOWED_TO_CHANGE
  // gained it); --strict with 1.3 still refuses a smaller one.
  {
    name: '1.2: raise maxLength',
    rules: '1.2',
    change: (s) => (at(s, 'properties', 'name').maxLength = 8192),
    compatible: false,
    problems: ['value-changed /properties/name/maxLength'],
  },
  {
    name: '1.2: lower maxLength',
    rules: '1.2',
    change: (s) => (at(s, 'properties', 'name').maxLength = 10),
    compatible: false,
    problems: ['value-changed /properties/name/maxLength'],
  },
  {
    name: '1.2: drop maxLength',
    rules: '1.2',
    change: (s) => delete at(s, 'properties', 'name').maxLength,
    compatible: false,
    problems: ['keyword-removed /properties/name/maxLength'],
  },
  { name: '1.3: raise maxLength', rules: '1.3', change: (s) => (at(s, 'properties', 'name').maxLength = 8192), compatible: true },
  { name: '1.3: lower maxLength', rules: '1.3', change: (s) => (at(s, 'properties', 'name').maxLength = 10), compatible: true },
  { name: '1.3: drop maxLength', rules: '1.3', change: (s) => delete at(s, 'properties', 'name').maxLength, compatible: true },
  { name: '1.3 strict: raise maxLength', rules: '1.3', strict: true, change: (s) => (at(s, 'properties', 'name').maxLength = 8192), compatible: true },
  { name: '1.3 strict: drop maxLength', rules: '1.3', strict: true, change: (s) => delete at(s, 'properties', 'name').maxLength, compatible: true },
  {
    name: '1.3 strict: lower maxLength',
    rules: '1.3',
    strict: true,
    change: (s) => (at(s, 'properties', 'name').maxLength = 10),
    compatible: false,
    problems: ['max-length-reduced /properties/name/maxLength'],
  },
  {
    name: '1.2 strict: raise maxLength',
    rules: '1.2',
    strict: true,
    change: (s) => (at(s, 'properties', 'name').maxLength = 8192),
    compatible: false,
    problems: ['value-changed /properties/name/maxLength'],
  },
  {
    name: '1.3: a maxLength change and a removed property: only the property',
    rules: '1.3',
    change: (s) => {
      at(s, 'properties', 'name').maxLength = 8192
      delete at(s, 'properties').kind
    },
    compatible: false,
    problems: ['property-removed /properties/kind'],
  },
  {
    name: 'change a pattern',
    change: (s) => (at(s, 'properties', 'name').pattern = '^[a-z0-9]+$'),
    compatible: false,
    problems: ['value-changed /properties/name/pattern'],
  },
  {
    name: 'change a format',
    change: (s) => (at(s, 'properties', 'uri').format = 'uri'),
    compatible: false,
    problems: ['value-changed /properties/uri/format'],
  },
  {
    name: 'lower a minimum',
    change: (s) => (at(s, 'properties', 'count').minimum = -1),
    compatible: false,
    problems: ['value-changed /properties/count/minimum'],
  },
  {
    name: 'change a default',
    change: (s) => (at(s, 'properties', 'name').default = 'nobody'),
    compatible: false,
    problems: ['value-changed /properties/name/default'],
  },
  {
    name: 'remove a oneOf branch',
    change: (s) => (at(s, 'properties', 'choice').oneOf as unknown[]).pop(),
    compatible: false,
    problems: ['entry-removed /properties/choice/oneOf/1'],
  },
  {
    name: 'remove a property inside a oneOf branch',
    change: (s) => delete at(s, 'properties', 'choice', 'oneOf', '1', 'properties').b,
    compatible: false,
    problems: ['property-removed /properties/choice/oneOf/1/properties/b'],
  },
  {
    name: 'several breaks are all reported',
    change: (s) => {
      delete at(s, 'properties').uri
      at(s, 'properties', 'count').type = 'number'
      at(s, 'properties', 'action').enum = ['create']
    },
    compatible: false,
    problems: ['property-removed /properties/uri', 'type-changed /properties/count/type', 'enum-value-removed /properties/action/enum'],
  },
  {
    name: 'an older version without the property gains it (reverse of a removal)',
    before: (s) => delete at(s, 'properties').name,
    change: () => {},
    compatible: true,
  },
]

describe('checkCompatibility', () => {
  for (const c of cases) {
    it(c.name, () => {
      const older = base()
      c.before?.(older)
      const newer = base()
      c.before?.(newer)
      c.change(newer)
      const result = checkCompatibility(older, newer, { strict: c.strict === true, ...(c.rules ? { rules: c.rules } : {}) })
      assert.equal(result.compatible, c.compatible)
      assert.deepEqual(result.problems.map((p) => `${p.rule} ${p.path}`).sort(), [...(c.problems ?? [])].sort())
      for (const problem of result.problems) {
        assert.ok(compatRules.includes(problem.rule))
        assert.ok(problem.message.includes(problem.path), `message names the path: ${problem.message}`)
      }
    })
  }

  it('has at least 25 evolution cases', () => {
    assert.ok(cases.length >= 25)
  })

  it('explains why, with the old and new values', () => {
    const newer = base()
    delete at(newer, 'properties', 'meta', 'properties').domain
    const [problem] = checkCompatibility(base(), newer).problems
    assert.equal(problem?.rule, 'property-removed')
    assert.deepEqual(problem?.oldValue, { type: 'string', minLength: 1 })
    assert.equal(problem?.newValue, undefined)
    assert.match(problem!.message, /only new optional properties may be added/)
  })

  it('reports each removed enum value with both lists', () => {
    const newer = base()
    at(newer, 'properties', 'action').enum = []
    const problems = checkCompatibility(base(), newer).problems
    assert.deepEqual(
      problems.map((p) => [p.rule, p.oldValue, p.newValue]),
      [
        ['enum-value-removed', ['create', 'delete'], []],
        ['enum-value-removed', ['create', 'delete'], []],
      ],
    )
  })

  it('compares enum values structurally', () => {
    const older = { enum: [{ a: 1 }, [1, 2], null] }
    const newer = { enum: [null, [1, 2], { a: 1 }] }
    assert.equal(checkCompatibility(older, newer).compatible, true)
  })

  it('treats the root as a schema even when it is a boolean', () => {
    assert.equal(checkCompatibility(true, true).compatible, true)
    assert.deepEqual(
      checkCompatibility(true, { type: 'object' }).problems.map((p) => `${p.rule} ${p.path}`),
      ['kind-changed '],
    )
  })
})

describe('checkVersionSeries', () => {
  const version = (v: string, change: Mutation = () => {}): { version: string; schema: JsonObject } => {
    const schema = base()
    schema.$id = `/test/evolution/${v}`
    change(schema)
    return { version: v, schema }
  }

  it('compares consecutive versions within each major, in semver order', () => {
    const results = checkVersionSeries([
      version('1.10.0', (s) => (at(s, 'properties').c = { type: 'string' })),
      version('1.2.0'),
      version('2.0.0', (s) => delete at(s, 'properties').name),
      version('1.9.0'),
      version('2.1.0', (s) => delete at(s, 'properties').name),
    ])
    assert.deepEqual(
      results.map((r) => [r.major, r.from, r.to, r.result.compatible]),
      [
        [1, '1.2.0', '1.9.0', true],
        [1, '1.9.0', '1.10.0', true],
        [2, '2.0.0', '2.1.0', true],
      ],
    )
  })

  it('lets a new major break anything but checks the next minor against it', () => {
    const results = checkVersionSeries([
      version('1.0.0'),
      version('2.0.0', (s) => delete at(s, 'properties').name),
      version('2.1.0'),
    ])
    assert.equal(results.length, 1)
    assert.equal(results[0]?.from, '2.0.0')
    assert.deepEqual(
      results[0]?.result.problems.map((p) => p.rule),
      [],
      'name is absent in 2.0.0, so adding it back in 2.1.0 is an optional addition',
    )
  })

  it('finds a break inside a major', () => {
    const [result] = checkVersionSeries([version('1.0.0'), version('1.1.0', (s) => delete at(s, 'properties').kind)])
    assert.equal(result?.result.compatible, false)
    assert.deepEqual(
      result?.result.problems.map((p) => `${p.rule} ${p.path}`),
      ['property-removed /properties/kind'],
    )
  })

  it('treats 0.x like any other major, as jsonschema-tools does', () => {
    const results = checkVersionSeries([version('0.0.1'), version('0.0.2', (s) => delete at(s, 'properties').kind)])
    assert.equal(results.length, 1)
    assert.equal(results[0]?.result.compatible, false)
  })

  it('refuses a version that is not semver', () => {
    assert.throws(
      () => checkVersionSeries([version('1.0'), version('1.1.0')]),
      (error: unknown) => isEventplaneError(error) && error.code === 'EVP_SCHEMA_VERSION_INVALID',
    )
  })

  it('returns nothing for a single version', () => {
    assert.deepEqual(checkVersionSeries([version('1.0.0')]), [])
  })
})

// The two rules differ only in maxLength: every other case gives the same verdict under both.
describe('the 1.2 and 1.3 rules', () => {
  for (const c of cases.filter((c) => c.rules === undefined)) {
    it(`agree on: ${c.name}`, () => {
      const older = base()
      c.before?.(older)
      const newer = base()
      c.before?.(newer)
      c.change(newer)
      const verdict = (rules: CompatRules) => checkCompatibility(older, newer, { strict: c.strict === true, rules }).problems.map((p) => `${p.rule} ${p.path}`)
      assert.deepEqual(verdict('1.2'), verdict('1.3'))
    })
  }
})

// Every rule id is reachable from at least one case above, so none is dead or undocumented.
describe('compatRules', () => {
  it('are all exercised by the table', () => {
    const seen = new Set<CompatRule>()
    for (const c of cases) for (const p of c.problems ?? []) seen.add(p.split(' ')[0] as CompatRule)
    assert.deepEqual([...seen].sort(), [...compatRules].sort())
  })
})
