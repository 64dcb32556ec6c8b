/**
 * The randomized corpus: seeded batches of eventplane/test/event events, some valid by construction and
 * some mutated (wrong types, missing fields, huge strings, nesting near the limit, odd
 * unicode, prototype keys, extreme numbers, times out of range, unknown and regex streams,
 * bad `$schema` values), in the accepted content types, sometimes hasty, and now and then a
 * body broken as a whole (too deep, not UTF-8, not JSON). The same seed gives the same
 * batches, so `npm run attack -- --only random-corpus --seed N` replays a failure.
 */
import { seededRandom } from '../bench/lib.ts'

/** What an event is by construction. */
export type Expectation = 'good' | 'bad' | 'maybe'

export interface CorpusEvent {
  /** The event as sent (CloudEvents are unwrapped here). */
  value: unknown
  expect: Expectation
  /** Codes a good event may still be refused with (a regex stream past the limit). */
  allowed: string[]
  /** Fields whose stored value must be what was sent. */
  compare: string[]
  /** What was done to it (for reports). */
  mutation: string
}

export interface CorpusBatch {
  index: number
  events: CorpusEvent[]
  body: Buffer
  contentType: string
  hasty: boolean
  /** The body is broken as a whole: the answer must be a problem with one of these codes. */
  refuseWith?: string[]
  /** The body is odd as a whole but may be accepted (a BOM): these codes are allowed too. */
  mayRefuseWith?: string[]
  brokenBy?: string
}

export interface CorpusOptions {
  seed: number
  batches: number
  maxBodyBytes: number
  /** Streams made through the regex key that the corpus may use (a handful). */
  regexStreams?: number
  /** meta.dt values are drawn around this time. */
  now?: number
}

/** mulberry32 (bench/lib.ts): small, fast, good enough to pick mutations, and reproducible. */
export const rng = seededRandom

type Json = Record<string, unknown>

const contentTypes = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/reports+json',
  'application/cloudevents-batch+json',
  'application/cloudevents+json',
] as const

/** Strings that are odd but valid: astral characters, escaped U+0000, RTL, combining marks, noncharacters. */
const oddPieces = ['a', 'é', 'e\u0301', '\u0000', '\u200f', '\u202e', '😀', '𝄞', '\uffff', '\ufffe', '\u2028', '\u2029', '"', '\\', '\n', '\t', '<script>', '${x}', '%s', '∞', 'ﷺ', '\u00a0']

/** Sets a property even when its name is `__proto__` (a plain assignment would change the prototype). */
function put(object: Json, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
}

