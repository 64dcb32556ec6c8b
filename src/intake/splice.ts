/**
 * Accepted events stored as the producer's own text, with the fields the intake filled in
 * spliced in, instead of serializing the parsed event again (JSON.stringify was a fifth of the
 * intake's time per event; BENCHMARKS.md, "intake").
 *
 * `locateEvents` reads the text of a JSON body that JSON.parse has accepted and finds, for each event, where
 * its text is and where enrichment inserts: before the closing brace of the event, of its
 * `meta`, of its `http` and of `http.request_headers`. `splicedEvent` then joins slices of the
 * event's text (V8 slices and joins strings without copying them) with the added members inserted there, in the order JSON.stringify would list them
 * (added properties come last), so a compact body gives exactly JSON.stringify's text, except
 * that keys which look like array indices keep their place (JSON.stringify lists them first).
 *
 * The text stored must mean what was validated. So an event is spliced only when:
 * - its text has as many keys as the validated object, less those enrichment added: a duplicate
 *   key (which JSON.parse resolves to the last value, and another parser might not) makes the
 *   text have more, and a default filled in by the schema makes the object have more;
 * - no key of the event or of its `http` is written with an escape (`"m\u0065ta"` is `meta`
 *   to JSON.parse but would not be found here);
 * - it has no line break between its tokens (stored events are one line: NDJSON, SSE data);
 * - nothing else changed it: the caller serializes events that got `$schema` or the stream from
 *   the query string, lost an enriched value the schema refused, or may have gained array items
 *   from a schema default (which adds no key).
 */
import type { JsonObject } from '../core/objects.ts'

/** Fields of one located event, `stride` numbers per event in the array `locateEvents` returns. */
const START = 0 // index of the event's '{'
const CLOSE = 1 // index of its '}'
const META = 2 // index of the '}' of its meta object, or -1
const HTTP = 3 // index of the '}' of its http object, or -1
const HEADERS = 4 // index of the '}' of http.request_headers, or -1
const KEYS = 5 // keys in its text, at every depth
const FLAGS = 6
const stride = 7

const Flag = { metaEmpty: 1, httpEmpty: 2, headersEmpty: 4, unsafe: 8 } as const

/** What enrichment added to an event (a bit set): where `splicedEvent` must insert. */
export const Added = {
  metaId: 1,
  metaDt: 2,
  requestId: 4,
  dt: 8,
  clientIp: 16,
  userAgent: 32,
  /** The object did not exist and was created. */
  meta: 64,
  http: 128,
  headers: 256,
} as const

const quote = 0x22
const backslash = 0x5c
const colon = 0x3a
const openBrace = 0x7b
const closeBrace = 0x7d
const openBracket = 0x5b
const closeBracket = 0x5d

const metaKey = 'meta'
const httpKey = 'http'
const headersKey = 'request_headers'

/** Which tracked object a '{' opens (0: none). */
const Tracked = { none: 0, meta: 1, http: 2, headers: 3 } as const

/**
 * The events of a body (a top-level array of events, or one event) and where to splice into
 * each; undefined when the body is not such a shape or does not hold `count` events. The body
 * must be JSON that JSON.parse accepted.
 */
