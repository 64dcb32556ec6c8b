/**
 * The legacy EventLogging beacon: `GET /beacon/event?<url-encoded JSON capsule>;`, what
 * `mw.eventLog.logEvent` sent for schemas from before Event Platform, and what third-party
 * MediaWiki installs still send (MediaWikiPingback). As Wikimedia's replacement for the old
 * Varnish endpoint does (reference wmf-clients.md §1.10), it answers 204 at once, then turns
 * the capsule into an event of the migrated schema (`/analytics/legacy/<lowercase>/<version>`,
 * stream `eventlogging_<Schema>`) and sends it through the intake like any other event.
 * A capsule that cannot be turned into an event is counted and logged, never answered with an
 * error: the browser sent it with `sendBeacon` and reads no answer.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { tokenBucket } from './error-events.ts'
import { createAdmission, type Admission } from './admission.ts'
import type { Intake, RequestContext } from './intake.ts'

export interface BeaconSettings {
  /** Legacy schema name → version of its migrated schema (MediaWiki's `EventLogging.Schemas`); other names are refused. */
  schemas: Readonly<Record<string, string>>
  /** Longest URL taken (path and query), as the clients cap it (2,000: browsers, caches). */
  maxUrlLength: number
}

/** What became of one beacon request (the label of eventplane_beacon_requests_total). */
export type BeaconOutcome = 'accepted' | 'invalid' | 'error' | 'malformed' | 'unknown_schema' | 'too_long' | 'forbidden' | 'rate_limited'

const schemaName = /^[A-Za-z0-9_.-]{1,63}$/
const uuidPattern = /^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i

/**
 * The event of one beacon's query string (what follows `?`), or why there is none. Kept from
 * the capsule: `event`, `schema`, `webHost`, `wiki`, `revision`, `client_dt`, `seqId`, `uuid`
 * (as the client set them, when of the right type); anything else it carries is left out
 * (old clients' `clientValidated`, `isTruncated`), and what only a server may say (`ip`,
 * `recvFrom`, `topic`) is never taken from it. `uuid` and `meta.id` are one id: the client's
 * when it sent a well-formed one (so that a beacon sent twice is appended once), else a new one.
 */
export function capsuleEvent(query: string, settings: BeaconSettings, receivedAt: Date): { event: JsonObject } | { outcome: 'malformed' | 'unknown_schema'; reason: string } {
  const trimmed = query.replace(/^[?&;]+|[?&;]+$/g, '')
  if (trimmed === '') return { outcome: 'malformed', reason: 'no capsule in the query string' }
  let capsule: unknown
  try {
    // rawurldecode, as Wikimedia's converter: '+' stays '+' (encodeURIComponent writes %20).
    capsule = JSON.parse(decodeURIComponent(trimmed))
  } catch (error) {
    return { outcome: 'malformed', reason: `the query string is not URL-encoded JSON: ${(error as Error).message}` }
  }
  if (!isPlainObject(capsule)) return { outcome: 'malformed', reason: 'the capsule is not a JSON object' }
  const schema = capsule['schema']
  if (typeof schema !== 'string' || !schemaName.test(schema)) return { outcome: 'malformed', reason: `the capsule's schema is not a legacy schema name (1 to 63 of A-Z a-z 0-9 . _ -): ${JSON.stringify(schema)?.slice(0, 80)}` }
  if (!isPlainObject(capsule['event'])) return { outcome: 'malformed', reason: "the capsule's event is not a JSON object" }
  const version = Object.hasOwn(settings.schemas, schema) ? settings.schemas[schema] : undefined
  if (version === undefined) return { outcome: 'unknown_schema', reason: `schema ${schema} is not one of intake.beacon.schemas (${Object.keys(settings.schemas).join(', ') || 'none'})` }
  const given = capsule['uuid']
  const id = typeof given === 'string' && uuidPattern.test(given) ? given.toLowerCase() : randomUUID()
  const event: JsonObject = {
    $schema: `/analytics/legacy/${schema.toLowerCase()}/${version}`,
    meta: { stream: `eventlogging_${schema}`, id },
    event: capsule['event'],
    schema,
    uuid: id,
    client_dt: typeof capsule['client_dt'] === 'string' ? capsule['client_dt'] : receivedAt.toISOString(),
  }
  for (const [field, type] of [['webHost', 'string'], ['wiki', 'string'], ['revision', 'number'], ['seqId', 'number']] as const) {
    if (typeof capsule[field] === type) event[field] = capsule[field]
  }
  return { event }
}