export function generateCorpus(options: CorpusOptions): CorpusBatch[] {
  const random = rng(options.seed)
  const now = options.now ?? Date.now()
  const int = (n: number) => Math.floor(random() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  const chance = (p: number) => random() < p
  let serial = 0
  const newId = () => `corpus-${options.seed}-${++serial}`
  const regexStreams = options.regexStreams ?? 4

  const oddString = (maxPieces: number) => {
    let text = ''
    const n = int(maxPieces) + 1
    for (let i = 0; i < n; i++) text += pick(oddPieces)
    return text
  }

  function validEvent(): CorpusEvent {
    const allowed: string[] = []
    const roll = random()
    const stream = roll < 0.6 ? 'test.event' : roll < 0.85 ? 'test.keyed' : `test.event.corpus${int(regexStreams)}`
    if (stream.startsWith('test.event.')) allowed.push('EVP_STREAM_LIMIT_REACHED')
    const meta: Json = { stream, id: newId() }
    if (stream === 'test.keyed' || chance(0.3)) meta['domain'] = pick(['en.wikipedia.org', 'example.org', 'ü.example', 'a'.repeat(255), oddString(5).split('\u0000').join('') || 'x'])
    if (chance(0.2)) meta['uri'] = pick(['https://example.org/wiki/A?b=c#d', '/relative/path', 'urn:isbn:0451450523'])
    if (chance(0.3)) meta['dt'] = new Date(now - int(3_000_000)).toISOString()
    const event: Json = { $schema: '/eventplane/test/event/1.0.0', meta }
    const compare = ['meta.stream']
    if (meta['domain'] !== undefined) compare.push('meta.domain')
    if (meta['uri'] !== undefined) compare.push('meta.uri')
    if (chance(0.8)) {
      event['test'] = chance(0.5) ? oddString(40) : 'x'.repeat(int(4096))
      compare.push('test')
    }
    if (chance(0.4)) {
      const map: Json = {}
      const keys = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', '', 'a.b', '1', '0', 'ключ', '😀', '$ref']
      const n = int(8)
      for (let i = 0; i < n; i++) put(map, chance(0.5) ? pick(keys) : `k${int(1000)}`, oddString(10))
      event['test_map'] = map
      compare.push('test_map')
    }
    if (chance(0.4)) {
      event['test_number'] = pick([-0, 0, 1e-320, 5e-324, 9007199254740991, -9007199254740991, 3.141592653589793, 1e15, -1])
      compare.push('test_number')
    }
    if (chance(0.2)) {
      event['dt'] = pick(['2026-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z', '2000-02-29T23:59:59.999+14:00'])
      compare.push('dt')
    }
    if (chance(0.15)) event['http'] = { method: 'GET', status_code: pick([100, 200, 599]), has_cookies: chance(0.5), request_headers: { 'x-odd': oddString(8) } }
    return { value: event, expect: 'good', allowed, compare, mutation: 'valid' }
  }

  const nest = (depth: number): unknown => {
    let value: unknown = 'leaf'
    for (let i = 0; i < depth; i++) value = { d: value }
    return value
  }

  // Each turns a valid event into one the intake must refuse ('bad') or may take ('maybe').
  const mutations: Array<[string, Expectation, (e: Json, meta: Json) => unknown]> = [
    ['test of a wrong type', 'bad', (e) => void (e['test'] = pick([42, true, null, [], {}]))],
    ['meta.stream of a wrong type', 'bad', (_e, meta) => void (meta['stream'] = pick([5, null, ['test.event'], {}]))],
    ['test_number as a string', 'bad', (e) => void (e['test_number'] = '1')],
    ['test_map with a number value', 'bad', (e) => void (e['test_map'] = { a: 1 })],
    ['no $schema', 'bad', (e) => void delete e['$schema']],
    ['no meta.stream', 'bad', (_e, meta) => void delete meta['stream']],
    ['test over maxLength', 'bad', (e) => void (e['test'] = 'y'.repeat(4097 + int(100_000)))],
    ['test_map nested near the depth limit', 'bad', (e) => void (e['test_map'] = nest(58))],
    ['test_number 1e308', 'bad', (e) => void (e['test_number'] = 1e308)],
    ['test_number 1e309 (Infinity)', 'bad', (e) => void (e['test_number'] = raw('1e309'))],
    ['test_number 2^53+1', 'bad', (e) => void (e['test_number'] = raw('9007199254740993'))],
    ['meta.dt before 1970', 'bad', (_e, meta) => void (meta['dt'] = '1969-12-31T23:59:59Z')],
    ['meta.dt in year 9999', 'bad', (_e, meta) => void (meta['dt'] = '9999-01-01T00:00:00Z')],
    ['meta.dt two hours ahead', 'bad', (_e, meta) => void (meta['dt'] = new Date(now + 7_200_000).toISOString())],
    ['dt not a date', 'bad', (e) => void (e['dt'] = pick(['2024-13-45T99:99:99Z', 'yesterday', '']))],
    ['unknown stream', 'bad', (_e, meta) => void (meta['stream'] = pick(['nope.corpus', 'test_event', 'TEST.EVENT', 'test.event ']))],
    ['error stream', 'bad', (_e, meta) => void (meta['stream'] = 'eventplane.error.validation')],
    ['regex stream with a topic name too long', 'bad', (_e, meta) => void (meta['stream'] = `test.event.${'z'.repeat(238)}`)],
    [
      'bad $schema',
      'bad',
      (e) =>
        void (e['$schema'] = pick([
          '/eventplane/test/event/9.9.9',
          'eventplane/test/event/1.0.0',
          'http://169.254.169.254/latest/meta-data/',
          'file:///etc/passwd',
          '/../../etc/passwd',
          '/eventplane/test/event/1.0.0/../../../../etc/passwd',
          '/eventplane/test/event/%2e%2e/%2e%2e/x',
          '',
          42,
          '/eventplane/test/event/1.0.0\u0000',
          '/eventplane/error/1.0.0',
        ])),
    ],
    ['unknown top-level field', 'bad', (e) => void (e['extra'] = 1)],
    // A parser that drops prototype keys (secure-json-parse does) makes these valid: either answer is fine.
    ['__proto__ at the top', 'maybe', (e) => put(e, '__proto__', { polluted: true })],
    ['constructor at the top', 'maybe', (e) => put(e, 'constructor', { prototype: { polluted: true } })],
    ['keyed stream without its key', 'bad', (_e, meta) => {
      meta['stream'] = 'test.keyed'
      delete meta['domain']
    }],
    ['empty meta.domain', 'bad', (_e, meta) => void (meta['domain'] = '')],
    ['meta.id over maxLength', 'bad', (_e, meta) => void (meta['id'] = `${String(meta['id'])}-${'i'.repeat(130)}`)],
    ['lone surrogates', 'maybe', (e) => void (e['test'] = pick(['a\ud800b', '\udc00', 'x\udbff']))],
  ]

  // Raw JSON tokens (numbers JSON.stringify cannot write) are placeholders replaced in the text.
  const raws: string[] = []
  function raw(text: string): string {
    raws.push(text)
    return `@@raw${raws.length - 1}@@`
  }

  function mutatedEvent(): CorpusEvent {
    const roll = random()
    if (roll < 0.06) return { value: pick([1, 'text', null, [], true, {}, [validEvent().value]]), expect: 'bad', allowed: [], compare: [], mutation: 'not an event object' }
    const base = validEvent()
    const event = base.value as Json
    const meta = event['meta'] as Json
    const [name, expect, apply] = pick(mutations)
    apply(event, meta)
    return { value: event, expect, allowed: [], compare: [], mutation: name }
  }

  const batches: CorpusBatch[] = []
  for (let index = 0; index < options.batches; index++) {
    raws.length = 0
    const contentType: string = pick(contentTypes)
    const size = contentType === 'application/cloudevents+json' ? 1 : 1 + int(chance(0.2) ? 50 : 10)
    const events: CorpusEvent[] = []
    for (let i = 0; i < size; i++) events.push(chance(0.55) ? validEvent() : mutatedEvent())
    const hasty = chance(0.1)
    let text: string
    if (contentType.startsWith('application/cloudevents')) {
      const wrap = (event: CorpusEvent, i: number) => ({ specversion: '1.0', id: `ce-${index}-${i}`, source: '/attack/corpus', type: 'eventplane.attack', datacontenttype: 'application/json', data: event.value })
      text = contentType === 'application/cloudevents+json' ? JSON.stringify(wrap(events[0]!, 0)) : JSON.stringify(events.map(wrap))
      // CloudEvents carry objects in `data`; anything else is not an event either way.
      for (const event of events) if (typeof event.value !== 'object' || event.value === null || Array.isArray(event.value)) event.expect = 'bad'
    } else text = JSON.stringify(events.map((e) => e.value))
    text = text.replace(/"@@raw(\d+)@@"/g, (_m, n: string) => raws[Number(n)]!)
    let body = Buffer.from(text, 'utf8')
    const batch: CorpusBatch = { index, events, body, contentType, hasty }

    // Now and then the body is broken as a whole: nothing of it may be processed.
    if (chance(0.08) && contentType !== 'application/cloudevents+json') {
      const how = pick(['too deep', 'not UTF-8', 'raw U+0000', 'cut short', 'BOM'] as const)
      if (how === 'too deep') {
        body = Buffer.from(`${text.slice(0, -1)},${'['.repeat(70)}${']'.repeat(70)}]`, 'utf8')
        batch.refuseWith = ['EVP_BODY_TOO_DEEP']
      } else if (how === 'not UTF-8') {
        const quote = body.indexOf('"')
        body = Buffer.concat([body.subarray(0, quote + 1), Buffer.from([0xff, 0xfe]), body.subarray(quote + 1)])
        batch.refuseWith = ['EVP_BODY_INVALID_UTF8']
      } else if (how === 'raw U+0000') {
        const quote = body.indexOf('"')
        body = Buffer.concat([body.subarray(0, quote + 1), Buffer.from([0x00]), body.subarray(quote + 1)])
        batch.refuseWith = ['EVP_BODY_INVALID_JSON']
      } else if (how === 'cut short') {
        body = body.subarray(0, Math.max(1, body.length - 1 - int(Math.min(20, body.length - 1))))
        // A cut inside a multi-byte character makes it not UTF-8 first.
        batch.refuseWith = ['EVP_BODY_INVALID_JSON', 'EVP_BODY_INVALID_UTF8', 'EVP_BODY_EMPTY']
      } else {
        body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body])
        batch.mayRefuseWith = ['EVP_BODY_INVALID_JSON']
      }
      batch.brokenBy = how
      batch.body = body
    }
    // `[{}]` is an empty body to EventGate (EVP_BODY_EMPTY); a per-event answer is fine too.
    const only = events.length === 1 ? events[0]!.value : undefined
    if (batch.refuseWith === undefined && contentType !== 'application/cloudevents+json' && typeof only === 'object' && only !== null && !Array.isArray(only) && Object.keys(only).length === 0) {
      batch.mayRefuseWith = ['EVP_BODY_EMPTY']
    }
    if (body.length > options.maxBodyBytes) {
      batch.refuseWith = ['EVP_BODY_TOO_LARGE']
      batch.brokenBy = 'over max_body_bytes'
    }
    batches.push(batch)
  }
  return batches
}
