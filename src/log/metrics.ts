/** Prometheus metrics `eventplane_log_*`, registered on a registry passed in (never the global one). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

export const logMetricNames = {
  duration: 'eventplane_log_append_duration_seconds',
  records: 'eventplane_log_appended_records_total',
  groupSize: 'eventplane_log_group_commit_size',
  failures: 'eventplane_log_group_commit_failures_total',
  undecodableBatches: 'eventplane_log_undecodable_batches_total',
  pending: 'eventplane_log_pending_records',
} as const

/**
 * The event log's metrics, the same names for every implementation. A second log on the same
 * registry shares them; only the log that created them removes them.
 */
export function createLogMetrics(registry: Registry) {
  const { metric, remove } = sharedMetrics(registry)
  const registers = [registry]
  return {
    duration: metric(
      logMetricNames.duration,
      () =>
        new Histogram({
          name: logMetricNames.duration,
          help: 'Time to write and commit one group of appends (a SQLite transaction, or a Kafka produce acknowledged by all in-sync replicas).',
          buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
          registers,
        }),
    ),
    records: metric(
      logMetricNames.records,
      () =>
        new Counter({
          name: logMetricNames.records,
          help: 'Records appended to the event log, by topic.',
          labelNames: ['topic'] as const,
          registers,
        }),
    ),
    groupSize: metric(
      logMetricNames.groupSize,
      () =>
        new Histogram({
          name: logMetricNames.groupSize,
          help: 'append() calls committed together in one transaction (group commit).',
          buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
          registers,
        }),
    ),
    failures: metric(
      logMetricNames.failures,
      () =>
        new Counter({
          name: logMetricNames.failures,
          help: 'Group commits that failed: on SQLite all their appends were rejected (EVP_LOG_FULL for a full disk, else EVP_LOG_NOT_WRITTEN); on Kafka some records were not acknowledged within the append deadline (EVP_LOG_NOT_WRITTEN or EVP_LOG_OUTCOME_UNKNOWN).',
          registers,
        }),
    ),
    remove,
  }
}

/** Metrics only the Kafka log has, shared and removed as those of createLogMetrics. */
export function createKafkaLogMetrics(registry: Registry) {
  const { metric, remove } = sharedMetrics(registry)
  return {
    undecodableBatches: metric(
      logMetricNames.undecodableBatches,
      () =>
        new Counter({
          name: logMetricNames.undecodableBatches,
          help: 'Record batches in Kafka that could not be decoded (a compression codec this server cannot read, or a corrupt batch), by topic; each stops the readers of its partition there with EVP_LOG_RECORD_UNDECODABLE. Counted once per batch.',
          labelNames: ['topic'] as const,
          registers: [registry],
        }),
    ),
    pending: metric(
      logMetricNames.pending,
      () =>
        new Gauge({
          name: logMetricNames.pending,
          help: 'Records appended to Kafka and not answered yet (waiting for a producer or in flight); each is answered by event_log.kafka.append_deadline_ms at the latest.',
          registers: [registry],
        }),
    ),
    remove,
  }
}

/** Takes a metric already on the registry, or makes it; remove() drops the ones this made. */
function sharedMetrics(registry: Registry) {
  const owned: string[] = []
  return {
    metric<T>(name: string, make: () => T): T {
      const existing = registry.getSingleMetric(name)
      if (existing !== undefined) return existing as T
      owned.push(name)
      return make()
    },
    remove() {
      for (const name of owned) registry.removeSingleMetric(name)
    },
  }
}