export interface BeaconRoutesOptions extends BeaconSettings {
  intake: Intake
  /**
   * Tokens, rates and stream rights (admission.ts): a client over its rate gets 429, unlike the
   * beacon's other outcomes; with auth on, a beacon's stream must be public (browsers keep no token).
   */
  admission?: Admission
  contextOf: (request: FastifyRequest) => RequestContext
  registry?: Registry | undefined
  logger: { warn(details: object, message: string): void }
}

/** `GET /beacon/event` (and POST with the capsule in the query, as MediaWiki's PHP sent it; the body is ignored). */
export async function beaconRoutes(app: FastifyInstance, options: BeaconRoutesOptions): Promise<void> {
  const requests = new Counter({
    name: 'eventplane_beacon_requests_total',
    help: 'Legacy beacon requests (GET /beacon/event), by outcome: accepted, invalid or error (as the intake judged the event), malformed (not a capsule), unknown_schema (not in intake.beacon.schemas), too_long (URL over intake.beacon.max_url_length, refused with 414), forbidden (auth on and the stream not in auth.public_streams), rate_limited (429 EVP_RATE_LIMITED: the client address over rate_limits.per_ip).',
    labelNames: ['outcome'] as const,
    registers: options.registry ? [options.registry] : [],
  })
  // Bad capsules are logged at most once a second, with how many there were since (a flood of
  // them must not flood the log).
  const admission = options.admission ?? createAdmission()
  const mayLog = tokenBucket(1, 1)
  let unlogged = 0
  const warn = (outcome: BeaconOutcome, reason: string) => {
    if (mayLog(1) === 0) {
      unlogged++
      return
    }
    options.logger.warn({ outcome, reason, alsoSince: unlogged }, 'a beacon was not turned into an event')
    unlogged = 0
  }
  // The body of a POST is never read: any content type is taken, and none is parsed.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 65536 }, (_request, _body, done) => done(null, undefined))
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const url = request.raw.url ?? ''
    if (url.length > options.maxUrlLength) {
      requests.inc({ outcome: 'too_long' })
      warn('too_long', `a URL of ${url.length} characters`)
      throw new EventplaneError('EVP_BEACON_URL_TOO_LONG', `the beacon URL has ${url.length} characters; at most ${options.maxUrlLength} are taken (intake.beacon.max_url_length), as EventLogging's clients cap it`)
    }
    const context = options.contextOf(request)
    const who = admission.admit(request.headers, context.clientIp ?? request.ip)
    if (who instanceof EventplaneError && who.code === 'EVP_RATE_LIMITED') {
      requests.inc({ outcome: 'rate_limited' })
      throw who
    }
    const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : ''
    // Answered before anything is done with it, as Wikimedia's beacon endpoint does.
    void reply.code(204).send()
    setImmediate(() => {
      const made = capsuleEvent(query, options, context.receivedAt)
      if ('outcome' in made) {
        requests.inc({ outcome: made.outcome })
        warn(made.outcome, made.reason)
        return
      }
      const refusal = who instanceof EventplaneError ? who : admission.authorize(who, [made.event], undefined)
      if (refusal !== undefined) {
        requests.inc({ outcome: 'forbidden' })
        warn('forbidden', `${refusal.code}: ${refusal.message}`)
        return
      }
      options.intake.process([made.event], context).then(
        (result) => {
          const outcome: BeaconOutcome = result.accepted > 0 ? 'accepted' : result.invalid.length > 0 ? 'invalid' : 'error'
          requests.inc({ outcome })
          const item = result.invalid[0] ?? result.error[0]
          if (item !== undefined) warn(outcome, `${item.context.code}: ${item.context.message}`)
        },
        (error: unknown) => {
          requests.inc({ outcome: 'error' })
          warn('error', (error as Error).message)
        },
      )
    })
  }
  app.get('/beacon/event', handler)
  app.post('/beacon/event', handler)
}
