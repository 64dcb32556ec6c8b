import { existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { pino } from 'pino'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { kafkaSecurity, openKafkaLog, openSqliteLog, type EventLog } from '../log/index.ts'
import type { Endpoint } from './endpoints.ts'

/**
 * The event log an `embedded://` or `kafka://` endpoint names. `embedded://` is the SQLite file
 * of the config (event_log.path), shared safely with a server that has it open; the pipe runs no
 * retention of its own. `kafka://` connects to the brokers in the URI with the config's Kafka
 * security settings (SASL, TLS); a destination creates a missing topic, a source does not.
 */
export async function openLog(endpoint: Extract<Endpoint, { scheme: 'embedded' | 'kafka' }>, config: Readonly<Config>, mode: 'read' | 'write'): Promise<{ log: EventLog; label: string }> {
  const settings = config.event_log
  const logger = pino({ level: 'silent' })
  if (endpoint.scheme === 'embedded') {
    const path = settings.path!
    if (mode === 'read' && !existsSync(path)) throw new EventplaneError('EVP_LOG_UNAVAILABLE', `no event log at ${path} (has the server run with this config?)`)
    mkdirSync(dirname(path), { recursive: true })
    const log = await openSqliteLog({ path, defaultPartitions: settings.partitions, topicPartitions: settings.topic_partitions as Record<string, number>, sync: settings.sync, logger })
    return { log, label: path }
  }
  const kafka = settings.kafka
  const log = await openKafkaLog({
    brokers: endpoint.brokers,
    ...kafkaSecurity(kafka),
    clientId: `${kafka.client_id}-pipe`,
    defaultPartitions: settings.partitions,
    topicPartitions: settings.topic_partitions as Record<string, number>,
    replicationFactor: kafka.replication_factor,
    createTopics: mode === 'write',
    requestTimeoutMs: kafka.request_timeout_ms,
    logger,
  })
  return { log, label: `Kafka at ${endpoint.brokers.join(',')}` }
}
