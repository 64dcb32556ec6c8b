/**
 * Intake-side dedupe: the `meta.id`s producers gave to events this process appended lately,
 * per topic. An event sent again with the same id (a client retrying after a lost answer, a
 * page sending its stored queue again) is answered as accepted and not appended a second
 * time. Bounded both ways: ids older than the window go, and past `maxIds` the oldest go first
 * (under heavy load the window is shorter than configured; the metric of duplicates says how
 * many were caught). Only ids the producer gave count: an id the intake made up cannot come
 * back unless the producer read it from an answer.
 *
 * What this does not see: copies that reach another intake process, copies sent while the first
 * is still being appended, and copies from before a restart. Readers of /v2/stream drop those
 * too (streams/dedupe.ts), within their own window of records.
 */
import { FifoMap } from '../core/fifo-map.ts'

export class AcceptedIds {
  /** key (topic and id) → when it was last appended. */
  readonly #ids = new FifoMap()
  readonly #maxIds: number
  readonly #windowMs: number
  readonly #now: () => number

  constructor(maxIds: number, windowMs: number, now: () => number = Date.now) {
    this.#maxIds = maxIds
    this.#windowMs = windowMs
    this.#now = now
  }

  get size(): number {
    return this.#ids.size
  }

  /** The key of an id in a topic (made once per event: has and add then hash the same string). */
  static key(topic: string, id: string): string {
    return `${topic}\0${id}`
  }

  /** Whether an event with this key was appended within the window. */
  has(key: string): boolean {
    const at = this.#ids.get(key)
    return at !== undefined && this.#now() - at <= this.#windowMs
  }

  add(key: string): void {
    this.#addedAt = this.#now()
    this.#ids.set(key, this.#addedAt)
    this.#ids.evictWhile(this.#expired)
  }

  /** When the last id was added; read by #expired (one function for every add, not one each). */
  #addedAt = 0
  readonly #expired = (at: number, size: number): boolean => size > this.#maxIds || this.#addedAt - at > this.#windowMs
}
