/**
 * Kafka's default partitioner, bit for bit, so that a key lands in the same partition on the
 * embedded log and on Kafka (and on any Java, librdkafka-"murmur2_random" or kafkajs producer).
 * Reference: org.apache.kafka.common.utils.Utils.murmur2 and BuiltInPartitioner.partitionForKey.
 */

const seed = 0x9747b28c
const m = 0x5bd1e995

/**
 * MurmurHash2 as Kafka computes it: 32-bit, seed 0x9747b28c, returned as a signed 32-bit
 * integer like Java's `int`.
 *
 * @example
 * murmur2(Buffer.from('21')) // -973932308, as in Kafka's UtilsTest
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = seed ^ length
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8
    // falls through
    case 1:
      h ^= data[whole]!
      h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which differs for MIN_VALUE). */
export function toPositive(n: number): number {
  return n & 0x7fffffff
}

/** The bytes Kafka's StringSerializer would send for a key: UTF-8 for strings. */
export function keyBytes(key: string | Uint8Array): Buffer {
  return typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.isBuffer(key) ? key : Buffer.from(key)
}

/**
 * The partition Kafka's default partitioner picks for a keyed record:
 * `toPositive(murmur2(keyBytes)) % partitions`.
 *
 * @example
 * kafkaPartition('user-42', 3) // the same on the sqlite and the kafka log
 */
export function kafkaPartition(key: string | Uint8Array, partitions: number): number {
  return toPositive(murmur2(keyBytes(key))) % partitions
}

/**
 * The partition of one record of an append, the same on every log: the one it names (checked
 * by the caller), else its key's (Kafka's default partitioner), else its affinity's (hashed as
 * a key would be), else `keyless()`: a partition the log picks (sticky per append).
 */
export function partitionOf(record: { partition?: number; affinity?: string }, key: Uint8Array | null, partitions: number, keyless: () => number): number {
  if (record.partition !== undefined) return record.partition
  if (partitions === 1) return 0
  if (key !== null) return toPositive(murmur2(key)) % partitions
  if (typeof record.affinity === 'string') return toPositive(murmur2(Buffer.from(record.affinity, 'utf8'))) % partitions
  return keyless()
}
