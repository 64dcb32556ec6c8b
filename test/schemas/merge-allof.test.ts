import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EventplaneError } from '../../src/core/errors.ts'
import { mergeAllOf } from '../../src/schemas/index.ts'

test('properties are unioned and a shared property is merged recursively', () => {
  const merged = mergeAllOf({
    type: 'object',
    allOf: [
      { properties: { a: { type: 'string', description: 'first' }, meta: { type: 'object', properties: { x: { type: 'string' } } } } },
      { properties: { a: { maxLength: 10, description: 'second' }, meta: { properties: { y: { type: 'integer' } } } } },
    ],
  })
  assert.deepEqual(merged, {
    type: 'object',
    properties: {
      a: { type: 'string', description: 'first', maxLength: 10 },
      meta: { type: 'object', properties: { x: { type: 'string' }, y: { type: 'integer' } } },
    },
  })
})

test('required becomes the sorted union; the schema own keywords come first', () => {
  const merged = mergeAllOf({ title: 'own', required: ['z'], allOf: [{ title: 'fragment', required: ['meta', '$schema'] }] })
  assert.deepEqual(merged, { title: 'own', required: ['$schema', 'meta', 'z'] })
})

test('enums intersect, bounds tighten, examples union', () => {
  const merged = mergeAllOf({
    allOf: [
      { enum: ['b', 'a', 'c'], minimum: 1, maximum: 10, examples: [1] },
      { enum: ['c', 'a'], minimum: 3, maximum: 5, examples: [2, 1] },
    ],
  })
  assert.deepEqual(merged, { enum: ['a', 'c'], minimum: 3, maximum: 5, examples: [1, 2] })
})

test('nested allOf inside properties, items and definitions is merged too', () => {
  const merged = mergeAllOf({
    properties: { p: { allOf: [{ type: 'object' }, { properties: { q: { type: 'string' } } }] } },
    items: { allOf: [{ type: 'string' }, { maxLength: 3 }] },
    definitions: { d: { allOf: [{ type: 'integer' }, { minimum: 0 }] } },
  })
  assert.deepEqual(merged, {
    properties: { p: { type: 'object', properties: { q: { type: 'string' } } } },
    items: { type: 'string', maxLength: 3 },
    definitions: { d: { type: 'integer', minimum: 0 } },
  })
})

test('two patterns stay side by side under allOf', () => {
  assert.deepEqual(mergeAllOf({ allOf: [{ pattern: '^a' }, { pattern: 'b$' }] }), { allOf: [{ pattern: '^a' }, { pattern: 'b$' }] })
})

test('additionalProperties false from a fragment closes the merged schema', () => {
  const merged = mergeAllOf({ allOf: [{ additionalProperties: false, properties: { a: {} } }, { properties: { b: { type: 'string' } } }] })
  assert.deepEqual(merged, { additionalProperties: false, properties: { a: {}, b: { type: 'string' } } })
})

test('members that cannot be merged are EVP_SCHEMA_MERGE_CONFLICT naming the keyword', () => {
  for (const allOf of [[{ type: 'string' }, { type: 'integer' }], [{ format: 'uri' }, { format: 'date-time' }], [{ enum: ['a'] }, { enum: ['b'] }]]) {
    assert.throws(
      () => mergeAllOf({ allOf }),
      (error: unknown) => error instanceof EventplaneError && error.code === 'EVP_SCHEMA_MERGE_CONFLICT' && /allOf members disagree/.test(error.message),
    )
  }
})
