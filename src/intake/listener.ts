import type { IncomingMessage, ServerResponse } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import type { Logger } from 'pino'
import { EventplaneError, isEventplaneError, toProblem } from '../core/errors.ts'
import { problemContentType } from '../core/http.ts'
import { eventContentTypes, mediaType, parseEventsBody } from './body.ts'
import type { Intake, RequestContext } from './intake.ts'
import { answerFor, hastyMessage, processHastily } from './routes.ts'

export interface IntakeListenerOptions {
  intake: Intake
  maxBodyBytes: number
  maxDepth: number
  schemaUriQueryParam?: string | null
  streamQueryParam?: string | null
  /** fastify's trustProxy setting: false, true, or addresses/CIDRs. */
  trustProxy: boolean | string[]
  /** `['*']`, a list of origins, or none. */
  corsOrigins: readonly string[]
  logger: Logger
  newRequestId: () => string
  /** Called once per answered request (for the request latency histogram). */
  observe?: (status: number, seconds: number) => void
}

const accepted = new Set<string>(eventContentTypes)
const jsonType = 'application/json; charset=utf-8'

/**
 * `POST /v1/events` straight on node:http, in front of fastify. It is the hot path of the
 * platform, and fastify's per-request machinery (request and reply objects, hooks, its
 * body parser) halved its throughput for one-event requests (docs/decisions.md). Everything
 * else, and `POST /v1/events` made through `app.inject`, goes through fastify's route, which
 * shares this one's parsing (`parseEventsBody`), processing (`Intake`) and answers
 * (`answerFor`), so the two cannot answer differently.
 *
 * Returns a listener that handles the request and returns true, or returns false to let
 * fastify have it.
 */
export function createIntakeListener(options: IntakeListenerOptions): (request: IncomingMessage, response: ServerResponse) => boolean {
  const trust = options.trustProxy === true ? () => true : options.trustProxy === false ? () => false : proxyAddr.compile(options.trustProxy)
  const anyOrigin = options.corsOrigins.includes('*')
  const origins = new Set(options.corsOrigins)
  const log = options.logger

  const handle = (request: IncomingMessage, response: ServerResponse, query: string): void => {
    const started = process.hrtime.bigint()
    const header = (name: string): string | undefined => {
      const value = request.headers[name]
      return Array.isArray(value) ? value[0] : value
    }
    const requestId = header('x-request-id') ?? options.newRequestId()
    // Headers are gathered here and written with one writeHead (node's fast path).
    const headers: Record<string, string> = { 'x-request-id': requestId }
    const finish = (status: number, message: string | undefined, body: string | undefined, type: string = jsonType) => {
      const origin = header('origin')
      if (anyOrigin) headers['access-control-allow-origin'] = '*'
      else if (origin !== undefined && origins.has(origin)) {
        headers['access-control-allow-origin'] = origin
        headers['vary'] = 'Origin'
      }
      if (origins.size > 0) headers['access-control-expose-headers'] = 'x-request-id, etag'
      if (body !== undefined) {
        headers['content-type'] = type
        headers['content-length'] = String(Buffer.byteLength(body))
      }
      if (message === undefined) response.writeHead(status, headers)
      else response.writeHead(status, message, headers)
      response.end(body)
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      options.observe?.(status, seconds)
      if (status >= 500) log.warn({ reqId: requestId, status, ms: seconds * 1000 }, 'request')
    }
    const problem = (error: unknown) => {
      const e = isEventplaneError(error) ? error : new EventplaneError('EVP_INTERNAL', 'internal error; see the server log')
      if (!isEventplaneError(error)) log.error({ err: error, reqId: requestId }, 'unhandled error')
      if (e.canRetry && e.statusCode >= 500) headers['retry-after'] = '5'
      headers['cache-control'] = 'no-store'
      finish(e.statusCode, undefined, JSON.stringify(toProblem(e)), problemContentType)
    }
    const refuse = (error: EventplaneError) => {
      // The rest of the body is not read: close the connection rather than drain it.
      headers['connection'] = 'close'
      problem(error)
      request.resume()
    }

    const contentType = header('content-type')
    if (contentType === undefined || !accepted.has(mediaType(contentType))) {
      const bodyless = header('content-length') === '0' || (header('content-length') === undefined && header('transfer-encoding') === undefined)
      if (contentType === undefined && bodyless) return problem(new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events'))
      return refuse(new EventplaneError('EVP_UNSUPPORTED_MEDIA_TYPE', `content type ${JSON.stringify(contentType ?? '')} is not supported; send ${eventContentTypes.join(', ')}`))
    }
    const declared = Number(header('content-length') ?? NaN)
    if (declared > options.maxBodyBytes) {
      return refuse(new EventplaneError('EVP_BODY_TOO_LARGE', `the body is ${declared} bytes; the limit is ${options.maxBodyBytes}`, { details: { limit: options.maxBodyBytes } }))
    }

    const chunks: Buffer[] = []
    let size = 0
    let over = false
    request.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > options.maxBodyBytes) {
        over = true
        chunks.length = 0
        refuse(new EventplaneError('EVP_BODY_TOO_LARGE', `the body is over the ${options.maxBodyBytes}-byte limit`, { details: { limit: options.maxBodyBytes } }))
        return
      }
      chunks.push(chunk)
    })
    request.on('error', () => {}) // a client that goes away: nothing to answer
    request.on('end', () => {
      if (over) return
      let events: unknown[]
      try {
        events = parseEventsBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), contentType, options.maxDepth)
      } catch (error) {
        return problem(error)
      }
      const params = query === '' ? undefined : new URLSearchParams(query)
      const param = (name: string | null | undefined) => {
        if (!name || params === undefined) return undefined
        const values = params.getAll(name)
        const last = values[values.length - 1]
        return last === '' ? undefined : last
      }
      const clientIpHeader = options.trustProxy !== false ? header('x-client-ip') : undefined
      const context: RequestContext = {
        receivedAt: new Date(),
        requestId: header('x-request-id'),
        userAgent: header('user-agent'),
        clientIp: clientIpHeader ?? proxyAddr(request, trust),
        defaultSchemaUri: param(options.schemaUriQueryParam),
        defaultStream: param(options.streamQueryParam),
      }
      // EventGate checks JS truthiness of the string: any non-empty value, even "false", is hasty.
      if (param('hasty') !== undefined) {
        processHastily(options.intake, events, context, log)
        return finish(202, hastyMessage(events.length), undefined)
      }
      options.intake.process(events, context).then(
        (result) => {
          const answer = answerFor(result)
          if (answer.retryAfterS !== undefined) headers['retry-after'] = String(answer.retryAfterS)
          finish(answer.status, answer.message, answer.body === undefined ? undefined : JSON.stringify(answer.body))
        },
        problem,
      )
    })
  }

  return (request, response) => {
    if (request.method !== 'POST') return false
    const url = request.url ?? ''
    const q = url.indexOf('?')
    if ((q === -1 ? url : url.slice(0, q)) !== '/v1/events') return false
    handle(request, response, q === -1 ? '' : url.slice(q + 1))
    return true
  }
}
