import type { ServerResponse } from 'node:http'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { EventplaneError, toProblem } from '../core/errors.ts'
import { sliceMs } from '../core/slice.ts'
import type { EventLog } from '../log/types.ts'
import type { EventFilter } from './filter.ts'
import { lookback } from './dedupe.ts'
import { toDelivery, type Delivery, type FrameCache, type Hub, type PartitionSubscriber, type Tail } from './hub.ts'
import type { IdPosition } from './positions.ts'

export type IdMode = 'both' | 'offset' | 'timestamp'
export type Format = 'sse' | 'ndjson'

/** Where one partition of a connection starts. */
export type Start = { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'timestamp'; timestamp: number } | { kind: 'back'; count: number }

export interface Assignment {
  topic: string
  partition: number
  start: Start
}

export interface ClientHooks {
  onDelivered(count: number): void
  onFilterError(): void
  onFilterOverBudget(): void
  onSlowClient(): void
  onClose(): void
}

export interface ClientOptions {
  log: EventLog
  hub: Hub
  response: ServerResponse
  assignments: Assignment[]
  format: Format
  idMode: IdMode
  filter: EventFilter
  maxBufferedBytes: number
  /** How long an ended response may take to flush before its socket is destroyed. */
  closeGraceMs: number
  hooks: ClientHooks
}

interface PartitionState {
  topic: string
  partition: number
  /** Offset of the next record this client has not seen. */
  next: number
  /** Timestamp of the last record this client has seen (sent or filtered out). */
  lastTimestamp: number | undefined
  tail: Tail | undefined
  subscriber: PartitionSubscriber | undefined
  /** The partition cannot go on (a batch in it cannot be decoded); the others do. */
  stopped: boolean
}

const encoder = new TextEncoder()

/**
 * One SSE (or NDJSON) connection. Each of its partitions first reads history on its own
 * (from `Last-Event-ID` or `since`) until it reaches the shared tail, then joins the tail;
 * from then on it gets what every other live client gets, and frames are built once per
 * delivery for all live clients with the same partitions. Ids point one past the last event
 * seen in every partition, so a reconnect neither replays nor skips.
 */
