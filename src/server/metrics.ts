import { collectDefaultMetrics, Histogram, Registry } from 'prom-client'
import { createServer, type Server } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EventplaneError } from '../core/errors.ts'
import { securityHeaders, writeProblem } from '../core/http.ts'

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

/** `GET /metrics` in the Prometheus text format, never cached. */
export function metricsHandler(registry: Registry): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply> {
  return async (_request, reply) => reply.type(registry.contentType).header('cache-control', 'no-store').send(await registry.metrics())
}

/**
 * `/metrics` on a listener of its own (`server.metrics.port`), so that it can stay on a
 * private interface while the API faces the internet. It answers nothing else.
 */
export async function startMetricsListener(
  registry: Registry,
  host: string,
  port: number,
  timeouts: { headersTimeout: number; requestTimeout: number } = { headersTimeout: 10_000, requestTimeout: 30_000 },
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer({ ...timeouts, connectionsCheckingInterval: 1000 }, (request, response) => {
    request.resume()
    const path = (request.url ?? '').split('?')[0]
    if (path === '/metrics' && (request.method === 'GET' || request.method === 'HEAD')) {
      registry.metrics().then(
        (text) => {
          response.writeHead(200, { ...securityHeaders, 'content-type': registry.contentType, 'cache-control': 'no-store' })
          response.end(request.method === 'HEAD' ? undefined : text)
        },
        () => {
          response.writeHead(500).end()
        },
      )
      return
    }
    writeProblem(response, new EventplaneError('EVP_NOT_FOUND', `no route for ${request.method} ${path}: this listener serves GET /metrics only`))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  const actual = typeof address === 'object' && address !== null ? address.port : port
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