export function locateEvents(body: string, count: number): Int32Array | undefined {
  const n = body.length
  let i = skipSpace(body, 0)
  let eventDepth: number
  const first = body.charCodeAt(i)
  if (first === openBracket) eventDepth = 2
  else if (first === openBrace) eventDepth = 1
  else return undefined
  const out = new Int32Array(count * stride)
  let events = 0
  let at = -stride // the current event's fields
  let depth = 0
  /** What each open container is (Tracked), by depth. */
  const kinds: number[] = []
  // The last string seen: where it starts and ends (its quotes), to read a key at ':'.
  let stringStart = -1
  let stringEnd = -1
  let pending: number = Tracked.none
  for (; i < n; i++) {
    const c = body.charCodeAt(i)
    if (c === quote) {
      let j = body.indexOf('"', i + 1)
      // A quote preceded by an odd number of backslashes is part of the string.
      while (j !== -1 && escaped(body, j)) j = body.indexOf('"', j + 1)
      if (j === -1) return undefined
      stringStart = i
      stringEnd = j
      pending = Tracked.none
      i = j
      continue
    }
    if (c <= 0x20) {
      if ((c === 0x0a || c === 0x0d) && depth >= eventDepth && at >= 0) flag(out, at, Flag.unsafe)
      continue
    }
    if (c === colon) {
      if (at >= 0 && depth >= eventDepth) {
        out[at + KEYS] = out[at + KEYS]! + 1
        // Tracked keys are members of the event (meta, http) or of its http (request_headers).
        const memberOfEvent = depth === eventDepth
        const memberOfHttp = depth === eventDepth + 1 && kinds[depth - 1] === Tracked.http
        if (memberOfEvent || memberOfHttp) {
          if (hasBackslash(body, stringStart + 1, stringEnd)) flag(out, at, Flag.unsafe)
          else if (memberOfEvent && isKey(body, stringStart, stringEnd, metaKey)) pending = Tracked.meta
          else if (memberOfEvent && isKey(body, stringStart, stringEnd, httpKey)) pending = Tracked.http
          else if (memberOfHttp && isKey(body, stringStart, stringEnd, headersKey)) pending = Tracked.headers
        }
      }
      continue
    }
    if (c === openBrace || c === openBracket) {
      let kind: number = Tracked.none
      if (c === openBrace && depth + 1 === eventDepth) {
        if (events === count) return undefined
        at = events++ * stride
        out[at + START] = i
        out[at + META] = -1
        out[at + HTTP] = -1
        out[at + HEADERS] = -1
      } else if (c === openBrace && pending !== Tracked.none) {
        kind = pending
        if (body.charCodeAt(skipSpace(body, i + 1)) === closeBrace) {
          flag(out, at, kind === Tracked.meta ? Flag.metaEmpty : kind === Tracked.http ? Flag.httpEmpty : Flag.headersEmpty)
        }
      } else if (depth + 1 === eventDepth) {
        return undefined // an item that is not an object: not an event
      }
      kinds[depth] = kind
      depth++
      pending = Tracked.none
      continue
    }
    if (c === closeBrace || c === closeBracket) {
      depth--
      const kind = kinds[depth]
      if (depth + 1 === eventDepth && c === closeBrace) out[at + CLOSE] = i
      else if (kind === Tracked.meta) out[at + META] = i
      else if (kind === Tracked.http) out[at + HTTP] = i
      else if (kind === Tracked.headers) out[at + HEADERS] = i
      pending = Tracked.none
      continue
    }
    // A number, true, false, null or a comma.
    pending = Tracked.none
  }
  return events === count ? out : undefined
}

/**
 * Event `index`'s text with the members enrichment `added` to `event` inserted, or undefined
 * when it must be serialized instead (see the module comment). `quoted` keeps the JSON of the
 * values filled in from one request (its headers and time), which are the same for each of
 * its events.
 */
