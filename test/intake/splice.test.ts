/**
 * Accepted events are stored as the producer's bytes with the enriched fields spliced in
 * (src/intake/splice.ts): the text must always mean the validated event, and for a compact
 * body be exactly JSON.stringify's. Checked on seeded random events in varied layouts, against
 * the intake with a real SQLite log, and on the cases that must fall back to serializing.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { randomUUID } from 'node:crypto'
import type { JsonObject } from '../../src/core/objects.ts'
import { parseEventsBody } from '../../src/intake/body.ts'
import { Added, countKeys, locateEvents, splicedEvent } from '../../src/intake/splice.ts'
import { seededRandom } from '../../bench/lib.ts'
import { testPlatform, type TestPlatform } from './helpers.ts'

const limits = { maxDepth: 32, maxEvents: 10_000 }

/** What the intake's enrichment may do to an event, chosen by `bits`, with the bits it really added. */
function enrich(event: JsonObject, bits: number): number {
  let added = 0
  if (bits & (Added.metaId | Added.metaDt | Added.requestId)) {
    if (event['meta'] === undefined) {
      event['meta'] = {}
      added |= Added.meta
    }
    const meta = event['meta'] as JsonObject
    for (const [bit, name, value] of [[Added.metaId, 'id', randomUUID()], [Added.metaDt, 'dt', new Date().toISOString()], [Added.requestId, 'request_id', 'req "quoted" \\ ü']] as const) {
      if (bits & bit && meta[name] === undefined) {
        meta[name] = value
        added |= bit
      }
    }
  }
  if (bits & Added.dt && event['dt'] === undefined) {
    event['dt'] = new Date().toISOString()
    added |= Added.dt
  }
  if (bits & (Added.clientIp | Added.userAgent)) {
    if (event['http'] === undefined) {
      event['http'] = {}
      added |= Added.http
    }
    const http = event['http'] as JsonObject
    if (bits & Added.clientIp && http['client_ip'] === undefined) {
      http['client_ip'] = '2001:db8::1'
      added |= Added.clientIp
    }
    if (bits & Added.userAgent) {
      if (http['request_headers'] === undefined) {
        http['request_headers'] = {}
        added |= Added.headers
      }
      const headers = http['request_headers'] as JsonObject
      if (headers['user-agent'] === undefined) {
        headers['user-agent'] = 'Mozilla/5.0 ("x") \u2028'
        added |= Added.userAgent
      }
    }
  }
  return added
}

/** A random event: maybe meta (maybe empty, maybe with some fields), http, headers, nesting, odd strings and numbers. */
function randomEvent(random: () => number): JsonObject {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const text = () => pick(['plain', 'ü € 𝄞', 'quote " and \\ backslash', 'tab\tnew\nline', '</script>', '{"not":"json"}', ''])
  const event: JsonObject = { $schema: '/eventplane/test/event/1.0.0' }
  if (random() < 0.8) {
    const meta: JsonObject = {}
    if (random() < 0.7) meta['stream'] = 'test.event'
    if (random() < 0.3) meta['id'] = randomUUID()
    if (random() < 0.3) meta['dt'] = new Date(0).toISOString()
    event['meta'] = meta
  }
  if (random() < 0.5) event['test'] = text()
  if (random() < 0.5) event['n'] = pick([0, -1, 1.5, 1e21, 123456789012, -0.000001])
  if (random() < 0.4) event['test_map'] = { a: text(), nested: { meta: { id: 'inner' }, http: {}, list: [1, { x: text() }, []] } }
  if (random() < 0.4) {
    const http: JsonObject = {}
    if (random() < 0.5) http['method'] = 'POST'
    if (random() < 0.3) http['client_ip'] = '10.0.0.1'
    if (random() < 0.6) http['request_headers'] = random() < 0.5 ? {} : { accept: '*/*' }
    event['http'] = http
  }
  if (random() < 0.2) event['dt'] = new Date(0).toISOString()
  return event
}

/** JSON text of `value` in one of several layouts: compact, spaced, tabbed (no line breaks). */
function layout(value: unknown, style: number): string {
  const compact = JSON.stringify(value)
  if (style === 0) return compact
  // Re-space outside strings: after , and :, around braces and brackets.
  let out = ''
  let inString = false
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i]!
    out += c
    if (c === '"' && !escapedAt(compact, i)) inString = !inString
    if (!inString && ',:{['.includes(c)) out += style === 1 ? ' ' : '\t '
  }
  return out
}

function escapedAt(text: string, i: number): boolean {
  let k = i - 1
  while (text[k] === '\\') k--
  return (i - 1 - k) % 2 === 1
}

