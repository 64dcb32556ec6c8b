import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isEventplaneError } from '../../src/core/errors.ts'
import { matchesConstraints, parseMwConstraints, parseStreamConfig } from '../../src/streamconfig/index.ts'
import { sampleYaml } from './helpers.ts'

const config = parseStreamConfig(sampleYaml, { source: '/test/streams.yaml' })
const names = (constraints: Record<string, unknown>, targets?: string[]) => Object.keys(config.get(targets, constraints))

function code(error: unknown): string | undefined {
  return isEventplaneError(error) ? error.code : undefined
}

describe('constraints', () => {
  it('filter entries whose settings contain the constraint, comparing scalars as strings', () => {
    assert.deepEqual(names({ destination_event_service: 'eventgate-main' }), ['test.event', '/^mediawiki\\.job\\..+/'])
    assert.deepEqual(names({ sample: { rate: '0.5' } }), ['nonya'])
    assert.deepEqual(names({ sample: { rate: 0.5 } }), ['nonya'])
    assert.deepEqual(names({ sample: { rate: '1.0' } }), ['eventlogging_EventplaneTest'])
  })

  it('apply to requested names too, keyed by the requested name', () => {
    assert.deepEqual(names({ destination_event_service: 'eventgate-main' }, ['mediawiki.job.workworkwork', 'nonya']), [
      'mediawiki.job.workworkwork',
    ])
  })

  it('match booleans given as true/false, 1/0 or the empty string', () => {
    for (const yes of [true, 'true', '1', 1]) assert.ok(names({ canary_events_enabled: yes }).includes('nonya'), String(yes))
    for (const no of [false, 'false', '0', '', 0]) {
      assert.deepEqual(names({ canary_events_enabled: no }), ['/^mediawiki\\.job\\..+/'], JSON.stringify(no))
    }
    assert.deepEqual(names({ canary_events_enabled: 'yes' }), [])
  })

  it('match a list setting when the constraint values are a subset of it', () => {
    const path = (v: unknown) => ({ producers: { metrics_platform_client: { provide_values: v } } })
    assert.deepEqual(names(path(['performer_is_logged_in'])), ['test.event'])
    assert.deepEqual(names(path(['performer_is_logged_in', 'page_id'])), ['test.event'])
    assert.deepEqual(names(path('page_id')), ['test.event'])
    assert.deepEqual(names(path(['page_id', 'other'])), [])
    assert.deepEqual(names({ topics: ['nonya_topic'] }), ['nonya'])
  })

  it('check every constraint, even after a list constraint (unlike PHP)', () => {
    assert.deepEqual(names({ topics: ['nonya_topic'], schema_title: 'nope' }), [])
  })

  it('match nested settings partially', () => {
    assert.deepEqual(names({ producers: { eventgate: { enrich: 'true' } }, schema_title: 'eventplane/test/event' }), ['test.event'])
    assert.deepEqual(names({ producers: { eventgate: {} } }).length, 6)
    assert.deepEqual(names({ producers: { nothing: {} } }), [])
  })

  it('never match an absent or null setting', () => {
    assert.deepEqual(names({ topic_prefixes: '' }), [])
    assert.deepEqual(names({ unknown_setting: '' }), [])
  })

  it('match stream against the entry key or regex', () => {
    assert.deepEqual(names({ stream: 'mediawiki.job.foo' }), ['/^mediawiki\\.job\\..+/', '/^mediawiki\\..+/'])
    assert.deepEqual(names({ stream: 'nonya' }), ['nonya'])
    assert.deepEqual(names({ stream: '/^mediawiki\\..+/' }), ['/^mediawiki\\..+/'])
    assert.deepEqual(names({ stream: 'mediawiki.job.foo', schema_title: 'mediawiki/job' }), ['/^mediawiki\\.job\\..+/'])
    assert.deepEqual(names({ stream: 'mediawiki.job.foo' }, ['mediawiki.job.bar']), ['mediawiki.job.bar'])
  })

  it('refuse nesting deeper than 10 levels', () => {
    let deep: Record<string, unknown> = { a: 'b' }
    for (let i = 0; i < 10; i++) deep = { a: deep }
    assert.throws(() => config.get(undefined, deep), (e) => code(e) === 'EVP_BAD_REQUEST')
    let ok: Record<string, unknown> = { a: 'b' }
    for (let i = 0; i < 9; i++) ok = { a: ok }
    assert.deepEqual(config.get(undefined, ok), {})
  })

  it('matchesConstraints works on any settings object', () => {
    assert.ok(matchesConstraints({ a: { b: [1, 2, 3] } }, { a: { b: ['3', '1'] } }))
    assert.ok(!matchesConstraints({ a: 'x' }, { a: { b: 'x' } }))
    assert.ok(!matchesConstraints({ a: ['x'] }, { a: { 0: 'x' } }))
  })
})

