/**
 * What stands between the internet and the routes: security headers on every answer, problem
 * documents for requests node:http refuses before any route sees them (oversized or malformed
 * headers, timeouts), and caps on open connections, total and per peer address.
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError, toProblem, type ErrorCode } from '../core/errors.ts'
import { clientKey, problemHeaders, writeProblem } from '../core/http.ts'

/** A whole HTTP/1.1 answer with a problem document, for a socket no route will answer. */
export function rawProblem(code: ErrorCode, detail: string): string {
  const error = new EventplaneError(code, detail)
  const body = JSON.stringify(toProblem(error))
  const lines = Object.entries(problemHeaders(error, body, { connection: 'close' })).map(([name, value]) => `${name}: ${value}`)
  return `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] ?? 'Error'}\r\n${lines.join('\r\n')}\r\n\r\n${body}`
}

/**
 * For fastify's `clientErrorHandler`: what node:http refuses before routing (headers over its
 * 16 KiB limit, bytes that are not HTTP, a request that did not arrive within the timeouts)
 * gets a problem document with a stable code, as everything else does, not node's own text.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy()
    return
  }
  let answer: string
  if (error.code === 'HPE_HEADER_OVERFLOW') answer = rawProblem('EVP_HEADERS_TOO_LARGE', 'the request line and headers are larger than 16 KiB')
  else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') answer = rawProblem('EVP_REQUEST_TIMEOUT', 'the request did not arrive in time (server.headers_timeout_ms, server.request_timeout_ms)')
  else answer = rawProblem('EVP_BAD_REQUEST', `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`)
  socket.end(answer)
  socket.destroySoon?.()
}

export interface ConnectionLimits {
  /** Open connections at once (0: no limit). */
  maxConnections: number
  /** Open connections per peer address (0: no limit). */
  maxPerIp: number
  /** Peers exempt from the per-address cap: the load balancers in front. */
  exempt: (address: string) => boolean
  logger?: Logger
  registry?: Registry
}

/**
 * Caps open TCP connections: past the total, a connection's requests get 503 EVP_OVERLOADED;
 * past the per-address cap, 429 EVP_TOO_MANY_CONNECTIONS; either way the connection is closed
 * after that one answer (or after a second if no request comes), and no request on it reaches
 * a route. A slot is freed when its socket closes, whatever closes it. Returns the check the
 * server's request handler calls first: true when it answered the request itself.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): (request: IncomingMessage, response: ServerResponse) => boolean {
  const perIp = new Map<string, number>()
  const refusals = new WeakMap<Socket, EventplaneError>()
  let open = 0
  const refused = new Counter({
    name: 'eventplane_http_connections_refused_total',
    help: 'TCP connections refused at a connection cap, by reason (server.max_connections, server.max_connections_per_ip).',
    labelNames: ['reason'] as const,
    registers: limits.registry ? [limits.registry] : [],
  })
  const refuse = (socket: Socket, error: EventplaneError) => {
    refusals.set(socket, error)
    socket.on('error', () => {})
    setTimeout(() => socket.destroy(), 1000).unref()
  }
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? ''
    const key = clientKey(address)
    if (limits.maxConnections > 0 && open >= limits.maxConnections) {
      refused.inc({ reason: 'total' })
      return refuse(socket, new EventplaneError('EVP_OVERLOADED', `the server holds ${limits.maxConnections} connections (server.max_connections); retry shortly`))
    }
    const mine = perIp.get(key) ?? 0
    if (limits.maxPerIp > 0 && mine >= limits.maxPerIp && !limits.exempt(address)) {
      refused.inc({ reason: 'per_ip' })
      return refuse(socket, new EventplaneError('EVP_TOO_MANY_CONNECTIONS', `${key} has ${mine} connections open; the limit is ${limits.maxPerIp} (server.max_connections_per_ip)`))
    }
    open++
    perIp.set(key, mine + 1)
    socket.once('close', () => {
      open--
      const left = (perIp.get(key) ?? 1) - 1
      if (left <= 0) perIp.delete(key)
      else perIp.set(key, left)
    })
  })
  return (request, response) => {
    const error = refusals.get(request.socket)
    if (error === undefined) return false
    writeProblem(response, error, { 'retry-after': error.code === 'EVP_OVERLOADED' ? '5' : '10', connection: 'close' })
    request.resume()
    return true
  }
}