describe('splicing enriched fields into the producer bytes', () => {
  test('on seeded random events in three layouts: the text parses to the enriched event; compact bodies give exactly JSON.stringify', () => {
    const random = seededRandom(7)
    let spliced = 0
    for (let round = 0; round < 400; round++) {
      const originals = Array.from({ length: 1 + Math.floor(random() * 5) }, () => randomEvent(random))
      const style = round % 3
      const asArray = originals.length > 1 || random() < 0.5
      const body = Buffer.from(asArray ? layout(originals, style) : layout(originals[0], style))
      const { events, text: raw } = parseEventsBody(body, 'application/json', limits)
      assert.ok(raw !== undefined)
      const located = locateEvents(raw, events.length)
      assert.ok(located !== undefined, body.toString())
      events.forEach((event, index) => {
        const added = enrich(event as JsonObject, Math.floor(random() * 64))
        const value = splicedEvent(raw, located, index, event as JsonObject, added)
        assert.ok(value !== undefined, `not spliced: ${body.toString()}`)
        spliced++
        const text = value
        assert.deepEqual(JSON.parse(text), event, text)
        if (style === 0) assert.equal(text, JSON.stringify(event))
        assert.ok(!/[\r\n]/.test(text))
      })
    }
    assert.ok(spliced > 800, `${spliced} events spliced`)
  })

  test('falls back (undefined) where the text would not mean the parsed event: duplicate keys, escaped keys, line breaks', () => {
    const cases = [
      '{"$schema":"/x/1.0.0","meta":{"stream":"a"},"meta":{"stream":"b"}}',
      '{"$schema":"/x/1.0.0","meta":{"stream":"a","stream":"b"}}',
      '{"$schema":"/x/1.0.0","m\\u0065ta":{"stream":"a"}}',
      '{"$schema":"/x/1.0.0","http":{"request_h\\u0065aders":{}},"meta":{}}',
      '{"$schema":"/x/1.0.0",\n"meta":{"stream":"a"}}',
      '{"$schema":"/x/1.0.0","meta":{"stream":"a"\r}}',
    ]
    for (const text of cases) {
      const { events, text: raw } = parseEventsBody(Buffer.from(text), 'application/json', limits)
      const located = locateEvents(raw!, events.length)
      const added = enrich(events[0] as JsonObject, Added.metaId | Added.userAgent)
      assert.equal(located && splicedEvent(raw!, located, 0, events[0] as JsonObject, added), undefined, text)
    }
    // Line breaks between events are fine; inside one, only that one falls back.
    const { events, text } = parseEventsBody(Buffer.from('[\n{"a":1},\n{"b":\n2}\n]'), 'application/json', limits)
    const located = locateEvents(text!, 2)!
    assert.equal(splicedEvent(text!, located, 0, events[0] as JsonObject, 0), '{"a":1}')
    assert.equal(splicedEvent(text!, located, 1, events[1] as JsonObject, 0), undefined)
  })

  test('bodies that are not an array of objects or one object are not located', () => {
    for (const text of ['[{"a":1},2]', '[[{"a":1}]]', '"x"', '[{"a":1},{"b":2}]']) {
      const value = JSON.parse(text) as unknown
      const count = Array.isArray(value) ? value.length : 1
      const located = locateEvents(text, text === '[{"a":1},{"b":2}]' ? 3 : count)
      assert.equal(located, undefined, text)
    }
    assert.equal(countKeys({ a: { b: [{ c: 1 }, 2] }, d: [] }), 4)
  })
})

describe('the intake stores spliced events', () => {
  let platform: TestPlatform
  before(async () => {
    platform = await testPlatform()
  })
  after(() => platform?.close())

  test('a spaced body, a compact one, one with a duplicate key, one with a schema default: each stored event parses to what was validated', async () => {
    const id = (): string => randomUUID()
    const ids = [id(), id(), id()]
    const spaced = `[ { "$schema" : "/eventplane/test/event/1.0.0", "meta" : { "stream" : "test.event", "id" : "${ids[0]}" }, "test" : "spaced ü" } ]`
    const compact = JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id: ids[1] }, test: 'compact' }])
    const duplicate = `[{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"test.event","id":"${ids[2]}"},"test":"first","test":"second"}]`
    for (const body of [spaced, compact, duplicate]) {
      const response = await platform.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json', 'user-agent': 'splice-test' }, payload: body })
      assert.equal(response.statusCode, 201, response.body)
    }
    const stored = (await platform.events('datacenter1.test.event')).filter((e) => ids.includes((e['meta'] as JsonObject)['id'] as string))
    assert.equal(stored.length, 3)
    for (const event of stored) {
      const meta = event['meta'] as JsonObject
      assert.match(meta['dt'] as string, /^\d{4}-\d\d-\d\dT/)
      assert.equal(((event['http'] as JsonObject)['request_headers'] as JsonObject)['user-agent'], 'splice-test')
    }
    assert.equal(stored.find((e) => (e['meta'] as JsonObject)['id'] === ids[0])!['test'], 'spaced ü')
    // The duplicate key was resolved as validated (the last value), and stored once.
    const dup = (await platform.records('datacenter1.test.event')).map((r) => r.value.toString('utf8')).filter((text) => text.includes(ids[2]!))
    assert.equal(dup.length, 1)
    assert.equal((dup[0]!.match(/"test"/g) ?? []).length, 1, dup[0])
    assert.equal(JSON.parse(dup[0]!).test, 'second')
  })
})
