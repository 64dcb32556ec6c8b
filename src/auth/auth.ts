import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { EventplaneError } from '../core/errors.ts'
import { parseStreamKey } from '../streamconfig/keys.ts'

/**
 * Producer auth (docs/security.md, "Producer auth"): who may write events to which streams, and,
 * when streams or schemas are not public, who may read them. Off by default (`auth.enabled`).
 *
 * Tokens are never in the config file: each producer or reader names an environment variable
 * or a file (one token per line, so that a rotation can hold the old and the new token at
 * once). They are kept only as SHA-256 digests, and a presented token is hashed and compared
 * with every digest in constant time, so neither the comparison nor where it stops tells how
 * close a guess came. Tokens never reach logs or metrics: principals are named by their `name`.
 */

/** What `auth` in eventplane.yaml holds (the config schema's shape). */
export interface AuthSettings {
  enabled: boolean
  producers: readonly PrincipalSettings[]
  readers: readonly PrincipalSettings[]
  public_streams: readonly string[]
  streams_public: boolean
  schemas_public: boolean
}

export interface PrincipalSettings {
  name: string
  token_env?: string
  token_file?: string
  streams: readonly string[]
}

/** A producer or reader whose token a request presented. */
export interface Principal {
  readonly name: string
  readonly kind: 'producer' | 'reader'
  readonly streams: StreamSet
}

/** Streams by name and `/regex/`. */
export interface StreamSet {
  has(stream: string): boolean
}

export interface Auth {
  readonly enabled: boolean
  readonly streamsPublic: boolean
  readonly schemasPublic: boolean
  /**
   * Whose token the request presents (`Authorization: Bearer …` or `X-API-Key`): undefined
   * when it presents none, EVP_AUTH_INVALID for a token that is not configured.
   */
  identify(headers: IncomingHttpHeaders): Principal | undefined | EventplaneError
  /**
   * Why these streams may not be written with what the request presented (`identify`'s
   * result), or undefined when they may: each must be public or among the producer's streams.
   */
  checkWrite(who: Principal | undefined | EventplaneError, streams: Iterable<string>): EventplaneError | undefined
  /** The same for reading streams (GET /v2/stream): public streams, or a reader's or producer's own. */
  checkRead(who: Principal | undefined | EventplaneError, streams: Iterable<string>): EventplaneError | undefined
  /** Why the schema service and stream config API may not be read with this, or undefined. */
  checkSchemas(who: Principal | undefined | EventplaneError): EventplaneError | undefined
  /** Reads token files and variables again (SIGHUP); a failure keeps the tokens in use and says why. */
  reload(): EventplaneError | undefined
}

/** Shortest token taken: a shorter one is guessable (16 random bytes in hex or base64 are longer). */
export const minTokenLength = 16
/** Longest header value looked at as a token. */
const maxTokenLength = 4096

/**
 * The auth of a config. Throws EVP_CONFIG_INVALID, naming the key, for a principal without
 * exactly one of token_env and token_file, a token that cannot be read or is shorter than
 * 16 characters, a token shared by two principals, a duplicate name or a stream pattern that is
 * not a stream name or a /regex/. `env` is where token_env is looked up.
 */
