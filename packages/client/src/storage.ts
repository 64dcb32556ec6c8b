/**
 * Storage the client keeps its ids (and, for the browser transport, its queue) in:
 * `localStorage` where there is one and it works, else memory. Every access is guarded: a
 * private-mode browser throws on setItem, a full one throws QuotaExceededError, and some
 * throw on merely reading `window.localStorage`.
 */
export interface KeyValueStore {
  get(key: string): string | undefined
  /** False when the value could not be stored (full, unavailable). */
  set(key: string, value: string): boolean
  remove(key: string): void
  /** Whether values outlive this page (false: memory only). */
  readonly persistent: boolean
}

interface WebStorage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export function memoryStore(): KeyValueStore {
  const values = new Map<string, string>()
  return {
    persistent: false,
    get: (key) => values.get(key),
    set: (key, value) => {
      values.set(key, value)
      return true
    },
    remove: (key) => void values.delete(key),
  }
}

/** `localStorage` behind the guards, or memory when there is none that works. */
export function browserStore(): KeyValueStore {
  let storage: WebStorage | undefined
  try {
    storage = (globalThis as { localStorage?: WebStorage }).localStorage
    if (storage !== undefined) {
      const probe = '__eventplane_probe__'
      storage.setItem(probe, '1')
      storage.removeItem(probe)
    }
  } catch {
    storage = undefined
  }
  if (storage === undefined) return memoryStore()
  const fallback = memoryStore()
  const web = storage
  return {
    persistent: true,
    get: (key) => {
      try {
        return web.getItem(key) ?? fallback.get(key)
      } catch {
        return fallback.get(key)
      }
    },
    set: (key, value) => {
      try {
        web.setItem(key, value)
        fallback.remove(key)
        return true
      } catch {
        fallback.set(key, value)
        return false
      }
    },
    remove: (key) => {
      fallback.remove(key)
      try {
        web.removeItem(key)
      } catch {
        // nothing to do: it is gone from memory, and storage cannot be reached
      }
    },
  }
}
