import { EventplaneError, isErrorCode } from '../core/errors.ts'

/** One Server-Sent Event as dispatched (the `message` events and the server's `error` events). */
export interface SseEvent {
  event: string
  data: string
  /** The last event id seen on the connection so far (what a reconnect sends). */
  lastEventId: string
}

export interface FollowOptions {
  /** Full URL of `/v2/stream/{streams}` with its query. */
  url: string
  /** Resume from this id (as sent in `id:`); later, the last id seen. */
  lastEventId?: string
  signal?: AbortSignal
  /** Called for every `message` event. */
  onEvent(event: SseEvent): void | Promise<void>
  /** Connection life: opened, server error events, reconnect waits. */
  onStatus?(status: FollowStatus): void
  /** Longest wait between reconnects (the wait doubles on each failure in a row). Default 30 s. */
  maxRetryMs?: number
  headers?: Record<string, string>
}

export type FollowStatus =
  | { kind: 'open'; url: string; resumed: boolean }
  | { kind: 'server-error'; code: string; detail: string }
  | { kind: 'retry'; inMs: number; reason: string }

/**
 * Follows a stream over SSE until the signal aborts, reconnecting after network errors, server
 * restarts and 5xx/429 answers, each time with the last event id seen, so that nothing is
 * missed and nothing comes twice. A 4xx answer other than 408 and 429 is the caller's mistake
 * and is thrown (with the server's code) rather than retried.
 */
export async function followStream(options: FollowOptions): Promise<void> {
  const maxRetryMs = options.maxRetryMs ?? 30_000
  let lastEventId = options.lastEventId ?? ''
  let retryMs = 2000
  let failures = 0
  const signal = options.signal
  while (!signal?.aborted) {
    let reason: string
    let waitMs: number | undefined
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers }
      if (lastEventId !== '') headers['last-event-id'] = lastEventId
      const response = await fetch(options.url, { headers, ...(signal ? { signal } : {}) })
      if (response.status !== 200) {
        const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string }
        const detail = problem.detail ?? `${response.status} ${response.statusText}`
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          throw new EventplaneError(problem.code !== undefined && isErrorCode(problem.code) ? problem.code : 'EVP_BAD_REQUEST', detail, {
            details: { status: response.status },
          })
        }
        const after = Number(response.headers.get('retry-after'))
        if (Number.isFinite(after) && after > 0) waitMs = after * 1000
        throw new Error(`${response.status}: ${detail}`)
      }
      if (response.body === null) throw new Error('the response has no body')
      failures = 0
      options.onStatus?.({ kind: 'open', url: options.url, resumed: lastEventId !== '' })
      for await (const event of parseSse(response.body, lastEventId)) {
        lastEventId = event.lastEventId
        if (event.event === 'retry') {
          retryMs = Number(event.data)
          continue
        }
        if (event.event === 'error') {
          const problem = safeJson(event.data) as { code?: string; detail?: string } | undefined
          options.onStatus?.({ kind: 'server-error', code: problem?.code ?? 'EVP_INTERNAL', detail: problem?.detail ?? event.data })
          continue
        }
        if (event.event === 'message') await options.onEvent(event)
        if (signal?.aborted) return
      }
      reason = 'the server ended the stream'
    } catch (error) {
      if (signal?.aborted) return
      if (error instanceof EventplaneError) throw error
      const cause = (error as { cause?: { code?: string } }).cause?.code
      reason = cause ?? (error as Error).message
      failures++
    }
    const inMs = waitMs ?? Math.min(maxRetryMs, retryMs * 2 ** Math.max(0, failures - 1))
    options.onStatus?.({ kind: 'retry', inMs, reason })
    await sleep(inMs, signal)
  }
}

/**
 * The event stream parser of the HTML standard: lines end with CRLF, LF or CR; `data` lines
 * join with LF; `id` sets the last event id (unless it contains NUL); comments are skipped.
 * A `retry:` field is passed on as an event named `retry`.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>, lastEventId = ''): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder()
  let buffer = ''
  let data: string[] = []
  let event = ''
  let pendingCr = false
  for await (const chunk of body) {
    let text = decoder.decode(chunk, { stream: true })
    if (pendingCr && text.startsWith('\n')) text = text.slice(1)
    pendingCr = false
    buffer += text
    let start = 0
    for (;;) {
      const end = nextLineEnd(buffer, start)
      if (end === -1) break
      const line = buffer.slice(start, end)
      if (buffer[end] === '\r') {
        if (end + 1 === buffer.length) pendingCr = true
        start = buffer[end + 1] === '\n' ? end + 2 : end + 1
      } else start = end + 1
      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n'), lastEventId }
        data = []
        event = ''
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      let value = colon === -1 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'data') data.push(value)
      else if (field === 'event') event = value
      else if (field === 'id') {
        if (!value.includes('\0')) lastEventId = value
      } else if (field === 'retry' && /^\d+$/.test(value)) yield { event: 'retry', data: value, lastEventId }
    }
    buffer = buffer.slice(start)
  }
}

function nextLineEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 10 || c === 13) return i
  }
  return -1
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
