import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EventplaneError } from '../core/errors.ts'

/**
 * Where a pipe reads from or writes to, parsed from its URI. Each scheme is a source, a
 * destination, or both (see `roles`); query parameters are checked here, so that a typo in
 * one is an error before anything is read.
 */
export type Endpoint =
  | { scheme: 'embedded'; topic: string; from: StartAt }
  | { scheme: 'kafka'; brokers: string[]; topic: string; from: StartAt }
  | { scheme: 'file'; path: string; rotateBytes: number; maxLineBytes: number }
  | { scheme: 'stdin'; maxLineBytes: number }
  | { scheme: 'stdout' }
  | { scheme: 'http'; url: string; batch: number; hasty: boolean }
  | { scheme: 'sse'; url: string }

/** Where a log source starts when there is no saved position. */
export type StartAt = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'time'; ms: number }

export type Role = 'source' | 'destination'

const roles: Record<Endpoint['scheme'], readonly Role[]> = {
  embedded: ['source', 'destination'],
  kafka: ['source', 'destination'],
  file: ['source', 'destination'],
  stdin: ['source'],
  stdout: ['destination'],
  http: ['destination'],
  sse: ['source'],
}

/** Defaults a user can change in the URI's query. */
export const endpointDefaults = {
  /** A file destination is renamed aside and started anew past this size. */
  rotateBytes: 256 * 1024 * 1024,
  /** A longer line of a file or stdin is skipped as malformed (memory stays bounded). */
  maxLineBytes: 16 * 1024 * 1024,
  /** Events per POST to an intake. */
  httpBatch: 500,
} as const

const examples = [
  'embedded://datacenter1.test.event[?from=earliest|latest|TIME]',
  'kafka://HOST:PORT[,HOST:PORT…]/TOPIC[?from=earliest|latest|TIME]',
  'file:///path/events.ndjson[?rotate_bytes=N&max_line_bytes=N]',
  'stdin://, stdout://',
  'http(s)://HOST[:PORT]/v1/events[?batch=N&hasty=true]',
  'sse://HOST[:PORT]/v2/stream/NAME[?since=TIME] (sses:// for https)',
]

/**
 * Parses a pipe endpoint URI for a role. A bare path (`./events.ndjson`, `/tmp/x.ndjson`) is a
 * file, and `-` is stdin or stdout, as most command-line tools take them.
 *
 * @example
 * parseEndpoint('kafka://127.0.0.1:9092/datacenter1.test.event?from=earliest', 'source', process.cwd())
 * // { scheme: 'kafka', brokers: ['127.0.0.1:9092'], topic: 'datacenter1.test.event', from: { kind: 'earliest' } }
 */
