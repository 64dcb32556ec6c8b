/**
 * The ids sampling and context use: a pageview id (new for each client, that is each page
 * load), a session id (kept in storage, new after `sessionTimeoutMs` without activity, 30
 * minutes by default, as Wikimedia's session tick and Java client do) and a device id (kept
 * in storage for good). All are 20 lowercase hex digits (ids.ts).
 */
import { isId, randomId } from './ids.ts'
import type { KeyValueStore } from './storage.ts'

export interface IdentityOptions {
  store: KeyValueStore
  /** Idle time after which a new session starts (ms; default 30 minutes). */
  sessionTimeoutMs?: number
  now?: () => number
}

const sessionKey = 'eventplane:session'
const deviceKey = 'eventplane:device'

export class Identity {
  readonly pageviewId = randomId()
  readonly #store: KeyValueStore
  readonly #timeoutMs: number
  readonly #now: () => number
  #session: { id: string; touched: number } | undefined
  #device: string | undefined

  constructor(options: IdentityOptions) {
    this.#store = options.store
    this.#timeoutMs = options.sessionTimeoutMs ?? 30 * 60_000
    this.#now = options.now ?? Date.now
  }

  /** The session id, renewed when the last activity is older than the timeout (or in the future: a clock set back). */
  get sessionId(): string {
    const now = this.#now()
    let session = this.#session ?? readSession(this.#store.get(sessionKey))
    if (session === undefined || now - session.touched > this.#timeoutMs || session.touched - now > this.#timeoutMs) session = { id: randomId(), touched: now }
    else session = { id: session.id, touched: now }
    this.#session = session
    this.#store.set(sessionKey, JSON.stringify(session))
    return session.id
  }

  /** Starts a new session now. */
  resetSession(): void {
    this.#session = { id: randomId(), touched: this.#now() }
    this.#store.set(sessionKey, JSON.stringify(this.#session))
  }

  get deviceId(): string {
    if (this.#device !== undefined) return this.#device
    const stored = this.#store.get(deviceKey)
    this.#device = isId(stored) ? stored : randomId()
    if (stored !== this.#device) this.#store.set(deviceKey, this.#device)
    return this.#device
  }
}

function readSession(text: string | undefined): { id: string; touched: number } | undefined {
  if (text === undefined) return undefined
  try {
    const value = JSON.parse(text) as { id?: unknown; touched?: unknown }
    return isId(value.id) && typeof value.touched === 'number' && Number.isFinite(value.touched) ? { id: value.id, touched: value.touched } : undefined
  } catch {
    return undefined
  }
}
