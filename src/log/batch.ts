/**
 * The payload of one record batch: the records of one append group for one partition, stored
 * together in one row, as Kafka stores a record batch. Offsets and the topic live in the row,
 * not in the payload.
 *
 *   byte      format (1)
 *   then per record, in offset order:
 *   uint48 LE timestamp in ms
 *   int32  LE key length, -1 for no key (an empty key is 0, as in Kafka)
 *   bytes     key
 *   uint32 LE value length
 *   bytes     value
 */
import { EventplaneError } from '../core/errors.ts'
import type { LogRecord } from './types.ts'

export const batchFormat = 1
const recordOverhead = 6 + 4 + 4

/** A record ready to be encoded; `valueBytes` is the UTF-8 length of a string value. */
export interface PendingRecord {
  timestamp: number
  key: Buffer | null
  value: string | Uint8Array
  valueBytes: number
}

export function encodedSize(record: PendingRecord): number {
  return recordOverhead + (record.key === null ? 0 : record.key.length) + record.valueBytes
}

/** Encodes `records[start..end)`; `size` is the sum of their encodedSize (plus nothing else). */
export function encodeBatch(records: readonly PendingRecord[], start: number, end: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(1 + size)
  out[0] = batchFormat
  let at = 1
  for (let i = start; i < end; i++) {
    const { timestamp, key, value, valueBytes } = records[i]!
    out.writeUIntLE(timestamp, at, 6)
    at += 6
    if (key === null) {
      out.writeInt32LE(-1, at)
      at += 4
    } else {
      out.writeInt32LE(key.length, at)
      at += 4
      out.set(key, at)
      at += key.length
    }
    out.writeUInt32LE(valueBytes, at)
    at += 4
    if (typeof value === 'string') out.write(value, at, valueBytes, 'utf8')
    else out.set(value, at)
    at += valueBytes
  }
  if (at !== out.length) throw new Error(`batch size mismatch: wrote ${at} of ${out.length} bytes`)
  return out
}

function corrupt(detail: string): EventplaneError {
  return new EventplaneError('EVP_LOG_UNAVAILABLE', `corrupt record batch: ${detail}`)
}

/**
 * Decodes a batch whose first record has offset `baseOffset`, skipping records before
 * `fromOffset`. Keys and values are views into `payload` (no copy).
 */
export function decodeBatch(
  payload: Buffer,
  count: number,
  topic: string,
  partition: number,
  baseOffset: number,
  fromOffset = baseOffset,
): LogRecord[] {
  if (payload[0] !== batchFormat) throw corrupt(`unknown format ${payload[0]} at offset ${baseOffset}`)
  const records: LogRecord[] = []
  let at = 1
  for (let i = 0; i < count; i++) {
    if (at + recordOverhead > payload.length) throw corrupt(`truncated at offset ${baseOffset + i}`)
    const timestamp = payload.readUIntLE(at, 6)
    const keyLength = payload.readInt32LE(at + 6)
    at += 10
    const keyStart = at
    if (keyLength > 0) at += keyLength
    const valueLength = payload.readUInt32LE(at)
    at += 4
    const valueStart = at
    at += valueLength
    if (at > payload.length) throw corrupt(`truncated at offset ${baseOffset + i}`)
    const offset = baseOffset + i
    if (offset < fromOffset) continue
    records.push({
      topic,
      partition,
      offset,
      timestamp,
      key: keyLength < 0 ? null : payload.subarray(keyStart, keyStart + keyLength),
      value: payload.subarray(valueStart, at),
    })
  }
  if (at !== payload.length) throw corrupt(`${payload.length - at} bytes after the last record at ${baseOffset}`)
  return records
}

/** Index in the batch of the first record whose timestamp is >= `timestamp`, or -1. */
export function firstIndexAtOrAfter(payload: Buffer, count: number, timestamp: number): number {
  let at = 1
  for (let i = 0; i < count; i++) {
    if (payload.readUIntLE(at, 6) >= timestamp) return i
    const keyLength = payload.readInt32LE(at + 6)
    at += 10 + Math.max(0, keyLength)
    at += 4 + payload.readUInt32LE(at)
  }
  return -1
}