export function createAuth(settings: AuthSettings, options: { env?: NodeJS.ProcessEnv; logger?: Logger; registry?: Registry } = {}): Auth {
  const env = options.env ?? process.env
  const publicStreams = streamSet(settings.public_streams, 'auth.public_streams')
  const counter = new Counter({
    name: 'eventplane_auth_requests_total',
    help: 'Requests that writing or reading streams checked, by principal (a configured name, anonymous or unknown) and outcome (allowed, no_token, bad_token, forbidden_stream).',
    labelNames: ['principal', 'outcome'] as const,
    registers: options.registry ? [options.registry] : [],
  })

  type Entry = { principal: Principal; digests: Buffer[] }
  let entries: Entry[] = load()

  function load(): Entry[] {
    const loaded: Entry[] = []
    const names = new Set<string>()
    const owners = new Map<string, string>()
    const groups = [
      ['producers', settings.producers],
      ['readers', settings.readers],
    ] as const
    for (const [group, list] of groups) {
      list.forEach((settingsOf, i) => {
        const key = `auth.${group}[${i}]`
        if (names.has(`${group}:${settingsOf.name}`)) throw invalid(`${key}.name ${settingsOf.name} is used twice among auth.${group}`, key)
        names.add(`${group}:${settingsOf.name}`)
        const tokens = tokensOf(settingsOf, key, env)
        const digests: Buffer[] = []
        for (const token of tokens) {
          const digest = sha256(token)
          const hex = digest.toString('hex')
          const owner = owners.get(hex)
          if (owner !== undefined && owner !== `${group}:${settingsOf.name}`) {
            throw invalid(`${key} (${settingsOf.name}) has the same token as ${owner.replace(':', ' ')}: give every principal a token of its own`, key)
          }
          owners.set(hex, `${group}:${settingsOf.name}`)
          digests.push(digest)
        }
        const kind = group === 'producers' ? 'producer' : 'reader'
        loaded.push({ principal: { name: settingsOf.name, kind, streams: streamSet(settingsOf.streams, `${key}.streams`) }, digests })
      })
    }
    return loaded
  }

  function identify(headers: IncomingHttpHeaders): Principal | undefined | EventplaneError {
    const token = presentedToken(headers)
    if (token === undefined) return undefined
    if (token.length < minTokenLength || token.length > maxTokenLength) return badToken()
    const digest = sha256(token)
    let found: Principal | undefined
    // Every digest is compared, whatever matched, so the time taken does not depend on which.
    for (const entry of entries) {
      for (const known of entry.digests) {
        if (timingSafeEqual(known, digest) && found === undefined) found = entry.principal
      }
    }
    return found ?? badToken()
  }

  function badToken(): EventplaneError {
    return new EventplaneError('EVP_AUTH_INVALID', 'the token is not valid: it is not the token of any configured producer or reader')
  }

  /** `doing`: "writing to", "reading"; `may`: "write to", "read". */
  function check(
    who: Principal | undefined | EventplaneError,
    streams: Iterable<string>,
    allows: (principal: Principal, stream: string) => boolean,
    isPublic: (stream: string) => boolean,
    words: { doing: string; may: string },
  ): EventplaneError | undefined {
    if (who instanceof EventplaneError) {
      counter.inc({ principal: 'unknown', outcome: 'bad_token' })
      return who
    }
    for (const stream of streams) {
      if (isPublic(stream)) continue
      if (who === undefined) {
        counter.inc({ principal: 'anonymous', outcome: 'no_token' })
        return new EventplaneError('EVP_AUTH_REQUIRED', `${words.doing} stream ${quoted(stream)} needs a token: send Authorization: Bearer <token> (or X-API-Key)`, { details: { stream } })
      }
      if (!allows(who, stream)) {
        counter.inc({ principal: who.name, outcome: 'forbidden_stream' })
        return new EventplaneError('EVP_STREAM_FORBIDDEN', `${who.kind} ${who.name} may not ${words.may} stream ${quoted(stream)}: it is not among its streams (auth.${who.kind}s)`, {
          details: { stream, principal: who.name },
        })
      }
    }
    counter.inc({ principal: who?.name ?? 'anonymous', outcome: 'allowed' })
    return undefined
  }

  const streamsPublic = !settings.enabled || settings.streams_public
  const schemasPublic = !settings.enabled || settings.schemas_public
  return {
    enabled: settings.enabled,
    streamsPublic,
    schemasPublic,
    identify,
    checkWrite(who, streams) {
      if (!settings.enabled) return undefined
      return check(who, streams, (principal, stream) => principal.kind === 'producer' && principal.streams.has(stream), (stream) => publicStreams.has(stream), { doing: 'writing to', may: 'write to' })
    },
    checkRead(who, streams) {
      if (streamsPublic) return undefined
      return check(who, streams, (principal, stream) => principal.streams.has(stream), () => false, { doing: 'reading', may: 'read' })
    },
    checkSchemas(who) {
      if (schemasPublic) return undefined
      if (who instanceof EventplaneError) return who
      if (who === undefined) return new EventplaneError('EVP_AUTH_REQUIRED', 'schemas and stream configs need a token here (auth.schemas_public is false): send Authorization: Bearer <token> (or X-API-Key)')
      return undefined
    },
    reload() {
      try {
        entries = load()
        options.logger?.info({ producers: settings.producers.length, readers: settings.readers.length }, 'auth: tokens read again')
        return undefined
      } catch (error) {
        const e = error instanceof EventplaneError ? error : new EventplaneError('EVP_CONFIG_INVALID', String(error))
        options.logger?.error({ code: e.code, reason: e.message }, 'auth: reading the tokens again failed; the tokens read before stay in use')
        return e
      }
    },
  }
}

