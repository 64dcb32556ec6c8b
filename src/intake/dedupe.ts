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
  /** key (topic and id) → when it was last appended. */
  readonly #ids = new Map<string, number>()
  /**
   * The same in the order appended, for eviction from the oldest (two arrays and a head: a Map
   * iterated from its start after many deletes walks over every deleted slot).
   */
  #keys: string[] = []
  #times: number[] = []
  #head = 0
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
    const now = this.#now()
    this.#ids.set(key, now)
    this.#keys.push(key)
    this.#times.push(now)
    this.#evict(now)
  }

  #evict(now: number): void {
    const keys = this.#keys
    const times = this.#times
    let head = this.#head
    while (head < keys.length && (this.#ids.size > this.#maxIds || now - times[head]! > this.#windowMs)) {
      const key = keys[head]!
      // An id appended again later has a newer entry further on: only its last one removes it.
      if (this.#ids.get(key) === times[head]) this.#ids.delete(key)
      head++
    }
    if (head > 4096 && head * 2 > keys.length) {
      this.#keys = keys.slice(head)
      this.#times = times.slice(head)
      head = 0
    }
    this.#head = head
  }
}
