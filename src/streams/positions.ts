import { EventplaneError } from '../core/errors.ts'
import { isPlainObject } from '../core/objects.ts'

/** A position in one partition, as it travels in SSE ids and `Last-Event-ID` (KafkaSSE's shape). */
export interface IdPosition {
  topic: string
  partition: number
  offset?: number
  timestamp?: number
}

/** `?since=`: epoch milliseconds, or any time `Date.parse` reads (ISO-8601). */
export function parseSince(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const ms = /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : Date.parse(value)
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new EventplaneError('EVP_SINCE_INVALID', `since ${JSON.stringify(value)} is neither epoch milliseconds nor an ISO-8601 time`, {
      details: { since: value },
    })
  }
  return ms
}

/** Most events back `?last=` may ask for in each partition. */
export const maxLast = 10_000

/** `?last=N`: start N events back in each partition (1 to maxLast); not together with `since`. */
export function parseLast(value: string | undefined, since: number | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = /^\d{1,6}$/.test(value.trim()) ? Number(value.trim()) : NaN
  if (!(n >= 1 && n <= maxLast)) {
    throw new EventplaneError('EVP_LAST_INVALID', `last ${JSON.stringify(value.slice(0, 100))} is not a whole number of events from 1 to ${maxLast}`, { details: { last: value.slice(0, 100), max: maxLast } })
  }
  if (since !== undefined) throw new EventplaneError('EVP_LAST_INVALID', 'give since or last, not both: since starts at a time, last a number of events back')
  return n
}

const maxIdLength = 64 * 1024

/**
 * `Last-Event-ID`: a JSON array of `{topic, partition, offset}` or `{topic, partition,
 * timestamp}` (an entry with both resumes by offset, as KafkaSSE does). Topics must be among
 * `allowedTopics`, else EVP_TOPIC_NOT_AVAILABLE (404) listing them.
 */
export function parseLastEventId(header: string | undefined, allowedTopics: ReadonlySet<string>): IdPosition[] | undefined {
  if (header === undefined || header.trim() === '') return undefined
  const invalid = (why: string) =>
    new EventplaneError('EVP_LAST_EVENT_ID_INVALID', `Last-Event-ID ${why}; it must be a JSON array of {"topic","partition","offset"|"timestamp"}`)
  if (header.length > maxIdLength) throw invalid(`is longer than ${maxIdLength} characters`)
  let value: unknown
  try {
    value = JSON.parse(header)
  } catch {
    throw invalid('is not JSON')
  }
  if (!Array.isArray(value)) throw invalid('is not an array')
  const positions: IdPosition[] = []
  for (const [i, entry] of value.entries()) {
    if (!isPlainObject(entry)) throw invalid(`entry ${i} is not an object`)
    const { topic, partition, offset, timestamp } = entry
    if (typeof topic !== 'string' || topic === '') throw invalid(`entry ${i} has no topic`)
    if (!Number.isSafeInteger(partition) || (partition as number) < 0) throw invalid(`entry ${i} has no integer partition`)
    const hasOffset = offset !== undefined && offset !== null
    const hasTimestamp = timestamp !== undefined && timestamp !== null
    if (hasOffset && (!Number.isSafeInteger(offset) || (offset as number) < -1)) throw invalid(`entry ${i} has an offset that is not an integer >= -1`)
    if (hasTimestamp && (!Number.isSafeInteger(timestamp) || (timestamp as number) < 0)) throw invalid(`entry ${i} has a timestamp that is not an integer`)
    if (!hasOffset && !hasTimestamp) throw invalid(`entry ${i} has neither offset nor timestamp`)
    if (!allowedTopics.has(topic)) {
      throw new EventplaneError('EVP_TOPIC_NOT_AVAILABLE', `Last-Event-ID names topic ${topic}, which is not a topic of the streams asked for`, {
        details: { topic, availableTopics: [...allowedTopics].sort() },
      })
    }
    const position: IdPosition = { topic, partition: partition as number }
    if (hasOffset) position.offset = offset as number
    if (hasTimestamp) position.timestamp = timestamp as number
    positions.push(position)
  }
  return positions
}
