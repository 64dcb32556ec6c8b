import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isEventplaneError } from '../../src/core/errors.ts'
import type { JsonObject } from '../../src/core/objects.ts'
import { lintRules, lintSchema, shouldSkip, type LintOptions, type LintRule } from '../../src/schemas/lint.ts'

/** A materialized event schema that passes every rule. */
function eventSchema(): JsonObject {
  return {
    title: 'test/lint',
    description: 'A schema that passes every lint rule.',
    $id: '/test/lint/1.0.0',
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    required: ['$schema', 'meta'],
    properties: {
      $schema: { type: 'string', description: 'The schema of this event.' },
      meta: {
        type: 'object',
        required: ['stream'],
        properties: {
          stream: { type: 'string', minLength: 1 },
          dt: { type: 'string', format: 'date-time', maxLength: 128 },
        },
      },
      count: { type: 'integer', minimum: 0, maximum: 100 },
      ratio: { type: 'number', minimum: -1, maximum: 1 },
      tags: { type: 'array', items: { type: 'string' } },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      action: { type: 'string', enum: ['create', 'delete'] },
    },
    examples: [
      {
        $schema: '/test/lint/1.0.0',
        meta: { stream: 'test.lint', dt: '2024-01-01T00:00:00Z' },
        count: 3,
        ratio: 0.5,
        tags: ['a'],
        labels: { k: 'v' },
        action: 'create',
      },
    ],
  }
}

const options: LintOptions = { path: 'test/lint', version: '1.0.0' }
type Node = Record<string, unknown>
const props = (schema: JsonObject): Record<string, Node> => schema.properties as Record<string, Node>

/** `rule path` of every finding of one rule. */
function found(schema: unknown, rule: LintRule, extra: LintOptions = {}): string[] {
  return lintSchema(schema, { ...options, ...extra, rules: [rule] }).map((f) => `${f.severity} ${f.path}`)
}

