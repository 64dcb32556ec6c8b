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

/**
 * Turns a request body into the list of events it carries: one JSON object or an array of
 * them, or CloudEvents (structured mode) mapped onto our event shape. Refuses, with a stable
 * code, what cannot be events: no body, bytes that are not UTF-8, text that is not JSON, and
 * nesting deeper than `maxDepth` (which would overflow the stack of later JSON work).
 */
export function parseEventsBody(body: Buffer, contentType: string, maxDepth: number): unknown[] {
  if (body.length === 0) throw empty()
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
  const depth = depthOver(value, maxDepth)
  if (depth) throw new EventplaneError('EVP_BODY_TOO_DEEP', `the request body nests deeper than ${maxDepth} levels`, { details: { limit: maxDepth } })
  const type = mediaType(contentType)
  if (type === 'application/cloudevents+json') return [fromCloudEvent(value)]
  if (type === 'application/cloudevents-batch+json') {
    if (!Array.isArray(value)) throw new EventplaneError('EVP_BODY_INVALID_JSON', 'a CloudEvents batch must be a JSON array')
    if (value.length === 0) throw empty()
    return value.map(fromCloudEvent)
  }
  const events = Array.isArray(value) ? value : [value]
  // EventGate answers 400 to `[]` and `{}` alike: nothing to accept.
  if (events.length === 0 || (events.length === 1 && isPlainObject(events[0]) && Object.keys(events[0]).length === 0)) throw empty()
  return events
}

function empty(): EventplaneError {
  return new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events')
}

export function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';')
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
}

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
