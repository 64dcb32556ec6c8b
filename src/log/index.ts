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
export { openKafkaLog, type KafkaEventLog, type KafkaLogOptions } from './kafka.ts'
