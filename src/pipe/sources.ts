import { createReadStream, statSync } from 'node:fs'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject } from '../core/objects.ts'
import type { EventLog } from '../log/index.ts'
import { followStream } from '../streams/follow.ts'
import type { Endpoint, StartAt } from './endpoints.ts'
import { splitLines, type Line } from './lines.ts'
import { openLog } from './logs.ts'
import { BoundedQueue } from './queue.ts'

/** One event as read, before it is parsed. */
export interface Item {
  /** The JSON text; undefined when it cannot be an event (it counts as malformed). */
  text: string | undefined
  /** Why there is no text: a line over the length limit, bytes that are not UTF-8. */
  problem?: string
  /** For line sources: its line number. */
  line?: number
  /** The record's key and time, when the source is a log (a log destination keeps them). */
  key?: Buffer | null
  timestamp?: number
  /** Source-specific: what `commit` needs to move the position past this item. */
  mark: number | string
  /** For log sources: the partition of `mark`. */
  partition?: number
}

/** Where an item was read, for messages: `line 12`, `partition 0 offset 41`, `event id …`. */
export function describeItem(item: Item): string {
  if (item.line !== undefined) return `line ${item.line}`
  if (item.partition !== undefined) return `partition ${item.partition} offset ${item.mark}`
  return `event id ${item.mark}`
}

/**
 * Where events come from. `next` gives items in order; `commit` moves the saved position past
 * an item once the destination holds it (or it was skipped on purpose), and `position` is that
 * position as JSON, for the state file. A source restarted from a position gives the items
 * after it: no gap, no duplicate.
 */
export interface Source {
  readonly label: string
  /** Whether a state file can resume it (stdin cannot). */
  readonly resumable: boolean
  /** Up to `max` items, waiting for the first; undefined at the end, or once the signal aborts. */
  next(max: number, signal: AbortSignal): Promise<Item[] | undefined>
  commit(item: Item): void
  position(): unknown
  /** How far behind the source the pipe is: events (logs) or bytes (files); undefined when unknown. */
  lag(): Promise<{ value: number; unit: 'events' | 'bytes' } | undefined>
  close(): Promise<void>
}

export interface SourceOptions {
  config: Readonly<Config>
  /** The saved position (from the state file), if any. */
  saved: unknown
  /** Log and SSE sources: keep waiting for new events at the end (default), or stop there. */
  follow: boolean
  /** Reports reconnects and other conditions worth a line on stderr. */
  notice(text: string): void
}

export async function openSource(endpoint: Endpoint, options: SourceOptions): Promise<Source> {
  switch (endpoint.scheme) {
    case 'file':
      return fileSource(endpoint.path, endpoint.maxLineBytes, options.saved)
    case 'stdin':
      return lineSource('stdin', process.stdin as AsyncIterable<Buffer>, { offset: 0, line: 0 }, endpoint.maxLineBytes, false)
    case 'embedded':
    case 'kafka':
      return logSource(endpoint, options)
    case 'sse':
      return sseSource(endpoint.url, options)
    default:
      throw new EventplaneError('EVP_PIPE_URI_INVALID', `${endpoint.scheme}:// is not a source`)
  }
}

interface FilePosition {
  offset: number
  line: number
  /** Identity of the file read, so that resuming in a replaced file is refused. */
  dev: number
  ino: number
}

