import type { ServerResponse } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import { EventplaneError, toProblem, type ErrorCode } from './errors.ts'

export const problemContentType = 'application/problem+json; charset=utf-8'

/**
 * Headers every API answer carries: no MIME sniffing, never framed, and a policy that lets the
 * answer load nothing (pages that need more, like the stream viewer, set their own policy).
 */
export const securityHeaders: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
})

/** Longest request id taken from `X-Request-ID` (it is echoed, logged and copied into events). */
const maxRequestIdLength = 200

/** The request's `X-Request-ID`, cut to a length fit to echo and log, or undefined. */
export function requestIdOf(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || value === '') return undefined
  return value.length > maxRequestIdLength ? value.slice(0, maxRequestIdLength) : value
}

/**
 * Who a peer address is, for per-client limits: an IPv4 address (also when mapped into IPv6),
 * or the /64 network of an IPv6 address, since one IPv6 host commonly holds a whole /64 and
 * could otherwise take a new address for every connection.
 */
export function clientKey(address: string): string {
  if (!address.includes(':')) return address
  const bare = address.split('%')[0]!.toLowerCase()
  if (bare.startsWith('::ffff:') && bare.includes('.')) return bare.slice(7)
  const halves = bare.split('::')
  const left = halves[0] === '' ? [] : halves[0]!.split(':')
  const right = halves.length > 1 && halves[1] !== '' ? halves[1]!.split(':') : []
  const groups = halves.length > 1 ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left
  return `${groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`
}

/** The policy of our own HTML pages, which carry their styles inline and load nothing. */
export const htmlPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** `Retry-After` for an error that may succeed later: its `details.retryAfterS`, else 5 s for a 5xx. */
export function retryAfterOf(error: EventplaneError): string | undefined {
  const given = error.details?.['retryAfterS']
  if (typeof given === 'number' && error.canRetry) return String(given)
  return error.canRetry && error.statusCode >= 500 ? '5' : undefined
}

/** The `WWW-Authenticate` challenge of a 401 (RFC 6750), or undefined for other errors. */
export function authChallenge(error: EventplaneError): string | undefined {
  if (error.code === 'EVP_AUTH_REQUIRED') return 'Bearer realm="eventplane"'
  if (error.code === 'EVP_AUTH_INVALID') return 'Bearer realm="eventplane", error="invalid_token"'
  return undefined
}

/** The headers of a problem document answered outside fastify (node:http's own answers). */
export function problemHeaders(error: EventplaneError, body: string, extra: Record<string, string> = {}): Record<string, string> {
  const challenge = authChallenge(error)
  const retryAfter = retryAfterOf(error)
  return {
    ...securityHeaders,
    'content-type': problemContentType,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...(retryAfter === undefined ? {} : { 'retry-after': retryAfter }),
    ...(challenge === undefined ? {} : { 'www-authenticate': challenge }),
    ...extra,
  }
}

/** Answers a node:http response (one fastify never sees) with the error's problem document. */
export function writeProblem(response: ServerResponse, error: EventplaneError, extra: Record<string, string> = {}, withBody = true): void {
  const body = JSON.stringify(toProblem(error))
  response.writeHead(error.statusCode, problemHeaders(error, body, extra))
  response.end(withBody ? body : undefined)
}

/**
 * The media ranges of an `Accept` header, lower-cased, with their q-values (1 when not given);
 * ranges with q 0 (or an unreadable q) are left out, as they accept nothing.
 */
export function acceptRanges(accept: string): Array<{ range: string; q: number }> {
  const ranges: Array<{ range: string; q: number }> = []
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.trim().toLowerCase().split(';')
    const q = Number(params.map((p) => p.trim()).find((p) => p.startsWith('q='))?.slice(2) ?? 1)
    if (q > 0) ranges.push({ range: range.trim(), q })
  }
  return ranges
}

/** Whether an `Accept` header prefers HTML to JSON: a browser navigating, not an API client. */
export function prefersHtml(accept: string | undefined): boolean {
  let html = 0
  let json = 0
  for (const { range, q } of acceptRanges(accept ?? '')) {
    if (range === 'text/html') html = Math.max(html, q)
    if (range === 'application/json') json = Math.max(json, q)
  }
  return html > json
}

/** Answers with an RFC 9457 problem document carrying the error's stable code. */
export function sendProblem(reply: FastifyReply, error: EventplaneError): FastifyReply {
  const problem = toProblem(error)
  const retryAfter = retryAfterOf(error)
  if (retryAfter !== undefined) reply.header('retry-after', retryAfter)
  const challenge = authChallenge(error)
  if (challenge !== undefined) reply.header('www-authenticate', challenge)
  return reply.code(error.statusCode).type(problemContentType).header('cache-control', 'no-store').send(problem)
}

// fastify's own errors (body parsing, routing) mapped onto our codes.
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'EVP_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'EVP_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'EVP_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EVP_BODY_EMPTY',
  FST_ERR_CTP_INVALID_JSON_BODY: 'EVP_BODY_INVALID_JSON',
  FST_ERR_VALIDATION: 'EVP_BAD_REQUEST',
  FST_ERR_BAD_URL: 'EVP_BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'EVP_BAD_REQUEST',
}

/**
 * For fastify's `frameworkErrors` option: errors raised before routing (a malformed URL,
 * a bad content type) get the same problem documents as everything else.
 */
export function frameworkErrors(error: FastifyError, _request: unknown, reply: FastifyReply): void {
  const code = (error.code !== undefined && fastifyCodes[error.code]) || 'EVP_BAD_REQUEST'
  void sendProblem(reply, new EventplaneError(code, error.message))
}

/**
 * Every error leaves the server as problem+json with a stable code; unknown errors are logged
 * with their stack and answered as EVP_INTERNAL without internals.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | EventplaneError, request, reply) => {
    if (error instanceof EventplaneError) {
      if (error.statusCode >= 500) request.log.error({ err: error, code: error.code }, error.message)
      return sendProblem(reply, error)
    }
    const mapped = error.code === undefined ? undefined : fastifyCodes[error.code]
    if (mapped !== undefined || (error.statusCode !== undefined && error.statusCode < 500)) {
      return sendProblem(reply, new EventplaneError(mapped ?? 'EVP_BAD_REQUEST', error.message))
    }
    request.log.error({ err: error }, 'unhandled error')
    return sendProblem(reply, new EventplaneError('EVP_INTERNAL', 'internal error; see the server log'))
  })
  app.setNotFoundHandler((request, reply) => {
    return sendProblem(reply, new EventplaneError('EVP_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`))
  })
}
