import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, extname, join } from 'node:path'
import { postBatch } from '@eventplane/client'
import type { Config } from '../config/index.ts'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import type { AppendRecord } from '../log/index.ts'
import type { Endpoint } from './endpoints.ts'
import { openLog } from './logs.ts'

/** One event to write: its JSON text (as read, or as transformed) and the parsed event. */
export interface OutItem {
  text: string
  event: JsonObject
  key?: Buffer | null
  timestamp?: number
}

/** What the destination refused for what it is (never to be sent again), and what to send again. */
export interface WriteResult {
  refused: Array<{ item: OutItem; code: string; message: string }>
  retry: OutItem[]
  /** Why some are to be sent again, for the retry message. */
  reason?: string
  /** How long the destination asked to wait, ms. */
  retryAfterMs?: number
  /** Refused but not listed (an intake lists at most intake.max_refusals_listed per answer). */
  unlisted?: number
}

/**
 * Where events go. `write` resolves once the destination holds the events (durably, for files
 * and logs), with what it refused and what may be sent again; it throws when nothing of the
 * batch can be known to be written. `position` is what a state file needs to resume it
 * exactly (files only).
 */
export interface Sink {
  readonly label: string
  write(items: OutItem[]): Promise<WriteResult>
  position(): unknown
  /** True when the file has passed its rotation size: the pipe saves its state, then calls `rotate`. */
  readonly wantsRotation: boolean
  rotate(): void
  close(): Promise<void>
}

export async function openSink(endpoint: Endpoint, config: Readonly<Config>, saved: unknown, notice: (text: string) => void): Promise<Sink> {
  switch (endpoint.scheme) {
    case 'file':
      return fileSink(endpoint.path, endpoint.rotateBytes, saved, notice)
    case 'stdout':
      return stdoutSink()
    case 'embedded':
    case 'kafka':
      return logSink(endpoint, config)
    case 'http':
      return httpSink(endpoint.url, endpoint.batch)
    default:
      throw new EventplaneError('EVP_PIPE_URI_INVALID', `${endpoint.scheme}:// is not a destination`)
  }
}

const noRetry: WriteResult = { refused: [], retry: [] }

/**
 * Appends lines to a file, fsynced per batch. After a crash the file is cut back to the size
 * the state file recorded, so events the source gives again are not there twice. Past
 * `rotateBytes` the file is renamed to `<name>.<UTC time, ms><ext>` and a new one started, only at a
 * saved position (the pipe saves before and after). A file moved away by another tool
 * (logrotate) is noticed and a new one opened, as Python's WatchedFileHandler does.
 */
function fileSink(path: string, rotateBytes: number, saved: unknown, notice: (text: string) => void): Sink {
  mkdirSync(dirname(path), { recursive: true })
  let fd = openAppend(path)
  let stat = fstatSync(fd)
  const regular = stat.isFile()
  let size = stat.size
  if (saved !== undefined && regular) {
    const s = saved as { size?: unknown; ino?: unknown }
    if (!isPlainObject(saved) || typeof s.size !== 'number' || typeof s.ino !== 'number') throw new EventplaneError('EVP_PIPE_STATE_INVALID', 'the saved position of the file destination is not {size, ino}')
    if (s.ino === stat.ino && size > s.size) {
      notice(`${path}: cutting ${size - s.size} bytes written after the last saved position (they are read again from the source)`)
      ftruncateSync(fd, s.size)
      size = s.size
    } else if (s.ino !== stat.ino && size > 0) {
      notice(`${path} is not the file the state was saved for; appending to it`)
    }
  }
  const reopenIfMoved = () => {
    let current
    try {
      current = statSync(path)
    } catch {
      current = undefined
    }
    if (current === undefined || current.ino !== stat.ino || current.dev !== stat.dev) {
      closeSync(fd)
      fd = openAppend(path)
      stat = fstatSync(fd)
      size = stat.size
    }
  }
  return {
    label: path,
    async write(items) {
      if (regular) reopenIfMoved()
      const data = Buffer.from(items.map((i) => i.text).join('\n') + '\n', 'utf8')
      try {
        let written = 0
        while (written < data.length) written += writeSync(fd, data, written, data.length - written)
        if (regular) fdatasyncSync(fd)
      } catch (error) {
        // Leave no partial line behind: the batch is written again whole, or not at all.
        if (regular) {
          try {
            ftruncateSync(fd, size)
          } catch {
            // the write failed already; that error is the one to report
          }
        }
        throw new EventplaneError('EVP_PIPE_DESTINATION_FAILED', `writing to ${path} failed: ${describeErrno(error)}`, { cause: error })
      }
      size += data.length
      return noRetry
    },
    position: () => (regular ? { path, ino: stat.ino, size } : undefined),
    get wantsRotation() {
      return regular && size >= rotateBytes
    },
    rotate() {
      const ext = extname(path)
      const stem = join(dirname(path), basename(path, ext))
      // Names sort in the order the files were written: the time to the millisecond, moved on
      // by a millisecond while the name is taken.
      let at = Date.now()
      const name = () => `${stem}.${new Date(at).toISOString().replace(/[-:.]/g, '')}${ext}`
      while (exists(name())) at++
      const target = name()
      renameSync(path, target)
      closeSync(fd)
      fd = openAppend(path)
      stat = fstatSync(fd)
      size = 0
      notice(`${path}: rotated to ${target}`)
    },
    close() {
      closeSync(fd)
      return Promise.resolve()
    },
  }
}

