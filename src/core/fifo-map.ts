/**
 * A map from string keys to numbers (an offset, a time) whose entries leave oldest first: the
 * order is that of `set`, and a key set again leaves with its last setting. Kept as a Map for
 * lookups and two arrays with a head for the order (a Map iterated from its start after many
 * deletes walks over every deleted slot), compacted now and then.
 */
export class FifoMap {
  readonly #values = new Map<string, number>()
  #keys: string[] = []
  #order: number[] = []
  #head = 0

  get size(): number {
    return this.#values.size
  }

  get(key: string): number | undefined {
    return this.#values.get(key)
  }

  set(key: string, value: number): void {
    this.#values.set(key, value)
    this.#keys.push(key)
    this.#order.push(value)
  }

  /** Removes entries, oldest first, while `expired(value as set, size now)` holds. */
  evictWhile(expired: (value: number, size: number) => boolean): void {
    const keys = this.#keys
    const order = this.#order
    let head = this.#head
    while (head < keys.length && expired(order[head]!, this.#values.size)) {
      const key = keys[head]!
      // A key set again later has a newer entry further on: only that one removes it.
      if (this.#values.get(key) === order[head]) this.#values.delete(key)
      head++
    }
    if (head > 4096 && head * 2 > keys.length) {
      this.#keys = keys.slice(head)
      this.#order = order.slice(head)
      head = 0
    }
    this.#head = head
  }

  /** The entries kept, oldest first (each key once, with its last value). */
  *entries(): Generator<[string, number]> {
    for (let i = this.#head; i < this.#keys.length; i++) {
      const key = this.#keys[i]!
      if (this.#values.get(key) === this.#order[i]) yield [key, this.#order[i]!]
    }
  }
}