describe('lintSchema', () => {
  it('passes a well-formed event schema with no findings at all', () => {
    assert.deepEqual(lintSchema(eventSchema(), options), [])
  })

  it('refuses a schema that is not an object', () => {
    assert.deepEqual(
      lintSchema(['not', 'a', 'schema']).map((f) => f.rule),
      ['schema-is-valid'],
    )
  })

  it('returns findings with a known rule, a JSON Pointer and a message', () => {
    const schema = eventSchema()
    props(schema).userName = { type: ['string', 'null'] }
    const findings = lintSchema(schema, options)
    assert.ok(findings.length >= 2)
    for (const finding of findings) {
      assert.ok(finding.rule in lintRules)
      assert.ok(finding.path === '' || finding.path.startsWith('/'))
      assert.ok(finding.message.length > 0)
      assert.ok(finding.severity === 'error' || finding.severity === 'warning')
    }
  })

  it('runs only the rules asked for', () => {
    const schema = eventSchema()
    props(schema).userName = { type: 'string' }
    assert.deepEqual(lintSchema(schema, { rules: ['schema-deterministic-types'] }), [])
  })

  describe('schema-is-valid', () => {
    it('fails an unknown type name', () => {
      const schema = eventSchema()
      props(schema).count!.type = 'int'
      assert.ok(found(schema, 'schema-is-valid').includes('error /properties/count/type'))
    })
    it('fails a required list that is not an array', () => {
      const schema = eventSchema()
      schema.required = '$schema'
      assert.deepEqual(found(schema, 'schema-is-valid'), ['error /required'])
    })
    it('checks a 2020-12 schema against the 2020-12 meta-schema', () => {
      const schema = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', $defs: { a: { type: 'string' } } }
      assert.deepEqual(found(schema, 'schema-is-valid'), [])
      assert.deepEqual(found({ ...schema, $defs: 3 }, 'schema-is-valid'), ['error /$defs'])
    })
  })

  describe('schema-is-secure', () => {
    it('passes patterns and formats that have maxLength', () => {
      assert.deepEqual(found(eventSchema(), 'schema-is-secure'), [])
    })
    it('fails a pattern without maxLength', () => {
      const schema = eventSchema()
      props(schema).code = { type: 'string', pattern: '^[a-z]+$' }
      assert.deepEqual(found(schema, 'schema-is-secure'), ['error /properties/code'])
    })
    it('fails a format without maxLength, however deep', () => {
      const schema = eventSchema()
      props(schema).tags = { type: 'array', items: { type: 'string', format: 'uri' } }
      assert.deepEqual(found(schema, 'schema-is-secure'), ['error /properties/tags/items'])
    })
    it('fails patternProperties without propertyNames.maxLength', () => {
      const schema = eventSchema()
      props(schema).labels = { type: 'object', patternProperties: { '^x_': { type: 'string' } } }
      assert.deepEqual(found(schema, 'schema-is-secure'), ['error /properties/labels'])
    })
    it('fails uniqueItems over objects without maxItems', () => {
      const schema = eventSchema()
      props(schema).tags = { type: 'array', uniqueItems: true, items: { type: 'object', properties: {} } }
      assert.deepEqual(found(schema, 'schema-is-secure'), ['error /properties/tags'])
      props(schema).tags!.maxItems = 10
      assert.deepEqual(found(schema, 'schema-is-secure'), [])
    })
    it('says why the limit is needed', () => {
      const schema = eventSchema()
      props(schema).code = { type: 'string', pattern: '^[a-z]+$' }
      const [finding] = lintSchema(schema, { rules: ['schema-is-secure'] })
      assert.match(finding!.message, /pattern.*maxLength.*slow pattern matching/)
    })
  })

  describe('schema-snake-case-properties', () => {
    it('fails camelCase and leading digits, nested and in allOf', () => {
      const schema = eventSchema()
      props(schema).userName = { type: 'string' }
      props(schema).meta!.properties = { ...(props(schema).meta!.properties as object), Stream_Name: { type: 'string' } }
      schema.allOf = [{ properties: { '2nd': { type: 'string' } } }]
      assert.deepEqual(found(schema, 'schema-snake-case-properties').sort(), [
        'error /allOf/0/properties/2nd',
        'error /properties/meta/properties/Stream_Name',
        'error /properties/userName',
      ])
    })
    it('accepts $schema and digits after the first letter', () => {
      const schema = eventSchema()
      props(schema).page_id2 = { type: 'integer', minimum: 0, maximum: 1 }
      assert.deepEqual(found(schema, 'schema-snake-case-properties'), [])
    })
    it('does not look inside array items or maps, like jsonschema-tools', () => {
      const schema = eventSchema()
      props(schema).tags = { type: 'array', items: { type: 'object', properties: { camelCase: { type: 'string' } } } }
      assert.deepEqual(found(schema, 'schema-snake-case-properties'), [])
    })
  })

  describe('schema-deterministic-types', () => {
    const deterministic = (change: (s: JsonObject) => void): string[] => {
      const schema = eventSchema()
      change(schema)
      return found(schema, 'schema-deterministic-types')
    }
    it('passes single types, typed arrays and typed maps', () => {
      assert.deepEqual(deterministic(() => {}), [])
    })
    it('fails a union type', () => {
      assert.deepEqual(deterministic((s) => (props(s).count!.type = ['integer', 'null'])), ['error /properties/count/type'])
    })
    it('fails an array without items.type', () => {
      assert.deepEqual(deterministic((s) => (props(s).tags = { type: 'array' })), ['error /properties/tags'])
      assert.deepEqual(deterministic((s) => (props(s).tags = { type: 'array', items: {} })), ['error /properties/tags'])
    })
    it('fails a union inside array items', () => {
      assert.deepEqual(
        deterministic((s) => (props(s).tags = { type: 'array', items: { type: ['string', 'integer'] } })),
        ['error /properties/tags/items/type'],
      )
    })
    it('fails an object with neither properties nor a map schema', () => {
      assert.deepEqual(deterministic((s) => (props(s).labels = { type: 'object' })), ['error /properties/labels'])
      assert.deepEqual(
        deterministic((s) => (props(s).labels = { type: 'object', additionalProperties: true })),
        ['error /properties/labels'],
      )
    })
    it('fails an untyped value in a map', () => {
      assert.deepEqual(
        deterministic((s) => (props(s).labels = { type: 'object', additionalProperties: { type: ['string', 'null'] } })),
        ['error /properties/labels/additionalProperties/type'],
      )
    })
    it('fails a property without a type', () => {
      assert.deepEqual(deterministic((s) => (props(s).anything = { description: 'no type' })), ['error /properties/anything'])
    })
    it('fails null in an enum', () => {
      assert.deepEqual(
        deterministic((s) => (props(s).action!.enum = ['create', null])),
        ['error /properties/action/enum'],
      )
    })
    it('passes oneOf branches of one type with the same required list', () => {
      assert.deepEqual(
        deterministic((s) => {
          props(s).choice = {
            type: 'object',
            oneOf: [
              { type: 'object', required: ['a'], properties: { a: { type: 'string' } } },
              { type: 'object', required: ['a'], properties: { a: { type: 'string' }, b: { type: 'string' } } },
            ],
          }
        }),
        [],
      )
    })
    it('fails oneOf branches of different types', () => {
      assert.deepEqual(
        deterministic((s) => (props(s).choice = { type: 'string', oneOf: [{ type: 'string' }, { type: 'integer' }] })),
        ['error /properties/choice/oneOf'],
      )
    })
    it('fails object oneOf branches that require different properties', () => {
      assert.deepEqual(
        deterministic((s) => {
          props(s).choice = {
            type: 'object',
            oneOf: [
              { type: 'object', required: ['a'], properties: { a: { type: 'string' } } },
              { type: 'object', properties: { b: { type: 'string' } } },
            ],
          }
        }),
        ['error /properties/choice/oneOf'],
      )
    })
  })

  describe('schema-required-properties-exist', () => {
    it('fails a required name with no property', () => {
      const schema = eventSchema()
      ;(schema.required as string[]).push('dt')
      assert.deepEqual(found(schema, 'schema-required-properties-exist'), ['error /required'])
    })
    it('fails nested, and when there are no properties at all', () => {
      const schema = eventSchema()
      props(schema).meta!.required = ['stream', 'id']
      props(schema).target = { type: 'object', required: ['id'] }
      assert.deepEqual(found(schema, 'schema-required-properties-exist').sort(), [
        'error /properties/meta/required',
        'error /properties/target/required',
      ])
    })
  })

  describe('schema-examples-$schema-matches-schema-$id', () => {
    it('fails an example naming another schema', () => {
      const schema = eventSchema()
      ;(schema.examples as Node[])[0]!.$schema = '/test/lint/0.9.0'
      assert.deepEqual(found(schema, 'schema-examples-$schema-matches-schema-$id'), ['error /examples/0/$schema'])
    })
    it('is not checked when the schema has no $schema property', () => {
      const schema = eventSchema()
      delete props(schema).$schema
      ;(schema.examples as Node[])[0]!.$schema = '/elsewhere/1.0.0'
      assert.deepEqual(found(schema, 'schema-examples-$schema-matches-schema-$id'), [])
    })
  })

  describe('schema-examples-are-valid', () => {
    it('fails an example that does not validate', () => {
      const schema = eventSchema()
      ;(schema.examples as Node[]).push({ $schema: '/test/lint/1.0.0', meta: { stream: '' } })
      assert.deepEqual(found(schema, 'schema-examples-are-valid'), ['error /examples/1'])
    })
    it('checks formats', () => {
      const schema = eventSchema()
      ;((schema.examples as Node[])[0]!.meta as Node).dt = 'yesterday'
      const findings = lintSchema(schema, { rules: ['schema-examples-are-valid'] })
      assert.equal(findings.length, 1)
      assert.match(findings[0]!.message, /date-time/)
    })
    it('warns when an event schema has no examples, but not for a fragment', () => {
      const schema = eventSchema()
      delete schema.examples
      assert.deepEqual(found(schema, 'schema-examples-are-valid'), ['warning '])
      schema.title = 'fragment/lint'
      assert.deepEqual(found(schema, 'schema-examples-are-valid', { path: 'fragment/lint' }), [])
    })
    it('validates schemas that inlined the same fragment twice (regression: ajv 8 refused the repeated $id)', () => {
      const schema = eventSchema()
      const fragment = { $id: '/fragment/thing/1.0.0', type: 'object', properties: { id: { type: 'integer' } } }
      props(schema).prior = structuredClone(fragment)
      props(schema).current = structuredClone(fragment)
      ;(schema.examples as Node[])[0]!.prior = { id: 1 }
      assert.deepEqual(found(schema, 'schema-examples-are-valid'), [])
      ;(schema.examples as Node[])[0]!.current = { id: 'x' }
      assert.deepEqual(found(schema, 'schema-examples-are-valid'), ['error /examples/0'])
    })
    it('lints the same schema twice (ajv does not keep it by $id)', () => {
      assert.deepEqual(found(eventSchema(), 'schema-examples-are-valid'), [])
      assert.deepEqual(found(eventSchema(), 'schema-examples-are-valid'), [])
    })
  })

  describe('schema-enforced-numeric-bounds', () => {
    it('fails numbers without bounds, however deep', () => {
      const schema = eventSchema()
      props(schema).tags = { type: 'array', items: { type: 'integer' } }
      assert.deepEqual(found(schema, 'schema-enforced-numeric-bounds'), [
        'error /properties/tags/items',
        'error /properties/tags/items',
      ])
    })
    it('fails bounds outside the safe-integer range by default', () => {
      const schema = eventSchema()
      props(schema).count = { type: 'integer', minimum: 0, maximum: 2 ** 64 }
      assert.deepEqual(found(schema, 'schema-enforced-numeric-bounds'), ['error /properties/count/maximum'])
    })
    it('uses configured bounds, or none', () => {
      const schema = eventSchema()
      assert.deepEqual(found(schema, 'schema-enforced-numeric-bounds', { enforcedNumericBounds: [0, 10] }), [
        'error /properties/count/maximum',
        'error /properties/ratio/minimum',
      ])
      props(schema).count = { type: 'integer' }
      assert.deepEqual(found(schema, 'schema-enforced-numeric-bounds', { enforcedNumericBounds: false }), [])
    })
  })

  describe('title-matches-path', () => {
    it('fails a title that is not the directory', () => {
      assert.deepEqual(found(eventSchema(), 'title-matches-path', { path: 'test/other' }), ['error /title'])
    })
    it('accepts leading and trailing slashes in the path, and is skipped without one', () => {
      assert.deepEqual(found(eventSchema(), 'title-matches-path', { path: '/test/lint/' }), [])
      assert.deepEqual(lintSchema(eventSchema(), { rules: ['title-matches-path'] }), [])
    })
  })

  describe('id-matches-title-and-version', () => {
    it('fails an $id of the wrong form', () => {
      for (const id of ['test/lint/1.0.0', '/test/lint/1.0', '/test/lint/latest', undefined]) {
        const schema = eventSchema()
        schema.$id = id
        assert.deepEqual(found(schema, 'id-matches-title-and-version'), ['error /$id'], String(id))
      }
    })
    it('fails an $id naming another title or version', () => {
      const schema = eventSchema()
      schema.$id = '/test/other/1.0.0'
      assert.deepEqual(found(schema, 'id-matches-title-and-version'), ['error /$id'])
      assert.deepEqual(found(eventSchema(), 'id-matches-title-and-version', { version: '1.1.0' }), ['error /$id'])
    })
    it('accepts a prerelease version', () => {
      const schema = eventSchema()
      schema.$id = '/test/lint/1.0.0-beta.1'
      assert.deepEqual(found(schema, 'id-matches-title-and-version', { version: '1.0.0-beta.1' }), [])
    })
  })

  describe('required-common-fields', () => {
    it('fails an event schema without meta.stream', () => {
      const schema = eventSchema()
      delete (props(schema).meta!.properties as Node).stream
      props(schema).meta!.required = []
      assert.deepEqual(found(schema, 'required-common-fields'), ['error /properties/meta/properties/stream'])
    })
    it('fails an event schema without $schema or meta', () => {
      const schema = eventSchema()
      delete props(schema).$schema
      delete props(schema).meta
      assert.deepEqual(found(schema, 'required-common-fields'), ['error /properties/$schema', 'error /properties/meta'])
    })
    it('fails when the common fields are optional', () => {
      const schema = eventSchema()
      schema.required = ['meta']
      props(schema).meta!.required = []
      assert.deepEqual(found(schema, 'required-common-fields'), ['error /required', 'error /properties/meta/required'])
    })
    it('does not apply to fragments', () => {
      const fragment = { title: 'fragment/eventplane/http', $id: '/fragment/eventplane/http/1.2.0', type: 'object', properties: {} }
      assert.deepEqual(found(fragment, 'required-common-fields', { path: 'fragment/eventplane/http' }), [])
    })
  })
})

