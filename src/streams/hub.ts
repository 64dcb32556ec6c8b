import { setImmediate as nextTurn } from 'node:timers/promises'
import type { Logger } from 'pino'
import { isPlainObject, type JsonObject } from '../core/objects.ts'
import { sliceMs } from '../core/slice.ts'
import type { EventLog, LogRecord } from '../log/types.ts'
import { eventId, lookback, type RecentIds } from './dedupe.ts'

/** A record of the log as clients get it: parsed once, `meta.topic/partition/offset` added, serialized once. */
export interface Delivery {
  readonly topic: string
  readonly partition: number
  readonly offset: number
  readonly timestamp: number
  /** The event (shared: never modify). */
  readonly event: unknown
  /** The event as one line of JSON. */
  readonly json: string
  /** The event's meta.id (before redaction), for dropping duplicates. */
  readonly id: string | undefined
  /** It repeats the meta.id of a record shortly before it in its partition (dedupe.ts): not delivered. */
  duplicate: boolean
}

class RecordDelivery implements Delivery {
  #json: string | undefined
  duplicate = false
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: number,
    readonly timestamp: number,
    readonly event: unknown,
    readonly id: string | undefined,
  ) {}

  /** Serialized on first use: an event every filter skips (a scan of history) never is. */
  get json(): string {
    return (this.#json ??= JSON.stringify(this.event))
  }
}

/** Something that takes the deliveries of a live partition (a client, for one of its partitions). */
export interface PartitionSubscriber {
  deliver(delivery: Delivery, frames: FrameCache): void
  /** The tail failed (the log broke, or a batch cannot be decoded): the partition stops. */
  fail(error: unknown): void
}

/** The dotted paths each topic's events lose, each split at its dots. */
export type Redaction = (topic: string) => readonly (readonly string[])[]

/**
 * Per-delivery memo shared by every subscriber of it: frames and filter verdicts are made
 * once per distinct (assignment, format, filter), not once per client.
 */
export type FrameCache = Map<string, unknown>

/**
 * One reader per topic-partition for the live tail, shared by every client that is caught up
 * (KafkaSSE opens a consumer per client). It starts at the end of the partition when its
 * first subscriber arrives and stops a little after its last one leaves.
 */
export class Tail {
  readonly topic: string
  readonly partition: number
  /** The offset of the next record this tail delivers. */
  position = 0
  /** Timestamp of the last record delivered, if any. */
  lastTimestamp: number | undefined
  readonly ready: Promise<void>
  readonly #subscribers = new Set<PartitionSubscriber>()
  readonly #abort = new AbortController()
  readonly #log: EventLog
  readonly #logger: Logger | undefined
  readonly #redact: Redaction
  #idleTimer: NodeJS.Timeout | undefined
  #onStop: () => void
  readonly #dedupe: Dedupe
  /** Ids of the last 2 × window records, when duplicates are dropped. */
  recent: RecentIds | undefined

  constructor(log: EventLog, topic: string, partition: number, logger: Logger | undefined, redact: Redaction, dedupe: Dedupe, onStop: () => void) {
    this.#log = log
    this.topic = topic
    this.partition = partition
    this.#logger = logger
    this.#redact = redact
    this.#dedupe = dedupe
    this.#onStop = onStop
    this.ready = log.latest(topic, partition).then(async (offset) => {
      this.position = offset
      // The ids of the records before the end, so the first record after it is judged as any other.
      if (dedupe.window > 0) this.recent = await lookback(log, topic, partition, offset, dedupe.window, this.#abort.signal, 2 * dedupe.window)
      void this.#run()
    })
  }

  get size(): number {
    return this.#subscribers.size
  }

  /** Adds a subscriber; it gets every record from `position` on. Call only after `ready`. */
  add(subscriber: PartitionSubscriber): void {
    clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#subscribers.add(subscriber)
  }

  remove(subscriber: PartitionSubscriber): void {
    this.#subscribers.delete(subscriber)
    if (this.#subscribers.size === 0 && this.#idleTimer === undefined) {
      // Kept a moment, so clients that reconnect at once find it running.
      this.#idleTimer = setTimeout(() => {
        if (this.#subscribers.size === 0) this.stop()
      }, 5000)
      this.#idleTimer.unref()
    }
  }

