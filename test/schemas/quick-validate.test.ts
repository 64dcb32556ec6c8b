/**
 * quickValidate (a walk of the schema, for lint's example checks) against ajv, the validator it
 * stands in for: on every example of the bundled and Wikimedia's primary repository and tens of
 * thousands of seeded mutations of them, wherever it answers it answers as ajv does.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compileForData } from '../../src/schemas/rules-ajv.ts'
import { quickValidate } from '../../src/schemas/quick-validate.ts'
import { indexRepository, openRepository } from '../../src/schemas/index.ts'
import { seededRandom as random } from '../../bench/lib.ts'
import { bundledSchemas, fixtureRepo, fixtureSkipped } from '../helpers.ts'

const oddValues: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, '', 'x', 'é😀', '2026-11-30T18:00:00Z', '2026-11-30T18:00:00.000Z', 'not a date', 'https://example.org/', 'a'.repeat(300), [], [1, 1], {}, { a: 1 }]

/** A copy of `value` with one change somewhere: a value replaced, a key removed or added, an item added. */
function mutate(value: unknown, next: () => number): unknown {
  const copy = structuredClone(value)
  const containers: Array<Record<string, unknown> | unknown[]> = []
  const walk = (node: unknown) => {
    if (Array.isArray(node)) {
      containers.push(node)
      node.forEach(walk)
    } else if (node !== null && typeof node === 'object') {
      containers.push(node as Record<string, unknown>)
      Object.values(node).forEach(walk)
    }
  }
  walk(copy)
  if (containers.length === 0) return oddValues[Math.floor(next() * oddValues.length)]
  const target = containers[Math.floor(next() * containers.length)]!
  const odd = oddValues[Math.floor(next() * oddValues.length)]
  if (Array.isArray(target)) {
    if (target.length > 0 && next() < 0.6) target[Math.floor(next() * target.length)] = odd
    else target.push(odd)
  } else {
    const keys = Object.keys(target)
    const choice = next()
    if (keys.length > 0 && choice < 0.4) target[keys[Math.floor(next() * keys.length)]!] = odd
    else if (keys.length > 0 && choice < 0.7) delete target[keys[Math.floor(next() * keys.length)]!]
    else target[next() < 0.5 ? 'extra_field' : 'Bad-Name'] = odd
  }
  return copy
}

async function examplesOf(root: string): Promise<Array<{ schema: Record<string, unknown>; example: unknown; where: string }>> {
  const index = await indexRepository(openRepository(root))
  const out: Array<{ schema: Record<string, unknown>; example: unknown; where: string }> = []
  for (const title of index.titles.values()) {
    for (const version of title.versions) {
      const schema = await index.read(version.path)
      const examples = Array.isArray(schema['examples']) ? schema['examples'] : []
      examples.forEach((example, i) => out.push({ schema, example, where: `${title.title} ${version.version} example ${i}` }))
    }
  }
  return out
}

async function agreesWithAjv(root: string, seed: number, mutationsPerExample: number) {
  const next = random(seed)
  let decided = 0
  let total = 0
  for (const { schema, example, where } of await examplesOf(root)) {
    let ajv: ((data: unknown) => boolean) | undefined
    try {
      ajv = compileForData(schema) as (data: unknown) => boolean
    } catch {
      continue // a schema ajv cannot compile: lint reports that, and quickValidate is not asked
    }
    const { examples: _examples, ...rules } = schema
    for (let i = 0; i <= mutationsPerExample; i++) {
      const data = i === 0 ? example : mutate(example, next)
      const quick = quickValidate(rules, data)
      total++
      if (quick === undefined) continue
      decided++
      assert.equal(quick, ajv(data), `${where}, mutation ${i} (seed ${seed}): quickValidate says ${quick}, ajv ${!quick} for ${JSON.stringify(data).slice(0, 300)}`)
    }
  }
  return { decided, total }
}

describe('quickValidate', () => {
  test('answers as ajv does on the bundled examples and 200 mutations of each', async () => {
    const { decided, total } = await agreesWithAjv(bundledSchemas, 20261130, 200)
    assert.ok(total > 1000)
    assert.ok(decided / total > 0.95, `it decides most: ${decided} of ${total}`)
  })

  test("answers as ajv does on Wikimedia's primary repository and 100 mutations of each example", { skip: fixtureSkipped }, async () => {
    const { decided, total } = await agreesWithAjv(fixtureRepo, 7, 100)
    assert.ok(total > 5000)
    assert.ok(decided / total > 0.9, `it decides most: ${decided} of ${total}`)
  })

  test('keyword by keyword', () => {
    const cases: Array<[unknown, unknown, boolean | undefined]> = [
      [{ type: 'string', maxLength: 2 }, '😀😀', true], // code points, as ajv counts them
      [{ type: 'string', maxLength: 1 }, '😀😀', false],
      [{ type: 'string', pattern: '^\\p{L}+$' }, 'é', true], // unicode patterns
      [{ type: 'integer' }, 1.0, true],
      [{ type: 'integer' }, 1.5, false],
      [{ type: 'number', multipleOf: 0.5 }, 1.5, true],
      [{ type: 'number', multipleOf: 1 }, 1e21, undefined], // ajv's parseInt check and this one disagree there
      [{ type: 'object', properties: { a: { type: 'string' } }, patternProperties: { '^x_': { type: 'integer' } }, additionalProperties: false }, { a: 'y', x_1: 2 }, true],
      [{ type: 'object', properties: { a: { type: 'string' } }, patternProperties: { '^x_': { type: 'integer' } }, additionalProperties: false }, { a: 'y', b: 2 }, false],
      [{ type: 'array', items: [{ type: 'string' }], additionalItems: false }, ['a', 'b'], false],
      [{ type: 'array', items: { type: 'string' }, additionalItems: false }, ['a', 'b'], true], // additionalItems needs a tuple
      [{ type: 'string', format: 'date-time' }, '2026-11-30T18:00:00Z', true],
      [{ type: 'string', format: 'date-time' }, '2026-13-30T18:00:00Z', false],
      [{ format: 'date-time' }, 5, true], // formats apply to strings
      [{ type: 'string', format: 'no-such-format' }, 'x', undefined],
      [{ $ref: '#/definitions/a', definitions: { a: { type: 'string' } } }, 'x', undefined],
      [{ if: { properties: { a: { const: 1 } } }, then: { required: ['b'] } }, { a: 1 }, false],
      [{ oneOf: [{ type: 'string' }, { maxLength: 3 }] }, 'ab', false],
      [{ nullable: true }, null, undefined], // not draft-07
      [{ type: 'string', pattern: '([' }, 'x', undefined],
    ]
    // Nested deeper than the stack: not sure, rather than a crash.
    let deep: Record<string, unknown> = { type: 'string' }
    let value: unknown = 'x'
    for (let i = 0; i < 100_000; i++) {
      deep = { type: 'object', properties: { a: deep } }
      value = { a: value }
    }
    assert.equal(quickValidate(deep, value), undefined)
    for (const [schema, data, expected] of cases) {
      assert.equal(quickValidate(schema, data), expected, `${JSON.stringify(schema)} on ${JSON.stringify(data)}`)
      if (expected !== undefined) assert.equal((compileForData(schema as Record<string, unknown>) as (d: unknown) => boolean)(data), expected, `ajv agrees: ${JSON.stringify(schema)}`)
    }
  })
})
