import type { IncomingMessage, ServerResponse } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import type { Logger } from 'pino'
import { EventplaneError, isEventplaneError, toProblem } from '../core/errors.ts'
import { authChallenge, problemContentType, requestIdOf, retryAfterOf, securityHeaders, writeProblem } from '../core/http.ts'
import { eventMediaType, parseEventsBody, type BodyLimits } from './body.ts'
import { createAdmission, type Admission } from './admission.ts'
import type { Intake, RequestContext } from './intake.ts'
import { answerFor, hastyMessage, processHastily } from './routes.ts'

export interface IntakeListenerOptions {
  intake: Intake
  maxBodyBytes: number
  limits: BodyLimits
  /** Refused events listed per group in an answer. */
  maxListed: number
  /** Bytes of bodies being received over all requests; past it, 503 EVP_OVERLOADED. */
  maxPendingBodyBytes: number
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
  /** Tokens, rates and the streams a token may write (admission.ts); without it, every request is admitted. */
  admission?: Admission
}

const jsonType = 'application/json; charset=utf-8'

/**
 * `POST /v1/events` straight on node:http, in front of fastify. It is the hot path of the
 * platform, and fastify's per-request machinery (request and reply objects, hooks, its
 * body parser) halved its throughput for one-event requests (docs/decisions.md). Everything
 * else, and `POST /v1/events` made through `app.inject`, goes through fastify's route, which
 * shares this one's parsing (`parseEventsBody`), processing (`Intake`) and answers
 * (`answerFor`), so the two cannot answer differently. Other methods on `/v1/events` get 405
 * here (OPTIONS, the CORS preflight, goes on to fastify).
 *
 * A request refused before its body is read (a wrong type, a body over the limit) is answered
 * once the body has arrived, read and thrown away, up to four times the limit: answering and
 * closing while the client still sends makes `fetch` and `node:http` clients see EPIPE or
 * ECONNRESET instead of the answer.
 *
 * Returns a listener that handles the request and returns true, or returns false to let
 * fastify have it.
 */
