import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { diffSchemas, formatDiff } from '../../src/schemas/diff.ts'

const v1 = {
  title: 'fragment/eventplane/http',
  $id: '/fragment/eventplane/http/1.1.0',
  type: 'object',
  required: ['http'],
  properties: {
    http: {
      type: 'object',
      properties: {
        client_ip: { type: 'string' },
        method: { type: 'string', maxLength: 16 },
        status_code: { type: 'integer' },
      },
    },
  },
}

const v2 = {
  $id: '/fragment/eventplane/http/1.2.0',
  title: 'fragment/eventplane/http',
  type: 'object',
  required: ['http'],
  properties: {
    http: {
      type: 'object',
      properties: {
        method: { type: 'string', maxLength: 32 },
        status_code: { type: 'integer' },
        has_cookies: { type: 'boolean' },
      },
    },
  },
}

describe('diffSchemas', () => {
  it('finds nothing between equal schemas, whatever the key order', () => {
    assert.deepEqual(diffSchemas(v1, structuredClone(v1)), [])
    assert.deepEqual(diffSchemas({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }), [])
  })

  it('reports added, removed and changed entries with JSON Pointers, sorted by path', () => {
    assert.deepEqual(diffSchemas(v1, v2), [
      { kind: 'changed', path: '/$id', oldValue: '/fragment/eventplane/http/1.1.0', newValue: '/fragment/eventplane/http/1.2.0' },
      { kind: 'removed', path: '/properties/http/properties/client_ip', oldValue: { type: 'string' } },
      { kind: 'added', path: '/properties/http/properties/has_cookies', newValue: { type: 'boolean' } },
      { kind: 'changed', path: '/properties/http/properties/method/maxLength', oldValue: 16, newValue: 32 },
    ])
  })

  it('compares lists of plain values as sets', () => {
    assert.deepEqual(diffSchemas({ required: ['a', 'b'] }, { required: ['b', 'c'] }), [
      { kind: 'removed', path: '/required/0', oldValue: 'a' },
      { kind: 'added', path: '/required/1', newValue: 'c' },
    ])
    assert.deepEqual(diffSchemas({ enum: ['x', 'y'] }, { enum: ['y', 'x'] }), [
      { kind: 'changed', path: '/enum', oldValue: ['x', 'y'], newValue: ['y', 'x'] },
    ])
  })

  it('compares other lists position by position', () => {
    assert.deepEqual(diffSchemas({ oneOf: [{ type: 'string' }, { type: 'integer' }] }, { oneOf: [{ type: 'number' }] }), [
      { kind: 'changed', path: '/oneOf/0/type', oldValue: 'string', newValue: 'number' },
      { kind: 'removed', path: '/oneOf/1', oldValue: { type: 'integer' } },
    ])
  })

  it('reports a change of kind as one change', () => {
    assert.deepEqual(diffSchemas({ additionalProperties: false }, { additionalProperties: { type: 'string' } }), [
      { kind: 'changed', path: '/additionalProperties', oldValue: false, newValue: { type: 'string' } },
    ])
    assert.deepEqual(diffSchemas('a', 'b'), [{ kind: 'changed', path: '', oldValue: 'a', newValue: 'b' }])
  })

  it('escapes pointer segments and sorts indexes numerically', () => {
    const a = { properties: { 'a/b': { type: 'string' } }, examples: Array.from({ length: 12 }, (_, i) => ({ i })) }
    const b = { properties: {}, examples: Array.from({ length: 12 }, (_, i) => ({ i: i === 2 || i === 10 ? -1 : i })) }
    assert.deepEqual(
      diffSchemas(a, b).map((e) => e.path),
      ['/examples/2/i', '/examples/10/i', '/properties/a~1b'],
    )
  })
})

describe('formatDiff', () => {
  it('renders one line per entry and a count', () => {
    assert.equal(
      formatDiff(diffSchemas(v1, v2)),
      [
        '~ /$id: "/fragment/eventplane/http/1.1.0" → "/fragment/eventplane/http/1.2.0"',
        '- /properties/http/properties/client_ip: {"type":"string"}',
        '+ /properties/http/properties/has_cookies: {"type":"boolean"}',
        '~ /properties/http/properties/method/maxLength: 16 → 32',
        '4 differences: 1 added, 1 removed, 2 changed',
        '',
      ].join('\n'),
    )
  })

  it('says so when there is nothing', () => {
    assert.equal(formatDiff([]), 'no differences\n')
  })

  it('cuts long values and names the root', () => {
    const text = formatDiff(diffSchemas('x'.repeat(50), 1), { maxValueLength: 10 })
    assert.equal(text, `~ /: "xxxxxxxx… → 1\n1 difference: 0 added, 0 removed, 1 changed\n`)
  })

  it('is stable: the same schemas give the same text, whatever the key order', () => {
    const reversed = (value: unknown): unknown =>
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversed(v)]))
        : value
    const shuffled = reversed(v2)
    assert.equal(formatDiff(diffSchemas(v1, v2)), formatDiff(diffSchemas(v1, structuredClone(v2))))
    assert.equal(formatDiff(diffSchemas(v1, shuffled)), formatDiff(diffSchemas(v1, v2)))
  })
})
