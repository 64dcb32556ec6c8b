import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { EventplaneError, type ErrorCode } from '../core/errors.ts'
import type { StreamConfig } from './config.ts'
import { parseMwConstraints } from './constraints.ts'
import type { StreamConfigSource } from './source.ts'

export interface StreamConfigRoutesOptions {
  source: StreamConfigSource
  /** `Cache-Control: public, max-age=…` of every answer (MediaWiki uses 600). */
  cacheMaxAgeS: number
}

/** The most stream names one request may ask for, as the MediaWiki API allows. */
export const maxStreamsPerRequest = 250

const jsonType = 'application/json; charset=utf-8'

type Query = Record<string, string | string[] | undefined>

/**
 * The stream config API, in two shapes:
 *
 * - `GET /w/api.php?action=streamconfigs&format=json&streams=a|b&constraints=k=v|k2[sub]=v2`
 *   → `{"streams":{…}}`, as MediaWiki's EventStreamConfig extension answers. A missing or other
 *   `action`, or a `format` other than json, gets a MediaWiki error body
 *   `{"error":{"code","info","eventplane_code"}}` with status 400.
 * - `GET /v1/stream-configs[/a,b|c]` → `{…}` keyed by stream name, as EventGate answers.
 *
 * Both are publicly cacheable and carry a strong ETag of the config in use (304 on
 * If-None-Match). Unknown streams are left out; other bad input is problem+json EVP_BAD_REQUEST.
 *
 * @example
 * await app.register(streamConfigRoutes, { source: await openStreamConfig({ … }), cacheMaxAgeS: 600 })
 * // curl 'localhost:8192/w/api.php?action=streamconfigs&format=json&streams=test.event'
 */
export async function streamConfigRoutes(app: FastifyInstance, options: StreamConfigRoutesOptions): Promise<void> {
  const cacheControl = `public, max-age=${options.cacheMaxAgeS}`

  function send(request: FastifyRequest, reply: FastifyReply, config: StreamConfig, body: () => unknown) {
    reply.header('etag', config.etag).header('cache-control', cacheControl)
    if (etagMatches(request.headers['if-none-match'], config.etag)) return reply.code(304).send()
    return reply.type(jsonType).send(JSON.stringify(body()))
  }

  app.get('/w/api.php', async (request, reply) => {
    const query = request.query as Query
    const action = last(query['action'])
    if (action === undefined || action === '') {
      return sendMwError(reply, 'missingparam', 'The "action" parameter must be set.', 'EVP_BAD_REQUEST')
    }
    if (action !== 'streamconfigs') {
      return sendMwError(reply, 'badvalue', `Unrecognized value for parameter "action": ${action}.`, 'EVP_BAD_REQUEST')
    }
    const format = last(query['format'])
    if (format !== undefined && format !== 'json') {
      const info = `Unrecognized value for parameter "format": ${format}. Only json is supported.`
      return sendMwError(reply, 'badvalue', info, 'EVP_BAD_REQUEST')
    }
    // all_settings is accepted and ignored: every setting is always returned (MediaWiki ≥ 1.41).
    const streamsParam = last(query['streams'])
    const streams = streamsParam === undefined ? undefined : limit(splitMulti(streamsParam), 'streams')
    const constraintsParam = last(query['constraints'])
    const constraints = constraintsParam === undefined ? undefined : parseMwConstraints(splitMulti(constraintsParam))
    const config = options.source.current()
    return send(request, reply, config, () => ({
      streams: config.get(streams, constraints && Object.keys(constraints).length > 0 ? constraints : undefined),
    }))
  })

  const rest = async (request: FastifyRequest, reply: FastifyReply) => {
    const param = (request.params as { '*'?: string })['*'] ?? ''
    const names = param.split(/[,|]/).filter((name) => name !== '')
    const streams = names.length === 0 ? undefined : limit(names, 'streams')
    const config = options.source.current()
    return send(request, reply, config, () => config.get(streams))
  }
  app.get('/v1/stream-configs', rest)
  // A wildcard, not `:streams`: 250 names do not fit fastify's parameter length limit.
  app.get('/v1/stream-configs/*', rest)
}

/** MediaWiki multi-value parameters: `a|b|c`, or `\x1fa\x1fb` when values may contain `|`. */
function splitMulti(value: string): string[] {
  const parts = value.startsWith('\x1f') ? value.slice(1).split('\x1f') : value.split('|')
  return parts.filter((part) => part !== '')
}

/** A parameter given twice counts once, the last one, as in PHP. */
function last(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value
}

function limit(names: string[], parameter: string): string[] {
  if (names.length > maxStreamsPerRequest) {
    const what = `too many values for ${parameter}: ${names.length}; the limit is ${maxStreamsPerRequest}`
    throw new EventplaneError('EVP_BAD_REQUEST', what, { details: { parameter, limit: maxStreamsPerRequest, count: names.length } })
  }
  return names
}

/** If-None-Match uses weak comparison (RFC 9110 §13.1.2), so a W/ prefix still matches. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header.trim() === '*') return true
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

/**
 * MediaWiki's error shape, so MediaWiki API clients (EventGate looks for `error`) recognise it.
 * Our stable code is the `eventplane_code` field; `MediaWiki-API-Error` carries MediaWiki's.
 */
function sendMwError(reply: FastifyReply, code: string, info: string, eventplaneCode: ErrorCode): FastifyReply {
  return reply
    .code(400)
    .type(jsonType)
    .header('cache-control', 'no-store')
    .header('mediawiki-api-error', code)
    .send(JSON.stringify({ error: { code, info, eventplane_code: eventplaneCode } }))
}