  stop(): void {
    clearTimeout(this.#idleTimer)
    this.#abort.abort()
    this.#onStop()
  }

  async #run(): Promise<void> {
    try {
      let sliceStart = performance.now()
      for await (const record of this.#log.read({ topic: this.topic, partition: this.partition, offset: this.position }, { signal: this.#abort.signal })) {
        // A read page is delivered in one go unless it takes long (many clients, a burst).
        if (performance.now() - sliceStart > sliceMs) {
          await nextTurn()
          sliceStart = performance.now()
          if (this.#abort.signal.aborted) return
        }
        const delivery = toDelivery(record, this.#redact(record.topic))
        this.position = record.offset + 1
        this.lastTimestamp = record.timestamp
        if (this.recent?.check(delivery.id, record.offset)) {
          delivery.duplicate = true
          this.#dedupe.onDuplicate?.(record.topic)
        }
        const frames: FrameCache = new Map()
        for (const subscriber of this.#subscribers) {
          try {
            subscriber.deliver(delivery, frames)
          } catch (error) {
            this.#logger?.error({ err: error }, 'delivering to a client failed')
          }
        }
      }
    } catch (error) {
      if (this.#abort.signal.aborted) return
      this.#logger?.error({ err: error, topic: this.topic, partition: this.partition }, 'reading the log for a stream failed')
      for (const subscriber of [...this.#subscribers]) subscriber.fail(error)
      this.stop()
    }
  }
}

/** Dropping duplicates (dedupe.ts): `window` records back (0: never), counted by `onDuplicate`. */
export interface Dedupe {
  window: number
  onDuplicate?: (topic: string) => void
}

/** The shared tails, created on demand. */
export class Hub {
  readonly #tails = new Map<string, Tail>()
  readonly #log: EventLog
  readonly #logger: Logger | undefined
  /** What each topic's events lose before delivery (the same for history reads: see client.ts). */
  readonly redact: Redaction
  readonly dedupe: Dedupe

  constructor(log: EventLog, logger?: Logger, redact: Redaction = () => [], dedupe: Dedupe = { window: 0 }) {
    this.#log = log
    this.#logger = logger
    this.redact = redact
    this.dedupe = dedupe
  }

  tail(topic: string, partition: number): Tail {
    const key = `${topic}\0${partition}`
    let tail = this.#tails.get(key)
    if (tail === undefined) {
      tail = new Tail(this.#log, topic, partition, this.#logger, this.redact, this.dedupe, () => {
        if (this.#tails.get(key) === tail) this.#tails.delete(key)
      })
      this.#tails.set(key, tail)
    }
    return tail
  }

  /** Adds, for each topic, the number of partitions this hub is reading, into `counts`. */
  countReaders(counts: Map<string, number>): void {
    for (const tail of this.#tails.values()) counts.set(tail.topic, (counts.get(tail.topic) ?? 0) + 1)
  }

  close(): void {
    for (const tail of [...this.#tails.values()]) tail.stop()
  }
}

/**
 * Decorates a record as EventStreams does: meta.topic, meta.partition, meta.offset (and
 * meta.key), after leaving out the `redact` paths (so filters cannot see them either).
 */
export function toDelivery(record: LogRecord, redact: readonly (readonly string[])[] = []): Delivery {
  const text = record.value.toString('utf8')
  let event: unknown
  try {
    event = JSON.parse(text)
  } catch {
    event = text
  }
  const id = eventId(event)
  if (isPlainObject(event)) {
    for (const path of redact) deletePath(event, path)
    const meta: JsonObject = isPlainObject(event['meta']) ? event['meta'] : (event['meta'] = {})
    meta['topic'] = record.topic
    meta['partition'] = record.partition
    meta['offset'] = record.offset
    if (record.key !== null) meta['key'] = record.key.toString('utf8')
  }
  return new RecordDelivery(record.topic, record.partition, record.offset, record.timestamp, event, id)
}

function deletePath(event: JsonObject, path: readonly string[]): void {
  let node: JsonObject = event
  const last = path.length - 1
  for (let i = 0; i < last; i++) {
    const next = node[path[i]!]
    if (!isPlainObject(next)) return
    node = next
  }
  // Only when there: a delete turns the object into a slower dictionary-mode one.
  if (Object.hasOwn(node, path[last]!)) delete node[path[last]!]
}