describe('shouldSkip', () => {
  const skip = {
    'fragment/eventplane/http/1.2.0': ['schema-version-compatibility'],
    '^/mediawiki/job/.*$': ['schema-deterministic-types'],
    '/webrequest/1.0.0': ['schema-enforced-numeric-bounds', 'schema-deterministic-types'],
  }
  it('tests each key as an unanchored regular expression against $id', () => {
    assert.equal(shouldSkip('/fragment/eventplane/http/1.2.0', 'schema-version-compatibility', skip), true)
    assert.equal(shouldSkip('/other/fragment/eventplane/http/1.2.0', 'schema-version-compatibility', skip), true)
    assert.equal(shouldSkip('/fragment/eventplane/http/1x2y0', 'schema-version-compatibility', skip), true, '. matches any character')
    assert.equal(shouldSkip('/fragment/eventplane/http/1.1.0', 'schema-version-compatibility', skip), false)
  })
  it('skips only the rules listed', () => {
    assert.equal(shouldSkip('/fragment/eventplane/http/1.2.0', 'schema-deterministic-types', skip), false)
    assert.equal(shouldSkip('/webrequest/1.0.0', 'schema-deterministic-types', skip), true)
    assert.equal(shouldSkip('/mediawiki/job/1.0.0', 'schema-deterministic-types', skip), true)
    assert.equal(shouldSkip('/x/mediawiki/job/1.0.0', 'schema-deterministic-types', skip), false, 'anchored keys stay anchored')
  })
  it('matches a missing $id as the empty string', () => {
    assert.equal(shouldSkip(undefined, 'schema-is-valid', { '.*': ['schema-is-valid'] }), true)
    assert.equal(shouldSkip(undefined, 'schema-is-valid', { '.+': ['schema-is-valid'] }), false)
    assert.equal(shouldSkip('/a/1.0.0', 'schema-is-valid', undefined), false)
  })
  it('refuses a key that is not a regular expression', () => {
    assert.throws(
      () => shouldSkip('/a/1.0.0', 'schema-is-valid', { '(': ['schema-is-valid'] }),
      (error: unknown) => isEventplaneError(error) && error.code === 'EVP_CONFIG_INVALID',
    )
  })
  it('is applied by lintSchema', () => {
    const schema = eventSchema()
    props(schema).userName = { type: ['string', 'null'] }
    const all = lintSchema(schema, options).map((f) => f.rule)
    assert.ok(all.includes('schema-snake-case-properties') && all.includes('schema-deterministic-types'))
    const skipped = lintSchema(schema, {
      ...options,
      skipSchemaTestCases: { '/test/lint/.*': ['schema-snake-case-properties', 'schema-deterministic-types'] },
    })
    assert.deepEqual(skipped, [])
  })
})
