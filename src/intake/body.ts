import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'

/** Content types `POST /v1/events` accepts. */
export const eventContentTypes = [
  'application/json',
  // navigator.sendBeacon with a string body sends text/plain (no CORS preflight).
  'text/plain',
  // The W3C Reporting API (Network Error Logging) posts reports with this type.
  'application/reports+json',
  'application/cloudevents+json',
  'application/cloudevents-batch+json',
] as const

export type EventContentType = (typeof eventContentTypes)[number]

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What one request body may hold. */
export interface BodyLimits {
  /** Deepest nesting of objects and arrays (the top level is 1). */
  maxDepth: number
  /** Most events (items of a top-level array). */
  maxEvents: number
}

/**
 * The media type of a `Content-Type` the intake takes, or a 415: another type, or a charset
 * other than UTF-8 (JSON is UTF-8 by RFC 8259; bytes in another charset would be misread).
 */
export function eventMediaType(contentType: string | undefined): EventContentType {
  const header = contentType ?? ''
  const type = mediaType(header)
  if (!(eventContentTypes as readonly string[]).includes(type)) {
    throw new EventplaneError('EVP_UNSUPPORTED_MEDIA_TYPE', `content type ${JSON.stringify(header)} is not supported; send ${eventContentTypes.join(', ')}`)
  }
  const charset = header.includes(';') ? /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(header)?.[1]?.toLowerCase() : undefined
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new EventplaneError('EVP_UNSUPPORTED_MEDIA_TYPE', `charset ${JSON.stringify(charset)} is not supported; send UTF-8 (charset=utf-8 or none)`)
  }
  return type as EventContentType
}

/**
 * Turns a request body into the list of events it carries: one JSON object or an array of
 * them, or CloudEvents (structured mode) mapped onto our event shape. Refuses, with a stable
 * code, what cannot be events: no body, bytes that are not UTF-8, text that is not JSON,
 * nesting deeper than `maxDepth` (which would overflow the stack of later JSON work), and
 * more than `maxEvents` items. Depth and count are read off the bytes before they are parsed,
 * so a body of two million tiny items costs one scan, not two million objects.
 */
export function parseEventsBody(body: Buffer, contentType: string, limits: BodyLimits): ParsedBody {
  if (body.length === 0) throw empty()
  const type = eventMediaType(contentType)
  // A large body is read for depth and count before it is parsed, so that two million tiny
  // items are refused for the price of one scan, not two million objects. A small one costs
  // little to parse whatever it holds, and is checked after (a scan costs about 3x the walk).
  const scanned = body.length > Math.max(2 * limits.maxEvents, scanAbove)
  if (scanned) {
    const over = scanShape(body, limits)
    if (over === 'deep') throw tooDeep(limits)
    if (over === 'many') throw tooMany(limits)
  }
  let text: string
  try {
    text = utf8.decode(body)
  } catch (error) {
    throw new EventplaneError('EVP_BODY_INVALID_UTF8', 'the request body is not valid UTF-8', { cause: error })
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new EventplaneError('EVP_BODY_INVALID_JSON', `the request body is not JSON: ${(error as Error).message}`, { cause: error })
  }
  if (!scanned) {
    if (depthOver(value, limits.maxDepth)) throw tooDeep(limits)
    if (Array.isArray(value) && value.length > limits.maxEvents) throw tooMany(limits)
  }
  if (type === 'application/cloudevents+json') return { events: [fromCloudEvent(value)] }
  if (type === 'application/cloudevents-batch+json') {
    if (!Array.isArray(value)) throw new EventplaneError('EVP_BODY_INVALID_JSON', 'a CloudEvents batch must be a JSON array')
    if (value.length === 0) throw empty()
    return { events: value.map(fromCloudEvent) }
  }
  const events = Array.isArray(value) ? value : [value]
  // EventGate answers 400 to `[]` and `{}` alike: nothing to accept.
  if (events.length === 0 || (events.length === 1 && isPlainObject(events[0]) && Object.keys(events[0]).length === 0)) throw empty()
  return { events, text }
}

/** The events of a request body. */
export interface ParsedBody {
  events: unknown[]
  /** The body as text, when the events are its JSON as sent (CloudEvents are mapped onto our shape). */
  text?: string
}

/** Bodies larger than this (and than two bytes per allowed event) are scanned before parsing. */
const scanAbove = 256 * 1024

function tooDeep(limits: BodyLimits): EventplaneError {
  return new EventplaneError('EVP_BODY_TOO_DEEP', `the request body nests deeper than ${limits.maxDepth} levels`, { details: { limit: limits.maxDepth } })
}

function tooMany(limits: BodyLimits): EventplaneError {
  return new EventplaneError('EVP_TOO_MANY_EVENTS', `the request body carries more than ${limits.maxEvents} events; split the batch`, { details: { limit: limits.maxEvents } })
}

function empty(): EventplaneError {
  return new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events')
}

export function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';')
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
}

const quote = 0x22
const backslash = 0x5c

/** Whether any object or array nests deeper than `limit` (walked without recursion). */
function depthOver(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    if (depth > limit) return true
    if (Array.isArray(node)) {
      for (const child of node) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    } else {
      for (const key in node as JsonObject) {
        const child = (node as JsonObject)[key]
        if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
      }
    }
  }
  return false
}

/**
 * Whether JSON text nests deeper than `maxDepth` or has more than `maxEvents` items in a
 * top-level array, read off the bytes (about 1 ns a byte). Counts commas at depth 1, so it may
 * count one item too many on malformed text, which JSON.parse refuses anyway.
 */
function scanShape(body: Buffer, limits: BodyLimits): 'deep' | 'many' | undefined {
  let depth = 0
  let commas = 0
  let topIsArray = false
  const maxCommas = limits.maxEvents - 1
  const n = body.length
  for (let i = 0; i < n; i++) {
    const c = body[i]!
    if (c === quote) {
      // To the closing quote, stepping over escapes (`\"`, `\\`).
      for (i++; i < n; i++) {
        const d = body[i]!
        if (d === backslash) i++
        else if (d === quote) break
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (depth === 0 && c === 0x5b) topIsArray = true
      if (++depth > limits.maxDepth) return 'deep'
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    } else if (c === 0x2c && depth === 1 && topIsArray) {
      if (++commas > maxCommas) return 'many'
    }
  }
  return undefined
}

/**
 * CloudEvents 1.0, structured mode, mapped onto an event (docs/intake.md):
 * `data` is the event; `dataschema` → `$schema`, the `stream` extension attribute →
 * `meta.stream`, `id` → `meta.id`, `time` → `dt`, each only when the event lacks it. Anything
 * that cannot be mapped stays as it is, so the event fails validation with a clear message.
 */
export function fromCloudEvent(value: unknown): unknown {
  if (!isPlainObject(value) || value['specversion'] === undefined) return value
  const data = value['data']
  if (!isPlainObject(data)) return data === undefined ? {} : data
  const event: JsonObject = data
  if (event['$schema'] === undefined && typeof value['dataschema'] === 'string') event['$schema'] = value['dataschema']
  if (event['dt'] === undefined && typeof value['time'] === 'string') event['dt'] = value['time']
  const meta = isPlainObject(event['meta']) ? event['meta'] : event['meta'] === undefined ? (event['meta'] = {}) : undefined
  if (meta !== undefined) {
    if (meta['stream'] === undefined && typeof value['stream'] === 'string') meta['stream'] = value['stream']
    if (meta['id'] === undefined && typeof value['id'] === 'string') meta['id'] = value['id']
    if (Object.keys(meta).length === 0) delete event['meta']
  }
  return event
}
