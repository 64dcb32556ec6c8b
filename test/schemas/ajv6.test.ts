/**
 * EventGate's (ajv 6) view of our ajv 8 validation errors: for each keyword, an event that
 * fails it, validated by the intake's own ajv setup, must give ajv 6's `dataPath` and message
 * as EventGate answered them. The expected strings are ajv 6.12's wording (lib/dot/errors.def).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dataPath, eventGateErrors, eventGateErrorsText } from '../../src/schemas/ajv6.ts'
import { newAjv } from '../../src/schemas/rules-ajv.ts'

const ajv = newAjv('draft-07', true, true)

/** [name, schema, event, expected [dataPath, message] of every error]. */
const cases: Array<[string, object, unknown, Array<[string, string]>]> = [
  ['type', { properties: { test: { type: 'string' } } }, { test: 1 }, [['.test', 'should be string']]],
  ['type, a union', { properties: { test: { type: ['string', 'null'] } } }, { test: 1 }, [['.test', 'should be string,null']]],
  ['required', { properties: { meta: { type: 'object', required: ['dt'] } } }, { meta: {} }, [['.meta', "should have required property 'dt'"]]],
  ['additionalProperties', { properties: { a: {} }, additionalProperties: false }, { a: 1, b: 2 }, [['', 'should NOT have additional properties']]],
  ['enum', { properties: { e: { enum: ['x', 'y'] } } }, { e: 'z' }, [['.e', 'should be equal to one of the allowed values']]],
  ['const', { properties: { c: { const: 1 } } }, { c: 2 }, [['.c', 'should be equal to constant']]],
  ['format', { properties: { dt: { type: 'string', format: 'date-time' } } }, { dt: 'yesterday' }, [['.dt', 'should match format "date-time"']]],
  ['pattern', { properties: { p: { type: 'string', pattern: '^a+$' } } }, { p: 'b' }, [['.p', 'should match pattern "^a+$"']]],
  ['minLength', { properties: { s: { type: 'string', minLength: 3 } } }, { s: 'ab' }, [['.s', 'should NOT be shorter than 3 characters']]],
  ['maxLength', { properties: { s: { type: 'string', maxLength: 1 } } }, { s: 'ab' }, [['.s', 'should NOT be longer than 1 characters']]],
  ['minItems', { properties: { l: { type: 'array', minItems: 2 } } }, { l: [1] }, [['.l', 'should NOT have fewer than 2 items']]],
  ['maxItems', { properties: { l: { type: 'array', maxItems: 1 } } }, { l: [1, 2] }, [['.l', 'should NOT have more than 1 items']]],
  ['minProperties', { properties: { o: { type: 'object', minProperties: 1 } } }, { o: {} }, [['.o', 'should NOT have fewer than 1 properties']]],
  ['maximum', { properties: { n: { type: 'number', maximum: 5 } } }, { n: 6 }, [['.n', 'should be <= 5']]],
  ['exclusiveMinimum', { properties: { n: { type: 'number', exclusiveMinimum: 0 } } }, { n: 0 }, [['.n', 'should be > 0']]],
  ['multipleOf', { properties: { n: { type: 'number', multipleOf: 2 } } }, { n: 3 }, [['.n', 'should be multiple of 2']]],
  ['uniqueItems', { properties: { l: { type: 'array', uniqueItems: true } } }, { l: [1, 1] }, [['.l', 'should NOT have duplicate items (items ## 0 and 1 are identical)']]],
  ['anyOf', { properties: { a: { anyOf: [{ type: 'string' }, { type: 'number' }] } } }, { a: true }, [['.a', 'should be string'], ['.a', 'should be number'], ['.a', 'should match some schema in anyOf']]],
  ['oneOf', { properties: { a: { oneOf: [{ type: 'number' }, { type: 'integer' }] } } }, { a: 1 }, [['.a', 'should match exactly one schema in oneOf']]],
  ['not', { properties: { a: { not: { type: 'string' } } } }, { a: 'x' }, [['.a', 'should NOT be valid']]],
  ['contains', { properties: { l: { type: 'array', contains: { type: 'string' } } } }, { l: [1] }, [['.l[0]', 'should be string'], ['.l', 'should contain a valid item']]],
  ['propertyNames', { properties: { o: { type: 'object', propertyNames: { pattern: '^[a-z]+$' } } } }, { o: { B: 1 } }, [['.o', 'should match pattern "^[a-z]+$"'], ['.o', "property name 'B' is invalid"]]],
  ['dependencies', { dependencies: { a: ['b'] } }, { a: 1 }, [['', 'should have property b when property a is present']]],
  ['if / then', { if: { properties: { a: { const: 1 } } }, then: { required: ['b'] } }, { a: 1 }, [['', "should have required property 'b'"], ['', 'should match "then" schema']]],
  ['false schema', { properties: { a: false } }, { a: 1 }, [['.a', 'boolean schema is false']]],
  // Paths: array items in brackets, names that are not identifiers quoted and escaped, a
  // property named with digits (in an object) quoted, not taken for an index.
  ['an array item', { properties: { l: { type: 'array', items: { type: 'string' } } } }, { l: ['a', 2] }, [['.l[1]', 'should be string']]],
  ['a header name', { properties: { h: { type: 'object', additionalProperties: { type: 'string' } } } }, { h: { 'user-agent': 1 } }, [[".h['user-agent']", 'should be string']]],
  ['a name with a quote and a slash', { properties: { h: { type: 'object', additionalProperties: { type: 'string' } } } }, { h: { "it's/a~b": 1 } }, [[".h['it\\'s/a~b']", 'should be string']]],
  ['a property named 0', { properties: { o: { type: 'object', additionalProperties: { type: 'string' } } } }, { o: { '0': 1 } }, [[".o['0']", 'should be string']]],
  ['nested', { properties: { a: { type: 'array', items: { type: 'object', properties: { $b: { type: 'integer' } } } } } }, { a: [{}, { $b: 'x' }] }, [['.a[1].$b', 'should be integer']]],
]

for (const [name, schema, event, expected] of cases) {
  test(`ajv 6 view: ${name}`, () => {
    const validate = ajv.compile(schema)
    assert.equal(validate(event), false, 'the event must fail the schema')
    const errors = eventGateErrors(validate.errors!, event)
    assert.deepEqual(
      errors.map((e) => [e.dataPath, e.message]),
      expected,
    )
    for (const error of errors) {
      assert.ok(typeof error.instancePath === 'string' && typeof error.schemaPath === 'string' && typeof error.keyword === 'string', 'ajv 8 fields kept')
    }
    assert.equal(eventGateErrorsText(errors), expected.map(([path, message]) => `'${path}' ${message}`).join(', '))
  })
}

test('ajv 6 view: dataPath of the event itself, and of a path the data does not have', () => {
  assert.equal(dataPath('', { a: 1 }), '')
  assert.equal(dataPath('/a/0/b', {}), ".a['0'].b")
  assert.equal(dataPath('/a/0/b', { a: [{}] }), '.a[0].b')
  assert.equal(dataPath('/a~1b/c~0d', {}), "['a/b']['c~d']", 'JSON Pointer escapes undone, then quoted')
})
