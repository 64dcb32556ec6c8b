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
export class AcceptedIds {
  readonly #ids = new Map<string, number>()
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

  /** Whether an event with this id was appended to this topic within the window. */
  has(topic: string, id: string): boolean {
    const at = this.#ids.get(`${topic}\0${id}`)
    return at !== undefined && this.#now() - at <= this.#windowMs
  }

  add(topic: string, id: string): void {
    const key = `${topic}\0${id}`
    const now = this.#now()
    // Re-inserted, so the map stays in the order of the last append.
    this.#ids.delete(key)
    this.#ids.set(key, now)
    this.#evict(now)
  }

  #evict(now: number): void {
    for (const [key, at] of this.#ids) {
      if (this.#ids.size <= this.#maxIds && now - at <= this.#windowMs) break
      this.#ids.delete(key)
    }
  }
}