export function createIntakeListener(options: IntakeListenerOptions): (request: IncomingMessage, response: ServerResponse) => boolean {
  const trust = proxyTrust(options.trustProxy)
  const anyOrigin = options.corsOrigins.includes('*')
  const origins = new Set(options.corsOrigins)
  const log = options.logger
  const drainLimit = options.maxBodyBytes * 4
  const admission = options.admission ?? createAdmission()
  let pendingBytes = 0

  const handle = (request: IncomingMessage, response: ServerResponse, query: string): void => {
    const started = process.hrtime.bigint()
    const header = (name: string): string | undefined => {
      const value = request.headers[name]
      return Array.isArray(value) ? value[0] : value
    }
    const given = requestIdOf(request.headers['x-request-id'])
    const requestId = given ?? options.newRequestId()
    // Headers are gathered here and written with one writeHead (node's fast path).
    const headers: Record<string, string> = { 'x-request-id': requestId }
    let answered = false
    let refused = false
    const finish = (status: number, message: string | undefined, body: string | undefined, type: string = jsonType) => {
      if (answered || response.destroyed) return
      answered = true
      const origin = header('origin')
      if (anyOrigin) headers['access-control-allow-origin'] = '*'
      else if (origin !== undefined && origins.has(origin)) {
        headers['access-control-allow-origin'] = origin
        headers['vary'] = 'Origin'
      }
      if (origins.size > 0) headers['access-control-expose-headers'] = 'x-request-id, etag'
      if (body !== undefined) {
        // Policies for how a browser may handle a body: sent with bodies. The hot path's 201
        // and 202 have none, and skip the cost of four more headers.
        Object.assign(headers, securityHeaders)
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
      const retryAfter = retryAfterOf(e)
      if (retryAfter !== undefined) headers['retry-after'] = retryAfter
      const challenge = authChallenge(e)
      if (challenge !== undefined) headers['www-authenticate'] = challenge
      headers['cache-control'] = 'no-store'
      finish(e.statusCode, undefined, JSON.stringify(toProblem(e)), problemContentType)
    }

    // Bytes of this request counted in pendingBytes, given back once it is answered or gone.
    let held = 0
    const release = () => {
      pendingBytes -= held
      held = 0
    }
    // A client that goes away mid-body: nothing to answer, and its bytes are no longer pending.
    request.on('error', release)

    /** Answers once the rest of the body has been read and dropped (or, past drainLimit, at once). */
    const refuse = (error: EventplaneError) => {
      refused = true
      release()
      if (request.complete) return problem(error)
      let drained = 0
      request.removeAllListeners('data')
      request.on('data', (chunk: Buffer) => {
        drained += chunk.length
        if (drained > drainLimit) {
          headers['connection'] = 'close'
          problem(error)
          request.destroy()
        }
      })
      request.once('end', () => problem(error))
    }

    const contentType = header('content-type')
    const declared = Number(header('content-length') ?? NaN)
    const bodyless = declared === 0 || (Number.isNaN(declared) && header('transfer-encoding') === undefined)
    if (contentType === undefined && bodyless) return problem(new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events'))
    try {
      eventMediaType(contentType)
    } catch (error) {
      return refuse(error as EventplaneError)
    }
    const peer = request.socket.remoteAddress ?? ''
    // X-Client-IP only from a proxy we trust: from anyone else it is whatever they say.
    const clientIp = (trust(peer, 0) ? header('x-client-ip') : undefined) ?? proxyAddr(request, trust)
    // A token nobody has, or a client over its rate, is refused before the body is read; the
    // events' streams are checked once they are parsed (public streams take events from anyone).
    const who = admission.admit(request.headers, clientIp)
    if (who instanceof EventplaneError) return refuse(who)
    if (declared > options.maxBodyBytes) return refuse(tooLarge(`the body is ${declared} bytes; the limit is ${options.maxBodyBytes}`, options.maxBodyBytes))
    const overloaded = () =>
      new EventplaneError('EVP_OVERLOADED', `request bodies being received hold ${options.maxPendingBodyBytes} bytes (intake.max_pending_body_bytes); retry shortly`, {
        details: { limit: options.maxPendingBodyBytes },
      })
    if (declared > 0) {
      if (pendingBytes + declared > options.maxPendingBodyBytes) return refuse(overloaded())
      held = declared
      pendingBytes += declared
    }

    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > options.maxBodyBytes) {
        chunks.length = 0
        return refuse(tooLarge(`the body is over the ${options.maxBodyBytes}-byte limit`, options.maxBodyBytes))
      }
      if (size > held) {
        // A body without Content-Length (chunked) is counted as it arrives.
        if (pendingBytes + (size - held) > options.maxPendingBodyBytes) {
          chunks.length = 0
          return refuse(overloaded())
        }
        pendingBytes += size - held
        held = size
      }
      chunks.push(chunk)
    })
    request.on('end', () => {
      if (answered || refused) return
      let events: unknown[]
      let text: string | undefined
      try {
        ;({ events, text } = parseEventsBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), contentType ?? '', options.limits))
      } catch (error) {
        return problem(error)
      } finally {
        chunks.length = 0
        release()
      }
      const params = query === '' ? undefined : new URLSearchParams(query)
      const param = (name: string | null | undefined) => {
        if (!name || params === undefined) return undefined
        const values = params.getAll(name)
        const last = values[values.length - 1]
        return last === '' ? undefined : last
      }
      const context: RequestContext = {
        receivedAt: new Date(),
        requestId: given,
        userAgent: header('user-agent'),
        clientIp,
        defaultSchemaUri: param(options.schemaUriQueryParam),
        defaultStream: param(options.streamQueryParam),
        text,
      }
      const refusal = admission.authorize(who, events, context.defaultStream)
      if (refusal !== undefined) return problem(refusal)
      // EventGate checks JS truthiness of the string: any non-empty value, even "false", is hasty.
      if (param('hasty') !== undefined) {
        processHastily(options.intake, events, context, log)
        return finish(202, hastyMessage(events.length), undefined)
      }
      options.intake.process(events, context).then(
        (result) => {
          const answer = answerFor(result, options.maxListed)
          if (answer.retryAfterS !== undefined) headers['retry-after'] = String(answer.retryAfterS)
          finish(answer.status, answer.message, answer.body === undefined ? undefined : JSON.stringify(answer.body))
        },
        problem,
      )
    })
  }

  const notAllowed = (request: IncomingMessage, response: ServerResponse) => {
    const error = new EventplaneError('EVP_METHOD_NOT_ALLOWED', `${request.method} is not allowed on /v1/events; POST events there`)
    writeProblem(response, error, { allow: 'POST' }, request.method !== 'HEAD')
    request.resume()
  }

  return (request, response) => {
    const url = request.url ?? ''
    const q = url.indexOf('?')
    if ((q === -1 ? url : url.slice(0, q)) !== '/v1/events') return false
    if (request.method === 'POST') handle(request, response, q === -1 ? '' : url.slice(q + 1))
    else if (request.method === 'OPTIONS') return false
    else notAllowed(request, response)
    return true
  }
}

function tooLarge(message: string, limit: number): EventplaneError {
  return new EventplaneError('EVP_BODY_TOO_LARGE', message, { details: { limit } })
}

/** Whether a peer (hop `i` from us) is a proxy whose forwarding headers are believed. */
export function proxyTrust(trustProxy: boolean | string[]): (address: string, i: number) => boolean {
  return trustProxy === true ? () => true : trustProxy === false ? () => false : proxyAddr.compile(trustProxy)
}
