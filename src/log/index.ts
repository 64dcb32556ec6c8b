/** @module log: the durable, ordered, partitioned event log — its contract, Kafka's partitioner and the embedded SQLite implementation. */
export type {
  AppendRecord,
  EventLog,
  LogRecord,
  Position,
  ReadFrom,
  ReadOptions,
  TopicPartitionOffset,
} from './types.ts'
export { kafkaPartition, murmur2, toPositive } from './partitioner.ts'
export { isValidTopic } from './validate.ts'
export {
  openSqliteLog,
  appendChannelName,
  type AppendMessage,
  type RetentionResult,
  type SqliteEventLog,
  type SqliteLogOptions,
  type SqliteLogStats,
} from './sqlite.ts'
export { sqliteSchemaVersion } from './sqlite-schema.ts'
import type { KafkaEventLog, KafkaLogOptions } from './kafka.ts'

export type { KafkaEventLog, KafkaLogOptions } from './kafka.ts'
export { kafkaSecurity } from './kafka-security.ts'

/**
 * Opens the Kafka event log (log/kafka.ts). The Kafka client is loaded on first use, not with
 * this module: a CLI command or a server on the embedded log does not pay its start-up (about
 * a second: the client compiles its protocol schemas when loaded).
 */
export async function openKafkaLog(options: KafkaLogOptions): Promise<KafkaEventLog> {
  const kafka = await import('./kafka.ts')
  return kafka.openKafkaLog(options)
}
