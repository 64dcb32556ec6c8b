import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EventplaneError } from '../core/errors.ts'
import { requestIdOf } from '../core/http.ts'
import { eventContentTypes, parseEventsBody, type BodyLimits, type ParsedBody } from './body.ts'
import { createAdmission, type Admission } from './admission.ts'
import type { BatchResult, Intake, ItemResult, RequestContext } from './intake.ts'

export interface IntakeRoutesOptions {
  intake: Intake
  maxBodyBytes: number
  limits: BodyLimits
  /** Refused events listed per group in an answer; the rest are counted in `omitted`. */
  maxListed: number
  schemaUriQueryParam?: string | null
  streamQueryParam?: string | null
  /** Whether a peer address is a trusted proxy, whose X-Client-IP is believed (X-Forwarded-For is fastify's trustProxy). */
  trusted: (address: string) => boolean
  /** Events for `GET /v1/_test/events`; the route exists only when given. */
  testEvents?: readonly unknown[] | undefined
  /** Tokens, rates and the streams a token may write (admission.ts); without it, every request is admitted. */
  admission?: Admission
}

type Query = Record<string, string | string[] | undefined>

/**
 * `POST /v1/events` with EventGate's answers: 201 all accepted (empty body), 202 with
 * `?hasty` (answered before processing), 207 some failed `{invalid, error}`, 400 all invalid
 * `{invalid}`, 500 none accepted and some errored. The reason phrase of the status line says
 * how many, as EventGate's does. Where EventGate answers 500 for a bad body we answer 400
 * (not JSON, not UTF-8, too deep, empty), 413 (too large) or 415 (content type), as
 * problem+json with a stable code.
 */