function fileSource(path: string, maxLineBytes: number, saved: unknown): Source {
  let stat
  try {
    stat = statSync(path)
  } catch (error) {
    throw new EventplaneError('EVP_PIPE_SOURCE_FAILED', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
  }
  if (!stat.isFile() && !stat.isFIFO() && !stat.isCharacterDevice()) throw new EventplaneError('EVP_PIPE_SOURCE_FAILED', `${path} is not a file`)
  let start = { offset: 0, line: 0 }
  if (saved !== undefined) {
    const s = saved as Partial<FilePosition>
    if (!isPlainObject(saved) || typeof s.offset !== 'number' || typeof s.line !== 'number') {
      throw new EventplaneError('EVP_PIPE_STATE_INVALID', 'the saved position of the file source is not {offset, line, dev, ino}')
    }
    if (s.ino !== stat.ino || s.dev !== stat.dev) {
      throw new EventplaneError('EVP_PIPE_STATE_INVALID', `${path} is not the file the state was saved for (it was replaced or rotated): use another --state file to read it from the start`)
    }
    if (s.offset > stat.size) {
      throw new EventplaneError('EVP_PIPE_STATE_INVALID', `${path} is shorter (${stat.size} bytes) than the saved position (${s.offset}): it was truncated since`)
    }
    start = { offset: s.offset, line: s.line }
  }
  const chunks = createReadStream(path, { start: start.offset, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>
  const source = lineSource(path, chunks, start, maxLineBytes, true)
  const { dev, ino } = stat
  return {
    ...source,
    position: () => ({ ...(source.position() as object), dev, ino }),
    async lag() {
      try {
        return { value: Math.max(0, statSync(path).size - (source.position() as { offset: number }).offset), unit: 'bytes' }
      } catch {
        return undefined
      }
    },
  }
}

/** A source of lines (a file or stdin); the position is the byte offset and number of the last line handled. */
function lineSource(label: string, chunks: AsyncIterable<Buffer>, start: { offset: number; line: number }, maxLineBytes: number, resumable: boolean): Source {
  const batches = splitLines(chunks, { startOffset: start.offset, startLine: start.line, maxLineBytes })
  let pending: Line[] = []
  let done = false
  let offset = start.offset
  let lineNumber = start.line
  return {
    label,
    resumable,
    async next(max, signal) {
      if (signal.aborted) return undefined
      while (pending.length === 0) {
        if (done || signal.aborted) return undefined
        let result
        try {
          result = await batches.next()
        } catch (error) {
          throw new EventplaneError('EVP_PIPE_SOURCE_FAILED', `reading ${label} failed: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
        }
        if (result.done === true) done = true
        // Blank lines are no events: neither read nor malformed.
        else pending = result.value.filter((line) => line.text === undefined || !blank(line.text))
      }
      const taken = pending.length <= max ? pending : pending.slice(0, max)
      pending = pending.length <= max ? [] : pending.slice(max)
      return taken.map((line) => {
        const item: Item = { text: line.text, line: line.number, mark: line.end }
        if (line.problem !== undefined) item.problem = line.problem
        return item
      })
    },
    commit(item) {
      offset = item.mark as number
      lineNumber = item.line!
    },
    position: () => ({ offset, line: lineNumber }),
    lag: () => Promise.resolve(undefined),
    async close() {
      await batches.return(undefined)
    },
  }
}

/** A topic of the embedded log or of Kafka, every partition read together; the position is the next offset of each partition. */
async function logSource(endpoint: Extract<Endpoint, { scheme: 'embedded' | 'kafka' }>, options: SourceOptions): Promise<Source> {
  const { log, label } = await openLog(endpoint, options.config, 'read')
  const topic = endpoint.topic
  try {
    if (!(await log.topics()).includes(topic)) {
      throw new EventplaneError('EVP_LOG_TOPIC_MISSING', `no topic ${topic} in ${label}; topics: ${(await log.topics()).join(', ') || '(none)'}`)
    }
    const count = await log.partitions(topic)
    const saved = savedOffsets(options.saved, topic)
    const next = new Map<number, number>()
    const queue = new BoundedQueue<Item>(10_000)
    const stop = new AbortController()
    let running = count
    for (let partition = 0; partition < count; partition++) {
      const from = saved.has(partition) ? { topic, partition, offset: saved.get(partition)! } : await startOf(log, topic, partition, endpoint.from)
      if ('offset' in from) next.set(partition, from.offset)
      else {
        const [found] = (await log.offsetsForTimes(topic, from.timestamp)).filter((o) => o.partition === partition)
        next.set(partition, found?.offset ?? (await log.latest(topic, partition)))
      }
      const offset = next.get(partition)!
      void (async () => {
        try {
          for await (const record of log.read({ topic, partition, offset }, { signal: stop.signal, follow: options.follow, batchSize: 1000 })) {
            await queue.push(
              { text: record.value.toString('utf8'), key: record.key, timestamp: record.timestamp, mark: record.offset, partition },
              stop.signal,
            )
          }
          if (--running === 0) queue.end()
        } catch (error) {
          queue.end(new EventplaneError('EVP_PIPE_SOURCE_FAILED', `reading ${topic} partition ${partition} from ${label} failed: ${(error as Error).message}`, { cause: error }))
        }
      })()
    }
    return {
      label: `${label} topic ${topic}`,
      resumable: true,
      next: (max, signal) => queue.take(max, signal),
      commit(item) {
        next.set(item.partition!, (item.mark as number) + 1)
      },
      position: () => ({ topic, offsets: Object.fromEntries(next) }),
      async lag() {
        let behind = 0
        for (const [partition, offset] of next) behind += Math.max(0, (await log.latest(topic, partition)) - offset)
        return { value: behind, unit: 'events' }
      },
      async close() {
        stop.abort()
        queue.end()
        await log.close()
      },
    }
  } catch (error) {
    await log.close()
    throw error
  }
}

function savedOffsets(saved: unknown, topic: string): Map<number, number> {
  if (saved === undefined) return new Map()
  const s = saved as { topic?: unknown; offsets?: unknown }
  if (!isPlainObject(saved) || s.topic !== topic || !isPlainObject(s.offsets)) {
    throw new EventplaneError('EVP_PIPE_STATE_INVALID', `the saved position is not {topic: ${JSON.stringify(topic)}, offsets: {partition: offset}}`)
  }
  const offsets = new Map<number, number>()
  for (const [partition, offset] of Object.entries(s.offsets)) {
    if (!/^\d+$/.test(partition) || !Number.isSafeInteger(offset) || (offset as number) < 0) {
      throw new EventplaneError('EVP_PIPE_STATE_INVALID', `the saved offset of partition ${partition} is not a non-negative integer`)
    }
    offsets.set(Number(partition), offset as number)
  }
  return offsets
}

async function startOf(log: EventLog, topic: string, partition: number, from: StartAt): Promise<{ topic: string; partition: number; offset: number } | { timestamp: number }> {
  if (from.kind === 'time') return { timestamp: from.ms }
  return { topic, partition, offset: from.kind === 'earliest' ? await log.earliest(topic, partition) : await log.latest(topic, partition) }
}

/** A streams endpoint over Server-Sent Events, reconnecting and resuming on its own; the position is the last event id. */
function sseSource(url: string, options: SourceOptions): Source {
  if (!options.follow) throw new EventplaneError('EVP_CLI_USAGE', 'an sse:// source has no end to stop at: use --limit N instead of --no-follow')
  let lastEventId = ''
  if (options.saved !== undefined) {
    const s = options.saved as { lastEventId?: unknown }
    if (!isPlainObject(options.saved) || typeof s.lastEventId !== 'string') throw new EventplaneError('EVP_PIPE_STATE_INVALID', 'the saved position of the sse source is not {lastEventId}')
    lastEventId = s.lastEventId
  }
  let committed = lastEventId
  const queue = new BoundedQueue<Item>(10_000)
  const stop = new AbortController()
  followStream({
    url,
    lastEventId,
    signal: stop.signal,
    onEvent: (event) => queue.push({ text: event.data, mark: event.lastEventId }, stop.signal),
    onStatus(status) {
      if (status.kind === 'server-error') options.notice(`${url}: the server sent ${status.code} ${status.detail}`)
      else if (status.kind === 'retry') options.notice(`${url}: ${status.reason}; reconnecting in ${(status.inMs / 1000).toFixed(1)} s`)
    },
  }).then(
    () => queue.end(),
    // The server's own refusals (unknown stream, bad since or filter) keep their codes.
    (error: unknown) => queue.end(error instanceof EventplaneError ? error : new EventplaneError('EVP_PIPE_SOURCE_FAILED', `${url}: ${(error as Error).message}`, { cause: error })),
  )
  return {
    label: url,
    resumable: true,
    next: (max, signal) => queue.take(max, signal),
    commit(item) {
      committed = item.mark as string
    },
    position: () => ({ lastEventId: committed }),
    lag: () => Promise.resolve(undefined),
    close() {
      stop.abort()
      queue.end()
      return Promise.resolve()
    },
  }
}

function blank(text: string): boolean {
  if (text === '') return true
  const first = text.charCodeAt(0)
  return (first === 32 || first === 9 || first === 13) && text.trim() === ''
}
