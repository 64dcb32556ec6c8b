import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { EventplaneError } from '../../src/core/errors.ts'
import { compileFilter, type FilterLimits } from '../../src/streams/filter.ts'

const limits: FilterLimits = { maxLength: 2000, maxNodes: 200, maxNesting: 2, budget: 100_000 }
const filter = (expression: string, overrides: Partial<FilterLimits> = {}) => compileFilter({ expression }, { ...limits, ...overrides })
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const refusal = (expression: string, overrides: Partial<FilterLimits> = {}) =>
  assert.throws(
    () => filter(expression, overrides),
    (error) => error instanceof EventplaneError && error.code === 'EVP_FILTER_INVALID',
  )

/** The verdict, and how long it took: the server runs filters on its only thread. */
function timed(expression: string, event: unknown): { verdict: string; ms: number } {
  const f = filter(expression)
  const start = performance.now()
  const verdict = f.test(event)
  return { verdict, ms: performance.now() - start }
}

// The event of the report: a 3.9 KB map froze the server 5.8 s with two levels of all().
const testMap = Object.fromEntries(range(300).map((i) => [`key_${i}`, i]))

describe('comprehension nesting is bounded when the filter is compiled', () => {
  test('three levels of all() over test_map (minutes per event) are refused with EVP_FILTER_INVALID', () => {
    refusal('test_map.all(a, test_map.all(b, test_map.all(c, true)))')
    refusal('l.exists(a, l.map(b, l.filter(c, c > a)).size() > 0)')
    refusal('l.exists(a, [l.all(b, l.exists_one(c, c == b))][0])')
  })

  test('a comprehension in the range, start or result of another runs once per run of it, so it does not count', () => {
    assert.equal(filter('l.map(x, x).all(y, l.all(z, true))').test({ l: [1, 2] }), 'pass')
    assert.equal(filter('l.filter(x, x > 1.0).exists(y, l.exists(z, z == y))').test({ l: [1, 2] }), 'pass')
  })

  test('the limit is a setting', () => {
    refusal('l.all(a, l.all(b, true))', { maxNesting: 1 })
    assert.equal(filter('l.all(a, l.all(b, l.all(c, true)))', { maxNesting: 3 }).test({ l: [1] }), 'pass')
  })
})

describe('an evaluation budget per event', () => {
  test("two levels of all() over the report's 3.9 KB test_map (5.8 s before) stop at the budget: 'over-budget'", () => {
    const { verdict, ms } = timed('test_map.all(a, test_map.all(b, true))', { test_map: testMap })
    assert.equal(verdict, 'over-budget')
    assert.ok(ms < 1000, `took ${ms} ms`)
  })

  test("two levels over a 10,000-element list (10⁸ iterations) return 'over-budget' at once; on a small list they still answer", () => {
    const { verdict, ms } = timed('l.exists(a, l.exists(b, a + b == -1.0))', { l: range(10_000) })
    assert.equal(verdict, 'over-budget')
    assert.ok(ms < 1000, `took ${ms} ms`)
    assert.equal(filter('l.exists(a, l.exists(b, a + b == -1.0))').test({ l: range(10) }), 'skip')
    assert.equal(filter('l.exists(a, l.exists(b, a + b == 17.0))').test({ l: range(10) }), 'pass')
  })

  test('work hidden inside one node is charged too: searching the list being looped over, a number key into a map, deep ==', () => {
    for (const [expression, event] of [
      ['l.exists(a, -1 in l)', { l: range(10_000) }],
      ['test_map.exists(k, test_map[1] == 0)', { test_map: Object.fromEntries(range(10_000).map((i) => [`k${i}`, i])) }],
      ['l.exists(a, [l, l] == [l, [1]])', { l: range(5_000) }],
      ['l.exists(a, text.contains("needle"))', { l: range(100), text: 'hay'.repeat(100_000) }],
      ['text.matches("(a?){30}a{30}$")', { text: 'a'.repeat(100_000) }],
    ] as const) {
      const { verdict, ms } = timed(expression, event)
      assert.equal(verdict, 'over-budget', expression)
      assert.ok(ms < 1000, `${expression} took ${ms} ms`)
    }
  })

  test('a filter that fails on every element still stops at the budget', () => {
    const chain = range(20).map((i) => `x.f${i}`).join(' || ')
    assert.equal(filter(`l.exists(x, ${chain})`).test({ l: range(10_000) }), 'over-budget')
  })

  test('map() and filter() build their lists in linear time: 2,000 elements fit the budget', () => {
    const event = { l: range(2_000) }
    assert.equal(filter('l.map(x, x).size() == 2000').test(event), 'pass')
    assert.equal(filter('l.filter(x, x >= 1000.0).size() == 1000').test(event), 'pass')
    assert.equal(filter('l.map(x, x < 10.0, x).exists(y, y == 1999.0)').test(event), 'skip')
  })

  test('the budget is per event: a larger one lets the same filter through', () => {
    const event = { l: range(300) }
    assert.equal(filter('l.all(a, l.all(b, true))').test(event), 'over-budget')
    assert.equal(filter('l.all(a, l.all(b, true))', { budget: 10_000_000 }).test(event), 'pass')
  })

  test('an evaluation over budget leaves nothing behind for the next one', () => {
    const stackTraceLimit = Error.stackTraceLimit
    assert.equal(filter('l.all(a, l.all(b, true))').test({ l: range(1_000) }), 'over-budget')
    assert.equal(Error.stackTraceLimit, stackTraceLimit)
    assert.equal(filter('l.exists(x, x > 3.0)').test({ l: [1, 5] }), 'pass')
  })
})

