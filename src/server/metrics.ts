import { collectDefaultMetrics, Histogram, Registry } from 'prom-client'
import type { FastifyInstance } from 'fastify'

/** A registry of its own per platform instance (never prom-client's global one), so tests and
 *  several apps in one process do not share counters. */
export function createMetricsRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'eventplane_' })
  return registry
}

export type ObserveRequest = (method: string, route: string, status: number, seconds: number) => void

/**
 * Request count and latency by route pattern (never by raw URL, which would be unbounded).
 * Returns the observer, for requests answered outside fastify (the intake's fast path).
 */
export function instrumentHttp(app: FastifyInstance, registry: Registry): ObserveRequest {
  const duration = new Histogram({
    name: 'eventplane_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  app.addHook('onResponse', (request, reply, done) => {
    duration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    )
    done()
  })
  // One child per label set, so the hot path does not hash labels on every request.
  const children = new Map<string, ReturnType<typeof duration.labels>>()
  return (method, route, status, seconds) => {
    const key = `${method} ${route} ${status}`
    let child = children.get(key)
    if (child === undefined) {
      child = duration.labels({ method, route, status: String(status) })
      children.set(key, child)
    }
    child.observe(seconds)
  }
}