function openAppend(path: string): number {
  try {
    return openSync(path, 'a')
  } catch (error) {
    throw new EventplaneError('EVP_PIPE_DESTINATION_FAILED', `cannot open ${path} for writing: ${describeErrno(error)}`, { cause: error })
  }
}

function exists(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}

const errnoText: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EROFS: 'read-only file system',
  EISDIR: 'it is a folder',
  EIO: 'input/output error',
  EPIPE: 'the reader closed the pipe',
}

export function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  return code !== undefined ? `${code} (${errnoText[code] ?? (error as Error).message})` : (error as Error).message
}

/** Errors that waiting cannot mend: the pipe stops at once rather than retry. */
export function isPermanent(error: unknown): boolean {
  const code = ((error as { cause?: NodeJS.ErrnoException }).cause ?? (error as NodeJS.ErrnoException)).code
  if (code !== undefined && ['EACCES', 'EPERM', 'EROFS', 'EISDIR', 'ENOTDIR', 'EPIPE', 'EBADF'].includes(code)) return true
  return error instanceof EventplaneError && !error.canRetry
}

function stdoutSink(): Sink {
  const out = process.stdout
  return {
    label: 'stdout',
    async write(items) {
      const text = items.map((i) => i.text).join('\n') + '\n'
      await new Promise<void>((resolve, reject) => {
        const fail = (error: Error) => reject(new EventplaneError('EVP_PIPE_DESTINATION_FAILED', `writing to stdout failed: ${describeErrno(error)}`, { cause: error }))
        out.once('error', fail)
        out.write(text, (error) => {
          out.off('error', fail)
          if (error) fail(error)
          else resolve()
        })
      })
      return noRetry
    },
    position: () => undefined,
    wantsRotation: false,
    rotate() {},
    close: () => Promise.resolve(),
  }
}

/**
 * A topic of the embedded log or Kafka. Records keep the key and time they had in a source log;
 * events from elsewhere get meta.dt as their time and land by meta.id, as the intake places them.
 * A record the log refuses for what it is (too large, a time it cannot hold) is refused alone.
 */
async function logSink(endpoint: Extract<Endpoint, { scheme: 'embedded' | 'kafka' }>, config: Readonly<Config>): Promise<Sink> {
  const { log, label } = await openLog(endpoint, config, 'write')
  const topic = endpoint.topic
  return {
    label: `${label} topic ${topic}`,
    async write(items) {
      const refused: WriteResult['refused'] = []
      const records: AppendRecord[] = []
      for (const item of items) {
        const record = toRecord(topic, item)
        const bad = log.checkRecord(record)
        if (bad === undefined) records.push(record)
        else refused.push({ item, code: bad.code, message: bad.message })
      }
      if (records.length > 0) await log.append(records)
      return { refused, retry: [] }
    },
    position: () => undefined,
    wantsRotation: false,
    rotate() {},
    close: () => log.close(),
  }
}

function toRecord(topic: string, item: OutItem): AppendRecord {
  const record: AppendRecord = { topic, value: item.text }
  const meta = item.event['meta']
  if (item.key != null) record.key = item.key
  else if (isPlainObject(meta) && typeof meta['id'] === 'string') record.affinity = meta['id']
  if (item.timestamp !== undefined) record.timestamp = item.timestamp
  else if (isPlainObject(meta) && typeof meta['dt'] === 'string') {
    const dt = Date.parse(meta['dt'])
    if (Number.isFinite(dt)) record.timestamp = dt
  }
  return record
}

/**
 * An intake (`POST /v1/events`, Eventplane's or EventGate's), in batches, each event with its
 * own outcome: accepted, refused (invalid: counted, never sent again) or to be sent again (5xx,
 * 429, no answer). The text as read is sent as is: events are not serialized again.
 */
function httpSink(url: string, batch: number): Sink {
  return {
    label: url,
    async write(items) {
      const result: WriteResult = { refused: [], retry: [] }
      for (let start = 0; start < items.length; start += batch) await post(items.slice(start, start + batch), result)
      return result
    },
    position: () => undefined,
    wantsRotation: false,
    rotate() {},
    close: () => Promise.resolve(),
  }

  async function post(items: OutItem[], result: WriteResult): Promise<void> {
    const byEvent = new Map(items.map((item) => [item.event, item]))
    const outcome = await postBatch(
      url,
      items.map((i) => i.event),
      { fetch, timeoutMs: 30_000, headers: { 'user-agent': 'eventplane-pipe' }, body: `[${items.map((i) => i.text).join(',')}]` },
    )
    if (outcome.tooLarge) {
      const half = Math.ceil(items.length / 2)
      await post(items.slice(0, half), result)
      await post(items.slice(half), result)
      return
    }
    for (const refusal of outcome.invalid) result.refused.push({ item: byEvent.get(refusal.event)!, code: refusal.code, message: refusal.message })
    for (const event of outcome.retry) result.retry.push(byEvent.get(event)!)
    if (outcome.omittedInvalid > 0) result.unlisted = (result.unlisted ?? 0) + outcome.omittedInvalid
    if (outcome.retry.length > 0) {
      result.reason = outcome.summary
      if (outcome.retryAfterMs !== undefined) result.retryAfterMs = Math.max(result.retryAfterMs ?? 0, outcome.retryAfterMs)
    }
  }
}
