/**
 * The clients the attacks use: one HTTP request over node:http (never throws: a network
 * failure is an answer too), raw TCP exchanges for what node:http will not send, and a
 * Server-Sent Events reader that also counts comment lines (heartbeats), which an
 * EventSource hides.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'

/**
 * Bodies are kept up to this many bytes (the rest is counted, not kept): enough for any intake
 * answer to a 4 MiB body, while a runaway answer (hundreds of MB) cannot exhaust the harness.
 */
export const maxKeptBody = 8 << 20

/** One answer the suite saw, however it ended. */
export interface Answer {
  method: string
  path: string
  /** What the table shows: `413 EVP_TOO_MANY_EVENTS`, `201`, `200 SSE`, `ECONNRESET`, `timeout`, `closed`. */
  label: string
  status?: number
  statusMessage?: string
  /** `code` of a problem+json body. */
  code?: string
  headers: IncomingHttpHeaders
  /** The first maxKeptBody bytes. */
  body: Buffer
  bodyBytes: number
  /** The body as JSON when it is JSON and was kept whole. */
  json?: unknown
  /** A network error (ECONNRESET, EPIPE, timeout), before or after the answer. */
  error?: string
  /** Whether the error came before the answer had been read whole. */
  errorBeforeEnd?: boolean
  ms: number
}

export interface RequestOptions {
  base: string
  method?: string
  path: string
  headers?: Record<string, string | number | string[]>
  body?: Buffer | string
  localAddress?: string
  timeoutMs?: number
  signal?: AbortSignal
}

const isJsonType = (type: string | undefined) => type !== undefined && /^application\/([a-z.+-]*\+)?json\b/i.test(type)
const isProblemType = (type: string | undefined) => type !== undefined && /^application\/problem\+json\b/i.test(type)

/** Fills label, code and json of an answer from its status, headers and body. */
export function describeAnswer(answer: Answer): Answer {
  const type = header(answer.headers, 'content-type')
  if (answer.bodyBytes === answer.body.length && answer.body.length > 0 && isJsonType(type)) {
    try {
      answer.json = JSON.parse(answer.body.toString('utf8'))
    } catch {
      // left undefined: a JSON type with a body that is not JSON is caught by the checks
    }
  }
  if (isProblemType(type) && isObject(answer.json) && typeof answer.json['code'] === 'string') answer.code = answer.json['code']
  if (answer.status === undefined) answer.label = answer.error ?? 'no answer'
  else if (answer.status === 200 && type !== undefined && /^text\/event-stream\b/i.test(type)) answer.label = '200 SSE'
  else answer.label = answer.code === undefined ? String(answer.status) : `${answer.status} ${answer.code}`
  return answer
}

/** A request over its own connection (no keep-alive); resolves with whatever happened. */
export function request(options: RequestOptions): Promise<Answer> {
  const url = new URL(options.base)
  const started = performance.now()
  const answer: Answer = { method: options.method ?? 'GET', path: options.path, label: '', headers: {}, body: Buffer.alloc(0), bodyBytes: 0, ms: 0 }
  return new Promise<Answer>((resolve) => {
    let done = false
    let ended = false
    const chunks: Buffer[] = []
    let kept = 0
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      answer.body = Buffer.concat(chunks)
      answer.ms = performance.now() - started
      resolve(describeAnswer(answer))
    }
    const fail = (message: string) => {
      answer.error ??= message
      if (!ended) answer.errorBeforeEnd = true
      req.destroy()
      finish()
    }
    const onAbort = () => fail('aborted')
    let req: ReturnType<typeof httpRequest>
    try {
      req = httpRequest({
        host: url.hostname,
        port: url.port,
        method: answer.method,
        path: options.path,
        headers: options.headers,
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      })
    } catch (error) {
      // node:http refuses to send it (a bad header value): an answer that never was.
      answer.error = (error as NodeJS.ErrnoException).code ?? (error as Error).message
      answer.errorBeforeEnd = true
      return resolve(describeAnswer(answer))
    }
    const timer = setTimeout(() => fail('timeout'), options.timeoutMs ?? 30_000)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    req.on('response', (response) => {
      answer.status = response.statusCode
      answer.statusMessage = response.statusMessage
      answer.headers = response.headers
      response.on('data', (chunk: Buffer) => {
        answer.bodyBytes += chunk.length
        if (kept < maxKeptBody) {
          chunks.push(chunk.subarray(0, maxKeptBody - kept))
          kept += Math.min(chunk.length, maxKeptBody - kept)
        }
      })
      response.on('end', () => {
        ended = true
        finish()
      })
      response.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message))
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      // An error after a whole answer was read (the server closed while we still sent) is
      // noted but does not replace the answer.
      if (ended) answer.error ??= error.code ?? error.message
      else fail(error.code ?? error.message)
    })
    if (options.signal?.aborted) return fail('aborted')
    req.end(options.body)
  })
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A raw HTTP/1.1 response parsed from the bytes a socket received. */
export interface RawResponse {
  status: number
  statusMessage: string
  headers: IncomingHttpHeaders
  body: Buffer
}