/** The token of `Authorization: Bearer …` or `X-API-Key`, if any. */
function presentedToken(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers['authorization']
  if (typeof authorization === 'string' && authorization !== '') {
    const space = authorization.indexOf(' ')
    const scheme = space === -1 ? authorization : authorization.slice(0, space)
    // Another scheme (Basic, …) is a token we do not know: refused rather than ignored.
    return scheme.toLowerCase() === 'bearer' ? authorization.slice(space + 1).trim() : authorization
  }
  const key = headers['x-api-key']
  const value = Array.isArray(key) ? key[0] : key
  return value === undefined || value === '' ? undefined : value.trim()
}

function tokensOf(principal: PrincipalSettings, key: string, env: NodeJS.ProcessEnv): string[] {
  const hasEnv = principal.token_env !== undefined
  const hasFile = principal.token_file !== undefined
  if (hasEnv === hasFile) throw invalid(`${key} (${principal.name}) needs exactly one of token_env and token_file`, key)
  let tokens: string[]
  if (hasEnv) {
    const value = env[principal.token_env!]
    if (value === undefined || value.trim() === '') throw invalid(`${key}.token_env: the environment variable ${principal.token_env} of ${principal.name} is not set`, `${key}.token_env`)
    tokens = [value.trim()]
  } else {
    let text: string
    try {
      text = readFileSync(principal.token_file!, 'utf8')
    } catch (error) {
      throw invalid(`${key}.token_file of ${principal.name} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, `${key}.token_file`)
    }
    tokens = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
    if (tokens.length === 0) throw invalid(`${key}.token_file of ${principal.name} holds no token (one per line; # starts a comment)`, `${key}.token_file`)
  }
  for (const token of tokens) {
    // The message names the principal, never the token (nor its length beyond "too short").
    if (token.length < minTokenLength) throw invalid(`${key}: a token of ${principal.name} is shorter than ${minTokenLength} characters; use a random one (openssl rand -hex 32)`, key)
    if (token.length > maxTokenLength) throw invalid(`${key}: a token of ${principal.name} is longer than ${maxTokenLength} characters`, key)
    if (/\s/.test(token)) throw invalid(`${key}: a token of ${principal.name} holds whitespace`, key)
  }
  return tokens
}

/** Stream names and `/regex/` patterns (anchored as written: `/^mediawiki\./`). */
function streamSet(patterns: readonly string[], key: string): StreamSet {
  const names = new Set<string>()
  const regexes: RegExp[] = []
  patterns.forEach((pattern, i) => {
    const parsed = parseStreamKey(pattern)
    if ('problem' in parsed) throw invalid(`${key}[${i}] ${JSON.stringify(pattern)} ${parsed.problem}`, `${key}[${i}]`)
    if (parsed.kind === 'name') names.add(parsed.key)
    else regexes.push(parsed.regex)
  })
  return { has: (stream) => names.has(stream) || regexes.some((regex) => regex.test(stream)) }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

function quoted(stream: string): string {
  return JSON.stringify(stream.length > 200 ? `${stream.slice(0, 200)}…` : stream)
}

function invalid(message: string, key: string): EventplaneError {
  return new EventplaneError('EVP_CONFIG_INVALID', message, { details: { key } })
}
