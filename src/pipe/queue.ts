/**
 * A bounded hand-off between producers that push (a partition reader, an SSE connection) and
 * one consumer that takes batches: a push waits while the queue is full, so a slow
 * destination slows the reading instead of growing memory.
 */
export class BoundedQueue<T> {
  private items: T[] = []
  private head = 0
  private ended = false
  private failure: unknown
  private wakeTaker: (() => void) | undefined
  private readonly wakePushers: Array<() => void> = []

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head
  }

  async push(item: T, signal?: AbortSignal): Promise<void> {
    while (this.size >= this.capacity && !this.ended && signal?.aborted !== true) {
      await wake(signal, (done) => this.wakePushers.push(done))
    }
    if (this.ended || signal?.aborted === true) return
    this.items.push(item)
    this.wakeTaker?.()
  }

  /** Ends the queue: takers get what is left, then undefined (or the failure, thrown). */
  end(failure?: unknown): void {
    if (this.ended) return
    this.ended = true
    this.failure = failure
    this.wakeTaker?.()
    for (const wake of this.wakePushers.splice(0)) wake()
  }

  /** Up to `max` items, waiting for the first; undefined once ended and empty, or once the signal aborts. */
  async take(max: number, signal?: AbortSignal): Promise<T[] | undefined> {
    if (signal?.aborted === true) return undefined
    while (this.size === 0) {
      if (this.ended) {
        if (this.failure !== undefined) throw this.failure
        return undefined
      }
      if (isAborted(signal)) return undefined
      await wake(signal, (done) => (this.wakeTaker = done))
      this.wakeTaker = undefined
    }
    // Let the pushers run once more (a log read hands over a batch record by record), so that a
    // batch is what has arrived by now, not the first record alone.
    if (this.size < max && !this.ended) await new Promise((resolve) => setImmediate(resolve))
    const end = Math.min(this.items.length, this.head + max)
    const taken = this.items.slice(this.head, end)
    this.head = end
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    for (const wake of this.wakePushers.splice(0)) wake()
    return taken
  }
}

/** Resolves when `register`'s callback is called or the signal aborts, leaving no listener behind. */
function wake(signal: AbortSignal | undefined, register: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      signal?.removeEventListener('abort', done)
      resolve()
    }
    register(done)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Read through a call: an await in between may have aborted it. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}