export async function intakeRoutes(app: FastifyInstance, options: IntakeRoutesOptions): Promise<void> {
  const { intake } = options
  // Encapsulated: these parsers replace fastify's JSON parser inside this plugin only.
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser([...eventContentTypes], { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, (request, body, done) => {
    try {
      done(null, parseEventsBody(body as Buffer, request.headers['content-type'] ?? 'application/json', options.limits))
    } catch (error) {
      done(error as Error, undefined)
    }
  })

  const contextOf = (request: FastifyRequest) => requestContext(request, options)
  const admission = options.admission ?? createAdmission()
  /** Throws EVP_AUTH_*, EVP_RATE_LIMITED or EVP_STREAM_FORBIDDEN when the request may not write these events. */
  const authorize = (request: FastifyRequest, events: readonly unknown[], context: RequestContext) => {
    const who = admission.admit(request.headers, context.clientIp ?? request.ip)
    if (who instanceof EventplaneError) throw who
    const refusal = admission.authorize(who, events, context.defaultStream)
    if (refusal !== undefined) throw refusal
  }

  // What the console draws: events by stream and outcome over the last minutes. The same counts
  // as /metrics (eventplane_intake_events_total), with their recent history.
  app.get('/v1/intake/recent', async (_request, reply) => reply.header('cache-control', 'no-store').send(intake.recent()))

  app.post('/v1/events', async (request, reply) => {
    const parsed = request.body as ParsedBody | undefined
    if (parsed === undefined || parsed === null) {
      throw new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events')
    }
    const { events } = parsed
    const context = contextOf(request)
    context.text = parsed.text
    authorize(request, events, context)
    // EventGate checks JS truthiness of the string: any non-empty value, even "false", is hasty.
    if (single((request.query as Query)['hasty'])) {
      processHastily(intake, events, context, request.log)
      reply.raw.statusMessage = hastyMessage(events.length)
      return reply.code(202).send()
    }
    return sendResult(reply, await intake.process(events, context), options.maxListed)
  })

  if (options.testEvents !== undefined && options.testEvents.length > 0) {
    const testEvents = options.testEvents
    app.get('/v1/_test/events', async (request, reply) => {
      const events = structuredClone(testEvents) as unknown[]
      const context = contextOf(request)
      authorize(request, events, context)
      return sendResult(reply, await intake.process(events, context), options.maxListed)
    })
  }
}

/**
 * What the intake knows of a request: when it came, its id, user agent and client address (a
 * trusted proxy's X-Client-IP, else the peer or X-Forwarded-For as fastify's trustProxy
 * says), and the `?schema_uri=` / `?stream=` defaults when those parameters are on.
 */
export function requestContext(request: FastifyRequest, options: Pick<IntakeRoutesOptions, 'trusted' | 'schemaUriQueryParam' | 'streamQueryParam'>): RequestContext {
  const query = request.query as Query
  const header = (name: string) => {
    const value = request.headers[name]
    return Array.isArray(value) ? value[0] : value
  }
  return {
    receivedAt: new Date(),
    requestId: requestIdOf(request.headers['x-request-id']),
    userAgent: header('user-agent'),
    clientIp: (options.trusted(request.socket.remoteAddress ?? '') ? header('x-client-ip') : undefined) ?? request.ip,
    defaultSchemaUri: options.schemaUriQueryParam ? single(query[options.schemaUriQueryParam]) : undefined,
    defaultStream: options.streamQueryParam ? single(query[options.streamQueryParam]) : undefined,
  }
}

/** An intake answer: status, reason phrase, and the JSON body when there is one. */
export interface Answer {
  status: number
  message: string
  /** EventGate's body, with `omitted` (our addition) counting refusals past the listed ones. */
  body?: { invalid: unknown[]; error?: unknown[]; omitted?: { invalid: number; error: number } }
  /** Seconds for a Retry-After header. */
  retryAfterS?: number
}

function isRetryable(item: unknown): boolean {
  return (item as { context?: { canRetry?: unknown } }).context?.canRetry === true
}

/**
 * EventGate's status for a batch outcome, with its reason phrase. At most `maxListed` refused
 * events are listed per group (a batch of ten thousand bad events must not make a 300 MB
 * answer); `omitted` counts the rest.
 */
export function answerFor(result: BatchResult, maxListed = Infinity): Answer {
  const { total, accepted } = result
  const invalid = result.invalid.length
  const errored = result.error.length
  const failed = invalid + errored
  if (failed === 0) return { status: 201, message: `All ${total} out of ${total} events were accepted.` }
  const listed = (items: ItemResult[]) => (items.length > maxListed ? items.slice(0, maxListed) : items)
  // Events the log did not take are all listed, with the meta.id the intake gave them, so the
  // producer can send them again as they are (the answer is then about as large as the request).
  const retryable = result.error.every(isRetryable)
  const errors = retryable ? result.error : listed(result.error)
  const body = (withError: boolean): NonNullable<Answer['body']> => {
    const out: NonNullable<Answer['body']> = withError ? { invalid: listed(result.invalid), error: errors } : { invalid: listed(result.invalid) }
    const omittedErrors = errored - errors.length
    if (invalid > maxListed || omittedErrors > 0) out.omitted = { invalid: Math.max(0, invalid - maxListed), error: omittedErrors }
    return out
  }
  if (accepted > 0) {
    return {
      status: 207,
      message: `${accepted} out of ${total} events were accepted, but ${failed} failed (${invalid} invalid and ${errored} errored).`,
      body: body(true),
    }
  }
  if (errored === 0) return { status: 400, message: `${invalid} out of ${total} events were invalid and not accepted.`, body: body(false) }
  // Where EventGate answers 500, a batch that failed only for a passing reason (the event log was
  // unavailable) is 503 with Retry-After: the producer should send it again as it is.
  if (invalid === 0 && retryable) {
    const unknown = result.error.filter((item) => (item.context as { code?: string }).code === 'EVP_LOG_OUTCOME_UNKNOWN').length
    return {
      status: 503,
      message:
        unknown === 0
          ? `${errored} out of ${total} events were not written; send them again.`
          : `${errored} out of ${total} events were not confirmed (${unknown} may have been written); send them again with the same meta.id.`,
      body: { ...body(true), invalid: [] },
      retryAfterS: 5,
    }
  }
  return {
    status: 500,
    message: `${failed} out of ${total} events had failures and were not accepted. (${invalid} invalid and ${errored} errored).`,
    body: body(true),
  }
}

export function hastyMessage(count: number): string {
  return `${count} events hastily received.`
}

function sendResult(reply: FastifyReply, result: BatchResult, maxListed: number): FastifyReply {
  const answer = answerFor(result, maxListed)
  reply.raw.statusMessage = answer.message
  if (answer.retryAfterS !== undefined) reply.header('retry-after', String(answer.retryAfterS))
  return answer.body === undefined ? reply.code(answer.status).send() : reply.code(answer.status).send(answer.body)
}

/** Runs a hasty batch after the answer; its outcome is only logged. */
export function processHastily(intake: Intake, events: unknown[], context: RequestContext, log: { warn: (o: object, m: string) => void; error: (o: object, m: string) => void }): void {
  setImmediate(() => {
    intake.process(events, context).then(
      (result) => {
        if (result.invalid.length + result.error.length > 0) {
          log.warn({ accepted: result.accepted, invalid: result.invalid.length, error: result.error.length }, 'hasty events were not all accepted')
        }
      },
      (error: unknown) => log.error({ err: error }, 'hasty events failed'),
    )
  })
}

function single(value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[value.length - 1] : value
  return one === '' ? undefined : one
}