/** Parses the first response in `bytes`, or undefined when its head is not complete. */
export function parseRawResponse(bytes: Buffer): RawResponse | undefined {
  const end = bytes.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const statusLine = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(lines[0] ?? '')
  if (statusLine === null) return undefined
  const headers: IncomingHttpHeaders = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    const known = headers[name]
    headers[name] = known === undefined ? value : `${String(known)}, ${value}`
  }
  let body = bytes.subarray(end + 4)
  const length = Number(header(headers, 'content-length'))
  if (Number.isInteger(length) && body.length > length) body = body.subarray(0, length)
  return { status: Number(statusLine[1]), statusMessage: statusLine[2] ?? '', headers, body }
}

/** The Answer for a raw exchange: its parsed response, or how the socket ended without one. */
export function rawAnswer(method: string, path: string, bytes: Buffer, ending: string | undefined, ms: number): Answer {
  const parsed = parseRawResponse(bytes)
  if (parsed === undefined) {
    return describeAnswer({ method, path, label: '', headers: {}, body: Buffer.alloc(0), bodyBytes: 0, error: ending ?? 'closed', errorBeforeEnd: true, ms })
  }
  return describeAnswer({
    method,
    path,
    label: '',
    status: parsed.status,
    statusMessage: parsed.statusMessage,
    headers: parsed.headers,
    body: parsed.body,
    bodyBytes: parsed.body.length,
    ms,
  })
}

export interface RawExchange {
  /** Everything received, until the socket closed or the timeout. */
  bytes: Buffer
  /** `closed` (FIN), an error code, or `timeout` (we closed it). */
  ending: string
  ms: number
  answer: Answer
}

/**
 * Writes `data` on a fresh TCP connection and reads until the server closes it (or
 * `timeoutMs`): for requests node:http refuses to send (huge or malformed headers).
 */
export function rawExchange(options: { host: string; port: number; data: Buffer | string; timeoutMs?: number; method?: string; path?: string; localAddress?: string }): Promise<RawExchange> {
  const started = performance.now()
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let ending: string | undefined
    const socket = connect({ host: options.host, port: options.port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) })
    const timer = setTimeout(() => {
      ending ??= 'timeout'
      socket.destroy()
    }, options.timeoutMs ?? 5000)
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => (ending ??= error.code ?? error.message))
    socket.on('end', () => (ending ??= 'closed'))
    socket.on('close', () => {
      clearTimeout(timer)
      const bytes = Buffer.concat(chunks)
      const ms = performance.now() - started
      resolve({ bytes, ending: ending ?? 'closed', ms, answer: rawAnswer(options.method ?? 'GET', options.path ?? '?', bytes, ending, ms) })
    })
    socket.write(options.data)
  })
}

/** One Server-Sent Event. */
export interface SseMessage {
  event: string
  data: string
  id: string | undefined
}

/** A stream opened with `openStream`: what arrived so far, and how to stop it. */
export interface StreamHandle {
  /** The answer's head (status, headers); for a refused stream, the whole answer. */
  readonly answer: Promise<Answer>
  readonly messages: SseMessage[]
  /** Comment lines (`:ok`, heartbeats `:`). */
  comments: number
  bytes: number
  ended: boolean
  close(): void
  /** Resolves true once `check` holds, false after `timeoutMs`. */
  waitFor(check: () => boolean, timeoutMs: number): Promise<boolean>
}

