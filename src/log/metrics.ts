/** Prometheus metrics `eventplane_log_*`, registered on a registry passed in (never the global one). */
import { Counter, Histogram, type Registry } from 'prom-client'

export const logMetricNames = {
  duration: 'eventplane_log_append_duration_seconds',
  records: 'eventplane_log_appended_records_total',
  groupSize: 'eventplane_log_group_commit_size',
  failures: 'eventplane_log_group_commit_failures_total',
} as const

/**
 * The event log's metrics, the same names for every implementation. A second log on the same
 * registry shares them; only the log that created them removes them.
 */
export function createLogMetrics(registry: Registry) {
  const owned: string[] = []
  function metric<T>(name: string, make: () => T): T {
    const existing = registry.getSingleMetric(name)
    if (existing !== undefined) return existing as T
    owned.push(name)
    return make()
  }
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
          help: 'Group commits that failed; all their appends were rejected with EVP_LOG_UNAVAILABLE.',
          registers,
        }),
    ),
    remove() {
      for (const name of owned) registry.removeSingleMetric(name)
    },
  }
}
