import { mkdtempSync, writeFileSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import type { LogRecord } from '../../src/log/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { bundledSchemas, openWrittenLog, tempDir } from '../helpers.ts'

// One temporary folder (removed at exit) holding a folder per server.
let base: string | undefined
/** A fresh folder under this process's temporary folder. */
export function serverDir(): string {
  base ??= tempDir('eventplane-security-')
  return mkdtempSync(join(base, 'server-'))
}

export const testStreams = {
  defaults: { topic_prefixes: ['datacenter1.'] },
  streams: { 'test.event': { schema_title: 'eventplane/test/event' } },
}

export interface TestServer {
  server: RunningServer
  /** The temporary folder holding the config, the stream config and the data. */
  dir: string
  dataDir: string
  port: number
  url: string
  /** Every record of a topic, read from the log file by a reader of its own. */
  records(topic: string): Promise<LogRecord[]>
  /** Events (parsed values) of a topic. */
  events(topic: string): Promise<Array<Record<string, unknown>>>
  close(): Promise<void>
}

/**
 * A real server on a loopback port, from a config file written to a fresh temporary folder:
 * the bundled schemas, `streams` as the stream config, the SQLite log in the folder, and
 * `overrides` merged over the top level (`server` is merged key by key).
 */
export async function securityServer(overrides: Record<string, unknown> = {}, streams: object = testStreams): Promise<TestServer> {
  const dir = serverDir()
  const dataDir = join(dir, 'data')
  writeFileSync(join(dir, 'streams.yaml'), stringify(streams))
  const file = join(dir, 'eventplane.yaml')
  const { server: serverOverrides, ...rest } = overrides
  writeFileSync(
    file,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: join(dir, 'streams.yaml'), watch: false },
      data_dir: dataDir,
      ...rest,
      server: { port: 0, ...((serverOverrides as object | undefined) ?? {}) },
    }),
  )
  const server = await startServer(loadConfig({ path: file, env: {} }).config, { logger: pino({ level: 'silent' }) })
  const records = async (topic: string): Promise<LogRecord[]> => {
    const log = await openWrittenLog(dataDir, {})
    try {
      if (!(await log.topics()).includes(topic)) return []
      const out: LogRecord[] = []
      const partitions = await log.partitions(topic)
      for (let partition = 0; partition < partitions; partition++) {
        for await (const record of log.read({ topic, partition, offset: 0 }, { follow: false })) out.push(record)
      }
      return out
    } finally {
      await log.close()
    }
  }
  return {
    server,
    dir,
    dataDir,
    port: Number(new URL(server.url).port),
    url: server.url,
    records,
    events: async (topic) => (await records(topic)).map((r) => JSON.parse(r.value.toString('utf8')) as Record<string, unknown>),
    close: () => server.close(),
  }
}

export function testEvent(test: string): Record<string, unknown> {
  return { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test }
}

export interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

/** Parses the first HTTP/1.1 answer in `text` (bodies with Content-Length, or none). */
export function parseAnswer(text: string): RawAnswer | undefined {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')
  if (status === null) return undefined
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length'])
  const rest = text.slice(end + 4)
  return { status: Number(status[1]), headers, body: length === undefined ? rest : rest.slice(0, length) }
}

/**
 * A raw TCP connection to a loopback port that collects what the server sends: `answer()` waits
 * (bounded) for the first complete answer, `closed()` for the server to close the connection.
 */
export class RawClient {
  readonly socket: Socket
  received = ''
  /** When the socket closed (ms since it was opened), or undefined while open. */
  closedAfterMs: number | undefined
  readonly errors: string[] = []
  private readonly openedAt = Date.now()
  private readonly connected: Promise<void>

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.setEncoding('latin1')
    this.socket.on('data', (chunk: string) => (this.received += chunk))
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.errors.push(error.code ?? error.message))
    this.socket.on('close', () => (this.closedAfterMs = Date.now() - this.openedAt))
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve())
      this.socket.once('error', reject)
    })
  }

  static async open(port: number): Promise<RawClient> {
    const client = new RawClient(port)
    await client.connected
    return client
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())))
  }

  /** The first complete answer, within `timeoutMs`. */
  async answer(timeoutMs = 5000): Promise<RawAnswer> {
    await until(() => {
      const answer = parseAnswer(this.received)
      return answer !== undefined && Buffer.byteLength(answer.body, 'latin1') >= Number(answer.headers['content-length'] ?? 0)
    }, timeoutMs, `an answer (received so far: ${JSON.stringify(this.received.slice(0, 200))})`)
    return parseAnswer(this.received)!
  }

  /** Waits, at most `timeoutMs`, for the server to close the connection. */
  async closed(timeoutMs = 5000): Promise<void> {
    await until(() => this.closedAfterMs !== undefined, timeoutMs, 'the connection to close')
  }

  /** Whether the server closes the connection within `ms` (false if it stays open). */
  async closesWithin(ms: number): Promise<boolean> {
    try {
      await this.closed(ms)
      return true
    } catch {
      return false
    }
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** Waits (bounded) until `check` returns true. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A request (HTTP/1.1, so keep-alive) as raw text; an explicit content-length header wins. */
export function rawRequest(method: string, path: string, headers: Record<string, string> = {}, body = ''): string {
  const length: Record<string, string> = body === '' && method === 'GET' ? {} : { 'content-length': String(Buffer.byteLength(body)) }
  const all: Record<string, string> = { host: 'localhost', ...length, ...headers }
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`
}

/**
 * The status and headers of a GET (an SSE stream), then the connection destroyed: fetch's
 * abort leaves the socket open for seconds, which holds up the server's close.
 */
export function headersOf(url: string, timeoutMs = 5000): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false }, (response) => {
      clearTimeout(timer)
      resolve({ status: response.statusCode ?? 0, headers: response.headers })
      request.destroy()
    })
    const timer = setTimeout(() => {
      request.destroy()
      reject(new Error(`no answer from ${url} within ${timeoutMs} ms`))
    }, timeoutMs)
    request.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    request.end()
  })
}
