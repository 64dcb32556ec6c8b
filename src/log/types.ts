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
  /**
   * For a record without a key: records with the same affinity land in the same partition
   * (murmur2 of it, as of a key), without it being a key (readers see no `meta.key`). The intake
   * passes `meta.id`, so that an event sent again lands where its first attempt did, and a
   * reader can drop the duplicate (streams/dedupe.ts).
   */
  affinity?: string
}

/** What became of one record of an append: where it landed, or why it is not (or may not be) there. */
export type AppendOutcome = Position | EventplaneError

/** Whether the log can take appends and serve reads now; `reason` says why not. */
export interface LogHealth {
  writable: boolean
  readable: boolean
  reason?: string
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
   * Like append, but each record has its own outcome, so that records for healthy partitions
   * are acknowledged when another partition fails. A record that failed is an error with code
   * EVP_LOG_NOT_WRITTEN (certainly not in the log), EVP_LOG_FULL (certainly not in the log: the
   * disk is full), EVP_LOG_OUTCOME_UNKNOWN (sent, unanswered: it may be in the log),
   * EVP_LOG_INVALID_ARGUMENT (refused for what it is) or EVP_LOG_CLOSED.
   * Rejects only for arguments that are not records at all.
   */
  appendEach(records: readonly AppendRecord[]): Promise<AppendOutcome[]>
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
  /** Whether appends and reads work now (for readiness checks); never rejects. */
  health(): Promise<LogHealth>
  /** Flushes pending appends and closes; later calls fail with EVP_LOG_CLOSED. */
  close(): Promise<void>
}