/**
 * `GET path` read as Server-Sent Events. A refused stream (4xx/5xx, or any answer that is
 * not text/event-stream) is read whole and `answer` resolves with it; an accepted one
 * resolves `answer` with its head and keeps parsing events until `close()`.
 */
export function openStream(options: { base: string; path: string; headers?: Record<string, string>; localAddress?: string; keepBody?: (text: string) => void }): StreamHandle {
  const url = new URL(options.base)
  const started = performance.now()
  const messages: SseMessage[] = []
  let closed = false
  let resolveAnswer!: (answer: Answer) => void
  const answerPromise = new Promise<Answer>((resolve) => (resolveAnswer = resolve))
  const handle: StreamHandle = {
    answer: answerPromise,
    messages,
    comments: 0,
    bytes: 0,
    ended: false,
    close() {
      closed = true
      req.destroy()
    },
    async waitFor(check, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      while (!check()) {
        if (Date.now() > deadline || (handle.ended && !check())) return check()
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return true
    },
  }
  const base: Answer = { method: 'GET', path: options.path, label: '', headers: {}, body: Buffer.alloc(0), bodyBytes: 0, ms: 0 }
  const req = httpRequest({
    host: url.hostname,
    port: url.port,
    path: options.path,
    headers: options.headers,
    agent: false,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  })
  const headTimer = setTimeout(() => {
    base.error = 'timeout'
    resolveAnswer(describeAnswer({ ...base, ms: performance.now() - started }))
    req.destroy()
  }, 15_000)
  req.on('error', (error: NodeJS.ErrnoException) => {
    handle.ended = true
    clearTimeout(headTimer)
    if (!closed) base.error ??= error.code ?? error.message
    resolveAnswer(describeAnswer({ ...base, ms: performance.now() - started }))
  })
  req.on('response', (response) => {
    clearTimeout(headTimer)
    base.status = response.statusCode
    base.statusMessage = response.statusMessage
    base.headers = response.headers
    const type = header(response.headers, 'content-type') ?? ''
    const isStream = response.statusCode === 200 && /^text\/event-stream\b/i.test(type)
    if (!isStream) {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => {
        base.bodyBytes += chunk.length
        if (base.bodyBytes <= maxKeptBody) chunks.push(chunk)
        // Something streaming that we did not expect (NDJSON, another type): a head is enough.
        if (response.statusCode === 200 && base.bodyBytes >= 2) req.destroy()
      })
      const done = () => {
        handle.ended = true
        base.body = Buffer.concat(chunks)
        resolveAnswer(describeAnswer({ ...base, ms: performance.now() - started }))
      }
      response.on('end', done)
      response.on('close', done)
      return
    }
    resolveAnswer(describeAnswer({ ...base, ms: performance.now() - started }))
    let buffer = ''
    let event: SseMessage = { event: 'message', data: '', id: undefined }
    let hasData = false
    response.setEncoding('utf8')
    response.on('data', (text: string) => {
      handle.bytes += Buffer.byteLength(text)
      options.keepBody?.(text)
      buffer += text
      let newline: number
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline).replace(/\r$/, '')
        buffer = buffer.slice(newline + 1)
        if (line === '') {
          if (hasData) messages.push(event)
          event = { event: 'message', data: '', id: event.id }
          hasData = false
        } else if (line.startsWith(':')) handle.comments++
        else {
          const colon = line.indexOf(':')
          const field = colon === -1 ? line : line.slice(0, colon)
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'data') {
            event.data = hasData ? `${event.data}\n${value}` : value
            hasData = true
          } else if (field === 'event') event.event = value
          else if (field === 'id') event.id = value
        }
      }
    })
    response.on('end', () => (handle.ended = true))
    response.on('close', () => (handle.ended = true))
  })
  req.end()
  return handle
}

/** A socket that can be destroyed by the suite's cleanup. */
export type Closeable = { destroy(): void } | { close(): void }

export function closeQuietly(resource: Closeable): void {
  try {
    if ('destroy' in resource) resource.destroy()
    else resource.close()
  } catch {
    // already gone
  }
}

export type { Socket }
