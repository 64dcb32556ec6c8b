/**
 * Duplicates in a partition: an event the intake could not confirm (EVP_LOG_OUTCOME_UNKNOWN)
 * may be in the log and be sent again by its producer with the same meta.id; the intake puts
 * both copies in the same partition (the id is their partition affinity). The rule, the same
 * for every reader, live or replaying: a record whose meta.id equals that of one of the
 * `window` records before it in its partition is a duplicate, and is not delivered.
 *
 * A reader needs the ids of the `window` records before where it starts: the shared tail keeps
 * those of the last 2 × window records (a client resuming near the end copies them), and a
 * reader that starts further back reads them first (`lookback`).
 */
import { setImmediate as nextTurn } from 'node:timers/promises'
import { FifoMap } from '../core/fifo-map.ts'
import { sliceMs } from '../core/slice.ts'
import type { EventLog } from '../log/types.ts'

/** The meta.ids of the last records of one partition, with the offset of each id's first copy. */
export class RecentIds {
  readonly window: number
  /** How many offsets back ids are kept (at least `window`). */
  readonly #keep: number
  /** id → offset of its first copy, oldest first. */
  readonly #ids = new FifoMap()
  /** Every record from this offset on has been seen (records before the log's start count as seen). */
  start: number

  constructor(window: number, start: number, keep = window) {
    this.window = window
    this.#keep = Math.max(keep, window)
    this.start = start
  }

  /**
   * Whether the record at `offset` repeats the id of one of the `window` records before it.
   * Records must come in offset order; a first copy is remembered, a duplicate is not.
   */
  check(id: string | undefined, offset: number): boolean {
    const below = offset - this.#keep
    if (below > this.start) {
      this.start = below
      this.#ids.evictWhile((first) => first < below)
    }
    if (id === undefined) return false
    const first = this.#ids.get(id)
    if (first !== undefined && first < offset && first >= offset - this.window) return true
    if (first === undefined || first < offset - this.window) this.#ids.set(id, offset)
    return false
  }

  /** Whether this knows the ids of every record in [from, its newest). */
  covers(from: number): boolean {
    return this.start <= Math.max(0, from)
  }

  /** A RecentIds for a reader starting at `to`, with the ids this holds of [to - window, to). */
  before(to: number): RecentIds {
    const from = to - this.window
    const copy = new RecentIds(this.window, from)
    for (const [id, offset] of this.#ids.entries()) {
      if (offset >= to) break
      if (offset >= from) copy.check(id, offset)
    }
    return copy
  }

  get size(): number {
    return this.#ids.size
  }
}

/** The meta.id of an event, when it has a string one. */
export function eventId(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null) return undefined
  const meta = (event as { meta?: unknown }).meta
  if (typeof meta !== 'object' || meta === null) return undefined
  const id = (meta as { id?: unknown }).id
  return typeof id === 'string' ? id : undefined
}

/** The meta.id of a stored record, read without keeping the event. */
export function recordId(value: Buffer): string | undefined {
  try {
    return eventId(JSON.parse(value.toString('utf8')))
  } catch {
    return undefined
  }
}

/**
 * Reads the ids of the `window` records of a partition before `to` (fewer where the log starts
 * later): what a reader starting at `to` must know to drop duplicates from its first record on.
 * When they cannot be read (a batch that cannot be decoded), the reader starts knowing none:
 * copies of records before `to` then go through, and reading itself reports the failure.
 */
export async function lookback(log: EventLog, topic: string, partition: number, to: number, window: number, signal?: AbortSignal, keep = window): Promise<RecentIds> {
  const from = Math.max(0, to - window)
  const recent = new RecentIds(window, from, keep)
  if (to <= 0) return recent
  try {
    const earliest = await log.earliest(topic, partition)
    if (earliest >= to) return recent
    let sliceStart = performance.now()
    for await (const record of log.read({ topic, partition, offset: Math.max(from, earliest) }, { follow: false, signal, batchSize: 1000 })) {
      if (record.offset >= to) break
      recent.check(recordId(record.value), record.offset)
      // Thousands of records to parse: other requests go on meanwhile.
      if (performance.now() - sliceStart > sliceMs) {
        await nextTurn()
        sliceStart = performance.now()
      }
    }
    return recent
  } catch {
    return new RecentIds(window, to, keep)
  }
}