export function parseEndpoint(text: string, role: Role, cwd: string): Endpoint {
  const endpoint = parse(text.trim(), role, cwd)
  if (!roles[endpoint.scheme].includes(role)) {
    const can = (Object.keys(roles) as Array<Endpoint['scheme']>).filter((s) => roles[s].includes(role))
    throw invalid(text, `${endpoint.scheme}:// cannot be a ${role}; ${role}s are ${can.map((s) => `${s}://`).join(', ')}`)
  }
  return endpoint
}

function parse(text: string, role: Role, cwd: string): Endpoint {
  if (text === '-') return role === 'source' ? { scheme: 'stdin', maxLineBytes: endpointDefaults.maxLineBytes } : { scheme: 'stdout' }
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text)
  if (match === null) {
    if (text === '') throw invalid(text, 'the URI is empty')
    if (/^[a-z][a-z0-9+.-]*:/i.test(text) && !/^[a-z]:[\\/]/i.test(text)) throw invalid(text, 'write SCHEME://…')
    return { scheme: 'file', path: resolve(cwd, text), rotateBytes: endpointDefaults.rotateBytes, maxLineBytes: endpointDefaults.maxLineBytes }
  }
  const scheme = match[1]!.toLowerCase()
  const rest = match[2]!
  const q = rest.indexOf('?')
  const body = q === -1 ? rest : rest.slice(0, q)
  const query = new Query(text, q === -1 ? '' : rest.slice(q + 1))
  let endpoint: Endpoint
  switch (scheme) {
    case 'embedded': {
      const topic = decode(text, body.replace(/\/+$/, ''))
      if (topic === '' || topic.includes('/')) throw invalid(text, 'write embedded://TOPIC, e.g. embedded://datacenter1.test.event')
      endpoint = { scheme: 'embedded', topic, from: startAt(text, query.take('from')) }
      break
    }
    case 'kafka': {
      const slash = body.indexOf('/')
      const brokers = (slash === -1 ? body : body.slice(0, slash)).split(',').filter((b) => b !== '')
      const topic = slash === -1 ? '' : decode(text, body.slice(slash + 1).replace(/\/+$/, ''))
      if (brokers.length === 0 || topic === '' || topic.includes('/')) throw invalid(text, 'write kafka://HOST:PORT/TOPIC, e.g. kafka://127.0.0.1:9092/datacenter1.test.event')
      for (const broker of brokers) {
        if (!/^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/i.test(broker)) throw invalid(text, `broker ${JSON.stringify(broker)} is not HOST:PORT`)
      }
      endpoint = { scheme: 'kafka', brokers, topic, from: startAt(text, query.take('from')) }
      break
    }
    case 'file': {
      let path: string
      try {
        path = fileURLToPath(`file://${body}`)
      } catch (error) {
        throw invalid(text, `${(error as Error).message}; write file:///absolute/path.ndjson`)
      }
      endpoint = {
        scheme: 'file',
        path,
        rotateBytes: query.integer('rotate_bytes', 1024, Number.MAX_SAFE_INTEGER) ?? endpointDefaults.rotateBytes,
        maxLineBytes: query.integer('max_line_bytes', 1024, 1024 * 1024 * 1024) ?? endpointDefaults.maxLineBytes,
      }
      break
    }
    case 'stdin':
    case 'stdout':
      if (body !== '') throw invalid(text, `write ${scheme}:// with nothing after it`)
      endpoint = scheme === 'stdin' ? { scheme, maxLineBytes: query.integer('max_line_bytes', 1024, 1024 * 1024 * 1024) ?? endpointDefaults.maxLineBytes } : { scheme }
      break
    case 'http':
    case 'https': {
      const url = httpUrl(text, `${scheme}://${body}`)
      if (!/\/v1\/events\/?$/.test(url.pathname)) throw invalid(text, 'an intake URL ends in /v1/events, e.g. http://127.0.0.1:8192/v1/events')
      const hasty = query.take('hasty')
      if (hasty !== undefined && hasty !== 'true' && hasty !== 'false') throw invalid(text, 'hasty is true or false')
      endpoint = { scheme: 'http', url: url.href, batch: query.integer('batch', 1, 10_000) ?? endpointDefaults.httpBatch, hasty: hasty === 'true' }
      if (endpoint.hasty) endpoint.url += '?hasty=true'
      break
    }
    case 'sse':
    case 'sses': {
      const url = httpUrl(text, `${scheme === 'sse' ? 'http' : 'https'}://${body}`)
      if (!/\/v2\/stream\/[^/]+$/.test(url.pathname)) throw invalid(text, 'write sse://HOST:PORT/v2/stream/NAME[,NAME…], e.g. sse://127.0.0.1:8192/v2/stream/test.event')
      // The streams endpoint's own query (since, filter, match[…], canary) is passed on as given.
      url.search = query.rest()
      endpoint = { scheme: 'sse', url: url.href }
      return endpoint
    }
    default:
      throw invalid(text, `unknown scheme ${scheme}://`)
  }
  query.done()
  return endpoint
}

/** The stdout/stdin forms and every scheme, for --help. */
export function endpointExamples(): string[] {
  return [...examples]
}

function startAt(text: string, value: string | undefined): StartAt {
  if (value === undefined || value === 'earliest') return { kind: 'earliest' }
  if (value === 'latest') return { kind: 'latest' }
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw invalid(text, `from=${value} is not earliest, latest, epoch milliseconds or an ISO-8601 time`)
  return { kind: 'time', ms }
}

function httpUrl(text: string, candidate: string): URL {
  try {
    return new URL(candidate)
  } catch {
    throw invalid(text, 'the host or port is not valid')
  }
}

function decode(text: string, part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw invalid(text, 'bad percent-encoding')
  }
}

function invalid(text: string, why: string): EventplaneError {
  return new EventplaneError('EVP_PIPE_URI_INVALID', `${JSON.stringify(text)}: ${why}. Endpoints: ${examples.join('; ')}`, { details: { uri: text } })
}

/** Query parameters of an endpoint: each is taken once, and any left over is an error. */
class Query {
  private readonly params: URLSearchParams
  constructor(
    private readonly text: string,
    search: string,
  ) {
    this.params = new URLSearchParams(search)
  }
  take(name: string): string | undefined {
    const all = this.params.getAll(name)
    if (all.length > 1) throw invalid(this.text, `${name} is given twice`)
    this.params.delete(name)
    return all[0]
  }
  integer(name: string, min: number, max: number): number | undefined {
    const value = this.take(name)
    if (value === undefined) return undefined
    const n = Number(value)
    if (!/^\d+$/.test(value) || n < min || n > max) throw invalid(this.text, `${name}=${value} must be an integer from ${min} to ${max}`)
    return n
  }
  rest(): string {
    return this.params.toString()
  }
  done(): void {
    const left = [...new Set(this.params.keys())]
    if (left.length > 0) throw invalid(this.text, `unknown parameter${left.length > 1 ? 's' : ''} ${left.join(', ')}`)
  }
}