describe('ordinary filters keep their verdicts', () => {
  const edit = {
    meta: { domain: 'en.wikipedia.org', dt: '2026-11-27T12:30:00Z' },
    type: 'edit',
    bot: false,
    title: 'Talk:Main Page',
    length: { old: 100, new: 1500 },
    list: [1, 5],
    log_type: null,
  }
  const cases: Array<[string, object, string]> = [
    ['meta.domain == "en.wikipedia.org" && !bot', edit, 'pass'],
    ['meta.domain == "en.wikipedia.org" && !bot', { ...edit, bot: true }, 'skip'],
    ['meta.domain == "en.wikipedia.org" && !bot', { ...edit, meta: { domain: 'de.wikipedia.org' } }, 'skip'],
    ['type in ["edit", "new"]', edit, 'pass'],
    ['type in ["edit", "new"]', { ...edit, type: 'log' }, 'skip'],
    ['title.startsWith("Talk:")', edit, 'pass'],
    ['title.startsWith("Talk:")', { ...edit, title: 'Main Page' }, 'skip'],
    ['list.exists(x, x > 3)', edit, 'pass'],
    ['list.exists(x, x > 3)', { ...edit, list: [1, 2] }, 'skip'],
    ['length.new - length.old > 1000', edit, 'pass'],
    ['meta.dt > "2026-11-27T12"', edit, 'pass'],
    ['list.map(x, x * 2.0) == [2.0, 10.0] && list.filter(x, x > 1.0) == [5.0]', edit, 'pass'],
    ['list + [9] == [1, 5, 9]', edit, 'pass'],
    ['[[1.0], [2.0]].map(a, a.map(b, b + 1.0)) == [[2.0], [3.0]]', edit, 'pass'],
    ['list.map(a, list.map(b, a)) == [[1.0, 1.0], [5.0, 5.0]]', edit, 'pass'],
    ['title.matches("^Talk:[A-Z]")', edit, 'pass'],
  ]
  for (const [expression, event, verdict] of cases) {
    test(`${expression} → ${verdict}`, () => assert.equal(filter(expression).test(event), verdict))
  }

  test('has(field) tests a top-level field of the event, null or not (it was an error on every event)', () => {
    assert.equal(filter('has(log_type)').test(edit), 'pass')
    assert.equal(filter('has(log_type)').test({ ...edit, log_type: 'delete' }), 'pass')
    assert.equal(filter('has(log_type)').test({ type: 'edit' }), 'skip')
    assert.equal(filter('has(meta.domain)').test(edit), 'pass')
    assert.equal(filter('list.all(x, has(x))').test(edit), 'error') // a comprehension variable is not a field
  })

  test("a filter that fails on an event gives 'error'", () => {
    assert.equal(filter('missing.field == 1').test(edit), 'error')
    assert.equal(filter('1 / 0 == 1').test(edit), 'error')
    assert.equal(filter('title').test(edit), 'error') // not a boolean
    assert.equal(filter('list.all(x, x.nope)').test(edit), 'error')
  })

  test('equal filters have equal keys, whatever the limits', () => {
    const a = compileFilter({ expression: ' type == "edit" ', matches: [['b', '1'], ['a', '2']] }, limits)
    const b = compileFilter({ expression: 'type == "edit"', matches: [['a', '2'], ['b', '1']] }, { ...limits, budget: 5 })
    assert.equal(a.key, b.key)
    assert.notEqual(a.key, compileFilter({ expression: 'type == "new"' }, limits).key)
  })

  test('filters can be read by many connections at once and do not depend on what ran before', () => {
    const f = filter('l.map(x, x).size() == 3')
    assert.equal(f.test({ l: [1, 2, 3] }), 'pass')
    assert.equal(f.test({ l: [1, 2, 3] }), 'pass')
    assert.equal(f.test({ l: [1, 2] }), 'skip')
  })
})