export function splicedEvent(body: string, located: Int32Array, index: number, event: JsonObject, added: number, quoted = new Map<string, string>()): string | undefined {
  const at = index * stride
  const flags = located[at + FLAGS]!
  // The parsed event has the text's keys plus one for each thing added.
  if (flags & Flag.unsafe || located[at + KEYS]! + bitCount(added) !== countKeys(event)) return undefined
  const start = located[at + START]!
  const close = located[at + CLOSE]!
  // Insertions: [offset, text], by offset; text starts with ',' where the object had members.
  const inserts: Array<[number, string]> = []
  const meta = event['meta'] as JsonObject | undefined
  const http = event['http'] as JsonObject | undefined
  const headers = http?.['request_headers'] as JsonObject | undefined
  let metaMembers = ''
  // A meta.id the intake made (randomUUID: hex digits and dashes) needs no escaping.
  if (added & Added.metaId) metaMembers = '"id":"' + (meta!['id'] as string) + '"'
  if (added & Added.metaDt) metaMembers = join(metaMembers, member('dt', meta!['dt'], quoted))
  if (added & Added.requestId) metaMembers = join(metaMembers, member('request_id', meta!['request_id'], quoted))
  const headerMembers = added & Added.userAgent ? member('user-agent', headers!['user-agent'], quoted) : ''
  let httpMembers = added & Added.clientIp ? member('client_ip', http!['client_ip'], quoted) : ''
  if (added & Added.headers) httpMembers = join(httpMembers, `"request_headers":{${headerMembers}}`)
  else if (headerMembers !== '') {
    const headersClose = located[at + HEADERS]!
    if (headersClose < 0) return undefined
    inserts.push([headersClose, (flags & Flag.headersEmpty ? '' : ',') + headerMembers])
  }
  let eventMembers = ''
  if (added & Added.meta) eventMembers = `"meta":{${metaMembers}}`
  else if (metaMembers !== '') {
    const metaClose = located[at + META]!
    if (metaClose < 0) return undefined
    inserts.push([metaClose, (flags & Flag.metaEmpty ? '' : ',') + metaMembers])
  }
  if (added & Added.dt) eventMembers = join(eventMembers, member('dt', event['dt'], quoted))
  if (added & Added.http) eventMembers = join(eventMembers, `"http":{${httpMembers}}`)
  else if (httpMembers !== '') {
    const httpClose = located[at + HTTP]!
    if (httpClose < 0) return undefined
    inserts.push([httpClose, (flags & Flag.httpEmpty ? '' : ',') + httpMembers])
  }
  // The event has members ($schema at least): what is added to it follows a comma.
  if (eventMembers !== '') inserts.push([close, ',' + eventMembers])
  if (inserts.length > 1) inserts.sort((a, b) => a[0] - b[0])

  let out = ''
  let from = start
  for (const [offset, text] of inserts) {
    out += body.slice(from, offset) + text
    from = offset
  }
  return out + body.slice(from, close + 1)
}

function member(name: string, value: unknown, quoted: Map<string, string>): string {
  if (typeof value !== 'string') return '"' + name + '":' + JSON.stringify(value)
  let text = quoted.get(value)
  if (text === undefined) {
    text = JSON.stringify(value)
    if (quoted.size < 64) quoted.set(value, text)
  }
  return '"' + name + '":' + text
}

function join(a: string, b: string): string {
  return a === '' ? b : `${a},${b}`
}

/** Keys of an object and of every object in it, as the text would list them without duplicates. */
export function countKeys(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  let keys = 0
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item === 'object' && item !== null) keys += countKeys(item)
    return keys
  }
  for (const key in value as JsonObject) {
    keys++
    const child = (value as JsonObject)[key]
    if (typeof child === 'object' && child !== null) keys += countKeys(child)
  }
  return keys
}

function flag(located: Int32Array, at: number, bit: number): void {
  located[at + FLAGS] = located[at + FLAGS]! | bit
}

function bitCount(bits: number): number {
  let count = 0
  for (let b = bits; b !== 0; b &= b - 1) count++
  return count
}

function skipSpace(body: string, i: number): number {
  while (i < body.length && body.charCodeAt(i) <= 0x20) i++
  return i
}

/** Whether the quote at `j` is escaped: preceded by an odd number of backslashes. */
function escaped(body: string, j: number): boolean {
  let k = j - 1
  while (body.charCodeAt(k) === backslash) k--
  return (j - 1 - k) % 2 === 1
}

function hasBackslash(body: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (body.charCodeAt(i) === backslash) return true
  return false
}

/** Whether the string whose quotes are at `open` and `close` is exactly `key`. */
function isKey(body: string, open: number, close: number, key: string): boolean {
  return close - open - 1 === key.length && body.startsWith(key, open + 1)
}