export class StreamClient {
  readonly #options: ClientOptions
  readonly #states: PartitionState[]
  readonly #assignmentKey: string
  readonly #abort = new AbortController()
  #live = 0
  #closed = false
  #corked = false
  /**
   * Sends what the turn wrote, then looks at what the socket could not take: only that backlog
   * says the client reads too slowly. (Measured while corked, one burst of a busy partition
   * would look like a slow client.)
   */
  readonly #uncork = () => {
    this.#corked = false
    const response = this.#options.response
    response.uncork()
    if (!this.#closed && response.writableLength > this.#options.maxBufferedBytes) {
      this.#options.hooks.onSlowClient()
      this.#end(
        new EventplaneError(
          'EVP_CLIENT_TOO_SLOW',
          `more than ${this.#options.maxBufferedBytes} bytes were waiting to be sent: the client reads too slowly; reconnect with the last event id`,
        ),
      )
    }
  }
  lastWrite = Date.now()

  constructor(options: ClientOptions) {
    this.#options = options
    this.#states = options.assignments.map((a) => ({ topic: a.topic, partition: a.partition, next: 0, lastTimestamp: undefined, tail: undefined, subscriber: undefined, stopped: false }))
    this.#assignmentKey = `${options.format}\0${options.idMode}\0${options.assignments.map((a) => `${a.topic}\0${a.partition}`).join('\0')}`
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Resolves starting offsets, then runs every partition (history, then the live tail). */
  async start(): Promise<void> {
    const { log } = this.#options
    const byTime = new Map<string, Map<number, number>>()
    for (const [i, assignment] of this.#options.assignments.entries()) {
      const state = this.#states[i]!
      const start = assignment.start
      if (start.kind === 'offset' && start.offset >= 0) state.next = start.offset
      else if (start.kind === 'timestamp') {
        let offsets = byTime.get(`${assignment.topic}\0${start.timestamp}`)
        if (offsets === undefined) {
          offsets = new Map((await log.offsetsForTimes(assignment.topic, start.timestamp)).map((o) => [o.partition, o.offset]))
          byTime.set(`${assignment.topic}\0${start.timestamp}`, offsets)
        }
        state.next = offsets.get(assignment.partition) ?? (await log.latest(assignment.topic, assignment.partition))
      } else if (start.kind === 'back') {
        const [earliest, latest] = await Promise.all([log.earliest(assignment.topic, assignment.partition), log.latest(assignment.topic, assignment.partition)])
        state.next = Math.max(earliest, latest - start.count)
      } else state.next = -1 // latest: joins the tail where it is
    }
    await Promise.all(this.#states.map((state) => this.#runPartition(state)))
  }

  async #runPartition(state: PartitionState): Promise<void> {
    const { log, hub } = this.#options
    const tail = hub.tail(state.topic, state.partition)
    state.tail = tail
    await tail.ready
    if (state.next < 0) state.next = tail.position
    while (!this.#closed) {
      if (state.next >= tail.position) {
        // Caught up: from here the shared tail delivers (records it delivers below `next` are
        // ones this client has read already, and are skipped).
        if (state.lastTimestamp === undefined) state.lastTimestamp = tail.lastTimestamp
        state.subscriber = this.#subscriber(state)
        tail.add(state.subscriber)
        this.#live++
        return
      }
      const target = tail.position
      let read = 0
      try {
        let sliceStart = performance.now()
        const redact = hub.redact(state.topic)
        const window = hub.dedupe.window
        // Ids of the records before where this reads, from the tail when it has them.
        const recent =
          window === 0 ? undefined : tail.recent?.covers(state.next - window) ? tail.recent.before(state.next) : await lookback(log, state.topic, state.partition, state.next, window, this.#abort.signal)
        for await (const record of log.read({ topic: state.topic, partition: state.partition, offset: state.next }, { follow: false, signal: this.#abort.signal })) {
          if (this.#closed) return
          read++
          const delivery = toDelivery(record, redact)
          if (recent?.check(delivery.id, record.offset)) delivery.duplicate = true
          if (!this.#take(state, delivery, undefined)) return
          if (this.#options.response.writableNeedDrain) await this.#drained()
          // History that the filter mostly skips writes nothing, so it never waits for a drain:
          // let the event loop run every few milliseconds of it.
          if (performance.now() - sliceStart > sliceMs) {
            await nextTurn()
            sliceStart = performance.now()
            if (this.#closed) return
          }
          if (record.offset + 1 >= target) break
        }
        // Nothing left to read below the tail (retention removed it): continue from the tail.
        if (read === 0) state.next = Math.max(state.next, target)
      } catch (error) {
        if (!this.#closed) this.#failPartition(state, error)
        return
      }
    }
  }

  #subscriber(state: PartitionState): PartitionSubscriber {
    return {
      deliver: (delivery, frames) => {
        this.#take(state, delivery, frames)
      },
      fail: (error) => this.#failPartition(state, error),
    }
  }

  /**
   * A batch that cannot be decoded stops its partition only: the client is told (an `error`
   * event naming the partition and offset) and keeps getting the others. Any other failure of
   * the log ends the connection, and the client resumes elsewhere or later.
   */
  #failPartition(state: PartitionState, error: unknown): void {
    if (!(error instanceof EventplaneError && error.code === 'EVP_LOG_RECORD_UNDECODABLE')) return this.fail(error)
    if (state.stopped || this.#closed) return
    state.stopped = true
    if (state.subscriber !== undefined) state.tail?.remove(state.subscriber)
    state.subscriber = undefined
    this.#write(this.#errorFrame(error))
    if (this.#states.every((s) => s.stopped)) this.close()
  }

  /** Handles one record of a partition; false when the client is gone. */
  #take(state: PartitionState, delivery: Delivery, frames: FrameCache | undefined): boolean {
    if (this.#closed) return false
    if (delivery.offset < state.next) return true // seen already (read as history before joining)
    state.next = delivery.offset + 1
    state.lastTimestamp = delivery.timestamp
    if (delivery.duplicate) return true
    const { filter } = this.#options
    let verdict = frames?.get(filter.key) as ReturnType<EventFilter['test']> | undefined
    if (verdict === undefined) {
      verdict = filter.test(delivery.event)
      frames?.set(filter.key, verdict)
      if (verdict === 'error') this.#options.hooks.onFilterError()
      else if (verdict === 'over-budget') this.#options.hooks.onFilterOverBudget()
    }
    if (verdict !== 'pass') return true
    // Frames are shared only between clients whose every partition is live: then their
    // positions are the tails' positions, the same for all of them.
    const shareable = frames !== undefined && this.#live === this.#states.length
    let frame = shareable ? (frames.get(this.#assignmentKey) as Uint8Array | undefined) : undefined
    if (frame === undefined) {
      frame = this.#frame(delivery)
      if (shareable) frames.set(this.#assignmentKey, frame)
    }
    this.#write(frame)
    this.#options.hooks.onDelivered(1)
    return !this.#closed
  }

  #frame(delivery: Delivery): Uint8Array {
    if (this.#options.format === 'ndjson') return encoder.encode(`${delivery.json}\n`)
    return encoder.encode(`event: message\nid: ${this.#id()}\ndata: ${delivery.json}\n\n`)
  }

  /** Positions of every partition of the connection, one past what it has seen. */
  #id(): string {
    const mode = this.#options.idMode
    const positions: IdPosition[] = this.#states.map((state) => {
      const position: IdPosition = { topic: state.topic, partition: state.partition }
      if (mode !== 'timestamp' || state.lastTimestamp === undefined) position.offset = state.next
      if (mode !== 'offset' && state.lastTimestamp !== undefined) position.timestamp = state.lastTimestamp + 1
      return position
    })
    return JSON.stringify(positions)
  }

  #write(chunk: Uint8Array | string): void {
    const response = this.#options.response
    // Writes of one batch of records (delivered in one run of the microtask queue) leave in
    // one writev, not one syscall and TCP segment each.
    if (!this.#corked) {
      this.#corked = true
      response.cork()
      process.nextTick(this.#uncork)
    }
    response.write(chunk)
    this.lastWrite = Date.now()
  }

  #drained(): Promise<void> {
    const response = this.#options.response
    return new Promise((resolve) => {
      const done = () => {
        response.off('drain', done)
        response.off('close', done)
        resolve()
      }
      response.on('drain', done)
      response.on('close', done)
    })
  }

  /** A comment line that keeps idle connections (and proxies) from timing out. */
  heartbeat(now: number): void {
    if (!this.#closed && this.#options.format === 'sse' && this.#options.response.writableLength === 0) {
      this.#options.response.write(':\n\n')
      this.lastWrite = now
    }
  }

  fail(error: unknown): void {
    const e = error instanceof EventplaneError ? error : new EventplaneError('EVP_LOG_UNAVAILABLE', `reading the stream failed: ${(error as Error).message}`, { cause: error })
    this.#end(e)
  }

  #errorFrame(error: EventplaneError): string {
    const body = JSON.stringify(toProblem(error))
    return this.#options.format === 'sse' ? `event: error\nid: ${this.#id()}\ndata: ${body}\n\n` : `${body}\n`
  }

  #end(error: EventplaneError | undefined): void {
    if (this.#closed) return
    const response = this.#options.response
    if (error !== undefined && !response.destroyed) response.write(this.#errorFrame(error))
    this.close()
  }

  /**
   * Leaves the tails and ends the response. A client that does not take the rest (it stopped
   * reading: the reason it is dropped) gets `closeGraceMs`, then its socket is destroyed, so a
   * dropped client never keeps a socket and its unsent data.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#abort.abort()
    for (const state of this.#states) if (state.subscriber !== undefined) state.tail?.remove(state.subscriber)
    const response = this.#options.response
    if (!response.writableEnded) response.end()
    const socket = response.socket
    if (socket !== null && !socket.destroyed) {
      const timer = setTimeout(() => socket.destroy(), this.#options.closeGraceMs)
      timer.unref()
      socket.once('close', () => clearTimeout(timer))
    }
    this.#options.hooks.onClose()
  }
}
