import type { EventplaneError } from '../core/errors.ts'

/**
 * The event log: a durable, ordered, partitioned log of records, shaped like Kafka so that the
 * embedded (SQLite) and Kafka implementations are interchangeable. Every implementation passes
 * the shared contract suite in test/log/contract.ts.
 */

/** A record to append. */
export interface AppendRecord {
  topic: string
  /** Records with the same key land in the same partition (Kafka's murmur2 partitioner). */
  key?: string | Buffer | null
  value: string | Buffer
  /** Milliseconds since the epoch; defaults to the append time. For events: `meta.dt`. */
  timestamp?: number
  /** Forces a partition; otherwise derived from the key (or chosen when there is none). */
  partition?: number
}

/** Where an appended record landed. */
export interface Position {
  topic: string
  partition: number
  offset: number
}

/** A record read back from the log. */
export interface LogRecord {
  topic: string
  partition: number
  offset: number
  timestamp: number
  key: Buffer | null
  value: Buffer
}

/** Where a read starts: an offset, or the first record whose timestamp is at or after a time. */
export type ReadFrom =
  | { topic: string; partition: number; offset: number }
  | { topic: string; partition: number; timestamp: number }

export interface ReadOptions {
  /** Stops the iteration (the iterator then ends without error). */
  signal?: AbortSignal
  /** Keep waiting for new records at the end of the log (default true); false ends at the end. */
  follow?: boolean
  /** Most records buffered ahead of the consumer. */
  batchSize?: number
}

export interface TopicPartitionOffset {
  topic: string
  partition: number
  /** For offsetsForTimes: the first offset with a timestamp at or after the time, or the end offset when none. */
  offset: number
}

/**
 * The log. `append` resolves only once the records are durable (committed); appends that
 * arrive together are committed together (group commit). Offsets are per partition, from 0,
 * without gaps, and `latest` is the offset the next record will get (Kafka's end offset).
 */
export interface EventLog {
  /** Which implementation: `sqlite`, `kafka`. */
  readonly kind: string
  append(records: readonly AppendRecord[]): Promise<Position[]>
  /**
   * Why `append` would refuse this record for what it is (its topic name, timestamp or size),
   * or undefined. A caller that appends the records of many producers together checks each
   * first, so that one refused record never fails the others.
   */
  checkRecord(record: AppendRecord): EventplaneError | undefined
  /** Records of one partition from a position, in offset order; follows new ones unless `follow: false`. */
  read(from: ReadFrom, options?: ReadOptions): AsyncIterable<LogRecord>
  /** Number of partitions of a topic (creating it with the default count when it does not exist). */
  partitions(topic: string): Promise<number>
  /** Topics that exist. */
  topics(): Promise<string[]>
  /** Offset of the first record still kept (after retention). */
  earliest(topic: string, partition: number): Promise<number>
  /** Offset the next record will get (one past the last). */
  latest(topic: string, partition: number): Promise<number>
  /** For each partition of the topic, the first offset whose timestamp is at or after `timestamp`. */
  offsetsForTimes(topic: string, timestamp: number): Promise<TopicPartitionOffset[]>
  /** Flushes pending appends and closes; later calls fail with EVP_LOG_CLOSED. */
  close(): Promise<void>
}
