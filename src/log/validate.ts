/**
 * Argument checks every EventLog implementation applies the same way, so that both backends
 * refuse the same inputs with EVP_LOG_INVALID_ARGUMENT.
 */
import { EventplaneError } from '../core/errors.ts'
import type { AppendOutcome, AppendRecord, Position, ReadFrom, ReadOptions } from './types.ts'

/** Kafka's rule for topic names (`org.apache.kafka.common.internals.Topic.validate`). */
const topicPattern = /^[A-Za-z0-9._-]{1,249}$/

/** Timestamps are stored in 48 bits: up to the year 10889. Kafka forbids negative ones. */
export const maxTimestamp = 2 ** 48 - 1

export function invalid(message: string, details?: Record<string, unknown>): EventplaneError {
  return new EventplaneError('EVP_LOG_INVALID_ARGUMENT', message, details === undefined ? {} : { details })
}

export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && topicPattern.test(topic) && topic !== '.' && topic !== '..'
}

/** Names already checked: appends name the same few topics over and over. */
const checkedTopics = new Set<string>()

export function assertTopic(topic: unknown): asserts topic is string {
  if (typeof topic === 'string' && checkedTopics.has(topic)) return
  if (isValidTopic(topic)) {
    if (checkedTopics.size < 10_000) checkedTopics.add(topic)
  } else {
    throw invalid(`invalid topic name ${JSON.stringify(topic)}: use 1 to 249 of [A-Za-z0-9._-], not "." or ".."`, {
      topic,
    })
  }
}

export function assertPartition(topic: string, partition: unknown, partitions: number): asserts partition is number {
  if (!Number.isInteger(partition) || (partition as number) < 0 || (partition as number) >= partitions) {
    throw invalid(`topic ${topic} has partitions 0 to ${partitions - 1}, not ${String(partition)}`, { topic, partition })
  }
}

export function assertOffset(offset: unknown): asserts offset is number {
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    throw invalid(`offset must be an integer >= 0, not ${String(offset)}`, { offset })
  }
}

/** A time to search for: any number of milliseconds >= 0. */
export function assertSearchTime(timestamp: unknown): asserts timestamp is number {
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0) {
    throw invalid(`timestamp must be a number of milliseconds >= 0, not ${String(timestamp)}`, { timestamp })
  }
}

/** Checks the parts of a record that do not depend on the topic's partition count. */
export function assertRecordShape(record: AppendRecord, index: number): void {
  if (typeof record !== 'object' || record === null) throw invalid(`record ${index} is not an object`, { index })
  assertTopic(record.topic)
  const { key, value, timestamp, affinity } = record
  if (affinity !== undefined && typeof affinity !== 'string') throw invalid(`record ${index}: affinity must be a string`, { index })
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw invalid(`record ${index}: value must be a string or a Buffer`, { index })
  }
  if (key !== undefined && key !== null && typeof key !== 'string' && !(key instanceof Uint8Array)) {
    throw invalid(`record ${index}: key must be a string, a Buffer or null`, { index })
  }
  if (timestamp !== undefined && (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp > maxTimestamp)) {
    throw invalid(`record ${index}: timestamp must be an integer number of milliseconds >= 0`, { index, timestamp })
  }
}

/** What one implementation takes in a record. */
export interface RecordLimits {
  /** Longest topic name (Kafka: 249, less the topic namespace). */
  maxTopicLength: number
  /** Most bytes of key and value together. */
  maxRecordBytes: number
}

/** Why a record breaks the limits (or its shape), without throwing; undefined when it is fine. */
export function recordError(record: AppendRecord, limits: RecordLimits): EventplaneError | undefined {
  try {
    assertRecordShape(record, 0)
  } catch (error) {
    return error as EventplaneError
  }
  if (record.topic.length > limits.maxTopicLength) {
    return invalid(`topic name ${record.topic} is ${record.topic.length} characters long; this event log takes at most ${limits.maxTopicLength}`, {
      topic: record.topic,
      limit: limits.maxTopicLength,
    })
  }
  const { key, value } = record
  const bytesOf = (v: string | Uint8Array | null | undefined) => (v === null || v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length)
  // A string takes at most 3 UTF-8 bytes per UTF-16 unit: count exactly only when that bound passes the limit.
  const bound = (v: string | Uint8Array | null | undefined) => (typeof v === 'string' ? v.length * 3 : bytesOf(v))
  if (bound(key) + bound(value) > limits.maxRecordBytes) {
    const bytes = bytesOf(key) + bytesOf(value)
    if (bytes > limits.maxRecordBytes) {
      return invalid(`the record is ${bytes} bytes; this event log takes at most ${limits.maxRecordBytes}`, { bytes, limit: limits.maxRecordBytes })
    }
  }
  return undefined
}

/** The checked arguments of `read`: where it starts, and its options with their defaults. */
export function readArguments(from: ReadFrom, options: ReadOptions, defaultBatchSize: number) {
  const batchSize = options.batchSize ?? defaultBatchSize
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalid(`batchSize must be an integer >= 1, not ${batchSize}`)
  if (typeof from !== 'object' || from === null) throw invalid('read needs {topic, partition, offset | timestamp}')
  return { topic: from.topic, partition: from.partition, signal: options.signal, follow: options.follow ?? true, batchSize }
}

/**
 * appendEach for a log whose appends commit all or nothing: every record gets the append's
 * outcome. A failure that left nothing written says so (EVP_LOG_NOT_WRITTEN); refusals of the
 * records and a closed log keep their codes.
 */
export async function settled(append: (records: readonly AppendRecord[]) => Promise<Position[]>, records: readonly AppendRecord[]): Promise<AppendOutcome[]> {
  if (!Array.isArray(records)) throw invalid('append takes an array of records')
  try {
    return await append(records)
  } catch (error) {
    const e =
      error instanceof EventplaneError && error.code !== 'EVP_LOG_UNAVAILABLE'
        ? error
        : new EventplaneError('EVP_LOG_NOT_WRITTEN', `the records were not written: ${(error as Error).message}`, { cause: error })
    return records.map(() => e)
  }
}
