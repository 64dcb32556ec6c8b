import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EventplaneError } from '../core/errors.ts'
import { eventContentTypes, parseEventsBody } from './body.ts'
import type { BatchResult, Intake, RequestContext } from './intake.ts'

export interface IntakeRoutesOptions {
  intake: Intake
  maxBodyBytes: number
  maxDepth: number
  schemaUriQueryParam?: string | null
  streamQueryParam?: string | null
  /** Believe X-Client-IP (set by a trusted edge proxy); X-Forwarded-For is handled by fastify's trustProxy. */
  trustClientIpHeader?: boolean
  /** Events for `GET /v1/_test/events`; the route exists only when given. */
  testEvents?: readonly unknown[] | undefined
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
      done(null, parseEventsBody(body as Buffer, request.headers['content-type'] ?? 'application/json', options.maxDepth))
    } catch (error) {
      done(error as Error, undefined)
    }
  })

  const contextOf = (request: FastifyRequest): RequestContext => {
    const query = request.query as Query
    const header = (name: string) => {
      const value = request.headers[name]
      return Array.isArray(value) ? value[0] : value
    }
    return {
      receivedAt: new Date(),
      requestId: header('x-request-id'),
      userAgent: header('user-agent'),
      clientIp: (options.trustClientIpHeader ? header('x-client-ip') : undefined) ?? request.ip,
      defaultSchemaUri: options.schemaUriQueryParam ? single(query[options.schemaUriQueryParam]) : undefined,
      defaultStream: options.streamQueryParam ? single(query[options.streamQueryParam]) : undefined,
    }
  }

  app.post('/v1/events', async (request, reply) => {
    const events = request.body as unknown[] | undefined
    if (events === undefined || events === null) {
      throw new EventplaneError('EVP_BODY_EMPTY', 'the request body was empty; send one JSON event or an array of events')
    }
    const context = contextOf(request)
    // EventGate checks JS truthiness of the string: any non-empty value, even "false", is hasty.
    if (single((request.query as Query)['hasty'])) {
      processHastily(intake, events, context, request.log)
      reply.raw.statusMessage = hastyMessage(events.length)
      return reply.code(202).send()
    }
    return sendResult(reply, await intake.process(events, context))
  })

  if (options.testEvents !== undefined && options.testEvents.length > 0) {
    const testEvents = options.testEvents
    app.get('/v1/_test/events', async (request, reply) => sendResult(reply, await intake.process(structuredClone(testEvents), contextOf(request))))
  }
}

/** An intake answer: status, reason phrase, and the JSON body when there is one. */
export interface Answer {
  status: number
  message: string
  body?: { invalid: unknown[]; error?: unknown[] }
  /** Seconds for a Retry-After header. */
  retryAfterS?: number
}

function isRetryable(item: unknown): boolean {
  return (item as { context?: { canRetry?: unknown } }).context?.canRetry === true
}

/** EventGate's status for a batch outcome, with its reason phrase. */
export function answerFor(result: BatchResult): Answer {
  const { total, accepted } = result
  const invalid = result.invalid.length
  const errored = result.error.length
  const failed = invalid + errored
  if (failed === 0) return { status: 201, message: `All ${total} out of ${total} events were accepted.` }
  if (accepted > 0) {
    return {
      status: 207,
      message: `${accepted} out of ${total} events were accepted, but ${failed} failed (${invalid} invalid and ${errored} errored).`,
      body: { invalid: result.invalid, error: result.error },
    }
  }
  if (errored === 0) return { status: 400, message: `${invalid} out of ${total} events were invalid and not accepted.`, body: { invalid: result.invalid } }
  // Where EventGate answers 500, a batch that failed only for a passing reason (the event log was
  // unavailable) is 503 with Retry-After: the producer should send it again as it is.
  if (invalid === 0 && result.error.every(isRetryable)) {
    return {
      status: 503,
      message: `${errored} out of ${total} events could not be appended now; retry.`,
      body: { invalid: [], error: result.error },
      retryAfterS: 5,
    }
  }
  return {
    status: 500,
    message: `${failed} out of ${total} events had failures and were not accepted. (${invalid} invalid and ${errored} errored).`,
    body: { invalid: result.invalid, error: result.error },
  }
}

export function hastyMessage(count: number): string {
  return `${count} events hastily received.`
}

function sendResult(reply: FastifyReply, result: BatchResult): FastifyReply {
  const answer = answerFor(result)
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