describe('parseMwConstraints', () => {
  it('parses key=value items', () => {
    assert.deepEqual(parseMwConstraints(['destination_event_service=eventgate-main', 'canary_events_enabled=1']), {
      destination_event_service: 'eventgate-main',
      canary_events_enabled: '1',
    })
  })

  it('nests key[sub][sub2]=value like wfCgiToArray', () => {
    assert.deepEqual(parseMwConstraints(['producers[eventgate][enrich]=true', 'producers[eventgate][x]=1', 'sample[unit]=session']), {
      producers: { eventgate: { enrich: 'true', x: '1' } },
      sample: { unit: 'session' },
    })
  })

  it('makes lists from key[]=value and from a key given twice', () => {
    assert.deepEqual(parseMwConstraints(['topics[]=a', 'topics[]=b']), { topics: ['a', 'b'] })
    assert.deepEqual(parseMwConstraints(['a=1', 'a=2', 'a[]=3']), { a: ['1', '2', '3'] })
    assert.deepEqual(parseMwConstraints(['p[m][provide_values][]=page_id']), { p: { m: { provide_values: ['page_id'] } } })
  })

  it('keeps = in values, URL-decodes, and reads a bare key as the empty string', () => {
    assert.deepEqual(parseMwConstraints(['a=b=c', 'k%5Bs%5D=x+y%21', 'flag']), { a: 'b=c', k: { s: 'x y!' }, flag: '' })
  })

  it('splits an item on & as wfCgiToArray does', () => {
    assert.deepEqual(parseMwConstraints(['a=1&b=2']), { a: '1', b: '2' })
  })

  it('stores __proto__ as an own key', () => {
    const parsed = parseMwConstraints(['__proto__[polluted]=1'])
    assert.ok(Object.hasOwn(parsed, '__proto__'))
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined)
  })

  it('refuses malformed and conflicting keys and nesting deeper than 10', () => {
    for (const bad of [['=v'], ['a[b=v'], ['a]b=v'], ['a[][b]=v'], ['a=1', 'a[b]=2'], ['a[b]=1', 'a=2'], ['a[b]=1', 'a[]=2']]) {
      assert.throws(() => parseMwConstraints(bad), (e) => code(e) === 'EVP_BAD_REQUEST', bad.join('|'))
    }
    assert.throws(() => parseMwConstraints([`a${'[x]'.repeat(10)}=v`]), (e) => code(e) === 'EVP_BAD_REQUEST')
    assert.doesNotThrow(() => parseMwConstraints([`a${'[x]'.repeat(9)}=v`]))
  })

  it('round-trips into a lookup', () => {
    const parsed = parseMwConstraints(['producers[metrics_platform_client][provide_values]=page_id', 'sample[rate]=1'])
    assert.deepEqual(parsed, { producers: { metrics_platform_client: { provide_values: 'page_id' } }, sample: { rate: '1' } })
    assert.deepEqual(names(parsed), [])
    assert.deepEqual(names(parseMwConstraints(['producers[metrics_platform_client][provide_values]=page_id'])), ['test.event'])
  })
})
